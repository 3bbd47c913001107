//! Publish to clients without running a server: the counterpart of the reference's
//! `WebSocketEmitter`, for workers, cron jobs, other services and CLIs.
//!
//! An [`Emitter`] holds one Redis connection and publishes the same envelopes a server does,
//! with the server id `"emitter"` ([`EMITTER_SERVER_ID`]) so no instance drops them as its own.
//! Every instance subscribed to the channel delivers the message to its local targets. It signs
//! envelopes when its [`RedisConfig`] has a signing key, like the broker does.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sealcast::emitter::EmitError> {
//! use sealcast::emitter::Emitter;
//! use serde_json::json;
//!
//! let emitter = Emitter::connect("redis://127.0.0.1:6379").await?;
//! emitter.to_user("user-456", "notification", &json!({"message": "Your report is ready"})).await?;
//! emitter
//!     .to_room("dashboard", "data:update", &json!({"metric": "cpu", "value": 42.5}), &["client-to-skip"])
//!     .await?;
//! emitter.broadcast("system:maintenance", &json!({"in": "10m"})).await?;
//! emitter.shutdown().await;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use serde::Serialize;

use crate::{
    broker::{Broker, BrokerError, RedisBroker, RedisConfig, RedisStats},
    protocol::{
        EMITTER_SERVER_ID, Envelope, Limits, MessageType, RoomName, RoomNameError,
        json_depth_within,
    },
};

/// Why an emit failed.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// Redis could not be reached, or refused the publish (the message names the URL).
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// `data` could not be serialized to JSON.
    #[error("data is not serializable to JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The room name breaks the room rules.
    #[error("invalid room name: {0}")]
    Room(#[from] RoomNameError),
    /// An empty event name, client id or user id.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// The envelope exceeds what receivers accept ([`Limits::max_envelope_bytes`] or
    /// [`Limits::max_json_depth`]); they would drop it.
    #[error("message exceeds the envelope limits ({0})")]
    TooLarge(&'static str),
}

/// Publishes to the clients of every server instance on a Redis deployment. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Emitter {
    broker: RedisBroker,
    limits: Limits,
}

impl Emitter {
    /// Connects to Redis (`"redis://host:port"` or a full [`RedisConfig`]); fails, naming the
    /// URL, when it cannot connect within [`RedisConfig::connect_timeout`].
    pub async fn connect(config: impl Into<RedisConfig>) -> Result<Self, EmitError> {
        let config = config.into();
        let limits = Limits::default();
        let broker = RedisBroker::connect(config).await?;
        Ok(Self { broker, limits })
    }

    /// Sends `event` with `data` to one client (channel `ws:client:{id}`).
    pub async fn to_client(
        &self,
        client_id: &str,
        event: &str,
        data: &impl Serialize,
    ) -> Result<(), EmitError> {
        non_empty(client_id, "client id")?;
        self.emit(MessageType::Client, Some(client_id), event, data, &[])
            .await
    }

    /// Sends `event` with `data` to every session of a user, on every instance
    /// (channel `ws:user:{id}`).
    pub async fn to_user(
        &self,
        user_id: &str,
        event: &str,
        data: &impl Serialize,
    ) -> Result<(), EmitError> {
        non_empty(user_id, "user id")?;
        self.emit(MessageType::User, Some(user_id), event, data, &[])
            .await
    }

    /// Sends `event` with `data` to every member of `room` except the clients in `exclude`
    /// (channel `ws:room:{room}`). The room name is checked with [`RoomName::new`].
    pub async fn to_room(
        &self,
        room: &str,
        event: &str,
        data: &impl Serialize,
        exclude: &[&str],
    ) -> Result<(), EmitError> {
        let room = RoomName::new(room)?;
        self.emit(MessageType::Room, Some(room.as_str()), event, data, exclude)
            .await
    }

    /// Sends `event` with `data` to every authenticated client of every instance
    /// (channel `ws:broadcast`).
    pub async fn broadcast(&self, event: &str, data: &impl Serialize) -> Result<(), EmitError> {
        self.emit(MessageType::Broadcast, None, event, data, &[])
            .await
    }

    /// The underlying broker's counters.
    pub fn stats(&self) -> RedisStats {
        self.broker.stats()
    }

    /// Releases the Redis connection; later emits fail with [`BrokerError::Closed`].
    pub async fn shutdown(&self) {
        self.broker.shutdown().await;
    }

    async fn emit(
        &self,
        kind: MessageType,
        target: Option<&str>,
        event: &str,
        data: &impl Serialize,
        exclude: &[&str],
    ) -> Result<(), EmitError> {
        non_empty(event, "event")?;
        let data = serde_json::value::to_raw_value(data)?;
        let envelope = Envelope {
            server_id: EMITTER_SERVER_ID.to_owned(),
            kind,
            target: target.map(str::to_owned),
            event: event.to_owned(),
            data: Some(data),
            exclude: (!exclude.is_empty())
                .then(|| exclude.iter().map(|id| (*id).to_owned()).collect()),
        };
        // Refuse here what every receiver would drop, so the caller hears about it.
        let json = envelope.to_json();
        if json.len() > self.limits.max_envelope_bytes {
            return Err(EmitError::TooLarge("size"));
        }
        if !json_depth_within(json.as_bytes(), self.limits.max_json_depth + 1) {
            return Err(EmitError::TooLarge("depth"));
        }
        self.broker.publish(Arc::new(envelope)).await?;
        Ok(())
    }
}

fn non_empty(value: &str, what: &'static str) -> Result<(), EmitError> {
    if value.is_empty() {
        Err(EmitError::Empty(what))
    } else {
        Ok(())
    }
}
