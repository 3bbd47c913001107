//! Delivery: client, user, room, broadcast, excludes, `send` routing, backpressure, and
//! cross-instance delivery through the shared memory broker.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Received, WsClient, eventually, spawn, test_builder};
use sealcast::{TransportOptions, broker::MemoryBroker};
use serde_json::{Value, json};

async fn expect_data(c: &mut WsClient, event: &str) -> Value {
    c.expect_event(event).await["data"].clone()
}

#[tokio::test]
async fn client_user_room_broadcast_with_excludes() {
    let srv = spawn(test_builder()).await;
    let s = &srv.server;
    let mut a1 = srv.authed("alice").await;
    let mut a2 = srv.authed("alice").await;
    let mut b = srv.authed("bob").await;
    let mut anon = srv.client().await; // never authenticates
    let (a1_id, a2_id, b_id) = (
        a1.id.clone().unwrap(),
        a2.id.clone().unwrap(),
        b.id.clone().unwrap(),
    );
    b.join(&["lobby"]).await;
    a1.join(&["lobby"]).await;
    assert!(eventually(|| s.clients_by_room("lobby").len() == 2).await);

    assert!(
        s.send_to_client(&a1_id, "direct", &json!({"n": 1}))
            .unwrap()
    );
    assert_eq!(expect_data(&mut a1, "direct").await, json!({"n": 1}));

    assert_eq!(s.send_to_user("alice", "user", &json!("both")).unwrap(), 2);
    assert_eq!(expect_data(&mut a1, "user").await, "both");
    assert_eq!(expect_data(&mut a2, "user").await, "both");

    assert_eq!(
        s.send_to_room("lobby", "room", &json!([1]), &[&b_id])
            .unwrap(),
        1
    );
    assert_eq!(expect_data(&mut a1, "room").await, json!([1]));

    assert_eq!(s.broadcast("all", &json!(null), &[&a2_id]).unwrap(), 2);
    assert_eq!(expect_data(&mut a1, "all").await, Value::Null);
    assert_eq!(expect_data(&mut b, "all").await, Value::Null);

    a2.expect_silence().await;
    b.expect_silence().await;
    anon.expect_silence().await; // broadcasts reach authenticated clients only
    assert!(!s.send_to_client("nobody", "x", &1).unwrap());
}

#[tokio::test]
async fn each_receiver_gets_each_message_exactly_once_in_order() {
    let srv = spawn(test_builder()).await;
    let mut clients = Vec::new();
    for i in 0..20 {
        let mut c = srv.authed(&format!("u{i}")).await;
        c.join(&["fan"]).await;
        clients.push(c);
    }
    assert!(eventually(|| srv.server.clients_by_room("fan").len() == 20).await);
    for seq in 0..200 {
        srv.server.send_to_room("fan", "seq", &seq, &[]).unwrap();
    }
    for c in &mut clients {
        let got: Vec<i64> = c
            .drain()
            .await
            .iter()
            .map(|v| v["data"].as_i64().unwrap())
            .collect();
        assert_eq!(got, (0..200).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn send_routes_like_the_spec() {
    let broker = MemoryBroker::new();
    let one = spawn(test_builder().broker(broker.clone())).await;
    let two = spawn(test_builder().broker(broker.clone())).await;
    let mut local = one.authed("l").await;
    let mut remote = two.authed("r").await;
    let remote_id = remote.id.clone().unwrap();
    let local_id = local.id.clone().unwrap();
    remote.join(&["shared"]).await;
    local.join(&["shared"]).await;
    assert!(eventually(|| two.server.clients_by_room("shared").len() == 1).await);
    assert!(eventually(|| one.server.clients_by_room("shared").len() == 1).await);

    // No destination: broadcast everywhere, once each.
    one.server.send(None, "bc", &json!(1)).await.unwrap();
    assert_eq!(expect_data(&mut local, "bc").await, 1);
    assert_eq!(expect_data(&mut remote, "bc").await, 1);
    // A local client id.
    one.server
        .send(Some(&local_id), "to-local", &json!(2))
        .await
        .unwrap();
    assert_eq!(expect_data(&mut local, "to-local").await, 2);
    // A remote client id: travels as a room message to its own-id room.
    one.server
        .send(Some(&remote_id), "to-remote", &json!(3))
        .await
        .unwrap();
    assert_eq!(expect_data(&mut remote, "to-remote").await, 3);
    // A room with members on both instances.
    one.server
        .send(Some("shared"), "room", &json!(4))
        .await
        .unwrap();
    assert_eq!(expect_data(&mut local, "room").await, 4);
    assert_eq!(expect_data(&mut remote, "room").await, 4);
    local.expect_silence().await;
    remote.expect_silence().await;
}

#[tokio::test]
async fn cross_instance_user_room_broadcast_exactly_once_with_excludes() {
    let broker = MemoryBroker::new();
    let one = spawn(test_builder().broker(broker.clone())).await;
    let two = spawn(test_builder().broker(broker.clone())).await;
    let mut u1 = one.authed("user").await;
    let mut u2 = two.authed("user").await;
    let mut other = two.authed("other").await;
    for c in [&mut u1, &mut u2, &mut other] {
        c.join(&["team"]).await;
    }
    assert!(eventually(|| two.server.clients_by_room("team").len() == 2).await);
    assert!(eventually(|| one.server.clients_by_room("team").len() == 1).await);
    let other_id = other.id.clone().unwrap();

    one.server
        .send_to_user_everywhere("user", "u", &json!(1))
        .await
        .unwrap();
    one.server
        .send_to_room_everywhere("team", "t", &json!(2), &[&other_id])
        .await
        .unwrap();
    two.server
        .broadcast_everywhere("b", &json!(3), &[&other_id])
        .await
        .unwrap();
    for c in [&mut u1, &mut u2] {
        let mut got: Vec<String> = c
            .drain()
            .await
            .iter()
            .map(|v| v["event"].as_str().unwrap().to_owned())
            .collect();
        // Messages from different instances have no mutual order; each arrives exactly once.
        got.sort();
        assert_eq!(got, vec!["b", "t", "u"]);
    }
    other.expect_silence().await;
}

#[tokio::test]
async fn server_ignores_its_own_envelopes_and_mismatched_channels() {
    use sealcast::{
        broker::Broker,
        protocol::{Envelope, MessageType},
    };
    use std::sync::Arc;
    let broker = MemoryBroker::new();
    let srv = spawn(test_builder().broker(broker.clone())).await;
    let mut c = srv.authed("x").await;
    // Its own id: dropped (it delivered locally already).
    let own = Envelope {
        server_id: srv.server.id().to_owned(),
        kind: MessageType::Broadcast,
        target: None,
        event: "own".into(),
        data: None,
        exclude: None,
    };
    broker.publish(Arc::new(own)).await.unwrap();
    // The emitter's id: delivered.
    let from_emitter = Envelope {
        server_id: "emitter".into(),
        kind: MessageType::User,
        target: Some("x".into()),
        event: "emitted".into(),
        data: Some(serde_json::value::to_raw_value(&json!({"k": "v"})).unwrap()),
        exclude: None,
    };
    broker.publish(Arc::new(from_emitter)).await.unwrap();
    assert_eq!(expect_data(&mut c, "emitted").await, json!({"k": "v"}));
    c.expect_silence().await;
}

#[tokio::test]
async fn a_slow_client_is_bounded_and_never_slows_the_others() {
    let srv = spawn(test_builder()).await;
    // The stalled client authenticates and then never reads again.
    let stalled = srv.authed("stalled").await;
    let stalled_id = stalled.id.clone().unwrap();
    let mut healthy = srv.authed("healthy").await;
    let payload = "p".repeat(8 * 1024);
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    const TOTAL: usize = 2000;
    let reader = tokio::spawn(async move {
        for n in 1..=TOTAL {
            match healthy.recv().await {
                Received::Event(v) => assert_eq!(v["data"]["i"], n - 1),
                other => panic!("{other:?}"),
            }
            let _ = progress_tx.send(n);
        }
    });
    // ≈ 16 MB in total, published with at most 64 messages in flight to the healthy client, so
    // only the stalled one can hit the 1 MiB limit.
    for i in 0..TOTAL {
        srv.server
            .broadcast("bulk", &json!({"i": i, "p": payload}), &[])
            .unwrap();
        let need = i.saturating_sub(64);
        tokio::time::timeout(Duration::from_secs(10), progress.wait_for(|n| *n >= need))
            .await
            .expect("the healthy client keeps receiving")
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    let info = srv.server.client(&stalled_id).unwrap();
    assert!(info.backpressured, "the stalled client was marked");
    assert!(info.dropped_frames > 0);
    assert_eq!(
        srv.server.client(&stalled_id).unwrap().state.as_str(),
        "authenticated"
    );
    drop(stalled);
}

#[tokio::test]
async fn close_on_backpressure_limit_closes_the_slow_client_with_1008() {
    let transport = TransportOptions {
        backpressure_limit: 16 * 1024,
        close_on_backpressure_limit: true,
        ..TransportOptions::default()
    };
    let srv = spawn(test_builder().transport(transport)).await;
    let mut slow = srv.authed("slow").await;
    let payload = "p".repeat(8 * 1024);
    for i in 0..5000 {
        srv.server
            .broadcast("bulk", &json!({"i": i, "p": payload}), &[])
            .unwrap();
        if srv.server.stats().clients == 0 {
            break;
        }
    }
    assert_eq!(slow.expect_close().await.0, Some(1008));
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let srv = spawn(test_builder()).await;
    let before = srv.server.metrics();
    assert_eq!(before.connections.authenticated, 0);
    let mut a = srv.authed("m1").await;
    let mut b = srv.authed("m2").await;
    let mut pending = srv.client().await;
    pending.emit("authenticate", json!({"token": "bad"})).await;
    pending.expect_error("Authentication failed").await;
    assert_eq!(srv.server.broadcast("x", &1, &[]).unwrap(), 2);
    a.expect_event("x").await;
    b.expect_event("x").await;
    let m = srv.server.metrics();
    assert_eq!(m.connections.authenticated, 2);
    assert_eq!(m.connections_opened, 3);
    assert_eq!(m.auth_failures, 1);
    assert_eq!(m.deliveries, 2);
    assert_eq!(m.frames_in, 3);
    // connected ×2, error ×1, x ×2
    assert!(eventually(|| srv.server.metrics().frames_out == 5).await);
    assert_eq!(m.dropped, 0);
    assert_eq!(m.backpressured_clients, 0);
}

#[tokio::test]
async fn bursts_from_the_bus_keep_their_order_across_targets() {
    use sealcast::{
        broker::Broker,
        protocol::{Envelope, MessageType},
    };
    use std::sync::Arc;
    let broker = MemoryBroker::new();
    let srv = spawn(test_builder().broker(broker.clone())).await;
    let mut c = srv.authed("u").await;
    let mut d = srv.authed("v").await;
    c.join(&["r"]).await;
    d.join(&["r"]).await;
    assert!(eventually(|| srv.server.clients_by_room("r").len() == 2).await);
    let (c_id, d_id) = (c.id.clone().unwrap(), d.id.clone().unwrap());
    // Runs of room messages broken by messages to a user, a client, the room with an
    // exclusion, everyone, and another room, all published at once so they arrive together.
    let mut want_c = Vec::new();
    let mut want_d = Vec::new();
    for i in 0..400u32 {
        let (kind, target, exclude) = match i % 16 {
            5 => (MessageType::User, Some("u"), None),
            9 => (MessageType::Client, Some(d_id.as_str()), None),
            11 => (MessageType::Room, Some("r"), Some(vec![c_id.clone()])),
            13 => (MessageType::Broadcast, None, None),
            14 => (MessageType::Room, Some("elsewhere"), None),
            _ => (MessageType::Room, Some("r"), None),
        };
        let to_c = match i % 16 {
            5 | 13 => true,
            9 | 11 | 14 => false,
            _ => true,
        };
        let to_d = !matches!(i % 16, 5 | 14);
        if to_c {
            want_c.push(i);
        }
        if to_d {
            want_d.push(i);
        }
        let envelope = Envelope {
            server_id: "emitter".into(),
            kind,
            target: target.map(str::to_owned),
            event: "m".into(),
            data: Some(serde_json::value::to_raw_value(&json!(i)).unwrap()),
            exclude,
        };
        broker.publish(Arc::new(envelope)).await.unwrap();
    }
    let total = (want_c.len() + want_d.len()) as u64;
    for (client, want) in [(&mut c, want_c), (&mut d, want_d)] {
        let mut got = Vec::new();
        while got.len() < want.len() {
            got.push(expect_data(client, "m").await.as_u64().unwrap() as u32);
        }
        assert_eq!(got, want, "every message once, in publish order");
        client.expect_silence().await;
    }
    assert_eq!(
        srv.server.metrics().deliveries,
        total,
        "runs count every message"
    );
}
