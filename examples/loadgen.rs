//! Load generator for sealcast (and the raw Bun baseline in `bench/bun/server.js`).
//!
//! N WebSocket clients on loopback connect, authenticate
//! (`{"event":"authenticate","data":{"type":"token","token":"u<i>"}}`; the encrypted share of
//! them adds a v1 `publicKey`, or with `--profile v2` does the v2 handshake first, offering
//! batched records, and sends `authenticate` and `join` as sealed records; `v2-single` offers
//! no batches), join one room, and count and time every delivery, decrypting every sealed one
//! (each frame of a batched record is a delivery of its own).
//! Messages are published through Redis exactly as an emitter would (a raw `PUBLISH` of the
//! reference envelope on `ws:room:<room>`), either with a window of messages in flight (a
//! message leaves the window once every receiver got it) or at a fixed rate. Each payload
//! carries a sequence number and the send time, so the generator reports lost and duplicate
//! deliveries, p50/p90/p99 latency, deliveries/s and connect+auth/s. It samples the server
//! process's CPU time and RSS (`VmRSS`) around each phase, and its own CPU, and prints one
//! `RESULT key=value ...` line for `bench/run.sh`. CPU time is the sum of the threads' run
//! time in nanoseconds (`/proc/<pid>/task/*/schedstat`), checked against the 10 ms ticks of
//! `/proc/<pid>/stat`, which it falls back to when a thread ended during the phase.
//!
//! With `--decoy S` a share of the plaintext clients stand in for encrypted ones: each
//! delivery they receive in plaintext they also open a v1 sealed copy of a message of the same
//! size (base64 and AES-256-GCM, as a decrypting client does), so an all-plaintext room is read
//! at the pace of a mixed room's generator and the two compare. With `--alternate K` one run
//! holds encrypted, plaintext and decoy clients and publishes, K times over, to four rooms in
//! turn (the encrypted clients, the same with the plaintext ones, the decoys, the same with
//! the plaintext ones), reading the server's CPU around each: per cycle, what the plaintext
//! clients add next to sealed receivers and next to decoys (`bench/run.sh`'s `mixed_paced`
//! and `mixed_isolated` scenarios).
//!
//! With `--messages 0` it only connects, waits `--settle` seconds and reports the server's RSS
//! per idle authenticated connection.
//!
//! # Keeping the generator cheap
//!
//! * The WebSocket client is a minimal one written for this tool: one read syscall per wake
//!   into a per-connection buffer, then every complete frame in it is handled in place, with no
//!   allocation per plaintext frame and one clock read per batch.
//! * The receive path finds `"seq":` and `"ts":` by byte search; it never builds a JSON tree.
//! * Encrypted clients decrypt every `encrypted` frame (AES-256-GCM open + base64): that costs
//!   generator CPU, which the report shows.
//! * One light tokio task per socket on a small multi-thread runtime (`--threads`, default 2).
//!   The report says when the generator itself used most of a core.
//!
//! ```sh
//! cargo run --release --example loadgen -- --url ws://127.0.0.1:8080/ws \
//!     --redis redis://127.0.0.1:6379 --server-pid 1234 --clients 1000 --messages 2000 --window 256
//! ```

use std::{
    io::{self, Write as _},
    net::SocketAddr,
    ops::Range,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use clap::Parser;
use sealcast::crypto::{KeyPair, PublicKey, V1Key, v2};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{Notify, Semaphore, watch},
};

/// Writes one line to stdout (the report), ignoring a closed pipe.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// Sequence numbers from here on are readiness probes, not measured messages; a probe's room
/// index is in the bits from `PROBE_ROOM_SHIFT` up.
const PROBE_BASE: u64 = 1 << 40;
const PROBE_ROOM_SHIFT: u32 = 32;
/// Rooms of one run: one, or four with `--alternate`.
const MAX_ROOMS: usize = 4;
/// The rooms of `--alternate`, by index (their names follow `--room` and a dash).
const ALTERNATE_ROOMS: [&str; MAX_ROOMS] = ["sealed", "sealed-plain", "decoys", "decoys-plain"];
/// Linux reports process times in USER_HZ ticks, 100 per second on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "loadgen",
    about = "WebSocket fan-out load generator for sealcast and Bun"
)]
struct Args {
    /// The server's WebSocket URL, e.g. ws://127.0.0.1:8080/ws.
    #[arg(long)]
    url: String,
    /// Redis URL to publish on (required when --messages > 0).
    #[arg(long)]
    redis: Option<String>,
    /// The server's process id (CPU and RSS are read from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Name of this run in the RESULT line.
    #[arg(long, default_value = "run")]
    label: String,
    /// Clients to connect.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Share of clients (0..=1) that do an encryption handshake and decrypt every message.
    #[arg(long, default_value_t = 0.0)]
    encrypted: f64,
    /// Share of clients (0..=1, taken from the plaintext ones) that receive plaintext but spend
    /// a v1 decryption's CPU on every delivery: they open a sealed copy of the first measured
    /// message they received. A room read by decoys keeps a mixed room's pace with no sealing
    /// server side.
    #[arg(long, default_value_t = 0.0)]
    decoy: f64,
    /// The profile encrypted clients speak: `v1`, `v2` (offering batched records) or
    /// `v2-single` (one frame per record).
    #[arg(long, value_enum, default_value_t = Profile::V1)]
    profile: Profile,
    /// The room every client joins (with `--alternate`, the prefix of the four rooms' names).
    #[arg(long, default_value = "bench")]
    room: String,
    /// Messages to publish (0: idle mode, connect and measure memory only); with
    /// `--alternate`, messages per phase.
    #[arg(long, default_value_t = 2000)]
    messages: u32,
    /// Cycles of alternating rooms in this one run (0: one room, every client in it). Each
    /// cycle publishes `--messages` to four rooms in turn: the encrypted clients' room, the
    /// encrypted and plaintext clients' room, the decoys' room, the decoys' and plaintext
    /// clients' room. Each phase drains before the next, with the server's CPU read around
    /// it; per cycle, the second phase minus the first is what the plaintext clients cost
    /// next to sealed receivers, the fourth minus the third what they cost next to decoys.
    /// Needs encrypted, decoy and plaintext clients.
    #[arg(long, default_value_t = 0)]
    alternate: u32,
    /// Messages in flight (not yet received by every receiver).
    #[arg(long, default_value_t = 256)]
    window: u32,
    /// Publish at this fixed rate (messages/s) instead of by window.
    #[arg(long)]
    rate: Option<f64>,
    /// Padding bytes in each payload.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Connection handshakes (TCP + upgrade + authenticate) in progress at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Generator runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Per-connection read buffer in bytes (grows for larger frames).
    #[arg(long, default_value_t = 16 * 1024)]
    read_buffer: usize,
    /// Seconds to wait after connecting before sampling the server's RSS.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Give up when no message completes for this many seconds (lost deliveries).
    #[arg(long, default_value_t = 10.0)]
    stall_timeout: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run(args)),
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---- shared state -------------------------------------------------------------------------

/// State every connection task shares with the publisher.
struct Shared {
    epoch: Instant,
    messages: u32,
    /// Messages published to each room.
    per_room: [u64; MAX_ROOMS],
    /// Receivers per message of the current phase: set once the clients are known to be in
    /// its room.
    expected: AtomicU32,
    /// Receipts per sequence number.
    counts: Vec<AtomicU32>,
    /// Messages every expected receiver got.
    completed: AtomicU64,
    progress: Notify,
    /// Clients that finished (or failed) their setup.
    setup_done: AtomicU32,
    setup_failed: AtomicU32,
    setup_notify: Notify,
    /// Microseconds since `epoch` at which the last `connected` arrived.
    last_auth_us: AtomicU64,
    /// Microseconds since `epoch` of the last counted delivery.
    last_delivery_us: AtomicU64,
    /// Clients that received a probe from each of their rooms (so they are in them).
    probed: AtomicU32,
    /// Such clients per room.
    members: [AtomicU32; MAX_ROOMS],
    probe_notify: Notify,
}

impl Shared {
    /// State for `messages` sequence numbers, `per_room(room)` of them published to each room.
    fn new(messages: u32, per_room: impl FnMut(usize) -> u64) -> Self {
        Self {
            epoch: Instant::now(),
            messages,
            per_room: std::array::from_fn(per_room),
            expected: AtomicU32::new(u32::MAX),
            counts: (0..messages).map(|_| AtomicU32::new(0)).collect(),
            completed: AtomicU64::new(0),
            progress: Notify::new(),
            setup_done: AtomicU32::new(0),
            setup_failed: AtomicU32::new(0),
            setup_notify: Notify::new(),
            last_auth_us: AtomicU64::new(0),
            last_delivery_us: AtomicU64::new(0),
            probed: AtomicU32::new(0),
            members: Default::default(),
            probe_notify: Notify::new(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Messages published to the rooms of `bits` (a client's deliveries).
    fn messages_to(&self, bits: u8) -> usize {
        let sum: u64 = (0..MAX_ROOMS)
            .filter(|room| bits & (1 << room) != 0)
            .map(|room| self.per_room[room])
            .sum();
        usize::try_from(sum).unwrap_or(usize::MAX)
    }
}

/// What one connection saw.
#[derive(Default)]
struct ConnStats {
    encrypted: bool,
    ok: bool,
    received: u64,
    duplicates: u64,
    /// Frames that failed to decrypt or carried an unknown sequence number.
    bad: u64,
    /// `error` events from the server.
    errors: u64,
    closed_early: bool,
    latencies_us: Vec<u32>,
}

/// Receive-side state of one connection.
struct Receiver {
    shared: Arc<Shared>,
    key: Option<Key>,
    decoy: Option<Decoy>,
    seen: Vec<u64>,
    /// The rooms (bit per room index) this client joined, and those it got a probe from.
    rooms: u8,
    probed: u8,
    /// A delivery was counted in the current read batch.
    counted: bool,
    stats: ConnStats,
}

impl Receiver {
    /// A client of `role` in the rooms of `rooms` (bit per room index), with no key yet.
    fn new(role: Role, rooms: u8, shared: Arc<Shared>) -> Self {
        Self {
            key: None,
            decoy: (role == Role::Decoy).then(Decoy::new),
            seen: vec![0; (shared.messages as usize).div_ceil(64)],
            rooms,
            probed: 0,
            counted: false,
            stats: ConnStats {
                encrypted: role == Role::Encrypted,
                latencies_us: Vec::with_capacity(shared.messages_to(rooms)),
                ..ConnStats::default()
            },
            shared,
        }
    }

    fn on_text(&mut self, frame: &[u8], now_us: u64) {
        if let Some(key) = &mut self.key
            && frame.starts_with(br#"{"event":"encrypted""#)
        {
            let opened = match key {
                Key::V1(key) => open_sealed(key, frame),
                Key::V2(opener) => std::str::from_utf8(frame)
                    .ok()
                    .and_then(|record| opener.open(record).ok()),
            };
            let Some(plain) = opened else {
                self.stats.bad += 1;
                return;
            };
            if plain.first() == Some(&b'[') {
                // A batched v2 record: each frame is a delivery of its own.
                match v2::frames(&plain) {
                    Ok(frames) => frames.into_iter().for_each(|f| self.on_plain(f, now_us)),
                    Err(_) => self.stats.bad += 1,
                }
            } else {
                self.on_plain(&plain, now_us);
            }
            return;
        }
        self.on_plain(frame, now_us);
    }

    fn on_plain(&mut self, frame: &[u8], now_us: u64) {
        let Some((seq, ts)) = seq_and_ts(frame) else {
            if find(frame, br#""event":"error""#).is_some() {
                self.stats.errors += 1;
            }
            return;
        };
        if seq >= PROBE_BASE {
            if self.probed != self.rooms {
                self.probed |= probe_room_bit(seq) & self.rooms;
                if self.probed == self.rooms {
                    for (room, members) in self.shared.members.iter().enumerate() {
                        if self.rooms & (1 << room) != 0 {
                            members.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                    self.shared.probed.fetch_add(1, Ordering::AcqRel);
                    self.shared.probe_notify.notify_one();
                }
            }
            return;
        }
        // A decoy spends its decryption on measured messages, as their sealed copy stands in
        // for them (a probe's sequence number is longer).
        if let Some(decoy) = &mut self.decoy {
            decoy.spend(frame);
        }
        let Ok(idx) = usize::try_from(seq) else {
            self.stats.bad += 1;
            return;
        };
        if idx >= self.shared.messages as usize {
            self.stats.bad += 1;
            return;
        }
        let (word, bit) = (idx / 64, 1u64 << (idx % 64));
        if self.seen[word] & bit != 0 {
            self.stats.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.stats.received += 1;
        self.counted = true;
        self.stats
            .latencies_us
            .push(u32::try_from(now_us.saturating_sub(ts)).unwrap_or(u32::MAX));
        let count = self.shared.counts[idx].fetch_add(1, Ordering::AcqRel) + 1;
        if count == self.shared.expected.load(Ordering::Acquire) {
            self.shared.completed.fetch_add(1, Ordering::AcqRel);
            self.shared.progress.notify_one();
        }
    }
}

/// A plaintext client's stand-in for decryption (`--decoy`).
struct Decoy {
    key: V1Key,
    /// The first measured message received, as the server would have sealed it for a v1
    /// client.
    sealed: Vec<u8>,
}

impl Decoy {
    fn new() -> Self {
        Self {
            // A bench stand-in: the key protects nothing.
            key: V1Key::from_bytes([0x5c; 32]).expect("a 32-byte key"),
            sealed: Vec::new(),
        }
    }

    /// Opens the sealed copy, as a decrypting client opens what it receives; the first call
    /// seals `frame` to make that copy, with the server's own v1 frame sealing.
    fn spend(&mut self, frame: &[u8]) {
        if self.sealed.is_empty() && self.key.seal_frame_into(frame, &mut self.sealed).is_err() {
            return;
        }
        std::hint::black_box(open_sealed(&self.key, std::hint::black_box(&self.sealed)));
    }
}

/// Opens `{"event":"encrypted","data":{"iv":"..","ct":".."}}` with the client's key.
fn open_sealed(key: &V1Key, frame: &[u8]) -> Option<Vec<u8>> {
    let iv = string_field(frame, br#""iv":""#)?;
    let ct = string_field(frame, br#""ct":""#)?;
    let iv = std::str::from_utf8(iv).ok()?;
    let ct = std::str::from_utf8(ct).ok()?;
    key.open(iv, ct, None).ok()
}

/// The bytes of a JSON string field without escapes (base64), found by its `"name":"` prefix.
fn string_field<'a>(frame: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let start = find(frame, prefix)? + prefix.len();
    let len = frame[start..].iter().position(|&b| b == b'"')?;
    Some(&frame[start..start + len])
}

/// Finds `"seq":N` and then `"ts":N` without parsing the JSON.
fn seq_and_ts(frame: &[u8]) -> Option<(u64, u64)> {
    let at = find(frame, br#""seq":"#)? + 6;
    let (seq, used) = number(&frame[at..])?;
    let rest = &frame[at + used..];
    let at_ts = find(rest, br#""ts":"#)? + 5;
    let (ts, _) = number(&rest[at_ts..])?;
    Some((seq, ts))
}

/// A leading decimal number and how many bytes it used.
fn number(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut used = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        used += 1;
    }
    (used > 0).then_some((value, used))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last_start = hay.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        let off = hay[i..=last_start].iter().position(|&b| b == first)?;
        i += off;
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

// ---- a minimal WebSocket client -------------------------------------------------------------

/// One client WebSocket: text frames out (masked), frames in parsed from a flat buffer.
struct Ws {
    tcp: TcpStream,
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    /// A fragmented message being reassembled.
    frag: Vec<u8>,
    mask_state: u32,
}

/// A parsed frame header.
struct Header {
    fin: bool,
    opcode: u8,
    /// Header length in bytes.
    head: usize,
    /// Payload length in bytes.
    len: usize,
}

const OP_CONT: u8 = 0;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
/// Largest frame the generator accepts (the server's default limit is far below).
const MAX_FRAME: usize = 16 << 20;

fn protocol_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Parses a server frame header; `Ok(None)` when more bytes are needed.
fn parse_header(b: &[u8]) -> io::Result<Option<Header>> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[1] & 0x80 != 0 {
        return Err(protocol_error("masked frame from the server"));
    }
    let (head, len) = match b[1] & 0x7f {
        126 => {
            if b.len() < 4 {
                return Ok(None);
            }
            (4, usize::from(u16::from_be_bytes([b[2], b[3]])))
        }
        127 => {
            if b.len() < 10 {
                return Ok(None);
            }
            let mut n = [0u8; 8];
            n.copy_from_slice(&b[2..10]);
            let len = usize::try_from(u64::from_be_bytes(n))
                .map_err(|_| protocol_error("frame too large"))?;
            (10, len)
        }
        n => (2, usize::from(n)),
    };
    if len > MAX_FRAME {
        return Err(protocol_error("frame too large"));
    }
    Ok(Some(Header {
        fin: b[0] & 0x80 != 0,
        opcode: b[0] & 0x0f,
        head,
        len,
    }))
}

/// What the frame loop found besides data frames.
#[derive(Default)]
struct Control {
    pong: Option<Vec<u8>>,
    closed: bool,
}

/// Opens client `index`'s TCP connection. To a loopback server, each client gets its own
/// source address and port (spread over 127.0.0.2–127.0.0.17): letting `connect` pick the port
/// makes the kernel walk every port already connected to the same server before it finds a
/// free one, which at ~19,000 connections took most of the machine's CPU and capped every
/// server at ~3.5k connects/s. Falls back to a kernel-chosen port if that address is taken.
async fn connect_tcp(addr: SocketAddr, index: usize) -> io::Result<TcpStream> {
    const SOURCES: usize = 16;
    if let SocketAddr::V4(server) = addr
        && server.ip().is_loopback()
    {
        let ip = std::net::Ipv4Addr::new(127, 0, 0, 2 + (index % SOURCES) as u8);
        let port = 20_000 + ((index / SOURCES) % 40_000) as u16;
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        if socket.bind((ip, port).into()).is_ok()
            && let Ok(tcp) = socket.connect(addr).await
        {
            return Ok(tcp);
        }
    }
    TcpStream::connect(addr).await
}

impl Ws {
    async fn connect(
        addr: SocketAddr,
        host: &str,
        path: &str,
        buf_size: usize,
        index: usize,
    ) -> io::Result<Self> {
        let seed = u32::try_from(index % (u32::MAX as usize)).unwrap_or(7) ^ 0x9e37_79b9;
        let tcp = connect_tcp(addr, index).await?;
        tcp.set_nodelay(true)?;
        let mut ws = Self {
            tcp,
            buf: vec![0; buf_size.max(1024)],
            head: 0,
            tail: 0,
            frag: Vec::new(),
            mask_state: seed | 1,
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        ws.tcp.write_all(request.as_bytes()).await?;
        loop {
            if ws.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the upgrade",
                ));
            }
            if let Some(end) = find(&ws.buf[..ws.tail], b"\r\n\r\n") {
                let status = &ws.buf[..end];
                if !(status.starts_with(b"HTTP/1.1 101") || status.starts_with(b"HTTP/1.0 101")) {
                    let line = String::from_utf8_lossy(status);
                    let line = line.lines().next().unwrap_or_default().to_owned();
                    return Err(protocol_error(&format!("upgrade refused: {line}")));
                }
                ws.head = end + 4;
                return Ok(ws);
            }
        }
    }

    /// Makes room at the tail (compacting, or growing for a frame larger than the buffer).
    fn make_room(&mut self) {
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        } else if self.tail == self.buf.len() {
            if self.head > 0 {
                self.buf.copy_within(self.head..self.tail, 0);
                self.tail -= self.head;
                self.head = 0;
            } else {
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
    }

    /// One read into the buffer. Returns the bytes read (0 at end of stream).
    async fn fill(&mut self) -> io::Result<usize> {
        self.make_room();
        let n = self.tcp.read(&mut self.buf[self.tail..]).await?;
        self.tail += n;
        Ok(n)
    }

    /// Sends one masked frame.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        out.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= usize::from(u16::MAX) => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        // xorshift32: the mask only has to be present; its value does not matter here.
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        let mask = x.to_be_bytes();
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&out).await
    }

    /// Handles the complete frames in the buffer: data messages go to `on_message`, which
    /// returns false to stop after the current one.
    fn drain_frames(&mut self, mut on_message: impl FnMut(&[u8]) -> bool) -> io::Result<Control> {
        let mut control = Control::default();
        while let Some(h) = parse_header(&self.buf[self.head..self.tail])? {
            let start = self.head + h.head;
            let end = start + h.len;
            if end > self.tail {
                if end - self.head > self.buf.len() {
                    // Grow now so the next read can complete this frame.
                    let need = end - self.head;
                    self.buf.copy_within(self.head..self.tail, 0);
                    self.tail -= self.head;
                    self.head = 0;
                    self.buf.resize(need.next_power_of_two(), 0);
                }
                break;
            }
            let payload = &self.buf[start..end];
            let mut more = true;
            match h.opcode {
                OP_TEXT | OP_BINARY if h.fin && self.frag.is_empty() => more = on_message(payload),
                OP_TEXT | OP_BINARY | OP_CONT => {
                    self.frag.extend_from_slice(payload);
                    if h.fin {
                        more = on_message(&self.frag);
                        self.frag.clear();
                    }
                }
                OP_CLOSE => control.closed = true,
                OP_PING => control.pong = Some(payload.to_vec()),
                _ => {}
            }
            self.head = end;
            if control.closed || !more {
                break;
            }
        }
        Ok(control)
    }

    /// Answers a ping; reports a close.
    async fn after_drain(&mut self, control: Control) -> io::Result<bool> {
        if let Some(payload) = control.pong {
            self.send(0xA, &payload).await?;
        }
        Ok(control.closed)
    }

    /// The next data message, for the setup phase (allocates; not the hot path).
    async fn next_message(&mut self) -> io::Result<Vec<u8>> {
        loop {
            let mut got = None;
            let control = self.drain_frames(|m| {
                got = Some(m.to_vec());
                false
            })?;
            if let Some(m) = got {
                self.after_drain(control).await?;
                return Ok(m);
            }
            if self.after_drain(control).await? {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "closed by the server",
                ));
            }
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
        }
    }
}

// ---- one client -----------------------------------------------------------------------------

/// The encryption profile of encrypted clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Profile {
    /// `publicKey` in `authenticate`; `{iv, ct}` server → client only.
    V1,
    /// The v2 handshake before `authenticate`, offering batched records (as the JS client
    /// does): sealed records both ways, several frames to a server record when queued together.
    V2,
    /// [`Profile::V2`] without the batch offer: one frame per record.
    V2Single,
}

/// How an encrypted client opens what it receives.
enum Key {
    V1(Box<V1Key>),
    V2(Box<v2::Opener>),
}

struct ClientConfig {
    profile: Profile,
    addr: SocketAddr,
    host: String,
    path: String,
    /// Every room of the run, by index: one, or the four of `--alternate`.
    rooms: Vec<String>,
    read_buffer: usize,
}

async fn client(
    index: usize,
    role: Role,
    cfg: Arc<ClientConfig>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> ConnStats {
    let encrypted = role == Role::Encrypted;
    let rooms = room_bits(role, cfg.rooms.len() > 1);
    let mut rx = Receiver::new(role, rooms, shared.clone());
    let join = join_event(&cfg.rooms, rooms);
    let setup = setup(index, encrypted, &join, &cfg, &shared).await;
    drop(permit);
    let (mut ws, key) = match setup {
        Ok(ok) => ok,
        Err(e) => {
            if shared.setup_failed.fetch_add(1, Ordering::AcqRel) < 3 {
                let _ = writeln!(std::io::stderr(), "loadgen: client {index}: {e}");
            }
            shared.setup_done.fetch_add(1, Ordering::AcqRel);
            shared.setup_notify.notify_one();
            return rx.stats;
        }
    };
    rx.key = key;
    rx.stats.ok = true;
    shared.setup_done.fetch_add(1, Ordering::AcqRel);
    shared.setup_notify.notify_one();

    // The hot path: one read per wake, every complete frame handled in place.
    loop {
        let control = {
            let now_us = shared.now_us();
            let drained = ws.drain_frames(|m| {
                rx.on_text(m, now_us);
                true
            });
            if rx.counted {
                rx.counted = false;
                shared.last_delivery_us.fetch_max(now_us, Ordering::AcqRel);
            }
            match drained {
                Ok(c) => c,
                Err(_) => {
                    rx.stats.closed_early = true;
                    break;
                }
            }
        };
        match ws.after_drain(control).await {
            Ok(false) => {}
            Ok(true) | Err(_) => {
                rx.stats.closed_early = !*stop.borrow();
                break;
            }
        }
        ws.make_room();
        let tail = ws.tail;
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            read = ws.tcp.read(&mut ws.buf[tail..]) => match read {
                Ok(0) | Err(_) => {
                    rx.stats.closed_early = !*stop.borrow();
                    break;
                }
                Ok(n) => ws.tail += n,
            },
        }
    }
    rx.stats
}

/// Connect, upgrade, authenticate (with the v1 or v2 handshake when `encrypted`), send `join`.
async fn setup(
    index: usize,
    encrypted: bool,
    join: &str,
    cfg: &ClientConfig,
    shared: &Shared,
) -> io::Result<(Ws, Option<Key>)> {
    if encrypted && matches!(cfg.profile, Profile::V2 | Profile::V2Single) {
        return setup_v2(index, join, cfg, shared).await;
    }
    let (ws, key) = setup_v1(index, encrypted, join, cfg, shared).await?;
    Ok((ws, key.map(|k| Key::V1(Box::new(k)))))
}

/// The v2 handshake, then `authenticate` and `join` as sealed records.
async fn setup_v2(
    index: usize,
    join: &str,
    cfg: &ClientConfig,
    shared: &Shared,
) -> io::Result<(Ws, Option<Key>)> {
    let mut ws = Ws::connect(cfg.addr, &cfg.host, &cfg.path, cfg.read_buffer, index).await?;
    let bad = |what: &str| protocol_error(what);
    let (handshake, hello) = if cfg.profile == Profile::V2 {
        v2::ClientHandshake::start_batched()
    } else {
        v2::ClientHandshake::start()
    }
    .map_err(|_| bad("v2 start"))?;
    ws.send(OP_TEXT, hello.as_bytes()).await?;
    let reply = ws.next_message().await?;
    let value: serde_json::Value =
        serde_json::from_slice(&reply).map_err(|_| bad("server hello is not JSON"))?;
    if value["event"] != "handshake" {
        return Err(bad(&format!(
            "expected the v2 server hello, got {}",
            String::from_utf8_lossy(&reply)
        )));
    }
    let (channel, fin) = handshake
        .finish(&value["data"].to_string(), None)
        .map_err(|_| bad("v2 server hello did not verify"))?;
    let (mut sealer, mut opener) = channel.into_parts();
    ws.send(OP_TEXT, fin.as_bytes()).await?;
    let auth =
        format!(r#"{{"event":"authenticate","data":{{"type":"token","token":"u{index}"}}}}"#);
    let record = sealer.seal(auth.as_bytes()).map_err(|_| bad("seal"))?;
    ws.send(OP_TEXT, record.as_bytes()).await?;
    let reply = ws.next_message().await?;
    let plain = std::str::from_utf8(&reply)
        .ok()
        .and_then(|r| opener.open(r).ok())
        .ok_or_else(|| bad("connected record did not open"))?;
    if !plain.starts_with(br#"{"event":"connected""#) {
        return Err(bad(&format!(
            "expected connected, got {}",
            String::from_utf8_lossy(&plain)
        )));
    }
    shared
        .last_auth_us
        .fetch_max(shared.now_us(), Ordering::AcqRel);
    let record = sealer.seal(join.as_bytes()).map_err(|_| bad("seal"))?;
    ws.send(OP_TEXT, record.as_bytes()).await?;
    Ok((ws, Some(Key::V2(Box::new(opener)))))
}

/// The plaintext client, or the v1 handshake inside `authenticate`.
async fn setup_v1(
    index: usize,
    encrypted: bool,
    join: &str,
    cfg: &ClientConfig,
    shared: &Shared,
) -> io::Result<(Ws, Option<V1Key>)> {
    let mut ws = Ws::connect(cfg.addr, &cfg.host, &cfg.path, cfg.read_buffer, index).await?;
    let pair = encrypted.then(KeyPair::generate);
    let auth = match &pair {
        Some(pair) => format!(
            r#"{{"event":"authenticate","data":{{"type":"token","token":"u{index}","publicKey":"{}"}}}}"#,
            pair.public_key_b64()
        ),
        None => {
            format!(r#"{{"event":"authenticate","data":{{"type":"token","token":"u{index}"}}}}"#)
        }
    };
    ws.send(OP_TEXT, auth.as_bytes()).await?;
    let reply = ws.next_message().await?;
    let value: serde_json::Value =
        serde_json::from_slice(&reply).map_err(|_| protocol_error("reply is not JSON"))?;
    if value["event"] != "connected" {
        return Err(protocol_error(&format!(
            "expected connected, got {}",
            String::from_utf8_lossy(&reply)
        )));
    }
    shared
        .last_auth_us
        .fetch_max(shared.now_us(), Ordering::AcqRel);
    let key = match &pair {
        Some(pair) => {
            let data = &value["data"];
            let (Some(server_key), Some(salt)) =
                (data["serverPublicKey"].as_str(), data["salt"].as_str())
            else {
                return Err(protocol_error(
                    "no serverPublicKey/salt in connected (is encryption on?)",
                ));
            };
            let server_key =
                PublicKey::from_b64(server_key).map_err(|_| protocol_error("bad server key"))?;
            let salt = STANDARD
                .decode(salt)
                .map_err(|_| protocol_error("bad salt"))?;
            Some(
                V1Key::derive(pair, &server_key, &salt)
                    .map_err(|_| protocol_error("key derivation failed"))?,
            )
        }
        None => None,
    };
    ws.send(OP_TEXT, join.as_bytes()).await?;
    Ok((ws, key))
}

// ---- /proc sampling -------------------------------------------------------------------------

/// A process's CPU time (user + system), read two ways.
#[derive(Clone, Default)]
struct Cpu {
    /// Seconds in clock ticks (`/proc/<pid>/stat`): every thread that ever ran, but each
    /// reading truncated to 10 ms, which is a tenth of a plaintext room's whole figure on a
    /// fast machine.
    ticks: f64,
    /// Nanoseconds summed over the live threads (`/proc/<pid>/task/<tid>/schedstat`), with
    /// their ids; `None` where the kernel keeps no schedstat.
    threads: Option<(f64, Vec<u32>)>,
}

impl Cpu {
    fn read(pid: &str) -> Self {
        Self {
            ticks: cpu_ticks(pid).unwrap_or(0.0),
            threads: cpu_threads(pid),
        }
    }

    /// Seconds used since `earlier`: the threads' nanoseconds when every thread of `earlier`
    /// is still there and the sum agrees with the ticks (each reading truncates by under a
    /// tick); else the ticks (a thread that ended took its time out of the sum).
    fn since(&self, earlier: &Cpu) -> f64 {
        let ticks = self.ticks - earlier.ticks;
        match (&self.threads, &earlier.threads) {
            (Some((now, now_ids)), Some((then, then_ids)))
                if then_ids.iter().all(|id| now_ids.contains(id))
                    && ((now - then) - ticks).abs() <= 2.0 / TICKS_PER_SECOND =>
            {
                now - then
            }
            _ => ticks,
        }
    }
}

/// CPU seconds (user + system) of a process, all threads, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// CPU seconds of a process's live threads, from their run time in nanoseconds (the first
/// field of each thread's `schedstat`), and the threads' ids.
fn cpu_threads(pid: &str) -> Option<(f64, Vec<u32>)> {
    let mut ns = 0u64;
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let name = entry.ok()?.file_name();
        let id: u32 = name.to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{id}/schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        ids.push(id);
    }
    Some((ns as f64 / 1e9, ids))
}

/// Resident set size in KiB.
fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Clone, Default)]
struct Sample {
    server_cpu: Cpu,
    server_rss_kib: u64,
    own_cpu: Cpu,
    at: Option<Instant>,
}

fn sample(server_pid: Option<&str>) -> Sample {
    Sample {
        server_cpu: server_pid.map(Cpu::read).unwrap_or_default(),
        server_rss_kib: server_pid.and_then(rss_kib).unwrap_or(0),
        own_cpu: Cpu::read("self"),
        at: Some(Instant::now()),
    }
}

impl Sample {
    fn wall_since(&self, earlier: &Sample) -> f64 {
        match (self.at, earlier.at) {
            (Some(a), Some(b)) => a.duration_since(b).as_secs_f64(),
            _ => 0.0,
        }
    }
}

// ---- the run --------------------------------------------------------------------------------

/// `ws://host:port/path` → (address, host header, path).
async fn parse_url(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("only ws:// URLs are supported: {url}"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = tokio::net::lookup_host(host)
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {host}"))?;
    Ok((addr, host.to_owned(), path.to_owned()))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

/// What a client does with what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    Encrypted,
    Decoy,
}

/// Whether item `i` of `n` is one of `k` picked (spread evenly).
fn is_picked(i: usize, n: usize, k: usize) -> bool {
    n > 0 && (i + 1) * k / n != i * k / n
}

/// The roles of `n` clients: `enc` encrypted and `decoys` decoys, each spread evenly, the
/// decoys over the clients that are not encrypted.
fn roles(n: usize, enc: usize, decoys: usize) -> Vec<Role> {
    let mut plain_seen = 0;
    (0..n)
        .map(|i| {
            if is_picked(i, n, enc) {
                return Role::Encrypted;
            }
            plain_seen += 1;
            if is_picked(plain_seen - 1, n - enc, decoys) {
                Role::Decoy
            } else {
                Role::Plain
            }
        })
        .collect()
}

/// The rooms (bit per index) a client of `role` joins: the one room, or with `--alternate`
/// two of [`ALTERNATE_ROOMS`]: encrypted clients the sealed rooms, decoys the decoys' rooms,
/// plaintext clients both rooms with plaintext receivers.
fn room_bits(role: Role, alternate: bool) -> u8 {
    match (alternate, role) {
        (false, _) => 0b0001,
        (true, Role::Encrypted) => 0b0011,
        (true, Role::Decoy) => 0b1100,
        (true, Role::Plain) => 0b1010,
    }
}

/// The room bit of a probe's sequence number.
fn probe_room_bit(seq: u64) -> u8 {
    1 << (((seq - PROBE_BASE) >> PROBE_ROOM_SHIFT) as usize % MAX_ROOMS)
}

/// The `join` event for the rooms of `bits`.
fn join_event(rooms: &[String], bits: u8) -> String {
    let names: Vec<&str> = rooms
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, name)| name.as_str())
        .collect();
    // As the reference client sends it: `event` first.
    let names = serde_json::Value::from(names);
    format!(r#"{{"event":"join","data":{{"rooms":{names}}}}}"#)
}

/// One drained phase of the run: a room's messages, and what the server spent on them.
#[derive(Debug, Clone, Copy)]
struct Phase {
    room: usize,
    server_cpu_s: f64,
    wall_s: f64,
    deliveries: u64,
}

/// CPU-s per 1M deliveries that `with`'s extra receivers added over `alone`.
fn added_per_m(alone: &Phase, with: &Phase) -> f64 {
    let extra = with.deliveries.saturating_sub(alone.deliveries).max(1) as f64;
    (with.server_cpu_s - alone.server_cpu_s) / extra * 1e6
}

/// Per `--alternate` cycle (four phases, in [`ALTERNATE_ROOMS`] order): what the plaintext
/// receivers added next to sealed ones, and next to decoys. An incomplete cycle is left out.
fn cycle_costs(phases: &[Phase]) -> (Vec<f64>, Vec<f64>) {
    phases
        .chunks_exact(MAX_ROOMS)
        .filter(|c| c.iter().enumerate().all(|(i, p)| p.room == i))
        .map(|c| (added_per_m(&c[0], &c[1]), added_per_m(&c[2], &c[3])))
        .unzip()
}

fn median(xs: &[f64]) -> f64 {
    let mut s: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Numbers as one comma-separated RESULT value.
fn joined(xs: impl IntoIterator<Item = f64>, digits: usize) -> String {
    let parts: Vec<String> = xs.into_iter().map(|x| format!("{x:.digits$}")).collect();
    parts.join(",")
}

/// `share` of `of`, rounded, at most `of`.
fn share_of(share: f64, of: usize) -> usize {
    ((share.clamp(0.0, 1.0) * of as f64).round() as usize).min(of)
}

async fn run(args: Args) -> Result<(), String> {
    let (addr, host, path) = parse_url(&args.url).await?;
    if args.messages > 0 && args.redis.is_none() {
        return Err("--redis is required to publish messages".into());
    }
    let pid = args.server_pid.map(|p| p.to_string());
    let pid = pid.as_deref();
    let n = args.clients;
    let enc_count = share_of(args.encrypted, n);
    let decoy_count = share_of(args.decoy, n).min(n - enc_count);
    let roles = roles(n, enc_count, decoy_count);
    let alternate = args.alternate > 0 && args.messages > 0;
    if alternate && (enc_count == 0 || decoy_count == 0 || enc_count + decoy_count == n) {
        return Err("--alternate needs encrypted, decoy and plaintext clients".into());
    }
    // The phases: (room index, sequence numbers), in publishing order.
    let per_phase = u64::from(args.messages);
    let phases: Vec<(usize, Range<u64>)> = if alternate {
        (0..u64::from(args.alternate) * MAX_ROOMS as u64)
            .map(|i| {
                (
                    (i % MAX_ROOMS as u64) as usize,
                    i * per_phase..(i + 1) * per_phase,
                )
            })
            .collect()
    } else {
        vec![(0, 0..per_phase)]
    };
    let messages = phases.last().map_or(0, |(_, seqs)| seqs.end);
    let messages = u32::try_from(messages).map_err(|_| "too many messages in all".to_owned())?;
    let rooms: Vec<String> = if alternate {
        ALTERNATE_ROOMS
            .iter()
            .map(|name| format!("{}-{name}", args.room))
            .collect()
    } else {
        vec![args.room.clone()]
    };
    let shared = Arc::new(Shared::new(messages, |room| {
        phases
            .iter()
            .filter(|(r, _)| *r == room)
            .map(|(_, seqs)| seqs.end - seqs.start)
            .sum()
    }));
    let cfg = Arc::new(ClientConfig {
        profile: args.profile,
        addr,
        host,
        path,
        rooms: rooms.clone(),
        read_buffer: args.read_buffer,
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    // ---- connect + authenticate + join ----
    let before_connect = sample(pid);
    let connect_start_us = shared.now_us();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for (i, &role) in roles.iter().enumerate() {
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "connect gate closed".to_owned())?;
        tasks.push(tokio::spawn(client(
            i,
            role,
            cfg.clone(),
            shared.clone(),
            stop_rx.clone(),
            permit,
        )));
    }
    let setup_limit = Duration::from_secs(60 + n as u64 / 500);
    let waited = tokio::time::timeout(setup_limit, async {
        while (shared.setup_done.load(Ordering::Acquire) as usize) < n {
            shared.setup_notify.notified().await;
        }
    })
    .await;
    if waited.is_err() {
        return Err(format!(
            "setup timed out: {} of {n} clients done",
            shared.setup_done.load(Ordering::Acquire)
        ));
    }
    let failed = shared.setup_failed.load(Ordering::Acquire) as usize;
    let connected = n - failed;
    let auth_secs = shared
        .last_auth_us
        .load(Ordering::Acquire)
        .saturating_sub(connect_start_us) as f64
        / 1e6;
    let after_connect = sample(pid);
    let connect_rate = connected as f64 / auth_secs.max(1e-9);
    say!(
        "[{}] connect+auth: {connected}/{n} clients ({enc_count} encrypted, {decoy_count} decoys, {failed} failed) in {auth_secs:.2} s = {connect_rate:.0}/s; server CPU {:.2} s, generator CPU {:.2} s",
        args.label,
        after_connect.server_cpu.since(&before_connect.server_cpu),
        after_connect.own_cpu.since(&before_connect.own_cpu)
    );

    let mut result = vec![
        ("label", args.label.clone()),
        ("clients", n.to_string()),
        ("connected", connected.to_string()),
        ("encrypted", enc_count.to_string()),
        ("decoys", decoy_count.to_string()),
        ("connect_per_s", format!("{connect_rate:.0}")),
        (
            "connect_server_cpu_s",
            format!(
                "{:.3}",
                after_connect.server_cpu.since(&before_connect.server_cpu)
            ),
        ),
        (
            "connect_gen_cpu_s",
            format!(
                "{:.3}",
                after_connect.own_cpu.since(&before_connect.own_cpu)
            ),
        ),
    ];

    if args.messages == 0 {
        // ---- idle: memory per authenticated connection ----
        tokio::time::sleep(Duration::from_secs_f64(args.settle.max(0.0))).await;
        let settled = sample(pid);
        let per_conn = (settled
            .server_rss_kib
            .saturating_sub(before_connect.server_rss_kib)) as f64
            * 1024.0
            / connected.max(1) as f64;
        say!(
            "[{}] idle: server RSS {} KiB → {} KiB = {:.0} B per connection",
            args.label,
            before_connect.server_rss_kib,
            settled.server_rss_kib,
            per_conn
        );
        result.push(("rss_base_kib", before_connect.server_rss_kib.to_string()));
        result.push(("rss_kib", settled.server_rss_kib.to_string()));
        result.push(("rss_per_conn_b", format!("{per_conn:.0}")));
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        print_result(&result);
        return Ok(());
    }

    // ---- publish ----
    let redis_url = args.redis.as_deref().unwrap_or_default();
    let client = redis::Client::open(redis_url).map_err(|e| format!("redis {redis_url}: {e}"))?;
    let con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("redis {redis_url}: {e}"))?;
    let mut publisher = Publisher {
        con,
        rooms: rooms
            .iter()
            .map(|room| {
                (
                    format!("ws:room:{room}"),
                    serde_json::Value::from(room.as_str()).to_string(),
                )
            })
            .collect(),
        pad: "x".repeat(args.payload),
        shared: shared.clone(),
    };

    // Probes until every client is in its rooms (there is no join acknowledgement): one per
    // room every 250 ms, so probe traffic stays negligible next to the measured messages.
    let probe_deadline = Instant::now() + Duration::from_secs(30);
    let mut probe = PROBE_BASE;
    let all_in = || shared.probed.load(Ordering::Acquire) as usize >= connected;
    while !all_in() && Instant::now() < probe_deadline {
        for room in 0..rooms.len() {
            publisher
                .publish(room, &[probe + ((room as u64) << PROBE_ROOM_SHIFT)])
                .await?;
        }
        probe += 1;
        let next = tokio::time::Instant::now() + Duration::from_millis(250);
        while !all_in() && tokio::time::Instant::now() < next {
            let _ = tokio::time::timeout_at(next, shared.probe_notify.notified()).await;
        }
    }
    let in_room = shared.probed.load(Ordering::Acquire);
    if (in_room as usize) < connected {
        say!(
            "[{}] warning: only {in_room} of {connected} clients confirmed in their rooms",
            args.label
        );
    }
    // Let the last probes' deliveries drain before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start = sample(pid);
    let start_us = shared.now_us();
    let stall = Duration::from_secs_f64(args.stall_timeout.max(0.1));
    let mut stalled = false;
    let mut done: Vec<Phase> = Vec::with_capacity(phases.len());
    for (room, seqs) in &phases {
        // The previous phase has drained, so no message in flight counts against this figure.
        let members = shared.members[*room].load(Ordering::Acquire);
        shared.expected.store(members, Ordering::Release);
        let before = sample(pid);
        stalled = drive(
            &mut publisher,
            &shared,
            *room,
            seqs.clone(),
            args.window,
            args.rate,
            stall,
        )
        .await?;
        let after = sample(pid);
        done.push(Phase {
            room: *room,
            server_cpu_s: after.server_cpu.since(&before.server_cpu),
            wall_s: after.wall_since(&before),
            deliveries: u64::from(members) * (seqs.end - seqs.start),
        });
        if stalled {
            break;
        }
    }
    let end = sample(pid);
    let _ = stop_tx.send(true);
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        if let Ok(stats) = t.await {
            all.push(stats);
        }
    }

    // ---- report ----
    // From the first publish to the last counted delivery (not to the stall timeout).
    let wall = shared
        .last_delivery_us
        .load(Ordering::Acquire)
        .saturating_sub(start_us) as f64
        / 1e6;
    let received: u64 = all.iter().map(|s| s.received).sum();
    let duplicates: u64 = all.iter().map(|s| s.duplicates).sum();
    let bad: u64 = all.iter().map(|s| s.bad).sum();
    let errors: u64 = all.iter().map(|s| s.errors).sum();
    let closed_early = all.iter().filter(|s| s.ok && s.closed_early).count();
    let expected_total: u64 = (0..MAX_ROOMS)
        .map(|room| u64::from(shared.members[room].load(Ordering::Acquire)) * shared.per_room[room])
        .sum();
    let lost = expected_total.saturating_sub(received);
    let server_cpu = end.server_cpu.since(&start.server_cpu);
    let own_cpu = end.own_cpu.since(&start.own_cpu);
    let measured_wall = end.wall_since(&start);
    let per_m = server_cpu / (received.max(1) as f64 / 1e6);
    let rate = received as f64 / wall.max(1e-9);
    say!(
        "[{}] {received} deliveries of {expected_total} ({lost} lost, {duplicates} duplicate, {bad} bad, {errors} error events, {closed_early} closed early){} in {wall:.2} s = {rate:.0}/s",
        args.label,
        if stalled { ", STALLED" } else { "" }
    );
    say!(
        "[{}] server CPU {server_cpu:.2} s = {per_m:.3} CPU-s per 1M deliveries; server RSS {} KiB",
        args.label,
        end.server_rss_kib
    );
    let own_cores = own_cpu / measured_wall.max(1e-9);
    say!(
        "[{}] generator CPU {own_cpu:.2} s ({own_cores:.2} cores of {} threads){}",
        args.label,
        args.threads,
        if own_cores > 0.9 {
            "; the generator used most of a core: the machine, not only the server, limits deliveries/s"
        } else {
            ""
        }
    );
    result.extend([
        ("messages", messages.to_string()),
        ("deliveries", received.to_string()),
        ("lost", lost.to_string()),
        ("duplicates", duplicates.to_string()),
        ("bad", bad.to_string()),
        ("errors", errors.to_string()),
        ("stalled", u8::from(stalled).to_string()),
        ("wall_s", format!("{wall:.3}")),
        ("deliveries_per_s", format!("{rate:.0}")),
        ("server_cpu_s", format!("{server_cpu:.3}")),
        ("cpu_s_per_m", format!("{per_m:.4}")),
        ("server_rss_kib", end.server_rss_kib.to_string()),
        ("gen_cpu_s", format!("{own_cpu:.3}")),
        ("gen_cores", format!("{own_cores:.2}")),
    ]);
    for (class, pick) in [("all", None), ("plain", Some(false)), ("enc", Some(true))] {
        if pick.is_some() && (enc_count == 0 || enc_count == n) {
            continue;
        }
        let mut lat: Vec<u32> = all
            .iter()
            .filter(|s| pick.is_none_or(|e| s.encrypted == e))
            .flat_map(|s| s.latencies_us.iter().copied())
            .collect();
        lat.sort_unstable();
        let (p50, p90, p99) = (
            percentile(&lat, 50.0),
            percentile(&lat, 90.0),
            percentile(&lat, 99.0),
        );
        say!(
            "[{}] latency ({class}, {} samples): p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms",
            args.label,
            lat.len()
        );
        let key = |k: &'static str| -> &'static str {
            match (class, k) {
                ("all", "50") => "p50_ms",
                ("all", "90") => "p90_ms",
                ("all", _) => "p99_ms",
                ("plain", "50") => "plain_p50_ms",
                ("plain", "90") => "plain_p90_ms",
                ("plain", _) => "plain_p99_ms",
                (_, "50") => "enc_p50_ms",
                (_, "90") => "enc_p90_ms",
                _ => "enc_p99_ms",
            }
        };
        result.push((key("50"), format!("{p50:.3}")));
        result.push((key("90"), format!("{p90:.3}")));
        result.push((key("99"), format!("{p99:.3}")));
    }
    if alternate {
        let (sealed, decoys) = cycle_costs(&done);
        let walls = |room: usize| -> Vec<f64> {
            done.iter()
                .filter(|p| p.room == room)
                .map(|p| p.wall_s)
                .collect()
        };
        let (next_to_sealed, next_to_decoys) = (median(&sealed), median(&decoys));
        say!(
            "[{}] alternating rooms, {} cycles: the plaintext receivers add {next_to_sealed:.3} CPU-s per 1M deliveries next to sealed ones and {next_to_decoys:.3} next to decoys (medians) = {:.2}×; the two rooms' pace {:.2}×",
            args.label,
            sealed.len(),
            next_to_sealed / next_to_decoys,
            median(&walls(1)) / median(&walls(3))
        );
        result.extend([
            ("alt_cycles", sealed.len().to_string()),
            ("alt_next_to_sealed", joined(sealed, 4)),
            ("alt_next_to_decoys", joined(decoys, 4)),
            (
                "alt_phase_cpu_s",
                joined(done.iter().map(|p| p.server_cpu_s), 4),
            ),
            ("alt_phase_wall_s", joined(done.iter().map(|p| p.wall_s), 3)),
        ]);
    }
    print_result(&result);
    if lost > 0 || duplicates > 0 {
        return Err(format!("{lost} lost and {duplicates} duplicate deliveries"));
    }
    Ok(())
}

/// Publishes `seqs` to `room`, by window or at `rate`, and waits until every receiver got
/// each of them. Returns whether it stalled (no message completed for `stall`).
async fn drive(
    publisher: &mut Publisher,
    shared: &Shared,
    room: usize,
    seqs: Range<u64>,
    window: u32,
    rate: Option<f64>,
    stall: Duration,
) -> Result<bool, String> {
    if let Some(rate) = rate {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for seq in seqs.clone() {
            tick.tick().await;
            publisher.publish(room, &[seq]).await?;
        }
    }
    let window = u64::from(window);
    let mut next = if rate.is_some() { seqs.end } else { seqs.start };
    let mut last_progress = (u64::MAX, Instant::now());
    loop {
        // Messages complete in any order; earlier phases have all completed.
        let completed = shared.completed.load(Ordering::Acquire);
        if completed >= seqs.end {
            return Ok(false);
        }
        let in_flight = next - completed.min(next);
        if next < seqs.end && in_flight < window {
            let batch: Vec<u64> = (next..seqs.end.min(next + window - in_flight)).collect();
            publisher.publish(room, &batch).await?;
            next += batch.len() as u64;
            continue;
        }
        if completed != last_progress.0 {
            last_progress = (completed, Instant::now());
        } else if last_progress.1.elapsed() >= stall {
            return Ok(true);
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), shared.progress.notified()).await;
    }
}

fn print_result(fields: &[(&str, String)]) {
    let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    say!("RESULT {}", line.join(" "));
}

/// Publishes the reference envelope on a room's channel, pipelined.
struct Publisher {
    con: redis::aio::MultiplexedConnection,
    /// Per room index: its channel, and the room as a JSON string.
    rooms: Vec<(String, String)>,
    pad: String,
    shared: Arc<Shared>,
}

impl Publisher {
    async fn publish(&mut self, room: usize, seqs: &[u64]) -> Result<(), String> {
        let (channel, target) = &self.rooms[room];
        let mut pipe = redis::pipe();
        for &seq in seqs {
            let ts = self.shared.now_us();
            let envelope = format!(
                r#"{{"serverId":"emitter","type":"room","target":{target},"event":"bench","data":{{"seq":{seq},"ts":{ts},"pad":"{}"}}}}"#,
                self.pad
            );
            pipe.cmd("PUBLISH").arg(channel).arg(envelope);
        }
        let receivers: Vec<i64> = pipe
            .query_async(&mut self.con)
            .await
            .map_err(|e| format!("publish: {e}"))?;
        if receivers.first() == Some(&0) && seqs.first().is_some_and(|s| *s < PROBE_BASE) {
            return Err(format!(
                "nobody is subscribed to {channel} (is the server on this Redis?)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_spread_each_share_and_never_overlap() {
        for (n, enc, decoys) in [
            (1000, 500, 0),
            (1000, 0, 500),
            (1000, 500, 500),
            (7, 3, 2),
            (4, 0, 4),
        ] {
            let roles = roles(n, enc, decoys);
            let count = |r| roles.iter().filter(|&&x| x == r).count();
            assert_eq!(count(Role::Encrypted), enc, "{n} {enc} {decoys}");
            assert_eq!(count(Role::Decoy), decoys, "{n} {enc} {decoys}");
            assert_eq!(count(Role::Plain), n - enc - decoys, "{n} {enc} {decoys}");
        }
        // Half decoys in a plaintext room: every other client, as encrypted ones are spread.
        let half = roles(6, 0, 3);
        assert_eq!(
            half,
            [
                Role::Plain,
                Role::Decoy,
                Role::Plain,
                Role::Decoy,
                Role::Plain,
                Role::Decoy
            ]
        );
        assert_eq!(share_of(0.5, 1000), 500);
        assert_eq!(share_of(2.0, 10), 10);
    }

    #[test]
    fn a_decoy_opens_what_a_v1_client_would_have_received() {
        let frame = br#"{"event":"bench","data":{"seq":7,"ts":123,"pad":"xxxx"}}"#;
        let mut decoy = Decoy::new();
        decoy.spend(frame);
        assert!(
            decoy
                .sealed
                .starts_with(br#"{"event":"encrypted","data":{"iv":""#)
        );
        assert_eq!(
            open_sealed(&decoy.key, &decoy.sealed).as_deref(),
            Some(&frame[..])
        );
        // Later deliveries open the same copy; they do not seal again.
        let copy = decoy.sealed.clone();
        decoy.spend(br#"{"event":"bench","data":{"seq":8}}"#);
        assert_eq!(decoy.sealed, copy);
    }

    #[test]
    fn alternating_rooms_put_plaintext_clients_beside_sealed_ones_and_beside_decoys() {
        let rooms: Vec<String> = ALTERNATE_ROOMS.iter().map(|r| format!("b-{r}")).collect();
        let joined_by = |role| join_event(&rooms, room_bits(role, true));
        assert_eq!(
            joined_by(Role::Encrypted),
            r#"{"event":"join","data":{"rooms":["b-sealed","b-sealed-plain"]}}"#
        );
        assert_eq!(
            joined_by(Role::Decoy),
            r#"{"event":"join","data":{"rooms":["b-decoys","b-decoys-plain"]}}"#
        );
        assert_eq!(
            joined_by(Role::Plain),
            r#"{"event":"join","data":{"rooms":["b-sealed-plain","b-decoys-plain"]}}"#
        );
        // Without --alternate every client joins the one room.
        for role in [Role::Encrypted, Role::Decoy, Role::Plain] {
            assert_eq!(
                join_event(&["bench".to_owned()], room_bits(role, false)),
                r#"{"event":"join","data":{"rooms":["bench"]}}"#
            );
        }
        // A probe names its room.
        for room in 0..MAX_ROOMS {
            let seq = PROBE_BASE + 17 + ((room as u64) << PROBE_ROOM_SHIFT);
            assert_eq!(probe_room_bit(seq), 1 << room);
        }
    }

    #[test]
    fn each_cycle_subtracts_the_room_without_the_plaintext_clients() {
        let phase = |room, server_cpu_s, deliveries| Phase {
            room,
            server_cpu_s,
            wall_s: 1.0,
            deliveries,
        };
        let phases = [
            // 500 sealed receivers × 1,000 messages, then with 500 plaintext ones.
            phase(0, 0.150, 500_000),
            phase(1, 0.200, 1_000_000),
            phase(2, 0.040, 500_000),
            phase(3, 0.080, 1_000_000),
            phase(0, 0.140, 500_000),
            phase(1, 0.170, 1_000_000),
            phase(2, 0.050, 500_000),
            phase(3, 0.100, 1_000_000),
            // A cycle cut short (a stall) is left out.
            phase(0, 0.9, 500_000),
        ];
        let (sealed, decoys) = cycle_costs(&phases);
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
        assert!(close(&sealed, &[0.1, 0.06]), "{sealed:?}");
        assert!(close(&decoys, &[0.08, 0.1]), "{decoys:?}");
        assert_eq!(sealed.len(), 2);
        assert!((median(&[0.3, 0.1, f64::NAN, 0.2]) - 0.2).abs() < 1e-12);
        assert!((median(&[0.4, 0.1, 0.2, 0.3]) - 0.25).abs() < 1e-12);
        assert_eq!(joined([0.5, 0.25], 2), "0.50,0.25");
    }

    #[test]
    fn a_decoy_in_two_rooms_is_in_once_probed_from_both_and_copies_no_probe() {
        // Eight messages: four to the sealed clients' room, four to the decoys'.
        let shared = Arc::new(Shared::new(8, |room| if room % 2 == 0 { 4 } else { 0 }));
        let bits = room_bits(Role::Decoy, true);
        let mut rx = Receiver::new(Role::Decoy, bits, shared.clone());
        let frame =
            |seq: u64| format!(r#"{{"event":"bench","data":{{"seq":{seq},"ts":1,"pad":"x"}}}}"#);
        // Probes from the decoys' room, twice, then from the other room the decoy is in.
        rx.on_text(frame(PROBE_BASE + (2 << PROBE_ROOM_SHIFT)).as_bytes(), 5);
        rx.on_text(
            frame(PROBE_BASE + 1 + (2 << PROBE_ROOM_SHIFT)).as_bytes(),
            5,
        );
        assert_eq!(shared.probed.load(Ordering::Acquire), 0);
        assert!(rx.decoy.as_ref().is_some_and(|d| d.sealed.is_empty()));
        rx.on_text(frame(PROBE_BASE + (3 << PROBE_ROOM_SHIFT)).as_bytes(), 5);
        assert_eq!(shared.probed.load(Ordering::Acquire), 1);
        let members: Vec<u32> = shared
            .members
            .iter()
            .map(|m| m.load(Ordering::Acquire))
            .collect();
        assert_eq!(members, [0, 0, 1, 1]);
        // The first measured message is the one its sealed copy stands in for.
        shared.expected.store(1, Ordering::Release);
        rx.on_text(frame(2).as_bytes(), 5);
        let decoy = rx.decoy.as_ref().expect("a decoy");
        assert_eq!(
            open_sealed(&decoy.key, &decoy.sealed),
            Some(frame(2).into_bytes())
        );
        assert_eq!(rx.stats.received, 1);
        assert_eq!(shared.completed.load(Ordering::Acquire), 1);
        // Room for the latencies of the messages to its rooms only.
        assert!((4..8).contains(&rx.stats.latencies_us.capacity()));
    }
}
