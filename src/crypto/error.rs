//! The one error every crypto operation returns.

/// A crypto operation failed.
///
/// Deliberately opaque: a bad key, bad base64, a wrong IV length, a short ciphertext and a
/// tag mismatch all look the same, so a peer probing with crafted input learns nothing from
/// the error (no padding/format oracle), and nothing secret can end up in a log line.
///
/// Only this crate constructs it; callers treat any `Err` as "drop the frame / close the
/// connection". Its `Display` is always `crypto operation failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("crypto operation failed")]
#[non_exhaustive]
pub struct CryptoError;
