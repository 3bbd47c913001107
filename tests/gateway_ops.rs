//! `sealcast serve` operations: `/healthz` and `/readyz` (with a dead and a live Redis),
//! graceful shutdown on SIGTERM (clients closed with 1001, exit 0), JSON logs, and two gateways
//! scaled out over one Redis.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    gateway::Spec,
    redis::{RedisProcess, free_port},
};
use serde_json::{Value, json};

const KEY: &str = "ops api key 0123456789";

#[tokio::test]
async fn readiness_follows_redis() {
    let port = free_port();
    let gw = Spec::new()
        .arg("--redis")
        .arg(&format!("redis://127.0.0.1:{port}"))
        .start()
        .await;
    let health = gw.get("/healthz").await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    let ready = gw.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.json()["broker"], "unavailable");
    assert_eq!(gw.metric("sealcast_broker_ready").await, 0);
    // Redis stats are exported when Redis is configured.
    gw.metric("sealcast_redis_reconnects_total").await;
    // Local delivery works without Redis.
    let mut alice = gw.authed("alice").await;
    alice.join(&["chat-local"]).await;
    alice
        .emit("chat", json!({"room": "chat-local", "text": "local"}))
        .await;
    alice.expect_event("chat").await;

    // Redis comes up: the gateway becomes ready by itself.
    let _redis = RedisProcess::start_with(port, Vec::new()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = gw.get("/readyz").await;
        if ready.status == 200 {
            assert_eq!(ready.json()["status"], "ready");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready after Redis came up: {}",
            ready.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(gw.metric("sealcast_broker_ready").await, 1);
}

#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_exits_0() {
    let mut gw = Spec::new().start().await;
    let mut alice = gw.authed("alice").await;
    let mut pending = gw.client().await;
    gw.terminate();
    let (code, _) = alice.expect_close().await;
    assert_eq!(code, Some(1001));
    let (code, _) = pending.expect_close().await;
    assert_eq!(code, Some(1001));
    let status = gw.wait(Duration::from_secs(15)).await.expect("exits");
    assert_eq!(status.code(), Some(0), "{}", gw.stderr());
    assert!(gw.stderr_contains("SIGTERM").await, "{}", gw.stderr());
}

#[tokio::test]
async fn json_logs() {
    let gw = Spec::new().arg("--log-format").arg("json").start().await;
    assert!(gw.stderr_contains("sealcast gateway listening").await);
    let text = gw.stderr();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let listening = lines
        .iter()
        .find(|l| l["fields"]["message"] == "sealcast gateway listening")
        .unwrap();
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["fields"]["address"], gw.addr.to_string());
    assert!(lines.iter().any(|l| l["level"] == "WARN"), "demo warning");
}

#[tokio::test]
async fn two_gateways_on_one_redis_are_one_deployment() {
    let redis = RedisProcess::start().await;
    let config = format!("[api]\nkey = \"{KEY}\"\n");
    let a = Spec::new()
        .config(&config)
        .arg("--redis")
        .arg(&redis.url())
        .start()
        .await;
    let b = Spec::new()
        .config(&config)
        .env("SEALCAST_REDIS", &redis.url())
        .start()
        .await;
    for gw in [&a, &b] {
        let ready = gw.get("/readyz").await;
        assert_eq!(ready.status, 200, "{}", ready.body);
    }
    let mut alice = a.authed("alice").await;
    let mut bob = b.authed("bob").await;
    alice.join(&["chat-both"]).await;
    bob.join(&["chat-both"]).await;
    // Joins and the Redis subscriptions they cause are applied in the background: publish
    // through A until B's member hears it.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let reply = a
            .post(
                "/api/publish",
                Some(KEY),
                r#"{"room":"chat-both","event":"warmup"}"#,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        if let Some(common::Received::Event(e)) = bob.recv_within(common::QUIET).await {
            assert_eq!(e["event"], "warmup");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "B never subscribed");
    }
    while alice.recv_within(common::QUIET).await.is_some() {}
    while bob.recv_within(Duration::from_millis(100)).await.is_some() {}

    // The chat relay crosses instances.
    alice
        .emit("chat", json!({"room": "chat-both", "text": "hi from a"}))
        .await;
    assert_eq!(
        alice.expect_event("chat").await["data"]["text"],
        "hi from a"
    );
    let got = bob.expect_event("chat").await;
    assert_eq!(got["data"]["from"], "alice");

    // So does the API: published on A, delivered on B (to a user, and to a client by id).
    let reply = a
        .post(
            "/api/publish",
            Some(KEY),
            r#"{"user":"bob","event":"dm","data":"via redis"}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(bob.expect_event("dm").await["data"], "via redis");
    let body = json!({"client": bob.id.clone().unwrap(), "event": "direct"}).to_string();
    let reply = a.post("/api/publish", Some(KEY), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    bob.expect_event("direct").await;
    alice.expect_silence().await;

    assert!(a.metric("sealcast_redis_published_total").await >= 3);
    assert!(b.metric_at_least("sealcast_redis_received_total", 3).await >= 3);
}
