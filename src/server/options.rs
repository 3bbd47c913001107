//! Server options and their defaults (the spec's `IWebSocketServerOptions` and
//! `WebSocketDefaults`).

use std::time::Duration;

use crate::protocol::Limits;

/// Transport settings: what the spec passes to Bun's native WebSocket layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOptions {
    /// Largest inbound message in bytes, enforced from each frame's header (`protocol::websocket`),
    /// before the payload is buffered; a larger one closes that client with 1009.
    /// Defaults to [`TransportOptions::MAX_PAYLOAD_LENGTH`] (128 KiB).
    pub max_payload_length: usize,
    /// Close a connection that sent nothing (not even a pong) for this long; zero disables.
    /// Defaults to [`TransportOptions::IDLE_TIMEOUT`] (60 s).
    pub idle_timeout: Duration,
    /// Send transport-level pings (every half `idle_timeout`) so idle but healthy peers answer.
    /// Defaults to `true`.
    pub send_pings: bool,
    /// Bytes a client's outbound queue may hold; past it, frames for that client are dropped and
    /// it is marked backpressured. Defaults to [`TransportOptions::BACKPRESSURE_LIMIT`] (1 MiB).
    pub backpressure_limit: usize,
    /// Close a client (1008) instead of dropping frames when it hits the backpressure limit.
    /// Defaults to `false`.
    pub close_on_backpressure_limit: bool,
    /// Bytes asked of a connection's socket per read. Defaults to
    /// [`TransportOptions::READ_BUFFER_SIZE`].
    pub read_buffer_size: usize,
    /// Outbound bytes assembled before a write: a batch larger than this goes to the socket in
    /// several writes. Defaults to [`TransportOptions::WRITE_BUFFER_SIZE`].
    pub write_buffer_size: usize,
}

impl TransportOptions {
    /// Default for [`TransportOptions::max_payload_length`]: 128 KiB.
    pub const MAX_PAYLOAD_LENGTH: usize = 128 * 1024;
    /// Default for [`TransportOptions::idle_timeout`]: 60 s.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default for [`TransportOptions::backpressure_limit`]: 1 MiB.
    pub const BACKPRESSURE_LIMIT: usize = 1024 * 1024;
    /// Default for [`TransportOptions::read_buffer_size`]: 4 KiB. Reads go into a buffer of
    /// the worker thread's, so the size costs no memory per connection: a connection keeps
    /// bytes of its own only for a frame that has not arrived whole. Larger frames are read in
    /// several chunks.
    pub const READ_BUFFER_SIZE: usize = 4096;
    /// Default for [`TransportOptions::write_buffer_size`]: 64 KiB. Batches are assembled in a
    /// buffer of the worker thread's, not the connection's; a sealed delivery is about twice
    /// the bytes of a plaintext one, and at 16 KiB a sealed fan-out made twice the `send`
    /// calls per delivery.
    pub const WRITE_BUFFER_SIZE: usize = 64 * 1024;
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            max_payload_length: Self::MAX_PAYLOAD_LENGTH,
            idle_timeout: Self::IDLE_TIMEOUT,
            send_pings: true,
            backpressure_limit: Self::BACKPRESSURE_LIMIT,
            close_on_backpressure_limit: false,
            read_buffer_size: Self::READ_BUFFER_SIZE,
            write_buffer_size: Self::WRITE_BUFFER_SIZE,
        }
    }
}

/// Everything configurable on a server except the hooks and the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// A name for logs. Defaults to `"sealcast"`.
    pub identifier: String,
    /// The WebSocket path. Defaults to [`ServerOptions::PATH`] (`/ws`).
    pub path: String,
    /// Rooms every client joins after authentication.
    /// Defaults to `["ws-default", "ws-notification"]`.
    pub default_rooms: Vec<String>,
    /// Time to send `authenticate` (close 4001 after it); authentication itself may take three
    /// times as long. Defaults to [`ServerOptions::AUTH_TIMEOUT`] (5 s).
    pub auth_timeout: Duration,
    /// How often stale clients are swept. Defaults to [`ServerOptions::HEARTBEAT_INTERVAL`] (30 s).
    pub heartbeat_interval: Duration,
    /// Inactivity after which an authenticated client is closed with 4002.
    /// Defaults to [`ServerOptions::HEARTBEAT_TIMEOUT`] (90 s).
    pub heartbeat_timeout: Duration,
    /// Most outbound transformer calls in flight at once.
    /// Defaults to [`ServerOptions::ENCRYPTED_BATCH_LIMIT`] (10).
    pub encrypted_batch_limit: usize,
    /// Close clients that do not complete an encryption handshake during authentication (4004).
    /// Defaults to `false`.
    pub require_encryption: bool,
    /// WebSocket transport settings.
    pub transport: TransportOptions,
    /// Bounds on untrusted input.
    pub limits: Limits,
}

impl ServerOptions {
    /// Default path.
    pub const PATH: &'static str = "/ws";
    /// Default room.
    pub const ROOM: &'static str = "ws-default";
    /// Default notification room.
    pub const NOTIFICATION_ROOM: &'static str = "ws-notification";
    /// Default auth timeout.
    pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default sweep interval.
    pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
    /// Default inactivity threshold.
    pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(90);
    /// Default transformer concurrency.
    pub const ENCRYPTED_BATCH_LIMIT: usize = 10;
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            identifier: "sealcast".to_owned(),
            path: Self::PATH.to_owned(),
            default_rooms: vec![Self::ROOM.to_owned(), Self::NOTIFICATION_ROOM.to_owned()],
            auth_timeout: Self::AUTH_TIMEOUT,
            heartbeat_interval: Self::HEARTBEAT_INTERVAL,
            heartbeat_timeout: Self::HEARTBEAT_TIMEOUT,
            encrypted_batch_limit: Self::ENCRYPTED_BATCH_LIMIT,
            require_encryption: false,
            transport: TransportOptions::default(),
            limits: Limits::default(),
        }
    }
}
