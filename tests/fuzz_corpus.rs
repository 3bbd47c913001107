//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through the fuzz
//! targets' own assertions, so stable `cargo test` catches a regression on any input a seed
//! covers or the fuzzer once found, without cargo-fuzz or a nightly toolchain.
//!
//! The assertions are not copied: `fuzz/checks.rs` is included here and by the fuzz crate
//! (`fuzz/src/lib.rs`), so both run exactly the same code. See `docs/fuzzing.md`.

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

include!("../fuzz/checks.rs");

/// A target's check: runs one input, returns whether it was accepted.
type Check = fn(&[u8]) -> bool;

/// Every fuzz target, by name (its `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`),
/// with the check it runs.
const TARGETS: &[(&str, Check)] = &[
    ("frame_parse", frame_parse),
    ("envelope_parse", envelope_parse),
    ("v1_open", v1_open),
    ("public_key_import", public_key_import),
    ("v2_handshake", v2_handshake),
    ("v2_record", v2_record),
    ("websocket_decode", websocket_decode),
    ("resp_decode", resp_decode),
];

/// Fewest files a target's corpus may hold: the hand-made seeds alone are more.
const MIN_CORPUS_FILES: usize = 10;

/// Fewest corpus files of a target that must be accepted, and as many rejected: a corpus that
/// no longer reaches the round trips (say, after a format change) must be regenerated.
const MIN_EACH_WAY: usize = 3;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The names of the entries of `dir` (files or directories), sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut names: Vec<String> = entries
        .map(|entry| {
            let entry = entry.expect("directory entry");
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Runs `check` on every file of `fuzz/corpus/<target>/`, reports every file that panics
/// (not just the first), and checks that the corpus still reaches both outcomes.
fn replay(target: &str) {
    let check = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .expect("a known target");
    let dir = fuzz_dir().join("corpus").join(target);
    let files = names_in(&dir);
    assert!(
        files.len() >= MIN_CORPUS_FILES,
        "{}: {} files, expected at least {MIN_CORPUS_FILES}",
        dir.display(),
        files.len()
    );
    let mut failures = Vec::new();
    let mut accepted = 0;
    for name in &files {
        let bytes = std::fs::read(dir.join(name)).expect("corpus file");
        match catch_unwind(|| check(&bytes)) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => failures.push(name),
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} corpus files fail (panic messages above): {failures:?}",
        failures.len(),
        files.len()
    );
    let rejected = files.len() - accepted;
    assert!(
        accepted >= MIN_EACH_WAY && rejected >= MIN_EACH_WAY,
        "{target}: {accepted} corpus files accepted, {rejected} rejected; expected at least \
         {MIN_EACH_WAY} of each"
    );
}

#[test]
fn frame_parse_corpus() {
    replay("frame_parse");
}

#[test]
fn envelope_parse_corpus() {
    replay("envelope_parse");
}

#[test]
fn v1_open_corpus() {
    replay("v1_open");
}

#[test]
fn public_key_import_corpus() {
    replay("public_key_import");
}

#[test]
fn v2_handshake_corpus() {
    replay("v2_handshake");
}

#[test]
fn v2_record_corpus() {
    replay("v2_record");
}

#[test]
fn websocket_decode_corpus() {
    replay("websocket_decode");
}

#[test]
fn resp_decode_corpus() {
    replay("resp_decode");
}

/// A new target cannot be added without a corpus replayed here (and the other way round).
#[test]
fn every_fuzz_target_has_a_replayed_corpus() {
    let mut known: Vec<String> = TARGETS.iter().map(|(name, _)| (*name).to_owned()).collect();
    known.sort();
    let targets: Vec<String> = names_in(&fuzz_dir().join("fuzz_targets"))
        .into_iter()
        .filter_map(|file| file.strip_suffix(".rs").map(str::to_owned))
        .collect();
    assert_eq!(targets, known, "fuzz/fuzz_targets/*.rs vs TARGETS");
    assert_eq!(
        names_in(&fuzz_dir().join("corpus")),
        known,
        "fuzz/corpus/* vs TARGETS"
    );
}

/// Rewrites the hand-made v2 seeds from the fixed keys in `fuzz/checks.rs`, for when the v2
/// wire format changes: `cargo test --test fuzz_corpus -- --ignored write_v2_seeds`.
#[test]
#[ignore = "writes fuzz/corpus/v2_*/ seed files"]
fn write_v2_seeds() {
    use serde_json::{Value, json};

    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(name), bytes).expect("seed file");
    };
    let data_of = |frame: &str| -> Value {
        let frame: Value = serde_json::from_str(frame).expect("frame JSON");
        frame["data"].clone()
    };
    let with = |base: &Value, field: &str, value: Value| {
        let mut v = base.clone();
        v[field] = value;
        v.to_string()
    };
    let without = |base: &Value, field: &str| {
        let mut v = base.clone();
        v.as_object_mut().expect("object").remove(field);
        v.to_string()
    };

    // Client hellos, as the server reads them.
    let t = "v2_handshake";
    let (_, frame) = v2_client(&[v2::VERSION]);
    let hello = data_of(&frame);
    write(t, "client-hello-frame", frame.as_bytes());
    write(t, "client-hello-data", hello.to_string().as_bytes());
    let (_, multi) = v2_client(&["x-1", v2::VERSION, "a.b_C"]);
    write(t, "client-hello-offers-three", multi.as_bytes());
    let (_, no_v2) = v2_client(&["sealcast-v1"]);
    write(t, "client-hello-no-v2", no_v2.as_bytes());
    let other = KeyPair::from_secret_bytes(&[0x66; 32]).expect("other key");
    let (_, other) = ClientHandshake::start_with(other, [0x77; 32], &[v2::VERSION]).expect("hello");
    write(t, "client-hello-other-client", other.as_bytes());
    let extra = with(&hello, "x", json!([1, {"y": null}, "sealcast-v2"]));
    write(t, "client-hello-extra-field", extra.as_bytes());
    let spaced = format!(
        " {{ \"nonce\" : {} ,\n\"v\" : [ \"sealcast-v2\" ] , \"pub\" : {} }} ",
        hello["nonce"], hello["pub"]
    );
    write(t, "client-hello-spaced-reordered", spaced.as_bytes());
    let nine = json!(["a", "b", "c", "d", "e", "f", "g", "h", "sealcast-v2"]);
    write(
        t,
        "client-hello-nine-versions",
        with(&hello, "v", nine).as_bytes(),
    );
    write(
        t,
        "client-hello-no-versions",
        with(&hello, "v", json!([])).as_bytes(),
    );
    let bad_tokens = [
        ("space", "a b"),
        ("long", &"v".repeat(33)[..]),
        ("empty", ""),
    ];
    for (name, token) in bad_tokens {
        let v = with(&hello, "v", json!([token, "sealcast-v2"]));
        write(t, &format!("client-hello-token-{name}"), v.as_bytes());
    }
    write(
        t,
        "client-hello-v-string",
        with(&hello, "v", json!("sealcast-v2")).as_bytes(),
    );
    write(t, "client-hello-no-pub", without(&hello, "pub").as_bytes());
    let key = PublicKey::from_b64(hello["pub"].as_str().expect("pub")).expect("key");
    let raw = key.to_raw();
    let mut compressed = vec![0x02 | (raw[64] & 1)];
    compressed.extend_from_slice(&raw[1..33]);
    let compressed = json!(STANDARD.encode(&compressed));
    write(
        t,
        "client-hello-pub-compressed",
        with(&hello, "pub", compressed).as_bytes(),
    );
    let mut off_curve = raw;
    off_curve[64] ^= 1;
    let off_curve = json!(STANDARD.encode(off_curve));
    write(
        t,
        "client-hello-pub-off-curve",
        with(&hello, "pub", off_curve).as_bytes(),
    );
    let short_nonce = json!(STANDARD.encode([0x22; 31]));
    write(
        t,
        "client-hello-nonce-31",
        with(&hello, "nonce", short_nonce).as_bytes(),
    );
    let nonce = hello["nonce"].as_str().expect("nonce");
    let unpadded = json!(nonce.trim_end_matches('='));
    write(
        t,
        "client-hello-nonce-unpadded",
        with(&hello, "nonce", unpadded).as_bytes(),
    );
    let dup = frame.replacen("\"v\":", "\"v\":[\"x\"],\"v\":", 1);
    write(t, "client-hello-duplicate-v", dup.as_bytes());
    let big = with(&hello, "pad", json!("p".repeat(1024)));
    write(t, "client-hello-over-1k", big.as_bytes());
    let wrong_event = frame.replace("\"handshake\"", "\"authenticate\"");
    write(t, "client-hello-wrong-event", wrong_event.as_bytes());

    // Server hellos, as the fixed client reads them.
    let (_, server_frame) = v2_accept(&v2_own_hello()).expect("server hello");
    let server = data_of(&server_frame);
    write(t, "server-hello-frame", server_frame.as_bytes());
    write(t, "server-hello-data", server.to_string().as_bytes());
    write(t, "server-hello-no-sig", without(&server, "sig").as_bytes());
    let zero_sig = json!(STANDARD.encode([0u8; 64]));
    write(
        t,
        "server-hello-zero-sig",
        with(&server, "sig", zero_sig).as_bytes(),
    );
    let short_sig = json!(STANDARD.encode([1u8; 63]));
    write(
        t,
        "server-hello-sig-63",
        with(&server, "sig", short_sig).as_bytes(),
    );
    write(
        t,
        "server-hello-v1",
        with(&server, "v", json!("sealcast-v1")).as_bytes(),
    );
    let list = json!(["sealcast-v2"]);
    write(
        t,
        "server-hello-v-list",
        with(&server, "v", list).as_bytes(),
    );
    let mut fin = STANDARD
        .decode(server["fin"].as_str().expect("fin"))
        .expect("fin base64");
    fin[0] ^= 1;
    let fin = json!(STANDARD.encode(fin));
    write(
        t,
        "server-hello-fin-flipped",
        with(&server, "fin", fin).as_bytes(),
    );
    let client_pub = hello["pub"].clone();
    write(
        t,
        "server-hello-pub-is-client",
        with(&server, "pub", client_pub).as_bytes(),
    );
    let extra = with(&server, "extra", json!({"sig": "AAAA"}));
    write(t, "server-hello-extra-field", extra.as_bytes());
    write(t, "server-hello-no-fin", without(&server, "fin").as_bytes());
    write(t, "not-json", b"{\"v\":[\"sealcast-v2\"],");
    write(t, "empty", b"");

    // Records, client to server from sequence number 0, one per line.
    let t = "v2_record";
    let mut sealer =
        Sealer::from_secret_for_testing(V2_RECORD_SECRET, Direction::ClientToServer, 0)
            .expect("sealer");
    let frames: [&[u8]; 4] = [
        br#"{"event":"handshake","data":{"fin":"AAAA"}}"#,
        br#"{"event":"authenticate","data":{"type":"token","token":"alice"}}"#,
        b"",
        br#"{"event":"chat","data":{"text":"\u00e9 \"quoted\""}}"#,
    ];
    let r: Vec<String> = frames
        .iter()
        .map(|f| sealer.seal(f).expect("seal"))
        .collect();
    let lines = |records: &[&str]| records.join("\n");
    write(t, "one", r[0].as_bytes());
    write(t, "four", lines(&[&r[0], &r[1], &r[2], &r[3]]).as_bytes());
    write(t, "replay", lines(&[&r[0], &r[0]]).as_bytes());
    write(t, "reorder", lines(&[&r[1], &r[0]]).as_bytes());
    write(t, "drop", lines(&[&r[0], &r[2]]).as_bytes());
    write(t, "after-failure", lines(&[&r[0], "x", &r[1]]).as_bytes());
    write(t, "trailing-newline", format!("{}\n", r[0]).as_bytes());
    let mut reflect =
        Sealer::from_secret_for_testing(V2_RECORD_SECRET, Direction::ServerToClient, 0)
            .expect("sealer");
    write(
        t,
        "reflected",
        reflect.seal(frames[0]).expect("seal").as_bytes(),
    );
    let ct = data_of(&r[0])["ct"].as_str().expect("ct").to_owned();
    let record = |ct: &str| format!(r#"{{"event":"encrypted","data":{{"ct":"{ct}"}}}}"#);
    let mut flipped = STANDARD.decode(&ct).expect("ct base64");
    flipped[3] ^= 0x40;
    write(t, "bit-flip", record(&STANDARD.encode(&flipped)).as_bytes());
    let tag_flipped = {
        let mut bytes = STANDARD.decode(&ct).expect("ct base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        STANDARD.encode(bytes)
    };
    write(t, "tag-flip", record(&tag_flipped).as_bytes());
    write(
        t,
        "short-ct",
        record(&STANDARD.encode([0u8; 15])).as_bytes(),
    );
    write(
        t,
        "tag-only",
        record(&STANDARD.encode([0u8; 16])).as_bytes(),
    );
    write(
        t,
        "ct-unpadded",
        record(ct.trim_end_matches('=')).as_bytes(),
    );
    let url_safe = ct.replace('+', "-").replace('/', "_");
    write(t, "ct-url-safe", record(&url_safe).as_bytes());
    let spaced = format!(" {{ \"data\" : {{ \"ct\" : \"{ct}\" }} , \"event\" : \"encrypted\" }} ");
    write(t, "spaced-reordered", spaced.as_bytes());
    let with_iv = format!(r#"{{"event":"encrypted","data":{{"iv":"AAAA","ct":"{ct}"}}}}"#);
    write(t, "v1-style-iv", with_iv.as_bytes());
    let escaped = r[0].replace("\"encrypted\"", "\"encr\\u0079pted\"");
    write(t, "event-escaped", escaped.as_bytes());
    let extra = r[0].replacen('{', r#"{"id":"1","#, 1);
    write(t, "extra-field", extra.as_bytes());
    write(
        t,
        "wrong-event",
        r[0].replace("encrypted", "Encrypted").as_bytes(),
    );
    write(t, "not-json", b"{\"event\":\"encrypted\",\"data\":");
    write(t, "empty", b"");
}
