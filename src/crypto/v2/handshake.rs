//! The v2 handshake on both sides, the server's signing key and the client's pinned copy of
//! it, and the proof type that gates [`Established`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::elliptic_curve::Generate as _;
use serde::Deserialize;
use zeroize::Zeroize as _;

use super::record::{Opener, RecordLayer, Sealer};
use super::schedule::{FinKey, HandshakeSecret, TrafficSecret};
use super::transcript::{
    ClientHello, HASH_LEN, SIG_LEN, Transcript, TranscriptHash, decode_fixed, encode_client_hello,
    encode_server_hello, parse_server_hello,
};
use super::{Direction, HANDSHAKE_EVENT, NONCE_LEN, VERSION};
use crate::crypto::{CryptoError, KeyPair, PublicKey};

/// Domain separation for the server's signature over `th`.
const SIG_CONTEXT: &[u8] = b"sealcast-v2 server signature\0";

/// Proof that a handshake verified: the peer's `fin` matched (and, on a pinning client, the
/// server's signature). Zero-sized; its field is private to this module, so only the
/// verification paths below can create one, and [`Sealer`]/[`Opener`] constructors demand it.
pub(super) struct Verified(());

/// An established v2 channel: the sealer for the own direction and the opener for the peer's.
///
/// Only [`ServerHandshake::finish`] and [`ClientHandshake::finish`] create one. Split it with
/// [`Established::into_parts`] to give the sealer to the writer and the opener to the reader.
pub struct Established {
    sealer: Sealer,
    opener: Opener,
}

impl Established {
    fn new(
        own: TrafficSecret,
        own_direction: Direction,
        own_seq: u64,
        peer: TrafficSecret,
        peer_seq: u64,
        proof: Verified,
    ) -> Result<Self, CryptoError> {
        let peer_direction = match own_direction {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        };
        // `Verified` is not `Clone`: the second proof is made here, from the first.
        let second = Verified(());
        Ok(Self {
            sealer: Sealer::new(RecordLayer::new(own, own_direction, own_seq)?, proof),
            opener: Opener::new(RecordLayer::new(peer, peer_direction, peer_seq)?, second),
        })
    }

    /// The sealer for records this side sends.
    pub fn sealer(&mut self) -> &mut Sealer {
        &mut self.sealer
    }

    /// The opener for records the peer sends.
    pub fn opener(&mut self) -> &mut Opener {
        &mut self.opener
    }

    /// Splits the channel so each half can be owned by a different task.
    pub fn into_parts(self) -> (Sealer, Opener) {
        (self.sealer, self.opener)
    }
}

// ---- server signing key and its pinned copy ----------------------------------------------

/// The server's long-term ECDSA P-256 signing key. With one configured, every server hello
/// carries `sig`, a signature over the transcript, which clients that pinned the public half
/// ([`PinnedServerKey`]) verify.
///
/// Neither `Debug` nor `Clone`; the scalar is zeroized on drop.
pub struct ServerSigningKey {
    /// SECURITY: ecdsa's `SigningKey` zeroizes its scalar on drop.
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl ServerSigningKey {
    /// A fresh key from the operating system's random number generator.
    ///
    /// # Panics
    /// If the operating system's random number generator fails, which modern systems do not
    /// do; no input can cause it.
    pub fn generate() -> Self {
        let mut scalar = p256::NonZeroScalar::generate();
        let key = p256::ecdsa::SigningKey::from(scalar);
        // SECURITY: `NonZeroScalar` is `Copy` without drop glue; wipe our copy.
        scalar.zeroize();
        Self::from_key(key)
    }

    /// Imports a key from its 32-byte big-endian secret scalar.
    ///
    /// # Errors
    /// [`CryptoError`] unless `bytes` is exactly 32 bytes encoding a scalar in `[1, n-1]`.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError);
        }
        p256::ecdsa::SigningKey::from_slice(bytes)
            .map(Self::from_key)
            .map_err(|_| CryptoError)
    }

    fn from_key(key: p256::ecdsa::SigningKey) -> Self {
        let point = key.verifying_key().to_sec1_point(false);
        let public = PublicKey::from_raw(point.as_bytes());
        // The point of a valid scalar always imports; fall back to an unusable key otherwise.
        match public {
            Ok(public) => Self { key, public },
            Err(_) => unreachable!("the public key of a valid scalar is a valid point"),
        }
    }

    /// The public half as standard base64 of the 65-byte uncompressed point: what clients pin
    /// (`serverSigningKey` in the JS client).
    pub fn public_key_b64(&self) -> String {
        self.public.to_b64()
    }

    /// Signs `th`: raw 64-byte `r ‖ s` (WebCrypto's ECDSA format).
    fn sign(&self, th: &TranscriptHash) -> Result<[u8; SIG_LEN], CryptoError> {
        let sig: p256::ecdsa::Signature = self
            .key
            .try_sign(&signed_message(th))
            .map_err(|_| CryptoError)?;
        let mut out = [0u8; SIG_LEN];
        out.copy_from_slice(&sig.to_bytes());
        Ok(out)
    }
}

/// A client's pinned copy of the server's signing public key.
#[derive(Clone)]
pub struct PinnedServerKey {
    key: p256::ecdsa::VerifyingKey,
    public: PublicKey,
}

impl std::fmt::Debug for PinnedServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PinnedServerKey")
            .field(&self.public.to_b64())
            .finish()
    }
}

impl PinnedServerKey {
    /// Imports the base64 65-byte uncompressed point [`ServerSigningKey::public_key_b64`]
    /// produces.
    ///
    /// # Errors
    /// [`CryptoError`] for anything [`PublicKey::from_b64`] refuses.
    pub fn from_b64(b64: &str) -> Result<Self, CryptoError> {
        let public = PublicKey::from_b64(b64)?;
        let key = p256::ecdsa::VerifyingKey::from_affine(*public.point().as_affine())
            .map_err(|_| CryptoError)?;
        Ok(Self { key, public })
    }

    fn verify(&self, th: &TranscriptHash, sig: &[u8; SIG_LEN]) -> Result<(), CryptoError> {
        // `from_slice` refuses r or s of zero or not below the group order.
        let sig = p256::ecdsa::Signature::from_slice(sig).map_err(|_| CryptoError)?;
        self.key
            .verify(&signed_message(th), &sig)
            .map_err(|_| CryptoError)
    }
}

/// `"sealcast-v2 server signature" ‖ 0x00 ‖ th`: what the server signs.
fn signed_message(th: &TranscriptHash) -> [u8; SIG_CONTEXT.len() + HASH_LEN] {
    let mut msg = [0u8; SIG_CONTEXT.len() + HASH_LEN];
    msg[..SIG_CONTEXT.len()].copy_from_slice(SIG_CONTEXT);
    msg[SIG_CONTEXT.len()..].copy_from_slice(&th.0);
    msg
}

// ---- server side --------------------------------------------------------------------------

/// The server after sending its hello, waiting for the client's first record (its `fin`).
///
/// Holds the connection's keys; not `Debug`, zeroized on drop.
pub struct ServerHandshake {
    /// The client offered [`BATCH`](super::BATCH).
    batches: bool,
    th: TranscriptHash,
    client_fin: FinKey,
    c2s: TrafficSecret,
    s2c: TrafficSecret,
}

/// Server side of the handshake: answers a parsed client hello with a fresh per-connection key
/// and nonce. Returns the state that waits for the client's `fin` and the server hello frame
/// to send (plaintext).
///
/// # Errors
/// [`CryptoError`] if the hello does not offer `sealcast-v2` (a client must not be talked down
/// to anything else through this event), or the random number generator fails.
pub fn accept(
    hello: &ClientHello,
    signing: Option<&ServerSigningKey>,
) -> Result<(ServerHandshake, String), CryptoError> {
    let nonce = random_nonce()?;
    accept_with(hello, signing, KeyPair::generate(), nonce)
}

/// [`accept`] with a caller-chosen ephemeral key and nonce, for test vectors only: reusing
/// either across connections destroys forward secrecy and key separation.
///
/// # Errors
/// As [`accept`].
#[doc(hidden)]
pub fn accept_with(
    hello: &ClientHello,
    signing: Option<&ServerSigningKey>,
    ephemeral: KeyPair,
    nonce: [u8; NONCE_LEN],
) -> Result<(ServerHandshake, String), CryptoError> {
    // SECURITY: only v2 is ever chosen here; a hello that does not offer it fails.
    if !hello.offers_v2() {
        return Err(CryptoError);
    }
    let transcript = Transcript {
        offered: &hello.offered,
        chosen: VERSION,
        client_public: &hello.public,
        client_nonce: &hello.nonce,
        server_public: ephemeral.public_key(),
        server_nonce: &nonce,
        signed: signing.is_some(),
    };
    let th = transcript.hash()?;
    let secret = {
        // SECURITY: forward secrecy. The ephemeral scalar is used for this one ECDH and dropped
        // (zeroized) at the end of this block, as is the shared secret.
        let shared = ephemeral.diffie_hellman(&hello.public);
        HandshakeSecret::extract(shared.raw_secret_bytes(), &hello.nonce, &nonce)
    };
    let server_fin = secret.fin_key(Direction::ServerToClient, &th)?.tag(&th)?;
    let sig = signing.map(|k| k.sign(&th)).transpose()?;
    let frame = encode_server_hello(ephemeral.public_key(), &nonce, sig.as_ref(), &server_fin);
    let state = ServerHandshake {
        batches: hello.offers_batch(),
        client_fin: secret.fin_key(Direction::ClientToServer, &th)?,
        c2s: secret.traffic(Direction::ClientToServer, &th)?,
        s2c: secret.traffic(Direction::ServerToClient, &th)?,
        th,
    };
    Ok((state, frame))
}

/// The sealed plaintext of the client's first record.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinFrame {
    event: String,
    data: FinData,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinData {
    fin: String,
}

impl ServerHandshake {
    /// Opens the client's first record, which must seal
    /// `{"event":"handshake","data":{"fin":"<b64 32 bytes>"}}`, and checks the `fin` in
    /// constant time. Only then is the channel [`Established`]; the opener continues at client
    /// record 1 (`authenticate`), the sealer starts at server record 0.
    ///
    /// # Errors
    /// [`CryptoError`] if the record does not open as client record 0, is not that frame, or
    /// the `fin` does not match this transcript.
    pub fn finish(self, first_record: &str) -> Result<Established, CryptoError> {
        // A bare record layer: no `Opener` exists until the fin below has verified.
        let mut c2s = RecordLayer::new(self.c2s, Direction::ClientToServer, 0)?;
        let plaintext = c2s.open_record(first_record)?;
        let frame: FinFrame = serde_json::from_slice(&plaintext).map_err(|_| CryptoError)?;
        if frame.event != HANDSHAKE_EVENT {
            return Err(CryptoError);
        }
        let fin: [u8; HASH_LEN] = decode_fixed(&frame.data.fin)?;
        self.client_fin.verify(&self.th, &fin)?;
        // SECURITY: the only place the server mints the proof: the client's fin matched.
        let s2c = RecordLayer::new(self.s2c, Direction::ServerToClient, 0)?;
        Ok(Established {
            sealer: Sealer::new(s2c, Verified(())).with_batches(self.batches),
            opener: Opener::new(c2s, Verified(())),
        })
    }
}

// ---- client side --------------------------------------------------------------------------

/// The client after sending its hello, waiting for the server's.
///
/// Holds the ephemeral secret; not `Debug`, zeroized on drop.
pub struct ClientHandshake {
    key: KeyPair,
    nonce: [u8; NONCE_LEN],
    offered: Vec<String>,
}

impl ClientHandshake {
    /// Starts a handshake with a fresh key and nonce, offering `sealcast-v2`. Returns the state
    /// and the hello frame to send first.
    ///
    /// # Errors
    /// [`CryptoError`] if the random number generator fails.
    pub fn start() -> Result<(Self, String), CryptoError> {
        Self::start_with(KeyPair::generate(), random_nonce()?, &[VERSION])
    }

    /// [`ClientHandshake::start`] offering batched records too (`sealcast-v2` and
    /// [`BATCH`](super::BATCH)): a server that knows the token may then seal several frames
    /// in one record, so every record the opener opens goes through [`super::frames`].
    ///
    /// # Errors
    /// [`CryptoError`] if the random number generator fails.
    pub fn start_batched() -> Result<(Self, String), CryptoError> {
        Self::start_with(
            KeyPair::generate(),
            random_nonce()?,
            &[VERSION, super::BATCH],
        )
    }

    /// [`ClientHandshake::start`] with a caller-chosen key, nonce and offer, for test vectors
    /// and negative tests only.
    ///
    /// # Errors
    /// [`CryptoError`] if `offered` is empty, longer than 8, or holds a token that is not 1 to 32
    /// characters of `[A-Za-z0-9._-]`.
    #[doc(hidden)]
    pub fn start_with(
        key: KeyPair,
        nonce: [u8; NONCE_LEN],
        offered: &[&str],
    ) -> Result<(Self, String), CryptoError> {
        let offered: Vec<String> = offered.iter().map(|v| (*v).to_owned()).collect();
        let frame = encode_client_hello(&offered, key.public_key(), &nonce)?;
        Ok((
            Self {
                key,
                nonce,
                offered,
            },
            frame,
        ))
    }

    /// Verifies the server hello's `data`: the version, the server's `fin` (constant time) and,
    /// when `pinned` is given, its signature (which is then mandatory). Returns the channel and
    /// the first record to send: client record 0, sealing this side's `fin`. The sealer
    /// continues at record 1.
    ///
    /// # Errors
    /// [`CryptoError`] if the hello is malformed, chooses anything but `sealcast-v2`, carries a
    /// bad key, a `fin` that does not match, or (when pinning) no signature or a bad one.
    pub fn finish(
        self,
        server_hello_data: &str,
        pinned: Option<&PinnedServerKey>,
    ) -> Result<(Established, String), CryptoError> {
        let hello = parse_server_hello(server_hello_data)?;
        let transcript = Transcript {
            offered: &self.offered,
            chosen: VERSION,
            client_public: self.key.public_key(),
            client_nonce: &self.nonce,
            server_public: &hello.public,
            server_nonce: &hello.nonce,
            signed: hello.sig.is_some(),
        };
        let th = transcript.hash()?;
        let secret = {
            let shared = self.key.diffie_hellman(&hello.public);
            HandshakeSecret::extract(shared.raw_secret_bytes(), &self.nonce, &hello.nonce)
        };
        secret
            .fin_key(Direction::ServerToClient, &th)?
            .verify(&th, &hello.fin)?;
        if let Some(pinned) = pinned {
            // SECURITY: a pinning client requires the signature; stripping it fails here.
            let sig = hello.sig.as_ref().ok_or(CryptoError)?;
            pinned.verify(&th, sig)?;
        }
        let client_fin = secret.fin_key(Direction::ClientToServer, &th)?.tag(&th)?;
        let mut channel = Established::new(
            secret.traffic(Direction::ClientToServer, &th)?,
            Direction::ClientToServer,
            0,
            secret.traffic(Direction::ServerToClient, &th)?,
            0,
            Verified(()),
        )?;
        let fin_frame = format!(
            r#"{{"event":"{HANDSHAKE_EVENT}","data":{{"fin":"{}"}}}}"#,
            STANDARD.encode(client_fin)
        );
        let record = channel.sealer().seal(fin_frame.as_bytes())?;
        Ok((channel, record))
    }
}

/// 32 bytes from the operating system's random number generator.
fn random_nonce() -> Result<[u8; NONCE_LEN], CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| CryptoError)?;
    Ok(nonce)
}
