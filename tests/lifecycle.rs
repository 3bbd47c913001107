//! Session lifecycle over real sockets: authentication, timeouts, close codes, error strings.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{eventually, spawn, test_builder, test_builder_max_payload};
use sealcast::{Identity, Server, ServerBuilder, TransportOptions};
use serde_json::{Value, json};

#[tokio::test]
async fn authenticate_then_connected_with_id_user_and_iso_time() {
    let srv = spawn(test_builder()).await;
    let mut c = srv.client().await;
    let connected = c.authenticate("alice").await;
    let data = &connected["data"];
    let id = data["id"].as_str().unwrap();
    assert!(
        uuid::Uuid::try_parse(id).is_ok(),
        "client id is a UUID: {id}"
    );
    assert_eq!(data["userId"], "alice");
    let time = data["time"].as_str().unwrap();
    // `new Date().toISOString()` shape: 2026-11-23T10:44:54.123Z
    assert_eq!(time.len(), 24, "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T' && time.as_bytes()[19] == b'.');
    assert!(humantime::parse_rfc3339(time).is_ok());
    assert!(data.get("serverPublicKey").is_none());
    let info = srv.server.client(id).unwrap();
    assert_eq!(info.state.as_str(), "authenticated");
    assert_eq!(info.user_id.as_deref(), Some("alice"));
    let mut rooms = info.rooms.clone();
    rooms.sort();
    let mut expected = vec![id.to_owned(), "ws-default".into(), "ws-notification".into()];
    expected.sort();
    assert_eq!(rooms, expected, "own-id room and default rooms joined");
}

#[tokio::test]
async fn rejected_and_failing_auth_close_4003_with_exact_strings() {
    let srv = spawn(test_builder()).await;
    let mut c = srv.client().await;
    c.emit("authenticate", json!({"token": "bad"})).await;
    c.expect_error("Authentication failed").await;
    assert_eq!(c.expect_close().await.0, Some(4003));

    let mut c = srv.client().await;
    c.emit("authenticate", json!({"token": "boom"})).await;
    c.expect_error("Authentication error").await;
    assert_eq!(c.expect_close().await.0, Some(4003));

    let panicking = spawn(Server::builder().authenticate(|_req| async move {
        if true {
            panic!("hook bug");
        }
        Ok(None)
    }))
    .await;
    let mut c = panicking.client().await;
    c.emit("authenticate", json!({"token": "x"})).await;
    c.expect_error("Authentication error").await;
    assert_eq!(c.expect_close().await.0, Some(4003));
    // The server survived the panic and still serves.
    let mut again = panicking.client().await;
    again.emit("authenticate", json!({})).await;
    again.expect_error("Authentication error").await;
}

/// A hook that answers later goes through the same outcomes as one that answers at once: a
/// refusal, a failure, a panic, an identity.
#[tokio::test]
async fn a_slow_authenticate_hook_refuses_fails_panics_and_accepts_alike() {
    let srv = spawn(Server::builder().authenticate(|req| async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        match req.token().as_deref() {
            Some("bad") => Ok(None),
            Some("boom") => Err("backend down".into()),
            Some("panic") => panic!("hook bug"),
            token => Ok(token.map(|t| Identity::user(t.to_owned()))),
        }
    }))
    .await;
    for (token, error) in [
        ("bad", "Authentication failed"),
        ("boom", "Authentication error"),
        ("panic", "Authentication error"),
    ] {
        let mut c = srv.client().await;
        c.emit("authenticate", json!({ "token": token })).await;
        c.expect_error(error).await;
        assert_eq!(c.expect_close().await.0, Some(4003), "{token}");
    }
    let mut c = srv.client().await;
    assert_eq!(c.authenticate("erin").await["data"]["userId"], "erin");
}

#[tokio::test]
async fn initial_auth_timeout_closes_4001() {
    let srv = spawn(test_builder().auth_timeout(Duration::from_millis(200))).await;
    let mut c = srv.client().await;
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, Some(4001));
    assert_eq!(reason, "Authentication timeout");
    assert!(eventually(|| srv.server.stats().clients == 0).await);
}

#[tokio::test]
async fn slow_auth_closes_4001_after_three_times_the_timeout() {
    let t = Duration::from_millis(200);
    let builder = Server::builder()
        .auth_timeout(t)
        .authenticate(move |req| async move {
            let ms: u64 = req.data::<Value>()?["delay_ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Some(Identity::user("slow")))
        });
    let srv = spawn(builder).await;
    // 400 ms of auth is longer than auth_timeout but within 3×: accepted.
    let mut ok = srv.client().await;
    ok.emit("authenticate", json!({"delay_ms": 400})).await;
    ok.expect_event("connected").await;
    // 2 s is longer than 3×: 4001 while authenticating, never reported connected.
    let mut slow = srv.client().await;
    slow.emit("authenticate", json!({"delay_ms": 2000})).await;
    let started = tokio::time::Instant::now();
    assert_eq!(slow.expect_close().await.0, Some(4001));
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn not_authenticated_invalid_format_already_authenticated() {
    let srv = spawn(test_builder()).await;
    let mut c = srv.client().await;
    c.emit("chat", json!({"text": "hi"})).await;
    c.expect_error("Not authenticated").await;
    c.emit("join", json!({"rooms": ["a"]})).await;
    c.expect_error("Not authenticated").await;
    c.send_text("not json").await;
    c.expect_error("Invalid message format").await;
    c.send_json(json!({"data": 1})).await; // no event: dropped silently
    c.send_json(json!({"event": "heartbeat"})).await; // consumed
    c.expect_silence().await;
    c.authenticate("bob").await;
    c.emit("authenticate", json!({"token": "bob"})).await;
    c.expect_error("Already authenticated").await;
}

#[tokio::test]
async fn garbage_non_objects_deep_json_and_binary_frames() {
    let srv = spawn(test_builder()).await;
    let mut c = srv.authed("carol").await;
    for bad in ["null", "[]", "3", "\"x\"", "{", "{\"event\":3}"] {
        c.send_text(bad).await;
        c.expect_error("Invalid message format").await;
    }
    let deep = format!(
        "{{\"event\":\"x\",\"data\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    c.send_text(&deep).await;
    c.expect_error("Invalid message format").await;
    c.emit("join", json!({"rooms": "not-a-list"})).await;
    c.expect_error("Invalid message format").await;
    c.emit("join", json!(null)).await;
    c.expect_error("Invalid message format").await;
    // A binary frame holding UTF-8 JSON is read like text; invalid UTF-8 is refused.
    c.send_binary(br#"{"event":"join","data":{"rooms":["bin-room"]}}"#.to_vec())
        .await;
    c.send_binary(vec![0xff, 0xfe, 0x00]).await;
    c.expect_error("Invalid message format").await;
    assert!(eventually(|| srv.server.clients_by_room("bin-room").len() == 1).await);
    // Still connected and served.
    srv.server
        .send_to_client(c.id.as_deref().unwrap(), "ping", &json!(1))
        .unwrap();
    assert_eq!(c.expect_event("ping").await["data"], 1);
}

#[tokio::test]
async fn heartbeat_sweep_closes_stale_clients_4002_and_activity_keeps_alive() {
    let srv = spawn(
        test_builder()
            .heartbeat_interval(Duration::from_millis(100))
            .heartbeat_timeout(Duration::from_millis(400)),
    )
    .await;
    let mut idle = srv.authed("idle").await;
    let mut busy = srv.authed("busy").await;
    let beat = tokio::spawn(async move {
        for _ in 0..12 {
            busy.send_text(r#"{"event":"heartbeat"}"#).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        busy
    });
    let (code, reason) = idle.expect_close().await;
    assert_eq!(code, Some(4002));
    assert_eq!(reason, "Heartbeat timeout");
    let mut busy = beat.await.unwrap();
    // Heartbeats kept it alive for 1.2 s, three times the timeout.
    srv.server
        .send_to_user("busy", "still", &json!(true))
        .unwrap();
    busy.expect_event("still").await;
}

#[tokio::test]
async fn frames_during_auth_are_handled_in_order_after_it() {
    let builder = test_builder().authenticate(|req| async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        Ok(req.token().map(Identity::user))
    });
    let handled = Arc::new(Mutex::new(Vec::new()));
    let seen = handled.clone();
    let srv = spawn(builder.on_message(move |m| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(m.event);
            Ok(())
        }
    }))
    .await;
    let mut c = srv.client().await;
    c.emit("authenticate", json!({"token": "dana"})).await;
    c.join(&["early"]).await;
    c.emit("first", json!(1)).await;
    c.emit("second", json!(2)).await;
    c.expect_event("connected").await;
    assert!(eventually(|| handled.lock().unwrap().len() == 2).await);
    assert_eq!(*handled.lock().unwrap(), vec!["first", "second"]);
    assert_eq!(
        srv.server.clients_by_room("early").len(),
        1,
        "the join sent during auth applied"
    );
}

#[tokio::test]
async fn join_is_visible_to_the_next_frame() {
    // The validator answers at once: the join is applied without waiting.
    join_visible_to_the_next_frame(test_builder()).await;
}

#[tokio::test]
async fn a_join_waiting_for_a_slow_validator_is_visible_to_the_next_frame() {
    // The validator answers later: the connection waits for it before the next frame.
    let slow = test_builder().validate_rooms(|req| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(req.rooms)
    });
    join_visible_to_the_next_frame(slow).await;
}

/// Twenty joins, each followed by a message whose handler checks the membership: every
/// preceding join must already be applied.
async fn join_visible_to_the_next_frame(builder: ServerBuilder) {
    let server_slot: Arc<Mutex<Option<Server>>> = Arc::default();
    let slot = server_slot.clone();
    let results = Arc::new(Mutex::new(Vec::new()));
    let out = results.clone();
    let srv = spawn(builder.on_message(move |m| {
        let slot = slot.clone();
        let out = out.clone();
        async move {
            let server = slot.lock().unwrap().clone().unwrap();
            let room = m.data::<String>()?;
            let member = server
                .clients_by_room(&room)
                .iter()
                .any(|c| c.id == m.client_id);
            out.lock().unwrap().push(member);
            Ok(())
        }
    }))
    .await;
    *server_slot.lock().unwrap() = Some(srv.server.clone());
    let mut c = srv.authed("erin").await;
    for i in 0..20 {
        let room = format!("r{i}");
        c.join(&[room.as_str()]).await;
        c.emit("check", json!(room)).await;
    }
    assert!(eventually(|| results.lock().unwrap().len() == 20).await);
    assert!(results.lock().unwrap().iter().all(|m| *m));
}

#[tokio::test]
async fn a_slow_hook_for_one_client_never_delays_others() {
    let builder = test_builder().on_message(|m| async move {
        if m.event == "slow" {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Ok(())
    });
    let srv = spawn(builder).await;
    let mut slow = srv.authed("slow").await;
    slow.emit("slow", json!(null)).await;
    let started = tokio::time::Instant::now();
    let mut fast = srv.authed("fast").await;
    fast.join(&["room-f"]).await;
    assert!(eventually(|| srv.server.clients_by_room("room-f").len() == 1).await);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn disconnect_mid_auth_is_cleaned_up_and_never_reported_connected() {
    let connected = Arc::new(AtomicUsize::new(0));
    let disconnected = Arc::new(AtomicUsize::new(0));
    let (c1, d1) = (connected.clone(), disconnected.clone());
    let builder = Server::builder()
        .authenticate(|_req| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(Some(Identity::user("ghost")))
        })
        .on_connected(move |_| {
            let c1 = c1.clone();
            async move {
                c1.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .on_disconnected(move |_| {
            let d1 = d1.clone();
            async move {
                d1.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
    let srv = spawn(builder).await;
    let mut c = srv.client().await;
    c.emit("authenticate", json!({})).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.close().await;
    assert!(eventually(|| srv.server.stats().clients == 0).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(connected.load(Ordering::SeqCst), 0);
    assert_eq!(disconnected.load(Ordering::SeqCst), 0);
    assert_eq!(srv.server.stats().users, 0);
    // A client that completes is reported once each way.
    let c = srv.authed("x").await;
    c.close().await;
    assert!(eventually(|| disconnected.load(Ordering::SeqCst) == 1).await);
    assert_eq!(connected.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_server_completes_the_closing_handshake() {
    let srv = spawn(test_builder()).await;
    let mut before_auth = srv.client().await;
    assert_eq!(before_auth.close_handshake(1000).await, Some(1000));
    let mut after_auth = srv.authed("closer").await;
    srv.server.broadcast("queued", &json!(1), &[]).unwrap();
    assert_eq!(after_auth.close_handshake(4100).await, Some(4100));
    assert!(eventually(|| srv.server.stats().clients == 0).await);
}

#[tokio::test]
async fn hook_errors_are_logged_not_fatal() {
    let builder = test_builder()
        .on_connected(|_| async { Err("connected hook down".into()) })
        .on_message(|_| async { Err("handler down".into()) })
        .on_disconnected(|_| async { Err("disconnected hook down".into()) });
    let srv = spawn(builder).await;
    let mut c = srv.authed("f").await;
    c.emit("anything", json!(1)).await;
    c.join(&["still-works"]).await;
    assert!(eventually(|| srv.server.clients_by_room("still-works").len() == 1).await);
}

#[tokio::test]
async fn oversized_frame_closes_only_its_client_with_1009() {
    let srv = spawn(test_builder_max_payload(1024)).await;
    let mut big = srv.authed("big").await;
    let mut neighbour = srv.authed("neighbour").await;
    big.send_text(&format!(r#"{{"event":"x","data":"{}"}}"#, "a".repeat(4096)))
        .await;
    assert_eq!(big.expect_close().await.0, Some(1009));
    for i in 0..5 {
        srv.server.broadcast("tick", &json!(i), &[]).unwrap();
        assert_eq!(neighbour.expect_event("tick").await["data"], i);
    }
    // Exactly at the limit is fine.
    let mut at = srv.authed("at").await;
    let pad = 1024 - r#"{"event":"x","data":""}"#.len();
    at.send_text(&format!(r#"{{"event":"x","data":"{}"}}"#, "a".repeat(pad)))
        .await;
    at.send_text(r#"{"event":"heartbeat"}"#).await;
    at.expect_silence().await;
}

#[tokio::test]
async fn transport_idle_timeout_closes_silent_peers() {
    let transport = TransportOptions {
        idle_timeout: Duration::from_millis(300),
        send_pings: false,
        ..TransportOptions::default()
    };
    let srv = spawn(test_builder().transport(transport)).await;
    let mut c = srv.authed("quiet").await;
    let (code, _) = c.expect_close().await;
    assert_eq!(code, Some(1001));
}

/// The idle check is armed once and re-armed when it fires: every frame from the peer pushes
/// the deadline back, however long the connection lives.
#[tokio::test]
async fn transport_idle_timeout_counts_from_the_last_frame() {
    let transport = TransportOptions {
        idle_timeout: Duration::from_millis(300),
        send_pings: false,
        ..TransportOptions::default()
    };
    let srv = spawn(test_builder().transport(transport)).await;
    let mut c = srv.authed("chatty").await;
    for _ in 0..9 {
        c.emit("tick", json!(null)).await;
        assert!(
            c.recv_within(Duration::from_millis(120)).await.is_none(),
            "an active peer is not closed"
        );
    }
    let (code, _) = c.expect_close().await;
    assert_eq!(code, Some(1001), "silence past the timeout still closes");
}

/// With transport pings on, a peer that only answers pings stays open past the idle timeout.
#[tokio::test]
async fn transport_pings_keep_an_answering_peer_open() {
    let transport = TransportOptions {
        idle_timeout: Duration::from_millis(300),
        send_pings: true,
        ..TransportOptions::default()
    };
    let srv = spawn(test_builder().transport(transport)).await;
    let mut c = srv.authed("pong").await;
    // Reading answers the server's pings (the client library sends the pongs).
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1200);
    while tokio::time::Instant::now() < deadline {
        assert!(
            c.recv_within(Duration::from_millis(100)).await.is_none(),
            "nothing but pings arrives"
        );
    }
}

/// Requests that are not WebSocket opening handshakes are refused with the reason.
#[tokio::test]
async fn non_websocket_requests_to_the_path_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = spawn(test_builder()).await;
    let cases = [
        ("GET", "", "400", "Connection"),
        (
            "GET",
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            "400",
            "Sec-WebSocket-Version",
        ),
        (
            "GET",
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
            "400",
            "Sec-WebSocket-Key",
        ),
    ];
    for (method, headers, status, reason) in cases {
        let mut tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let request = format!(
            "{method} {} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n",
            srv.server.path()
        );
        // `Connection: close` after `Connection: Upgrade` adds a second value; the
        // upgrade check looks at every value of the header.
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}")),
            "{headers:?}: {response}"
        );
        assert!(response.contains(reason), "{headers:?}: {response}");
    }
}

/// The 101 answer carries the accept key RFC 6455 derives from the client's key.
#[tokio::test]
async fn upgrade_answers_with_the_rfc_6455_accept_key() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = spawn(test_builder()).await;
    let mut tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        srv.server.path()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    let response = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 101"), "{response}");
    // The example key and accept value of RFC 6455 section 1.3.
    assert!(
        response.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{response}"
    );
}

#[tokio::test]
async fn shutdown_sends_1001_runs_disconnect_hooks_and_clears_indexes() {
    let disconnected = Arc::new(AtomicUsize::new(0));
    let d = disconnected.clone();
    let srv = spawn(test_builder().on_disconnected(move |_| {
        let d = d.clone();
        async move {
            d.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }))
    .await;
    let mut a = srv.authed("a").await;
    let mut b = srv.authed("b").await;
    let mut pending = srv.client().await;
    srv.server.shutdown().await;
    for c in [&mut a, &mut b, &mut pending] {
        let (code, reason) = c.expect_close().await;
        assert_eq!(code, Some(1001));
        assert_eq!(reason, "Server shutting down");
    }
    assert_eq!(
        disconnected.load(Ordering::SeqCst),
        2,
        "once per connected client"
    );
    let stats = srv.server.stats();
    assert_eq!((stats.clients, stats.users, stats.rooms), (0, 0, 0));
    // New upgrades are refused.
    let refused = tokio_tungstenite::connect_async(srv.url()).await;
    assert!(refused.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(disconnected.load(Ordering::SeqCst), 2, "never twice");
}

#[tokio::test]
async fn index_cleanup_after_1000_connect_disconnect_cycles() {
    let srv = spawn(test_builder()).await;
    let mut batch = Vec::new();
    for i in 0..1000 {
        let mut c = srv.client().await;
        if i % 3 != 0 {
            c.authenticate(&format!("user-{}", i % 7)).await;
            c.join(&["cycle-room", &format!("r-{}", i % 11)]).await;
        }
        batch.push(c);
        if batch.len() == 50 {
            for c in batch.drain(..) {
                c.close().await;
            }
        }
    }
    for c in batch.drain(..) {
        c.close().await;
    }
    assert!(
        eventually(|| {
            let s = srv.server.stats();
            (s.clients, s.users, s.rooms) == (0, 0, 0)
        })
        .await,
        "indexes not empty: {:?}",
        srv.server.stats()
    );
}
