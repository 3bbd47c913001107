//! The encryption pipeline over real sockets: the built-in v1 handshake, sealed delivery,
//! mixed rooms, `require_encryption`, the spec's custom handshake + transformer, and
//! encryption negotiated after authentication.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use common::{Received, TestServer, WsClient, eventually, spawn, test_builder};
use sealcast::{
    Identity, Server,
    crypto::{KeyPair, PublicKey, V1Key, v1},
    server::{HandshakeReply, Transformed},
};
use serde_json::{Value, json};

/// A client that offers a key and derives its v1 key from `connected`.
struct Sealed {
    ws: WsClient,
    key: V1Key,
}

impl Sealed {
    async fn connect(srv: &TestServer, user: &str) -> Self {
        let own = KeyPair::generate();
        let mut ws = srv.client().await;
        ws.emit(
            "authenticate",
            json!({"type": "token", "token": user, "publicKey": own.public_key_b64()}),
        )
        .await;
        let connected = ws.expect_event("connected").await;
        ws.id = connected["data"]["id"].as_str().map(str::to_owned);
        let server_key =
            PublicKey::from_b64(connected["data"]["serverPublicKey"].as_str().unwrap()).unwrap();
        let salt = B64
            .decode(connected["data"]["salt"].as_str().unwrap())
            .unwrap();
        assert_eq!(salt.len(), 32);
        let key = V1Key::derive(&own, &server_key, &salt).unwrap();
        Self { ws, key }
    }

    /// The next message, opened; asserts it came sealed.
    async fn next(&mut self) -> Value {
        serde_json::from_slice(&self.next_text().await).unwrap()
    }

    /// The next message's sealed text, opened.
    async fn next_text(&mut self) -> Vec<u8> {
        let frame = self.ws.expect_event("encrypted").await;
        let d = &frame["data"];
        self.key
            .open(d["iv"].as_str().unwrap(), d["ct"].as_str().unwrap(), None)
            .expect("sealed for this client")
    }
}

fn v1_builder() -> sealcast::ServerBuilder {
    test_builder().encryption_v1(KeyPair::generate())
}

#[tokio::test]
async fn built_in_v1_handshake_seals_every_message_and_connected_stays_plaintext() {
    let srv = spawn(v1_builder()).await;
    let mut c = Sealed::connect(&srv, "alice").await;
    let id = c.ws.id.clone().unwrap();
    assert!(srv.server.client(&id).unwrap().encrypted);
    srv.server
        .send_to_client(&id, "secret", &json!({"n": 1}))
        .unwrap();
    let opened = c.next().await;
    assert_eq!(opened, json!({"event": "secret", "data": {"n": 1}}));
    // Error events are sealed too.
    c.ws.emit("authenticate", json!({})).await;
    assert_eq!(
        c.next().await,
        json!({"event": "error", "data": {"message": "Already authenticated"}})
    );
}

/// The sealed text is the message's JSON followed by spaces up to whole AES blocks (JSON
/// whitespace, which the spec's client and ours skip when they parse it), at every length
/// around a block.
#[tokio::test]
async fn v1_seals_the_message_padded_with_spaces_to_whole_aes_blocks() {
    let srv = spawn(v1_builder()).await;
    let mut c = Sealed::connect(&srv, "alice").await;
    let id = c.ws.id.clone().unwrap();
    for n in 0..20 {
        let text = "y".repeat(n);
        srv.server.send_to_client(&id, "pad", &json!(text)).unwrap();
        let sealed = c.next_text().await;
        let json = format!(r#"{{"event":"pad","data":"{text}"}}"#);
        assert_eq!(sealed.len() % 16, 0, "{n}");
        assert!(sealed.len() - json.len() < 16, "{n}");
        assert_eq!(&sealed[..json.len()], json.as_bytes(), "{n}");
        assert!(sealed[json.len()..].iter().all(|&b| b == b' '), "{n}");
    }
}

#[tokio::test]
async fn tampered_ciphertext_does_not_open() {
    let srv = spawn(v1_builder()).await;
    let mut c = Sealed::connect(&srv, "t").await;
    srv.server
        .send_to_client(c.ws.id.as_deref().unwrap(), "m", &"x")
        .unwrap();
    let frame = c.ws.expect_event("encrypted").await;
    let mut ct = B64.decode(frame["data"]["ct"].as_str().unwrap()).unwrap();
    ct[0] ^= 1;
    assert!(
        c.key
            .open(frame["data"]["iv"].as_str().unwrap(), &B64.encode(ct), None)
            .is_err()
    );
}

#[tokio::test]
async fn mixed_room_plaintext_and_encrypted_each_exactly_once() {
    let srv = spawn(v1_builder()).await;
    let mut plain = Vec::new();
    let mut sealed = Vec::new();
    for i in 0..5 {
        let mut p = srv.authed(&format!("p{i}")).await;
        p.join(&["mixed"]).await;
        plain.push(p);
        let mut s = Sealed::connect(&srv, &format!("s{i}")).await;
        s.ws.join(&["mixed"]).await;
        sealed.push(s);
    }
    assert!(eventually(|| srv.server.clients_by_room("mixed").len() == 10).await);
    for n in 0..50 {
        srv.server.send_to_room("mixed", "tick", &n, &[]).unwrap();
    }
    srv.server.broadcast("all", &"b", &[]).unwrap();
    for p in &mut plain {
        let got: Vec<Value> = p.drain().await;
        assert_eq!(got.len(), 51);
        for (n, v) in got[..50].iter().enumerate() {
            assert_eq!(*v, json!({"event": "tick", "data": n}));
        }
        assert_eq!(got[50], json!({"event": "all", "data": "b"}));
    }
    for s in &mut sealed {
        for n in 0..50 {
            assert_eq!(s.next().await, json!({"event": "tick", "data": n}));
        }
        assert_eq!(s.next().await, json!({"event": "all", "data": "b"}));
        s.ws.expect_silence().await;
    }
}

/// A burst far longer than one sealing stretch between yields (128 seals), with frames large
/// enough that every batch is written in several chunks, to several sealed clients at once
/// (their writers share the worker threads' buffers) and a plaintext one: each gets every
/// message once, in order, opened with its own key.
#[tokio::test]
async fn a_long_sealed_burst_arrives_whole_and_in_order_for_every_client() {
    const MESSAGES: usize = 700;
    let srv = spawn(v1_builder()).await;
    let mut sealed = Vec::new();
    for i in 0..4 {
        let mut s = Sealed::connect(&srv, &format!("burst{i}")).await;
        s.ws.join(&["burst"]).await;
        sealed.push(s);
    }
    let mut plain = srv.authed("plain").await;
    plain.join(&["burst"]).await;
    assert!(eventually(|| srv.server.clients_by_room("burst").len() == 5).await);
    let pad = "p".repeat(300);
    for n in 0..MESSAGES {
        srv.server
            .send_to_room("burst", "tick", &json!({"n": n, "pad": pad}), &[])
            .unwrap();
    }
    for s in &mut sealed {
        for n in 0..MESSAGES {
            assert_eq!(
                s.next().await,
                json!({"event": "tick", "data": {"n": n, "pad": pad}})
            );
        }
        s.ws.expect_silence().await;
    }
    let got: Vec<Value> = plain.drain().await;
    assert_eq!(got.len(), MESSAGES);
    assert!(got.iter().enumerate().all(|(n, v)| v["data"]["n"] == n));
}

#[tokio::test]
async fn require_encryption_refuses_missing_and_bad_keys_with_4004() {
    let srv = spawn(v1_builder().require_encryption(true)).await;
    let off_curve = {
        let mut raw = [0u8; 65];
        raw[0] = 4;
        raw[1] = 1;
        raw[33] = 1;
        B64.encode(raw)
    };
    let compressed = {
        let raw = KeyPair::generate().public_key().to_raw();
        let mut c = vec![2 + (raw[64] & 1)];
        c.extend_from_slice(&raw[1..33]);
        B64.encode(c)
    };
    let identity = B64.encode([0u8; 65]);
    for key in [
        Value::Null,
        json!("not base64!"),
        json!(off_curve),
        json!(compressed),
        json!(identity),
        json!(42),
    ] {
        let mut c = srv.client().await;
        c.emit("authenticate", json!({"token": "u", "publicKey": key}))
            .await;
        c.expect_error("Encryption handshake failed").await;
        assert_eq!(c.expect_close().await.0, Some(4004), "key {key}");
    }
    // A good key passes.
    Sealed::connect(&srv, "ok").await;
    // Optional encryption: no key → plaintext client; a bad key still fails.
    let optional = spawn(v1_builder()).await;
    let mut p = optional.authed("plain").await;
    assert!(
        !optional
            .server
            .client(p.id.as_deref().unwrap())
            .unwrap()
            .encrypted
    );
    p.expect_silence().await;
    let mut bad = optional.client().await;
    bad.emit("authenticate", json!({"token": "u", "publicKey": "AAAA"}))
        .await;
    bad.expect_error("Encryption handshake failed").await;
    assert_eq!(bad.expect_close().await.0, Some(4004));
}

#[tokio::test]
async fn require_encryption_without_any_handshake_closes_4004_without_an_error_event() {
    let srv = spawn(test_builder().require_encryption(true)).await;
    let mut c = srv.client().await;
    c.emit("authenticate", json!({"token": "u"})).await;
    match c.recv().await {
        Received::Close(code, _) => assert_eq!(code, Some(4004)),
        other => panic!("expected a bare 4004 close, got {other:?}"),
    }
}

#[tokio::test]
async fn spec_style_custom_handshake_and_transformer_with_batch_limit() {
    // The README's custom handshake: derive with the v1 helpers, keep keys by client id, seal in
    // the transformer. Plaintext clients never reach the transformer.
    let server_key = Arc::new(KeyPair::generate());
    let keys: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<V1Key>>>> = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (k1, k2, sk) = (keys.clone(), keys.clone(), server_key.clone());
    let (f, p, n) = (in_flight.clone(), peak.clone(), calls.clone());
    let builder = test_builder()
        .require_encryption(false)
        .encrypted_batch_limit(3)
        .handshake(move |req| {
            let keys = k1.clone();
            let sk = sk.clone();
            async move {
                let Some(pk) = req.data::<Value>()?["publicKey"]
                    .as_str()
                    .map(str::to_owned)
                else {
                    return Ok(None);
                };
                let (key, salt) = v1::server_handshake(&sk, &pk)?;
                keys.lock()
                    .unwrap()
                    .insert(req.client_id.clone(), Arc::new(key));
                Ok(Some(HandshakeReply {
                    server_public_key: sk.public_key_b64(),
                    salt,
                }))
            }
        })
        .outbound_transformer(move |req| {
            let keys = k2.clone();
            let (f, p, n) = (f.clone(), p.clone(), n.clone());
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                if req.event == "unchanged" {
                    return Ok(None);
                }
                let key = keys
                    .lock()
                    .unwrap()
                    .get(&req.client_id)
                    .cloned()
                    .ok_or("no key")?;
                let frame = json!({"event": req.event, "data": req.data}).to_string();
                let (iv, ct) = key.seal(frame.as_bytes(), None)?;
                let data = serde_json::value::to_raw_value(
                    &json!({"iv": B64.encode(iv), "ct": B64.encode(ct)}),
                )?;
                Ok(Some(Transformed {
                    event: "encrypted".into(),
                    data,
                }))
            }
        });
    let srv = spawn(builder).await;
    let mut sealed = Vec::new();
    for i in 0..8 {
        let mut s = Sealed::connect(&srv, &format!("s{i}")).await;
        s.ws.join(&["room"]).await;
        sealed.push(s);
    }
    let mut plain = srv.authed("plain").await;
    plain.join(&["room"]).await;
    assert!(eventually(|| srv.server.clients_by_room("room").len() == 9).await);
    srv.server
        .send_to_room("room", "hello", &json!({"x": 1}), &[])
        .unwrap();
    srv.server
        .send_to_room("room", "unchanged", &json!(2), &[])
        .unwrap();
    for s in &mut sealed {
        assert_eq!(s.next().await, json!({"event": "hello", "data": {"x": 1}}));
        assert_eq!(s.ws.expect_event("unchanged").await["data"], 2);
    }
    assert_eq!(plain.expect_event("hello").await["data"], json!({"x": 1}));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        16,
        "only encrypted receivers are transformed"
    );
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "batch limit held: {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(
        peak.load(Ordering::SeqCst) >= 2,
        "transforms ran concurrently"
    );
}

#[tokio::test]
async fn encryption_negotiated_later_through_a_message() {
    let server_key = Arc::new(KeyPair::generate());
    let sk = server_key.clone();
    let builder = Server::builder()
        .authenticate(|r| async move { Ok(r.token().map(Identity::user)) })
        .on_message(move |m| {
            let sk = sk.clone();
            async move {
                if m.event == "handshake" {
                    let pk: String = m.data::<Value>()?["publicKey"]
                        .as_str()
                        .ok_or("no key")?
                        .to_owned();
                    let (key, salt) = v1::server_handshake(&sk, &pk)?;
                    // Reply first (plaintext), then switch: later messages are sealed.
                    m.server.send_to_client(
                        &m.client_id,
                        "handshake-complete",
                        &json!({"serverPublicKey": sk.public_key_b64(), "salt": salt}),
                    )?;
                    assert!(m.server.enable_client_encryption_v1(&m.client_id, key));
                    m.server
                        .send_to_client(&m.client_id, "after", &json!("sealed"))?;
                }
                Ok(())
            }
        });
    let srv = spawn(builder).await;
    let mut ws = srv.authed("late").await;
    let own = KeyPair::generate();
    ws.emit("handshake", json!({"publicKey": own.public_key_b64()}))
        .await;
    let reply = ws.expect_event("handshake-complete").await;
    let server_pub =
        PublicKey::from_b64(reply["data"]["serverPublicKey"].as_str().unwrap()).unwrap();
    let salt = B64.decode(reply["data"]["salt"].as_str().unwrap()).unwrap();
    let mut c = Sealed {
        ws,
        key: V1Key::derive(&own, &server_pub, &salt).unwrap(),
    };
    assert_eq!(c.next().await, json!({"event": "after", "data": "sealed"}));
    let id = c.ws.id.clone().unwrap();
    assert!(srv.server.client(&id).unwrap().encrypted);
    assert!(
        !srv.server
            .enable_client_encryption_v1(&id, V1Key::from_bytes([7; 32]).expect("key")),
        "irreversible, once"
    );
    assert!(
        !srv.server.enable_client_encryption(&id),
        "no transformer configured"
    );
}
