//! `frame_parse`: `frame_parse` in `fuzz/checks.rs` says what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sealcast_fuzz::frame_parse(data);
});
