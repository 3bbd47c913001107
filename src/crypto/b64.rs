//! Base64 encoding on the sealing hot paths: the standard alphabet with padding, through
//! `base64-simd` (AVX2/SSE4.1/NEON, chosen at run time), which keeps its vector path down to
//! the short fields a sealed message carries (a ~130-byte record: ~40 ns, against ~70–110 ns
//! for the `base64` crate's engines here). The output is the same byte for byte; decoding stays
//! on the `base64` crate's strict checks.

use super::CryptoError;

/// Raw bytes encoded per step by [`encode_in_place`]: a multiple of 3, so padding can only
/// appear in the last step.
const B64_STEP: usize = 3 * 64;

/// Encodes `input` into the front of `output`; returns the bytes written, or `None` when
/// `output` is too short.
pub(crate) fn encode_slice(input: &[u8], output: &mut [u8]) -> Option<usize> {
    let engine = base64_simd::STANDARD;
    let len = engine.encoded_length(input.len());
    let output = output.get_mut(..len)?;
    Some(
        engine
            .encode(input, base64_simd::Out::from_slice(output))
            .len(),
    )
}

/// Base64-encodes (standard, padded) the bytes `field[raw_start..]` into all of `field`,
/// whose length must be exactly their encoded length.
///
/// Why reading and writing the same buffer is sound: after encoding the first `m` raw bytes
/// (a multiple of 3, or all of them) the output ends at `4·⌈m/3⌉`, while the next unread raw
/// byte sits at `raw_start + m = 4·⌈R/3⌉ − R + m`, which is never smaller (`R` = raw length).
/// Each step copies its input to the stack before writing, so a step may overwrite its own
/// input but never bytes still to be read.
pub(crate) fn encode_in_place(field: &mut [u8], raw_start: usize) -> Result<(), CryptoError> {
    let raw_len = field.len().checked_sub(raw_start).ok_or(CryptoError)?;
    let mut step = [0u8; B64_STEP];
    let (mut read, mut written) = (0, 0);
    while read < raw_len {
        let take = B64_STEP.min(raw_len - read);
        let from = raw_start + read;
        step[..take].copy_from_slice(&field[from..from + take]);
        written += encode_slice(&step[..take], &mut field[written..]).ok_or(CryptoError)?;
        read += take;
    }
    if written == field.len() {
        Ok(())
    } else {
        Err(CryptoError)
    }
}

/// Appends the base64 (standard, padded) of `raw_len` bytes that `fill` writes: `fill` gets
/// the tail of the new field, exactly `raw_len` bytes, which is then encoded in place into the
/// whole field ([`encode_in_place`]). A sealer writes its ciphertext straight into the text it
/// sends this way. On failure `out` is left as it was.
pub(crate) fn push_encoded_with(
    out: &mut Vec<u8>,
    raw_len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), CryptoError>,
) -> Result<(), CryptoError> {
    let b64_len = base64::encoded_len(raw_len, true).ok_or(CryptoError)?;
    let start = out.len();
    out.resize(start.checked_add(b64_len).ok_or(CryptoError)?, 0);
    let field = &mut out[start..];
    let raw_start = b64_len - raw_len;
    let done = fill(&mut field[raw_start..]).and_then(|()| encode_in_place(field, raw_start));
    if done.is_err() {
        out.truncate(start);
    }
    done
}

#[cfg(test)]
mod tests {
    use base64::{Engine as _, engine::general_purpose::STANDARD};

    use super::*;

    #[test]
    fn encodes_as_the_scalar_engine_at_every_length() {
        let data: Vec<u8> = (0..2048u32).map(|i| (i * 37 % 256) as u8).collect();
        for len in 0..data.len() {
            let expected = STANDARD.encode(&data[..len]);
            let mut out = vec![0u8; expected.len()];
            assert_eq!(encode_slice(&data[..len], &mut out), Some(expected.len()));
            assert_eq!(
                encode_slice(&data[..len], &mut out[..expected.len().saturating_sub(1)]).is_none(),
                len > 0
            );
            assert_eq!(out, expected.as_bytes(), "len {len}");
        }
    }

    #[test]
    fn encodes_in_place_from_the_end_of_the_field_at_every_length() {
        let data: Vec<u8> = (0..1200u32).map(|i| (i * 53 % 256) as u8).collect();
        for len in 0..data.len() {
            let expected = STANDARD.encode(&data[..len]);
            let mut field = vec![0u8; expected.len()];
            let raw_start = field.len() - len;
            field[raw_start..].copy_from_slice(&data[..len]);
            assert_eq!(encode_in_place(&mut field, raw_start), Ok(()), "len {len}");
            assert_eq!(field, expected.as_bytes(), "len {len}");
        }
        // A field that is not exactly the encoded length, or a start past its end.
        assert!(encode_in_place(&mut [0u8; 5], 2).is_err());
        assert!(encode_in_place(&mut [0u8; 4], 5).is_err());
    }

    #[test]
    fn pushes_what_the_filler_writes_and_nothing_when_it_fails() {
        let mut out = b"head:".to_vec();
        push_encoded_with(&mut out, 5, |raw| {
            raw.copy_from_slice(b"hello");
            Ok(())
        })
        .expect("push");
        assert_eq!(out, b"head:aGVsbG8=");
        assert!(push_encoded_with(&mut out, 5, |_| Err(CryptoError)).is_err());
        assert_eq!(out, b"head:aGVsbG8=");
    }
}
