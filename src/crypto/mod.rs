//! Cryptography: P-256 keys and the encryption profiles.
//!
//! This module owns every secret in sealcast and everything done with one: strict import of
//! peer public keys ([`PublicKey`]), the server's key pair ([`KeyPair`]), the v1
//! profile ([`v1`]: ECDH → HKDF-SHA256 → AES-256-GCM, wire-compatible with the spec's Ignis
//! helper) and the v2 profile ([`v2`]: per-connection keys, a transcript-bound key schedule,
//! sealed records with implicit sequence numbers in both directions, an optional pinned server
//! signing key). It is pure: no I/O, no tokio, axum or redis. P-256, HKDF, SHA-256 and HMAC
//! are RustCrypto's; AES-256-GCM, the per-message cipher, is AWS-LC's (`aead`).
//!
//! Rules that hold throughout:
//! - every failure is the one opaque [`CryptoError`], so no error says *why* input was bad;
//! - secrets (scalars, shared secrets, HKDF output, AES keys) are zeroized when dropped and
//!   never implement `Debug`;
//! - nothing a peer sends can make this module panic.
//!
//! ```
//! use sealcast::crypto::{KeyPair, V1Key, v1};
//!
//! let server = KeyPair::generate();
//! let client = KeyPair::generate();
//! // Server: from the client's `publicKey` to the per-client key and the `salt` to send.
//! let (key, salt_b64) = v1::server_handshake(&server, &client.public_key_b64())?;
//! let sealed = key.seal_frame(br#"{"event":"hello","data":1}"#)?;
//! # let _ = (sealed, salt_b64);
//! # Ok::<(), sealcast::crypto::CryptoError>(())
//! ```

mod aead;
mod b64;
mod error;
pub mod keys;
pub mod v1;
pub mod v2;

pub use error::CryptoError;
pub use keys::{KeyPair, PublicKey};
pub use v1::V1Key;
