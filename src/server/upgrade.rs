//! The WebSocket upgrade: an axum extractor that checks the opening handshake (RFC 6455
//! §4.2.1), answers `101 Switching Protocols`, and hands the upgraded stream to a session.
//!
//! axum's own `WebSocketUpgrade` yields a socket that only takes whole messages; sealcast
//! writes pre-framed bytes to the stream (one copy per receiver, one write per batch), so it
//! takes the upgraded connection itself and runs the same codec (tokio-tungstenite) over it.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header, request},
    response::{IntoResponse, Response},
};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{handshake::derive_accept_key, protocol::Role, protocol::WebSocketConfig},
};

use crate::session::Socket;

/// A WebSocket opening handshake, ready to be accepted: take it as a handler argument and pass
/// it to [`Server::upgrade`](super::Server::upgrade).
///
/// Extraction fails (with the status and reason of [`UpgradeRejection`]) unless the request
/// is an HTTP/1.1 `GET` with `Connection: upgrade`, `Upgrade: websocket`,
/// `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key`, on a connection that can upgrade.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: hyper::upgrade::OnUpgrade,
}

impl std::fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrade").finish_non_exhaustive()
    }
}

/// Why a request is not a WebSocket upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeRejection {
    /// Not a `GET` (405).
    #[error("request method must be `GET`")]
    MethodNotGet,
    /// Not HTTP/1.1 (400): upgrades over HTTP/2 are not offered.
    #[error("WebSocket upgrades need HTTP/1.1")]
    NotHttp11,
    /// `Connection` does not list `upgrade` (400).
    #[error("`Connection` header did not include `upgrade`")]
    ConnectionHeader,
    /// `Upgrade` is not `websocket` (400).
    #[error("`Upgrade` header did not include `websocket`")]
    UpgradeHeader,
    /// `Sec-WebSocket-Version` is not 13 (400).
    #[error("`Sec-WebSocket-Version` header did not include `13`")]
    VersionHeader,
    /// No `Sec-WebSocket-Key` (400).
    #[error("`Sec-WebSocket-Key` header missing")]
    KeyMissing,
    /// The connection cannot be upgraded (426), e.g. the request did not come from hyper's
    /// HTTP/1 server.
    #[error("WebSocket request couldn't be upgraded since no upgrade state was present")]
    NotUpgradable,
}

impl UpgradeRejection {
    /// The HTTP status the rejection answers with.
    pub fn status(self) -> StatusCode {
        match self {
            UpgradeRejection::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            UpgradeRejection::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for UpgradeRejection {
    fn into_response(self) -> Response {
        (self.status(), self.to_string()).into_response()
    }
}

/// Whether a comma-separated header lists `token` (case-insensitively).
fn lists(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = UpgradeRejection;

    async fn from_request_parts(
        parts: &mut request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        if parts.version != Version::HTTP_11 {
            return Err(UpgradeRejection::NotHttp11);
        }
        if parts.method != Method::GET {
            return Err(UpgradeRejection::MethodNotGet);
        }
        if !lists(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(UpgradeRejection::ConnectionHeader);
        }
        if !lists(&parts.headers, header::UPGRADE, "websocket") {
            return Err(UpgradeRejection::UpgradeHeader);
        }
        if parts
            .headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(UpgradeRejection::VersionHeader);
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(UpgradeRejection::KeyMissing)?
            .clone();
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or(UpgradeRejection::NotUpgradable)?;
        Ok(Self { key, on_upgrade })
    }
}

impl Upgrade {
    /// Answers `101 Switching Protocols` and, once hyper hands over the connection, runs
    /// `serve` on it as a WebSocket with `config` (a task of its own; the socket is boxed so
    /// the task's future does not hold it twice).
    pub(crate) fn accept<F, Fut>(self, config: WebSocketConfig, serve: F) -> Response
    where
        F: FnOnce(Box<Socket>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        // One pointer captured: the task keeps what it captures for as long as it lives.
        let setup = Box::new((self.on_upgrade, config, serve));
        tokio::spawn(async move {
            let (on_upgrade, config, serve) = *setup;
            // Boxed: the handshake's state is not kept for the connection's lifetime.
            let Some(socket) = Box::pin(open(on_upgrade, config)).await else {
                return;
            };
            serve(socket).await;
        });
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(value) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        response
    }
}

/// Waits for hyper to hand over the connection and puts the WebSocket codec on it.
async fn open(
    on_upgrade: hyper::upgrade::OnUpgrade,
    config: WebSocketConfig,
) -> Option<Box<Socket>> {
    match on_upgrade.await {
        Ok(upgraded) => Some(Box::new(
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await,
        )),
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket upgrade failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lists_are_matched_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(lists(&headers, header::CONNECTION, "upgrade"));
        assert!(!lists(&headers, header::CONNECTION, "close"));
        assert!(!lists(&headers, header::UPGRADE, "websocket"));
    }

    #[test]
    fn rejections_answer_with_their_status() {
        assert_eq!(
            UpgradeRejection::MethodNotGet.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            UpgradeRejection::KeyMissing.status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            UpgradeRejection::NotUpgradable.status(),
            StatusCode::UPGRADE_REQUIRED
        );
    }
}
