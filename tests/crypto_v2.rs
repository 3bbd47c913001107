//! Encryption v2 at the crypto layer: the handshake both ways, the record layer, and one
//! negative test per property (tampering, replay, reorder, drop, reflection, pinning,
//! downgrade, bad keys, limits). Also writes/checks `tests/vectors/sealcast-v2.json`, the fixed
//! vector the JavaScript client's tests replay (`SEALCAST_WRITE_VECTORS=1` regenerates it).
#![allow(clippy::unwrap_used, missing_docs)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealcast::crypto::KeyPair;
use sealcast::crypto::v2::{
    self, BATCH, Batch, ClientHandshake, Direction, Established, MAX_BATCH_BYTES, MAX_RECORDS,
    Opener, PinnedServerKey, REKEY_INTERVAL, Sealer, ServerHandshake, ServerSigningKey, VERSION,
    accept, hello_data, parse_client_hello,
};
use serde_json::{Value, json};

const AUTH: &[u8] = br#"{"event":"authenticate","data":{"type":"token","token":"alice"}}"#;

/// A server waiting for the client's fin, the client's fin record and the client's channel.
fn handshake_parts(
    signing: Option<&ServerSigningKey>,
    pinned: Option<&PinnedServerKey>,
) -> (ServerHandshake, String, Established) {
    let (client, hello) = ClientHandshake::start().unwrap();
    let parsed = parse_client_hello(hello_data(&hello).unwrap()).unwrap();
    let (server, server_hello) = accept(&parsed, signing).unwrap();
    let (client, fin) = client
        .finish(hello_data(&server_hello).unwrap(), pinned)
        .unwrap();
    (server, fin, client)
}

/// Both ends of an established channel: (server, client).
fn channel() -> (Established, Established) {
    let (server, fin, client) = handshake_parts(None, None);
    (server.finish(&fin).unwrap(), client)
}

/// The raw `ct` bytes of a record.
fn ct_of(record: &str) -> Vec<u8> {
    let v: Value = serde_json::from_str(record).unwrap();
    assert_eq!(v["event"], "encrypted");
    assert_eq!(
        v["data"].as_object().unwrap().len(),
        1,
        "no iv: it is implicit"
    );
    STANDARD.decode(v["data"]["ct"].as_str().unwrap()).unwrap()
}

fn record_of(ct: &[u8]) -> String {
    json!({"event": "encrypted", "data": {"ct": STANDARD.encode(ct)}}).to_string()
}

#[test]
fn sealers_and_openers_can_move_to_other_tasks() {
    fn assert_send<T: Send>() {}
    assert_send::<Sealer>();
    assert_send::<Opener>();
    assert_send::<Established>();
    assert_send::<ServerHandshake>();
    assert_send::<ClientHandshake>();
}

#[test]
fn handshake_and_records_both_ways() {
    let (mut server, mut client) = channel();
    for i in 0..20 {
        let up = format!(r#"{{"event":"chat","data":{i}}}"#);
        let rec = client.sealer().seal(up.as_bytes()).unwrap();
        assert_eq!(server.opener().open(&rec).unwrap(), up.as_bytes());
        let down = format!(r#"{{"event":"reply","data":{i}}}"#);
        let rec = server.sealer().seal(down.as_bytes()).unwrap();
        assert_eq!(client.opener().open(&rec).unwrap(), down.as_bytes());
    }
    // The client's fin was record 0, so its records are one ahead.
    assert_eq!(client.sealer().next_seq(), 21);
    assert_eq!(server.opener().next_seq(), 21);
    assert_eq!(server.sealer().next_seq(), 20);
    let (sealer, opener) = server.into_parts();
    assert_eq!(sealer.direction(), Direction::ServerToClient);
    assert!(!opener.is_poisoned());
}

#[test]
fn each_connection_gets_a_fresh_server_key_and_nonce() {
    let (_, hello) = ClientHandshake::start().unwrap();
    let parsed = parse_client_hello(hello_data(&hello).unwrap()).unwrap();
    let (_, a) = accept(&parsed, None).unwrap();
    let (_, b) = accept(&parsed, None).unwrap();
    let field = |frame: &str, f: &str| {
        let v: Value = serde_json::from_str(frame).unwrap();
        v["data"][f].as_str().unwrap().to_owned()
    };
    assert_ne!(
        field(&a, "pub"),
        field(&b, "pub"),
        "forward secrecy: fresh key"
    );
    assert_ne!(field(&a, "nonce"), field(&b, "nonce"));
    assert_eq!(field(&a, "v"), "sealcast-v2");
}

#[test]
fn signed_handshake_with_the_pinned_key() {
    let signing = ServerSigningKey::generate();
    let pinned = PinnedServerKey::from_b64(&signing.public_key_b64()).unwrap();
    let (server, fin, mut client) = handshake_parts(Some(&signing), Some(&pinned));
    let mut server = server.finish(&fin).unwrap();
    let rec = client.sealer().seal(AUTH).unwrap();
    assert_eq!(server.opener().open(&rec).unwrap(), AUTH);
    // An unpinned client also accepts a signed hello.
    let (server, fin, _) = handshake_parts(Some(&signing), None);
    assert!(server.finish(&fin).is_ok());
}

// ---- one negative test per property -------------------------------------------------------

const FIXED: [u8; 32] = [0x5c; 32];

/// A fresh opener at record 0 for the fixed secret (a failure poisons an opener, so every
/// tampering attempt gets its own).
fn fixed_opener(direction: Direction) -> Opener {
    Opener::from_secret_for_testing(FIXED, direction, 0).unwrap()
}

#[test]
fn bit_flips_in_ciphertext_and_tag_fail() {
    let plain = br#"{"event":"x","data":"attack at dawn"}"#;
    let mut sealer = Sealer::from_secret_for_testing(FIXED, Direction::ServerToClient, 0).unwrap();
    let rec = sealer.seal(plain).unwrap();
    let ct = ct_of(&rec);
    assert_eq!(ct.len(), plain.len() + 16);
    let tag_start = ct.len() - 16;
    for bit in 0..ct.len() * 8 {
        let mut bad = ct.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let part = if bit / 8 >= tag_start { "tag" } else { "body" };
        assert!(
            fixed_opener(Direction::ServerToClient)
                .open(&record_of(&bad))
                .is_err(),
            "{part} bit {bit}"
        );
    }
    // Truncations (no tag, half a tag, one byte short) and an extra byte.
    let mut long = ct.clone();
    long.push(0);
    for bad in [&ct[..0], &ct[..8], &ct[..ct.len() - 1], &long[..]] {
        let mut opener = fixed_opener(Direction::ServerToClient);
        assert!(opener.open(&record_of(bad)).is_err());
    }
    let mut opener = fixed_opener(Direction::ServerToClient);
    assert_eq!(
        opener.open(&rec).unwrap(),
        plain,
        "the untouched record opens"
    );
}

#[test]
fn bit_flips_in_the_aad_fail() {
    // The AAD is never sent: it is version ‖ direction ‖ seq. A flipped direction or any
    // flipped seq bit on the receiving side must fail.
    let seq = 0x0123_4567;
    let mut sealer =
        Sealer::from_secret_for_testing(FIXED, Direction::ClientToServer, seq).unwrap();
    let rec = sealer.seal(AUTH).unwrap();
    let other_dir = Opener::from_secret_for_testing(FIXED, Direction::ServerToClient, seq);
    assert!(other_dir.unwrap().open(&rec).is_err(), "direction byte");
    for bit in 0..32 {
        let mut opener =
            Opener::from_secret_for_testing(FIXED, Direction::ClientToServer, seq ^ (1 << bit))
                .unwrap();
        assert!(opener.open(&rec).is_err(), "seq bit {bit}");
    }
    let mut right = Opener::from_secret_for_testing(FIXED, Direction::ClientToServer, seq).unwrap();
    assert_eq!(right.open(&rec).unwrap(), AUTH);
}

#[test]
fn replayed_record_fails() {
    let (mut server, mut client) = channel();
    let rec = client.sealer().seal(AUTH).unwrap();
    assert_eq!(server.opener().open(&rec).unwrap(), AUTH);
    assert!(server.opener().open(&rec).is_err());
    assert!(server.opener().is_poisoned());
}

#[test]
fn reordered_records_fail() {
    let (mut server, mut client) = channel();
    let first = client.sealer().seal(b"{\"event\":\"a\"}").unwrap();
    let second = client.sealer().seal(b"{\"event\":\"b\"}").unwrap();
    assert!(server.opener().open(&second).is_err());
    assert!(
        server.opener().open(&first).is_err(),
        "the channel is dead after a failure"
    );
}

#[test]
fn dropped_record_fails() {
    let (mut server, mut client) = channel();
    let _dropped = client.sealer().seal(b"{\"event\":\"a\"}").unwrap();
    let next = client.sealer().seal(b"{\"event\":\"b\"}").unwrap();
    assert!(server.opener().open(&next).is_err());
}

#[test]
fn reflected_record_fails() {
    let (mut server, mut client) = channel();
    // The server's own record fed back to the server (and the client's to the client).
    let down = server.sealer().seal(b"{\"event\":\"a\"}").unwrap();
    assert!(server.opener().open(&down).is_err());
    let up = client.sealer().seal(b"{\"event\":\"b\"}").unwrap();
    assert!(client.opener().open(&up).is_err());
}

#[test]
fn records_of_another_connection_fail() {
    let (mut a_server, _a_client) = channel();
    let (_b_server, mut b_client) = channel();
    let rec = b_client.sealer().seal(AUTH).unwrap();
    assert!(a_server.opener().open(&rec).is_err());
}

#[test]
fn wrong_pinned_key_fails() {
    let signing = ServerSigningKey::generate();
    let other = PinnedServerKey::from_b64(&ServerSigningKey::generate().public_key_b64()).unwrap();
    let (client, hello) = ClientHandshake::start().unwrap();
    let parsed = parse_client_hello(hello_data(&hello).unwrap()).unwrap();
    let (_, server_hello) = accept(&parsed, Some(&signing)).unwrap();
    assert!(
        client
            .finish(hello_data(&server_hello).unwrap(), Some(&other))
            .is_err()
    );
}

#[test]
fn pinning_client_refuses_an_unsigned_server() {
    let pinned = PinnedServerKey::from_b64(&ServerSigningKey::generate().public_key_b64()).unwrap();
    let (client, hello) = ClientHandshake::start().unwrap();
    let parsed = parse_client_hello(hello_data(&hello).unwrap()).unwrap();
    let (_, server_hello) = accept(&parsed, None).unwrap();
    assert!(
        client
            .finish(hello_data(&server_hello).unwrap(), Some(&pinned))
            .is_err()
    );
}

#[test]
fn stripping_the_signature_breaks_the_transcript() {
    let signing = ServerSigningKey::generate();
    let (client, hello) = ClientHandshake::start().unwrap();
    let parsed = parse_client_hello(hello_data(&hello).unwrap()).unwrap();
    let (_, server_hello) = accept(&parsed, Some(&signing)).unwrap();
    let mut data: Value = serde_json::from_str(hello_data(&server_hello).unwrap()).unwrap();
    data.as_object_mut().unwrap().remove("sig");
    // Even a client that pins nothing notices: the "signed" flag is in th.
    assert!(client.finish(&data.to_string(), None).is_err());
}

#[test]
fn stripped_v2_offer_is_refused() {
    // A hello that does not offer v2 (an attacker removed it): the server never picks anything
    // else through this event.
    let (_, hello) = ClientHandshake::start_with(KeyPair::generate(), [1; 32], &["v1"]).unwrap();
    let parsed = parse_client_hello(hello_data(&hello).unwrap()).unwrap();
    assert!(!parsed.offers_v2());
    assert!(accept(&parsed, None).is_err());
}

#[test]
fn tampered_offer_is_detected_by_fin() {
    // The client offered two versions; an attacker trims the list. Both sides still pick v2,
    // but their transcripts differ, so the client refuses the server's fin.
    let (client, hello) =
        ClientHandshake::start_with(KeyPair::generate(), [1; 32], &["sealcast-v2", "v1"]).unwrap();
    let trimmed = hello.replace(r#"["sealcast-v2","v1"]"#, r#"["sealcast-v2"]"#);
    assert_ne!(trimmed, hello);
    let parsed = parse_client_hello(hello_data(&trimmed).unwrap()).unwrap();
    let (_, server_hello) = accept(&parsed, None).unwrap();
    assert!(
        client
            .finish(hello_data(&server_hello).unwrap(), None)
            .is_err()
    );
}

/// Both ends of a channel whose client offered batched records: (server, client).
fn batched_channel() -> (Established, Established) {
    let (client, hello) = ClientHandshake::start_batched().unwrap();
    let parsed = parse_client_hello(hello_data(&hello).unwrap()).unwrap();
    assert_eq!(parsed.offered(), [VERSION, BATCH]);
    assert!(parsed.offers_batch());
    let (server, server_hello) = accept(&parsed, None).unwrap();
    let (client, fin) = client
        .finish(hello_data(&server_hello).unwrap(), None)
        .unwrap();
    (server.finish(&fin).unwrap(), client)
}

#[test]
fn only_a_client_that_offered_it_gets_batched_records() {
    let (mut plain_server, _) = channel();
    assert!(!plain_server.sealer().batches());
    let (mut server, mut client) = batched_channel();
    assert!(server.sealer().batches());
    // The client's own sealer never batches: client records carry one frame.
    assert!(!client.sealer().batches());

    // Two or more frames for a server sealer without the offer: refused, nothing sealed.
    let mut batch = Batch::new();
    batch.push(AUTH);
    batch.push(AUTH);
    let mut out = Vec::new();
    assert!(batch.seal_into(plain_server.sealer(), &mut out).is_err());
    assert!(out.is_empty() && batch.is_empty());
    assert_eq!(plain_server.sealer().next_seq(), 0);
}

#[test]
fn a_batched_record_opens_to_its_frames_in_order_under_one_sequence_number() {
    let (mut server, mut client) = batched_channel();
    let frames: Vec<String> = (0..5)
        .map(|i| json!({"event": "tick", "data": {"n": i}}).to_string())
        .collect();
    let mut batch = Batch::new();
    for f in &frames {
        assert!(batch.fits(f.len()));
        batch.push(f.as_bytes());
    }
    assert_eq!(batch.len(), 5);
    let mut out = Vec::new();
    batch.seal_into(server.sealer(), &mut out).unwrap();
    assert!(batch.is_empty());
    // A single frame afterwards is a record of its own, as without batching.
    batch.push(AUTH);
    batch.seal_into(server.sealer(), &mut out).unwrap();
    assert_eq!(server.sealer().next_seq(), 2);

    let text = String::from_utf8(out).unwrap();
    let (first, second) = text.split_at(text.find("}}{").unwrap() + 2);
    let plain = client.opener().open(first).unwrap();
    assert_eq!(plain, format!("[{}]", frames.join(",")).into_bytes());
    let opened: Vec<&[u8]> = v2::frames(&plain).unwrap();
    assert_eq!(
        opened,
        frames.iter().map(|f| f.as_bytes()).collect::<Vec<_>>()
    );
    let plain = client.opener().open(second).unwrap();
    assert_eq!(plain, AUTH);
    assert_eq!(v2::frames(&plain).unwrap(), [AUTH]);
    assert_eq!(client.opener().next_seq(), 2);
}

#[test]
fn a_batch_stays_within_its_bound_and_a_large_frame_goes_alone() {
    let small = json!({"event": "tick", "data": "x".repeat(1000)}).to_string();
    let mut batch = Batch::new();
    let mut text_len = 1;
    while batch.fits(small.len()) {
        batch.push(small.as_bytes());
        text_len += small.len() + 1;
    }
    assert!(text_len <= MAX_BATCH_BYTES, "{text_len}");
    assert_eq!(batch.len(), MAX_BATCH_BYTES / (small.len() + 1));
    // An empty batch takes any frame, however large.
    let large = vec![b'x'; MAX_BATCH_BYTES * 2];
    assert!(Batch::new().fits(large.len()));
    let (mut server, mut client) = batched_channel();
    let mut one = Batch::new();
    one.push(&large);
    let mut out = Vec::new();
    one.seal_into(server.sealer(), &mut out).unwrap();
    let plain = client
        .opener()
        .open(std::str::from_utf8(&out).unwrap())
        .unwrap();
    assert_eq!(plain, large);
}

#[test]
fn frames_refuses_what_is_not_a_frame_or_a_batch_of_frames() {
    for bad in [
        &b""[..],
        b"[]",
        b"[ ]",
        b"[1]",
        b"[{\"event\":\"a\"},2]",
        b"[{\"event\":\"a\"}",
        b"[{\"event\":\"a\"},]",
        b"[[{\"event\":\"a\"}]]",
        b"\"text\"",
        b" {\"event\":\"a\"}",
        b"null",
    ] {
        assert!(v2::frames(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    let two = br#"[{"event":"a","data":[1,{"x":"]"}]}, {"event":"b"}]"#;
    assert_eq!(
        v2::frames(two).unwrap(),
        [
            &br#"{"event":"a","data":[1,{"x":"]"}]}"#[..],
            br#"{"event":"b"}"#
        ]
    );
}

#[test]
fn stripping_the_batch_offer_breaks_the_transcript() {
    let (client, hello) = ClientHandshake::start_batched().unwrap();
    let stripped = hello.replace(
        r#"["sealcast-v2","sealcast-v2-batch"]"#,
        r#"["sealcast-v2"]"#,
    );
    assert_ne!(stripped, hello);
    let parsed = parse_client_hello(hello_data(&stripped).unwrap()).unwrap();
    assert!(!parsed.offers_batch());
    let (_, server_hello) = accept(&parsed, None).unwrap();
    assert!(
        client
            .finish(hello_data(&server_hello).unwrap(), None)
            .is_err()
    );
}

#[test]
fn server_hello_choosing_another_version_is_refused() {
    let (client, hello) = ClientHandshake::start().unwrap();
    let parsed = parse_client_hello(hello_data(&hello).unwrap()).unwrap();
    let (_, server_hello) = accept(&parsed, None).unwrap();
    let downgraded = server_hello.replace(r#""v":"sealcast-v2""#, r#""v":"v1""#);
    assert!(
        client
            .finish(hello_data(&downgraded).unwrap(), None)
            .is_err()
    );
}

#[test]
fn tampered_server_hello_fields_fail() {
    for field in ["pub", "nonce", "fin"] {
        let (client, hello) = ClientHandshake::start().unwrap();
        let parsed = parse_client_hello(hello_data(&hello).unwrap()).unwrap();
        let (_, server_hello) = accept(&parsed, None).unwrap();
        let mut data: Value = serde_json::from_str(hello_data(&server_hello).unwrap()).unwrap();
        let replacement = match field {
            "pub" => KeyPair::generate().public_key_b64(),
            "nonce" => STANDARD.encode([0xee; 32]),
            _ => STANDARD.encode([0xee; 32]),
        };
        data[field] = Value::String(replacement);
        assert!(client.finish(&data.to_string(), None).is_err(), "{field}");
    }
}

#[test]
fn client_fin_must_come_first_and_verify() {
    // The client's authenticate record (c2s #1) is not a fin record (c2s #0).
    let (server, _fin, mut client) = handshake_parts(None, None);
    let auth = client.sealer().seal(AUTH).unwrap();
    assert!(server.finish(&auth).is_err());
    // A plaintext frame instead of the sealed fin.
    let (server, _, _) = handshake_parts(None, None);
    assert!(server.finish(std::str::from_utf8(AUTH).unwrap()).is_err());
    // The fin record of another connection.
    let (server, _, _) = handshake_parts(None, None);
    let (_, other_fin, _) = handshake_parts(None, None);
    assert!(server.finish(&other_fin).is_err());
}

#[test]
fn off_curve_identity_and_compressed_keys_are_refused() {
    let good = KeyPair::generate();
    let raw = good.public_key().to_raw();
    let nonce = STANDARD.encode([1u8; 32]);
    let mut off_curve = raw;
    off_curve[64] ^= 1;
    let mut identity = [0u8; 65];
    identity[0] = 4;
    let mut compressed = vec![0x02 | (raw[64] & 1)];
    compressed.extend_from_slice(&raw[1..33]);
    let mut hybrid = raw;
    hybrid[0] = 0x06 | (raw[64] & 1);
    for (what, key) in [
        ("off-curve", STANDARD.encode(off_curve)),
        ("identity", STANDARD.encode(identity)),
        ("all zero", STANDARD.encode([0u8; 65])),
        ("compressed", STANDARD.encode(&compressed)),
        ("hybrid", STANDARD.encode(hybrid)),
        ("64 bytes", STANDARD.encode(&raw[1..])),
    ] {
        let data = json!({"v": ["sealcast-v2"], "pub": key, "nonce": nonce}).to_string();
        assert!(
            parse_client_hello(&data).is_err(),
            "client hello with {what} key"
        );
        // And the same key in a server hello.
        let (client, hello) = ClientHandshake::start().unwrap();
        let parsed = parse_client_hello(hello_data(&hello).unwrap()).unwrap();
        let (_, server_hello) = accept(&parsed, None).unwrap();
        let mut sh: Value = serde_json::from_str(hello_data(&server_hello).unwrap()).unwrap();
        sh["pub"] = Value::String(key.clone());
        assert!(
            client.finish(&sh.to_string(), None).is_err(),
            "server hello with {what} key"
        );
    }
    assert!(PinnedServerKey::from_b64(&STANDARD.encode(off_curve)).is_err());
}

#[test]
fn sequence_number_at_the_hard_limit() {
    let last = MAX_RECORDS - 1;
    let mut sealer =
        Sealer::from_secret_for_testing(FIXED, Direction::ServerToClient, last).unwrap();
    let mut opener =
        Opener::from_secret_for_testing(FIXED, Direction::ServerToClient, last).unwrap();
    let rec = sealer.seal(b"{\"event\":\"last\"}").unwrap();
    assert_eq!(opener.open(&rec).unwrap(), b"{\"event\":\"last\"}");
    assert_eq!(sealer.next_seq(), MAX_RECORDS);
    assert!(sealer.seal(b"{}").is_err(), "no record 2^32");
    assert!(opener.open(&rec).is_err());
}

#[test]
fn rekey_happens_on_both_sides_at_the_interval() {
    let start = REKEY_INTERVAL - 3;
    let mut sealer =
        Sealer::from_secret_for_testing(FIXED, Direction::ClientToServer, start).unwrap();
    let mut opener =
        Opener::from_secret_for_testing(FIXED, Direction::ClientToServer, start).unwrap();
    let mut last = String::new();
    for _ in 0..6 {
        last = sealer.seal(AUTH).unwrap();
        assert_eq!(opener.open(&last).unwrap(), AUTH);
    }
    // Record REKEY_INTERVAL + 2 was sealed under the next epoch's key, not FIXED's.
    let mut stale =
        Opener::from_secret_for_testing(FIXED, Direction::ClientToServer, REKEY_INTERVAL + 2)
            .unwrap();
    assert!(stale.open(&last).is_err());
}

#[test]
fn malformed_records_fail_without_panic() {
    for input in [
        "",
        "{}",
        "null",
        r#"{"event":"encrypted"}"#,
        r#"{"event":"encrypted","data":{"iv":"AAAAAAAAAAAAAAAA","ct":"AAAA"}}"#,
        r#"{"event":"encrypted","data":{"ct":"!!!!"}}"#,
        r#"{"event":"encrypted","data":{"ct":null}}"#,
        r#"{"event":"encrypted","data":{"ct":"AAAA"}}"#,
        r#"{"event":"chat","data":{"ct":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}"#,
        "\u{0}\u{ffff}",
    ] {
        let mut opener =
            Opener::from_secret_for_testing(FIXED, Direction::ClientToServer, 0).unwrap();
        assert!(opener.open(input).is_err(), "{input:?}");
    }
}

// ---- the cross-implementation vector -------------------------------------------------------

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const CLIENT_SECRET: &str = "c4c273149981fa8c9dd0f3c02b465e8fcf62afda336698d4878674ea3d2bdc50";
const SERVER_EPHEMERAL: &str = "7d1d1d4f0b5a3f6e2c9a8b7c6d5e4f30112233445566778899aabbccddeeff01";
const SIGNING_SECRET: &str = "2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819";

/// Runs the whole exchange with fixed inputs; everything in it is deterministic (AES-GCM with
/// counter nonces, RFC 6979 ECDSA).
fn vector() -> Value {
    let client_key = KeyPair::from_secret_bytes(&unhex(CLIENT_SECRET)).unwrap();
    let client_public = client_key.public_key_b64();
    let client_nonce = [0x11u8; 32];
    let server_nonce = [0x22u8; 32];
    let offered = ["sealcast-v2", "v1"];
    let signing = ServerSigningKey::from_secret_bytes(&unhex(SIGNING_SECRET)).unwrap();

    let (client, client_hello) =
        ClientHandshake::start_with(client_key, client_nonce, &offered).unwrap();
    let parsed = parse_client_hello(hello_data(&client_hello).unwrap()).unwrap();
    let ephemeral = KeyPair::from_secret_bytes(&unhex(SERVER_EPHEMERAL)).unwrap();
    let (server, server_hello) =
        v2::accept_with(&parsed, Some(&signing), ephemeral, server_nonce).unwrap();
    let pinned = PinnedServerKey::from_b64(&signing.public_key_b64()).unwrap();
    let (mut client, fin_record) = client
        .finish(hello_data(&server_hello).unwrap(), Some(&pinned))
        .unwrap();
    let mut server = server.finish(&fin_record).unwrap();

    let client_plain = [
        String::from_utf8(AUTH.to_vec()).unwrap(),
        r#"{"event":"chat","data":{"text":"héllo ✓"}}"#.to_owned(),
    ];
    let mut client_records = vec![fin_record];
    for p in &client_plain {
        let rec = client.sealer().seal(p.as_bytes()).unwrap();
        assert_eq!(server.opener().open(&rec).unwrap(), p.as_bytes());
        client_records.push(rec);
    }
    let server_plain = [
        r#"{"event":"connected","data":{"id":"c0ffee","userId":"alice","time":"2025-01-01T00:00:00.000Z"}}"#.to_owned(),
        r#"{"event":"chat","data":{"text":"🔥"}}"#.to_owned(),
    ];
    let mut server_records = Vec::new();
    for p in &server_plain {
        let rec = server.sealer().seal(p.as_bytes()).unwrap();
        assert_eq!(client.opener().open(&rec).unwrap(), p.as_bytes());
        server_records.push(rec);
    }
    json!({
        "description": "sealcast-v2: one handshake and four records with fixed keys and nonces (tests/crypto_v2.rs writes it; tests/js replays it)",
        "client_private_key_hex": CLIENT_SECRET,
        "client_public_key_b64": client_public,
        "client_nonce_b64": STANDARD.encode(client_nonce),
        "offered": offered,
        "server_ephemeral_private_key_hex": SERVER_EPHEMERAL,
        "server_nonce_b64": STANDARD.encode(server_nonce),
        "server_signing_private_key_hex": SIGNING_SECRET,
        "server_signing_public_key_b64": signing.public_key_b64(),
        "client_hello": client_hello,
        "server_hello": server_hello,
        "client_plaintexts": client_plain,
        "client_records": client_records,
        "server_plaintexts": server_plain,
        "server_records": server_records,
    })
}

#[test]
fn vector_file_matches_this_implementation() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/sealcast-v2.json"
    );
    let computed = vector();
    assert_eq!(computed, vector(), "the vector is deterministic");
    if std::env::var_os("SEALCAST_WRITE_VECTORS").is_some() {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors")).unwrap();
        let text = serde_json::to_string_pretty(&computed).unwrap() + "\n";
        std::fs::write(path, text).unwrap();
    }
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(path)
            .expect("tests/vectors/sealcast-v2.json (SEALCAST_WRITE_VECTORS=1 writes it)"),
    )
    .unwrap();
    assert_eq!(stored, computed);
}
