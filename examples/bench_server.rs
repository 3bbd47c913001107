//! A minimal sealcast server for benchmarks (`bench/run.sh`, `examples/loadgen.rs`).
//!
//! * Authentication: the token is the user id (`{"type":"token","token":"u42"}` → user `u42`);
//!   a missing token is refused.
//! * Rooms: the validator allows every requested room.
//! * `--redis URL` uses a [`RedisBroker`] (messages published on `ws:room:<room>` by an emitter
//!   reach the room's members); without it the embedded memory broker is used.
//! * `--encryption v1` enables the built-in v1 handshake (clients that send `publicKey` get
//!   every message sealed).
//! * `--subscription pattern|interest` picks the Redis subscription mode (default: the
//!   library's default, interest).
//! * Connections are served by `Server::serve`; `--axum` serves them through `axum::serve` and
//!   `Server::router` instead.
//!
//! Prints `listening on http://ADDR` on stdout once it accepts connections, then serves until
//! SIGTERM/SIGINT, when it prints its delivery counters (deliveries, backpressure drops, Redis
//! inbox overflows) on stderr and exits.
//!
//! ```sh
//! cargo run --release --example bench_server -- --listen 127.0.0.1:0 --redis redis://127.0.0.1:6379
//! ```

use std::{future::IntoFuture as _, io::Write as _};

use clap::{Parser, ValueEnum};
use sealcast::{
    Identity, Server,
    broker::{RedisBroker, RedisConfig, SubscriptionMode},
    crypto::KeyPair,
};

#[derive(Debug, Parser)]
#[command(
    name = "bench_server",
    about = "A minimal sealcast server for benchmarks"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Redis URL; without it the embedded memory broker is used.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Enable an encryption profile for clients that offer a key.
    #[arg(long, value_enum)]
    encryption: Option<Encryption>,
    /// Redis subscription mode.
    #[arg(long, value_enum, default_value_t = Mode::Interest)]
    subscription: Mode,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Listen backlog (the kernel caps it at net.core.somaxconn).
    #[arg(long, default_value_t = 4096)]
    backlog: u32,
    /// Serve through `axum::serve` and `Server::router` instead of `Server::serve`.
    #[arg(long)]
    axum: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Encryption {
    /// The built-in v1 profile (ECDH P-256 → HKDF → AES-256-GCM).
    V1,
    /// The v2 channel (unsigned server hellos), with v1 offered too.
    V2,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// Exact channels for the rooms/users/clients with local members.
    Interest,
    /// The reference's `PSUBSCRIBE ws:room:*` etc.
    Pattern,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    runtime.build()?.block_on(serve(args))
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = Server::builder()
        .identifier("bench")
        .authenticate(|req| async move { Ok(req.token().map(Identity::user)) })
        .validate_rooms(|req| async move { Ok(req.rooms) });
    match args.encryption {
        Some(Encryption::V1) => builder = builder.encryption_v1(KeyPair::generate()),
        Some(Encryption::V2) => {
            builder = builder
                .encryption_v1(KeyPair::generate())
                .encryption_v2(sealcast::server::V2Config::new());
        }
        None => {}
    }
    let mut redis = None;
    if let Some(url) = &args.redis {
        let mode = match args.subscription {
            Mode::Interest => SubscriptionMode::Interest,
            Mode::Pattern => SubscriptionMode::Pattern,
        };
        let broker =
            RedisBroker::connect(RedisConfig::new(url.as_str()).subscription_mode(mode)).await?;
        redis = Some(broker.clone());
        builder = builder.broker(broker);
    }
    let server = builder.build().await?;
    let listener = listen(&args.listen, args.backlog).await?;
    let addr = listener.local_addr()?;
    {
        // The run script and the load generator read this line to find the port.
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let served: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = if args.axum {
        Box::pin(axum::serve(listener, server.router::<()>()).into_future())
    } else {
        server.serve(listener, server.router()).into_future()
    };
    tokio::select! {
        served = served => served?,
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // On SIGTERM/SIGINT: the counters that explain lost deliveries, on stderr.
    let m = server.metrics();
    let mut line = format!(
        "metrics: deliveries={} dropped={} frames_out={} backpressured_clients={} connections_opened={}",
        m.deliveries, m.dropped, m.frames_out, m.backpressured_clients, m.connections_opened
    );
    if let Some(broker) = &redis {
        let r = broker.stats();
        line += &format!(
            " redis_received={} redis_dropped_overflow={} redis_dropped_invalid={}",
            r.received, r.dropped_overflow, r.dropped_invalid
        );
    }
    eprintln!("{line}");
    Ok(())
}

/// Resolves `addr` and binds with an explicit backlog (`TcpListener::bind` asks for 128, and a
/// connect burst past that loses SYNs, which clients retry only after 1 s).
async fn listen(addr: &str, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let addr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    sealcast::server::bind_with_backlog(addr, backlog)
}
