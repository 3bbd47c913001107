//! The Redis broker against real `redis-server` processes: delivery to several instances,
//! pattern and interest subscriptions, wire compatibility with the reference, signing, untrusted
//! input and resilience to Redis going away.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::redis::RedisProcess;
use redis::aio::MultiplexedConnection;
use sealcast::{
    broker::{
        Broker, BrokerError, Delivery, RedisBroker, RedisConfig, SigningKey, Subscription,
        SubscriptionMode,
    },
    protocol::{Channel, Envelope, Limits, MessageType},
};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn envelope(server: &str, kind: MessageType, target: Option<&str>, event: &str) -> Arc<Envelope> {
    Arc::new(Envelope {
        server_id: server.into(),
        kind,
        target: target.map(Into::into),
        event: event.into(),
        data: Some(RawValue::from_string(r#"{"n":1}"#.into()).unwrap()),
        exclude: None,
    })
}

fn marker(server: &str, event: &str) -> Arc<Envelope> {
    envelope(server, MessageType::Broadcast, None, event)
}

/// A subscribed "instance": what a server holds.
struct Instance {
    broker: RedisBroker,
    sub: Box<dyn Subscription>,
    rx: mpsc::Receiver<Delivery>,
}

async fn instance(config: RedisConfig) -> Instance {
    let broker = RedisBroker::connect(config).await.unwrap();
    let (tx, rx) = mpsc::channel(64);
    let sub = broker.subscribe(tx).await.unwrap();
    assert!(broker.is_ready());
    Instance { broker, sub, rx }
}

impl Instance {
    async fn next(&mut self) -> Delivery {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a delivery in time")
            .expect("inbox open")
    }

    async fn next_event(&mut self) -> String {
        self.next().await.envelope.event.clone()
    }
}

async fn plain(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn raw_publish(conn: &mut MultiplexedConnection, channel: &str, payload: &str) {
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(conn)
        .await
        .unwrap();
}

async fn numsub(conn: &mut MultiplexedConnection, channel: &str) -> i64 {
    let v: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await
        .unwrap();
    v[0].1
}

async fn numpat(conn: &mut MultiplexedConnection) -> i64 {
    redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async(conn)
        .await
        .unwrap()
}

async fn channels(conn: &mut MultiplexedConnection) -> Vec<String> {
    let mut v: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("ws:*")
        .query_async(conn)
        .await
        .unwrap();
    v.sort();
    v
}

/// Polls `check` until it is true, or panics after `WAIT`.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(redis: &RedisProcess, mode: SubscriptionMode) -> RedisConfig {
    RedisConfig::new(redis.url())
        .subscription_mode(mode)
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(400))
        .publish_timeout(Duration::from_millis(500))
}

#[tokio::test]
async fn two_instances_each_receive_every_envelope_exactly_once() {
    let redis = RedisProcess::start().await;
    for mode in [SubscriptionMode::Pattern, SubscriptionMode::Interest] {
        let mut a = instance(config(&redis, mode)).await;
        let mut b = instance(config(&redis, mode)).await;
        for inst in [&a, &b] {
            inst.sub.watch(&Channel::Room("chat".into()));
            inst.sub.watch(&Channel::Client("c1".into()));
            inst.sub.watch(&Channel::User("u1".into()));
        }
        let conn = plain(&redis.url()).await;
        if mode == SubscriptionMode::Interest {
            until("both instances subscribe to the watched channels", || {
                let mut conn = conn.clone();
                async move {
                    numsub(&mut conn, "ws:room:chat").await == 2
                        && numsub(&mut conn, "ws:client:c1").await == 2
                        && numsub(&mut conn, "ws:user:u1").await == 2
                }
            })
            .await;
        }
        let sent = [
            envelope("A", MessageType::Room, Some("chat"), "room"),
            envelope("A", MessageType::Client, Some("c1"), "client"),
            envelope("A", MessageType::User, Some("u1"), "user"),
            envelope("A", MessageType::Broadcast, None, "broadcast"),
        ];
        for e in &sent {
            a.broker.publish(e.clone()).await.unwrap();
        }
        // Published last: whatever arrives before it is everything that was delivered.
        b.broker.publish(marker("B", "end")).await.unwrap();
        for inst in [&mut a, &mut b] {
            let mut got = Vec::new();
            loop {
                let d = inst.next().await;
                assert!(
                    d.envelope.matches_channel(&d.channel),
                    "{mode:?}: channel {}",
                    d.channel
                );
                if d.envelope.event == "end" {
                    break;
                }
                got.push(d.envelope.event.clone());
            }
            // Each exactly once, in publish order (the broker delivers its own envelopes too:
            // self-dedup by server id is the server's job).
            assert_eq!(got, ["room", "client", "user", "broadcast"], "{mode:?}");
        }
        assert_eq!(a.broker.stats().published, 4);
        assert_eq!(a.broker.stats().received, 5);
        a.broker.shutdown().await;
        b.broker.shutdown().await;
    }
}

#[tokio::test]
async fn pattern_mode_holds_the_reference_subscriptions() {
    let redis = RedisProcess::start().await;
    let mut conn = plain(&redis.url()).await;
    let mut a = instance(config(&redis, SubscriptionMode::Pattern)).await;
    assert_eq!(channels(&mut conn).await, ["ws:broadcast"]);
    assert_eq!(numpat(&mut conn).await, 3);
    // No watch needed: any room, client or user reaches it.
    raw_publish(
        &mut conn,
        "ws:room:never-watched",
        r#"{"serverId":"x","type":"room","target":"never-watched","event":"e","data":1}"#,
    )
    .await;
    let d = a.next().await;
    assert_eq!(&*d.channel, "ws:room:never-watched");
    // watch/unwatch change nothing in pattern mode.
    a.sub.watch(&Channel::Room("r".into()));
    a.broker.publish(marker("A", "sync")).await.unwrap();
    assert_eq!(a.next_event().await, "sync");
    assert_eq!(numpat(&mut conn).await, 3);
    assert_eq!(channels(&mut conn).await, ["ws:broadcast"]);
    a.sub.close();
    until("the subscriber disconnects on close", || {
        let mut conn = conn.clone();
        async move { numpat(&mut conn).await == 0 }
    })
    .await;
}

#[tokio::test]
async fn interest_mode_follows_watch_and_unwatch() {
    let redis = RedisProcess::start().await;
    let mut conn = plain(&redis.url()).await;
    let mut a = instance(RedisConfig::new(redis.url())).await; // Interest is the default
    assert_eq!(a.broker.config().mode(), SubscriptionMode::Interest);
    assert_eq!(channels(&mut conn).await, ["ws:broadcast"]);
    assert_eq!(numpat(&mut conn).await, 0);
    let room_x = r#"{"serverId":"x","type":"room","target":"x","event":"room-x","data":1}"#;

    // Not watched: not delivered (the marker published after it arrives first).
    raw_publish(&mut conn, "ws:room:x", room_x).await;
    a.broker.publish(marker("A", "m1")).await.unwrap();
    assert_eq!(a.next_event().await, "m1");

    a.sub.watch(&Channel::Room("x".into()));
    a.sub.watch(&Channel::User("u".into()));
    until("SUBSCRIBE ws:room:x", || {
        let mut conn = conn.clone();
        async move { numsub(&mut conn, "ws:room:x").await == 1 }
    })
    .await;
    assert_eq!(
        channels(&mut conn).await,
        ["ws:broadcast", "ws:room:x", "ws:user:u"]
    );
    raw_publish(&mut conn, "ws:room:x", room_x).await;
    assert_eq!(a.next_event().await, "room-x");

    a.sub.unwatch(&Channel::Room("x".into()));
    until("UNSUBSCRIBE ws:room:x", || {
        let mut conn = conn.clone();
        async move { numsub(&mut conn, "ws:room:x").await == 0 }
    })
    .await;
    assert_eq!(channels(&mut conn).await, ["ws:broadcast", "ws:user:u"]);
    raw_publish(&mut conn, "ws:room:x", room_x).await;
    a.broker.publish(marker("A", "m2")).await.unwrap();
    assert_eq!(a.next_event().await, "m2");

    // A burst of changes coalesces into the final state.
    for i in 0..200 {
        a.sub.watch(&Channel::Client(format!("c{i}")));
    }
    for i in 0..200 {
        if i % 2 == 0 {
            a.sub.unwatch(&Channel::Client(format!("c{i}")));
        }
    }
    until("100 client channels", || {
        let mut conn = conn.clone();
        async move { channels(&mut conn).await.len() == 102 }
    })
    .await;
    assert_eq!(numsub(&mut conn, "ws:client:c1").await, 1);
    assert_eq!(numsub(&mut conn, "ws:client:c2").await, 0);
    // Broadcast is never unwatched.
    a.sub.unwatch(&Channel::Broadcast);
    a.broker.publish(marker("A", "m3")).await.unwrap();
    assert_eq!(a.next_event().await, "m3");
}

#[tokio::test]
async fn reference_emitter_json_is_delivered_verbatim() {
    let redis = RedisProcess::start().await;
    let mut a = instance(config(&redis, SubscriptionMode::Interest)).await;
    a.sub.watch(&Channel::Room("dashboard-viewers".into()));
    a.sub.watch(&Channel::User("user-456".into()));
    let mut conn = plain(&redis.url()).await;
    until("room subscription", || {
        let mut conn = conn.clone();
        async move { numsub(&mut conn, "ws:room:dashboard-viewers").await == 1 }
    })
    .await;
    // Exactly what WebSocketEmitter.toRoom publishes, through redis-cli.
    let raw = r#"{"serverId":"emitter","type":"room","target":"dashboard-viewers","event":"data:update","data":{"metric":"cpu","value":42.5},"exclude":["client-id-to-skip"]}"#;
    let receivers = redis
        .cli(&["PUBLISH", "ws:room:dashboard-viewers", raw])
        .await;
    assert_eq!(receivers, "1");
    let d = a.next().await;
    assert_eq!(&*d.channel, "ws:room:dashboard-viewers");
    let e = &d.envelope;
    assert_eq!(e.server_id, "emitter");
    assert_eq!(e.kind, MessageType::Room);
    assert_eq!(e.target.as_deref(), Some("dashboard-viewers"));
    assert_eq!(e.event, "data:update");
    assert_eq!(e.data_json(), r#"{"metric":"cpu","value":42.5}"#);
    assert_eq!(
        e.exclude.as_deref(),
        Some(&["client-id-to-skip".to_owned()][..])
    );
    // toUser, through a plain connection.
    raw_publish(
        &mut conn,
        "ws:user:user-456",
        r#"{"serverId":"emitter","type":"user","target":"user-456","event":"notification","data":{"message":"Your report is ready"}}"#,
    )
    .await;
    let d = a.next().await;
    assert_eq!(d.envelope.kind, MessageType::User);
    assert_eq!(
        d.envelope.data_json(),
        r#"{"message":"Your report is ready"}"#
    );
    assert_eq!(a.broker.stats().dropped_invalid, 0);
}

#[tokio::test]
async fn our_envelopes_use_the_reference_field_names() {
    let redis = RedisProcess::start().await;
    let broker = RedisBroker::connect(RedisConfig::new(redis.url()))
        .await
        .unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("ws:room:lobby").await.unwrap();
    pubsub.subscribe("ws:broadcast").await.unwrap();
    let mut e = (*envelope("srv-1", MessageType::Room, Some("lobby"), "chat")).clone();
    e.exclude = Some(vec!["c9".into()]);
    broker.publish(Arc::new(e)).await.unwrap();
    broker.publish(marker("srv-1", "all")).await.unwrap();
    let mut stream = pubsub.on_message();
    let first = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut stream))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.get_channel_name(), "ws:room:lobby");
    assert_eq!(
        first.get_payload::<String>().unwrap(),
        r#"{"serverId":"srv-1","type":"room","target":"lobby","event":"chat","data":{"n":1},"exclude":["c9"]}"#
    );
    let second = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut stream))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.get_channel_name(), "ws:broadcast");
    // Broadcasts carry no target, as the reference's.
    assert_eq!(
        second.get_payload::<String>().unwrap(),
        r#"{"serverId":"srv-1","type":"broadcast","event":"all","data":{"n":1}}"#
    );
}

#[tokio::test]
async fn with_a_signing_key_unsigned_and_badly_signed_envelopes_are_dropped() {
    let redis = RedisProcess::start().await;
    let key = || SigningKey::new("a shared secret, 16+ bytes").unwrap();
    let mut a = instance(config(&redis, SubscriptionMode::Pattern).signing_key(key())).await;
    let signer = RedisBroker::connect(RedisConfig::new(redis.url()).signing_key(key()))
        .await
        .unwrap();
    let intruder = RedisBroker::connect(
        RedisConfig::new(redis.url())
            .signing_key(SigningKey::new("another key, 16+ bytes").unwrap()),
    )
    .await
    .unwrap();
    let unsigned = RedisBroker::connect(RedisConfig::new(redis.url()))
        .await
        .unwrap();
    // A plain subscriber sees the wire form: the reference fields plus `sig`, last.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut spy = client.get_async_pubsub().await.unwrap();
    spy.subscribe("ws:broadcast").await.unwrap();

    unsigned.publish(marker("U", "unsigned")).await.unwrap();
    intruder.publish(marker("I", "wrong-key")).await.unwrap();
    let mut conn = plain(&redis.url()).await;
    // Signed correctly, then altered (target changed, signature kept).
    let good_wire = {
        let mut stream = spy.on_message();
        signer.publish(marker("S", "tampered")).await.unwrap();
        let mut wire = String::new();
        while !wire.contains("tampered") {
            let msg = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut stream))
                .await
                .unwrap()
                .unwrap();
            wire = msg.get_payload::<String>().unwrap();
        }
        wire
    };
    assert!(good_wire.starts_with(
        r#"{"serverId":"S","type":"broadcast","event":"tampered","data":{"n":1},"sig":""#
    ));
    // The original signed one reached `a` too: take it.
    assert_eq!(a.next_event().await, "tampered");
    raw_publish(
        &mut conn,
        "ws:broadcast",
        &good_wire.replace(r#""n":1"#, r#""n":2"#),
    )
    .await;
    raw_publish(
        &mut conn,
        "ws:broadcast",
        &good_wire.replace(r#""sig":""#, r#""sig":"AAAA"#),
    )
    .await;
    signer.publish(marker("S", "good")).await.unwrap();
    assert_eq!(a.next_event().await, "good");
    assert_eq!(a.broker.stats().dropped_invalid, 4);
    // A broker without a key ignores `sig` (reference peers do the same).
    let mut open = instance(config(&redis, SubscriptionMode::Pattern)).await;
    signer.publish(marker("S", "signed")).await.unwrap();
    assert_eq!(open.next_event().await, "signed");
}

#[tokio::test]
async fn malformed_oversized_and_mismatched_envelopes_are_dropped() {
    let redis = RedisProcess::start().await;
    let limits = Limits {
        max_envelope_bytes: 2048,
        ..Limits::default()
    };
    let mut a = instance(config(&redis, SubscriptionMode::Pattern).limits(limits)).await;
    let mut conn = plain(&redis.url()).await;
    let deep = format!(
        r#"{{"serverId":"x","type":"broadcast","event":"e","data":{}1{}}}"#,
        "[".repeat(64),
        "]".repeat(64)
    );
    let big = format!(
        r#"{{"serverId":"x","type":"broadcast","event":"e","data":"{}"}}"#,
        "a".repeat(4096)
    );
    let bad: Vec<(&str, String)> = vec![
        ("ws:broadcast", "not json".into()),
        ("ws:broadcast", "[]".into()),
        (
            "ws:broadcast",
            r#"{"serverId":"x","type":"everyone","event":"e","data":1}"#.into(),
        ),
        (
            "ws:room:r",
            r#"{"serverId":"x","type":"room","event":"no-target","data":1}"#.into(),
        ),
        (
            "ws:broadcast",
            r#"{"serverId":"x","type":"broadcast","event":"","data":1}"#.into(),
        ),
        ("ws:broadcast", deep),
        ("ws:broadcast", big),
        // Type or target disagreeing with the channel.
        (
            "ws:room:b",
            r#"{"serverId":"x","type":"room","target":"a","event":"e","data":1}"#.into(),
        ),
        (
            "ws:room:r",
            r#"{"serverId":"x","type":"broadcast","event":"e","data":1}"#.into(),
        ),
        (
            "ws:client:r",
            r#"{"serverId":"x","type":"room","target":"r","event":"e","data":1}"#.into(),
        ),
        (
            "ws:user:u",
            r#"{"serverId":"x","type":"client","target":"u","event":"e","data":1}"#.into(),
        ),
    ];
    for (channel, payload) in &bad {
        raw_publish(&mut conn, channel, payload).await;
    }
    raw_publish(
        &mut conn,
        "ws:room:r",
        r#"{"serverId":"x","type":"room","target":"r","event":"good","data":{"ok":true},"extra":"ignored"}"#,
    )
    .await;
    let d = a.next().await;
    assert_eq!(d.envelope.event, "good");
    let stats = a.broker.stats();
    assert_eq!(stats.dropped_invalid, bad.len() as u64);
    assert_eq!(stats.received, bad.len() as u64 + 1);
    assert!(a.rx.try_recv().is_err());
    assert!(a.broker.is_ready());
}

#[tokio::test]
async fn redis_restart_publish_fails_fast_then_delivery_resumes_and_interest_is_resubscribed() {
    let mut redis = RedisProcess::start().await;
    let mut a = instance(config(&redis, SubscriptionMode::Interest)).await;
    let publisher = RedisBroker::connect(config(&redis, SubscriptionMode::Interest))
        .await
        .unwrap();
    a.sub.watch(&Channel::Room("before".into()));
    let conn = plain(&redis.url()).await;
    until("room subscription", || {
        let mut conn = conn.clone();
        async move { numsub(&mut conn, "ws:room:before").await == 1 }
    })
    .await;
    publisher
        .publish(envelope("P", MessageType::Room, Some("before"), "one"))
        .await
        .unwrap();
    assert_eq!(a.next_event().await, "one");

    redis.kill().await;
    until("the subscriber notices", || {
        let ready = a.broker.is_ready();
        async move { !ready }
    })
    .await;
    // Publishing while Redis is down fails quickly, with Unavailable, and is counted.
    for _ in 0..3 {
        let started = Instant::now();
        let result = publisher
            .publish(envelope("P", MessageType::Room, Some("before"), "lost"))
            .await;
        assert!(
            matches!(result, Err(BrokerError::Unavailable(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "publish hung");
    }
    assert!(publisher.stats().publish_failures >= 3);
    // Interest changes while Redis is down are kept and applied on reconnect.
    a.sub.watch(&Channel::Room("during".into()));
    a.sub.unwatch(&Channel::Room("before".into()));
    a.sub.watch(&Channel::Room("before".into()));

    redis.restart().await;
    let conn = plain(&redis.url()).await;
    until("resubscribed after restart", || {
        let mut conn = conn.clone();
        async move { channels(&mut conn).await == ["ws:broadcast", "ws:room:before", "ws:room:during"] }
    })
    .await;
    until("subscriber ready", || {
        let ready = a.broker.is_ready();
        async move { ready }
    })
    .await;
    // The publisher reconnects on its own once its backoff allows.
    let deadline = Instant::now() + WAIT;
    while publisher
        .publish(envelope("P", MessageType::Room, Some("during"), "two"))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "publisher never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.next_event().await, "two");
    publisher
        .publish(envelope("P", MessageType::Room, Some("before"), "three"))
        .await
        .unwrap();
    assert_eq!(a.next_event().await, "three");
    assert!(a.broker.stats().reconnects >= 1);
    assert!(publisher.stats().reconnects >= 1);
    assert!(publisher.is_ready());
}

#[tokio::test]
async fn own_id_patterns_stand_in_for_the_channels_under_the_prefix() {
    let mut redis = RedisProcess::start().await;
    let mut conn = plain(&redis.url()).await;
    let mut a = instance(config(&redis, SubscriptionMode::Interest)).await;
    assert!(a.sub.watch_own_ids("p1-"));
    until("own-id patterns", || {
        let mut conn = conn.clone();
        async move { numpat(&mut conn).await == 2 }
    })
    .await;
    // Channels under the prefix are never subscribed by name, and arrive once each.
    a.sub.watch(&Channel::Client("p1-a".into()));
    a.sub.watch(&Channel::Room("p1-a".into()));
    a.sub.watch(&Channel::Room("other".into()));
    until("ws:room:other", || {
        let mut conn = conn.clone();
        async move { numsub(&mut conn, "ws:room:other").await == 1 }
    })
    .await;
    assert_eq!(channels(&mut conn).await, ["ws:broadcast", "ws:room:other"]);
    let to = |kind: &str, target: &str, event: &str| {
        format!(
            r#"{{"serverId":"x","type":"{kind}","target":"{target}","event":"{event}","data":null}}"#
        )
    };
    raw_publish(&mut conn, "ws:client:p1-a", &to("client", "p1-a", "direct")).await;
    raw_publish(&mut conn, "ws:room:p1-a", &to("room", "p1-a", "own-room")).await;
    raw_publish(&mut conn, "ws:room:p2-a", &to("room", "p2-a", "elsewhere")).await;
    a.broker.publish(marker("A", "m1")).await.unwrap();
    assert_eq!(a.next_event().await, "direct");
    assert_eq!(a.next_event().await, "own-room");
    assert_eq!(a.next_event().await, "m1");

    // A new connection subscribes the patterns again.
    redis.restart().await;
    let mut conn = plain(&redis.url()).await;
    until("patterns and channels after a restart", || {
        let mut conn = conn.clone();
        async move {
            numpat(&mut conn).await == 2
                && channels(&mut conn).await == ["ws:broadcast", "ws:room:other"]
        }
    })
    .await;
    raw_publish(&mut conn, "ws:client:p1-b", &to("client", "p1-b", "back")).await;
    assert_eq!(a.next_event().await, "back");

    // Pattern mode receives them already.
    let b = instance(config(&redis, SubscriptionMode::Pattern)).await;
    assert!(b.sub.watch_own_ids("p2-"));
    until("the reference's three patterns beside a's two", || {
        let mut conn = conn.clone();
        async move { numpat(&mut conn).await == 5 }
    })
    .await;
}

#[tokio::test]
async fn pattern_subscriptions_come_back_after_a_restart() {
    let mut redis = RedisProcess::start().await;
    let mut a = instance(config(&redis, SubscriptionMode::Pattern)).await;
    redis.restart().await;
    let mut conn = plain(&redis.url()).await;
    until("patterns resubscribed", || {
        let mut conn = conn.clone();
        async move { numpat(&mut conn).await == 3 && channels(&mut conn).await == ["ws:broadcast"] }
    })
    .await;
    raw_publish(
        &mut conn,
        "ws:client:c7",
        r#"{"serverId":"x","type":"client","target":"c7","event":"back","data":null}"#,
    )
    .await;
    assert_eq!(a.next_event().await, "back");
    assert_eq!(a.broker.stats().reconnects, 1);
}

#[tokio::test]
async fn publish_to_an_unresponsive_redis_is_bounded_by_the_timeout() {
    let redis = RedisProcess::start().await;
    let publisher = RedisBroker::connect(
        RedisConfig::new(redis.url()).publish_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    publisher.publish(marker("P", "ok")).await.unwrap();
    redis.freeze();
    let started = Instant::now();
    let result = publisher.publish(marker("P", "stuck")).await;
    let took = started.elapsed();
    redis.thaw();
    assert!(
        matches!(result, Err(BrokerError::Unavailable(_))),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(2), "publish took {took:?}");
    assert_eq!(publisher.stats().publish_failures, 1);
    // Once Redis answers again, publishing works again.
    let deadline = Instant::now() + WAIT;
    while publisher.publish(marker("P", "again")).await.is_err() {
        assert!(Instant::now() < deadline, "publisher never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn unreachable_redis_and_bad_urls_fail_clearly() {
    let port = common::redis::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let err = RedisBroker::connect(RedisConfig::new(&url))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Unavailable(_)));
    assert!(err.to_string().contains(&url), "{err}");
    let err = RedisBroker::connect(RedisConfig::new("http://nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Config(_)), "{err}");
    // A lazy broker reports not ready and fails publishes without hanging.
    let lazy = RedisBroker::new(RedisConfig::new(&url)).unwrap();
    assert!(!lazy.is_ready());
    assert!(matches!(
        lazy.publish(marker("L", "x")).await,
        Err(BrokerError::Unavailable(_))
    ));
}

#[tokio::test]
async fn shutdown_closes_connections() {
    let redis = RedisProcess::start().await;
    let a = instance(config(&redis, SubscriptionMode::Interest)).await;
    let mut conn = plain(&redis.url()).await;
    assert_eq!(numsub(&mut conn, "ws:broadcast").await, 1);
    a.broker.shutdown().await;
    assert!(!a.broker.is_ready());
    assert!(matches!(
        a.broker.publish(marker("A", "x")).await,
        Err(BrokerError::Closed)
    ));
    let (tx, _rx) = mpsc::channel(1);
    assert!(matches!(
        a.broker.subscribe(tx).await,
        Err(BrokerError::Closed)
    ));
    until("subscriber connection closed", || {
        let mut conn = conn.clone();
        async move { numsub(&mut conn, "ws:broadcast").await == 0 }
    })
    .await;
}

#[tokio::test]
async fn health_checks_keep_a_quiet_connection_and_notice_a_frozen_redis() {
    let redis = RedisProcess::start().await;
    let mut a = instance(
        config(&redis, SubscriptionMode::Interest)
            .health_check_interval(Duration::from_millis(100))
            .connect_timeout(Duration::from_millis(500)),
    )
    .await;
    // The idle subscriber pings (seen by Redis as its last command) and stays connected.
    until("a health-check PING", || {
        let redis = &redis;
        async move {
            redis
                .cli(&["CLIENT", "LIST", "TYPE", "pubsub"])
                .await
                .contains("cmd=ping")
        }
    })
    .await;
    assert_eq!(a.broker.stats().reconnects, 0);
    assert!(a.broker.is_ready());

    // A Redis that keeps the socket open but never answers is detected by the health check.
    redis.freeze();
    until("the subscriber notices the frozen redis", || {
        let ready = a.broker.is_ready();
        async move { !ready }
    })
    .await;
    redis.thaw();
    until("the subscriber reconnects", || {
        let ready = a.broker.is_ready() && a.broker.stats().reconnects >= 1;
        async move { ready }
    })
    .await;
    let mut conn = plain(&redis.url()).await;
    raw_publish(
        &mut conn,
        "ws:broadcast",
        r#"{"serverId":"x","type":"broadcast","event":"thawed","data":null}"#,
    )
    .await;
    assert_eq!(a.next_event().await, "thawed");
}

/// The subscriber's own connection authenticates with the URL's password (and user), and reads
/// a Redis on a Unix socket; wrong credentials leave it unsubscribed and not ready.
#[tokio::test]
async fn the_subscriber_authenticates_and_connects_over_unix_sockets() {
    let port = common::redis::free_port();
    let socket = std::env::temp_dir().join(format!("sealcast-redis-{port}.sock"));
    let _redis = RedisProcess::start_with(
        port,
        ["--requirepass", "s3cret", "--unixsocket"]
            .into_iter()
            .map(String::from)
            .chain([socket.display().to_string()])
            .chain(["--user", "alice", "on", ">pw", "~*", "&*", "+@all"].map(String::from))
            .collect(),
    )
    .await;
    let tcp = format!("redis://:s3cret@127.0.0.1:{port}");
    let urls = [
        tcp.clone(),
        format!("redis://alice:pw@127.0.0.1:{port}"),
        format!("redis+unix://{}?pass=s3cret", socket.display()),
    ];
    let mut conn = plain(&tcp).await;
    for url in &urls {
        for mode in [SubscriptionMode::Interest, SubscriptionMode::Pattern] {
            let config = RedisConfig::new(url).subscription_mode(mode);
            let mut a = instance(config).await;
            a.sub.watch(&Channel::User("u1".into()));
            until("the user channel subscribed", || {
                let mut conn = conn.clone();
                async move {
                    numsub(&mut conn, "ws:user:u1").await == 1 || mode == SubscriptionMode::Pattern
                }
            })
            .await;
            raw_publish(
                &mut conn,
                "ws:user:u1",
                r#"{"serverId":"x","type":"user","target":"u1","event":"to-user","data":1}"#,
            )
            .await;
            assert_eq!(a.next_event().await, "to-user", "{url} {mode:?}");
            a.broker.shutdown().await;
        }
    }
    // Wrong credentials: the subscriber's AUTH is refused, so it holds no subscription.
    let wrong = RedisBroker::new(
        RedisConfig::new(format!("redis://:wrong@127.0.0.1:{port}"))
            .connect_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let _sub = wrong.subscribe(tx).await.unwrap();
    assert!(!wrong.is_ready());
    assert_eq!(numsub(&mut conn, "ws:broadcast").await, 0);
    let _ = std::fs::remove_file(&socket);
}

/// Envelopes longer than what one read brings are reassembled; one over the limit is skipped
/// as it arrives, counted, and the connection reads on.
#[tokio::test]
async fn long_envelopes_are_read_whole_and_those_over_the_limit_skipped() {
    let redis = RedisProcess::start().await;
    let limits = Limits {
        max_envelope_bytes: 256 * 1024,
        ..Limits::default()
    };
    for mode in [SubscriptionMode::Interest, SubscriptionMode::Pattern] {
        let mut a = instance(config(&redis, mode).limits(limits.clone())).await;
        a.sub.watch(&Channel::Room("r".into()));
        let mut conn = plain(&redis.url()).await;
        until("the room channel subscribed", || {
            let mut conn = conn.clone();
            async move { numsub(&mut conn, "ws:room:r").await == 1 || mode == SubscriptionMode::Pattern }
        })
        .await;
        let long = |n: usize| {
            format!(
                r#"{{"serverId":"x","type":"room","target":"r","event":"long","data":"{}"}}"#,
                "a".repeat(n)
            )
        };
        raw_publish(&mut conn, "ws:room:r", &long(200 * 1024)).await;
        raw_publish(&mut conn, "ws:room:r", &long(300 * 1024)).await;
        raw_publish(&mut conn, "ws:broadcast", &long(1024 * 1024)).await;
        raw_publish(
            &mut conn,
            "ws:room:r",
            r#"{"serverId":"x","type":"room","target":"r","event":"after","data":1}"#,
        )
        .await;
        let d = a.next().await;
        assert_eq!(d.envelope.event, "long");
        assert_eq!(
            d.envelope.data.as_ref().map(|d| d.get().len()),
            Some(200 * 1024 + 2)
        );
        assert_eq!(a.next_event().await, "after");
        let stats = a.broker.stats();
        assert_eq!((stats.received, stats.dropped_invalid), (4, 2), "{mode:?}");
        assert!(a.broker.is_ready());
        a.broker.shutdown().await;
    }
}

/// More channels than one command names (256) are subscribed in rounds, and all of them again
/// after Redis restarts: each command's confirmations are read before the next is sent.
#[tokio::test]
async fn many_channels_are_subscribed_in_rounds_and_again_after_a_restart() {
    let mut redis = RedisProcess::start().await;
    let a = instance(config(&redis, SubscriptionMode::Interest)).await;
    let users: Vec<String> = (0..700).map(|i| format!("u{i}")).collect();
    for user in &users {
        a.sub.watch(&Channel::User(user.clone()));
    }
    let port = redis.port();
    let subscribed = || async move {
        let channels = common::redis::cli(port, &["PUBSUB", "CHANNELS", "ws:user:*"]).await;
        channels.lines().count()
    };
    until("every user channel subscribed", || async {
        subscribed().await == users.len()
    })
    .await;
    redis.restart().await;
    until("resubscribed after the restart", || async {
        a.broker.is_ready() && subscribed().await == users.len()
    })
    .await;
    let mut conn = plain(&redis.url()).await;
    for user in [&users[0], &users[350], &users[699]] {
        assert_eq!(numsub(&mut conn, &format!("ws:user:{user}")).await, 1);
    }
}
