//! Encryption v1 against the vectors made with the reference implementation
//! (`shared/vectors/ignis-ecdh-v1.json`): every case must import, derive both ways, decrypt,
//! and re-encrypt to the same bytes.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealcast::crypto::{KeyPair, V1Key, v1};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/vectors/ignis-ecdh-v1.json"
);

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    client_private_key_hex: String,
    client_public_key_b64: String,
    server_private_key_hex: String,
    server_public_key_b64: String,
    salt_b64: String,
    hkdf_info: String,
    additional_data: Option<String>,
    plaintext: Option<String>,
    plaintext_sha256_hex: String,
    plaintext_len: usize,
    iv_b64: String,
    ct_b64: String,
}

fn load() -> Vec<Case> {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|e| {
        panic!("v1 vectors missing at {VECTORS}: {e} (shared/ must sit beside the crate)")
    });
    let vectors: Vectors = serde_json::from_str(&text).expect("vector file is valid JSON");
    assert!(!vectors.cases.is_empty(), "vector file has no cases");
    vectors.cases
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_v1_vector_derives_opens_and_reseals() {
    let cases = load();
    for (i, case) in cases.iter().enumerate() {
        assert_eq!(case.hkdf_info.as_bytes(), v1::HKDF_INFO, "case {i}: info");

        let client = KeyPair::from_secret_bytes(&unhex(&case.client_private_key_hex))
            .unwrap_or_else(|e| panic!("case {i}: client secret: {e}"));
        let server = KeyPair::from_secret_bytes(&unhex(&case.server_private_key_hex))
            .unwrap_or_else(|e| panic!("case {i}: server secret: {e}"));
        assert_eq!(
            client.public_key_b64(),
            case.client_public_key_b64,
            "case {i}"
        );
        assert_eq!(
            server.public_key_b64(),
            case.server_public_key_b64,
            "case {i}"
        );

        // Each side imports the other's key from the wire form.
        let client_pub = sealcast::crypto::PublicKey::from_b64(&case.client_public_key_b64)
            .unwrap_or_else(|e| panic!("case {i}: client public: {e}"));
        let server_pub = sealcast::crypto::PublicKey::from_b64(&case.server_public_key_b64)
            .unwrap_or_else(|e| panic!("case {i}: server public: {e}"));
        let salt = STANDARD.decode(&case.salt_b64).expect("salt base64");
        let server_side = V1Key::derive(&server, &client_pub, &salt).expect("server derive");
        let client_side = V1Key::derive(&client, &server_pub, &salt).expect("client derive");

        let aad = case.additional_data.as_deref().map(str::as_bytes);
        let opened = server_side
            .open(&case.iv_b64, &case.ct_b64, aad)
            .unwrap_or_else(|e| panic!("case {i}: open: {e}"));
        match &case.plaintext {
            Some(text) => assert_eq!(opened, text.as_bytes(), "case {i}: plaintext"),
            None => {
                assert_eq!(opened.len(), case.plaintext_len, "case {i}: length");
                assert_eq!(
                    hex(&Sha256::digest(&opened)),
                    case.plaintext_sha256_hex,
                    "case {i}: sha256"
                );
            }
        }
        // The client-side key is the same key: it opens the same ciphertext.
        assert_eq!(
            client_side.open(&case.iv_b64, &case.ct_b64, aad).ok(),
            Some(opened.clone()),
            "case {i}: client-side key differs"
        );

        let iv: [u8; v1::IV_LEN] = STANDARD
            .decode(&case.iv_b64)
            .expect("iv base64")
            .try_into()
            .expect("12-byte iv");
        for (side, key) in [("server", &server_side), ("client", &client_side)] {
            let resealed = key.seal_with_iv(&iv, &opened, aad).expect("reseal");
            assert_eq!(
                STANDARD.encode(resealed),
                case.ct_b64,
                "case {i}: {side} reseal"
            );
        }
        if aad.is_some() {
            assert!(
                server_side.open(&case.iv_b64, &case.ct_b64, None).is_err(),
                "case {i}: opened without its AAD"
            );
        }
    }
}

#[test]
fn seal_frame_is_an_encrypted_event_that_opens_to_the_frame() {
    let case = &load()[0];
    let server = KeyPair::from_secret_bytes(&unhex(&case.server_private_key_hex)).expect("key");
    let client = KeyPair::from_secret_bytes(&unhex(&case.client_private_key_hex)).expect("key");
    let salt = STANDARD.decode(&case.salt_b64).expect("salt");
    let server_key = V1Key::derive(&server, client.public_key(), &salt).expect("derive");
    let client_key = V1Key::derive(&client, server.public_key(), &salt).expect("derive");

    let frame = br#"{"event":"room:said","data":{"from":"c1","text":"h\u00e9llo"}}"#;
    let sealed = server_key.seal_frame(frame).expect("seal_frame");
    let value: serde_json::Value = serde_json::from_str(&sealed).expect("sealed frame is JSON");
    assert_eq!(value["event"], "encrypted");
    let iv = value["data"]["iv"].as_str().expect("iv string");
    let ct = value["data"]["ct"].as_str().expect("ct string");
    assert_eq!(client_key.open(iv, ct, None).expect("open"), frame);
}
