//! The Redis broker on a 3-master Redis Cluster started by the test: classic pub/sub is
//! cluster-wide, the broker discovers nodes from one seed and fails over when its node dies.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::redis::RedisCluster;
use redis::aio::MultiplexedConnection;
use sealcast::{
    broker::{Broker, Delivery, RedisBroker, RedisConfig, SubscriptionMode},
    protocol::{Channel, Envelope, MessageType},
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);

async fn plain(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Subscribers of `channel` on this node only (PUBSUB is node-local in a cluster).
async fn numsub(url: &str, channel: &str) -> i64 {
    let Ok(client) = redis::Client::open(url) else {
        return 0;
    };
    let Ok(Ok(mut conn)) = tokio::time::timeout(
        Duration::from_millis(500),
        client.get_multiplexed_async_connection(),
    )
    .await
    else {
        return 0;
    };
    let v: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    v.first().map_or(0, |(_, n)| *n)
}

/// Polls `check` until it yields a value, or panics after `WAIT`.
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn next(rx: &mut mpsc::Receiver<Delivery>) -> Arc<Envelope> {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a delivery in time")
        .expect("inbox open")
        .envelope
}

fn room_json(room: &str, event: &str) -> String {
    format!(
        r#"{{"serverId":"emitter","type":"room","target":"{room}","event":"{event}","data":{{"v":1}}}}"#
    )
}

#[tokio::test]
async fn publish_on_any_node_reaches_subscribers_on_every_node_and_subscribers_fail_over() {
    let mut cluster = RedisCluster::start(3).await;
    let urls = cluster.urls();
    let fast = |url: &str| {
        RedisConfig::new(url)
            .cluster(true)
            .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
            .health_check_interval(Duration::from_millis(500))
            .connect_timeout(Duration::from_secs(1))
    };

    // Instance 1 seeded with node B only (interest mode), instance 2 with node C only (pattern
    // mode). Each subscribes on one node; which one is spread at random once the cluster is known.
    let b1 = RedisBroker::connect(fast(&urls[1])).await.unwrap();
    let (tx1, mut rx1) = mpsc::channel(64);
    let s1 = b1.subscribe(tx1).await.unwrap();
    let b2 = RedisBroker::connect(fast(&urls[2]).subscription_mode(SubscriptionMode::Pattern))
        .await
        .unwrap();
    let (tx2, mut rx2) = mpsc::channel(64);
    let _s2 = b2.subscribe(tx2).await.unwrap();
    // One seed was enough to learn the whole cluster.
    assert_eq!(b1.known_nodes().len(), 3, "{:?}", b1.known_nodes());
    assert_eq!(b2.known_nodes().len(), 3, "{:?}", b2.known_nodes());

    s1.watch(&Channel::Room("ops".into()));
    let node1 = poll("instance 1 subscribes to ws:room:ops on one node", || {
        node_with(&urls, "ws:room:ops")
    })
    .await;
    let node2 = node_with_patterns(&urls)
        .await
        .expect("instance 2 holds its patterns");
    // Publish through a node neither subscriber is connected to when there is one.
    let other = (0..3)
        .find(|i| *i != node1 && *i != node2)
        .unwrap_or((node1 + 1) % 3);
    assert_ne!(other, node1);

    // A plain publish on that node reaches the subscribers on the other nodes.
    let mut conn = plain(&urls[other]).await;
    let _: i64 = redis::cmd("PUBLISH")
        .arg("ws:room:ops")
        .arg(room_json("ops", "from-other-node"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(next(&mut rx1).await.event, "from-other-node");
    assert_eq!(next(&mut rx2).await.event, "from-other-node");

    // The broker's own publish (through whichever node it holds) reaches both too.
    let publisher = RedisBroker::connect(RedisConfig::from_urls(urls.clone()))
        .await
        .unwrap();
    assert!(publisher.config().is_cluster());
    publisher
        .publish(Arc::new(Envelope {
            server_id: "P".into(),
            kind: MessageType::Broadcast,
            target: None,
            event: "from-broker".into(),
            data: None,
            exclude: None,
        }))
        .await
        .unwrap();
    assert_eq!(next(&mut rx1).await.event, "from-broker");
    assert_eq!(next(&mut rx2).await.event, "from-broker");

    // Instance 1's node dies: it fails over to another node, resubscribes, and receives.
    cluster.node_mut(node1).kill().await;
    poll("instance 1 resubscribed on a surviving node", || async {
        node_with(&urls, "ws:room:ops")
            .await
            .filter(|n| *n != node1)
    })
    .await;
    assert!(b1.stats().reconnects >= 1);
    // Instance 2 too, in case it was on the same node (pub/sub keeps nothing for the absent).
    poll(
        "instance 2 holds its patterns on a surviving node",
        || async { node_with_patterns(&urls).await.filter(|n| *n != node1) },
    )
    .await;
    let survivor = (0..3).find(|i| *i != node1).unwrap();
    let mut conn = plain(&urls[survivor]).await;
    let _: i64 = redis::cmd("PUBLISH")
        .arg("ws:room:ops")
        .arg(room_json("ops", "after-failover"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(next(&mut rx1).await.event, "after-failover");
    assert_eq!(next(&mut rx2).await.event, "after-failover");
    // The broker's publisher moves off a dead node within one publish.
    publisher
        .publish(Arc::new(Envelope {
            server_id: "P".into(),
            kind: MessageType::Room,
            target: Some("ops".into()),
            event: "publisher-failover".into(),
            data: None,
            exclude: None,
        }))
        .await
        .unwrap();
    assert_eq!(next(&mut rx1).await.event, "publisher-failover");
    assert_eq!(next(&mut rx2).await.event, "publisher-failover");
}

/// The one node where `channel` has a subscriber (PUBSUB is node-local in a cluster).
async fn node_with(urls: &[String], channel: &str) -> Option<usize> {
    let mut found = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        if numsub(url, channel).await > 0 {
            found.push(i);
        }
    }
    (found.len() == 1).then(|| found[0])
}

/// The node where the pattern subscriber holds its three patterns.
async fn node_with_patterns(urls: &[String]) -> Option<usize> {
    for (i, url) in urls.iter().enumerate() {
        let Ok(client) = redis::Client::open(url.as_str()) else {
            continue;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let n: i64 = redis::cmd("PUBSUB")
            .arg("NUMPAT")
            .query_async(&mut conn)
            .await
            .unwrap_or(0);
        if n == 3 {
            return Some(i);
        }
    }
    None
}
