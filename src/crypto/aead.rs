//! AES-256-GCM, the record cipher of both profiles, over AWS-LC (`aws-lc-rs`).
//!
//! AWS-LC's x86_64 and AArch64 assembly interleaves the AES rounds with GHASH and uses the
//! vector AES and carry-less multiply instructions where the CPU has them; on the short frames a
//! fan-out seals (100–300 bytes) it runs about three times faster than a portable
//! implementation. The rest of the crypto (P-256, HKDF, SHA-256, HMAC) stays on RustCrypto.
//!
//! Nonces are the caller's: both profiles build them from a per-key counter, so a nonce never
//! repeats under one key (see `V1Key::next_iv` and the v2 record layer).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use super::CryptoError;

/// Length of the AES-256 key in bytes.
pub(crate) const KEY_LEN: usize = 32;
/// Length of the GCM nonce in bytes.
pub(crate) const NONCE_LEN: usize = 12;
/// Length of the GCM tag in bytes.
pub(crate) const TAG_LEN: usize = 16;

/// An AES-256-GCM key.
///
/// SECURITY: the key schedule and the GHASH key live in memory AWS-LC allocated; dropping the
/// key frees it through `OPENSSL_free`, which overwrites the allocation before releasing it.
/// The raw key bytes passed to [`Aes256GcmKey::new`] stay the caller's to zeroize.
pub(crate) struct Aes256GcmKey(LessSafeKey);

impl Aes256GcmKey {
    /// Expands `key` into a cipher.
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Result<Self, CryptoError> {
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError)?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// Encrypts `plaintext` into `out`, which must be exactly `plaintext.len() + TAG_LEN`
    /// bytes (`aws-lc-rs` checks that): `ciphertext ‖ tag`. The cipher reads `plaintext` where
    /// it is (AWS-LC's scatter call with all of the input as its "extra" part), so nothing is
    /// copied first.
    pub(crate) fn seal_into(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        self.0
            .seal_in_place_scatter(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                &mut [],
                plaintext,
                out,
            )
            .map_err(|_| CryptoError)
    }

    /// Decrypts `ciphertext ‖ tag` in place; returns the plaintext's length (the front of
    /// `buf`).
    ///
    /// SECURITY: AWS-LC compares the tag in constant time and, when it does not match, clears
    /// the output, so no unauthenticated plaintext is left in `buf`.
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, CryptoError> {
        if buf.len() < TAG_LEN {
            return Err(CryptoError);
        }
        self.0
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map(|plaintext| plaintext.len())
            .map_err(|_| CryptoError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST's GCM test case 15 (AES-256, 96-bit IV, no AAD), from the GCM specification.
    #[test]
    fn seals_and_opens_a_known_answer() {
        let key: [u8; KEY_LEN] =
            hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
                .try_into()
                .expect("32 bytes");
        let nonce: [u8; NONCE_LEN] = hex("cafebabefacedbaddecaf888")
            .try_into()
            .expect("12 bytes");
        let plaintext = hex(concat!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
        ));
        let expected = hex(concat!(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa",
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
            "b094dac5d93471bdec1a502270e3cc6c"
        ));
        let cipher = Aes256GcmKey::new(&key).expect("key");
        let mut out = vec![0u8; plaintext.len() + TAG_LEN];
        cipher
            .seal_into(&nonce, &[], &plaintext, &mut out)
            .expect("seal");
        assert_eq!(out, expected);

        let len = cipher.open_in_place(&nonce, &[], &mut out).expect("open");
        assert_eq!(&out[..len], plaintext.as_slice());
    }

    #[test]
    fn refuses_a_modified_record_a_wrong_aad_or_a_short_buffer() {
        let cipher = Aes256GcmKey::new(&[3; KEY_LEN]).expect("key");
        let nonce = [9; NONCE_LEN];
        let mut sealed = vec![0u8; 5 + TAG_LEN];
        cipher
            .seal_into(&nonce, b"aad", b"hello", &mut sealed)
            .expect("seal");
        for i in 0..sealed.len() {
            let mut modified = sealed.clone();
            modified[i] ^= 1;
            assert!(cipher.open_in_place(&nonce, b"aad", &mut modified).is_err());
            // Nothing that failed the tag check is left readable.
            assert!(modified[..5].iter().all(|&b| b == 0), "byte {i}");
        }
        assert!(
            cipher
                .open_in_place(&nonce, b"aaD", &mut sealed.clone())
                .is_err()
        );
        assert!(
            cipher
                .open_in_place(&[8; NONCE_LEN], b"aad", &mut sealed.clone())
                .is_err()
        );
        assert!(
            cipher
                .open_in_place(&nonce, b"aad", &mut [0; TAG_LEN - 1])
                .is_err()
        );
        assert!(
            cipher
                .seal_into(&nonce, &[], b"hello", &mut [0; 5])
                .is_err()
        );
        assert!(
            cipher
                .seal_into(&nonce, &[], b"hello", &mut [0; 5 + TAG_LEN + 1])
                .is_err()
        );
        assert_eq!(cipher.open_in_place(&nonce, b"aad", &mut sealed), Ok(5));
    }

    /// The scatter call reading the plaintext where it is gives what AWS-LC's in-place
    /// seal gives, at every length around the cipher's block and stride sizes, with and
    /// without AAD.
    #[test]
    fn seals_from_where_the_plaintext_is_as_in_place() {
        let cipher = Aes256GcmKey::new(&[5; KEY_LEN]).expect("key");
        let data: Vec<u8> = (0..600u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in 0..data.len() {
            for aad in [&b""[..], b"sealcast-v2\x01\0\0\0\0\0\0\0\x07"] {
                let nonce = [len as u8; NONCE_LEN];
                let mut out = vec![0u8; len + TAG_LEN];
                cipher
                    .seal_into(&nonce, aad, &data[..len], &mut out)
                    .expect("seal");
                let mut in_place = data[..len].to_vec();
                cipher
                    .0
                    .seal_in_place_append_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        &mut in_place,
                    )
                    .expect("seal in place");
                assert_eq!(out, in_place, "len {len}");
                assert_eq!(cipher.open_in_place(&nonce, aad, &mut out), Ok(len));
                assert_eq!(&out[..len], &data[..len]);
            }
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }
}
