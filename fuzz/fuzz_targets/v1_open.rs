//! `v1_open`: `v1_open` in `fuzz/checks.rs` says what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sealcast_fuzz::v1_open(data);
});
