//! `envelope_parse`: `envelope_parse` in `fuzz/checks.rs` says what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sealcast_fuzz::envelope_parse(data);
});
