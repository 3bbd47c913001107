//! The public surface: [`ServerBuilder`] → [`Server`], a cheap `Clone` handle for sending,
//! queries and shutdown, plus the axum integration ([`Server::router`], [`Server::upgrade`]).

mod builder;
pub(crate) mod encryption;
pub(crate) mod hooks;
mod listen;
pub(crate) mod metrics;
mod options;
mod upgrade;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use serde_json::value::to_raw_value;
use tokio::{sync::Notify, task::JoinHandle};

pub use builder::{BuildError, ServerBuilder};
pub use encryption::{
    HandshakeHookResult, HandshakeReply, HandshakeRequest, OutboundRequest, TransformHookResult,
    Transformed, V2Config,
};
pub use hooks::{AuthRequest, ClientEvent, HookError, HookResult, MessageEvent, RoomRequest};
pub use listen::Serve;
pub use metrics::{ConnectionCounts, Metrics};
pub use options::{ServerOptions, TransportOptions};
pub use upgrade::{Upgrade, UpgradeRejection};

use crate::{
    broker::{Broker, Delivery},
    hub::{
        CORK_DELIVERIES, ClientInfo, Cork, DIRECT_BURST, Fanned, Hub, Lane, Outgoing, RoomError,
        Run, lanes_for,
    },
    protocol::{CloseCode, Envelope, MessageType, RoomName},
    session::{self, SocketConfig},
};
use encryption::EncryptionConfig;
use hooks::{ClientEvent as HookClientEvent, Hooks, Unpinned, call_unpin};

/// Why a send did not go out.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The payload could not be serialized to JSON.
    #[error("payload is not serializable: {0}")]
    Payload(#[from] serde_json::Error),
    /// The event name is empty.
    #[error("event name is empty")]
    EmptyEvent,
    /// Local delivery happened, but the broker refused the publish.
    #[error("broker: {0}")]
    Broker(#[from] crate::broker::BrokerError),
}

/// State shared by the handle, the sessions and the background tasks.
pub(crate) struct Shared {
    pub(crate) server_id: String,
    pub(crate) options: ServerOptions,
    pub(crate) default_rooms: Vec<RoomName>,
    pub(crate) hooks: Hooks,
    pub(crate) encryption: EncryptionConfig,
    pub(crate) hub: Hub,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) shutting_down: AtomicBool,
    /// Live session tasks, so shutdown can wait for their close frames to go out.
    pub(crate) sessions: AtomicUsize,
    pub(crate) sessions_done: Notify,
    /// Permits for authentications in progress (`Limits::max_pending_auth`).
    pub(crate) pending_auth: Arc<tokio::sync::Semaphore>,
    /// The runtime's worker threads: the most lanes a room's fan-out splits into.
    workers: usize,
    /// Per lane, the [`thread_tag`] of the thread that fanned it out last.
    lane_homes: Box<[AtomicU64]>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Logs a disconnect hook that failed (see [`Shared::disconnect_hook`]).
pub(crate) fn disconnected(client: &crate::hub::Client, result: HookResult<()>) {
    if let Err(e) = result {
        tracing::warn!(client = %client.id, error = %e, "disconnected hook failed");
    }
}

impl Shared {
    /// Runs the disconnect hook for a client that was reported connected, exactly once.
    pub(crate) async fn report_disconnect(&self, client: &crate::hub::Client) {
        if let Some(hook) = self.disconnect_hook(client) {
            disconnected(client, hook.await);
        }
    }

    /// The disconnect hook's call for a client that was reported connected, the first time it
    /// is asked for; `None` when there is nothing to run (then nothing waits, and nothing is
    /// boxed). Await it, then hand its result to [`disconnected`].
    pub(crate) fn disconnect_hook(&self, client: &crate::hub::Client) -> Option<Unpinned<()>> {
        if client.identity.get().is_none()
            || client.disconnect_reported.swap(true, Ordering::AcqRel)
        {
            return None;
        }
        let hook = self.hooks.disconnected.as_ref()?;
        let event = HookClientEvent {
            client_id: String::from(&*client.id),
            user_id: client.user_id().map(str::to_owned),
            metadata: client.identity.get().and_then(|i| i.metadata.clone()),
        };
        Some(call_unpin("disconnected", hook, event))
    }

    /// Fans out the pending run of room messages, if any. Under a direct cork, a room large
    /// enough is split into lanes ([`lanes_for`]), each fanned out by a task of its own, so
    /// idle worker threads take a share of the `send`s; this returns when every lane is done,
    /// so the next message reaches each member after this one.
    async fn flush_run(self: &Arc<Self>, run: &mut PendingRun, cork: &mut Cork) {
        let what = if run.msgs.len() > 1 {
            Fanned::Run(Run::new(std::mem::take(&mut run.msgs)))
        } else if let Some(msg) = run.msgs.pop() {
            Fanned::One(msg)
        } else {
            return;
        };
        let lanes = if cork.is_direct() {
            lanes_for(self.hub.room_len(&run.room), self.workers)
        } else {
            1
        };
        if lanes == 1 {
            self.hub.to_room_lane(&run.room, &what, Lane::ALL, cork);
            return;
        }
        let room: Arc<str> = Arc::from(run.room.as_str());
        // Every lane is spawned, none fanned out here: a task spawned from a worker waits in
        // that worker's own slot until the spawner yields, and only the ones it displaces
        // into the queue can be taken by another worker. The lane this thread fanned out
        // last is spawned last, into that slot, so it runs here again: a lane's sockets
        // (their kernel state, their outboxes) stay with one core instead of moving
        // between cores with every message.
        let parts: Vec<JoinHandle<()>> = spawn_order(lanes, &self.lane_homes, thread_tag())
            .into_iter()
            .map(|lane| {
                let (shared, room, what) = (self.clone(), room.clone(), what.clone());
                tokio::spawn(async move {
                    shared.lane_homes[lane.index()].store(thread_tag(), Ordering::Relaxed);
                    let mut cork = Cork::direct();
                    shared.hub.to_room_lane(&room, &what, lane, &mut cork);
                })
            })
            .collect();
        for part in parts {
            // A lane that panicked has delivered what it could; the next message goes on.
            let _ = part.await;
        }
    }

    /// Delivers an envelope from the bus to local clients. A room message without exclusions
    /// joins `run` (flushed when a message to anything else comes, and after the burst).
    async fn on_delivery(
        self: &Arc<Self>,
        delivery: Delivery,
        run: &mut PendingRun,
        cork: &mut Cork,
    ) {
        let envelope = &delivery.envelope;
        if envelope.server_id == self.server_id {
            return; // our own publish: already delivered locally
        }
        if !envelope.matches_channel(&delivery.channel) {
            tracing::warn!(channel = %delivery.channel, kind = envelope.kind.as_str(), "dropping envelope that does not match its channel");
            return;
        }
        let data = match &envelope.data {
            Some(raw) => raw.clone(),
            None => crate::protocol::null_raw().to_owned(),
        };
        let msg = Outgoing::new(&envelope.event, data);
        let target = envelope.target.as_deref().unwrap_or_default();
        if envelope.kind == MessageType::Room && envelope.exclude.as_ref().is_none_or(Vec::is_empty)
        {
            if run.room != target || run.msgs.len() >= MAX_RUN {
                self.flush_run(run, cork).await;
                target.clone_into(&mut run.room);
            }
            run.msgs.push(msg);
            return;
        }
        // Anything else keeps its place after the room messages before it.
        self.flush_run(run, cork).await;
        let exclude: Vec<&str> = envelope
            .exclude
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        match envelope.kind {
            MessageType::Broadcast => {
                self.hub.to_all(&msg, &exclude, cork);
            }
            MessageType::Room => {
                self.hub.to_room(target, &msg, &exclude, cork);
            }
            MessageType::User => {
                self.hub.to_user(target, &msg, &exclude, cork);
            }
            MessageType::Client => {
                if !exclude.contains(&target) {
                    self.hub.to_client(target, &msg, cork);
                }
            }
        }
    }
}

/// A running sealcast server. Cloning is cheap (an `Arc`); every clone is the same server.
#[derive(Clone)]
pub struct Server {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("id", &self.shared.server_id)
            .field("identifier", &self.shared.options.identifier)
            .finish_non_exhaustive()
    }
}

/// The order to spawn a split's `lanes` in on the thread tagged `here`: the lane whose home
/// (in `homes`, the tag of the thread that fanned it out last) is `here` comes last.
fn spawn_order(lanes: usize, homes: &[AtomicU64], here: u64) -> Vec<Lane> {
    let mut order: Vec<Lane> = Lane::split(lanes).collect();
    let home = |l: &Lane| homes.get(l.index()).map(|h| h.load(Ordering::Relaxed));
    if let Some(at) = order.iter().position(|l| home(l) == Some(here)) {
        let last = order.remove(at);
        order.push(last);
    }
    order
}

/// A number for the calling thread, distinct from every other thread's (never 0).
fn thread_tag() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static TAG: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    TAG.with(|t| *t)
}

/// Inbox depth between the broker and the server's dispatch task.
const INBOX_CAPACITY: usize = 4096;

/// Envelopes the dispatch task takes from the inbox at once.
const INBOX_BURST: usize = 64;

/// Most messages fanned out as one run.
const MAX_RUN: usize = INBOX_BURST;

/// Room messages waiting to be fanned out as one run (see the dispatch task).
#[derive(Default)]
struct PendingRun {
    room: String,
    msgs: Vec<Arc<Outgoing>>,
}

impl Server {
    /// A builder with the spec's defaults.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }

    async fn start(
        options: ServerOptions,
        default_rooms: Vec<RoomName>,
        hooks: Hooks,
        encryption: EncryptionConfig,
        broker: Arc<dyn Broker>,
    ) -> Result<Self, BuildError> {
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let shared = Arc::new(Shared {
            server_id: uuid::Uuid::new_v4().to_string(),
            hub: Hub::new(options.limits.max_rooms_per_client),
            default_rooms,
            hooks,
            encryption,
            broker,
            shutting_down: AtomicBool::new(false),
            sessions: AtomicUsize::new(0),
            sessions_done: Notify::new(),
            pending_auth: Arc::new(tokio::sync::Semaphore::new(options.limits.max_pending_auth)),
            workers,
            lane_homes: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            tasks: Mutex::new(Vec::new()),
            options,
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Delivery>(INBOX_CAPACITY);
        let subscription = shared.broker.subscribe(tx).await?;
        shared.hub.set_subscription(subscription);

        // The weak references let the server be dropped without a shutdown call.
        let weak = Arc::downgrade(&shared);
        let inbox = tokio::spawn(async move {
            // Everything that arrived together is fanned out under one cork, so each receiver
            // gets the whole burst in one write; a burst wakes its writers at the latest every
            // `CORK_DELIVERIES` deliveries.
            //
            // Consecutive messages to the same room (no exclusions) are fanned out as one run:
            // each member's queue takes the run in one push.
            let mut burst = Vec::with_capacity(INBOX_BURST);
            let mut run = PendingRun::default();
            let mut cork = Cork::default();
            while rx.recv_many(&mut burst, INBOX_BURST).await > 0 {
                let Some(shared) = weak.upgrade() else { break };
                // A short burst: written to the receivers' sockets from here. A long one
                // (a publisher far ahead) wakes the writers instead, to batch across bursts
                // and to share the writing across the worker threads.
                cork.set_direct(burst.len() <= DIRECT_BURST);
                for delivery in burst.drain(..) {
                    shared.on_delivery(delivery, &mut run, &mut cork).await;
                    if cork.deliveries() >= CORK_DELIVERIES {
                        cork.release();
                    }
                }
                shared.flush_run(&mut run, &mut cork).await;
                cork.release();
            }
        });
        let weak = Arc::downgrade(&shared);
        let interval = shared.options.heartbeat_interval;
        let timeout_ms =
            u64::try_from(shared.options.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX);
        let sweep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(shared) = weak.upgrade() else { break };
                for client in shared.hub.stale(timeout_ms) {
                    tracing::debug!(client = %client.id, "heartbeat timeout");
                    client.outbox.close(CloseCode::HeartbeatTimeout);
                }
            }
        });
        if let Ok(mut tasks) = shared.tasks.lock() {
            tasks.push(inbox);
            tasks.push(sweep);
        }
        tracing::info!(identifier = %shared.options.identifier, server_id = %shared.server_id, "sealcast server started");
        Ok(Self { shared })
    }

    /// This instance's id (a UUID); envelopes it publishes carry it.
    pub fn id(&self) -> &str {
        &self.shared.server_id
    }

    /// What every client id of this instance starts with (`xxxxxxxx-xxxx-4xxx-`, random at
    /// start): the ids are version-4 UUIDs whose other 62 bits are random per client. Redis
    /// interest subscriptions receive all of this instance's client and own-id room channels
    /// through one pattern each under it.
    pub fn client_id_prefix(&self) -> &str {
        self.shared.hub.ids.prefix()
    }

    /// The options in force.
    pub fn options(&self) -> &ServerOptions {
        &self.shared.options
    }

    /// The WebSocket path.
    pub fn path(&self) -> &str {
        &self.shared.options.path
    }

    /// The broker this server publishes through.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.shared.broker
    }

    // ---- axum ----

    /// Serves `app` on `listener`, with the WebSocket endpoint at [`Server::path`] answered by
    /// the server itself: an opening handshake there is checked and answered on the accepted
    /// socket, and the session runs on it with no HTTP stack in between (one task per
    /// connection). Every other request, and every handshake it declines (a bad request, an
    /// unknown origin, a server shutting down), goes to `app` over hyper, so merge
    /// [`Server::router`] into `app` for those to get their usual answers. A custom upgrade
    /// handler belongs on another path. Accepted sockets have `TCP_NODELAY` (set on the listener,
    /// which the system copies to each accepted socket, or else on each): writes are batched
    /// already. Await the returned [`Serve`]; it runs until the listener fails, or
    /// until the signal given to [`Serve::with_graceful_shutdown`].
    ///
    /// The faster way in, and what `sealcast serve` uses: per connection it saves hyper's
    /// connection task, its buffers and the handover of the upgraded stream.
    ///
    /// ```no_run
    /// # async fn run(server: sealcast::Server) -> std::io::Result<()> {
    /// let app = axum::Router::new().merge(server.router());
    /// let listener = sealcast::server::bind("127.0.0.1:8080".parse().unwrap())?;
    /// server.serve(listener, app).await
    /// # }
    /// ```
    pub fn serve(&self, listener: tokio::net::TcpListener, app: Router) -> Serve {
        Serve::new(self.clone(), listener, app)
    }

    /// A router with the WebSocket endpoint mounted at [`Server::path`]. Merge it into your
    /// application's router.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route(&self.shared.options.path, get(ws_handler))
            .with_state(self.clone())
    }

    /// Upgrades one request: use it from your own handler when you need the request (headers,
    /// query) before accepting. `headers` are the request's (checked against
    /// `Limits::allowed_origins`). Assigns a fresh UUID client id.
    pub fn upgrade(&self, ws: Upgrade, headers: &HeaderMap) -> Response {
        if self.shared.shutting_down.load(Ordering::Acquire) {
            return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
        }
        if !self.origin_allowed(headers.get(header::ORIGIN).map(|o| o.as_bytes())) {
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
        let shared = self.shared.clone();
        ws.accept(self.socket_config(), move |socket| {
            session::run(shared, socket)
        })
    }

    /// Whether an upgrade with this `Origin` header is allowed (`Limits::allowed_origins`).
    fn origin_allowed(&self, origin: Option<&[u8]>) -> bool {
        // SECURITY: browsers always send Origin on WebSocket upgrades; refusing unknown ones
        // stops other sites from opening sockets with a visitor's cookies. Requests without
        // one (non-browser clients) are allowed.
        match (&self.shared.options.limits.allowed_origins, origin) {
            (Some(allowed), Some(origin)) => allowed
                .iter()
                .any(|a| a.as_bytes().eq_ignore_ascii_case(origin)),
            _ => true,
        }
    }

    /// Whether an upgrade that passed the protocol checks is taken: not while shutting down,
    /// and only from an allowed origin. What [`Server::upgrade`] refuses, with its status.
    pub(crate) fn admits(&self, origin: Option<&[u8]>) -> bool {
        !self.shared.shutting_down.load(Ordering::Acquire) && self.origin_allowed(origin)
    }

    /// The WebSocket settings of an accepted connection.
    pub(crate) fn socket_config(&self) -> SocketConfig {
        let t = &self.shared.options.transport;
        SocketConfig {
            max_payload: t.max_payload_length,
            read_chunk: t.read_buffer_size,
        }
    }

    // ---- delivery (local) ----

    fn outgoing(event: &str, data: &(impl Serialize + ?Sized)) -> Result<Arc<Outgoing>, SendError> {
        if event.is_empty() {
            return Err(SendError::EmptyEvent);
        }
        Ok(Outgoing::new(event, to_raw_value(data)?))
    }

    /// Sends to one authenticated client on this instance. Returns whether it was queued.
    pub fn send_to_client(
        &self,
        client_id: &str,
        event: &str,
        data: &(impl Serialize + ?Sized),
    ) -> Result<bool, SendError> {
        let msg = Self::outgoing(event, data)?;
        Ok(self
            .shared
            .hub
            .to_client(client_id, &msg, &mut Cork::default()))
    }

    /// Sends to every local session of a user. Returns how many were queued.
    pub fn send_to_user(
        &self,
        user_id: &str,
        event: &str,
        data: &(impl Serialize + ?Sized),
    ) -> Result<usize, SendError> {
        let msg = Self::outgoing(event, data)?;
        Ok(self
            .shared
            .hub
            .to_user(user_id, &msg, &[], &mut Cork::default()))
    }

    /// Sends to every local member of a room except `exclude`. The message is encoded once
    /// for all plaintext receivers. Returns how many were queued.
    pub fn send_to_room(
        &self,
        room: &str,
        event: &str,
        data: &(impl Serialize + ?Sized),
        exclude: &[&str],
    ) -> Result<usize, SendError> {
        let msg = Self::outgoing(event, data)?;
        Ok(self
            .shared
            .hub
            .to_room(room, &msg, exclude, &mut Cork::default()))
    }

    /// Sends to every authenticated client on this instance except `exclude`.
    pub fn broadcast(
        &self,
        event: &str,
        data: &(impl Serialize + ?Sized),
        exclude: &[&str],
    ) -> Result<usize, SendError> {
        let msg = Self::outgoing(event, data)?;
        Ok(self.shared.hub.to_all(&msg, exclude, &mut Cork::default()))
    }

    // ---- delivery (cross-instance) ----

    /// The spec's `send`: delivers locally and publishes for the other instances.
    ///
    /// | `destination` | local delivery | channel |
    /// |---|---|---|
    /// | `None` | broadcast | `ws:broadcast` |
    /// | a local client id | that client | `ws:client:{id}` |
    /// | a local room | the room | `ws:room:{room}` |
    /// | anything else | none | `ws:room:{destination}` |
    pub async fn send(
        &self,
        destination: Option<&str>,
        event: &str,
        data: &(impl Serialize + ?Sized),
    ) -> Result<(), SendError> {
        let msg = Self::outgoing(event, data)?;
        let hub = &self.shared.hub;
        let (kind, target) = match destination {
            None => {
                hub.to_all(&msg, &[], &mut Cork::default());
                (MessageType::Broadcast, None)
            }
            Some(id) if hub.is_client(id) => {
                hub.to_client(id, &msg, &mut Cork::default());
                (MessageType::Client, Some(id))
            }
            Some(room) => {
                hub.to_room(room, &msg, &[], &mut Cork::default());
                (MessageType::Room, Some(room))
            }
        };
        self.publish(kind, target, &msg, &[]).await
    }

    /// Sends to a room on every instance (local delivery plus publish), excluding client ids.
    pub async fn send_to_room_everywhere(
        &self,
        room: &str,
        event: &str,
        data: &(impl Serialize + ?Sized),
        exclude: &[&str],
    ) -> Result<(), SendError> {
        let msg = Self::outgoing(event, data)?;
        self.shared
            .hub
            .to_room(room, &msg, exclude, &mut Cork::default());
        self.publish(MessageType::Room, Some(room), &msg, exclude)
            .await
    }

    /// Sends to every session of a user on every instance.
    pub async fn send_to_user_everywhere(
        &self,
        user_id: &str,
        event: &str,
        data: &(impl Serialize + ?Sized),
    ) -> Result<(), SendError> {
        let msg = Self::outgoing(event, data)?;
        self.shared
            .hub
            .to_user(user_id, &msg, &[], &mut Cork::default());
        self.publish(MessageType::User, Some(user_id), &msg, &[])
            .await
    }

    /// Broadcasts on every instance, excluding client ids.
    pub async fn broadcast_everywhere(
        &self,
        event: &str,
        data: &(impl Serialize + ?Sized),
        exclude: &[&str],
    ) -> Result<(), SendError> {
        let msg = Self::outgoing(event, data)?;
        self.shared.hub.to_all(&msg, exclude, &mut Cork::default());
        self.publish(MessageType::Broadcast, None, &msg, exclude)
            .await
    }

    async fn publish(
        &self,
        kind: MessageType,
        target: Option<&str>,
        msg: &Outgoing,
        exclude: &[&str],
    ) -> Result<(), SendError> {
        let envelope = Envelope {
            server_id: self.shared.server_id.clone(),
            kind,
            target: target.map(str::to_owned),
            event: String::from(&*msg.event),
            data: Some(msg.data.clone()),
            exclude: (!exclude.is_empty())
                .then(|| exclude.iter().map(|s| (*s).to_owned()).collect()),
        };
        if let Err(e) = self.shared.broker.publish(Arc::new(envelope)).await {
            metrics::Counters::add(&self.shared.hub.counters.publish_failures, 1);
            return Err(e.into());
        }
        Ok(())
    }

    // ---- rooms ----

    /// Joins a local, authenticated client to a room. `Ok(false)` if it already was a member.
    pub fn join_room(&self, client_id: &str, room: &str) -> Result<bool, RoomError> {
        let room = RoomName::new(room)?;
        self.shared.hub.join(client_id, room)
    }

    /// Removes a local client from a room. `Ok(false)` if it was not a member; its own-id room
    /// cannot be left ([`RoomError::OwnRoom`]).
    pub fn leave_room(&self, client_id: &str, room: &str) -> Result<bool, RoomError> {
        self.shared.hub.leave(client_id, room)
    }

    /// Moves a client to the encrypted path through the outbound transformer (the spec's
    /// `enableClientEncryption`, for encryption negotiated after authentication). Irreversible.
    /// Returns false if the client is unknown, already encrypted, or no transformer is set.
    ///
    /// Send the handshake reply *before* calling this: replies queued earlier go out in plaintext.
    pub fn enable_client_encryption(&self, client_id: &str) -> bool {
        if self.shared.encryption.transformer.is_none() {
            return false;
        }
        self.install_sealer(client_id, crate::hub::Sealer::Transform)
    }

    /// Moves a client to the encrypted path with a v1 key derived by the application (for
    /// encryption negotiated after authentication, e.g. with [`crate::crypto::v1::server_handshake`]).
    /// Irreversible; returns false if the client is unknown or already encrypted.
    pub fn enable_client_encryption_v1(&self, client_id: &str, key: crate::crypto::V1Key) -> bool {
        self.install_sealer(client_id, crate::hub::Sealer::Frame(Box::new(key)))
    }

    fn install_sealer(&self, client_id: &str, sealer: crate::hub::Sealer) -> bool {
        let Some(client) = self.shared.hub.client(client_id) else {
            return false;
        };
        client.sealer.set(sealer).is_ok() && client.enable_encryption()
    }

    /// Closes one local client with the given code (the application's kick).
    pub fn close_client(&self, client_id: &str, code: CloseCode) -> bool {
        match self.shared.hub.client(client_id) {
            Some(client) => {
                client.outbox.close(code);
                true
            }
            None => false,
        }
    }

    // ---- queries ----

    /// Every local client (any state).
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.shared.hub.infos()
    }

    /// One local client.
    pub fn client(&self, client_id: &str) -> Option<ClientInfo> {
        self.shared.hub.info(client_id)
    }

    /// Local clients of a user.
    pub fn clients_by_user(&self, user_id: &str) -> Vec<ClientInfo> {
        self.shared.hub.infos_by_user(user_id)
    }

    /// Local members of a room.
    pub fn clients_by_room(&self, room: &str) -> Vec<ClientInfo> {
        self.shared.hub.infos_by_room(room)
    }

    /// Sizes of the local indexes.
    pub fn stats(&self) -> IndexStats {
        let (clients, users, rooms) = self.shared.hub.counts();
        IndexStats {
            clients,
            users,
            rooms,
        }
    }

    /// A snapshot of this instance's counters and connection states.
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::from_counters(&self.shared.hub.counters);
        let (connections, encrypted, backpressured) = self.shared.hub.census();
        m.connections = connections;
        m.encrypted_clients = encrypted;
        m.backpressured_clients = backpressured;
        m
    }

    // ---- lifecycle ----

    /// Graceful shutdown: refuses new upgrades, closes every client with 1001, runs the
    /// disconnect hooks, clears the indexes, stops the sweep and the broker.
    pub async fn shutdown(&self) {
        if self.shared.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let clients = self.shared.hub.drain();
        for client in &clients {
            client.outbox.close(CloseCode::GoingAway);
        }
        for client in &clients {
            self.shared.report_disconnect(client).await;
        }
        // Give the writers a moment to put the close frames on the wire.
        let wait = async {
            while self.shared.sessions.load(Ordering::Acquire) > 0 {
                let notified = self.shared.sessions_done.notified();
                if self.shared.sessions.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
        let tasks = self
            .shared
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            task.abort();
        }
        if let Some(subscription) = self.shared.hub.subscription() {
            subscription.close();
        }
        self.shared.broker.shutdown().await;
        tracing::info!(server_id = %self.shared.server_id, "sealcast server stopped");
    }
}

/// Listen backlog of [`bind`]: connection bursts past the OS default (128) lose SYNs, which
/// clients retry only after a second.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a TCP listener for the server with a [`LISTEN_BACKLOG`]-deep accept queue (the kernel
/// caps it at `net.core.somaxconn`). `tokio::net::TcpListener::bind` asks for 128, which a burst
/// of reconnecting clients overflows.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    bind_with_backlog(addr, LISTEN_BACKLOG)
}

/// [`bind`] with a chosen accept-queue depth.
pub fn bind_with_backlog(
    addr: std::net::SocketAddr,
    backlog: u32,
) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Sizes of a server's local indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    /// Tracked connections (any state).
    pub clients: usize,
    /// Users with at least one authenticated session.
    pub users: usize,
    /// Rooms with at least one member.
    pub rooms: usize,
}

async fn ws_handler(State(server): State<Server>, headers: HeaderMap, ws: Upgrade) -> Response {
    server.upgrade(ws, &headers)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::{
        Identity,
        broker::MemoryBroker,
        hub::{Client, LANE_RECEIVERS},
        session::Outbox,
    };

    /// Waits (at most ten seconds) for `done`.
    async fn until(mut done: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > Duration::from_secs(10) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// A split's lanes are spawned in order, but for the one last fanned out on this thread,
    /// spawned last (so it runs here again). Tags are distinct per thread.
    #[test]
    fn the_lane_last_fanned_out_here_is_spawned_last() {
        let here = thread_tag();
        let there = std::thread::spawn(thread_tag).join().unwrap();
        assert!(here != there && here != 0 && there != 0);
        assert_eq!(thread_tag(), here);
        let homes: Vec<AtomicU64> = [0, here, there].into_iter().map(AtomicU64::new).collect();
        let order = |lanes, tag| -> Vec<usize> {
            spawn_order(lanes, &homes, tag)
                .iter()
                .map(|l| l.index())
                .collect()
        };
        assert_eq!(order(3, here), [0, 2, 1]);
        assert_eq!(order(3, there), [0, 1, 2]);
        assert_eq!(order(2, there), [0, 1], "a home outside the split");
        assert_eq!(order(3, 99), [0, 1, 2], "no lane's home");
        assert_eq!(order(4, here), [0, 2, 3, 1], "more lanes than homes");
    }

    /// A message from the bus to a large room is fanned out in lanes, by tasks that the worker
    /// threads run side by side: while one member's queue is held (its lane's fan-out waits
    /// on it), every member of the other lane gets the message. Fanned out in one piece, the
    /// fan-out would wait at that member, the first it visits, and nobody would.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_rooms_fan_out_runs_in_lanes_on_the_worker_threads() {
        let broker = MemoryBroker::new();
        let build = || {
            Server::builder()
                .broker(broker.clone())
                .authenticate(|_| async { Ok(Some(Identity::anonymous())) })
                .build()
        };
        let (sender, server) = (build().await.unwrap(), build().await.unwrap());
        let hub = &server.shared.hub;
        let room = RoomName::new("big").unwrap();
        let members: Vec<Arc<Client>> = (0..2 * LANE_RECEIVERS)
            .map(|n| {
                let c = Arc::new(Client::new(
                    format!("c{n}").into(),
                    Outbox::new(1 << 20, false),
                    0,
                ));
                assert!(hub.insert(c.clone()));
                assert!(hub.authenticate(&c, Identity::anonymous(), std::slice::from_ref(&room)));
                c
            })
            .collect();
        assert_eq!(lanes_for(members.len(), server.shared.workers), 2);
        let first = hub.members_in("big", Lane::ALL).remove(0);
        let others: Vec<Arc<Client>> = Lane::split(2)
            .map(|lane| hub.members_in("big", lane))
            .find(|lane| !lane.iter().any(|c| Arc::ptr_eq(c, &first)))
            .unwrap();
        assert!(!others.is_empty());

        let held = first.outbox.hold();
        sender
            .send_to_room_everywhere("big", "tick", &1, &[])
            .await
            .unwrap();
        let other_lane_done = until(|| others.iter().all(|c| c.outbox.queued_bytes() > 0)).await;
        drop(held);
        assert!(other_lane_done, "the other lane waited for the held member");
        // Released: every member has the message once.
        let once = Outgoing::new("tick", serde_json::value::to_raw_value(&1).unwrap());
        assert!(until(|| members.iter().all(|c| c.outbox.queued_bytes() > 0)).await);
        assert!(
            members
                .iter()
                .all(|c| c.outbox.queued_bytes() == once.wire().len())
        );
        sender.shutdown().await;
        server.shutdown().await;
    }
}
