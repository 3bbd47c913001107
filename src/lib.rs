//! sealcast: encryption-first real-time messaging over WebSocket.
//!
//! Clients connect, authenticate *after* connecting with an `authenticate` event, join the rooms
//! a validator allows, keep alive with heartbeats, and receive messages addressed to them, to
//! their user (every session), to a room, or to everyone. Clients that offer a P-256 key
//! complete an ECDH handshake inside authentication and receive every message sealed with
//! AES-256-GCM; plaintext receivers share one serialized frame per message. Instances on one
//! Redis behave as one server; one process needs no Redis at all.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`protocol`] | the wire format: frames, events, close codes, error strings, rooms, the Redis envelope, limits (no I/O) |
//! | [`crypto`] | P-256 keys, the v1 profile and the v2 channel (RustCrypto only, no I/O) |
//! | [`hub`] | the indexes (clients, users, rooms) and the serialize-once fan-out |
//! | [`session`] | one connection: a pure state machine, a byte-bounded outbox, the I/O task |
//! | [`broker`] | the [`Broker`](broker::Broker) trait, the memory broker, the Redis broker |
//! | [`emitter`] | publishing to clients from processes without a server |
//! | [`server`] | the builder, options, hooks, encryption seams, the [`Server`] handle, the listener ([`Server::serve`]), axum glue |
//! | [`demo`] | the embedded demo page and JavaScript client |
//! | [`gateway`] | `sealcast serve`: config, JWT, room policy, HTTP API, metrics, webhook |
//!
//! Dependencies point downward: `server` → `session` → `hub` → `protocol`/`crypto`;
//! `broker` and `emitter` use `protocol` only.
//!
//! # Data flow
//!
//! ```text
//!  client ──frame──▶ session task ──▶ Session (state machine) ──▶ hooks (auth, rooms, messages)
//!                                                          │
//!  Server::send_to_room ──▶ Outgoing (encoded once) ──▶ hub fan-out ──▶ Outbox per client
//!          │                                                              │
//!          └──▶ Broker::publish ──▶ other instances' hubs       writer task: plaintext frame
//!                                                               as is, or sealed per client
//! ```
//!
//! # Embed in axum
//!
//! ```no_run
//! use sealcast::{Identity, Server, crypto::KeyPair};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .encryption_v1(KeyPair::generate())
//!     .authenticate(|req| async move { Ok(req.token().map(Identity::user)) })
//!     .validate_rooms(|req| async move { Ok(req.rooms) })
//!     .build()
//!     .await?;
//! let app = axum::Router::new().merge(server.router());
//! let listener = sealcast::server::bind("127.0.0.1:8080".parse()?)?;
//! // WebSocket handshakes at /ws are answered by the server; the rest goes to `app`.
//! server.serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Scale out on Redis
//!
//! ```no_run
//! use sealcast::{Identity, Server, broker::{RedisBroker, RedisConfig}};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = RedisBroker::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let server = Server::builder()
//!     .broker(broker)
//!     .authenticate(|req| async move { Ok(req.token().map(Identity::user)) })
//!     .build()
//!     .await?;
//! // Reaches alice's sessions on every instance, exactly once each.
//! server.send_to_user_everywhere("alice", "notification", &"hello").await?;
//! # Ok(()) }
//! ```
//!
//! # Emit from a worker
//!
//! ```no_run
//! use sealcast::emitter::Emitter;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let emitter = Emitter::connect("redis://127.0.0.1:6379").await?;
//! emitter.to_room("dashboard", "data:update", &serde_json::json!({"cpu": 42.5}), &[]).await?;
//! emitter.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod broker;
pub mod crypto;
pub mod demo;
pub mod emitter;
pub mod gateway;
pub mod hub;
pub mod protocol;
pub mod server;
pub mod session;

pub use hub::{ClientInfo, Identity, RoomError};
pub use server::{Server, ServerBuilder, ServerOptions, TransportOptions};
