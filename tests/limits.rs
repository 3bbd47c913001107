//! Abuse limits, each at the limit and one past it: pending authentications, frames per
//! second, joins per second, event-name length, JSON depth, the Origin allow-list and the write
//! timeout for a stuck client. (Rooms per request and per client are in `rooms.rs`; the envelope
//! size limit in `protocol::envelope` and the Redis broker tests.)

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Received, eventually, spawn, test_builder};
use sealcast::{Identity, TransportOptions, protocol::Limits};
use serde_json::json;

fn limits(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    f(&mut l);
    l
}

#[tokio::test]
async fn pending_authentications_are_bounded_server_wide() {
    let builder = test_builder()
        .limits(limits(|l| l.max_pending_auth = 2))
        .authenticate(|req| async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            Ok(req.token().map(Identity::user))
        });
    let srv = spawn(builder).await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    let mut c = srv.client().await;
    a.emit("authenticate", json!({"token": "a"})).await;
    b.emit("authenticate", json!({"token": "b"})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.emit("authenticate", json!({"token": "c"})).await;
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, Some(1013), "one past the limit");
    assert_eq!(reason, "Try again later");
    a.expect_event("connected").await; // at the limit: both complete
    b.expect_event("connected").await;
    let mut d = srv.client().await; // permits are returned
    d.emit("authenticate", json!({"token": "d"})).await;
    d.expect_event("connected").await;
}

#[tokio::test]
async fn frame_rate_is_bounded_error_then_1008() {
    let srv = spawn(test_builder().limits(limits(|l| {
        l.frames_per_second = 1;
        l.frame_burst = 10;
    })))
    .await;
    let mut c = srv.authed("flood").await; // the authenticate frame took one token
    for _ in 0..9 {
        c.send_text(r#"{"event":"heartbeat"}"#).await;
    }
    c.expect_silence().await; // at the limit: all admitted
    c.send_text(r#"{"event":"heartbeat"}"#).await;
    c.expect_error("Rate limit exceeded").await; // one past
    for _ in 0..9 {
        if !c.try_send_text(r#"{"event":"heartbeat"}"#).await {
            break;
        }
    }
    assert_eq!(c.expect_close().await.0, Some(1008));
    assert!(srv.server.metrics().rate_limited >= 10);
}

#[tokio::test]
async fn join_rate_is_bounded() {
    let srv = spawn(test_builder().limits(limits(|l| {
        l.joins_per_second = 1;
        l.join_burst = 3;
    })))
    .await;
    let mut c = srv.authed("joiner").await;
    for room in ["j1", "j2", "j3"] {
        c.join(&[room]).await;
    }
    c.expect_silence().await;
    assert!(eventually(|| srv.server.clients_by_room("j3").len() == 1).await);
    c.join(&["j4"]).await;
    c.expect_error("Rate limit exceeded").await;
    assert!(srv.server.clients_by_room("j4").is_empty());
}

#[tokio::test]
async fn event_name_length_and_json_depth_at_and_past_the_limit() {
    let srv = spawn(test_builder().limits(limits(|l| {
        l.max_event_name_bytes = 16;
        l.max_json_depth = 4;
    })))
    .await;
    let mut c = srv.authed("shape").await;
    c.emit(&"e".repeat(16), json!(1)).await;
    c.emit("d", json!([[[1]]])).await; // object + 3 arrays = depth 4
    c.expect_silence().await;
    c.emit(&"e".repeat(17), json!(1)).await;
    c.expect_error("Invalid message format").await;
    c.emit("d", json!([[[[1]]]])).await;
    c.expect_error("Invalid message format").await;
}

#[tokio::test]
async fn origin_allow_list() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let srv = spawn(test_builder().limits(limits(|l| {
        l.allowed_origins = Some(vec!["https://app.example".into()]);
    })))
    .await;
    let request = |origin: Option<&str>| {
        let mut r = srv.url().into_client_request().unwrap();
        if let Some(o) = origin {
            r.headers_mut().insert("origin", o.parse().unwrap());
        }
        r
    };
    let ok = tokio_tungstenite::connect_async(request(Some("https://app.example"))).await;
    assert!(ok.is_ok());
    let no_origin = tokio_tungstenite::connect_async(request(None)).await;
    assert!(no_origin.is_ok(), "non-browser clients send no Origin");
    let refused = tokio_tungstenite::connect_async(request(Some("https://evil.example"))).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_stuck_client_is_dropped_after_the_write_timeout() {
    let transport = TransportOptions {
        backpressure_limit: 256 * 1024 * 1024,
        ..TransportOptions::default()
    };
    let srv = spawn(
        test_builder()
            .transport(transport)
            .limits(limits(|l| l.write_timeout = Duration::from_millis(300))),
    )
    .await;
    let stuck = srv.authed("stuck").await; // never reads again
    let stuck_id = stuck.id.clone().unwrap();
    let mut healthy = srv.authed("healthy").await;
    let payload = "w".repeat(1024 * 1024);
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < 64 {
            match healthy.recv().await {
                Received::Event(_) => n += 1,
                other => panic!("{other:?}"),
            }
        }
        healthy
    });
    for _ in 0..64 {
        srv.server.broadcast("big", &payload, &[]).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        eventually(|| srv.server.client(&stuck_id).is_none()).await,
        "the stuck client was dropped"
    );
    let mut healthy = reader.await.unwrap();
    srv.server.send_to_user("healthy", "still", &1).unwrap();
    healthy.expect_event("still").await;
    drop(stuck);
}
