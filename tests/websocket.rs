//! The server's WebSocket layer seen from raw bytes on a socket: client pings, fragmented
//! messages with control frames between them, frames split across writes or sent with the
//! request head, the closing handshake's echo, and the close codes of broken input (1002,
//! 1007, 1009), through both `Server::serve` and the axum `Upgrade` path.

mod common;

use std::time::Duration;

use common::{TestServer, serve_axum, spawn, test_builder, test_builder_max_payload};
use sealcast::protocol::websocket::{
    client_frame,
    opcode::{BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT},
};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

const MASK: [u8; 4] = [0xa1, 0x0b, 0x5c, 0x77];
const WAIT: Duration = Duration::from_secs(5);

/// A client speaking frames by hand over a plain TCP socket.
struct Raw {
    tcp: TcpStream,
    read: Vec<u8>,
}

/// A server frame: final bit, opcode, payload.
#[derive(Debug, PartialEq)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

fn upgrade_request(srv: &TestServer) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        srv.server.path(),
        srv.addr
    )
    .into_bytes()
}

impl Raw {
    /// Connects and upgrades; `early` goes out in the same write as the request head.
    async fn connect_with(srv: &TestServer, early: &[u8]) -> Self {
        let mut tcp = TcpStream::connect(srv.addr).await.expect("connect");
        let mut request = upgrade_request(srv);
        request.extend_from_slice(early);
        tcp.write_all(&request).await.expect("write");
        let mut raw = Self {
            tcp,
            read: Vec::new(),
        };
        let end = loop {
            if let Some(at) = raw.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            raw.fill().await;
        };
        let head = String::from_utf8_lossy(&raw.read[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        raw.read.drain(..end);
        raw
    }

    async fn connect(srv: &TestServer) -> Self {
        Self::connect_with(srv, &[]).await
    }

    async fn fill(&mut self) -> usize {
        let mut buf = [0; 4096];
        let n = timeout(WAIT, self.tcp.read(&mut buf))
            .await
            .expect("the server answers in time")
            .expect("read");
        self.read.extend_from_slice(&buf[..n]);
        n
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write");
    }

    async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.send(&client_frame(fin, opcode, payload, MASK)).await;
    }

    /// The next server frame; `None` when the server closed the TCP connection.
    async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.read) {
                self.read.drain(..used);
                return Some(frame);
            }
            if self.fill().await == 0 {
                return None;
            }
        }
    }

    /// The next text frame's JSON, skipping pings.
    async fn event(&mut self) -> Value {
        loop {
            let frame = self.frame().await.expect("a frame");
            if frame.opcode == PING {
                continue;
            }
            assert_eq!(frame.opcode, TEXT, "{frame:?}");
            return serde_json::from_slice(&frame.payload).expect("JSON");
        }
    }

    /// The close frame's code, and whether the server then closed the connection.
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            let frame = self.frame().await?;
            if frame.opcode == CLOSE {
                assert!(frame.fin);
                let code = frame
                    .payload
                    .get(..2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]));
                assert_eq!(self.frame().await, None, "nothing follows the close frame");
                return code;
            }
        }
    }

    async fn authenticate(&mut self, token: &str) -> Value {
        let auth = format!(r#"{{"event":"authenticate","data":{{"token":"{token}"}}}}"#);
        self.send_frame(true, TEXT, auth.as_bytes()).await;
        let connected = self.event().await;
        assert_eq!(connected["event"], "connected", "{connected}");
        connected
    }
}

/// One unmasked server frame from the start of `bytes`, and its length.
fn parse_server_frame(bytes: &[u8]) -> Option<(Frame, usize)> {
    let [b0, b1, ..] = *bytes else { return None };
    assert_eq!(b1 & 0x80, 0, "server frames are not masked");
    let (len, at) = match b1 & 0x7F {
        126 => (
            usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
            4,
        ),
        127 => (
            usize::try_from(u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)).ok()?,
            10,
        ),
        n => (usize::from(n), 2),
    };
    let payload = bytes.get(at..at + len)?.to_vec();
    let frame = Frame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0F,
        payload,
    };
    Some((frame, at + len))
}

/// A server through `Server::serve`, and one through axum and the `Upgrade` extractor.
async fn both_paths() -> [TestServer; 2] {
    let axum = serve_axum(test_builder().build().await.expect("builds")).await;
    [spawn(test_builder()).await, axum]
}

#[tokio::test]
async fn a_client_ping_gets_its_pong_with_the_same_payload() {
    for srv in both_paths().await {
        let mut c = Raw::connect(&srv).await;
        c.send_frame(true, PING, b"are you there").await;
        let pong = c.frame().await.expect("pong");
        assert_eq!(
            pong,
            Frame {
                fin: true,
                opcode: PONG,
                payload: b"are you there".to_vec()
            }
        );
        // The connection goes on.
        c.authenticate("pinger").await;
    }
}

#[tokio::test]
async fn a_fragmented_message_with_a_ping_between_its_fragments() {
    let srv = spawn(test_builder()).await;
    let mut c = Raw::connect(&srv).await;
    let auth = br#"{"event":"authenticate","data":{"token":"fragmented"}}"#;
    c.send_frame(false, TEXT, &auth[..10]).await;
    c.send_frame(true, PING, b"mid").await;
    c.send_frame(false, CONTINUATION, &auth[10..30]).await;
    c.send_frame(true, CONTINUATION, &auth[30..]).await;
    let pong = c.frame().await.expect("pong");
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"mid"[..]));
    let connected = c.event().await;
    assert_eq!(connected["event"], "connected");
    assert_eq!(connected["data"]["userId"], "fragmented");
}

#[tokio::test]
async fn frames_split_byte_by_byte_and_frames_sent_with_the_request_head() {
    let srv = spawn(test_builder()).await;
    // Byte by byte, each its own write.
    let mut c = Raw::connect(&srv).await;
    let auth = client_frame(
        true,
        TEXT,
        br#"{"event":"authenticate","data":{"token":"slow"}}"#,
        MASK,
    );
    for byte in &auth {
        c.send(std::slice::from_ref(byte)).await;
        c.tcp.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(c.event().await["event"], "connected");
    // Authenticate and join in the request head's own packet.
    let mut early = client_frame(
        true,
        TEXT,
        br#"{"event":"authenticate","data":{"token":"early"}}"#,
        MASK,
    );
    early.extend(client_frame(
        true,
        TEXT,
        br#"{"event":"join","data":{"rooms":["lobby"]}}"#,
        MASK,
    ));
    let mut e = Raw::connect_with(&srv, &early).await;
    assert_eq!(e.event().await["event"], "connected");
    assert!(common::eventually(|| srv.server.clients_by_room("lobby").len() == 1).await);
}

#[tokio::test]
async fn the_close_frame_echoes_the_clients_code() {
    for srv in both_paths().await {
        let mut c = Raw::connect(&srv).await;
        c.authenticate("closer").await;
        c.send_frame(true, CLOSE, b"\x0f\xa0bye").await;
        assert_eq!(c.close_code().await, Some(4000));
        // A close without a code is answered without one.
        let mut bare = Raw::connect(&srv).await;
        bare.send_frame(true, CLOSE, b"").await;
        assert_eq!(bare.close_code().await, None);
    }
}

#[tokio::test]
async fn broken_frames_close_with_1002_and_invalid_text_with_1007() {
    let srv = spawn(test_builder()).await;
    let mut neighbour = Raw::connect(&srv).await;
    neighbour.authenticate("neighbour").await;
    let protocol_errors: [Vec<u8>; 6] = [
        // Not masked.
        vec![0x81, 0x02, b'h', b'i'],
        // A reserved bit (no extension was negotiated).
        client_frame(true, TEXT | 0x40, b"x", MASK),
        // An opcode RFC 6455 does not define.
        client_frame(true, 0x3, b"x", MASK),
        // A continuation with no message under way.
        client_frame(true, CONTINUATION, b"x", MASK),
        // A control frame over 125 bytes.
        client_frame(true, PING, &[0; 126], MASK),
        // A close code no endpoint may send.
        client_frame(true, CLOSE, &1005u16.to_be_bytes(), MASK),
    ];
    for frame in protocol_errors {
        let mut c = Raw::connect(&srv).await;
        c.send(&frame).await;
        assert_eq!(c.close_code().await, Some(1002), "{frame:?}");
    }
    for frame in [
        client_frame(true, TEXT, b"{\"event\":\"\xff\"}", MASK),
        client_frame(true, CLOSE, b"\x03\xe8\xc3", MASK),
    ] {
        let mut c = Raw::connect(&srv).await;
        c.send(&frame).await;
        assert_eq!(c.close_code().await, Some(1007), "{frame:?}");
    }
    // The neighbour is untouched.
    neighbour.send_frame(true, PING, b"ok").await;
    assert_eq!(neighbour.frame().await.expect("pong").payload, b"ok");
}

#[tokio::test]
async fn an_oversized_frame_is_refused_from_its_header_alone() {
    let srv = spawn(test_builder_max_payload(1024)).await;
    let mut c = Raw::connect(&srv).await;
    // A header announcing 1 GiB, and not one byte of it.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&MASK);
    c.send(&header).await;
    assert_eq!(c.close_code().await, Some(1009));
    // Fragments adding up past the limit: the second one's header is refused.
    let mut f = Raw::connect(&srv).await;
    f.send_frame(false, BINARY, &[1; 600]).await;
    let second = client_frame(true, CONTINUATION, &[2; 600], MASK);
    f.send(&second[..8]).await;
    assert_eq!(f.close_code().await, Some(1009));
}

/// A client whose message goes over the limit is still sending it when the server closes:
/// the server reads and drops the rest, so the client gets the close frame and a clean end
/// of the stream, not a reset (which can discard the close frame before it is read).
#[tokio::test]
async fn a_client_still_sending_gets_the_close_frame_not_a_reset() {
    for srv in both_paths().await {
        for _ in 0..10 {
            let mut c = Raw::connect(&srv).await;
            // 1 MiB announced (the limit is 128 KiB), 256 KiB of it sent.
            let mut frame = client_frame(true, BINARY, &vec![7; 1 << 20], MASK);
            frame.truncate(256 * 1024);
            c.send(&frame).await;
            // Reads up to the end of the stream: a reset fails the read.
            assert_eq!(c.close_code().await, Some(1009));
        }
    }
}

/// Messages the fan-out writes straight to a client's socket and the pongs the connection's
/// task writes to the same socket share it frame by frame. The client stops reading while
/// 12 MB are sent to it and it pings: the socket fills, the fan-out's writes leave tails for
/// the task to finish, and still every message arrives whole and in order, and every ping
/// gets its pong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_writes_and_pongs_share_a_full_socket_frame_whole() {
    const MESSAGES: usize = 1500;
    const PINGS: usize = 20;
    let transport = sealcast::TransportOptions {
        backpressure_limit: 64 << 20,
        ..sealcast::TransportOptions::default()
    };
    let srv = spawn(test_builder().transport(transport)).await;
    let mut c = Raw::connect(&srv).await;
    let connected = c.authenticate("sharer").await;
    let id = connected["data"]["id"].as_str().expect("id").to_owned();
    let server = srv.server.clone();
    // From a thread of its own, as an application's worker would send.
    let sender = std::thread::spawn(move || {
        let payload = "p".repeat(8 * 1024);
        for i in 0..MESSAGES {
            server
                .send_to_client(&id, "bulk", &serde_json::json!({"i": i, "p": payload}))
                .expect("sent");
        }
    });
    for n in 0..PINGS {
        c.send_frame(true, PING, format!("ping {n}").as_bytes())
            .await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::task::spawn_blocking(move || sender.join())
        .await
        .expect("join")
        .expect("sender");
    let (mut next, mut pongs) = (0, 0);
    while next < MESSAGES || pongs < PINGS {
        let frame = c.frame().await.expect("a frame");
        match frame.opcode {
            PONG => {
                assert_eq!(frame.payload, format!("ping {pongs}").as_bytes());
                pongs += 1;
            }
            TEXT => {
                let v: Value = serde_json::from_slice(&frame.payload).expect("whole JSON");
                assert_eq!(v["event"], "bulk");
                assert_eq!(v["data"]["i"], next, "in order");
                assert_eq!(v["data"]["p"].as_str().map(str::len), Some(8 * 1024));
                next += 1;
            }
            other => panic!("unexpected opcode {other}"),
        }
    }
}
