//! `public_key_import`: `public_key_import` in `fuzz/checks.rs` says what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sealcast_fuzz::public_key_import(data);
});
