//! Protocol limits: every bound on untrusted input, named, with its unit.

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
        }
    }
}
