//! Encryption profile v2 (`sealcast-v2`): an authenticated, forward-secret channel in both
//! directions that a browser can speak with WebCrypto alone.
//!
//! v1 is the spec's profile and stays for compatibility; v2 fixes what v1 cannot: the server key
//! is fresh per connection (forward secrecy), the whole handshake is bound into the keys
//! (transcript hash), both sides prove they derived the same keys (`fin`), the server can
//! optionally sign the transcript with a key the client pinned, and every frame in *both*
//! directions is a sealed record with an implicit sequence number, so replayed, reordered,
//! dropped, reflected or modified records fail. `SECURITY.md` states what it does and does not
//! promise.
//!
//! # The handshake
//!
//! Three messages, before `authenticate` (which then travels sealed):
//!
//! ```text
//! C → S  {"event":"handshake","data":{"v":["sealcast-v2"],"pub":C_PUB,"nonce":C_NONCE}}
//! S → C  {"event":"handshake","data":{"v":"sealcast-v2","pub":S_PUB,"nonce":S_NONCE,
//!                                      "sig":SIG?,"fin":S_FIN}}
//! C → S  record c2s #0, sealing {"event":"handshake","data":{"fin":C_FIN}}
//! C → S  record c2s #1, sealing {"event":"authenticate","data":{...}}   (and so on)
//! ```
//!
//! `C_PUB` / `S_PUB` are standard base64 of 65-byte uncompressed P-256 points (`S_PUB` fresh
//! for every connection), the nonces base64 of 32 random bytes, `SIG` base64 of a 64-byte raw
//! `r ‖ s` ECDSA P-256/SHA-256 signature, the `fin`s base64 of 32-byte HMAC-SHA256 tags.
//! `v` lists 1 to 8 version tokens (1 to 32 characters of `[A-Za-z0-9._-]`); the server
//! chooses `sealcast-v2` if it is offered, and fails the handshake otherwise. Unknown fields
//! in either hello are ignored and bound by nothing.
//!
//! # The key schedule
//!
//! ```text
//! th      = SHA-256("sealcast-v2 transcript" ‖ u8 n ‖ (u8 len ‖ offered_i)*n ‖ u8 len ‖ chosen
//!                   ‖ C_PUB(65) ‖ C_NONCE(32) ‖ S_PUB(65) ‖ S_NONCE(32) ‖ flags(1))
//!           flags: bit 0 = the server hello carries `sig`
//! prk     = HKDF-Extract(salt = C_NONCE ‖ S_NONCE, ikm = ECDH x-coordinate)
//! c2s     = HKDF-Expand(prk, "sealcast-v2 c2s"   ‖ th, 32)     traffic secret, client → server
//! s2c     = HKDF-Expand(prk, "sealcast-v2 s2c"   ‖ th, 32)     traffic secret, server → client
//! c_fin_k = HKDF-Expand(prk, "sealcast-v2 c fin" ‖ th, 32)
//! s_fin_k = HKDF-Expand(prk, "sealcast-v2 s fin" ‖ th, 32)
//! S_FIN   = HMAC-SHA256(s_fin_k, th)          C_FIN = HMAC-SHA256(c_fin_k, th)
//! SIG     = ECDSA-P256-SHA256(signing key, "sealcast-v2 server signature" ‖ 0x00 ‖ th)
//! per traffic secret ts (one epoch = 2^20 records):
//!   key   = HKDF-Expand(ts, "sealcast-v2 key", 32)        AES-256-GCM key
//!   iv    = HKDF-Expand(ts, "sealcast-v2 iv", 12)         IV base
//!   ts'   = HKDF-Expand(ts, "sealcast-v2 traffic upd", 32) next epoch's secret
//! ```
//!
//! # Records
//!
//! `{"event":"encrypted","data":{"ct":"<base64 ciphertext ‖ 16-byte tag>"}}`, sealing the
//! complete `{"event":..,"data":..}` text. No IV travels: each direction counts its records
//! from 0 (`seq`, u64), `nonce = iv ⊕ (0⁴ ‖ seq as u64 big-endian)`, and the AAD is
//! `"sealcast-v2" ‖ direction (0x01 client → server, 0x02 server → client) ‖ seq (u64 BE)`.
//! Both sides move to the next epoch's keys every [`REKEY_INTERVAL`] records and refuse to
//! seal or open record number [`MAX_RECORDS`] (the connection must close first).
//!
//! # Batched records
//!
//! A client that adds the token [`BATCH`] (`sealcast-v2-batch`) to its `v` list takes
//! batched server → client records: the server may seal frames that are queued together as one
//! record whose plaintext is a JSON array of them, `[{"event":..},{"event":..}]`, in the order
//! sent, at most [`MAX_BATCH_BYTES`]. A record is still one sequence number, and a plaintext
//! starting with `{` is still a single frame ([`frames`] tells them apart). The offer is part
//! of the transcript like every token, so stripping it fails the handshake; the server's hello
//! still chooses `sealcast-v2`, and a server that does not know the token ignores it. Client
//! → server records always carry one frame. One seal per batch instead of per frame is what
//! makes a busy fan-out to v2 clients cheap: the AEAD call's fixed cost, the record's wrapper
//! and the WebSocket frame header are paid once per batch.
//!
//! # Typestate
//!
//! [`Sealer`] and [`Opener`] (and [`Established`], which holds one of each) can only be built by
//! [`ServerHandshake::finish`] and [`ClientHandshake::finish`], after the peer's `fin` (and the
//! pinned signature, if any) verified: their constructors take a zero-sized proof value that
//! only the verifying code can create. The `#[doc(hidden)]` `*_for_testing` constructors are
//! the one exception, for tests and fuzzing with fixed keys.
//!
//! ```
//! use sealcast::crypto::v2::{ClientHandshake, ServerSigningKey, PinnedServerKey, accept,
//!     parse_client_hello, hello_data};
//!
//! let signing = ServerSigningKey::generate();
//! let pinned = PinnedServerKey::from_b64(&signing.public_key_b64())?;
//!
//! // Client: the first frame it sends.
//! let (client, client_hello) = ClientHandshake::start()?;
//! // Server: parse it, answer with a fresh key.
//! let hello = parse_client_hello(hello_data(&client_hello)?)?;
//! let (server, server_hello) = accept(&hello, Some(&signing))?;
//! // Client: verify the answer; its first record carries its own `fin`.
//! let (mut client, fin_record) = client.finish(hello_data(&server_hello)?, Some(&pinned))?;
//! // Server: the first record must verify; only then is the channel established.
//! let mut server = server.finish(&fin_record)?;
//!
//! let record = client.sealer().seal(br#"{"event":"authenticate","data":{"token":"t"}}"#)?;
//! let frame = server.opener().open(&record)?;
//! assert_eq!(frame, br#"{"event":"authenticate","data":{"token":"t"}}"#);
//! # Ok::<(), sealcast::crypto::CryptoError>(())
//! ```

mod handshake;
mod record;
mod schedule;
mod transcript;

#[doc(hidden)]
pub use handshake::accept_with;
pub use handshake::{
    ClientHandshake, Established, PinnedServerKey, ServerHandshake, ServerSigningKey, accept,
};
pub use record::{Batch, Opener, Sealer, frames};
pub use transcript::{ClientHello, hello_data, parse_client_hello};

/// The version token of this profile, as offered in the client hello's `v` list and chosen in
/// the server hello's `v`.
pub const VERSION: &str = "sealcast-v2";

/// The token a client adds to its hello's `v` list (after [`VERSION`]) to take batched
/// server → client records: several frames sealed as one record ([`Batch`], [`frames`]).
pub const BATCH: &str = "sealcast-v2-batch";

/// The largest plaintext of a batched record in bytes: frames are gathered while they fit
/// (a larger frame goes in a record of its own).
pub const MAX_BATCH_BYTES: usize = 16 * 1024;

/// The event name both hellos (and the client's sealed `fin`) use.
pub const HANDSHAKE_EVENT: &str = "handshake";

/// Records per direction sealed under one key before both sides move to the next epoch's key
/// (`ts' = HKDF-Expand(ts, "sealcast-v2 traffic upd")`): 2^20.
pub const REKEY_INTERVAL: u64 = 1 << 20;

/// Records per direction after which the channel refuses to seal or open (the hard limit):
/// 2^32. Record numbers run from 0 to `MAX_RECORDS - 1`.
pub const MAX_RECORDS: u64 = 1 << 32;

/// Length of each side's handshake nonce in bytes.
pub const NONCE_LEN: usize = 32;

/// Which way a record travels. Each direction has its own keys, IV bases and counter, and the
/// direction is part of every record's AAD, so a record cannot be reflected back to its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Records the client seals and the server opens.
    ClientToServer,
    /// Records the server seals and the client opens.
    ServerToClient,
}

impl Direction {
    /// The byte that stands for the direction in the AAD: 0x01 client → server, 0x02 server →
    /// client.
    pub const fn aad_byte(self) -> u8 {
        match self {
            Self::ClientToServer => 0x01,
            Self::ServerToClient => 0x02,
        }
    }
}
