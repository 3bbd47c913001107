//! Encryption v2 over real sockets: the handshake before `authenticate`, sealed traffic in both
//! directions (`authenticate` and `connected` included), server-key pinning, `required`, v1
//! and plaintext clients beside v2 ones, and one negative test per property: tampering,
//! replay, reorder, drop, reflection, plaintext after the handshake, a stripped v2 offer, bad
//! keys, a wrong fin, and the cap on pending handshakes.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use common::{Received, TestServer, WsClient, eventually, spawn, test_builder};
use sealcast::{
    ServerBuilder,
    crypto::{
        KeyPair, PublicKey, V1Key,
        v2::{
            self, ClientHandshake, Established, MAX_BATCH_BYTES, Opener, PinnedServerKey, Sealer,
            ServerSigningKey, hello_data,
        },
    },
    protocol::Limits,
    server::V2Config,
};
use serde_json::{Value, json};

/// A v2 client: the plain socket plus its two record directions.
struct V2 {
    ws: WsClient,
    sealer: Sealer,
    opener: Opener,
    /// It offered batched records.
    batched: bool,
    /// Frames of a batched record not yet taken by [`V2::next`].
    pending: VecDeque<Value>,
    /// Records that carried more than one frame.
    batches: usize,
}

/// Sends the hello (offering batched records or not) and returns the client state and the
/// server's answer (an event).
async fn hello_with(ws: &mut WsClient, batched: bool) -> (ClientHandshake, Value) {
    let (client, hello) = if batched {
        ClientHandshake::start_batched()
    } else {
        ClientHandshake::start()
    }
    .unwrap();
    ws.send_text(&hello).await;
    (client, ws.next_event().await)
}

/// [`hello_with`], not offering batched records.
async fn hello(ws: &mut WsClient) -> (ClientHandshake, Value) {
    hello_with(ws, false).await
}

impl V2 {
    /// Handshake (optionally pinning), then nothing else.
    async fn handshake(srv: &TestServer, pinned: Option<&PinnedServerKey>) -> Self {
        Self::handshake_with(srv, pinned, false).await
    }

    /// [`V2::handshake`], offering batched records or not.
    async fn handshake_with(
        srv: &TestServer,
        pinned: Option<&PinnedServerKey>,
        batched: bool,
    ) -> Self {
        let mut ws = srv.client().await;
        let (client, answer) = hello_with(&mut ws, batched).await;
        assert_eq!(answer["event"], "handshake", "{answer}");
        let (channel, fin) = client
            .finish(&answer["data"].to_string(), pinned)
            .expect("the server hello verifies");
        ws.send_text(&fin).await;
        Self::established(ws, channel, batched)
    }

    /// The client once its handshake completed.
    fn established(ws: WsClient, channel: Established, batched: bool) -> Self {
        let (sealer, opener) = channel.into_parts();
        Self {
            ws,
            sealer,
            opener,
            batched,
            pending: VecDeque::new(),
            batches: 0,
        }
    }

    /// Handshake, then a sealed `authenticate`; returns the sealed `connected`'s data.
    async fn connect(srv: &TestServer, user: &str) -> (Self, Value) {
        Self::connect_with(srv, user, false).await
    }

    /// [`V2::connect`], offering batched records or not.
    async fn connect_with(srv: &TestServer, user: &str, batched: bool) -> (Self, Value) {
        let mut c = Self::handshake_with(srv, None, batched).await;
        c.emit("authenticate", json!({"type": "token", "token": user}))
            .await;
        let connected = c.next().await;
        assert_eq!(connected["event"], "connected", "{connected}");
        c.ws.id = connected["data"]["id"].as_str().map(str::to_owned);
        (c, connected["data"].clone())
    }

    async fn emit(&mut self, event: &str, data: Value) {
        let frame = json!({"event": event, "data": data}).to_string();
        let record = self.sealer.seal(frame.as_bytes()).unwrap();
        self.ws.send_text(&record).await;
    }

    /// The next server message, from a record that opens: one frame, or (for a client that
    /// offered them) the next frame of a batched record.
    async fn next(&mut self) -> Value {
        if let Some(frame) = self.pending.pop_front() {
            return frame;
        }
        let raw = self.raw().await;
        let plain = self.opener.open(&raw).expect("the server's record opens");
        if !self.batched {
            assert_eq!(
                plain.first(),
                Some(&b'{'),
                "a batch for a client that did not offer it"
            );
        }
        let frames = v2::frames(&plain).expect("one frame or a batch of frames");
        if frames.len() > 1 {
            self.batches += 1;
        }
        for f in frames {
            self.pending.push_back(serde_json::from_slice(f).unwrap());
        }
        self.pending.pop_front().unwrap()
    }

    /// The next server frame's text, unopened.
    async fn raw(&mut self) -> String {
        match self.ws.recv().await {
            Received::Event(v) => {
                assert_eq!(v["event"], "encrypted", "plaintext from the server: {v}");
                assert_eq!(v["data"].as_object().unwrap().len(), 1, "only ct: {v}");
                v.to_string()
            }
            other => panic!("expected a record, got {other:?}"),
        }
    }

    /// Seals `frame` and returns the record without sending it.
    fn seal(&mut self, frame: &str) -> String {
        self.sealer.seal(frame.as_bytes()).unwrap()
    }
}

fn v2_builder(config: V2Config) -> ServerBuilder {
    test_builder().encryption_v2(config)
}

/// A server that records every application event it is handed.
async fn recording(config: V2Config) -> (TestServer, Arc<Mutex<Vec<(String, Value)>>>) {
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let log = seen.clone();
    let srv = spawn(v2_builder(config).on_message(move |m| {
        let log = log.clone();
        async move {
            let data: Value = m.data().unwrap_or(Value::Null);
            log.lock().unwrap().push((m.event.clone(), data.clone()));
            if m.event == "echo" {
                m.server.send_to_client(&m.client_id, "echo", &data)?;
            }
            Ok(())
        }
    }))
    .await;
    (srv, seen)
}

/// The server closes with 4004; returns the events that came before the close.
async fn expect_4004(ws: &mut WsClient) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        match ws.recv().await {
            Received::Event(v) => events.push(v),
            Received::Close(code, _) => {
                assert_eq!(code, Some(4004), "events before the close: {events:?}");
                return events;
            }
            Received::Gone => panic!("dropped without a close frame"),
        }
    }
}

/// A handshake failure: the plaintext `Encryption handshake failed`, then 4004.
async fn expect_handshake_failed(ws: &mut WsClient) {
    let events = expect_4004(ws).await;
    assert_eq!(
        events,
        [json!({"event": "error", "data": {"message": "Encryption handshake failed"}})]
    );
}

// ---- the happy paths ------------------------------------------------------------------------

#[tokio::test]
async fn v2_client_authenticates_sealed_and_every_frame_is_a_record() {
    let (srv, seen) = recording(V2Config::new()).await;
    let (mut alice, connected) = V2::connect(&srv, "alice").await;
    assert_eq!(connected["userId"], "alice");
    assert!(connected.get("serverPublicKey").is_none(), "no v1 fields");
    let id = alice.ws.id.clone().unwrap();
    assert!(srv.server.client(&id).unwrap().encrypted);

    for i in 0..50 {
        alice.emit("echo", json!({"n": i})).await;
    }
    for i in 0..50 {
        assert_eq!(
            alice.next().await,
            json!({"event": "echo", "data": {"n": i}})
        );
    }
    // Room delivery and errors are sealed too.
    alice.emit("join", json!({"rooms": ["lobby"]})).await;
    alice.emit("join", json!({"rooms": "not a list"})).await;
    assert_eq!(
        alice.next().await,
        json!({"event": "error", "data": {"message": "Invalid message format"}})
    );
    assert!(
        eventually(|| srv
            .server
            .client(&id)
            .unwrap()
            .rooms
            .contains(&"lobby".to_owned()))
        .await
    );
    srv.server
        .send_to_room("lobby", "news", &json!("sealed for alice"), &[])
        .unwrap();
    assert_eq!(
        alice.next().await,
        json!({"event": "news", "data": "sealed for alice"})
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        50,
        "the hook saw every echo, in order"
    );
    assert_eq!(
        alice.sealer.next_seq(),
        54,
        "fin + authenticate + 50 + 2 joins"
    );
}

/// A room burst far longer than one sealing stretch (128 records between yields), with frames
/// large enough to be written in several chunks per batch, to several v2 clients at once:
/// every record opens in sequence (a dropped, repeated or reordered record would not).
#[tokio::test]
async fn a_long_room_burst_opens_record_after_record_for_every_v2_client() {
    const MESSAGES: u64 = 700;
    let srv = spawn(v2_builder(V2Config::new())).await;
    let mut clients = Vec::new();
    for i in 0..4 {
        let (mut c, _) = V2::connect(&srv, &format!("burst{i}")).await;
        c.emit("join", json!({"rooms": ["burst"]})).await;
        clients.push(c);
    }
    assert!(eventually(|| srv.server.clients_by_room("burst").len() == 4).await);
    let pad = "p".repeat(300);
    for n in 0..MESSAGES {
        srv.server
            .send_to_room("burst", "tick", &json!({"n": n, "pad": pad}), &[])
            .unwrap();
    }
    for c in &mut clients {
        let first = c.opener.next_seq();
        for n in 0..MESSAGES {
            assert_eq!(
                c.next().await,
                json!({"event": "tick", "data": {"n": n, "pad": pad}})
            );
        }
        assert_eq!(c.opener.next_seq(), first + MESSAGES);
        c.ws.expect_silence().await;
    }
}

/// The same kind of burst to a v2 client that offered batched records and one that did not:
/// the first gets it in far fewer records, each within the batch bound, a frame larger than
/// the bound in a record of its own, and every message in order; the second gets one record
/// per message (its `next` refuses a batch).
#[tokio::test]
async fn a_client_that_offered_batches_gets_a_burst_in_fewer_records_in_order() {
    const MESSAGES: u64 = 400;
    let srv = spawn(v2_builder(V2Config::new())).await;
    let (mut batched, _) = V2::connect_with(&srv, "batched", true).await;
    let (mut single, _) = V2::connect(&srv, "single").await;
    for c in [&mut batched, &mut single] {
        c.emit("join", json!({"rooms": ["burst"]})).await;
    }
    assert!(eventually(|| srv.server.clients_by_room("burst").len() == 2).await);
    let pad = "p".repeat(200);
    let large = "L".repeat(MAX_BATCH_BYTES + 100);
    let data = |n: u64| {
        if n == MESSAGES / 2 {
            json!({"n": n, "pad": large})
        } else {
            json!({"n": n, "pad": pad})
        }
    };
    // Queued in one go: the test's runtime has one thread, so no writer runs in between.
    for n in 0..MESSAGES {
        srv.server
            .send_to_room("burst", "tick", &data(n), &[])
            .unwrap();
    }
    let mut records = 0;
    let mut large_alone = false;
    let first = batched.opener.next_seq();
    for n in 0..MESSAGES {
        if batched.pending.is_empty() {
            records += 1;
            let before = batched.batches;
            let msg = batched.next().await;
            large_alone |=
                n == MESSAGES / 2 && batched.batches == before && batched.pending.is_empty();
            assert_eq!(msg, json!({"event": "tick", "data": data(n)}));
        } else {
            assert_eq!(
                batched.next().await,
                json!({"event": "tick", "data": data(n)})
            );
        }
    }
    assert!(
        large_alone,
        "the frame over the bound went in a record of its own"
    );
    assert_eq!(batched.opener.next_seq(), first + records);
    // ~230 bytes a frame, at most 16 KiB a record: a few dozen records, not 400.
    assert!(
        records < MESSAGES / 10,
        "{records} records for {MESSAGES} messages"
    );
    assert!(batched.batches >= 3, "{} batched records", batched.batches);
    batched.ws.expect_silence().await;

    let first = single.opener.next_seq();
    for n in 0..MESSAGES {
        assert_eq!(
            single.next().await,
            json!({"event": "tick", "data": data(n)})
        );
    }
    assert_eq!(single.opener.next_seq(), first + MESSAGES);
    assert_eq!(single.batches, 0);
    single.ws.expect_silence().await;
}

#[tokio::test]
async fn v1_and_plaintext_clients_are_unaffected_beside_v2() {
    let srv = spawn(
        v2_builder(V2Config::new())
            .encryption_v1(KeyPair::generate())
            .on_message(|m| async move {
                m.server
                    .send_to_room("mix", &m.event, &m.data::<Value>()?, &[])?;
                Ok(())
            }),
    )
    .await;
    let (mut v2, _) = V2::connect(&srv, "v2").await;
    let mut plain = srv.authed("plain").await;
    // v1: the key travels in authenticate, `connected` is plaintext with the server key.
    let own = KeyPair::generate();
    let mut v1 = srv.client().await;
    v1.emit(
        "authenticate",
        json!({"type": "token", "token": "v1", "publicKey": own.public_key_b64()}),
    )
    .await;
    let connected = v1.expect_event("connected").await;
    let server_pub =
        PublicKey::from_b64(connected["data"]["serverPublicKey"].as_str().unwrap()).unwrap();
    let salt = B64
        .decode(connected["data"]["salt"].as_str().unwrap())
        .unwrap();
    let v1_key = V1Key::derive(&own, &server_pub, &salt).unwrap();

    v2.emit("join", json!({"rooms": ["mix"]})).await;
    plain.join(&["mix"]).await;
    v1.join(&["mix"]).await;
    let ids = [v2.ws.id.clone(), plain.id.clone()];
    assert!(
        eventually(|| ids.iter().all(|id| srv
            .server
            .client(id.as_deref().unwrap())
            .unwrap()
            .rooms
            .len()
            >= 2))
        .await
    );
    tokio::time::sleep(common::QUIET).await;
    plain.emit("hello", json!("everyone")).await;
    assert_eq!(plain.expect_event("hello").await["data"], "everyone");
    assert_eq!(
        v2.next().await,
        json!({"event": "hello", "data": "everyone"})
    );
    let sealed = v1.expect_event("encrypted").await;
    let opened = v1_key
        .open(
            sealed["data"]["iv"].as_str().unwrap(),
            sealed["data"]["ct"].as_str().unwrap(),
            None,
        )
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&opened).unwrap(),
        json!({"event": "hello", "data": "everyone"})
    );
}

#[tokio::test]
async fn pinned_signing_key_verifies() {
    let key = ServerSigningKey::generate();
    let pinned = PinnedServerKey::from_b64(&key.public_key_b64()).unwrap();
    let srv = spawn(v2_builder(V2Config::new().signing_key(key))).await;
    let mut c = V2::handshake(&srv, Some(&pinned)).await;
    c.emit("authenticate", json!({"type": "token", "token": "pinned"}))
        .await;
    assert_eq!(c.next().await["data"]["userId"], "pinned");
}

#[tokio::test]
async fn required_v2_accepts_v2_clients() {
    let srv = spawn(v2_builder(V2Config::new().required(true))).await;
    let (_c, connected) = V2::connect(&srv, "ok").await;
    assert_eq!(connected["userId"], "ok");
}

// ---- negative tests, one per property -------------------------------------------------------

#[tokio::test]
async fn wrong_pinned_key_is_refused_by_the_client() {
    let srv = spawn(v2_builder(
        V2Config::new().signing_key(ServerSigningKey::generate()),
    ))
    .await;
    let other = PinnedServerKey::from_b64(&ServerSigningKey::generate().public_key_b64()).unwrap();
    let mut ws = srv.client().await;
    let (client, answer) = hello(&mut ws).await;
    assert!(
        client
            .finish(hello_data(&answer.to_string()).unwrap(), Some(&other))
            .is_err()
    );
    // And an unsigned server for a pinning client.
    let unsigned = spawn(v2_builder(V2Config::new())).await;
    let mut ws = unsigned.client().await;
    let (client, answer) = hello(&mut ws).await;
    assert!(
        client
            .finish(&answer["data"].to_string(), Some(&other))
            .is_err()
    );
}

#[tokio::test]
async fn a_flipped_bit_closes_with_4004_and_reaches_no_hook() {
    let (srv, seen) = recording(V2Config::new()).await;
    let (mut c, _) = V2::connect(&srv, "alice").await;
    let record = c.seal(r#"{"event":"echo","data":"tampered"}"#);
    let mut v: Value = serde_json::from_str(&record).unwrap();
    let mut ct = B64.decode(v["data"]["ct"].as_str().unwrap()).unwrap();
    ct[3] ^= 0x20;
    v["data"]["ct"] = Value::String(B64.encode(ct));
    c.ws.send_text(&v.to_string()).await;
    assert_eq!(
        expect_4004(&mut c.ws).await,
        Vec::<Value>::new(),
        "no error event"
    );
    assert!(seen.lock().unwrap().is_empty());
    assert!(eventually(|| srv.server.metrics().record_failures == 1).await);
}

#[tokio::test]
async fn a_replayed_record_closes_with_4004() {
    let (srv, seen) = recording(V2Config::new()).await;
    let (mut c, _) = V2::connect(&srv, "alice").await;
    let record = c.seal(r#"{"event":"echo","data":1}"#);
    c.ws.send_text(&record).await;
    assert_eq!(c.next().await["data"], 1);
    c.ws.send_text(&record).await;
    expect_4004(&mut c.ws).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the replay never reached the hook"
    );
}

#[tokio::test]
async fn reordered_records_close_with_4004() {
    let (srv, seen) = recording(V2Config::new()).await;
    let (mut c, _) = V2::connect(&srv, "alice").await;
    let first = c.seal(r#"{"event":"echo","data":1}"#);
    let second = c.seal(r#"{"event":"echo","data":2}"#);
    c.ws.send_text(&second).await;
    c.ws.try_send_text(&first).await;
    expect_4004(&mut c.ws).await;
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_dropped_record_closes_with_4004() {
    let (srv, seen) = recording(V2Config::new()).await;
    let (mut c, _) = V2::connect(&srv, "alice").await;
    let _lost = c.seal(r#"{"event":"echo","data":1}"#);
    let next = c.seal(r#"{"event":"echo","data":2}"#);
    c.ws.send_text(&next).await;
    expect_4004(&mut c.ws).await;
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_reflected_server_record_closes_with_4004() {
    let (srv, seen) = recording(V2Config::new()).await;
    let (mut c, _) = V2::connect(&srv, "alice").await;
    c.emit("echo", json!("ping")).await;
    let from_server = c.raw().await; // the server's own sealed echo
    c.ws.send_text(&from_server).await;
    expect_4004(&mut c.ws).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn plaintext_after_the_handshake_closes_with_4004() {
    let (srv, seen) = recording(V2Config::new()).await;
    let (mut c, _) = V2::connect(&srv, "alice").await;
    c.ws.emit("echo", json!("in the clear")).await;
    expect_4004(&mut c.ws).await;
    assert!(seen.lock().unwrap().is_empty());
    // Also a plaintext authenticate in place of the sealed one.
    let mut c = V2::handshake(&srv, None).await;
    c.ws.emit("authenticate", json!({"type": "token", "token": "x"}))
        .await;
    expect_4004(&mut c.ws).await;
}

#[tokio::test]
async fn authenticate_instead_of_the_fin_fails_the_handshake() {
    let srv = spawn(v2_builder(V2Config::new())).await;
    let mut ws = srv.client().await;
    let (_client, answer) = hello(&mut ws).await;
    assert_eq!(answer["event"], "handshake");
    ws.emit("authenticate", json!({"type": "token", "token": "x"}))
        .await;
    expect_handshake_failed(&mut ws).await;
    assert_eq!(srv.server.metrics().handshake_failures, 1);
}

#[tokio::test]
async fn a_fin_from_another_connection_fails_the_handshake() {
    let srv = spawn(v2_builder(V2Config::new())).await;
    let mut a = srv.client().await;
    let (client_a, answer_a) = hello(&mut a).await;
    let (_, fin_a) = client_a
        .finish(&answer_a["data"].to_string(), None)
        .unwrap();
    let mut b = srv.client().await;
    let _ = hello(&mut b).await;
    b.send_text(&fin_a).await;
    expect_handshake_failed(&mut b).await;
}

#[tokio::test]
async fn stripped_v2_offer_is_refused() {
    let srv = spawn(v2_builder(V2Config::new())).await;
    let mut ws = srv.client().await;
    let (_, hello) = ClientHandshake::start().unwrap();
    ws.send_text(&hello.replace(r#"["sealcast-v2"]"#, r#"["v1"]"#))
        .await;
    expect_handshake_failed(&mut ws).await;
}

#[tokio::test]
async fn required_v2_refuses_v1_and_plaintext_clients_before_the_hook() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let srv = spawn(
        test_builder()
            .authenticate(move |r| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { Ok(r.token().map(sealcast::Identity::user)) }
            })
            .encryption_v1(KeyPair::generate())
            .encryption_v2(V2Config::new().required(true)),
    )
    .await;
    let mut plain = srv.client().await;
    plain
        .emit("authenticate", json!({"type": "token", "token": "p"}))
        .await;
    expect_handshake_failed(&mut plain).await;
    let mut v1 = srv.client().await;
    v1.emit(
        "authenticate",
        json!({"type": "token", "token": "v", "publicKey": KeyPair::generate().public_key_b64()}),
    )
    .await;
    expect_handshake_failed(&mut v1).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "credentials never reached the hook"
    );
}

#[tokio::test]
async fn v2_hello_to_a_server_without_v2_fails_the_handshake() {
    let srv = spawn(test_builder().encryption_v1(KeyPair::generate())).await;
    let mut ws = srv.client().await;
    let (_, hello) = ClientHandshake::start().unwrap();
    ws.send_text(&hello).await;
    expect_handshake_failed(&mut ws).await;
}

#[tokio::test]
async fn off_curve_identity_and_compressed_keys_fail_the_handshake() {
    let srv = spawn(v2_builder(V2Config::new())).await;
    let raw = KeyPair::generate().public_key().to_raw();
    let mut off_curve = raw;
    off_curve[64] ^= 1;
    let mut identity = [0u8; 65];
    identity[0] = 4;
    let mut compressed = vec![0x02 | (raw[64] & 1)];
    compressed.extend_from_slice(&raw[1..33]);
    for key in [
        B64.encode(off_curve),
        B64.encode(identity),
        B64.encode(&compressed),
    ] {
        let mut ws = srv.client().await;
        ws.emit(
            "handshake",
            json!({"v": ["sealcast-v2"], "pub": key, "nonce": B64.encode([1u8; 32])}),
        )
        .await;
        expect_handshake_failed(&mut ws).await;
    }
    assert_eq!(srv.server.metrics().handshake_failures, 3);
}

#[tokio::test]
async fn pending_handshakes_count_against_max_pending_auth() {
    let limits = Limits {
        max_pending_auth: 1,
        ..Limits::default()
    };
    let srv = spawn(v2_builder(V2Config::new()).limits(limits)).await;
    let mut first = srv.client().await;
    let (client, answer) = hello(&mut first).await; // holds the one permit, awaiting its fin
    let mut second = srv.client().await;
    let (_, hello2) = ClientHandshake::start().unwrap();
    second.send_text(&hello2).await;
    assert_eq!(second.expect_close().await.0, Some(1013));
    // The fin releases the permit; authenticate takes it again.
    let (channel, fin) = client.finish(&answer["data"].to_string(), None).unwrap();
    first.send_text(&fin).await;
    let mut c = V2::established(first, channel, false);
    c.emit("authenticate", json!({"type": "token", "token": "a"}))
        .await;
    assert_eq!(c.next().await["event"], "connected");
}

#[tokio::test]
async fn rate_limited_records_are_still_opened_so_the_channel_survives() {
    let limits = Limits {
        frames_per_second: 2,
        frame_burst: 4,
        ..Limits::default()
    };
    let config = V2Config::new();
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = seen.clone();
    let srv = spawn(v2_builder(config).limits(limits).on_message(move |m| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(m.data::<Value>()?);
            Ok(())
        }
    }))
    .await;
    // The hello and `authenticate` take two tokens (the sealed fin is not charged).
    let (mut c, _) = V2::connect(&srv, "fast").await;
    for i in 0..3 {
        c.emit("chat", json!(i)).await; // 2 accepted, the third refused
    }
    assert_eq!(
        c.next().await,
        json!({"event": "error", "data": {"message": "Rate limit exceeded"}})
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    c.emit("chat", json!("after the refill")).await;
    assert!(eventually(|| seen.lock().unwrap().len() == 3).await);
    assert_eq!(
        *seen.lock().unwrap(),
        [json!(0), json!(1), json!("after the refill")]
    );
    assert_eq!(srv.server.metrics().record_failures, 0);
}
