//! `sealcast serve` HTTP surface: the publish and rooms API (disabled without a key; 401, 400,
//! 413, 404 as JSON; 200 reaching WebSocket clients), `/metrics` moving with traffic, the
//! connect/disconnect webhook (signed; a dead endpoint never blocks clients).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::{Router, http::HeaderMap, routing::post};
use common::gateway::{Gateway, Spec};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const KEY: &str = "backend api key 0123456789";

async fn api_gateway() -> Gateway {
    Spec::new()
        .config(&format!("[api]\nkey = \"{KEY}\"\nmax_body_bytes = 4096\n"))
        .start()
        .await
}

#[tokio::test]
async fn the_api_is_disabled_without_a_key() {
    let gw = Spec::new().start().await;
    for (status, reply) in [
        (
            404,
            gw.post(
                "/api/publish",
                Some(KEY),
                r#"{"broadcast":true,"event":"e"}"#,
            )
            .await,
        ),
        (404, gw.get_with_key("/api/rooms/chat-x/clients", KEY).await),
    ] {
        assert_eq!(reply.status, status, "{}", reply.body);
        assert_eq!(reply.json(), json!({"error": "not found"}));
    }
}

#[tokio::test]
async fn publish_checks_the_key_and_the_body() {
    let gw = api_gateway().await;
    let body = r#"{"room":"chat-x","event":"e","data":1}"#;
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (None, body.into(), 401, "Authorization"),
        (
            Some("wrong key 0123456789abcdef"),
            body.into(),
            401,
            "invalid api key",
        ),
        (Some(""), body.into(), 401, "Bearer"),
        (Some(KEY), "{not json".into(), 400, "invalid JSON"),
        (Some(KEY), r#"{"room":"r"}"#.into(), 400, "event"),
        (
            Some(KEY),
            r#"{"event":"e"}"#.into(),
            400,
            "exactly one target",
        ),
        (
            Some(KEY),
            r#"{"room":"r","user":"u","event":"e"}"#.into(),
            400,
            "exactly one target",
        ),
        (
            Some(KEY),
            r#"{"room":"ws:x","event":"e"}"#.into(),
            400,
            "reserved",
        ),
        (Some(KEY), r#"{"room":"r","event":""}"#.into(), 400, "event"),
        (
            Some(KEY),
            r#"{"room":"r","event":"connected"}"#.into(),
            400,
            "reserved",
        ),
        (
            Some(KEY),
            r#"{"client":"not-a-uuid","event":"e"}"#.into(),
            400,
            "UUID",
        ),
        (
            Some(KEY),
            r#"{"user":"u","event":"e","exclude":["x"]}"#.into(),
            400,
            "exclude",
        ),
        (
            Some(KEY),
            r#"{"broadcast":false,"event":"e"}"#.into(),
            400,
            "broadcast",
        ),
        (
            Some(KEY),
            r#"{"room":"r","event":"e","surprise":1}"#.into(),
            400,
            "surprise",
        ),
        (
            Some(KEY),
            format!(
                r#"{{"room":"r","event":"e","data":"{}"}}"#,
                "x".repeat(5000)
            ),
            413,
            "larger than 4096",
        ),
    ];
    for (key, body, status, mention) in cases {
        let reply = gw.post("/api/publish", key, &body).await;
        assert_eq!(reply.status, status, "{key:?} {body:.80}: {}", reply.body);
        assert!(reply.content_type.starts_with("application/json"));
        let error = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(mention), "{body:.80}: {error}");
    }
    // Unknown routes and methods are JSON too.
    let reply = gw.get_with_key("/api/nothing", KEY).await;
    assert_eq!(
        (reply.status, reply.json()),
        (404, json!({"error": "not found"}))
    );
    let reply = gw.get_with_key("/api/publish", KEY).await;
    assert_eq!(reply.status, 405);
    // The rooms API needs the key too.
    assert_eq!(gw.get("/api/rooms/chat-x/clients").await.status, 401);
}

#[tokio::test]
async fn publish_reaches_websocket_clients() {
    let gw = api_gateway().await;
    let mut alice = gw.authed("alice").await;
    let mut bob = gw.authed("bob").await;
    alice.join(&["chat-news"]).await;
    bob.join(&["chat-news"]).await;
    // Joins have no reply: wait until the API lists both members.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let members = gw.get_with_key("/api/rooms/chat-news/clients", KEY).await;
        assert_eq!(members.status, 200, "{}", members.body);
        let mut users: Vec<String> = members.json()["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["userId"].as_str().unwrap().to_owned())
            .collect();
        users.sort();
        if users == ["alice", "bob"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "members: {users:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let publish = |body: Value| {
        let gw = &gw;
        async move {
            let reply = gw.post("/api/publish", Some(KEY), &body.to_string()).await;
            assert_eq!(reply.status, 200, "{body}: {}", reply.body);
            assert_eq!(reply.json(), json!({"ok": true}));
        }
    };
    let bob_id = bob.id.clone().unwrap();
    publish(json!({"room": "chat-news", "event": "news", "data": {"n": 1}, "exclude": [bob_id]}))
        .await;
    let got = alice.expect_event("news").await;
    assert_eq!(got["data"], json!({"n": 1}));
    bob.expect_silence().await;

    publish(json!({"user": "bob", "event": "dm", "data": "hi"})).await;
    assert_eq!(bob.expect_event("dm").await["data"], "hi");
    alice.expect_silence().await;

    let alice_id = alice.id.clone().unwrap();
    publish(json!({"client": alice_id, "event": "direct"})).await;
    let got = alice.expect_event("direct").await;
    assert_eq!(got["data"], Value::Null);
    bob.expect_silence().await;

    publish(json!({"broadcast": true, "event": "all", "data": [1, 2]})).await;
    assert_eq!(alice.expect_event("all").await["data"], json!([1, 2]));
    assert_eq!(bob.expect_event("all").await["data"], json!([1, 2]));

    assert_eq!(gw.metric("sealcast_api_publishes_total").await, 4);
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let gw = api_gateway().await;
    let reply = gw.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/plain; version=0.0.4"));
    assert!(reply.body.contains("# TYPE sealcast_connections gauge"));
    assert_eq!(
        gw.metric("sealcast_connections{state=\"authenticated\"}")
            .await,
        0
    );
    assert_eq!(gw.metric("sealcast_frames_in_total").await, 0);
    assert_eq!(gw.metric("sealcast_broker_ready").await, 1);

    let mut alice = gw.authed("alice").await;
    let _pending = gw.client().await; // connected, never authenticates
    alice.join(&["chat-m"]).await;
    alice
        .emit("chat", json!({"room": "chat-m", "text": "one"}))
        .await;
    alice.expect_event("chat").await;
    gw.post("/api/publish", Some(KEY), r#"{"user":"alice","event":"e"}"#)
        .await;
    alice.expect_event("e").await;
    common::gateway::expect_refused(&gw, "no spaces allowed").await;

    assert!(gw.metric("sealcast_frames_in_total").await >= 3);
    assert!(gw.metric("sealcast_frames_out_total").await >= 3);
    assert!(gw.metric("sealcast_deliveries_total").await >= 2);
    assert_eq!(gw.metric("sealcast_connections_opened_total").await, 3);
    for (state, expected) in [
        ("authenticated", 1),
        ("unauthorized", 1),
        ("authenticating", 0),
    ] {
        let series = format!("sealcast_connections{{state=\"{state}\"}}");
        assert_eq!(
            gw.metric_eventually(&series, expected).await,
            expected,
            "{state}"
        );
    }
    assert_eq!(gw.metric("sealcast_auth_failures_total").await, 1);
    assert_eq!(gw.metric("sealcast_dropped_total").await, 0);
    assert_eq!(gw.metric("sealcast_backpressured_clients").await, 0);
    assert_eq!(gw.metric("sealcast_publish_failures_total").await, 0);
    assert_eq!(gw.metric("sealcast_handshake_failures_total").await, 0);
    let body = gw.get("/metrics").await.body;
    assert!(
        !body.contains("sealcast_redis_"),
        "no Redis, no Redis stats"
    );

    // Metrics can be switched off.
    let quiet = Spec::new()
        .env("SEALCAST_METRICS_ENABLED", "false")
        .start()
        .await;
    assert_eq!(quiet.get("/metrics").await.status, 404);
}

/// Captures POSTs: (signature header, body).
async fn webhook_receiver() -> (
    String,
    tokio::sync::mpsc::Receiver<(Option<String>, String)>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let sig = headers
                    .get("x-sealcast-signature")
                    .map(|v| v.to_str().unwrap().to_owned());
                let _ = tx.send((sig, body)).await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/hook"), rx)
}

async fn next_hook(
    hooks: &mut tokio::sync::mpsc::Receiver<(Option<String>, String)>,
) -> (Option<String>, String) {
    tokio::time::timeout(common::WAIT, hooks.recv())
        .await
        .expect("a webhook in time")
        .unwrap()
}

#[tokio::test]
async fn the_webhook_reports_connects_and_disconnects() {
    let (url, mut hooks) = webhook_receiver().await;
    let secret = "webhook secret 0123";
    let gw = Spec::new()
        .config(&format!(
            "[webhook]\nurl = \"{url}\"\nsecret = \"{secret}\"\ntimeout = \"1s\"\n"
        ))
        .start()
        .await;
    let alice = gw.authed("alice").await;
    let alice_id = alice.id.clone().unwrap();
    let (sig, body) = next_hook(&mut hooks).await;
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event"], "connect");
    assert_eq!(event["clientId"], alice_id.as_str());
    assert_eq!(event["userId"], "alice");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sig, Some(format!("sha256={expected}")));

    alice.close().await;
    let (_, body) = next_hook(&mut hooks).await;
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event"], "disconnect");
    assert_eq!(event["clientId"], alice_id.as_str());
    assert_eq!(
        gw.metric_at_least("sealcast_webhook_sent_total", 2).await,
        2
    );
}

#[tokio::test]
async fn a_dead_webhook_never_blocks_clients() {
    let port = common::redis::free_port();
    let gw = Spec::new()
        .config(&format!(
            "[webhook]\nurl = \"http://127.0.0.1:{port}/hook\"\ntimeout = \"500ms\"\n"
        ))
        .start()
        .await;
    let started = tokio::time::Instant::now();
    let mut alice = gw.authed("alice").await;
    alice.join(&["chat-a"]).await;
    alice
        .emit("chat", json!({"room": "chat-a", "text": "still here"}))
        .await;
    alice.expect_event("chat").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        gw.metric_at_least("sealcast_webhook_failures_total", 1)
            .await
            >= 1
    );
    assert!(gw.stderr_contains("webhook failed").await);
}
