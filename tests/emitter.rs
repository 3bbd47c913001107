//! The emitter against a real `redis-server`: the exact JSON the reference emitter publishes,
//! delivery to subscribed brokers, validation, signing and clear connection errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::redis::RedisProcess;
use futures_util::StreamExt;
use sealcast::{
    broker::{Broker, BrokerError, RedisBroker, RedisConfig, SigningKey, SubscriptionMode},
    emitter::{EmitError, Emitter},
    protocol::{EMITTER_SERVER_ID, MessageType},
};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// Subscribes a plain connection to every `ws:` channel and returns a stream of
/// `(channel, payload)`.
async fn spy(url: String) -> impl futures_util::Stream<Item = (String, String)> {
    let client = redis::Client::open(url).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.psubscribe("ws:*").await.unwrap();
    pubsub.into_on_message().map(|m| {
        (
            m.get_channel_name().to_owned(),
            m.get_payload::<String>().unwrap(),
        )
    })
}

async fn next<S: futures_util::Stream<Item = (String, String)> + Unpin>(
    s: &mut S,
) -> (String, String) {
    tokio::time::timeout(WAIT, s.next()).await.unwrap().unwrap()
}

#[tokio::test]
async fn publishes_exactly_what_the_reference_emitter_publishes() {
    let redis = RedisProcess::start().await;
    let mut wire = Box::pin(spy(redis.url()).await);
    let emitter = Emitter::connect(redis.url()).await.unwrap();

    emitter
        .to_client(
            "uuid-of-client",
            "job:progress",
            &json!({"jobId": "123", "progress": 75}),
        )
        .await
        .unwrap();
    emitter
        .to_user(
            "user-456",
            "notification",
            &json!({"message": "Your report is ready"}),
        )
        .await
        .unwrap();
    #[derive(Serialize)]
    struct Metric {
        metric: &'static str,
        value: f64,
    }
    emitter
        .to_room(
            "dashboard-viewers",
            "data:update",
            &Metric {
                metric: "cpu",
                value: 42.5,
            },
            &["client-id-to-skip"],
        )
        .await
        .unwrap();
    emitter
        .to_room("lobby", "no-exclude", &json!(null), &[])
        .await
        .unwrap();
    emitter
        .broadcast(
            "system:maintenance",
            &json!({"message": "Scheduled maintenance in 10 minutes"}),
        )
        .await
        .unwrap();

    let expected = [
        (
            "ws:client:uuid-of-client",
            r#"{"serverId":"emitter","type":"client","target":"uuid-of-client","event":"job:progress","data":{"jobId":"123","progress":75}}"#,
        ),
        (
            "ws:user:user-456",
            r#"{"serverId":"emitter","type":"user","target":"user-456","event":"notification","data":{"message":"Your report is ready"}}"#,
        ),
        (
            "ws:room:dashboard-viewers",
            r#"{"serverId":"emitter","type":"room","target":"dashboard-viewers","event":"data:update","data":{"metric":"cpu","value":42.5},"exclude":["client-id-to-skip"]}"#,
        ),
        (
            "ws:room:lobby",
            r#"{"serverId":"emitter","type":"room","target":"lobby","event":"no-exclude","data":null}"#,
        ),
        (
            "ws:broadcast",
            r#"{"serverId":"emitter","type":"broadcast","event":"system:maintenance","data":{"message":"Scheduled maintenance in 10 minutes"}}"#,
        ),
    ];
    for (channel, payload) in expected {
        assert_eq!(
            next(&mut wire).await,
            (channel.to_owned(), payload.to_owned())
        );
    }
    assert_eq!(emitter.stats().published, 5);
}

#[tokio::test]
async fn every_instance_receives_emitter_messages() {
    let redis = RedisProcess::start().await;
    let mut inboxes = Vec::new();
    let mut subs = Vec::new();
    for mode in [SubscriptionMode::Pattern, SubscriptionMode::Interest] {
        let broker = RedisBroker::connect(RedisConfig::new(redis.url()).subscription_mode(mode))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        subs.push(broker.subscribe(tx).await.unwrap());
        inboxes.push(rx);
    }
    let emitter = Emitter::connect(RedisConfig::new(redis.url()))
        .await
        .unwrap();
    emitter.broadcast("hello", &json!({"n": 1})).await.unwrap();
    for rx in &mut inboxes {
        let d = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.envelope.server_id, EMITTER_SERVER_ID);
        assert_eq!(d.envelope.kind, MessageType::Broadcast);
        assert_eq!(d.envelope.data_json(), r#"{"n":1}"#);
    }
}

#[tokio::test]
async fn bad_input_is_refused_before_publishing() {
    let redis = RedisProcess::start().await;
    let emitter = Emitter::connect(redis.url()).await.unwrap();
    assert!(matches!(
        emitter.to_room("ws:room:x", "e", &1, &[]).await,
        Err(EmitError::Room(_))
    ));
    assert!(matches!(
        emitter.to_room("", "e", &1, &[]).await,
        Err(EmitError::Room(_))
    ));
    assert!(matches!(
        emitter.to_room(&"r".repeat(257), "e", &1, &[]).await,
        Err(EmitError::Room(_))
    ));
    assert!(matches!(
        emitter.broadcast("", &1).await,
        Err(EmitError::Empty("event"))
    ));
    assert!(matches!(
        emitter.to_user("", "e", &1).await,
        Err(EmitError::Empty(_))
    ));
    assert!(matches!(
        emitter.to_client("", "e", &1).await,
        Err(EmitError::Empty(_))
    ));
    let huge = "x".repeat(2 << 20);
    assert!(matches!(
        emitter.broadcast("e", &huge).await,
        Err(EmitError::TooLarge(_))
    ));
    let deep: serde_json::Value =
        serde_json::from_str(&format!("{}1{}", "[".repeat(40), "]".repeat(40))).unwrap();
    assert!(matches!(
        emitter.broadcast("e", &deep).await,
        Err(EmitError::TooLarge(_))
    ));
    let mut bad_map = std::collections::HashMap::new();
    bad_map.insert(vec![1u8], 1);
    assert!(matches!(
        emitter.broadcast("e", &bad_map).await,
        Err(EmitError::Serialize(_))
    ));
    assert_eq!(emitter.stats().published, 0);
    emitter.shutdown().await;
    assert!(matches!(
        emitter.broadcast("e", &1).await,
        Err(EmitError::Broker(BrokerError::Closed))
    ));
}

#[tokio::test]
async fn signed_emitter_reaches_only_brokers_with_the_same_key() {
    let redis = RedisProcess::start().await;
    let key = || SigningKey::new("emitter and servers share this").unwrap();
    let trusting = RedisBroker::connect(
        RedisConfig::new(redis.url())
            .subscription_mode(SubscriptionMode::Pattern)
            .signing_key(key()),
    )
    .await
    .unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let _sub = trusting.subscribe(tx).await.unwrap();
    let signed = Emitter::connect(RedisConfig::new(redis.url()).signing_key(key()))
        .await
        .unwrap();
    let unsigned = Emitter::connect(redis.url()).await.unwrap();
    unsigned.to_user("u", "forged", &1).await.unwrap();
    signed.to_user("u", "genuine", &1).await.unwrap();
    let d = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.envelope.event, "genuine");
    assert_eq!(trusting.stats().dropped_invalid, 1);
}

#[tokio::test]
async fn unreachable_redis_fails_quickly_naming_the_url() {
    let port = common::redis::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let started = Instant::now();
    let err = Emitter::connect(url.as_str()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        err,
        EmitError::Broker(BrokerError::Unavailable(_))
    ));
    assert!(err.to_string().contains(&url), "{err}");
}
