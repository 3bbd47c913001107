//! Base64 encoding on the sealing hot paths: the standard alphabet with padding, through the
//! `base64` crate's SIMD engine where the CPU has one (AVX2, NEON), else its scalar engine.
//! The output is the same byte for byte; decoding stays on the scalar engine's strict checks.

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use base64::engine::{Simd, general_purpose::PAD};
use base64::{EncodeSliceError, Engine as _};

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn engine() -> &'static Simd {
    static ENGINE: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    // Detects the instruction set once.
    ENGINE.get_or_init(|| Simd::standard(PAD))
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn engine() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::STANDARD
}

/// Encodes `input` into the front of `output`; returns the bytes written.
pub(crate) fn encode_slice(input: &[u8], output: &mut [u8]) -> Result<usize, EncodeSliceError> {
    engine().encode_slice(input, output)
}

/// Appends the encoding of `input` to `out`.
pub(crate) fn encode_string(input: &[u8], out: &mut String) {
    engine().encode_string(input, out);
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    #[test]
    fn encodes_as_the_scalar_engine_at_every_length() {
        let data: Vec<u8> = (0..2048u32).map(|i| (i * 37 % 256) as u8).collect();
        for len in 0..data.len() {
            let expected = STANDARD.encode(&data[..len]);
            let mut out = vec![0u8; expected.len()];
            assert_eq!(encode_slice(&data[..len], &mut out), Ok(expected.len()));
            assert_eq!(out, expected.as_bytes(), "len {len}");
            let mut text = String::from(">");
            encode_string(&data[..len], &mut text);
            assert_eq!(text[1..], expected, "len {len}");
        }
    }
}
