//! Scale-out: several real servers on one real Redis, reached by WebSocket clients, in both
//! subscription modes. Client, user, room and broadcast messages reach every target exactly once,
//! excludes hold on every instance, the emitter reaches every instance, and interest-mode
//! subscriptions follow joins, leaves and disconnects.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, WsClient, redis::RedisProcess, spawn, test_builder};
use redis::aio::MultiplexedConnection;
use sealcast::{
    broker::{RedisBroker, RedisConfig, SubscriptionMode},
    emitter::Emitter,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

async fn instance(redis: &RedisProcess, mode: SubscriptionMode) -> TestServer {
    let broker = RedisBroker::connect(RedisConfig::new(redis.url()).subscription_mode(mode))
        .await
        .unwrap();
    spawn(test_builder().broker(broker)).await
}

async fn plain(redis: &RedisProcess) -> MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn numsub(conn: &MultiplexedConnection, channel: &str) -> i64 {
    let mut conn = conn.clone();
    let v: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .unwrap();
    v[0].1
}

async fn channels(conn: &MultiplexedConnection) -> Vec<String> {
    let mut conn = conn.clone();
    let mut v: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("ws:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    v.sort();
    v
}

/// Waits until `channel` has `n` subscribers (interest mode: the instances with members).
async fn subscribers(conn: &MultiplexedConnection, channel: &str, n: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = numsub(conn, channel).await;
        if got == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{channel}: {got} subscribers, want {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every event a client receives until the line goes quiet, sorted (messages from different
/// instances have no mutual order).
async fn events(c: &mut WsClient) -> Vec<String> {
    let mut got: Vec<String> = c
        .drain()
        .await
        .iter()
        .map(|v| v["event"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    got
}

/// What every client id of `server` starts with.
fn prefix(server: &TestServer) -> String {
    server.server.client_id_prefix().to_owned()
}

/// How many subscribers a publish on `channel` reaches (patterns included).
async fn receivers(conn: &MultiplexedConnection, channel: &str) -> i64 {
    let mut conn = conn.clone();
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg("not an envelope")
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Waits until each instance receives its own clients' channels through its two patterns
/// (one receiver each for a client and an own-id room channel under its prefix).
async fn own_patterns(conn: &MultiplexedConnection, servers: &[&TestServer]) {
    let deadline = Instant::now() + WAIT;
    for server in servers {
        let prefix = prefix(server);
        for channel in [format!("ws:client:{prefix}x"), format!("ws:room:{prefix}x")] {
            while receivers(conn, &channel).await != 1 {
                assert!(Instant::now() < deadline, "no pattern for {channel}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let mut conn = conn.clone();
    let numpat: i64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(numpat, 2 * servers.len() as i64);
}

async fn join(server: &TestServer, c: &mut WsClient, room: &str) {
    c.join(&[room]).await;
    let id = c.id.clone().unwrap();
    let deadline = Instant::now() + WAIT;
    while !server
        .server
        .clients_by_room(room)
        .iter()
        .any(|i| i.id == id)
    {
        assert!(Instant::now() < deadline, "join {room}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn two_instances_deliver_every_kind_exactly_once_with_excludes() {
    for mode in [SubscriptionMode::Interest, SubscriptionMode::Pattern] {
        let redis = RedisProcess::start().await;
        let conn = plain(&redis).await;
        let one = instance(&redis, mode).await;
        let two = instance(&redis, mode).await;
        // alice has a session on each instance; bob is on two, carol on one.
        let mut alice1 = one.authed("alice").await;
        let mut alice2 = two.authed("alice").await;
        let mut bob = two.authed("bob").await;
        let mut carol = one.authed("carol").await;
        for (server, client) in [(&one, &mut alice1), (&two, &mut alice2), (&two, &mut bob)] {
            join(server, client, "team").await;
        }
        let bob_id = bob.id.clone().unwrap();
        let alice1_id = alice1.id.clone().unwrap();
        if mode == SubscriptionMode::Interest {
            subscribers(&conn, "ws:room:team", 2).await;
            subscribers(&conn, "ws:user:alice", 2).await;
            subscribers(&conn, "ws:user:bob", 1).await;
            subscribers(&conn, "ws:user:carol", 1).await;
            // bob's own channels come through instance two's patterns.
            own_patterns(&conn, &[&one, &two]).await;
        }

        one.server
            .send_to_user_everywhere("alice", "user", &json!(1))
            .await
            .unwrap();
        one.server
            .send_to_room_everywhere("team", "room", &json!(2), &[&bob_id])
            .await
            .unwrap();
        two.server
            .broadcast_everywhere("broadcast", &json!(3), &[&alice1_id])
            .await
            .unwrap();
        // The spec's send() to a client on another instance travels to its own-id room.
        one.server
            .send(Some(&bob_id), "direct", &json!(4))
            .await
            .unwrap();
        // The emitter reaches both instances; its exclude holds on both.
        let emitter = Emitter::connect(redis.url()).await.unwrap();
        emitter
            .to_room("team", "emitted-room", &json!(5), &[&alice1_id])
            .await
            .unwrap();
        emitter
            .to_client(&bob_id, "emitted-client", &json!(6))
            .await
            .unwrap();
        emitter
            .to_user("carol", "emitted-user", &json!(7))
            .await
            .unwrap();
        emitter.broadcast("emitted-all", &json!(8)).await.unwrap();

        assert_eq!(
            events(&mut alice1).await,
            ["emitted-all", "room", "user"],
            "{mode:?}"
        );
        assert_eq!(
            events(&mut alice2).await,
            ["broadcast", "emitted-all", "emitted-room", "room", "user"],
            "{mode:?}"
        );
        assert_eq!(
            events(&mut bob).await,
            [
                "broadcast",
                "direct",
                "emitted-all",
                "emitted-client",
                "emitted-room"
            ],
            "{mode:?}"
        );
        assert_eq!(
            events(&mut carol).await,
            ["broadcast", "emitted-all", "emitted-user"],
            "{mode:?}"
        );
        emitter.shutdown().await;
        one.server.shutdown().await;
        two.server.shutdown().await;
    }
}

#[tokio::test]
async fn three_instances_and_an_emitter_reach_every_member_once() {
    let redis = RedisProcess::start().await;
    let conn = plain(&redis).await;
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(instance(&redis, SubscriptionMode::Interest).await);
    }
    let mut clients = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        for j in 0..2 {
            let mut c = server.authed(&format!("user-{i}-{j}")).await;
            join(server, &mut c, "all-hands").await;
            clients.push(c);
        }
    }
    subscribers(&conn, "ws:room:all-hands", 3).await;
    // One excluded client per instance.
    let excluded: Vec<String> = clients
        .iter()
        .step_by(2)
        .map(|c| c.id.clone().unwrap())
        .collect();
    let exclude: Vec<&str> = excluded.iter().map(String::as_str).collect();
    servers[1]
        .server
        .send_to_room_everywhere("all-hands", "meeting", &json!({"at": "10:00"}), &exclude)
        .await
        .unwrap();
    let emitter = Emitter::connect(redis.url()).await.unwrap();
    emitter.broadcast("notice", &json!("hello")).await.unwrap();
    emitter
        .to_room("all-hands", "agenda", &json!([1, 2]), &[])
        .await
        .unwrap();
    for (k, c) in clients.iter_mut().enumerate() {
        let want: &[&str] = if k % 2 == 0 {
            &["agenda", "notice"]
        } else {
            &["agenda", "meeting", "notice"]
        };
        assert_eq!(events(c).await, want, "client {k}");
    }
    for s in &servers {
        assert!(s.server.broker().is_ready());
    }
}

#[tokio::test]
async fn interest_subscriptions_follow_joins_leaves_and_disconnects() {
    let redis = RedisProcess::start().await;
    let conn = plain(&redis).await;
    let one = instance(&redis, SubscriptionMode::Interest).await;
    let two = instance(&redis, SubscriptionMode::Interest).await;
    // No clients: each instance holds only the broadcast channel, and the two patterns of its
    // clients' own channels.
    assert_eq!(channels(&conn).await, ["ws:broadcast"]);
    assert_eq!(numsub(&conn, "ws:broadcast").await, 2);
    own_patterns(&conn, &[&one, &two]).await;

    // A client's own-id room and client channel come through its instance's patterns: only
    // the user and the rooms it joins are subscribed one by one.
    let mut dana = two.authed("dana").await;
    let dana_id = dana.id.clone().unwrap();
    assert!(dana_id.starts_with(&prefix(&two)));
    let expected = [
        "ws:broadcast",
        "ws:room:ws-default",
        "ws:room:ws-notification",
        "ws:user:dana",
    ];
    subscribers(&conn, "ws:user:dana", 1).await;
    subscribers(&conn, "ws:room:ws-notification", 1).await;
    assert_eq!(channels(&conn).await, expected);
    let emitter = Emitter::connect(redis.url()).await.unwrap();
    emitter
        .to_client(&dana_id, "direct", &json!(0))
        .await
        .unwrap();
    one.server
        .send_to_room_everywhere(&dana_id, "own-room", &json!(0), &[])
        .await
        .unwrap();
    assert_eq!(events(&mut dana).await, ["direct", "own-room"]);

    // Room "x" exists only on instance two while dana is in it.
    join(&two, &mut dana, "x").await;
    subscribers(&conn, "ws:room:x", 1).await;
    one.server
        .send_to_room_everywhere("x", "in-x", &json!(1), &[])
        .await
        .unwrap();
    assert_eq!(events(&mut dana).await, ["in-x"]);

    dana.leave(&["x"]).await;
    subscribers(&conn, "ws:room:x", 0).await;
    one.server
        .send_to_room_everywhere("x", "after-leave", &json!(2), &[])
        .await
        .unwrap();
    one.server
        .broadcast_everywhere("still-here", &json!(3), &[])
        .await
        .unwrap();
    assert_eq!(events(&mut dana).await, ["still-here"]);

    // A second member on the other instance subscribes that instance too.
    let mut erin = one.authed("erin").await;
    join(&one, &mut erin, "ws-default-twin").await;
    subscribers(&conn, "ws:room:ws-default", 2).await;

    dana.close().await;
    subscribers(&conn, "ws:user:dana", 0).await;
    subscribers(&conn, "ws:room:ws-default", 1).await;
    erin.close().await;
    let deadline = Instant::now() + WAIT;
    while channels(&conn).await != ["ws:broadcast"] {
        assert!(
            Instant::now() < deadline,
            "left {:?}",
            channels(&conn).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A room named after a client id (the application can put anyone in it) is received through
/// the owner's instance pattern there and through an exact subscription elsewhere: every
/// member gets every message once.
#[tokio::test]
async fn a_room_named_after_a_client_id_reaches_each_member_once() {
    let redis = RedisProcess::start().await;
    let conn = plain(&redis).await;
    let one = instance(&redis, SubscriptionMode::Interest).await;
    let two = instance(&redis, SubscriptionMode::Interest).await;
    own_patterns(&conn, &[&one, &two]).await;
    let mut ann = one.authed("ann").await;
    let room = ann.id.clone().unwrap();
    let mut bea = one.authed("bea").await;
    let mut cy = two.authed("cy").await;
    one.server
        .join_room(bea.id.as_deref().unwrap(), &room)
        .unwrap();
    two.server
        .join_room(cy.id.as_deref().unwrap(), &room)
        .unwrap();
    // Only the instance outside the prefix subscribes the room by name.
    subscribers(&conn, &format!("ws:room:{room}"), 1).await;
    one.server
        .send_to_room_everywhere(&room, "from-one", &json!(1), &[])
        .await
        .unwrap();
    two.server
        .send_to_room_everywhere(&room, "from-two", &json!(2), &[])
        .await
        .unwrap();
    let emitter = Emitter::connect(redis.url()).await.unwrap();
    emitter
        .to_room(&room, "from-emitter", &json!(3), &[])
        .await
        .unwrap();
    for c in [&mut ann, &mut bea, &mut cy] {
        assert_eq!(
            events(c).await,
            ["from-emitter", "from-one", "from-two"],
            "{:?}",
            c.id
        );
    }
    // A name under instance one's prefix that no client of it holds: joined there, it is
    // still not subscribed by name (the pattern delivers it), so it arrives once.
    let unowned = format!("{}8000-000000000000", prefix(&one));
    one.server
        .join_room(bea.id.as_deref().unwrap(), &unowned)
        .unwrap();
    two.server
        .join_room(cy.id.as_deref().unwrap(), &unowned)
        .unwrap();
    subscribers(&conn, &format!("ws:room:{unowned}"), 1).await;
    two.server
        .send_to_room_everywhere(&unowned, "unowned", &json!(4), &[])
        .await
        .unwrap();
    assert_eq!(events(&mut bea).await, ["unowned"]);
    assert_eq!(events(&mut cy).await, ["unowned"]);
}
