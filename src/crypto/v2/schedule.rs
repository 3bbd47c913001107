//! The v2 key schedule, typed by stage (after rustls's `tls13/key_schedule.rs`):
//!
//! ```text
//! ECDH x-coordinate ──Extract(c_nonce ‖ s_nonce)──▶ HandshakeSecret (prk)
//!     ├─ Expand("sealcast-v2 c2s" ‖ th) ──▶ TrafficSecret ─┬─ Expand("sealcast-v2 key") ─▶ AES-256-GCM key
//!     ├─ Expand("sealcast-v2 s2c" ‖ th) ──▶ TrafficSecret  ├─ Expand("sealcast-v2 iv")  ─▶ IV base
//!     ├─ Expand("sealcast-v2 c fin" ‖ th) ─▶ FinKey         └─ Expand("sealcast-v2 traffic upd") ─▶ next TrafficSecret
//!     └─ Expand("sealcast-v2 s fin" ‖ th) ─▶ FinKey ──HMAC(th)──▶ fin
//! ```
//!
//! Each stage is its own type, so a traffic secret cannot be used as a fin key, nor the
//! handshake secret as either. Every secret is zeroized when dropped and none is `Debug`.

use hkdf::Hkdf;
use hmac::Mac as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::transcript::{HASH_LEN, TranscriptHash};
use super::{Direction, NONCE_LEN};
use crate::crypto::CryptoError;
use crate::crypto::aead::{Aes256GcmKey, KEY_LEN};

/// Length of the AES-GCM IV base.
pub(super) const IV_LEN: usize = 12;

const LABEL_C2S: &[u8] = b"sealcast-v2 c2s";
const LABEL_S2C: &[u8] = b"sealcast-v2 s2c";
const LABEL_C_FIN: &[u8] = b"sealcast-v2 c fin";
const LABEL_S_FIN: &[u8] = b"sealcast-v2 s fin";
const LABEL_KEY: &[u8] = b"sealcast-v2 key";
const LABEL_IV: &[u8] = b"sealcast-v2 iv";
const LABEL_UPDATE: &[u8] = b"sealcast-v2 traffic upd";

type HmacSha256 = hmac::Hmac<Sha256>;

/// `prk = HKDF-Extract(c_nonce ‖ s_nonce, shared)`: the root of one connection's keys.
///
/// SECURITY: the HKDF state (HMAC-SHA256 cores, built with sha2's and hmac's `zeroize`
/// features) is wiped when this drops.
pub(super) struct HandshakeSecret(Hkdf<Sha256>);

impl HandshakeSecret {
    /// Extracts from the ECDH shared secret, salted with both nonces (client's first).
    pub(super) fn extract(
        shared: &[u8],
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
    ) -> Self {
        let mut salt = [0u8; 2 * NONCE_LEN];
        salt[..NONCE_LEN].copy_from_slice(client_nonce);
        salt[NONCE_LEN..].copy_from_slice(server_nonce);
        Self(Hkdf::new(Some(&salt), shared))
    }

    fn expand(&self, label: &[u8], th: &TranscriptHash) -> Result<Secret, CryptoError> {
        let mut out = Secret::default();
        self.0
            .expand_multi_info(&[label, &th.0], out.0.as_mut_slice())
            .map_err(|_| CryptoError)?;
        Ok(out)
    }

    /// The traffic secret of one direction.
    pub(super) fn traffic(
        &self,
        direction: Direction,
        th: &TranscriptHash,
    ) -> Result<TrafficSecret, CryptoError> {
        let label = match direction {
            Direction::ClientToServer => LABEL_C2S,
            Direction::ServerToClient => LABEL_S2C,
        };
        self.expand(label, th).map(TrafficSecret)
    }

    /// The key of the `fin` the sender of `direction` computes (the client's for
    /// `ClientToServer`, the server's for `ServerToClient`).
    pub(super) fn fin_key(
        &self,
        direction: Direction,
        th: &TranscriptHash,
    ) -> Result<FinKey, CryptoError> {
        let label = match direction {
            Direction::ClientToServer => LABEL_C_FIN,
            Direction::ServerToClient => LABEL_S_FIN,
        };
        self.expand(label, th).map(FinKey)
    }
}

/// 32 secret bytes, zeroized on drop.
#[derive(Default)]
struct Secret(Zeroizing<[u8; HASH_LEN]>);

impl Secret {
    /// `HKDF-Expand(self, label, N)`.
    fn expand<const N: usize>(&self, label: &[u8]) -> Result<Zeroizing<[u8; N]>, CryptoError> {
        let hkdf = Hkdf::<Sha256>::from_prk(self.0.as_slice()).map_err(|_| CryptoError)?;
        let mut out = Zeroizing::new([0u8; N]);
        hkdf.expand(label, out.as_mut_slice())
            .map_err(|_| CryptoError)?;
        Ok(out)
    }
}

/// One direction's traffic secret for one epoch of [`super::REKEY_INTERVAL`] records.
pub(super) struct TrafficSecret(Secret);

impl TrafficSecret {
    /// Wraps raw bytes (tests and fuzzing with fixed keys only).
    pub(super) fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Self(Secret(Zeroizing::new(bytes)))
    }

    /// This epoch's AES-256-GCM cipher and IV base.
    pub(super) fn record_keys(&self) -> Result<(Aes256GcmKey, [u8; IV_LEN]), CryptoError> {
        let key = self.0.expand::<KEY_LEN>(LABEL_KEY)?;
        let iv = self.0.expand::<IV_LEN>(LABEL_IV)?;
        // SECURITY: the round keys and GHASH key are wiped when the cipher drops (see
        // `Aes256GcmKey`); `key` is wiped here.
        Ok((Aes256GcmKey::new(&key)?, *iv))
    }

    /// The next epoch's secret: `HKDF-Expand(self, "sealcast-v2 traffic upd", 32)`. The caller
    /// drops `self`, so old epochs' keys cannot be recomputed from the new state.
    pub(super) fn next(&self) -> Result<Self, CryptoError> {
        self.0
            .expand::<HASH_LEN>(LABEL_UPDATE)
            .map(|s| Self(Secret(s)))
    }
}

/// The key of one side's `fin` (an HMAC-SHA256 key).
pub(super) struct FinKey(Secret);

impl FinKey {
    /// `HMAC-SHA256(self, th)`.
    pub(super) fn tag(&self, th: &TranscriptHash) -> Result<[u8; HASH_LEN], CryptoError> {
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(self.0.0.as_slice())
            .map_err(|_| CryptoError)?;
        mac.update(&th.0);
        let mut tag = [0u8; HASH_LEN];
        tag.copy_from_slice(&mac.finalize().into_bytes());
        Ok(tag)
    }

    /// Checks a received `fin` against `th`.
    pub(super) fn verify(&self, th: &TranscriptHash, received: &[u8]) -> Result<(), CryptoError> {
        let expected = self.tag(th)?;
        // SECURITY: constant-time comparison, so timing reveals nothing about how much of a
        // forged tag was right. (`ct_eq` on slices of different lengths is simply false.)
        if bool::from(expected.as_slice().ct_eq(received)) {
            Ok(())
        } else {
            Err(CryptoError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5869 test case 1, to pin the HKDF construction the JS client reimplements.
    #[test]
    fn hkdf_matches_rfc5869_case_1() {
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let hk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
        let mut okm = [0u8; 42];
        hk.expand(&info, &mut okm).expect("expand");
        let hex: String = okm.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn stages_give_distinct_keys() {
        let hs = HandshakeSecret::extract(&[7; 32], &[1; 32], &[2; 32]);
        let th = TranscriptHash([3; 32]);
        let c2s = hs.traffic(Direction::ClientToServer, &th).expect("c2s");
        let s2c = hs.traffic(Direction::ServerToClient, &th).expect("s2c");
        assert_ne!(*c2s.0.0, *s2c.0.0);
        let next = c2s.next().expect("next");
        assert_ne!(*c2s.0.0, *next.0.0);
        let (_, iv1) = c2s.record_keys().expect("keys");
        let (_, iv2) = next.record_keys().expect("keys");
        assert_ne!(iv1, iv2);
        let cf = hs.fin_key(Direction::ClientToServer, &th).expect("c fin");
        let sf = hs.fin_key(Direction::ServerToClient, &th).expect("s fin");
        let tag = cf.tag(&th).expect("tag");
        assert_eq!(cf.verify(&th, &tag), Ok(()));
        assert_eq!(sf.verify(&th, &tag), Err(CryptoError));
        assert_eq!(cf.verify(&TranscriptHash([4; 32]), &tag), Err(CryptoError));
        assert_eq!(cf.verify(&th, &tag[..31]), Err(CryptoError));
        let mut flipped = tag;
        flipped[31] ^= 1;
        assert_eq!(cf.verify(&th, &flipped), Err(CryptoError));
    }
}
