//! [`ServerBuilder`]: options, hooks and broker in; a running [`Server`] out.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::Semaphore;

use super::{
    Server,
    encryption::{
        EncryptionConfig, HandshakeHookResult, HandshakeRequest, OutboundRequest,
        TransformHookResult, Transformer, V2Config,
    },
    hooks::{AuthRequest, ClientEvent, HookResult, Hooks, MessageEvent, RoomRequest, hook},
    options::{ServerOptions, TransportOptions},
};
use crate::{
    broker::{Broker, BrokerError, MemoryBroker},
    crypto::KeyPair,
    hub::Identity,
    protocol::{Limits, RoomName, RoomNameError},
};

/// Why a server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No authenticate hook was given; it is required.
    #[error("an authenticate hook is required")]
    MissingAuthenticate,
    /// A default room breaks the room-name rules.
    #[error("default room {name:?}: {source}")]
    InvalidDefaultRoom {
        /// The offending name.
        name: String,
        /// Why.
        source: RoomNameError,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(&'static str),
    /// The broker refused the subscription.
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
}

/// Builds a [`Server`]. Every option defaults to the spec's value; only
/// [`authenticate`](ServerBuilder::authenticate) is required.
pub struct ServerBuilder {
    options: ServerOptions,
    broker: Option<Arc<dyn Broker>>,
    authenticate: Option<super::hooks::Hook<AuthRequest, Option<Identity>>>,
    validate_rooms: Option<super::hooks::Hook<RoomRequest, Vec<String>>>,
    connected: Option<super::hooks::Hook<ClientEvent, ()>>,
    disconnected: Option<super::hooks::Hook<ClientEvent, ()>>,
    message: Option<super::hooks::Hook<MessageEvent, ()>>,
    encryption_v1: Option<Arc<KeyPair>>,
    encryption_v2: Option<V2Config>,
    handshake: Option<super::encryption::HandshakeHook>,
    transformer: Option<super::encryption::TransformHook>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder {
    /// A builder with the default options and the in-memory broker.
    pub fn new() -> Self {
        Self {
            options: ServerOptions::default(),
            broker: None,
            authenticate: None,
            validate_rooms: None,
            connected: None,
            disconnected: None,
            message: None,
            encryption_v1: None,
            encryption_v2: None,
            handshake: None,
            transformer: None,
        }
    }

    /// Replaces all options at once.
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// A name for logs. Defaults to `"sealcast"`.
    pub fn identifier(mut self, identifier: impl Into<String>) -> Self {
        self.options.identifier = identifier.into();
        self
    }

    /// The WebSocket path [`Server::router`] mounts. Defaults to `/ws`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.options.path = path.into();
        self
    }

    /// Rooms every client joins after authentication. Defaults to `ws-default`, `ws-notification`.
    pub fn default_rooms<I, S>(mut self, rooms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.default_rooms = rooms.into_iter().map(Into::into).collect();
        self
    }

    /// Time allowed before `authenticate` arrives. Defaults to 5 s.
    pub fn auth_timeout(mut self, timeout: Duration) -> Self {
        self.options.auth_timeout = timeout;
        self
    }

    /// Interval of the stale-client sweep. Defaults to 30 s.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.options.heartbeat_interval = interval;
        self
    }

    /// Inactivity before close 4002. Defaults to 90 s.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.options.heartbeat_timeout = timeout;
        self
    }

    /// Most outbound transformer calls in flight. Defaults to 10.
    pub fn encrypted_batch_limit(mut self, limit: usize) -> Self {
        self.options.encrypted_batch_limit = limit;
        self
    }

    /// Require an encryption handshake during authentication. Defaults to `false`.
    pub fn require_encryption(mut self, required: bool) -> Self {
        self.options.require_encryption = required;
        self
    }

    /// Transport settings.
    pub fn transport(mut self, transport: TransportOptions) -> Self {
        self.options.transport = transport;
        self
    }

    /// Input limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.options.limits = limits;
        self
    }

    /// The broker that carries messages between instances. Defaults to a private
    /// [`MemoryBroker`] (single instance).
    pub fn broker(mut self, broker: impl Broker) -> Self {
        self.broker = Some(Arc::new(broker));
        self
    }

    /// The broker, already shared.
    pub fn shared_broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Required: decides who a client is. `Ok(Some(identity))` accepts, `Ok(None)` rejects
    /// (`Authentication failed`, 4003), `Err` is logged and also closes with 4003
    /// (`Authentication error`).
    pub fn authenticate<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult<Option<Identity>>> + Send + 'static,
    {
        self.authenticate = Some(hook(f));
        self
    }

    /// Decides which requested rooms a client may join; returns the allowed subset (anything
    /// else it returns is ignored). Without it, every client join request is refused.
    pub fn validate_rooms<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(RoomRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult<Vec<String>>> + Send + 'static,
    {
        self.validate_rooms = Some(hook(f));
        self
    }

    /// Called after a client authenticated, joined its rooms and was sent `connected`.
    pub fn on_connected<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(ClientEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult<()>> + Send + 'static,
    {
        self.connected = Some(hook(f));
        self
    }

    /// Called once for every client that was reported connected, after it left the indexes.
    pub fn on_disconnected<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(ClientEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult<()>> + Send + 'static,
    {
        self.disconnected = Some(hook(f));
        self
    }

    /// Called, in order per client, for every application event from an authenticated client.
    pub fn on_message<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(MessageEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult<()>> + Send + 'static,
    {
        self.message = Some(hook(f));
        self
    }

    /// Enables the built-in v1 handshake with this server key pair: a client whose
    /// `authenticate` payload carries `publicKey` (raw 65-byte P-256, base64) gets a per-client
    /// key with a fresh salt, `connected` adds `serverPublicKey` and `salt`, and every later
    /// message to it is sealed (`{event:"encrypted", data:{iv, ct}}`). A malformed key closes
    /// with `Encryption handshake failed` / 4004. With [`require_encryption`](Self::require_encryption),
    /// a missing key does too.
    pub fn encryption_v1(mut self, server_key: KeyPair) -> Self {
        self.encryption_v1 = Some(Arc::new(server_key));
        self
    }

    /// Enables encryption v2 (`sealcast-v2`, the JS client's default): a client that sends a
    /// `handshake` event before `authenticate` gets a fresh per-connection server key, a
    /// transcript-bound key schedule and key confirmation (optionally a signature with
    /// [`V2Config::signing_key`](V2Config#structfield.signing_key) for clients that pin it);
    /// from then on every frame in both directions is a sealed record (`authenticate` and
    /// `connected` included) and any record that fails to open closes the connection with 4004.
    /// A failed handshake closes with `Encryption handshake failed` / 4004. v1 and plaintext
    /// clients are unaffected unless [`V2Config::required`](V2Config#structfield.required) is
    /// set. Defaults to off. See `SECURITY.md` for the protocol and what it promises.
    pub fn encryption_v2(mut self, config: V2Config) -> Self {
        self.encryption_v2 = Some(config);
        self
    }

    /// The spec's custom handshake (`handshakeFn`): runs after a successful authenticate hook;
    /// `Ok(Some(reply))` marks the client encrypted (messages then go through the
    /// [`outbound_transformer`](Self::outbound_transformer)) and puts the reply in `connected`;
    /// `Ok(None)` leaves it in plaintext, or closes with 4004 when encryption is required.
    /// Takes precedence over [`encryption_v1`](Self::encryption_v1).
    pub fn handshake<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(HandshakeRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandshakeHookResult> + Send + 'static,
    {
        self.handshake = Some(hook(f));
        self
    }

    /// The spec's `outboundTransformer`: called for every message to an encrypted client whose
    /// encryption came from [`handshake`](Self::handshake) or
    /// [`Server::enable_client_encryption`]. `Ok(None)` sends the message unchanged; an error
    /// drops it (logged). At most `encrypted_batch_limit` calls run at once, server-wide.
    /// Plaintext clients never go through it: they keep the shared serialize-once path.
    pub fn outbound_transformer<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(OutboundRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TransformHookResult> + Send + 'static,
    {
        self.transformer = Some(hook(f));
        self
    }

    /// Validates the options, subscribes to the broker and starts the sweep.
    pub async fn build(self) -> Result<Server, BuildError> {
        let authenticate = self.authenticate.ok_or(BuildError::MissingAuthenticate)?;
        let o = &self.options;
        if o.auth_timeout.is_zero() {
            return Err(BuildError::InvalidOption("auth_timeout must be positive"));
        }
        if o.heartbeat_interval.is_zero() || o.heartbeat_timeout.is_zero() {
            return Err(BuildError::InvalidOption(
                "heartbeat interval and timeout must be positive",
            ));
        }
        if o.encrypted_batch_limit == 0 {
            return Err(BuildError::InvalidOption(
                "encrypted_batch_limit must be at least 1",
            ));
        }
        if o.transport.max_payload_length == 0 || o.transport.backpressure_limit == 0 {
            return Err(BuildError::InvalidOption(
                "max_payload_length and backpressure_limit must be positive",
            ));
        }
        if !o.path.starts_with('/') {
            return Err(BuildError::InvalidOption("path must start with '/'"));
        }
        let default_rooms = o
            .default_rooms
            .iter()
            .map(|name| {
                RoomName::new(name).map_err(|source| BuildError::InvalidDefaultRoom {
                    name: name.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hooks = Hooks {
            authenticate,
            validate_rooms: self.validate_rooms,
            connected: self.connected,
            disconnected: self.disconnected,
            message: self.message,
        };
        let encryption = EncryptionConfig {
            v1: self.encryption_v1,
            v2: self.encryption_v2,
            handshake: self.handshake,
            transformer: self.transformer.map(|hook| Transformer {
                hook,
                permits: Arc::new(Semaphore::new(self.options.encrypted_batch_limit)),
            }),
        };
        let broker = self
            .broker
            .unwrap_or_else(|| Arc::new(MemoryBroker::new()) as Arc<dyn Broker>);
        Server::start(self.options, default_rooms, hooks, encryption, broker).await
    }
}
