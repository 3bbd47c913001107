// What every fuzz target asserts, one function per target, each taking the raw fuzzer input.
//
// This file is `include!`d twice: by the fuzz crate (`fuzz/src/lib.rs`, called from the
// three-line targets in `fuzz/fuzz_targets/`) and by `tests/fuzz_corpus.rs`, which replays
// every committed `fuzz/corpus/<target>/*` file through the same function on stable
// `cargo test`. It uses only sealcast's public API, `base64` and `serde_json`, which both
// sides depend on. (Plain comments, not `//!`: an included file cannot carry inner docs.)
//
// Every function must return normally for every input; a panic is a finding. Each returns
// whether the input was accepted (so the round trip ran), which lets the corpus replay check
// that the seeds still reach the accepting paths.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealcast::crypto::v2::{
    self, ClientHandshake, Direction, Established, MAX_RECORDS, Opener, PinnedServerKey,
    REKEY_INTERVAL, Sealer, ServerHandshake, ServerSigningKey,
};
use sealcast::crypto::{CryptoError, KeyPair, PublicKey, V1Key};
use sealcast::protocol::resp;
use sealcast::protocol::websocket as ws;
use sealcast::protocol::{Channel, Envelope, InboundFrame, Limits, encode_frame};

/// The fixed AES-256 key `v1_open` opens and seals with (its seeds were sealed under it).
pub const V1_FUZZ_KEY: [u8; 32] = *b"sealcast fuzz v1 key, not secret";

/// Separates the base64 IV from the base64 ciphertext in a textual `v1_open` input.
pub const V1_SEPARATOR: char = ':';

/// `frame_parse`: [`InboundFrame::parse`] never panics; a parsed frame, re-encoded with
/// [`encode_frame`] (what the server sends), parses back to the same event and data.
/// Accepted: a frame with an event.
pub fn frame_parse(data: &[u8]) -> bool {
    let limits = Limits::default();
    let Ok(Some(frame)) = InboundFrame::parse(data, &limits) else {
        return false;
    };
    assert!(!frame.event.is_empty(), "empty events are dropped");
    assert!(frame.event.len() <= limits.max_event_name_bytes);
    let _ = frame.system_event();
    let text = encode_frame(&frame.event, frame.data_or_null());
    let again = InboundFrame::parse(text.as_bytes(), &limits)
        .expect("an encoded frame parses")
        .expect("an encoded frame has its event");
    assert_eq!(again.event, frame.event, "event survives re-encoding");
    assert_eq!(again.data_or_null().get(), frame.data_or_null().get());
    assert_eq!(again.id, None, "encode_frame writes no id");
    true
}

/// `envelope_parse`: [`Envelope::parse`] never panics; an accepted envelope re-serialized
/// with [`Envelope::to_json`] parses back to the same fields, and it matches the channel it
/// names. Accepted: the envelope parsed.
pub fn envelope_parse(data: &[u8]) -> bool {
    let limits = Limits::default();
    let Ok(envelope) = Envelope::parse(data, &limits) else {
        return false;
    };
    let json = envelope.to_json();
    let again = Envelope::parse(json.as_bytes(), &limits).expect("to_json output parses");
    assert_eq!(again.server_id, envelope.server_id);
    assert_eq!(again.kind, envelope.kind);
    assert_eq!(again.target, envelope.target);
    assert_eq!(again.event, envelope.event);
    assert_eq!(again.data_json(), envelope.data_json());
    assert_eq!(again.exclude, envelope.exclude);
    assert_eq!(again.to_json(), json, "serialization is stable");
    let channel = envelope.channel();
    assert!(envelope.matches_channel(&channel.name()));
    assert_eq!(Channel::parse(&channel.name()), Some(channel));
    true
}

/// `v1_open`: [`V1Key::open`] never panics, whether the input is read as text
/// `iv_b64:ct_b64` or as raw `iv ‖ ciphertext ‖ tag` bytes; whatever opens was given in
/// canonical base64; and [`V1Key::seal_frame`] of the input opens back to the input.
/// Accepted: the input opened in either reading.
pub fn v1_open(data: &[u8]) -> bool {
    let key = V1Key::from_bytes(V1_FUZZ_KEY).expect("a 32-byte key");
    let mut opened = false;
    if let Ok(text) = std::str::from_utf8(data) {
        let (iv, ct) = text.split_once(V1_SEPARATOR).unwrap_or((text, ""));
        if key.open(iv, ct, None).is_ok() {
            // SECURITY: one encoding per message: no second spelling of a sealed frame opens.
            for field in [iv, ct] {
                let bytes = STANDARD.decode(field).expect("an opened field is base64");
                assert_eq!(STANDARD.encode(bytes), field, "opened field is canonical");
            }
            opened = true;
        }
        let _ = key.open(iv, ct, Some(b"aad"));
    }
    let (iv, ct) = data.split_at(data.len().min(12));
    opened |= key
        .open(&STANDARD.encode(iv), &STANDARD.encode(ct), None)
        .is_ok();

    let sealed = key.seal_frame(data).expect("seal_frame");
    let frame: serde_json::Value = serde_json::from_str(&sealed).expect("a sealed frame is JSON");
    assert_eq!(frame["event"], "encrypted");
    let field = |name: &str| frame["data"][name].as_str().expect("a base64 field");
    let round_trip = key
        .open(field("iv"), field("ct"), None)
        .expect("own seal opens");
    assert_eq!(round_trip, data, "seal_frame then open returns the input");
    opened
}

/// `public_key_import`: [`PublicKey::from_raw`] and [`PublicKey::from_b64`] never panic; an
/// accepted key was given in its one canonical encoding (`to_raw` / `to_b64` give the input
/// back) and imports again from the other encoding. Accepted: either import succeeded.
pub fn public_key_import(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(key) = PublicKey::from_raw(data) {
        assert_eq!(&key.to_raw()[..], data, "raw import is strict");
        let again = PublicKey::from_b64(&key.to_b64()).expect("to_b64 output imports");
        assert_eq!(again, key);
        accepted = true;
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(key) = PublicKey::from_b64(text)
    {
        assert_eq!(key.to_b64(), text, "base64 import is strict");
        let again = PublicKey::from_raw(&key.to_raw()).expect("to_raw output imports");
        assert_eq!(again, key);
        accepted = true;
    }
    accepted
}

/// The fixed client of `v2_handshake`: its P-256 secret scalar and its nonce.
pub const V2_CLIENT_SECRET: [u8; 32] = [0x11; 32];
/// See [`V2_CLIENT_SECRET`].
pub const V2_CLIENT_NONCE: [u8; 32] = [0x22; 32];
/// The fixed server of `v2_handshake`: its "ephemeral" secret scalar, nonce and signing key.
pub const V2_SERVER_SECRET: [u8; 32] = [0x33; 32];
/// See [`V2_SERVER_SECRET`].
pub const V2_SERVER_NONCE: [u8; 32] = [0x44; 32];
/// See [`V2_SERVER_SECRET`].
pub const V2_SIGNING_SECRET: [u8; 32] = [0x55; 32];
/// The fixed client → server traffic secret `v2_record` opens with.
pub const V2_RECORD_SECRET: [u8; 32] = *b"sealcast fuzz v2 traffic secret!";
/// Separates the records of one `v2_record` input.
pub const V2_RECORD_SEPARATOR: char = '\n';

/// The fixed client, offering `offered`, and its hello frame.
pub fn v2_client(offered: &[&str]) -> (ClientHandshake, String) {
    let key = KeyPair::from_secret_bytes(&V2_CLIENT_SECRET).expect("fixed client key");
    ClientHandshake::start_with(key, V2_CLIENT_NONCE, offered).expect("fixed client hello")
}

/// The fixed server's (signed) answer to `hello`: its state and its hello frame.
pub fn v2_accept(hello: &v2::ClientHello) -> Result<(ServerHandshake, String), CryptoError> {
    let signing = ServerSigningKey::from_secret_bytes(&V2_SIGNING_SECRET).expect("signing key");
    let key = KeyPair::from_secret_bytes(&V2_SERVER_SECRET).expect("fixed server key");
    v2::accept_with(hello, Some(&signing), key, V2_SERVER_NONCE)
}

/// The fixed server's signing key as a client pins it.
pub fn v2_pinned() -> PinnedServerKey {
    let signing = ServerSigningKey::from_secret_bytes(&V2_SIGNING_SECRET).expect("signing key");
    PinnedServerKey::from_b64(&signing.public_key_b64()).expect("pinned key")
}

/// The fixed client's hello offering only `sealcast-v2`, as the server parses it.
pub fn v2_own_hello() -> v2::ClientHello {
    let (_, frame) = v2_client(&[v2::VERSION]);
    v2::hello_data(&frame)
        .and_then(v2::parse_client_hello)
        .expect("own hello parses")
}

/// Both ends of an established channel exchange `frame` and two more records each way.
fn v2_exchange(mut client: Established, mut server: Established, frame: &[u8]) {
    for frame in [frame, b"", br#"{"event":"chat","data":1}"#] {
        let record = client.sealer().seal(frame).expect("client seals");
        let opened = server.opener().open(&record).expect("server opens");
        assert_eq!(opened, frame, "client to server");
        let record = server.sealer().seal(frame).expect("server seals");
        let opened = client.opener().open(&record).expect("client opens");
        assert_eq!(opened, frame, "server to client");
    }
}

/// `v2_handshake`: the handshake parsers never panic, read as the server reads a client hello
/// (a whole `handshake` frame or its `data`) and as a client reads a server hello. A parsed
/// client hello is accepted exactly when it offers v2, and the server's answer verifies
/// (pinned) exactly for the client that sent that hello, which then establishes a channel
/// whose records round-trip. A server hello verifies only if it is the fixed server's genuine
/// answer (up to JSON spelling and, unpinned, the signature's bytes), and then the channel
/// works too. Accepted: a client hello parsed, or a server hello verified.
pub fn v2_handshake(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut accepted = false;
    let hello_text = v2::hello_data(text).unwrap_or(text);
    if let Ok(hello) = v2::parse_client_hello(hello_text) {
        accepted = true;
        let answer = v2_accept(&hello);
        assert_eq!(
            answer.is_ok(),
            hello.offers_v2(),
            "accepted iff v2 is offered"
        );
        if let Ok((server, server_hello)) = answer {
            let offered: Vec<&str> = hello.offered().iter().map(String::as_str).collect();
            let (client, own_hello) = v2_client(&offered);
            let own = v2::hello_data(&own_hello).and_then(v2::parse_client_hello);
            // `ClientHello` has no accessors for its key and nonce; its `Debug` shows all.
            let is_own = format!("{:?}", own.expect("own hello parses")) == format!("{hello:?}");
            let server_data = v2::hello_data(&server_hello).expect("server hello frame");
            let finished = client.finish(server_data, Some(&v2_pinned()));
            assert_eq!(
                finished.is_ok(),
                is_own,
                "verifies iff the hello was this client's"
            );
            if let Ok((client, fin)) = finished {
                let server = server.finish(&fin).expect("the client's fin verifies");
                v2_exchange(client, server, data);
            }
        }
    }
    let pinned = v2_pinned();
    for pin in [None, Some(&pinned)] {
        let (client, _) = v2_client(&[v2::VERSION]);
        if let Ok((client, fin)) = client.finish(hello_text, pin) {
            accepted = true;
            let (server, _) = v2_accept(&v2_own_hello()).expect("the genuine server hello");
            let server = server.finish(&fin).expect("genuine server takes the fin");
            v2_exchange(client, server, data);
        }
    }
    accepted
}

/// `v2_record`: [`Opener::open`] never panics on the input read as records (one per line)
/// opened in order; once one fails, it and every later one fail and the opener says it is
/// poisoned; `next_seq` counts the records opened. Also, whatever the input: sealed as a
/// record it opens back to itself (at the start, across an epoch boundary and at the hard
/// limit, which then refuses), and not in the other direction. And the input read as an
/// opened record's plaintext ([`v2::frames`], what a client taking batched records does with
/// it) never panics, and what it returns is one or more frames starting with `{`, whole
/// objects for a batch. Accepted: a record opened.
pub fn v2_record(data: &[u8]) -> bool {
    if let Ok(frames) = v2::frames(data) {
        assert!(!frames.is_empty(), "a record carries a frame");
        for f in &frames {
            assert_eq!(f.first(), Some(&b'{'), "frames are objects");
            // A batch's elements are parsed JSON objects; a single frame is the caller's to parse.
            if data.first() == Some(&b'[') {
                assert_eq!(f.last(), Some(&b'}'), "a batch's frames are whole objects");
            }
        }
    }
    let c2s = Direction::ClientToServer;
    let pair = |seq| {
        let sealer = Sealer::from_secret_for_testing(V2_RECORD_SECRET, c2s, seq);
        let opener = Opener::from_secret_for_testing(V2_RECORD_SECRET, c2s, seq);
        (sealer.expect("sealer"), opener.expect("opener"))
    };
    for (seq, records) in [(0, 2), (REKEY_INTERVAL - 1, 2), (MAX_RECORDS - 1, 1)] {
        let (mut sealer, mut opener) = pair(seq);
        for _ in 0..records {
            let record = sealer.seal(data).expect("seal");
            assert_eq!(
                opener.open(&record).expect("open"),
                data,
                "record round trip"
            );
        }
        if seq == MAX_RECORDS - 1 {
            assert!(sealer.seal(data).is_err(), "hard limit");
        }
    }
    let record = pair(0).0.seal(data).expect("seal");
    let mut reflected =
        Opener::from_secret_for_testing(V2_RECORD_SECRET, Direction::ServerToClient, 0)
            .expect("opener");
    assert!(reflected.open(&record).is_err(), "a reflected record fails");

    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut opener = pair(0).1;
    let (mut opened, mut failed) = (0, false);
    for record in text.split(V2_RECORD_SEPARATOR) {
        if opener.open(record).is_ok() {
            assert!(!failed, "nothing opens after a failure");
            opened += 1;
        } else {
            failed = true;
        }
        assert_eq!(opener.is_poisoned(), failed);
        assert_eq!(opener.next_seq(), opened);
    }
    opened > 0
}

/// The largest message `websocket_decode` accepts: small, so inputs reach the size limit.
pub const WS_FUZZ_MAX_PAYLOAD: usize = 4096;

/// Decodes `input` to its end: each outcome (what a frame completed, or the error that ends
/// it), and how many bytes were taken. `feed` bytes are added to the buffer at a time, as
/// reads would (`usize::MAX`: all at once).
fn ws_decode_all(
    input: &[u8],
    feed: usize,
) -> (Vec<Result<Option<ws::Incoming>, ws::DecodeError>>, usize) {
    let mut decoder = ws::Decoder::new(WS_FUZZ_MAX_PAYLOAD);
    let (mut outcomes, mut buf, mut taken, mut fed) = (Vec::new(), Vec::new(), 0, 0);
    loop {
        match decoder.decode(&buf) {
            Ok(ws::Decoded::Frame(n, incoming)) => {
                assert!(n > 0 && n <= buf.len(), "a frame takes bytes it was given");
                buf.drain(..n);
                taken += n;
                outcomes.push(Ok(incoming));
            }
            Ok(ws::Decoded::Incomplete) if fed < input.len() => {
                let more = feed.min(input.len() - fed);
                buf.extend_from_slice(&input[fed..fed + more]);
                fed += more;
            }
            Ok(ws::Decoded::Incomplete) => return (outcomes, taken),
            Err(e) => {
                outcomes.push(Err(e));
                return (outcomes, taken);
            }
        }
    }
}

/// `websocket_decode`: [`ws::Decoder`] never panics on any bytes; reading them in 7-byte or
/// 1-byte pieces gives exactly what reading them whole gives (an incomplete frame is decided
/// the same once its bytes arrive); every message respects the limit, every ping payload
/// fits a control frame; and a message re-sent as masked frames (whole, and in two fragments
/// with a ping between) decodes back to itself. Accepted: a message or control frame decoded.
pub fn websocket_decode(data: &[u8]) -> bool {
    let whole = ws_decode_all(data, usize::MAX);
    for feed in [7, 1] {
        assert_eq!(ws_decode_all(data, feed), whole, "pieces of {feed} bytes");
    }
    let mut accepted = false;
    for outcome in whole.0 {
        let Ok(Some(incoming)) = outcome else { continue };
        accepted = true;
        let (opcode, payload) = match &incoming {
            ws::Incoming::Text(text) => (ws::opcode::TEXT, text.as_bytes()),
            ws::Incoming::Binary(bytes) => (ws::opcode::BINARY, bytes.as_slice()),
            ws::Incoming::Ping(payload) => {
                assert!(payload.len() <= 125, "a ping's payload fits its pong");
                continue;
            }
            ws::Incoming::Pong | ws::Incoming::Close(_) => continue,
        };
        assert!(payload.len() <= WS_FUZZ_MAX_PAYLOAD, "a message within the limit");
        let again = ws::client_frame(true, opcode, payload, [1, 2, 3, 4]);
        let mut decoder = ws::Decoder::new(WS_FUZZ_MAX_PAYLOAD);
        assert_eq!(
            decoder.decode(&again),
            Ok(ws::Decoded::Frame(again.len(), Some(incoming.clone())))
        );
        let cut = payload.len() / 2;
        let mut fragments = ws::client_frame(false, opcode, &payload[..cut], [9, 9, 9, 9]);
        fragments.extend(ws::client_frame(true, ws::opcode::PING, b"between", [5, 6, 7, 8]));
        fragments.extend(ws::client_frame(
            true,
            ws::opcode::CONTINUATION,
            &payload[cut..],
            [0, 0, 0, 1],
        ));
        let (outcomes, taken) = ws_decode_all(&fragments, usize::MAX);
        assert_eq!(taken, fragments.len());
        assert_eq!(
            outcomes,
            [
                Ok(None),
                Ok(Some(ws::Incoming::Ping(b"between".to_vec()))),
                Ok(Some(incoming))
            ]
        );
    }
    accepted
}

/// The bulk-string limit `resp_decode` decodes under (raised to `resp::MIN_BULK_LIMIT`).
pub const RESP_FUZZ_MAX_BULK: usize = 0;

/// Decodes `input` to its end, `feed` bytes at a time as reads would bring them
/// (`usize::MAX`: all at once): every reply as text, then how many bytes were taken (skipped
/// ones included), or the error that ended the reading.
fn resp_decode_all(input: &[u8], feed: usize) -> (Vec<String>, Result<usize, resp::RespError>) {
    let mut decoder = resp::Decoder::new(RESP_FUZZ_MAX_BULK);
    let (mut replies, mut buf, mut taken, mut fed) = (Vec::new(), Vec::new(), 0, 0);
    // What an unfinished reply may hold: the longest status line, or an array header and four
    // elements within the limit, each with its header.
    let held = (resp::MAX_STATUS_LINE + 2).max(4 * (resp::MIN_BULK_LIMIT + 2 + 26) + 26);
    loop {
        let (decoded, skipped) = match decoder.decode(&buf) {
            Ok(outcome) => outcome,
            Err(e) => return (replies, Err(e)),
        };
        assert!(skipped <= buf.len(), "a skip takes bytes it was given");
        let used = match decoded {
            resp::Decoded::Reply(located, used) => {
                assert!(used > 0 && skipped + used <= buf.len(), "a reply takes its bytes");
                let reply = located.reply(&buf[skipped..skipped + used]);
                assert!(!decoder.is_skipping() || matches!(reply, resp::Reply::TooLong { .. }));
                if let resp::Reply::Message { channel, payload } = reply {
                    // What a publish of the same channel and payload would bring.
                    let mut again = Vec::new();
                    resp::encode_command(&mut again, b"message", [channel, payload].into_iter());
                    let mut fresh = resp::Decoder::new(RESP_FUZZ_MAX_BULK);
                    let (decoded, skipped) = fresh.decode(&again).expect("a message decodes");
                    let resp::Decoded::Reply(located, used) = decoded else {
                        panic!("a whole message is a reply: {decoded:?}");
                    };
                    assert_eq!((skipped, used), (0, again.len()));
                    assert_eq!(located.reply(&again), reply);
                }
                replies.push(format!("{reply:?}"));
                used
            }
            resp::Decoded::Incomplete => 0,
        };
        buf.drain(..skipped + used);
        taken += skipped + used;
        if used > 0 {
            continue;
        }
        assert!(
            buf.len() <= held,
            "an unfinished reply stays within the limit"
        );
        if fed == input.len() {
            return (replies, Ok(taken));
        }
        let more = feed.min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + more]);
        fed += more;
    }
}

/// `resp_decode`: [`resp::Decoder`] never panics on any bytes from Redis; reading them in
/// 7-byte or 1-byte pieces gives exactly what reading them whole gives; an unfinished reply
/// never holds more than the limit allows (a longer payload is skipped, not buffered); a message
/// re-encoded as Redis sends it decodes back to itself. Accepted: a reply was read.
pub fn resp_decode(data: &[u8]) -> bool {
    let whole = resp_decode_all(data, usize::MAX);
    for feed in [7, 1] {
        assert_eq!(resp_decode_all(data, feed), whole, "pieces of {feed} bytes");
    }
    !whole.0.is_empty()
}
