//! P-256 keys: strict import of peer public keys and the server's own key pair.
//!
//! The wire format is the one WebCrypto's `exportKey("raw", ..)` produces: the 65-byte SEC1
//! uncompressed point `0x04 ‖ x ‖ y`, carried as standard padded base64 (88 characters).
//! Nothing else is accepted: no compressed or hybrid points, no other lengths, no
//! URL-safe or unpadded base64.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::elliptic_curve::Generate as _;
use p256::elliptic_curve::sec1::ToSec1Point as _;
use p256::{NonZeroScalar, SecretKey};
use zeroize::Zeroize as _;

use super::CryptoError;

/// Length of a raw uncompressed SEC1 P-256 point: `0x04 ‖ x (32) ‖ y (32)`.
const RAW_LEN: usize = 65;
/// Length of [`RAW_LEN`] bytes as standard padded base64.
const B64_LEN: usize = 88;
/// SEC1 tag of an uncompressed point.
const UNCOMPRESSED_TAG: u8 = 0x04;
/// Length of a P-256 secret scalar in bytes.
const SECRET_LEN: usize = 32;

/// A validated P-256 public key: on the curve, not the identity.
///
/// Holding a `PublicKey` is proof that the point passed [`PublicKey::from_raw`]'s checks,
/// so ECDH with it never runs on an invalid point.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The checked point, ready for ECDH.
    point: p256::PublicKey,
    /// Its canonical uncompressed encoding, kept so `to_raw`/`to_b64` cost no re-encoding.
    raw: [u8; RAW_LEN],
}

impl PublicKey {
    /// Imports a peer key from standard padded base64 of the 65-byte uncompressed point.
    ///
    /// # Errors
    /// [`CryptoError`] if `s` is not exactly 88 characters of canonical standard base64, or the
    /// decoded bytes are rejected by [`PublicKey::from_raw`].
    pub fn from_b64(s: &str) -> Result<Self, CryptoError> {
        // SECURITY: check the length before decoding so a peer cannot make us allocate or
        // work on anything larger than one key.
        if s.len() != B64_LEN {
            return Err(CryptoError);
        }
        // One spare byte: 88 characters decode to at most 66 bytes, so `decode_slice` never
        // fails for lack of room and a wrong decoded length is caught below.
        let mut raw = [0u8; RAW_LEN + 1];
        let n = STANDARD
            .decode_slice(s, &mut raw)
            .map_err(|_| CryptoError)?;
        Self::from_raw(&raw[..n])
    }

    /// Imports a peer key from the 65-byte uncompressed SEC1 point `0x04 ‖ x ‖ y`.
    ///
    /// # Errors
    /// [`CryptoError`] for any other length, any other leading tag (compressed `0x02`/`0x03`,
    /// hybrid `0x06`/`0x07`, identity `0x00`), coordinates not below the field prime, or a
    /// point that is not on the curve.
    pub fn from_raw(bytes: &[u8]) -> Result<Self, CryptoError> {
        // SECURITY: strict import. Only the exact encoding WebCrypto exports is accepted, so
        // there is one encoding per key and no decompression path to reason about.
        if bytes.len() != RAW_LEN || bytes[0] != UNCOMPRESSED_TAG {
            return Err(CryptoError);
        }
        // SECURITY: `from_sec1_bytes` rejects coordinates >= p, points off the curve (an
        // invalid-curve attack would otherwise leak bits of our secret scalar through ECDH)
        // and the identity.
        let point = p256::PublicKey::from_sec1_bytes(bytes).map_err(|_| CryptoError)?;
        Ok(Self::from_point(point))
    }

    /// Wraps an already-validated point, caching its canonical encoding.
    fn from_point(point: p256::PublicKey) -> Self {
        let encoded = point.to_sec1_point(false);
        let mut raw = [0u8; RAW_LEN];
        raw.copy_from_slice(encoded.as_bytes());
        Self { point, raw }
    }

    /// The 65-byte uncompressed SEC1 encoding `0x04 ‖ x ‖ y`.
    pub fn to_raw(&self) -> [u8; RAW_LEN] {
        self.raw
    }

    /// The 65-byte uncompressed encoding as standard padded base64 (what WebCrypto clients
    /// import, and what the `connected` event's `serverPublicKey` carries).
    pub fn to_b64(&self) -> String {
        STANDARD.encode(self.raw)
    }

    /// The validated point, for ECDH.
    pub(crate) fn point(&self) -> &p256::PublicKey {
        &self.point
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.to_b64()).finish()
    }
}

/// A P-256 key pair (in sealcast: the server's long-term v1 key).
///
/// Deliberately neither `Debug` nor `Clone`: the secret scalar is never printed and exists
/// once. It is zeroized when the pair is dropped.
pub struct KeyPair {
    /// SECURITY: `p256::SecretKey` zeroizes its scalar on drop.
    secret: SecretKey,
    /// Derived from `secret` once, at construction.
    public: PublicKey,
}

impl KeyPair {
    /// Generates a fresh key pair from the operating system's random number generator.
    ///
    /// # Panics
    /// If the operating system's random number generator fails, which modern systems do not
    /// do; no input can cause it.
    pub fn generate() -> Self {
        // `NonZeroScalar::generate` rejection-samples, so the scalar is in [1, n-1].
        let mut scalar = NonZeroScalar::generate();
        let secret = SecretKey::from(scalar);
        // SECURITY: `NonZeroScalar` is `Copy` and has no drop glue; wipe our copy.
        scalar.zeroize();
        Self::from_secret(secret)
    }

    /// Imports a key pair from its 32-byte big-endian secret scalar.
    ///
    /// # Errors
    /// [`CryptoError`] unless `bytes` is exactly 32 bytes encoding a scalar in `[1, n-1]`.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        // SECURITY: exactly 32 bytes; `SecretKey::from_slice` would zero-pad shorter input.
        if bytes.len() != SECRET_LEN {
            return Err(CryptoError);
        }
        let secret = SecretKey::from_slice(bytes).map_err(|_| CryptoError)?;
        Ok(Self::from_secret(secret))
    }

    fn from_secret(secret: SecretKey) -> Self {
        let public = PublicKey::from_point(secret.public_key());
        Self { secret, public }
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public half as standard padded base64 of the 65-byte uncompressed point.
    pub fn public_key_b64(&self) -> String {
        self.public.to_b64()
    }

    /// P-256 ECDH with `peer`: the shared point's x-coordinate, zeroized when dropped.
    pub(crate) fn diffie_hellman(&self, peer: &PublicKey) -> p256::ecdh::SharedSecret {
        let mut scalar = self.secret.to_nonzero_scalar();
        let shared = p256::ecdh::diffie_hellman(&scalar, peer.point().as_affine());
        // SECURITY: wipe the scalar copy `to_nonzero_scalar` made (no drop glue of its own).
        scalar.zeroize();
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed valid key (client key of the first v1 vector).
    const VALID_B64: &str =
        "BB/REONrWpYSCyhMr560Jva5lMX3BR2LjeKdwzHTTUJVTT9D670UgpS2ajp3nd6rUZc76if0IAXSadtiQ7AQ/kw=";
    const VALID_SECRET_HEX: &str =
        "c4c273149981fa8c9dd0f3c02b465e8fcf62afda336698d4878674ea3d2bdc50";
    /// The P-256 field prime p, big-endian.
    const P_HEX: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
    /// The P-256 group order n, big-endian.
    const N_HEX: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn valid_raw() -> [u8; RAW_LEN] {
        PublicKey::from_b64(VALID_B64)
            .expect("fixture key")
            .to_raw()
    }

    #[test]
    fn b64_and_raw_round_trip() {
        let key = PublicKey::from_b64(VALID_B64).expect("valid key");
        assert_eq!(key.to_b64(), VALID_B64);
        let raw = key.to_raw();
        assert_eq!(raw[0], 0x04);
        assert_eq!(PublicKey::from_raw(&raw).expect("raw"), key);
        assert_eq!(format!("{key:?}"), format!("PublicKey({VALID_B64:?})"));
    }

    #[test]
    fn secret_import_derives_the_known_public_key() {
        let pair = KeyPair::from_secret_bytes(&unhex(VALID_SECRET_HEX)).expect("valid secret");
        assert_eq!(pair.public_key_b64(), VALID_B64);
        assert_eq!(pair.public_key().to_b64(), VALID_B64);
    }

    #[test]
    fn generated_pairs_differ_and_import_back() {
        let a = KeyPair::generate();
        let b = KeyPair::generate();
        assert_ne!(a.public_key(), b.public_key());
        let again = PublicKey::from_b64(&a.public_key_b64()).expect("own key imports");
        assert_eq!(&again, a.public_key());
    }

    #[test]
    fn rejects_compressed_point() {
        let raw = valid_raw();
        let mut compressed = vec![0x02 | (raw[64] & 1)];
        compressed.extend_from_slice(&raw[1..33]);
        assert_eq!(compressed.len(), 33);
        // The point is valid (p256 itself accepts it), only the encoding is refused.
        assert!(p256::PublicKey::from_sec1_bytes(&compressed).is_ok());
        assert_eq!(PublicKey::from_raw(&compressed), Err(CryptoError));
        assert_eq!(
            PublicKey::from_b64(&STANDARD.encode(&compressed)),
            Err(CryptoError)
        );
    }

    #[test]
    fn rejects_wrong_lengths() {
        let raw = valid_raw();
        // 64 bytes: x ‖ y without the tag.
        assert_eq!(PublicKey::from_raw(&raw[1..]), Err(CryptoError));
        assert_eq!(
            PublicKey::from_b64(&STANDARD.encode(&raw[1..])),
            Err(CryptoError)
        );
        // 66 bytes: a trailing byte.
        let mut long = raw.to_vec();
        long.push(0);
        assert_eq!(PublicKey::from_raw(&long), Err(CryptoError));
        assert_eq!(
            PublicKey::from_b64(&STANDARD.encode(&long)),
            Err(CryptoError)
        );
        assert_eq!(PublicKey::from_raw(&[]), Err(CryptoError));
        assert_eq!(PublicKey::from_b64(""), Err(CryptoError));
    }

    #[test]
    fn rejects_wrong_prefix() {
        let raw = valid_raw();
        for tag in [0x00, 0x02, 0x03, 0x05, 0x06, 0x07, 0xff] {
            let mut bad = raw;
            bad[0] = tag;
            assert_eq!(
                PublicKey::from_raw(&bad),
                Err(CryptoError),
                "tag {tag:#04x}"
            );
            assert_eq!(PublicKey::from_b64(&STANDARD.encode(bad)), Err(CryptoError));
        }
    }

    #[test]
    fn rejects_off_curve_point() {
        let mut bad = valid_raw();
        bad[64] ^= 0x01;
        assert_eq!(PublicKey::from_raw(&bad), Err(CryptoError));
        assert_eq!(PublicKey::from_b64(&STANDARD.encode(bad)), Err(CryptoError));
    }

    #[test]
    fn rejects_identity_and_all_zero() {
        assert_eq!(PublicKey::from_raw(&[0x00]), Err(CryptoError));
        assert_eq!(PublicKey::from_raw(&[0u8; RAW_LEN]), Err(CryptoError));
        let mut zero_point = [0u8; RAW_LEN];
        zero_point[0] = 0x04;
        assert_eq!(PublicKey::from_raw(&zero_point), Err(CryptoError));
        assert_eq!(
            PublicKey::from_b64(&STANDARD.encode(zero_point)),
            Err(CryptoError)
        );
    }

    #[test]
    fn rejects_non_canonical_coordinates() {
        // x = p is x = 0 mod p; a lax decoder would reduce it.
        let mut bad = valid_raw();
        bad[1..33].copy_from_slice(&unhex(P_HEX));
        assert_eq!(PublicKey::from_raw(&bad), Err(CryptoError));
    }

    #[test]
    fn rejects_bad_base64() {
        let unpadded = VALID_B64.trim_end_matches('=');
        let url_safe = VALID_B64.replace('/', "_").replace('+', "-");
        let with_space = format!(" {}", &VALID_B64[1..]);
        let with_newline = format!("{}\n", &VALID_B64[..87]);
        let bad_char = format!("{}!=", &VALID_B64[..86]);
        for bad in [
            unpadded,
            url_safe.as_str(),
            with_space.as_str(),
            with_newline.as_str(),
            bad_char.as_str(),
            "not base64 at all",
        ] {
            assert_eq!(PublicKey::from_b64(bad), Err(CryptoError), "{bad:?}");
        }
        // Non-canonical trailing bits in the last character ('w' -> 'x' keeps the length).
        let trailing = format!("{}x=", &VALID_B64[..86]);
        assert_eq!(PublicKey::from_b64(&trailing), Err(CryptoError));
    }

    #[test]
    fn secret_import_rejects_bad_scalars() {
        assert!(KeyPair::from_secret_bytes(&[0u8; 32]).is_err());
        assert!(KeyPair::from_secret_bytes(&unhex(N_HEX)).is_err());
        assert!(KeyPair::from_secret_bytes(&[0xff; 32]).is_err());
        let secret = unhex(VALID_SECRET_HEX);
        assert!(KeyPair::from_secret_bytes(&secret[1..]).is_err());
        let mut long = secret.clone();
        long.push(1);
        assert!(KeyPair::from_secret_bytes(&long).is_err());
        assert!(KeyPair::from_secret_bytes(&[]).is_err());
    }
}
