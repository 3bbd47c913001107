//! Test helpers: a server on 127.0.0.1 port 0 and a small WebSocket client.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

pub mod gateway;
pub mod redis;

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use sealcast::{Identity, Server, ServerBuilder, TransportOptions};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, protocol::CloseFrame},
};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure something does NOT happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// A server listening on an ephemeral port.
pub struct TestServer {
    pub server: Server,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("ws://{}{}", self.addr, self.server.path())
    }

    pub async fn client(&self) -> WsClient {
        WsClient::connect(&self.url()).await
    }

    /// A client authenticated with `token` (the default test auth makes it the user id).
    pub async fn authed(&self, token: &str) -> WsClient {
        let mut c = self.client().await;
        c.authenticate(token).await;
        c
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The auth most tests use: token "bad" is rejected, token "boom" makes the hook fail,
/// anything else is the user id.
pub fn test_builder() -> ServerBuilder {
    Server::builder()
        .authenticate(|req| async move {
            match req.token().as_deref() {
                None | Some("bad") => Ok(None),
                Some("boom") => Err("auth backend down".into()),
                Some(token) => Ok(Some(Identity::user(token))),
            }
        })
        .validate_rooms(|req| async move {
            Ok(req
                .rooms
                .into_iter()
                .filter(|r| !r.starts_with("private-"))
                .collect())
        })
}

/// [`test_builder`] with messages (and frames) limited to `bytes`: a longer one closes its
/// client with 1009.
pub fn test_builder_max_payload(bytes: usize) -> ServerBuilder {
    test_builder().transport(TransportOptions {
        max_payload_length: bytes,
        ..TransportOptions::default()
    })
}

/// Builds and serves on 127.0.0.1:0.
pub async fn spawn(builder: ServerBuilder) -> TestServer {
    let server = builder.build().await.expect("server builds");
    serve(server).await
}

/// Serves through `Server::serve` (WebSocket handshakes answered by the server itself).
pub async fn serve(server: Server) -> TestServer {
    serve_app(server.clone(), server.router()).await
}

/// Serves `app` through `Server::serve`.
pub async fn serve_app(server: Server, app: axum::Router) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let serving = server.serve(listener, app);
    let task = tokio::spawn(async move {
        serving.await.expect("serve");
    });
    TestServer { server, addr, task }
}

/// Serves through `axum::serve` and `Server::router` (the `Upgrade` extractor's path).
pub async fn serve_axum(server: Server) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = server.router::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    TestServer { server, addr, task }
}

/// What a client read.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Event(Value),
    Close(Option<u16>, String),
    Gone,
}

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub id: Option<String>,
}

impl WsClient {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio::time::timeout(WAIT, connect_async(url))
            .await
            .expect("connect in time")
            .expect("connect");
        Self { ws, id: None }
    }

    /// A client on a stream opened by hand (a request with extra headers, say).
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self { ws, id: None }
    }

    pub async fn send_json(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, s: &str) {
        self.ws.send(Message::text(s)).await.expect("send");
    }

    pub async fn send_binary(&mut self, b: Vec<u8>) {
        self.ws.send(Message::binary(b)).await.expect("send");
    }

    /// Sends without panicking (the server may already have closed).
    pub async fn try_send_text(&mut self, s: &str) -> bool {
        self.ws.send(Message::text(s)).await.is_ok()
    }

    pub async fn emit(&mut self, event: &str, data: Value) {
        self.send_json(json!({"event": event, "data": data})).await;
    }

    pub async fn authenticate(&mut self, token: &str) -> Value {
        self.emit("authenticate", json!({"type": "token", "token": token}))
            .await;
        let connected = self.expect_event("connected").await;
        self.id = connected["data"]["id"].as_str().map(str::to_owned);
        connected
    }

    pub async fn join(&mut self, rooms: &[&str]) {
        self.emit("join", json!({ "rooms": rooms })).await;
    }

    pub async fn leave(&mut self, rooms: &[&str]) {
        self.emit("leave", json!({ "rooms": rooms })).await;
    }

    /// Next thing the server sent, within `wait`; `None` if nothing came.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Received> {
        loop {
            let next = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return None,
                Ok(next) => next,
            };
            return Some(match next {
                Some(Ok(Message::Text(t))) => {
                    Received::Event(serde_json::from_str(&t).expect("server sends JSON"))
                }
                Some(Ok(Message::Close(frame))) => close_of(frame),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(_))) => panic!("server sent a binary frame"),
                Some(Err(_)) | None => Received::Gone,
            });
        }
    }

    pub async fn recv(&mut self) -> Received {
        self.recv_within(WAIT)
            .await
            .expect("a frame from the server in time")
    }

    /// The next event; panics on close or timeout.
    pub async fn next_event(&mut self) -> Value {
        match self.recv().await {
            Received::Event(v) => v,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    pub async fn expect_event(&mut self, event: &str) -> Value {
        let v = self.next_event().await;
        assert_eq!(v["event"], event, "unexpected frame {v}");
        v
    }

    pub async fn expect_error(&mut self, message: &str) {
        let v = self.expect_event("error").await;
        assert_eq!(v["data"]["message"], message);
    }

    /// Waits for the close frame, skipping events; returns its code.
    pub async fn expect_close(&mut self) -> (Option<u16>, String) {
        loop {
            match self.recv().await {
                Received::Event(_) => continue,
                Received::Close(code, reason) => return (code, reason),
                Received::Gone => return (None, String::new()),
            }
        }
    }

    /// Asserts nothing arrives for a while.
    pub async fn expect_silence(&mut self) {
        if let Some(r) = self.recv_within(QUIET).await {
            panic!("expected silence, got {r:?}");
        }
    }

    /// Collects events until `QUIET` passes with nothing new.
    pub async fn drain(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(Received::Event(v)) = self.recv_within(QUIET).await {
            out.push(v);
        }
        out
    }

    /// Starts the closing handshake and returns the code the server answers with.
    pub async fn close_handshake(&mut self, code: u16) -> Option<u16> {
        let frame = CloseFrame {
            code: code.into(),
            reason: "bye".into(),
        };
        self.ws
            .send(Message::Close(Some(frame)))
            .await
            .expect("send close");
        loop {
            match self.recv().await {
                // Frames the server sent before it read our close frame.
                Received::Event(_) => continue,
                Received::Close(code, _) => return code,
                Received::Gone => panic!("connection dropped without the close echo"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

fn close_of(frame: Option<CloseFrame>) -> Received {
    match frame {
        Some(f) => Received::Close(Some(f.code.into()), f.reason.to_string()),
        None => Received::Close(None, String::new()),
    }
}

/// Polls `f` until it returns true or `WAIT` passes.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}
