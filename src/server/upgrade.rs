//! The WebSocket upgrade: an axum extractor that checks the opening handshake (RFC 6455
//! §4.2.1), answers `101 Switching Protocols`, and hands the upgraded stream to a session.
//!
//! axum's own `WebSocketUpgrade` yields a socket that only takes whole messages; sealcast
//! writes pre-framed bytes to the stream (one copy per receiver, one write per batch), so it
//! takes the upgraded connection itself and runs the same socket (`session::socket`) over it.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header, request},
    response::{IntoResponse, Response},
};
use hyper_util::rt::TokioIo;
use tungstenite::handshake::derive_accept_key;

use crate::session::{Socket, SocketConfig, Transport};

/// A WebSocket opening handshake, ready to be accepted: take it as a handler argument and pass
/// it to [`Server::upgrade`](super::Server::upgrade).
///
/// Extraction fails (with the status and reason of [`UpgradeRejection`]) unless the request
/// is an HTTP/1.1 `GET` with `Connection: upgrade`, `Upgrade: websocket`,
/// `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key`, on a connection that can upgrade.
pub struct Upgrade {
    /// The `Sec-WebSocket-Accept` value the 101 carries.
    accept: HeaderValue,
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

/// Where the handshake checks find a request's headers: hyper's parsed [`HeaderMap`], or the
/// raw headers [`Server::serve`](super::Server::serve) parsed itself.
pub(super) trait Headers {
    /// Every value of the header `name`, in order.
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]>;

    /// The first value of `name`.
    fn first_value<'a>(&'a self, name: &'a HeaderName) -> Option<&'a [u8]> {
        self.values(name).next()
    }

    /// Whether the comma-separated header `name` lists `token` (case-insensitively).
    fn lists(&self, name: &HeaderName, token: &str) -> bool {
        self.values(name).any(|value| {
            value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }
}

impl Headers for HeaderMap {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        self.get_all(name).iter().map(HeaderValue::as_bytes)
    }
}

impl Headers for [httparse::Header<'_>] {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> {
        // `HeaderName`s are lowercase; names on the wire may be in any case.
        self.iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name.as_str()))
            .map(|h| h.value)
    }
}

/// The opening handshake's checks (RFC 6455 §4.2.1), shared by both ways in: the client's
/// `Sec-WebSocket-Key` when the request is an upgrade sealcast accepts.
pub(super) fn check<H: Headers + ?Sized>(
    is_get: bool,
    is_http11: bool,
    headers: &H,
) -> Result<&[u8], UpgradeRejection> {
    if !is_http11 {
        return Err(UpgradeRejection::NotHttp11);
    }
    if !is_get {
        return Err(UpgradeRejection::MethodNotGet);
    }
    if !headers.lists(&header::CONNECTION, "upgrade") {
        return Err(UpgradeRejection::ConnectionHeader);
    }
    if !headers.lists(&header::UPGRADE, "websocket") {
        return Err(UpgradeRejection::UpgradeHeader);
    }
    if headers.first_value(&header::SEC_WEBSOCKET_VERSION) != Some(b"13") {
        return Err(UpgradeRejection::VersionHeader);
    }
    headers
        .first_value(&header::SEC_WEBSOCKET_KEY)
        .ok_or(UpgradeRejection::KeyMissing)
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = UpgradeRejection;

    async fn from_request_parts(
        parts: &mut request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let key = check(
            parts.method == Method::GET,
            parts.version == Version::HTTP_11,
            &parts.headers,
        )?;
        let accept = accept_value(key);
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or(UpgradeRejection::NotUpgradable)?;
        Ok(Self { accept, on_upgrade })
    }
}

/// `Sec-WebSocket-Accept` for a client's key (base64 of a SHA-1: always a valid header value).
pub(super) fn accept_value(key: &[u8]) -> HeaderValue {
    HeaderValue::from_str(&derive_accept_key(key)).unwrap_or(HeaderValue::from_static(""))
}

impl Upgrade {
    /// Answers `101 Switching Protocols` and, once hyper hands over the connection, runs
    /// `serve` on it as a WebSocket with `config` (a task of its own; the socket is boxed so
    /// the task's future does not hold it twice).
    pub(crate) fn accept<F, Fut>(self, config: SocketConfig, serve: F) -> Response
    where
        F: FnOnce(Box<Socket>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
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
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept);
        response
    }
}

/// Waits for hyper to hand over the connection and opens the WebSocket on it.
async fn open(on_upgrade: hyper::upgrade::OnUpgrade, config: SocketConfig) -> Option<Box<Socket>> {
    match on_upgrade.await {
        Ok(upgraded) => Some(Box::new(Socket::new(
            Transport::Right(TokioIo::new(upgraded)),
            Vec::new(),
            config,
        ))),
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
        assert!(headers.lists(&header::CONNECTION, "upgrade"));
        assert!(!headers.lists(&header::CONNECTION, "close"));
        assert!(!headers.lists(&header::UPGRADE, "websocket"));
    }

    /// Raw headers (as `Server::serve` parses them) pass and fail the checks exactly as
    /// hyper's `HeaderMap` does.
    #[test]
    fn raw_and_parsed_headers_get_the_same_verdicts() {
        let good: &[(&str, &str)] = &[
            ("Host", "example"),
            ("connection", "keep-alive, Upgrade"),
            ("UPGRADE", "WebSocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        type Case<'a> = (Vec<(&'a str, &'a str)>, Result<&'a [u8], UpgradeRejection>);
        let cases: Vec<Case<'_>> = vec![
            (good.to_vec(), Ok(b"dGhlIHNhbXBsZSBub25jZQ==")),
            (good[..4].to_vec(), Err(UpgradeRejection::KeyMissing)),
            (
                [&good[..3], &[("Sec-WebSocket-Version", "8")], &good[4..]].concat(),
                Err(UpgradeRejection::VersionHeader),
            ),
            (
                [&good[..2], &good[3..]].concat(),
                Err(UpgradeRejection::UpgradeHeader),
            ),
            (
                [&good[..1], &[("Connection", "close")], &good[2..]].concat(),
                Err(UpgradeRejection::ConnectionHeader),
            ),
        ];
        for (list, verdict) in cases {
            let raw = raw_headers(&list);
            let mut map = HeaderMap::new();
            for (name, value) in &list {
                map.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            assert_eq!(check(true, true, raw.as_slice()), verdict, "{list:?}");
            assert_eq!(check(true, true, &map), verdict, "{list:?}");
        }
        assert_eq!(
            check(false, true, raw_headers(good).as_slice()),
            Err(UpgradeRejection::MethodNotGet)
        );
        assert_eq!(
            check(true, false, raw_headers(good).as_slice()),
            Err(UpgradeRejection::NotHttp11)
        );
    }

    fn raw_headers<'a>(list: &[(&'a str, &'a str)]) -> Vec<httparse::Header<'a>> {
        list.iter()
            .map(|(name, value)| httparse::Header {
                name,
                value: value.as_bytes(),
            })
            .collect()
    }

    /// RFC 6455 §1.3's example key and accept value.
    #[test]
    fn the_accept_value_is_the_rfc_example() {
        assert_eq!(
            accept_value(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
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
