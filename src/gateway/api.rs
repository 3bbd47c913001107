//! The HTTP API for backends that do not share the Redis bus: publish to clients, list a room's
//! members. Every request needs `Authorization: Bearer <api.key>`; without a configured key the
//! routes are not mounted at all (404). Errors are JSON `{"error": "..."}`.
//!
//! | route | does |
//! |---|---|
//! | `POST /api/publish` | `{"client"\|"user"\|"room"\|"broadcast": …, "event", "data"?, "exclude"?}` → delivered on every instance |
//! | `GET /api/rooms/{room}/clients` | the room's members on this instance |

use std::{
    error::Error as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{json, value::RawValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    Server,
    protocol::{RoomName, SystemEvent},
    server::SendError,
};

/// Most client ids one publish may exclude.
pub const MAX_EXCLUDE: usize = 1024;
/// Longest user id accepted as a target, in bytes.
pub const MAX_USER_ID_BYTES: usize = 256;

/// An API error: a status and a message, rendered as `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The JSON 404 every unknown path gets.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not found")
}

/// The JSON 405 for a known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// What the API handlers share.
pub struct ApiState {
    server: Server,
    /// SHA-256 of the key: comparing fixed-size digests in constant time leaks neither the key's
    /// bytes nor its length.
    key_digest: [u8; 32],
    max_body_bytes: usize,
    publishes: Arc<AtomicU64>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// The API of `server`, guarded by `key`; `publishes` counts accepted publishes.
    pub fn new(
        server: Server,
        key: &str,
        max_body_bytes: usize,
        publishes: Arc<AtomicU64>,
    ) -> Self {
        Self {
            server,
            key_digest: Sha256::digest(key.as_bytes()).into(),
            max_body_bytes,
            publishes,
        }
    }

    /// Checks `Authorization: Bearer <key>`.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing Authorization: Bearer <api key>"))?;
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| unauthorized("Authorization must be Bearer <api key>"))?;
        let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        // SECURITY: constant-time comparison of equal-length digests.
        if bool::from(digest.ct_eq(&self.key_digest)) {
            Ok(())
        } else {
            Err(unauthorized("invalid api key"))
        }
    }
}

/// The API routes, for merging into the gateway's router.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/publish", post(publish))
        .route("/api/rooms/{room}/clients", get(room_clients))
        .with_state(state)
}

/// The body of `POST /api/publish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    client: Option<String>,
    user: Option<String>,
    room: Option<String>,
    broadcast: Option<bool>,
    event: String,
    data: Option<Box<RawValue>>,
    #[serde(default)]
    exclude: Vec<String>,
}

enum Target {
    Client(String),
    User(String),
    Room(String),
    Broadcast,
}

impl PublishRequest {
    fn target(&self) -> Result<Target, ApiError> {
        let given = [
            self.client.is_some(),
            self.user.is_some(),
            self.room.is_some(),
            self.broadcast.is_some(),
        ]
        .into_iter()
        .filter(|g| *g)
        .count();
        if given != 1 {
            return Err(ApiError::bad_request(
                "give exactly one target: \"client\", \"user\", \"room\" or \"broadcast\": true",
            ));
        }
        if !self.exclude.is_empty() && self.room.is_none() && self.broadcast.is_none() {
            return Err(ApiError::bad_request(
                "\"exclude\" only applies to \"room\" and \"broadcast\"",
            ));
        }
        if self.exclude.len() > MAX_EXCLUDE {
            return Err(ApiError::bad_request(format!(
                "\"exclude\" lists more than {MAX_EXCLUDE} clients"
            )));
        }
        if let Some(client) = &self.client {
            // A client id is a UUID. Anything else would be taken for a room by `send`.
            if uuid::Uuid::try_parse(client).is_err() {
                return Err(ApiError::bad_request(
                    "\"client\" must be a client id (a UUID)",
                ));
            }
            return Ok(Target::Client(client.clone()));
        }
        if let Some(user) = &self.user {
            if user.is_empty() || user.len() > MAX_USER_ID_BYTES {
                return Err(ApiError::bad_request(format!(
                    "\"user\" must be 1 to {MAX_USER_ID_BYTES} bytes"
                )));
            }
            return Ok(Target::User(user.clone()));
        }
        if let Some(room) = &self.room {
            RoomName::new(room).map_err(|e| ApiError::bad_request(format!("\"room\": {e}")))?;
            return Ok(Target::Room(room.clone()));
        }
        match self.broadcast {
            Some(true) => Ok(Target::Broadcast),
            _ => Err(ApiError::bad_request("\"broadcast\" must be true")),
        }
    }
}

async fn publish(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    api.authorize(&headers)?;
    let bytes = read_body(body, api.max_body_bytes).await?;
    let request: PublishRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let target = request.target()?;
    let event = request.event.as_str();
    let limit = api.server.options().limits.max_event_name_bytes;
    if event.is_empty() || event.len() > limit {
        return Err(ApiError::bad_request(format!(
            "\"event\" must be 1 to {limit} bytes"
        )));
    }
    if SystemEvent::from_name(event).is_some() {
        return Err(ApiError::bad_request(format!(
            "\"event\": {event:?} is reserved by the protocol"
        )));
    }
    let null = RawValue::NULL;
    let data: &RawValue = request.data.as_deref().unwrap_or(null);
    let exclude: Vec<&str> = request.exclude.iter().map(String::as_str).collect();
    let server = &api.server;
    let sent = match &target {
        Target::Client(id) => server.send(Some(id), event, data).await,
        Target::User(user) => server.send_to_user_everywhere(user, event, data).await,
        Target::Room(room) => {
            server
                .send_to_room_everywhere(room, event, data, &exclude)
                .await
        }
        Target::Broadcast => server.broadcast_everywhere(event, data, &exclude).await,
    };
    match sent {
        Ok(()) => {
            api.publishes.fetch_add(1, Ordering::Relaxed);
            Ok(Json(json!({ "ok": true })))
        }
        Err(SendError::Broker(e)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("delivered on this instance only; the broker failed: {e}"),
        )),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}

/// Reads a body of at most `limit` bytes: 413 past it, whatever `Content-Length` says.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        )
    };
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                source = s.source();
            }
            Err(ApiError::bad_request(format!("cannot read the body: {e}")))
        }
    }
}

async fn room_clients(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    api.authorize(&headers)?;
    RoomName::new(&room).map_err(|e| ApiError::bad_request(format!("room: {e}")))?;
    let clients: Vec<serde_json::Value> = api
        .server
        .clients_by_room(&room)
        .into_iter()
        .map(|c| {
            json!({
                "id": c.id,
                "userId": c.user_id,
                "state": c.state.as_str(),
                "encrypted": c.encrypted,
                "connectedAt": humantime::format_rfc3339_millis(c.connected_at).to_string(),
                "metadata": c.metadata,
            })
        })
        .collect();
    Ok(Json(json!({ "room": room, "clients": clients })))
}
