//! `v2_handshake`: `v2_handshake` in `fuzz/checks.rs` says what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sealcast_fuzz::v2_handshake(data);
});
