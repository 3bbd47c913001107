//! Server counters for monitoring: what went in, what went out, what was dropped or refused.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters, updated with relaxed atomics on the hot paths.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections_opened: AtomicU64,
    pub(crate) frames_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) deliveries: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) handshake_failures: AtomicU64,
    pub(crate) record_failures: AtomicU64,
    pub(crate) publish_failures: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Connections on this instance by lifecycle state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Connected, not yet authenticating.
    pub unauthorized: u64,
    /// Authentication running.
    pub authenticating: u64,
    /// Authenticated.
    pub authenticated: u64,
}

/// A snapshot of a server's counters ([`crate::Server::metrics`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Live connections by state.
    pub connections: ConnectionCounts,
    /// Authenticated connections that are encrypted.
    pub encrypted_clients: u64,
    /// Connections whose outbound queue is over its limit now.
    pub backpressured_clients: u64,
    /// WebSocket upgrades accepted since start.
    pub connections_opened: u64,
    /// Text and binary frames received.
    pub frames_in: u64,
    /// Frames written to sockets (plaintext or sealed).
    pub frames_out: u64,
    /// Messages queued for a client (one per receiver).
    pub deliveries: u64,
    /// Messages dropped for a client's backpressure limit.
    pub dropped: u64,
    /// Authentications rejected or failed (4003).
    pub auth_failures: u64,
    /// Encryption handshakes that failed (4004).
    pub handshake_failures: u64,
    /// v2 records that failed to open (tampered, replayed, reordered, dropped, reflected or
    /// plaintext after the handshake); each closed its connection with 4004.
    pub record_failures: u64,
    /// Broker publishes that failed.
    pub publish_failures: u64,
    /// Frames refused by a client's rate limit.
    pub rate_limited: u64,
}

impl Metrics {
    pub(crate) fn from_counters(c: &Counters) -> Self {
        Self {
            connections_opened: Counters::get(&c.connections_opened),
            frames_in: Counters::get(&c.frames_in),
            frames_out: Counters::get(&c.frames_out),
            deliveries: Counters::get(&c.deliveries),
            dropped: Counters::get(&c.dropped),
            auth_failures: Counters::get(&c.auth_failures),
            handshake_failures: Counters::get(&c.handshake_failures),
            record_failures: Counters::get(&c.record_failures),
            publish_failures: Counters::get(&c.publish_failures),
            rate_limited: Counters::get(&c.rate_limited),
            ..Self::default()
        }
    }
}
