//! The connect/disconnect webhook: one HTTP POST of JSON per event, sent in the background so a
//! slow or dead endpoint never delays a client. Each request is bounded by a timeout, at most
//! `max_in_flight` run at once (events past that are dropped), and failures are logged and
//! counted, never retried.
//!
//! The body is `{"event":"connect"|"disconnect","clientId","userId","metadata","time"}`; with a
//! secret, `X-Sealcast-Signature: sha256=<hex HMAC-SHA256 of the body>` lets the receiver check
//! it came from the gateway.

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use axum::http::{Method, Request, Uri, header};
use hmac::{KeyInit, Mac};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::Semaphore;

use super::config::{WebhookConfig, WebhookEvent};
use crate::server::ClientEvent;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Upper bound of `webhook.max_in_flight`.
pub const MAX_IN_FLIGHT: usize = 1 << 16;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-sealcast-signature";

/// Checks a webhook URL: absolute `http://` with a host.
pub fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a valid URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(
                "https is not supported by the built-in client: use an http:// endpoint (e.g. a local sidecar)"
                    .to_owned(),
            );
        }
        _ => return Err("must be an absolute http:// URL".to_owned()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("must name a host".to_owned());
    }
    Ok(uri)
}

/// Webhook counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Requests answered with a 2xx status.
    pub sent: u64,
    /// Requests that failed: connection error, timeout or non-2xx status.
    pub failed: u64,
    /// Events dropped because `max_in_flight` requests were already running.
    pub dropped: u64,
}

/// Sends webhook events.
pub struct Webhook {
    client: Client<HttpConnector, Full<axum::body::Bytes>>,
    uri: Uri,
    timeout: Duration,
    events: Vec<WebhookEvent>,
    // SECURITY: the keyed MAC state, never the secret string, is kept.
    mac: Option<HmacSha256>,
    permits: Arc<Semaphore>,
    max_in_flight: u32,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("events", &self.events)
            .field("timeout", &self.timeout)
            .field("signed", &self.mac.is_some())
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// The webhook of a validated configuration; `Ok(None)` when no URL is set.
    pub fn new(config: &WebhookConfig) -> Result<Option<Arc<Self>>, String> {
        let Some(url) = &config.url else {
            return Ok(None);
        };
        let uri = parse_url(url)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout.0));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let mac = match &config.secret {
            Some(secret) => Some(
                <HmacSha256 as KeyInit>::new_from_slice(secret.expose().as_bytes())
                    .map_err(|_| "invalid webhook secret".to_owned())?,
            ),
            None => None,
        };
        let max_in_flight =
            u32::try_from(config.max_in_flight.min(MAX_IN_FLIGHT)).unwrap_or(1 << 16);
        Ok(Some(Arc::new(Self {
            client,
            uri,
            timeout: config.timeout.0,
            events: config.events.clone(),
            mac,
            permits: Arc::new(Semaphore::new(max_in_flight as usize)),
            max_in_flight,
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })))
    }

    /// Queues one event for `client`; returns at once. Does nothing for events not configured.
    pub fn notify(self: &Arc<Self>, event: WebhookEvent, client: &ClientEvent) {
        if !self.events.contains(&event) {
            return;
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                event = event.as_str(),
                client = %client.client_id,
                dropped_total = dropped,
                "webhook: too many requests in flight; event dropped"
            );
            return;
        };
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let body = json!({
            "event": event.as_str(),
            "clientId": client.client_id,
            "userId": client.user_id,
            "metadata": client.metadata,
            "time": time,
        })
        .to_string();
        let this = self.clone();
        let client_id = client.client_id.clone();
        tokio::spawn(async move {
            let outcome = tokio::time::timeout(this.timeout, this.post(body)).await;
            drop(permit);
            let error = match outcome {
                Ok(Ok(())) => {
                    this.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(Err(e)) => e,
                Err(_) => format!("no answer within {:?}", this.timeout),
            };
            this.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(event = event.as_str(), client = %client_id, %error, "webhook failed");
        });
    }

    async fn post(&self, body: String) -> Result<(), String> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("sealcast/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(mac) = &self.mac {
            let mut mac = mac.clone();
            mac.update(body.as_bytes());
            let tag = mac.finalize().into_bytes();
            let mut hex = String::with_capacity(7 + tag.len() * 2);
            hex.push_str("sha256=");
            for b in tag.iter() {
                let _ = write!(hex, "{b:02x}");
            }
            request = request.header(SIGNATURE_HEADER, hex);
        }
        let request = request
            .body(Full::new(axum::body::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("endpoint answered {}", response.status()))
        }
    }

    /// Waits (at most `limit`) for the requests in flight, at shutdown.
    pub async fn drain(&self, limit: Duration) {
        let all = self.permits.acquire_many(self.max_in_flight);
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("webhook: requests still in flight at shutdown were abandoned");
        }
    }

    /// The counters.
    pub fn stats(&self) -> WebhookStats {
        WebhookStats {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(parse_url("http://127.0.0.1:9000/hooks").is_ok());
        assert!(parse_url("https://example.com/hooks").is_err());
        assert!(parse_url("ftp://example.com").is_err());
        assert!(parse_url("/relative").is_err());
        assert!(parse_url("not a url").is_err());
    }
}
