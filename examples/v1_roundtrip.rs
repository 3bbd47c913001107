//! A line-oriented v1 crypto tool, so other implementations (the JavaScript client's tests)
//! can check interoperability with sealcast's `crypto::v1` from outside Rust.
//!
//! Reads one JSON request per line on stdin and writes one JSON response line per request
//! on stdout (flushed after each); exits at end of input. Blank lines are skipped.
//!
//! ```text
//! {"op":"keypair"}
//!   -> {"publicKey":"<b64 65-byte point>","secret":"<hex 32-byte scalar>"}
//! {"op":"derive_seal","secret":"<hex own secret>","peer":"<b64 peer public>",
//!  "salt":"<b64 32 bytes>","plaintext":"<utf8>","aad":null|"<utf8>"}
//!   -> {"iv":"<b64>","ct":"<b64>"}
//! {"op":"derive_open","secret":"<hex>","peer":"<b64>","salt":"<b64>",
//!  "iv":"<b64>","ct":"<b64>","aad":null|"<utf8>"}
//!   -> {"plaintext":"<utf8>"}
//! ```
//!
//! Any failure answers `{"error":"..."}` on that line and the tool carries on: crypto
//! failures say `crypto operation failed`, malformed requests say what was wrong.
//!
//! ```text
//! echo '{"op":"keypair"}' | cargo run --example v1_roundtrip
//! ```

use std::io::{self, BufRead as _, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealcast::crypto::{KeyPair, PublicKey, V1Key};
use serde::Deserialize;
use serde_json::{Value, json};

/// One request line.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Keypair,
    DeriveSeal {
        secret: String,
        peer: String,
        salt: String,
        plaintext: String,
        #[serde(default)]
        aad: Option<String>,
    },
    DeriveOpen {
        secret: String,
        peer: String,
        salt: String,
        iv: String,
        ct: String,
        #[serde(default)]
        aad: Option<String>,
    },
}

fn main() -> io::Result<()> {
    let stdin = io::stdin().lock();
    let mut stdout = io::stdout().lock();
    // Lines as bytes: a line that is not UTF-8 is a bad request, not the end of the tool.
    for line in stdin.split(b'\n') {
        let line = line?;
        if line.trim_ascii().is_empty() {
            continue;
        }
        let response = match serde_json::from_slice::<Request>(&line) {
            Ok(request) => handle(request).unwrap_or_else(|e| json!({ "error": e })),
            Err(e) => json!({ "error": format!("bad request: {e}") }),
        };
        writeln!(stdout, "{response}")?;
        stdout.flush()?;
    }
    Ok(())
}

fn handle(request: Request) -> Result<Value, String> {
    match request {
        Request::Keypair => {
            let (pair, secret) = generate_with_secret()?;
            Ok(json!({ "publicKey": pair.public_key_b64(), "secret": hex(&secret) }))
        }
        Request::DeriveSeal {
            secret,
            peer,
            salt,
            plaintext,
            aad,
        } => {
            let key = derive(&secret, &peer, &salt)?;
            let (iv, ct) = key
                .seal(plaintext.as_bytes(), aad.as_deref().map(str::as_bytes))
                .map_err(|e| e.to_string())?;
            Ok(json!({ "iv": STANDARD.encode(iv), "ct": STANDARD.encode(ct) }))
        }
        Request::DeriveOpen {
            secret,
            peer,
            salt,
            iv,
            ct,
            aad,
        } => {
            let key = derive(&secret, &peer, &salt)?;
            let plaintext = key
                .open(&iv, &ct, aad.as_deref().map(str::as_bytes))
                .map_err(|e| e.to_string())?;
            let plaintext =
                String::from_utf8(plaintext).map_err(|_| "plaintext is not UTF-8".to_owned())?;
            Ok(json!({ "plaintext": plaintext }))
        }
    }
}

/// A fresh key pair together with its secret scalar, which the library never exports: draw
/// 32 random bytes and retry in the (2^-32) case that they are not a valid scalar.
fn generate_with_secret() -> Result<(KeyPair, [u8; 32]), String> {
    loop {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| format!("random number generator: {e}"))?;
        if let Ok(pair) = KeyPair::from_secret_bytes(&secret) {
            return Ok((pair, secret));
        }
    }
}

/// Imports the own secret and the peer key, then derives the v1 key.
fn derive(secret_hex: &str, peer_b64: &str, salt_b64: &str) -> Result<V1Key, String> {
    let crypto = |e: sealcast::crypto::CryptoError| e.to_string();
    let secret = unhex(secret_hex).ok_or("secret is not hex")?;
    let own = KeyPair::from_secret_bytes(&secret).map_err(crypto)?;
    let peer = PublicKey::from_b64(peer_b64).map_err(crypto)?;
    let salt = STANDARD.decode(salt_b64).map_err(|_| crypto_failed())?;
    V1Key::derive(&own, &peer, &salt).map_err(crypto)
}

/// The library's one error text, for failures found before the library is called.
fn crypto_failed() -> String {
    "crypto operation failed".to_owned()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
