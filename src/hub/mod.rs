//! The hub owns the indexes (clients, users, rooms) and the fan-out.
//!
//! One `RwLock` guards all three indexes so they never disagree; it is held only for map
//! operations and for pushing into outboxes (which never await), never across an `.await`.
//! Fan-out encodes a message once (`Outgoing`): plaintext receivers share that frame, and
//! encrypted receivers get the message queued for their writer to seal, so sealing is spread
//! over the connections' own tasks and each client's order is kept.

mod client;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Instant,
};

use serde_json::value::RawValue;

pub(crate) use client::Client;
pub use client::{ClientId, ClientInfo, Identity};

use crate::{
    broker::Subscription,
    protocol::{Channel, RoomName, encode_frame},
    server::metrics::{ConnectionCounts, Counters},
    session::{ClientState, Push, Queued, wire},
};

/// Seals one already-encoded frame for one client (the built-in v1 key implements it; the v2
/// sealer needs `&mut` for its counter and is owned by the writer instead, see [`Sealer::V2`]).
pub(crate) trait SealFrame: Send + Sync {
    /// Returns the complete outbound text (an `encrypted` event), or `None` if sealing failed.
    fn seal_frame(&self, frame: &[u8]) -> Option<String>;
}

/// How an encrypted client's messages are sealed.
pub(crate) enum Sealer {
    /// Synchronous sealing of the encoded frame (the built-in v1 profile).
    Frame(Box<dyn SealFrame>),
    /// The application's async outbound transformer (the spec's custom encryption).
    Transform,
    /// Encryption v2: the connection's writer owns the `crypto::v2::Sealer` (it holds the
    /// record counter, so it is never shared); the session hands it over through the outbox
    /// (`Queued::Install`) before marking the client encrypted.
    V2,
}

/// A message encoded once for every receiver.
pub(crate) struct Outgoing {
    pub(crate) event: Box<str>,
    pub(crate) data: Box<RawValue>,
    /// The complete WebSocket text frame of `{"event":..,"data":..}`: what every plaintext
    /// receiver gets, byte for byte.
    wire: Box<[u8]>,
    /// Where the JSON text starts in `wire`, after the frame header.
    json_at: usize,
}

impl Outgoing {
    pub(crate) fn new(event: &str, data: Box<RawValue>) -> Arc<Self> {
        let json = encode_frame(event, &data);
        let wire = wire::text_frame(&json);
        Arc::new(Self {
            event: event.into(),
            data,
            json_at: wire.len() - json.len(),
            wire,
        })
    }

    /// The complete frame for plaintext receivers.
    pub(crate) fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// `{"event":..,"data":..}`: what sealers seal.
    pub(crate) fn json(&self) -> &[u8] {
        &self.wire[self.json_at..]
    }

    /// [`Outgoing::json`] as text (it is built from a `String`, so always UTF-8).
    pub(crate) fn text(&self) -> &str {
        std::str::from_utf8(self.json()).unwrap_or_default()
    }
}

/// The wake-ups a fan-out owes: every receiver whose queue was empty is woken once, when the
/// cork is released (or dropped), not per message. A batch of messages fanned out under one
/// cork reaches each socket in one write, and no writer drains a queue the fan-out is still
/// filling.
#[derive(Default)]
pub(crate) struct Cork {
    owed: Vec<Arc<Client>>,
    deliveries: usize,
}

impl Cork {
    /// Wakes every writer owed a wake-up.
    pub(crate) fn release(&mut self) {
        for client in self.owed.drain(..) {
            client.outbox.wake();
        }
        self.deliveries = 0;
    }

    /// Deliveries queued since the last release.
    pub(crate) fn deliveries(&self) -> usize {
        self.deliveries
    }
}

impl Drop for Cork {
    fn drop(&mut self) {
        self.release();
    }
}

/// Why a programmatic room operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// No such client on this instance.
    #[error("no such client")]
    UnknownClient,
    /// The client is not authenticated yet.
    #[error("client is not authenticated")]
    NotAuthenticated,
    /// The name breaks the room-name rules.
    #[error("invalid room name: {0}")]
    InvalidName(#[from] crate::protocol::RoomNameError),
    /// The client is already in as many rooms as the limit allows.
    #[error("client is in too many rooms")]
    TooManyRooms,
    /// A client cannot leave its own-id room: direct messages from other instances travel
    /// through it.
    #[error("a client cannot leave its own-id room")]
    OwnRoom,
}

struct Entry {
    client: Arc<Client>,
    rooms: HashSet<RoomName>,
}

#[derive(Default)]
struct Index {
    clients: HashMap<ClientId, Entry>,
    users: HashMap<Box<str>, HashMap<ClientId, Arc<Client>>>,
    rooms: HashMap<RoomName, HashMap<ClientId, Arc<Client>>>,
}

/// Milliseconds since the server started, for cheap atomic activity stamps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The indexes and the fan-out.
pub(crate) struct Hub {
    index: RwLock<Index>,
    subscription: OnceLock<Box<dyn Subscription>>,
    pub(crate) clock: Clock,
    max_rooms_per_client: usize,
    pub(crate) counters: Arc<Counters>,
}

impl Hub {
    pub(crate) fn new(max_rooms_per_client: usize) -> Self {
        Self {
            index: RwLock::new(Index::default()),
            subscription: OnceLock::new(),
            clock: Clock(Instant::now()),
            max_rooms_per_client,
            counters: Arc::default(),
        }
    }

    pub(crate) fn set_subscription(&self, subscription: Box<dyn Subscription>) {
        let _ = self.subscription.set(subscription);
    }

    pub(crate) fn subscription(&self) -> Option<&dyn Subscription> {
        self.subscription.get().map(|s| &**s)
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        // A poisoned lock means a panic elsewhere mid-update; the maps themselves are still
        // structurally valid, so keep serving.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn watch(&self, channel: Channel) {
        if let Some(s) = self.subscription() {
            s.watch(&channel);
        }
    }

    fn unwatch(&self, channel: Channel) {
        if let Some(s) = self.subscription() {
            s.unwatch(&channel);
        }
    }

    /// Tracks a new, unauthorized connection.
    pub(crate) fn insert(&self, client: Arc<Client>) {
        let mut index = self.write();
        index.clients.insert(
            client.id.clone(),
            Entry {
                client,
                rooms: HashSet::new(),
            },
        );
    }

    /// Marks a client authenticated: indexes its user, joins its own-id room and `rooms`.
    /// Returns false if the client is gone (it disconnected while authenticating).
    pub(crate) fn authenticate(
        &self,
        client: &Arc<Client>,
        identity: Identity,
        rooms: &[RoomName],
    ) -> bool {
        let mut index = self.write();
        if !index.clients.contains_key(&client.id) {
            return false;
        }
        let user_id = identity.user_id.clone();
        let _ = client.identity.set(identity);
        client.set_state(ClientState::Authenticated);
        if let Some(user) = user_id {
            let sessions = index.users.entry(user.as_str().into()).or_default();
            if sessions.is_empty() {
                self.watch(Channel::User(user));
            }
            sessions.insert(client.id.clone(), client.clone());
        }
        self.watch(Channel::Client(client.id.to_string()));
        // The own-id room first (client ids are UUIDs, so always a valid name), then the defaults.
        let own = RoomName::new(&client.id).into_iter();
        for room in own.chain(rooms.iter().cloned()) {
            if let Err(e) = self.join_locked(&mut index, &client.id, room) {
                tracing::warn!(client = %client.id, error = %e, "default room not joined");
            }
        }
        true
    }

    fn join_locked(
        &self,
        index: &mut Index,
        id: &ClientId,
        room: RoomName,
    ) -> Result<bool, RoomError> {
        let Some(entry) = index.clients.get_mut(id) else {
            return Err(RoomError::UnknownClient);
        };
        if entry.rooms.contains(&room) {
            return Ok(false);
        }
        if entry.rooms.len() >= self.max_rooms_per_client {
            return Err(RoomError::TooManyRooms);
        }
        entry.rooms.insert(room.clone());
        let client = entry.client.clone();
        let members = index.rooms.entry(room.clone()).or_default();
        if members.is_empty() {
            self.watch(Channel::Room(room.as_str().to_owned()));
        }
        members.insert(id.clone(), client);
        Ok(true)
    }

    fn leave_locked(&self, index: &mut Index, id: &str, room: &str) -> bool {
        let Some(entry) = index.clients.get_mut(id) else {
            return false;
        };
        if !entry.rooms.remove(room) {
            return false;
        }
        if let Some(members) = index.rooms.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                index.rooms.remove(room);
                self.unwatch(Channel::Room(room.to_owned()));
            }
        }
        true
    }

    /// Joins an authenticated client to a room. `Ok(false)` if it was already a member.
    pub(crate) fn join(&self, id: &str, room: RoomName) -> Result<bool, RoomError> {
        let mut index = self.write();
        let Some(entry) = index.clients.get(id) else {
            return Err(RoomError::UnknownClient);
        };
        if !entry.client.is_authenticated() {
            return Err(RoomError::NotAuthenticated);
        }
        let id = entry.client.id.clone();
        self.join_locked(&mut index, &id, room)
    }

    /// Removes a client from a room it is in. `Ok(false)` if it was not a member.
    pub(crate) fn leave(&self, id: &str, room: &str) -> Result<bool, RoomError> {
        if room == id {
            return Err(RoomError::OwnRoom);
        }
        let mut index = self.write();
        if !index.clients.contains_key(id) {
            return Err(RoomError::UnknownClient);
        }
        Ok(self.leave_locked(&mut index, id, room))
    }

    /// Whether the client is in `room`.
    pub(crate) fn is_member(&self, id: &str, room: &str) -> bool {
        self.read()
            .clients
            .get(id)
            .is_some_and(|e| e.rooms.contains(room))
    }

    /// Forgets a client everywhere. Returns it if it was tracked.
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Client>> {
        let mut index = self.write();
        let entry = index.clients.remove(id)?;
        for room in &entry.rooms {
            if let Some(members) = index.rooms.get_mut(room) {
                members.remove(id);
                if members.is_empty() {
                    index.rooms.remove(room);
                    self.unwatch(Channel::Room(room.as_str().to_owned()));
                }
            }
        }
        if let Some(user) = entry.client.user_id()
            && let Some(sessions) = index.users.get_mut(user)
        {
            sessions.remove(id);
            if sessions.is_empty() {
                index.users.remove(user);
                self.unwatch(Channel::User(user.to_owned()));
            }
        }
        if entry.client.is_authenticated() || entry.client.identity.get().is_some() {
            self.unwatch(Channel::Client(id.to_owned()));
        }
        Some(entry.client)
    }

    /// Removes every client (shutdown). Returns them.
    pub(crate) fn drain(&self) -> Vec<Arc<Client>> {
        let ids: Vec<ClientId> = self.read().clients.keys().cloned().collect();
        ids.iter().filter_map(|id| self.remove(id)).collect()
    }

    // ---- delivery ----

    /// Queues `msg` for one authenticated client.
    pub(crate) fn to_client(&self, id: &str, msg: &Arc<Outgoing>, cork: &mut Cork) -> bool {
        let index = self.read();
        let mut tally = Tally::default();
        if let Some(e) = index
            .clients
            .get(id)
            .filter(|e| e.client.is_authenticated())
        {
            tally.add(deliver(&e.client, msg, cork));
        }
        self.count(tally, cork) == 1
    }

    /// Queues `msg` for every session of a user. Returns how many took it.
    pub(crate) fn to_user(
        &self,
        user: &str,
        msg: &Arc<Outgoing>,
        exclude: &[&str],
        cork: &mut Cork,
    ) -> usize {
        let index = self.read();
        let Some(sessions) = index.users.get(user) else {
            return 0;
        };
        self.count(fan_out(sessions.values(), msg, exclude, cork), cork)
    }

    /// Queues `msg` for every member of a room, minus `exclude`.
    pub(crate) fn to_room(
        &self,
        room: &str,
        msg: &Arc<Outgoing>,
        exclude: &[&str],
        cork: &mut Cork,
    ) -> usize {
        let index = self.read();
        let Some(members) = index.rooms.get(room) else {
            return 0;
        };
        self.count(fan_out(members.values(), msg, exclude, cork), cork)
    }

    /// Queues `msg` for every authenticated client, minus `exclude`.
    pub(crate) fn to_all(&self, msg: &Arc<Outgoing>, exclude: &[&str], cork: &mut Cork) -> usize {
        let index = self.read();
        let clients = index.clients.values().map(|e| &e.client);
        self.count(fan_out(clients, msg, exclude, cork), cork)
    }

    /// Records a fan-out's outcome; returns how many receivers took the message.
    fn count(&self, tally: Tally, cork: &mut Cork) -> usize {
        cork.deliveries += tally.queued;
        Counters::add(&self.counters.deliveries, tally.queued as u64);
        if tally.dropped > 0 {
            Counters::add(&self.counters.dropped, tally.dropped as u64);
        }
        tally.queued
    }

    /// Sends a message to a client whatever its state (system frames to clients
    /// mid-handshake): sealed if the client is encrypted.
    pub(crate) fn push_direct(client: &Arc<Client>, msg: Arc<Outgoing>) -> bool {
        let mut cork = Cork::default();
        matches!(deliver(client, &msg, &mut cork), Push::Queued | Push::First)
    }

    // ---- queries ----

    pub(crate) fn is_client(&self, id: &str) -> bool {
        self.read().clients.contains_key(id)
    }

    pub(crate) fn client(&self, id: &str) -> Option<Arc<Client>> {
        self.read().clients.get(id).map(|e| e.client.clone())
    }

    pub(crate) fn info(&self, id: &str) -> Option<ClientInfo> {
        let now = self.clock.now_ms();
        self.read().clients.get(id).map(|e| info_of(e, now))
    }

    pub(crate) fn infos(&self) -> Vec<ClientInfo> {
        let now = self.clock.now_ms();
        self.read()
            .clients
            .values()
            .map(|e| info_of(e, now))
            .collect()
    }

    pub(crate) fn infos_by_user(&self, user: &str) -> Vec<ClientInfo> {
        let index = self.read();
        Self::infos_of(&index, index.users.get(user), self.clock.now_ms())
    }

    pub(crate) fn infos_by_room(&self, room: &str) -> Vec<ClientInfo> {
        let index = self.read();
        Self::infos_of(&index, index.rooms.get(room), self.clock.now_ms())
    }

    fn infos_of(
        index: &Index,
        members: Option<&HashMap<ClientId, Arc<Client>>>,
        now_ms: u64,
    ) -> Vec<ClientInfo> {
        members
            .into_iter()
            .flat_map(|m| m.keys())
            .filter_map(|id| index.clients.get(id))
            .map(|e| info_of(e, now_ms))
            .collect()
    }

    /// Sizes of the three indexes (clients, users, rooms).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let index = self.read();
        (index.clients.len(), index.users.len(), index.rooms.len())
    }

    /// Live connections by state, plus encrypted and backpressured counts.
    pub(crate) fn census(&self) -> (ConnectionCounts, u64, u64) {
        let mut counts = ConnectionCounts::default();
        let (mut encrypted, mut backpressured) = (0, 0);
        for e in self.read().clients.values() {
            match e.client.state() {
                ClientState::Unauthorized => counts.unauthorized += 1,
                ClientState::Authenticating => counts.authenticating += 1,
                ClientState::Authenticated => counts.authenticated += 1,
                ClientState::Disconnected => {}
            }
            encrypted += u64::from(e.client.is_encrypted());
            backpressured += u64::from(e.client.outbox.is_backpressured());
        }
        (counts, encrypted, backpressured)
    }

    /// Authenticated clients whose last frame is older than `timeout_ms`.
    pub(crate) fn stale(&self, timeout_ms: u64) -> Vec<Arc<Client>> {
        let now = self.clock.now_ms();
        self.read()
            .clients
            .values()
            .filter(|e| {
                e.client.is_authenticated()
                    && now.saturating_sub(e.client.last_activity_ms()) > timeout_ms
            })
            .map(|e| e.client.clone())
            .collect()
    }
}

fn info_of(entry: &Entry, now_ms: u64) -> ClientInfo {
    let mut rooms: Vec<RoomName> = entry.rooms.iter().cloned().collect();
    rooms.sort();
    ClientInfo::of(&entry.client, &rooms, now_ms)
}

/// Queued and dropped receivers of one fan-out.
#[derive(Default)]
struct Tally {
    queued: usize,
    dropped: usize,
}

impl Tally {
    fn add(&mut self, push: Push) {
        match push {
            Push::Queued | Push::First => self.queued += 1,
            Push::Dropped => self.dropped += 1,
            Push::Closed => {}
        }
    }
}

/// Queues `msg` for one client: the shared frame for plaintext receivers, the message itself
/// for encrypted ones (their writer seals it).
fn deliver(client: &Arc<Client>, msg: &Arc<Outgoing>, cork: &mut Cork) -> Push {
    let item = if client.is_encrypted() {
        Queued::Seal(msg.clone())
    } else {
        Queued::Frame(msg.clone())
    };
    let push = client.outbox.push_quiet(item);
    if push == Push::First {
        cork.owed.push(client.clone());
    }
    push
}

fn fan_out<'a>(
    clients: impl Iterator<Item = &'a Arc<Client>>,
    msg: &Arc<Outgoing>,
    exclude: &[&str],
    cork: &mut Cork,
) -> Tally {
    let clients = clients.filter(|c| c.is_authenticated());
    let mut tally = Tally::default();
    if exclude.is_empty() {
        for c in clients {
            tally.add(deliver(c, msg, cork));
        }
    } else if exclude.len() <= 8 {
        for c in clients.filter(|c| !exclude.contains(&&*c.id)) {
            tally.add(deliver(c, msg, cork));
        }
    } else {
        let skip: HashSet<&str> = exclude.iter().copied().collect();
        for c in clients.filter(|c| !skip.contains(&*c.id)) {
            tally.add(deliver(c, msg, cork));
        }
    }
    tally
}
