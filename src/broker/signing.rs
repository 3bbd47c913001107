//! Optional HMAC-SHA256 on Redis envelopes, so write access to Redis is not write access to
//! every client.
//!
//! # Wire form (a sealcast addition; reference peers neither send nor check it)
//!
//! A signed envelope is the ordinary envelope JSON with one extra top-level field appended last:
//!
//! ```text
//! {"serverId":"s1","type":"room","target":"r","event":"e","data":{"a":1},"sig":"<base64>"}
//! ```
//!
//! `sig` is standard base64 (with padding) of `HMAC-SHA256(key, canonical)`, where `canonical`
//! is the envelope re-serialized without `sig`: compact JSON, fields in the order `serverId`,
//! `type`, `target` (omitted when absent), `event`, `data` (its raw JSON bytes exactly as
//! received, `null` when absent), `exclude` (omitted when absent) — which is exactly what
//! [`Envelope::to_json`] produces. The receiver parses the envelope, re-serializes it and checks
//! the tag in constant time, so it never has to trust byte offsets in the message.

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::protocol::Envelope;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The shortest signing key accepted, in bytes.
pub const MIN_SIGNING_KEY_BYTES: usize = 16;

/// Length of an HMAC-SHA256 tag, in bytes.
const TAG_BYTES: usize = 32;

/// A shared secret for signing and verifying envelopes. Only the keyed HMAC state is kept
/// (zeroized on drop); its `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey(HmacSha256);

/// Why a signing key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signing key must be at least {MIN_SIGNING_KEY_BYTES} bytes")]
pub struct SigningKeyTooShort;

impl SigningKey {
    /// Wraps `key`; it must have at least [`MIN_SIGNING_KEY_BYTES`] bytes.
    pub fn new(key: impl AsRef<[u8]>) -> Result<Self, SigningKeyTooShort> {
        let key = key.as_ref();
        if key.len() < MIN_SIGNING_KEY_BYTES {
            return Err(SigningKeyTooShort);
        }
        // HMAC accepts keys of any length, so this never fails.
        <HmacSha256 as KeyInit>::new_from_slice(key)
            .map(Self)
            .map_err(|_| SigningKeyTooShort)
    }

    fn mac(&self) -> HmacSha256 {
        self.0.clone()
    }

    /// Serializes `envelope` for the bus with its `sig` field appended.
    pub(crate) fn sign(&self, envelope: &Envelope) -> String {
        let mut json = envelope.to_json();
        let mut mac = self.mac();
        mac.update(json.as_bytes());
        let tag = B64.encode(mac.finalize().into_bytes());
        // `to_json` always yields an object, so it ends with `}`.
        if json.ends_with('}') {
            json.pop();
            json.push_str(",\"sig\":\"");
            json.push_str(&tag);
            json.push_str("\"}");
        }
        json
    }

    /// Checks the `sig` carried by `raw` against `envelope` (already parsed from `raw`).
    pub(crate) fn verify(&self, raw: &[u8], envelope: &Envelope) -> Result<(), SignatureError> {
        let sig = serde_json::from_slice::<Sig<'_>>(raw)
            .map_err(|_| SignatureError::Invalid)?
            .sig
            .ok_or(SignatureError::Missing)?;
        let tag = B64
            .decode(sig.as_bytes())
            .map_err(|_| SignatureError::Invalid)?;
        if tag.len() != TAG_BYTES {
            return Err(SignatureError::Invalid);
        }
        let mut mac = self.mac();
        mac.update(envelope.to_json().as_bytes());
        // SECURITY: constant-time comparison.
        mac.verify_slice(&tag).map_err(|_| SignatureError::Invalid)
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// Why an envelope's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignatureError {
    /// No `sig` field.
    #[error("envelope is not signed")]
    Missing,
    /// A `sig` that is not base64 of a 32-byte tag, or does not match.
    #[error("envelope signature is invalid")]
    Invalid,
}

/// The one field the signature pass reads; everything else is skipped.
#[derive(Deserialize)]
struct Sig<'a> {
    // A base64 tag never contains escapes, so borrowing works; an escaped value fails to parse
    // and is treated as invalid.
    #[serde(default, borrow)]
    sig: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Limits, MessageType};
    use serde_json::value::RawValue;

    fn envelope() -> Envelope {
        Envelope {
            server_id: "s1".into(),
            kind: MessageType::Room,
            target: Some("r".into()),
            event: "e".into(),
            data: Some(RawValue::from_string("{\"a\": [1, 2]}".into()).unwrap()),
            exclude: Some(vec!["c1".into()]),
        }
    }

    #[test]
    fn signed_envelope_round_trips_and_keeps_reference_fields() {
        let key = SigningKey::new(*b"0123456789abcdef").unwrap();
        let wire = key.sign(&envelope());
        assert!(wire.starts_with(r#"{"serverId":"s1","type":"room","target":"r","event":"e","data":{"a": [1, 2]},"exclude":["c1"],"sig":""#));
        let parsed = Envelope::parse(wire.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(key.verify(wire.as_bytes(), &parsed), Ok(()));
    }

    #[test]
    fn unsigned_tampered_and_wrong_key_are_refused() {
        let key = SigningKey::new(*b"0123456789abcdef").unwrap();
        let other = SigningKey::new(*b"fedcba9876543210").unwrap();
        let l = Limits::default();
        let plain = envelope().to_json();
        let parsed = Envelope::parse(plain.as_bytes(), &l).unwrap();
        assert_eq!(
            key.verify(plain.as_bytes(), &parsed),
            Err(SignatureError::Missing)
        );

        let wire = other.sign(&envelope());
        let parsed = Envelope::parse(wire.as_bytes(), &l).unwrap();
        assert_eq!(
            key.verify(wire.as_bytes(), &parsed),
            Err(SignatureError::Invalid)
        );

        let tampered = key
            .sign(&envelope())
            .replace("\"target\":\"r\"", "\"target\":\"q\"");
        let parsed = Envelope::parse(tampered.as_bytes(), &l).unwrap();
        assert_eq!(
            key.verify(tampered.as_bytes(), &parsed),
            Err(SignatureError::Invalid)
        );

        let garbage = plain.replace('}', ",\"sig\":\"!!\"}");
        let parsed = Envelope::parse(garbage.as_bytes(), &l).unwrap();
        assert_eq!(
            key.verify(garbage.as_bytes(), &parsed),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn short_keys_are_refused_and_never_printed() {
        assert!(SigningKey::new(b"short").is_err());
        let key = SigningKey::new(*b"0123456789abcdef").unwrap();
        assert!(!format!("{key:?}").contains("0123"));
    }
}
