//! The encryption seams of the server: the built-in v1 and v2 profiles, the spec's custom
//! handshake hook, and the outbound transformer.
//!
//! Built-in v1 (the default way): the server holds one P-256 key pair; a client that sends
//! `publicKey` in its `authenticate` payload gets a per-client AES-256-GCM key derived with a
//! fresh salt, `connected` (always plaintext) carries `serverPublicKey` and `salt`, and from then
//! on every message to it is sealed by its writer. Custom: a handshake hook returns
//! `{serverPublicKey, salt}` and an outbound transformer seals each message, as in the spec.
//!
//! Built-in v2 ([`V2Config`], `crypto::v2`): negotiated with its own `handshake` event before
//! `authenticate`; the session task runs it (see `session::channel`) and owns the opener, the
//! writer owns the sealer. Nothing of v2 goes through [`EncryptionConfig::handshake`].

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::Semaphore;

use super::hooks::{Hook, HookResult, call};
use crate::{
    crypto::{KeyPair, V1Key, v1, v2::ServerSigningKey},
    hub::{SealFrame, Sealer},
    protocol::encode_frame,
    session::wire,
};

/// What the custom handshake hook receives (the spec's `handshakeFn` options).
#[derive(Debug, Clone)]
pub struct HandshakeRequest {
    /// The client.
    pub client_id: String,
    /// The user the authenticate hook returned.
    pub user_id: Option<String>,
    /// The `authenticate` payload.
    pub data: Box<RawValue>,
}

impl HandshakeRequest {
    /// Deserializes the payload.
    pub fn data<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.get())
    }
}

/// What a successful custom handshake returns; both go to the client in `connected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeReply {
    /// The server's public key, base64.
    pub server_public_key: String,
    /// The salt, base64.
    pub salt: String,
}

/// What the outbound transformer receives for one message to one encrypted client.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// The receiving client.
    pub client_id: String,
    /// Its user.
    pub user_id: Option<String>,
    /// The event.
    pub event: String,
    /// The payload, raw JSON.
    pub data: Box<RawValue>,
}

/// A transformed message: sent as `{event, data}`.
#[derive(Debug, Clone)]
pub struct Transformed {
    /// The event to send (e.g. `encrypted`).
    pub event: String,
    /// The payload to send, raw JSON.
    pub data: Box<RawValue>,
}

pub(crate) type HandshakeHook = Hook<HandshakeRequest, Option<HandshakeReply>>;
pub(crate) type TransformHook = Hook<OutboundRequest, Option<Transformed>>;

/// Settings of the built-in encryption v2 (`sealcast-v2`; see `SECURITY.md`).
///
/// ```
/// use sealcast::{crypto::v2::ServerSigningKey, server::V2Config};
///
/// let key = ServerSigningKey::generate();
/// let pin = key.public_key_b64(); // give this to clients (`serverSigningKey` in the JS client)
/// let config = V2Config::new().signing_key(key).required(true);
/// # let _ = (pin, config);
/// ```
#[derive(Clone, Default)]
pub struct V2Config {
    /// Signs every server hello's transcript, so clients that pinned the public half
    /// authenticate the server. Defaults to `None`: v2 then still gives forward secrecy,
    /// integrity and replay protection against a passive network, but an active
    /// man-in-the-middle can impersonate the server to clients that pin nothing.
    pub signing_key: Option<Arc<ServerSigningKey>>,
    /// Refuses every client that does not complete a v2 handshake before `authenticate`, v1 and
    /// plaintext clients included (`Encryption handshake failed`, 4004). Defaults to `false`.
    pub required: bool,
}

impl V2Config {
    /// No signing key, not required.
    pub fn new() -> Self {
        Self::default()
    }

    /// Signs server hellos with `key` (see [`V2Config::signing_key`](#structfield.signing_key)).
    pub fn signing_key(mut self, key: ServerSigningKey) -> Self {
        self.signing_key = Some(Arc::new(key));
        self
    }

    /// Sets [`V2Config::required`](#structfield.required).
    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }
}

impl std::fmt::Debug for V2Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SECURITY: only the public half of the signing key is ever printed.
        f.debug_struct("V2Config")
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|k| k.public_key_b64()),
            )
            .field("required", &self.required)
            .finish()
    }
}

/// The encryption a server was built with.
#[derive(Clone, Default)]
pub(crate) struct EncryptionConfig {
    /// The built-in v1 handshake's server key.
    pub(crate) v1: Option<Arc<KeyPair>>,
    /// The built-in v2 profile, when enabled.
    pub(crate) v2: Option<V2Config>,
    pub(crate) handshake: Option<HandshakeHook>,
    pub(crate) transformer: Option<Transformer>,
}

/// The outbound transformer with its concurrency bound.
#[derive(Clone)]
pub(crate) struct Transformer {
    pub(crate) hook: TransformHook,
    /// At most `encrypted_batch_limit` transformer calls in flight, server-wide.
    pub(crate) permits: Arc<Semaphore>,
}

impl Transformer {
    /// Runs the transformer for one message; `None` drops the message (the transformer failed).
    pub(crate) async fn apply(&self, request: OutboundRequest, original: &str) -> Option<String> {
        let Ok(_permit) = self.permits.acquire().await else {
            return None;
        };
        match call("outbound transformer", &self.hook, request).await {
            Ok(Some(t)) => Some(encode_frame(&t.event, &t.data)),
            // Nothing returned: send unchanged.
            Ok(None) => Some(original.to_owned()),
            Err(e) => {
                tracing::warn!(error = %e, "outbound transformer failed; message dropped");
                None
            }
        }
    }
}

impl SealFrame for V1Key {
    fn seal_wire(&self, frame: &[u8], out: &mut Vec<u8>) -> bool {
        V1Key::sealed_len(frame.len()).is_some_and(|len| {
            wire::push_text_frame_with(out, len, |out| self.seal_frame_into(frame, out))
        })
    }
}

/// A handshake that succeeded: how to seal, and what `connected` tells the client.
pub(crate) struct Established {
    pub(crate) sealer: Sealer,
    pub(crate) server_public_key: String,
    pub(crate) salt: String,
}

/// How the handshake step ended.
pub(crate) enum HandshakeResult {
    /// Encryption is set up.
    Established(Established),
    /// The client stays on plaintext (it offered no key and encryption is optional).
    Plaintext,
    /// Close with 4004; `notify` sends `Encryption handshake failed` first.
    Failed { notify: bool },
}

#[derive(Deserialize)]
struct Offer {
    #[serde(rename = "publicKey")]
    public_key: Option<serde_json::Value>,
}

impl EncryptionConfig {
    pub(crate) fn is_available(&self) -> bool {
        self.v1.is_some() || self.handshake.is_some()
    }

    /// Runs the handshake for an authenticated client.
    pub(crate) async fn handshake(
        &self,
        required: bool,
        client_id: &str,
        user_id: Option<&str>,
        data: &RawValue,
    ) -> HandshakeResult {
        if let Some(hook) = &self.handshake {
            let request = HandshakeRequest {
                client_id: client_id.to_owned(),
                user_id: user_id.map(str::to_owned),
                data: data.to_owned(),
            };
            return match call("handshake", hook, request).await {
                Ok(Some(reply)) => HandshakeResult::Established(Established {
                    sealer: Sealer::Transform,
                    server_public_key: reply.server_public_key,
                    salt: reply.salt,
                }),
                Ok(None) if !required => HandshakeResult::Plaintext,
                Ok(None) => HandshakeResult::Failed { notify: true },
                Err(e) => {
                    tracing::warn!(client = %client_id, error = %e, "handshake hook failed");
                    HandshakeResult::Failed { notify: true }
                }
            };
        }
        let Some(server_key) = &self.v1 else {
            if required && self.v2.is_some() {
                // A v2 server requiring encryption, and a client that skipped the v2 handshake.
                return HandshakeResult::Failed { notify: true };
            }
            if required {
                tracing::error!("require_encryption is set but no handshake is configured");
                return HandshakeResult::Failed { notify: false };
            }
            return HandshakeResult::Plaintext;
        };
        let offer = serde_json::from_str::<Offer>(data.get())
            .ok()
            .and_then(|o| o.public_key);
        let public_key = match offer {
            None | Some(serde_json::Value::Null) if !required => return HandshakeResult::Plaintext,
            Some(serde_json::Value::String(key)) => key,
            // A missing key when required, or a key that is not a string.
            _ => return HandshakeResult::Failed { notify: true },
        };
        // SECURITY: strict import (65-byte uncompressed, on curve); one opaque failure.
        match v1::server_handshake(server_key, &public_key) {
            Ok((key, salt)) => HandshakeResult::Established(Established {
                sealer: Sealer::Frame(Box::new(key)),
                server_public_key: server_key.public_key_b64(),
                salt,
            }),
            Err(_) => HandshakeResult::Failed { notify: true },
        }
    }
}

/// Result type of the handshake hook, for the builder's bounds.
pub type HandshakeHookResult = HookResult<Option<HandshakeReply>>;
/// Result type of the outbound transformer, for the builder's bounds.
pub type TransformHookResult = HookResult<Option<Transformed>>;

#[cfg(test)]
mod tests {
    use tungstenite::protocol::frame::FrameHeader;

    use super::*;

    /// The writer's v1 path: one complete text frame, appended after what the buffer holds,
    /// whose payload is the sealed message.
    #[test]
    fn seal_wire_appends_a_frame_that_opens_to_the_message() {
        let key = V1Key::from_bytes([7; 32]).expect("key");
        for len in [0usize, 60, 200, 70_000] {
            let message = format!(r#"{{"event":"m","data":"{}"}}"#, "x".repeat(len));
            let mut out = b"before".to_vec();
            assert!(key.seal_wire(message.as_bytes(), &mut out));
            let mut cursor = std::io::Cursor::new(&out[6..]);
            let (header, payload_len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(header.is_final && header.mask.is_none());
            let payload = &out[6 + cursor.position() as usize..];
            assert_eq!(payload.len() as u64, payload_len);
            let sealed: serde_json::Value = serde_json::from_slice(payload).unwrap();
            assert_eq!(sealed["event"], "encrypted");
            let opened = key
                .open(
                    sealed["data"]["iv"].as_str().unwrap(),
                    sealed["data"]["ct"].as_str().unwrap(),
                    None,
                )
                .unwrap();
            assert_eq!(opened, message.as_bytes());
        }
    }
}
