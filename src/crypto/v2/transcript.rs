//! The two hellos on the wire (strict parsing, canonical encoding) and the transcript hash `th`
//! that binds everything offered and chosen.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use super::{BATCH, HANDSHAKE_EVENT, NONCE_LEN, VERSION};
use crate::crypto::{CryptoError, PublicKey};

/// Largest hello `data` accepted, in bytes. A genuine client hello is about 200 bytes; the
/// bound keeps parsing cost fixed whatever a peer sends.
const MAX_HELLO_BYTES: usize = 1024;
/// Most version tokens a client may offer.
const MAX_OFFERED: usize = 8;
/// Longest version token, in bytes.
const MAX_VERSION_LEN: usize = 32;
/// Length of a transcript hash, an HMAC tag (`fin`) and a traffic secret.
pub(super) const HASH_LEN: usize = 32;
/// Length of a raw `r ‖ s` P-256 signature.
pub(super) const SIG_LEN: usize = 64;
/// Domain separation for the transcript hash.
const TRANSCRIPT_LABEL: &[u8] = b"sealcast-v2 transcript";
/// Flag bit of the transcript: the server hello carries a signature.
const FLAG_SIGNED: u8 = 0x01;

/// A parsed, validated client hello: what the client offered.
///
/// Holding one means the versions are well-formed tokens, the key is a strict 65-byte
/// uncompressed point on P-256 (not the identity) and the nonce is 32 bytes.
#[derive(Debug, Clone)]
pub struct ClientHello {
    pub(super) offered: Vec<String>,
    pub(super) public: PublicKey,
    pub(super) nonce: [u8; NONCE_LEN],
}

impl ClientHello {
    /// The version tokens offered, in the client's order.
    pub fn offered(&self) -> &[String] {
        &self.offered
    }

    /// Whether `sealcast-v2` is among them.
    pub fn offers_v2(&self) -> bool {
        self.offered.iter().any(|v| v == VERSION)
    }

    /// Whether the client takes batched records: [`BATCH`] is among the tokens.
    pub fn offers_batch(&self) -> bool {
        self.offered.iter().any(|v| v == BATCH)
    }
}

#[derive(Deserialize)]
struct ClientHelloWire {
    v: Vec<String>,
    #[serde(rename = "pub")]
    public: String,
    nonce: String,
}

/// Parses the `data` of a client `handshake` frame:
/// `{"v":[<tokens>],"pub":"<b64 65 bytes>","nonce":"<b64 32 bytes>"}`.
///
/// This is the entry point for fuzzing the handshake parser: it never panics and bounds its
/// work by a 1 KiB input bound whatever the input.
///
/// # Errors
/// [`CryptoError`] for anything else: more than 1 KiB, not that JSON shape (duplicate fields
/// included), 0 or more than 8 versions or a malformed token, a key that
/// [`PublicKey::from_b64`] refuses (compressed, hybrid, off-curve, identity, wrong length,
/// non-canonical base64), or a nonce that is not 32 bytes. The hello need not offer v2; see
/// [`ClientHello::offers_v2`].
pub fn parse_client_hello(data: &str) -> Result<ClientHello, CryptoError> {
    // SECURITY: bound the input before handing it to the JSON parser.
    if data.len() > MAX_HELLO_BYTES {
        return Err(CryptoError);
    }
    let wire: ClientHelloWire = serde_json::from_str(data).map_err(|_| CryptoError)?;
    if wire.v.is_empty() || wire.v.len() > MAX_OFFERED || !wire.v.iter().all(|v| is_token(v)) {
        return Err(CryptoError);
    }
    Ok(ClientHello {
        offered: wire.v,
        public: PublicKey::from_b64(&wire.public)?,
        nonce: decode_fixed(&wire.nonce)?,
    })
}

/// The `data` text of a `{"event":"handshake","data":{...}}` frame, borrowed from `frame`.
///
/// # Errors
/// [`CryptoError`] if `frame` is larger than 1 KiB, not JSON of that shape, or its event is not
/// `handshake`.
pub fn hello_data(frame: &str) -> Result<&str, CryptoError> {
    #[derive(Deserialize)]
    struct Frame<'a> {
        #[serde(borrow)]
        event: &'a str,
        #[serde(borrow)]
        data: &'a RawValue,
    }
    if frame.len() > MAX_HELLO_BYTES + 64 {
        return Err(CryptoError);
    }
    let frame: Frame<'_> = serde_json::from_str(frame).map_err(|_| CryptoError)?;
    if frame.event != HANDSHAKE_EVENT {
        return Err(CryptoError);
    }
    Ok(frame.data.get())
}

/// The client hello frame for these values.
pub(super) fn encode_client_hello(
    offered: &[String],
    public: &PublicKey,
    nonce: &[u8; NONCE_LEN],
) -> Result<String, CryptoError> {
    // Tokens are `[A-Za-z0-9._-]`, so they need no escaping; checked rather than assumed.
    if offered.is_empty() || offered.len() > MAX_OFFERED || !offered.iter().all(|v| is_token(v)) {
        return Err(CryptoError);
    }
    let versions = offered
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(",");
    Ok(format!(
        r#"{{"event":"{HANDSHAKE_EVENT}","data":{{"v":[{versions}],"pub":"{}","nonce":"{}"}}}}"#,
        public.to_b64(),
        STANDARD.encode(nonce)
    ))
}

/// A parsed server hello, as the client sees it.
pub(super) struct ServerHello {
    pub(super) public: PublicKey,
    pub(super) nonce: [u8; NONCE_LEN],
    pub(super) sig: Option<[u8; SIG_LEN]>,
    pub(super) fin: [u8; HASH_LEN],
}

#[derive(Deserialize)]
struct ServerHelloWire {
    v: String,
    #[serde(rename = "pub")]
    public: String,
    nonce: String,
    #[serde(default)]
    sig: Option<String>,
    fin: String,
}

/// Parses the `data` of a server `handshake` frame.
///
/// # Errors
/// [`CryptoError`] unless it is `{"v":"sealcast-v2","pub","nonce","sig"?,"fin"}` with a strict
/// key, a 32-byte nonce, a 64-byte signature if present and a 32-byte `fin`.
pub(super) fn parse_server_hello(data: &str) -> Result<ServerHello, CryptoError> {
    if data.len() > MAX_HELLO_BYTES {
        return Err(CryptoError);
    }
    let wire: ServerHelloWire = serde_json::from_str(data).map_err(|_| CryptoError)?;
    // SECURITY: a client that offered v2 accepts nothing else (no downgrade).
    if wire.v != VERSION {
        return Err(CryptoError);
    }
    Ok(ServerHello {
        public: PublicKey::from_b64(&wire.public)?,
        nonce: decode_fixed(&wire.nonce)?,
        sig: wire.sig.as_deref().map(decode_fixed).transpose()?,
        fin: decode_fixed(&wire.fin)?,
    })
}

/// The server hello frame for these values.
pub(super) fn encode_server_hello(
    public: &PublicKey,
    nonce: &[u8; NONCE_LEN],
    sig: Option<&[u8; SIG_LEN]>,
    fin: &[u8; HASH_LEN],
) -> String {
    let sig = sig
        .map(|s| format!(r#""sig":"{}","#, STANDARD.encode(s)))
        .unwrap_or_default();
    format!(
        r#"{{"event":"{HANDSHAKE_EVENT}","data":{{"v":"{VERSION}","pub":"{}","nonce":"{}",{sig}"fin":"{}"}}}}"#,
        public.to_b64(),
        STANDARD.encode(nonce),
        STANDARD.encode(fin)
    )
}

/// The transcript hash `th`: not secret, but everything the keys are bound to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct TranscriptHash(pub(super) [u8; HASH_LEN]);

/// Everything offered and chosen, in the order both sides hash it.
pub(super) struct Transcript<'a> {
    pub(super) offered: &'a [String],
    pub(super) chosen: &'a str,
    pub(super) client_public: &'a PublicKey,
    pub(super) client_nonce: &'a [u8; NONCE_LEN],
    pub(super) server_public: &'a PublicKey,
    pub(super) server_nonce: &'a [u8; NONCE_LEN],
    pub(super) signed: bool,
}

impl Transcript<'_> {
    /// `th`; see the module docs for the exact layout. Variable-length fields are length-prefixed
    /// so no two transcripts hash the same bytes.
    pub(super) fn hash(&self) -> Result<TranscriptHash, CryptoError> {
        let mut h = Sha256::new();
        h.update(TRANSCRIPT_LABEL);
        h.update([u8::try_from(self.offered.len()).map_err(|_| CryptoError)?]);
        for v in self.offered {
            h.update([u8::try_from(v.len()).map_err(|_| CryptoError)?]);
            h.update(v.as_bytes());
        }
        h.update([u8::try_from(self.chosen.len()).map_err(|_| CryptoError)?]);
        h.update(self.chosen.as_bytes());
        h.update(self.client_public.to_raw());
        h.update(self.client_nonce);
        h.update(self.server_public.to_raw());
        h.update(self.server_nonce);
        h.update([if self.signed { FLAG_SIGNED } else { 0 }]);
        let mut th = [0u8; HASH_LEN];
        th.copy_from_slice(&h.finalize());
        Ok(TranscriptHash(th))
    }
}

/// A version token: 1 to 32 bytes of `[A-Za-z0-9._-]`.
fn is_token(v: &str) -> bool {
    (1..=MAX_VERSION_LEN).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Decodes canonical padded standard base64 of exactly `N` bytes.
pub(super) fn decode_fixed<const N: usize>(b64: &str) -> Result<[u8; N], CryptoError> {
    // SECURITY: check the encoded length first, so nothing longer is ever decoded.
    let encoded = base64::encoded_len(N, true).ok_or(CryptoError)?;
    if b64.len() != encoded {
        return Err(CryptoError);
    }
    // Room for one more byte than expected, so a short decode is caught, never a long one.
    let mut buf = [0u8; 66];
    if N + 1 > buf.len() {
        return Err(CryptoError);
    }
    let n = STANDARD
        .decode_slice(b64, &mut buf[..N + 1])
        .map_err(|_| CryptoError)?;
    if n != N {
        return Err(CryptoError);
    }
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[..N]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyPair;

    fn hello_json(v: &str, public: &str, nonce: &str) -> String {
        format!(r#"{{"v":{v},"pub":"{public}","nonce":"{nonce}"}}"#)
    }

    #[test]
    fn parses_a_valid_hello_and_ignores_unknown_fields() {
        let key = KeyPair::generate();
        let nonce = STANDARD.encode([9u8; 32]);
        let data = hello_json(r#"["sealcast-v2","v1"]"#, &key.public_key_b64(), &nonce);
        let hello = parse_client_hello(&data).expect("valid hello");
        assert!(hello.offers_v2());
        assert_eq!(hello.offered(), ["sealcast-v2", "v1"]);
        assert_eq!(hello.nonce, [9u8; 32]);
        let extra = data.replacen('{', r#"{"x":[1,2],"#, 1);
        assert!(parse_client_hello(&extra).is_ok());
        let only_v1 = hello_json(r#"["v1"]"#, &key.public_key_b64(), &nonce);
        assert!(!parse_client_hello(&only_v1).expect("parses").offers_v2());
    }

    #[test]
    fn rejects_malformed_hellos() {
        let key = KeyPair::generate().public_key_b64();
        let nonce = STANDARD.encode([9u8; 32]);
        let long_token = format!(r#"["{}"]"#, "a".repeat(33));
        let nine = format!("[{}]", [r#""a""#; 9].join(","));
        let cases = [
            hello_json("[]", &key, &nonce),
            hello_json(r#"[""]"#, &key, &nonce),
            hello_json(&long_token, &key, &nonce),
            hello_json(&nine, &key, &nonce),
            hello_json(r#"["sealcast v2"]"#, &key, &nonce),
            hello_json(r#"["sealcast-v2",1]"#, &key, &nonce),
            hello_json(r#""sealcast-v2""#, &key, &nonce),
            hello_json(r#"["sealcast-v2"]"#, &key, &STANDARD.encode([9u8; 31])),
            hello_json(r#"["sealcast-v2"]"#, &key, &STANDARD.encode([9u8; 33])),
            hello_json(r#"["sealcast-v2"]"#, &key[1..], &nonce),
            format!(r#"{{"v":["sealcast-v2"],"pub":"{key}","pub":"{key}","nonce":"{nonce}"}}"#),
            format!(r#"{{"v":["sealcast-v2"],"nonce":"{nonce}"}}"#),
            "null".to_owned(),
            "[]".to_owned(),
            "{".to_owned(),
            " ".repeat(2000),
        ];
        for (i, data) in cases.iter().enumerate() {
            assert!(parse_client_hello(data).is_err(), "case {i}: {data}");
        }
    }

    #[test]
    fn hello_data_extracts_the_payload() {
        let frame = r#"{"event":"handshake","data":{"a":1}}"#;
        assert_eq!(hello_data(frame), Ok(r#"{"a":1}"#));
        assert!(hello_data(r#"{"event":"authenticate","data":{}}"#).is_err());
        assert!(hello_data(r#"{"event":"handshake"}"#).is_err());
        assert!(hello_data("nope").is_err());
    }

    #[test]
    fn decode_fixed_is_strict() {
        assert_eq!(decode_fixed::<3>("AAEC"), Ok([0, 1, 2]));
        assert!(decode_fixed::<3>("AAE=").is_err());
        assert!(decode_fixed::<2>("AAE").is_err());
        assert!(
            decode_fixed::<2>("AAF=").is_err(),
            "non-canonical trailing bits"
        );
        assert!(decode_fixed::<32>(&STANDARD.encode([0u8; 32])[..43]).is_err());
    }

    #[test]
    fn transcript_binds_every_field() {
        let (c, s) = (KeyPair::generate(), KeyPair::generate());
        let offered = vec!["sealcast-v2".to_owned(), "v1".to_owned()];
        let base = Transcript {
            offered: &offered,
            chosen: VERSION,
            client_public: c.public_key(),
            client_nonce: &[1; 32],
            server_public: s.public_key(),
            server_nonce: &[2; 32],
            signed: false,
        };
        let th = base.hash().expect("hash");
        let fewer = vec!["sealcast-v2".to_owned()];
        let split = vec!["sealcast-v".to_owned(), "2v1".to_owned()];
        let variants = [
            Transcript {
                offered: &fewer,
                ..base
            },
            Transcript {
                offered: &split,
                ..base
            },
            Transcript {
                client_public: s.public_key(),
                server_public: c.public_key(),
                ..base
            },
            Transcript {
                client_nonce: &[2; 32],
                server_nonce: &[1; 32],
                ..base
            },
            Transcript {
                signed: true,
                ..base
            },
        ];
        for (i, t) in variants.iter().enumerate() {
            assert!(t.hash().expect("hash") != th, "variant {i}");
        }
    }
}
