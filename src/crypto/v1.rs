//! Encryption profile v1: wire-compatible with the Ignis reference helper.
//!
//! P-256 ECDH between the server's long-term key and the client's key → HKDF-SHA256
//! (`salt` = 32 random bytes sent in `connected`, `info` = [`HKDF_INFO`]) → a 32-byte
//! AES-256-GCM key. Each message gets a fresh 12-byte IV (a random per-key start plus a
//! counter, so IVs never repeat under one key); the 16-byte tag is appended to the
//! ciphertext; IV and ciphertext travel as standard base64 in
//! `{"event":"encrypted","data":{"iv":"..","ct":".."}}`.
//!
//! What v1 does not give (it is the spec's profile, kept for compatibility): forward secrecy
//! (the server key is long-term), replay or reorder protection (the receiver checks no sequence),
//! and it only covers server → client traffic. Encryption v2 addresses these.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::aead::{Aes256GcmKey, KEY_LEN, TAG_LEN};
use super::{CryptoError, KeyPair, PublicKey};

/// HKDF `info` string of the v1 profile.
pub const HKDF_INFO: &[u8] = b"ignis-ecdh-p256-aes-256-gcm-v1";
/// Length of the HKDF salt in bytes.
pub const SALT_LEN: usize = 32;
/// Length of the AES-GCM IV in bytes.
pub const IV_LEN: usize = 12;

/// Length of a 12-byte IV as standard padded base64.
const IV_B64_LEN: usize = 16;

/// The text of a sealed frame around its two base64 fields:
/// `{"event":"encrypted","data":{"iv":"<iv>","ct":"<ct>"}}`.
const FRAME_HEAD: &[u8] = br#"{"event":"encrypted","data":{"iv":""#;
const FRAME_MID: &[u8] = br#"","ct":""#;
const FRAME_TAIL: &[u8] = br#""}}"#;

/// A per-client v1 key: AES-256-GCM, derived once at handshake.
///
/// Not `Clone` (share it in an `Arc`), not `Debug`. The AES key schedule and GHASH key are
/// zeroized on drop.
pub struct V1Key {
    /// SECURITY: dropping it wipes the round keys and the GHASH key (see [`Aes256GcmKey`]).
    cipher: Aes256GcmKey,
    /// A random 96-bit starting IV, drawn once per key.
    iv_base: [u8; IV_LEN],
    /// How many IVs this key has handed out.
    iv_count: AtomicU64,
}

impl V1Key {
    /// Derives the key both sides of a v1 handshake agree on: P-256 ECDH of `own` with `peer`,
    /// then HKDF-SHA256 with `salt` and [`HKDF_INFO`].
    ///
    /// The server calls it as `derive(server, client, salt)`, the client as
    /// `derive(client, server, salt)`; both get the same key.
    ///
    /// # Errors
    /// [`CryptoError`] if `salt` is not [`SALT_LEN`] bytes or the operating system's random
    /// number generator fails (the key's IV base is drawn from it).
    pub fn derive(own: &KeyPair, peer: &PublicKey, salt: &[u8]) -> Result<Self, CryptoError> {
        if salt.len() != SALT_LEN {
            return Err(CryptoError);
        }
        // SECURITY: the shared secret (the x-coordinate) is zeroized when `shared` drops; the
        // HKDF state (HMAC-SHA256 cores, built with sha2's `zeroize` feature) when `hkdf`
        // drops; the output key material via `Zeroizing`.
        let shared = own.diffie_hellman(peer);
        let hkdf = Hkdf::<Sha256>::new(Some(salt), shared.raw_secret_bytes());
        let mut okm = Zeroizing::new([0u8; KEY_LEN]);
        hkdf.expand(HKDF_INFO, okm.as_mut_slice())
            .map_err(|_| CryptoError)?;
        Self::from_key(&okm)
    }

    /// Builds a key from raw AES-256 key bytes (tests and tools; the handshake uses
    /// [`V1Key::derive`]). The argument is zeroized after use.
    ///
    /// # Errors
    /// [`CryptoError`] if the operating system's random number generator fails (the key's IV
    /// base is drawn from it).
    #[doc(hidden)]
    pub fn from_bytes(key: [u8; KEY_LEN]) -> Result<Self, CryptoError> {
        let key = Zeroizing::new(key);
        Self::from_key(&key)
    }

    fn from_key(key: &[u8; KEY_LEN]) -> Result<Self, CryptoError> {
        // No key without a random IV base: a fixed fallback would let two key objects holding
        // the same key bytes walk the same IVs (see `next_iv`).
        Ok(Self {
            cipher: Aes256GcmKey::new(key)?,
            iv_base: random_bytes()?,
            iv_count: AtomicU64::new(0),
        })
    }

    /// The next IV: the random base plus a per-key counter in its low 64 bits.
    ///
    /// SECURITY: GCM needs IVs that never repeat under one key. A counter guarantees that for
    /// this key object (2^64 messages) with no system call per message; the random 96-bit base
    /// keeps two objects holding the same key bytes (an application calling
    /// [`V1Key::from_bytes`] twice) from walking the same IV sequence, except with negligible
    /// probability. This is NIST SP 800-38D's deterministic construction with a random start.
    fn next_iv(&self) -> Result<[u8; IV_LEN], CryptoError> {
        let n = self.iv_count.fetch_add(1, Ordering::Relaxed);
        if n == u64::MAX {
            return Err(CryptoError);
        }
        let mut iv = self.iv_base;
        let mut low = [0u8; 8];
        low.copy_from_slice(&iv[4..]);
        let low = u64::from_be_bytes(low).wrapping_add(n);
        iv[4..].copy_from_slice(&low.to_be_bytes());
        Ok(iv)
    }

    /// Encrypts `plaintext` under a fresh IV (see `next_iv`), authenticating `aad` too (`None` and an
    /// empty slice are the same in GCM). Returns the IV and `ciphertext ‖ tag`.
    ///
    /// # Errors
    /// [`CryptoError`] if the operating system's random number generator fails.
    pub fn seal(
        &self,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<([u8; IV_LEN], Vec<u8>), CryptoError> {
        let iv = self.next_iv()?;
        let ct = self.seal_with_iv(&iv, plaintext, aad)?;
        Ok((iv, ct))
    }

    /// Encrypts with a caller-chosen IV. Only for tests against fixed vectors: reusing an IV
    /// under one key breaks GCM completely.
    ///
    /// # Errors
    /// [`CryptoError`] if the plaintext is too long for GCM.
    #[doc(hidden)]
    pub fn seal_with_iv(
        &self,
        iv: &[u8; IV_LEN],
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Vec<u8>, CryptoError> {
        let len = plaintext.len().checked_add(TAG_LEN).ok_or(CryptoError)?;
        let mut out = vec![0u8; len];
        self.cipher
            .seal_into(iv, aad.unwrap_or_default(), plaintext, &mut out)?;
        Ok(out)
    }

    /// Seals an already-serialized `{"event":..,"data":..}` frame for one client. Returns the
    /// complete outbound text `{"event":"encrypted","data":{"iv":"<b64>","ct":"<b64>"}}` (no
    /// AAD, as the spec's clients expect). [`V1Key::seal_frame_into`] is the same without the
    /// allocation.
    ///
    /// # Errors
    /// [`CryptoError`] if the random number generator fails or the frame is too long for GCM.
    pub fn seal_frame(&self, frame: &[u8]) -> Result<String, CryptoError> {
        let mut out = Vec::new();
        self.seal_frame_into(frame, &mut out)?;
        // Every byte written is ASCII, so this check cannot fail; it keeps the crate free of
        // `unsafe` at the cost of one fast scan.
        String::from_utf8(out).map_err(|_| CryptoError)
    }

    /// The length of [`V1Key::seal_frame`]'s output for a frame of `frame_len` bytes, or
    /// `None` if that does not fit in memory.
    pub fn sealed_len(frame_len: usize) -> Option<usize> {
        let raw_len = frame_len.checked_add(TAG_LEN)?;
        let ct_b64_len = base64::encoded_len(raw_len, true)?;
        (FRAME_HEAD.len() + IV_B64_LEN + FRAME_MID.len() + FRAME_TAIL.len()).checked_add(ct_b64_len)
    }

    /// [`V1Key::seal_frame`], appended to `out` (exactly [`V1Key::sealed_len`] bytes, all
    /// ASCII): the hot path of encrypted delivery, which builds the text straight into the
    /// connection's write buffer. The ciphertext is encrypted from `frame` into a staging
    /// buffer, then base64-encoded straight into `out`.
    ///
    /// # Errors
    /// [`CryptoError`] if the random number generator fails or the frame is too long for GCM;
    /// `out` is left as it was.
    pub fn seal_frame_into(&self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.seal_frame_with_iv(&self.next_iv()?, frame, out)
    }

    #[inline]
    fn seal_frame_with_iv(
        &self,
        iv: &[u8; IV_LEN],
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let total = Self::sealed_len(frame.len()).ok_or(CryptoError)?;
        let start = out.len();
        out.reserve(total);
        let mut sealed = || {
            out.extend_from_slice(FRAME_HEAD);
            let iv_at = out.len();
            // The IV (12 bytes: whole base64 groups) and `ciphertext ‖ tag` are encoded as one
            // run (one call of the encoder, whose per-call work costs more on short input than
            // moving a few bytes), placed so the ciphertext's text lands where it belongs: after
            // room for `FRAME_MID`. The IV's 16 characters then move to the front of that room
            // and `FRAME_MID` fills the rest.
            out.extend_from_slice(FRAME_MID);
            super::b64::push_encoded_with(out, IV_LEN + frame.len() + TAG_LEN, |raw| {
                let (iv_raw, ct) = raw.split_at_mut(IV_LEN);
                iv_raw.copy_from_slice(iv);
                self.cipher.seal_into(iv, &[], frame, ct)
            })?;
            let mid_at = iv_at + IV_B64_LEN;
            out.copy_within(iv_at + FRAME_MID.len()..mid_at + FRAME_MID.len(), iv_at);
            out[mid_at..mid_at + FRAME_MID.len()].copy_from_slice(FRAME_MID);
            out.extend_from_slice(FRAME_TAIL);
            Ok(())
        };
        let result = sealed();
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Decrypts a v1 `{iv, ct}` pair (both standard base64), checking the tag over `ct` and
    /// `aad`. Returns the plaintext.
    ///
    /// # Errors
    /// [`CryptoError`] for bad base64, an IV that is not 12 bytes, a ciphertext shorter than
    /// the tag, or a tag mismatch (wrong key, wrong AAD, any modified bit). All look alike.
    pub fn open(
        &self,
        iv_b64: &str,
        ct_b64: &str,
        aad: Option<&[u8]>,
    ) -> Result<Vec<u8>, CryptoError> {
        let iv = decode_iv(iv_b64)?;
        let mut buf = STANDARD.decode(ct_b64).map_err(|_| CryptoError)?;
        // SECURITY: the tag is compared in constant time, and on a mismatch the buffer is
        // cleared and dropped here, so no unauthenticated plaintext reaches the caller.
        let body_len = self
            .cipher
            .open_in_place(&iv, aad.unwrap_or_default(), &mut buf)?;
        buf.truncate(body_len);
        Ok(buf)
    }
}

/// Decodes a base64 IV, which must be exactly 16 characters encoding 12 bytes.
fn decode_iv(iv_b64: &str) -> Result<[u8; IV_LEN], CryptoError> {
    if iv_b64.len() != IV_B64_LEN {
        return Err(CryptoError);
    }
    let mut iv = [0u8; IV_LEN];
    let n = STANDARD
        .decode_slice(iv_b64, &mut iv)
        .map_err(|_| CryptoError)?;
    if n == IV_LEN {
        Ok(iv)
    } else {
        Err(CryptoError)
    }
}

/// Fills an array from the operating system's random number generator.
fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| CryptoError)?;
    Ok(bytes)
}

/// A fresh random HKDF salt for one handshake.
///
/// # Panics
/// If the operating system's random number generator fails, which modern systems do not do;
/// no input can cause it. [`server_handshake`] reports that case as an error instead.
pub fn generate_salt() -> [u8; SALT_LEN] {
    match random_bytes() {
        Ok(salt) => salt,
        Err(_) => panic!("operating system random number generator failed"),
    }
}

/// Server side of the built-in v1 handshake: imports the client's base64 public key (from
/// the `authenticate` payload's `publicKey`), picks a fresh random salt and derives the
/// per-client key.
///
/// Returns the key and the salt as base64; the `connected` event carries that salt and
/// `server.public_key_b64()` as `serverPublicKey`.
///
/// # Errors
/// [`CryptoError`] if the client key is not a strict 65-byte uncompressed P-256 point in
/// standard base64 (see [`PublicKey::from_b64`]) or the random number generator fails.
pub fn server_handshake(
    server: &KeyPair,
    client_public_b64: &str,
) -> Result<(V1Key, String), CryptoError> {
    let client = PublicKey::from_b64(client_public_b64)?;
    let salt = random_bytes::<SALT_LEN>()?;
    let key = V1Key::derive(server, &client, &salt)?;
    Ok((key, STANDARD.encode(salt)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> V1Key {
        V1Key::from_bytes([7u8; KEY_LEN]).expect("key")
    }

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    /// Parses a sealed frame into its iv and ct fields.
    fn fields(sealed: &str) -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(sealed).expect("sealed frame is JSON");
        assert_eq!(v["event"], "encrypted");
        let data = &v["data"];
        assert_eq!(data.as_object().map(|o| o.len()), Some(2));
        let field = |name: &str| data[name].as_str().expect("string field").to_owned();
        (field("iv"), field("ct"))
    }

    #[test]
    fn key_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<V1Key>();
    }

    #[test]
    fn seal_open_round_trip() {
        let k = key();
        for pt in [
            &b""[..],
            b"x",
            b"{\"event\":\"a\",\"data\":1}",
            &[0u8; 1000],
        ] {
            let (iv, ct) = k.seal(pt, None).expect("seal");
            assert_eq!(ct.len(), pt.len() + TAG_LEN);
            assert_eq!(k.open(&b64(&iv), &b64(&ct), None).expect("open"), pt);
        }
    }

    #[test]
    fn ivs_never_repeat_under_one_key() {
        let k = key();
        let (iv1, ct1) = k.seal(b"same", None).expect("seal");
        let (iv2, ct2) = k.seal(b"same", None).expect("seal");
        assert_ne!(iv1, iv2);
        assert_ne!(ct1, ct2);
        let ivs: std::collections::HashSet<_> = (0..10_000)
            .map(|_| k.seal(b"", None).expect("seal").0)
            .collect();
        assert_eq!(ivs.len(), 10_000);
        // Two objects with the same key bytes start from different random bases.
        let other = key();
        assert_ne!(
            other.seal(b"", None).expect("seal").0,
            key().seal(b"", None).expect("seal").0
        );
    }

    #[test]
    fn the_counter_wraps_within_the_low_64_bits_only() {
        let k = key();
        let mut base = k.iv_base;
        base[4..].copy_from_slice(&u64::MAX.to_be_bytes());
        let k = V1Key { iv_base: base, ..k };
        let first = k.next_iv().expect("iv");
        let second = k.next_iv().expect("iv");
        assert_eq!(first[..4], second[..4]);
        assert_eq!(second[4..], [0; 8]);
        k.iv_count.store(u64::MAX, Ordering::Relaxed);
        assert!(
            k.next_iv().is_err(),
            "never reuse: exhausted keys refuse to seal"
        );
    }

    #[test]
    fn aad_must_match() {
        let k = key();
        let (iv, ct) = k.seal(b"hello", Some(b"client-42")).expect("seal");
        let (iv, ct) = (b64(&iv), b64(&ct));
        assert_eq!(
            k.open(&iv, &ct, Some(b"client-42")).expect("open"),
            b"hello"
        );
        assert_eq!(k.open(&iv, &ct, Some(b"client-43")), Err(CryptoError));
        assert_eq!(k.open(&iv, &ct, None), Err(CryptoError));
        // No AAD and empty AAD are the same thing in GCM.
        let (iv, ct) = k.seal(b"hello", None).expect("seal");
        assert_eq!(
            k.open(&b64(&iv), &b64(&ct), Some(b"")).expect("open"),
            b"hello"
        );
    }

    #[test]
    fn wrong_key_fails() {
        let (iv, ct) = key().seal(b"hello", None).expect("seal");
        let other = V1Key::from_bytes([8u8; KEY_LEN]).expect("key");
        assert_eq!(other.open(&b64(&iv), &b64(&ct), None), Err(CryptoError));
    }

    #[test]
    fn any_bit_flip_in_iv_ct_or_tag_fails() {
        let k = key();
        let (iv, ct) = k.seal(b"attack at dawn", None).expect("seal");
        for i in 0..iv.len() * 8 {
            let mut bad = iv;
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(
                k.open(&b64(&bad), &b64(&ct), None),
                Err(CryptoError),
                "iv bit {i}"
            );
        }
        // Covers both the ciphertext body and the appended tag.
        for i in 0..ct.len() * 8 {
            let mut bad = ct.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(
                k.open(&b64(&iv), &b64(&bad), None),
                Err(CryptoError),
                "ct bit {i}"
            );
        }
    }

    #[test]
    fn malformed_input_fails_without_panic() {
        let k = key();
        let (iv, ct) = k.seal(b"hi!", None).expect("seal"); // 19 bytes: padded base64
        let (iv, ct) = (b64(&iv), b64(&ct));
        assert!(ct.ends_with('='));
        let short_ct = b64(&[0u8; TAG_LEN - 1]);
        let eleven = b64(&[0u8; 11]);
        let thirteen = b64(&[0u8; 13]);
        let cases: [(&str, &str); 9] = [
            (&iv, ""),                       // empty ct: shorter than the tag
            (&iv, &short_ct),                // 15 bytes
            (&iv, "!!!!"),                   // not base64
            (&iv, ct.trim_end_matches('=')), // unpadded
            ("", &ct),                       // empty iv
            (&eleven, &ct),                  // 11-byte iv
            (&thirteen, &ct),                // 13-byte iv
            ("AAAAAAAAAAAAAAA!", &ct),       // 16 chars, not base64
            ("AAAAAAAAAAAAAAA=", &ct),       // 16 chars, 11 bytes
        ];
        for (i, (iv, ct)) in cases.into_iter().enumerate() {
            assert_eq!(k.open(iv, ct, None), Err(CryptoError), "case {i}");
        }
        // Exactly a tag and nothing else: a valid empty message only if the tag verifies.
        assert_eq!(k.open(&iv, &b64(&[0u8; TAG_LEN]), None), Err(CryptoError));
    }

    #[test]
    fn seal_frame_matches_the_plain_construction_for_every_length() {
        let k = key();
        let iv = [0x5a; IV_LEN];
        // Lengths around every base64 remainder and across several in-place encode steps.
        for len in (0..=700).chain([4095, 4096, 70_034]) {
            let frame: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut sealed = b"prefix".to_vec();
            k.seal_frame_with_iv(&iv, &frame, &mut sealed)
                .expect("seal_frame");
            assert_eq!(
                sealed.len(),
                6 + V1Key::sealed_len(len).unwrap(),
                "len {len}"
            );
            let sealed = String::from_utf8(sealed.split_off(6)).unwrap();
            let ct = k.seal_with_iv(&iv, &frame, None).expect("seal");
            let expected = format!(
                r#"{{"event":"encrypted","data":{{"iv":"{}","ct":"{}"}}}}"#,
                b64(&iv),
                b64(&ct)
            );
            assert_eq!(sealed, expected, "len {len}");
        }
    }

    #[test]
    fn seal_frame_output_opens_to_the_frame() {
        let k = key();
        let frame = br#"{"event":"chat","data":{"text":"hi \"there\""}}"#;
        let sealed = k.seal_frame(frame).expect("seal_frame");
        let (iv, ct) = fields(&sealed);
        assert_eq!(k.open(&iv, &ct, None).expect("open"), frame);
        let again = k.seal_frame(frame).expect("seal_frame");
        assert_ne!(sealed, again, "fresh IV per frame");
    }

    #[test]
    fn derive_agrees_both_ways_and_checks_salt() {
        let server = KeyPair::generate();
        let client = KeyPair::generate();
        let salt = generate_salt();
        let s = V1Key::derive(&server, client.public_key(), &salt).expect("derive");
        let c = V1Key::derive(&client, server.public_key(), &salt).expect("derive");
        let (iv, ct) = s.seal(b"ping", None).expect("seal");
        assert_eq!(c.open(&b64(&iv), &b64(&ct), None).expect("open"), b"ping");
        // Another salt gives another key.
        let other = V1Key::derive(&client, server.public_key(), &generate_salt()).expect("derive");
        assert_eq!(other.open(&b64(&iv), &b64(&ct), None), Err(CryptoError));
        for bad_len in [0, 16, 31, 33, 64] {
            let salt = vec![1u8; bad_len];
            assert!(V1Key::derive(&server, client.public_key(), &salt).is_err());
        }
    }

    #[test]
    fn server_handshake_matches_client_derivation() {
        let server = KeyPair::generate();
        let client = KeyPair::generate();
        let (key, salt_b64) =
            server_handshake(&server, &client.public_key_b64()).expect("handshake");
        let salt = STANDARD.decode(&salt_b64).expect("salt is base64");
        assert_eq!(salt.len(), SALT_LEN);
        let client_key = V1Key::derive(&client, server.public_key(), &salt).expect("derive");
        let sealed = key.seal_frame(b"{\"event\":\"x\"}").expect("seal_frame");
        let (iv, ct) = fields(&sealed);
        assert_eq!(
            client_key.open(&iv, &ct, None).expect("open"),
            b"{\"event\":\"x\"}"
        );

        let (_, salt2) = server_handshake(&server, &client.public_key_b64()).expect("handshake");
        assert_ne!(salt_b64, salt2, "fresh salt per handshake");
        assert!(server_handshake(&server, "").is_err());
        assert!(server_handshake(&server, &server.public_key_b64()[1..]).is_err());
    }
}
