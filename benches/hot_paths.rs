//! Criterion micro-benchmarks of sealcast's hot paths.
//!
//! * `encode_frame`: the once-per-message `{"event":..,"data":..}` encoding.
//! * `parse_inbound`: [`InboundFrame::parse`] of an application frame and of `authenticate`.
//! * `seal_v1`: [`V1Key::seal_frame`], the per-encrypted-receiver cost of a delivery (`into`:
//!   [`V1Key::seal_frame_into`], appending to a buffer, as the writer does).
//! * `seal_v2`: the same for a v2 record ([`v2::Sealer::seal`], `into`:
//!   [`v2::Sealer::seal_into`]); `batch16`: 16 such frames gathered into one batched record
//!   ([`v2::Batch`]), what a writer does for a client that offered batches (per batch).
//! * `open_v1`: [`V1Key::open`], what a client (and the load generator) pays per message.
//! * `fan_out`: end to end through the public API: [`Server::send_to_room`] on a server with
//!   N loopback WebSocket clients (tokio-tungstenite), each drained by a reader task; one
//!   iteration is one message sent and received by all N (plaintext and all-encrypted rooms).
//!   It runs in-process on the same cores as the server, so it measures the whole pipeline
//!   (encode, outbox push, writer wake, write syscalls, client read), not the server alone;
//!   `examples/loadgen.rs` measures the server process on its own.
//!
//! Settings are short (20 samples, 2 s) so a full run takes about a minute:
//! `cargo bench --bench hot_paths` (add `-- --quick` for a faster, rougher run, or a filter
//! such as `-- seal_v1`).

use std::{
    future::IntoFuture as _,
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, Throughput};
use futures_util::{SinkExt, StreamExt};
use sealcast::{
    Identity, Server,
    crypto::{KeyPair, V1Key, v2},
    protocol::{InboundFrame, Limits, encode_frame},
};
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

fn payload(pad: usize) -> Box<RawValue> {
    let text = format!(
        r#"{{"seq":123456,"ts":9876543210,"user":"u42","pad":"{}"}}"#,
        "x".repeat(pad)
    );
    RawValue::from_string(text).expect("payload is JSON")
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_frame");
    for pad in [64, 1024] {
        let data = payload(pad);
        g.throughput(Throughput::Bytes(data.get().len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(pad), &data, |b, data| {
            b.iter(|| encode_frame(black_box("chat:message"), black_box(data)));
        });
    }
    g.finish();
}

fn parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("parse_inbound");
    let app = format!(
        r#"{{"event":"chat:message","data":{},"id":"m-1"}}"#,
        payload(64).get()
    );
    let auth = format!(
        r#"{{"event":"authenticate","data":{{"type":"token","token":"u42","publicKey":"{}"}}}}"#,
        KeyPair::generate().public_key_b64()
    );
    for (name, frame) in [("app_message", app), ("authenticate", auth)] {
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| InboundFrame::parse(black_box(frame.as_bytes()), &limits));
        });
    }
    g.finish();
}

fn seal(c: &mut Criterion) {
    let key = V1Key::from_bytes([7; 32]).expect("key");
    let mut g = c.benchmark_group("seal_v1");
    for pad in [64, 1024] {
        let frame = encode_frame("chat:message", &payload(pad));
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(pad), &frame, |b, frame| {
            b.iter(|| key.seal_frame(black_box(frame.as_bytes())));
        });
        // The writer's path: appended to a buffer it keeps.
        let mut out = Vec::new();
        g.bench_with_input(BenchmarkId::new("into", pad), &frame, |b, frame| {
            b.iter(|| {
                out.clear();
                key.seal_frame_into(black_box(frame.as_bytes()), &mut out)
            });
        });
        // What the server seals for a v1 client: the frame followed by spaces up to whole AES
        // blocks (`Outgoing::json_padded`).
        let mut padded = frame.clone().into_bytes();
        padded.resize(padded.len().next_multiple_of(16), b' ');
        g.bench_with_input(
            BenchmarkId::new("into_padded", pad),
            &padded,
            |b, padded| {
                b.iter(|| {
                    out.clear();
                    key.seal_frame_into(black_box(padded), &mut out)
                });
            },
        );
    }
    g.finish();
    // v2 records: a fixed traffic secret (the handshake is not what is measured). Each
    // iteration seals the next record, so the counter and the rekeying run as they do live.
    let mut sealer = v2::Sealer::from_secret_for_testing([7; 32], v2::Direction::ServerToClient, 0)
        .expect("sealer");
    let mut g = c.benchmark_group("seal_v2");
    for pad in [64, 1024] {
        let frame = encode_frame("chat:message", &payload(pad));
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(pad), &frame, |b, frame| {
            b.iter(|| sealer.seal(black_box(frame.as_bytes())));
        });
        let mut out = Vec::new();
        g.bench_with_input(BenchmarkId::new("into", pad), &frame, |b, frame| {
            b.iter(|| {
                out.clear();
                sealer.seal_into(black_box(frame.as_bytes()), &mut out)
            });
        });
        if pad > 64 {
            continue; // 16 of the large frames would not fit one batch (MAX_BATCH_BYTES)
        }
        let mut batch = v2::Batch::new();
        g.throughput(Throughput::Elements(16));
        g.bench_with_input(BenchmarkId::new("batch16", pad), &frame, |b, frame| {
            b.iter(|| {
                out.clear();
                for _ in 0..16 {
                    batch.push(black_box(frame.as_bytes()));
                }
                batch.seal_into(&mut sealer, &mut out)
            });
        });
    }
    g.finish();
    let mut g = c.benchmark_group("open_v1");
    let frame = encode_frame("chat:message", &payload(64));
    let (iv, ct) = key.seal(frame.as_bytes(), None).expect("seal");
    let (iv, ct) = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        (b64.encode(iv), b64.encode(ct))
    };
    g.bench_function("64", |b| {
        b.iter(|| key.open(black_box(&iv), black_box(&ct), None));
    });
    g.finish();
}

/// A server with `n` clients in room `bench`, and the deliveries they counted.
struct Room {
    server: Server,
    received: Arc<AtomicU64>,
    target: Arc<AtomicU64>,
    done: Arc<Notify>,
    n: u64,
}

async fn room(n: usize, encrypted: bool) -> Room {
    let mut builder = Server::builder()
        .authenticate(|req| async move { Ok(req.token().map(Identity::user)) })
        .validate_rooms(|req| async move { Ok(req.rooms) });
    if encrypted {
        builder = builder.encryption_v1(KeyPair::generate());
    }
    let server = builder.build().await.expect("server builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(server.serve(listener, server.router()).into_future());
    let received = Arc::new(AtomicU64::new(0));
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(Notify::new());
    let client_key = KeyPair::generate().public_key_b64();
    for i in 0..n {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("connect");
        let (mut tx, mut rx) = ws.split();
        let auth = if encrypted {
            format!(
                r#"{{"event":"authenticate","data":{{"type":"token","token":"u{i}","publicKey":"{client_key}"}}}}"#
            )
        } else {
            format!(r#"{{"event":"authenticate","data":{{"type":"token","token":"u{i}"}}}}"#)
        };
        tx.send(Message::text(auth)).await.expect("send auth");
        loop {
            match rx.next().await {
                Some(Ok(Message::Text(t))) if t.starts_with(r#"{"event":"connected""#) => break,
                Some(Ok(_)) => {}
                other => panic!("no connected event: {other:?}"),
            }
        }
        tx.send(Message::text(
            r#"{"event":"join","data":{"rooms":["bench"]}}"#,
        ))
        .await
        .expect("send join");
        let (received, target, done) = (received.clone(), target.clone(), done.clone());
        tokio::spawn(async move {
            let _keep = tx;
            while let Some(Ok(msg)) = rx.next().await {
                if let Message::Text(t) = msg
                    && (t.starts_with(r#"{"event":"bench""#)
                        || t.starts_with(r#"{"event":"encrypted""#))
                {
                    let v = received.fetch_add(1, Ordering::AcqRel) + 1;
                    if v == target.load(Ordering::Acquire) {
                        done.notify_one();
                    }
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.clients_by_room("bench").len() < n {
        assert!(Instant::now() < deadline, "clients did not join in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Room {
        server,
        received,
        target,
        done,
        n: n as u64,
    }
}

impl Room {
    /// Sends one message to the room and waits until every client read it.
    async fn round(&self, data: &RawValue) {
        let before = self.received.load(Ordering::Acquire);
        self.target.store(before + self.n, Ordering::Release);
        self.server
            .send_to_room("bench", "bench", data, &[])
            .expect("send");
        while self.received.load(Ordering::Acquire) < before + self.n {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.done.notified()).await;
        }
    }
}

fn fan_out(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let data = payload(64);
    let mut g = c.benchmark_group("fan_out");
    for (n, encrypted) in [(100, false), (1000, false), (100, true)] {
        let room = rt.block_on(room(n, encrypted));
        g.throughput(Throughput::Elements(n as u64));
        let name = if encrypted { "sealed" } else { "plaintext" };
        g.bench_with_input(BenchmarkId::new(name, n), &room, |b, room| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        room.round(&data).await;
                    }
                    start.elapsed()
                })
            });
        });
        rt.block_on(room.server.shutdown());
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    encode(&mut c);
    parse(&mut c);
    seal(&mut c);
    fan_out(&mut c);
    c.final_summary();
}
