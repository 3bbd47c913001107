//! The Prometheus text exposition format (version 0.0.4) for the gateway's `/metrics`, written by
//! hand: a `# HELP` and `# TYPE` line per family, then its samples.

use std::fmt::Write as _;

use super::webhook::WebhookStats;
use crate::{broker::RedisStats, server::Metrics};

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything `/metrics` reports.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The server's counters.
    pub server: Metrics,
    /// Whether the broker is reachable.
    pub broker_ready: bool,
    /// Redis broker counters, when Redis is used.
    pub redis: Option<RedisStats>,
    /// Webhook counters, when a webhook is configured.
    pub webhook: Option<WebhookStats>,
    /// Requests to `/api/publish` that were accepted.
    pub api_publishes: u64,
}

struct Writer(String);

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: u64) {
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }
}

/// Renders a snapshot. Counter names end in `_total`; every name starts with `sealcast_`.
pub fn render(s: &Snapshot) -> String {
    let m = &s.server;
    let mut w = Writer(String::with_capacity(4096));
    w.family(
        "sealcast_connections",
        "gauge",
        "Live WebSocket connections by lifecycle state.",
    );
    for (state, value) in [
        ("unauthorized", m.connections.unauthorized),
        ("authenticating", m.connections.authenticating),
        ("authenticated", m.connections.authenticated),
    ] {
        w.sample(
            "sealcast_connections",
            &format!("{{state=\"{state}\"}}"),
            value,
        );
    }
    w.single(
        "sealcast_encrypted_clients",
        "gauge",
        "Authenticated connections whose deliveries are sealed.",
        m.encrypted_clients,
    );
    w.single(
        "sealcast_backpressured_clients",
        "gauge",
        "Connections whose outbound queue is over its byte limit now.",
        m.backpressured_clients,
    );
    w.single(
        "sealcast_broker_ready",
        "gauge",
        "1 when the broker (Redis) is reachable, 0 otherwise.",
        u64::from(s.broker_ready),
    );
    let counters = [
        (
            "sealcast_connections_opened_total",
            "WebSocket upgrades accepted.",
            m.connections_opened,
        ),
        (
            "sealcast_frames_in_total",
            "Frames received from clients.",
            m.frames_in,
        ),
        (
            "sealcast_frames_out_total",
            "Frames written to clients (plaintext or sealed).",
            m.frames_out,
        ),
        (
            "sealcast_deliveries_total",
            "Messages queued for a client (one per receiver).",
            m.deliveries,
        ),
        (
            "sealcast_dropped_total",
            "Messages dropped for a client's backpressure limit.",
            m.dropped,
        ),
        (
            "sealcast_auth_failures_total",
            "Authentications refused or failed (close 4003).",
            m.auth_failures,
        ),
        (
            "sealcast_handshake_failures_total",
            "Encryption handshakes that failed (close 4004).",
            m.handshake_failures,
        ),
        (
            "sealcast_record_failures_total",
            "v2 records that failed to open (tampered, replayed, reordered; close 4004).",
            m.record_failures,
        ),
        (
            "sealcast_publish_failures_total",
            "Broker publishes that failed.",
            m.publish_failures,
        ),
        (
            "sealcast_rate_limited_total",
            "Frames refused by a client's rate limit.",
            m.rate_limited,
        ),
        (
            "sealcast_api_publishes_total",
            "Messages accepted by POST /api/publish.",
            s.api_publishes,
        ),
    ];
    for (name, help, value) in counters {
        w.single(name, "counter", help, value);
    }
    if let Some(r) = &s.redis {
        for (name, help, value) in [
            (
                "sealcast_redis_published_total",
                "Envelopes published to Redis.",
                r.published,
            ),
            (
                "sealcast_redis_publish_failures_total",
                "Redis publishes that failed.",
                r.publish_failures,
            ),
            (
                "sealcast_redis_received_total",
                "Messages received from Redis, valid or not.",
                r.received,
            ),
            (
                "sealcast_redis_dropped_invalid_total",
                "Messages from Redis dropped as invalid (or badly signed).",
                r.dropped_invalid,
            ),
            (
                "sealcast_redis_dropped_overflow_total",
                "Envelopes from Redis dropped because the server inbox was full.",
                r.dropped_overflow,
            ),
            (
                "sealcast_redis_reconnects_total",
                "Redis connections re-established after being lost.",
                r.reconnects,
            ),
        ] {
            w.single(name, "counter", help, value);
        }
    }
    if let Some(h) = &s.webhook {
        for (name, help, value) in [
            (
                "sealcast_webhook_sent_total",
                "Webhook requests answered with 2xx.",
                h.sent,
            ),
            (
                "sealcast_webhook_failures_total",
                "Webhook requests that failed or timed out.",
                h.failed,
            ),
            (
                "sealcast_webhook_dropped_total",
                "Webhook events dropped because too many requests were in flight.",
                h.dropped,
            ),
        ] {
            w.single(name, "counter", help, value);
        }
    }
    w.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_and_labels() {
        let mut s = Snapshot::default();
        s.server.connections.authenticated = 3;
        s.server.frames_in = 7;
        s.broker_ready = true;
        let text = render(&s);
        assert!(text.contains("# TYPE sealcast_connections gauge\n"));
        assert!(text.contains("sealcast_connections{state=\"authenticated\"} 3\n"));
        assert!(text.contains("sealcast_frames_in_total 7\n"));
        assert!(text.contains("sealcast_broker_ready 1\n"));
        assert!(!text.contains("sealcast_redis_"));
        s.redis = Some(RedisStats::default());
        assert!(render(&s).contains("# TYPE sealcast_redis_reconnects_total counter\n"));
        // Every sample line is `name[{labels}] value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap_or(("", "x"));
            assert!(
                name.starts_with("sealcast_") && value.parse::<u64>().is_ok(),
                "{line}"
            );
        }
    }
}
