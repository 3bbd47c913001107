//! `Server::serve`: WebSocket handshakes answered by the server on the accepted socket, every
//! other request handed to the application's router over hyper, slow or oversized request
//! heads, graceful shutdown, and the same sessions through `axum::serve`.
#![allow(clippy::unwrap_used)]

mod common;

use std::{future::IntoFuture as _, sync::Arc, time::Duration};

use axum::{Router, routing::get};
use common::{WAIT, WsClient, serve_app, serve_axum, spawn, test_builder};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Notify,
};
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest,
    protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    },
};

/// One HTTP/1.1 exchange on an open connection: the response head and body (bodies here are
/// short and carry a `content-length`).
async fn exchange(tcp: &mut TcpStream, request: &str) -> String {
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed before the response was complete");
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some(at) = text.find("\r\n\r\n") {
            let length: usize = text[..at]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if response.len() >= at + 4 + length {
                return text.into_owned();
            }
        }
    }
}

fn app_with_hello(server: &sealcast::Server) -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .merge(server.router())
}

#[tokio::test]
async fn the_app_gets_every_other_request_on_a_kept_alive_connection() {
    let server = test_builder().build().await.unwrap();
    let srv = serve_app(server.clone(), app_with_hello(&server)).await;
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    // The first request's head is read by the listener and replayed to hyper; the second
    // comes from the socket itself.
    for _ in 0..2 {
        let response = exchange(&mut tcp, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("hello"), "{response}");
    }
    let response = exchange(&mut tcp, "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    // And the WebSocket endpoint beside it.
    let mut c = srv.client().await;
    let connected = c.authenticate("ann").await;
    assert_eq!(connected["data"]["userId"], "ann");
}

#[tokio::test]
async fn frames_sent_right_behind_the_request_head_are_read() {
    let srv = spawn(test_builder()).await;
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    let mut bytes = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        srv.server.path()
    )
    .into_bytes();
    let auth = json!({"event": "authenticate", "data": {"type": "token", "token": "eager"}});
    let mut frame = Frame::message(auth.to_string(), OpCode::Data(Data::Text), true);
    frame.header_mut().mask = Some([0x37, 0xfa, 0x21, 0x3d]);
    frame.format(&mut bytes).unwrap();
    // One write: the head and the first frame arrive together.
    tcp.write_all(&bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"connected\"") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("connected in time")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains("\"userId\":\"eager\""), "{text}");
}

#[tokio::test]
async fn a_request_head_that_does_not_arrive_in_time_is_dropped() {
    let srv = spawn(test_builder().auth_timeout(Duration::from_millis(200))).await;
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A well-behaved client beside it is served meanwhile.
    let mut c = srv.client().await;
    c.authenticate("prompt").await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, slow.read(&mut buf))
        .await
        .expect("the slow connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn an_upgrade_with_a_head_too_large_to_parse_in_place_still_connects() {
    let srv = spawn(test_builder()).await;
    let mut request = srv.url().into_client_request().unwrap();
    // 24 KiB of cookie: past what the listener parses itself, within hyper's limits.
    request
        .headers_mut()
        .insert("cookie", "c".repeat(24 * 1024).parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut c = WsClient::from_stream(ws);
    let connected = c.authenticate("big").await;
    assert_eq!(connected["data"]["userId"], "big");
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_progress_and_stops_accepting() {
    let server = test_builder().build().await.unwrap();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (e, r) = (entered.clone(), release.clone());
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let (e, r) = (e.clone(), r.clone());
                async move {
                    e.notify_one();
                    r.notified().await;
                    "done"
                }
            }),
        )
        .merge(server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(Notify::new());
    let signal = stop.clone();
    let serving = tokio::spawn(
        server
            .serve(listener, app)
            .with_graceful_shutdown(async move { signal.notified().await })
            .into_future(),
    );
    // A WebSocket session is open throughout; the shutdown does not wait for it.
    let mut ws = WsClient::connect(&format!("ws://{addr}/ws")).await;
    ws.authenticate("stays").await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let slow =
        tokio::spawn(
            async move { exchange(&mut tcp, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await },
        );
    entered.notified().await;
    stop.notify_one();
    // The listener closes: new connections are refused.
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!serving.is_finished(), "a request is still in progress");
    release.notify_one();
    let response = tokio::time::timeout(WAIT, slow).await.unwrap().unwrap();
    assert!(response.ends_with("done"), "{response}");
    tokio::time::timeout(WAIT, serving)
        .await
        .expect("serve returns once the request is done")
        .unwrap()
        .unwrap();
    // The session outlived the listener.
    ws.emit("heartbeat", json!(null)).await;
    ws.expect_silence().await;
}

#[tokio::test]
async fn dropping_the_serve_future_stops_the_listener() {
    let server = test_builder().build().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(server.serve(listener, server.router()).into_future());
    WsClient::connect(&format!("ws://{addr}/ws")).await;
    serving.abort();
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `Upgrade` extractor's way in (an application's own `axum::serve`) runs the same session.
#[tokio::test]
async fn sessions_behave_alike_through_axum_serve() {
    let srv = serve_axum(test_builder().build().await.unwrap()).await;
    let mut a = srv.authed("ada").await;
    let mut b = srv.authed("bob").await;
    a.join(&["lobby"]).await;
    b.join(&["lobby"]).await;
    common::eventually(|| srv.server.clients_by_room("lobby").len() == 2).await;
    srv.server
        .send_to_room("lobby", "news", &json!({"n": 1}), &[])
        .unwrap();
    for c in [&mut a, &mut b] {
        let news = c.expect_event("news").await;
        assert_eq!(news["data"]["n"], 1);
    }
    srv.server
        .send_to_client(a.id.as_deref().unwrap(), "direct", &json!(2))
        .unwrap();
    assert_eq!(a.expect_event("direct").await["data"], 2);
    b.expect_silence().await;
}
