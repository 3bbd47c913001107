//! The shared handle of one connection, as the hub and the delivery path see it.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use serde_json::Value;

use crate::{
    protocol::RoomName,
    session::{ClientState, Outbox},
};

use super::Sealer;

/// A client id: a UUID string assigned at upgrade. Cheap to clone.
pub type ClientId = Arc<str>;

/// Assigns client ids: version-4 UUIDs whose first eight bytes are this server's (random,
/// drawn once) and whose last eight are random per client (62 bits, the variant's two aside).
/// Every client of one instance thus shares a prefix, and a broker can receive the direct
/// channels of all of them through one pattern instead of two subscriptions per connection
/// ([`Subscription::watch_own_ids`](crate::broker::Subscription::watch_own_ids)).
#[derive(Clone)]
pub(crate) struct ClientIds {
    prefix: [u8; 8],
    /// The prefix as it starts every id's text: `xxxxxxxx-xxxx-4xxx-`.
    text: Box<str>,
}

/// Characters of [`ClientIds`]' prefix in an id's text.
const PREFIX_CHARS: usize = 19;

impl ClientIds {
    pub(crate) fn new() -> Self {
        let mut prefix = [0; 8];
        // A v4 UUID's first eight bytes: random, with the version nibble.
        prefix.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
        let mut buf = uuid::Uuid::encode_buffer();
        let text = uuid::Uuid::from_bytes(Self::join(prefix, [0; 8]))
            .hyphenated()
            .encode_lower(&mut buf)[..PREFIX_CHARS]
            .into();
        Self { prefix, text }
    }

    fn join(prefix: [u8; 8], tail: [u8; 8]) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&prefix);
        bytes[8..].copy_from_slice(&tail);
        bytes
    }

    /// What every id starts with.
    pub(crate) fn prefix(&self) -> &str {
        &self.text
    }

    /// Whether `text` could be an id of this instance: the prefix and an id's length. False
    /// rules a name out without a lookup.
    pub(crate) fn may_have_issued(&self, text: &str) -> bool {
        text.len() == uuid::fmt::Hyphenated::LENGTH && text.starts_with(&*self.text)
    }

    /// A fresh id (one allocation).
    pub(crate) fn assign(&self) -> ClientId {
        // The last eight bytes of a v4 UUID: random, with the variant bits.
        let fresh = uuid::Uuid::new_v4();
        let mut tail = [0; 8];
        tail.copy_from_slice(&fresh.as_bytes()[8..]);
        let mut buf = uuid::Uuid::encode_buffer();
        Arc::from(
            &*uuid::Uuid::from_bytes(Self::join(self.prefix, tail))
                .hyphenated()
                .encode_lower(&mut buf),
        )
    }
}

/// Who a client authenticated as.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    /// The user id; several clients (sessions) may share one.
    pub user_id: Option<String>,
    /// Application metadata from the authenticate hook.
    pub metadata: Option<Value>,
}

impl Identity {
    /// An identity for `user_id`, without metadata.
    pub fn user(user_id: impl Into<String>) -> Self {
        Self {
            user_id: Some(user_id.into()),
            metadata: None,
        }
    }

    /// An identity with no user id (the client is reachable by its client id and rooms only).
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Attaches metadata.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// One connection as the hub sees it.
pub(crate) struct Client {
    pub(crate) id: ClientId,
    pub(crate) identity: OnceLock<Identity>,
    state: AtomicU8,
    encrypted: AtomicBool,
    pub(crate) sealer: OnceLock<Sealer>,
    pub(crate) outbox: Outbox,
    pub(crate) connected_at: SystemTime,
    /// Milliseconds since the server's epoch ([`super::Clock`]) of the last inbound frame.
    last_activity: AtomicU64,
    /// Set once the disconnect hook ran (or was decided not to), so it runs exactly once.
    pub(crate) disconnect_reported: AtomicBool,
}

impl Client {
    pub(crate) fn new(id: ClientId, outbox: Outbox, now_ms: u64) -> Self {
        Self {
            id,
            identity: OnceLock::new(),
            state: AtomicU8::new(ClientState::Unauthorized.to_u8()),
            encrypted: AtomicBool::new(false),
            sealer: OnceLock::new(),
            outbox,
            connected_at: SystemTime::now(),
            last_activity: AtomicU64::new(now_ms),
            disconnect_reported: AtomicBool::new(false),
        }
    }

    pub(crate) fn state(&self) -> ClientState {
        ClientState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_state(&self, state: ClientState) {
        self.state.store(state.to_u8(), Ordering::Release);
    }

    pub(crate) fn is_authenticated(&self) -> bool {
        self.state() == ClientState::Authenticated
    }

    pub(crate) fn user_id(&self) -> Option<&str> {
        self.identity.get().and_then(|i| i.user_id.as_deref())
    }

    /// Whether every message to this client goes through its sealer.
    pub(crate) fn is_encrypted(&self) -> bool {
        self.encrypted.load(Ordering::Acquire)
    }

    /// Irreversibly moves the client to the encrypted path. Returns false if it has no sealer.
    pub(crate) fn enable_encryption(&self) -> bool {
        if self.sealer.get().is_none() {
            return false;
        }
        self.encrypted.store(true, Ordering::Release);
        true
    }

    pub(crate) fn touch(&self, now_ms: u64) {
        self.last_activity.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn last_activity_ms(&self) -> u64 {
        self.last_activity.load(Ordering::Relaxed)
    }
}

/// A point-in-time copy of a client's public state (the spec's `IWebSocketClient`).
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client id.
    pub id: String,
    /// The user id, once authenticated.
    pub user_id: Option<String>,
    /// The lifecycle state.
    pub state: ClientState,
    /// Rooms joined, the own-id room and default rooms included.
    pub rooms: Vec<String>,
    /// Whether the outbound queue dropped frames for its byte limit and has not drained since.
    pub backpressured: bool,
    /// Whether deliveries to this client are sealed.
    pub encrypted: bool,
    /// When the WebSocket opened.
    pub connected_at: SystemTime,
    /// How long ago the last frame arrived.
    pub idle_for: Duration,
    /// Metadata from the authenticate hook.
    pub metadata: Option<Value>,
    /// Frames dropped for the backpressure limit.
    pub dropped_frames: u64,
}

impl ClientInfo {
    pub(crate) fn of(client: &Client, rooms: &[RoomName], now_ms: u64) -> Self {
        Self {
            id: client.id.to_string(),
            user_id: client.user_id().map(str::to_owned),
            state: client.state(),
            rooms: rooms.iter().map(|r| r.as_str().to_owned()).collect(),
            backpressured: client.outbox.is_backpressured(),
            encrypted: client.is_encrypted(),
            connected_at: client.connected_at,
            idle_for: Duration::from_millis(now_ms.saturating_sub(client.last_activity_ms())),
            metadata: client.identity.get().and_then(|i| i.metadata.clone()),
            dropped_frames: client.outbox.dropped(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v4_uuids_sharing_the_instance_prefix() {
        let ids = ClientIds::new();
        let other = ClientIds::new();
        assert_eq!(ids.prefix().len(), PREFIX_CHARS);
        assert_ne!(ids.prefix(), other.prefix());
        let a = ids.assign();
        let b = ids.assign();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert!(id.starts_with(ids.prefix()), "{id}");
            let uuid = uuid::Uuid::try_parse(id).unwrap();
            assert_eq!(uuid.get_version(), Some(uuid::Version::Random), "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(uuid.hyphenated().to_string(), **id);
        }
        assert!(!other.assign().starts_with(ids.prefix()));
    }
}
