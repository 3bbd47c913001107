//! Protocol limits: every bound on untrusted input, named, with its unit.

use std::time::Duration;

/// Bounds on what a peer may send. Every field has a named default constant; override any of
/// them through the server builder's `limits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deepest JSON nesting accepted in a client frame. Defaults to [`Limits::MAX_JSON_DEPTH`].
    pub max_json_depth: usize,
    /// Longest `event` name, in bytes. Defaults to [`Limits::MAX_EVENT_NAME_BYTES`].
    pub max_event_name_bytes: usize,
    /// Most rooms one `join`/`leave` request may name. Defaults to [`Limits::MAX_ROOMS_PER_REQUEST`].
    pub max_rooms_per_request: usize,
    /// Most rooms one client may be in, its own-id and default rooms included.
    /// Defaults to [`Limits::MAX_ROOMS_PER_CLIENT`].
    pub max_rooms_per_client: usize,
    /// Frames a client may send while its authentication runs; they are handled in order once it
    /// completes. Defaults to [`Limits::MAX_FRAMES_DURING_AUTH`].
    pub max_frames_during_auth: usize,
    /// Largest Redis envelope accepted, in bytes. Defaults to [`Limits::MAX_ENVELOPE_BYTES`].
    pub max_envelope_bytes: usize,
    /// Authentications (with their handshakes) running at once, server-wide; one more is closed
    /// with 1013. Defaults to [`Limits::MAX_PENDING_AUTH`].
    pub max_pending_auth: usize,
    /// Sustained frames per second per client (token bucket refill rate); frames past the bucket
    /// get `Rate limit exceeded` and are dropped. Defaults to [`Limits::FRAMES_PER_SECOND`].
    pub frames_per_second: u32,
    /// Frames a client may send in a burst (bucket size); as many refused frames again close it
    /// with 1008. Defaults to [`Limits::FRAME_BURST`].
    pub frame_burst: u32,
    /// Sustained `join` requests per second per client; past the burst they get
    /// `Rate limit exceeded` and are ignored. Defaults to [`Limits::JOINS_PER_SECOND`].
    pub joins_per_second: u32,
    /// `join` requests a client may send in a burst. Defaults to [`Limits::JOIN_BURST`].
    pub join_burst: u32,
    /// How long one batch write to a client may block before the connection is dropped as stuck.
    /// Defaults to [`Limits::WRITE_TIMEOUT`].
    pub write_timeout: Duration,
    /// When set, WebSocket upgrades whose `Origin` header is not in the list are refused (403);
    /// requests without an `Origin` (non-browser clients) are allowed. Defaults to `None`
    /// (any origin).
    pub allowed_origins: Option<Vec<String>>,
}

impl Limits {
    /// Default for [`Limits::max_json_depth`].
    pub const MAX_JSON_DEPTH: usize = 32;
    /// Default for [`Limits::max_event_name_bytes`].
    pub const MAX_EVENT_NAME_BYTES: usize = 128;
    /// Default for [`Limits::max_rooms_per_request`].
    pub const MAX_ROOMS_PER_REQUEST: usize = 64;
    /// Default for [`Limits::max_rooms_per_client`].
    pub const MAX_ROOMS_PER_CLIENT: usize = 256;
    /// Default for [`Limits::max_frames_during_auth`].
    pub const MAX_FRAMES_DURING_AUTH: usize = 32;
    /// Default for [`Limits::max_envelope_bytes`]: 1 MiB.
    pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;
    /// Default for [`Limits::max_pending_auth`].
    pub const MAX_PENDING_AUTH: usize = 1024;
    /// Default for [`Limits::frames_per_second`].
    pub const FRAMES_PER_SECOND: u32 = 100;
    /// Default for [`Limits::frame_burst`].
    pub const FRAME_BURST: u32 = 200;
    /// Default for [`Limits::joins_per_second`].
    pub const JOINS_PER_SECOND: u32 = 10;
    /// Default for [`Limits::join_burst`].
    pub const JOIN_BURST: u32 = 20;
    /// Default for [`Limits::write_timeout`]: 10 s.
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_json_depth: Self::MAX_JSON_DEPTH,
            max_event_name_bytes: Self::MAX_EVENT_NAME_BYTES,
            max_rooms_per_request: Self::MAX_ROOMS_PER_REQUEST,
            max_rooms_per_client: Self::MAX_ROOMS_PER_CLIENT,
            max_frames_during_auth: Self::MAX_FRAMES_DURING_AUTH,
            max_envelope_bytes: Self::MAX_ENVELOPE_BYTES,
            max_pending_auth: Self::MAX_PENDING_AUTH,
            frames_per_second: Self::FRAMES_PER_SECOND,
            frame_burst: Self::FRAME_BURST,
            joins_per_second: Self::JOINS_PER_SECOND,
            join_burst: Self::JOIN_BURST,
            write_timeout: Self::WRITE_TIMEOUT,
            allowed_origins: None,
        }
    }
}
