//! The fuzz targets' assertions. The bodies live in `fuzz/checks.rs`, which
//! `tests/fuzz_corpus.rs` includes too, so `cargo test` replays every committed corpus file
//! through exactly the code the fuzzer runs.

include!("../checks.rs");
