//! The hub owns the indexes (clients, users, rooms) and the fan-out.
//!
//! One `RwLock` guards all three indexes so they never disagree; it is held only for map
//! operations and for pushing into outboxes (which never await), never across an `.await`.
//! Fan-out encodes a message once (`Outgoing`): plaintext receivers share that frame, and
//! encrypted receivers get the message queued for their writer to seal, so sealing is spread
//! over the connections' own tasks and each client's order is kept. A large room's fan-out
//! can be split into lanes, disjoint shares of its members that worker threads fan out
//! side by side, each under the read lock.

mod by_id;
mod client;

use std::{
    collections::{HashMap, HashSet},
    hash::RandomState,
    sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Instant,
};

use serde_json::value::RawValue;
use smallvec::SmallVec;

use by_id::{HasId, IdTable};
pub(crate) use client::{Client, ClientIds};
pub use client::{ClientId, ClientInfo, Identity};

use crate::{
    broker::Subscription,
    protocol::{Channel, RoomName, encode_frame},
    server::metrics::{ConnectionCounts, Counters},
    session::{ClientState, Push, Queued, sealed_cost, wire},
};

/// Seals one already-encoded frame for one client (the built-in v1 key implements it; the v2
/// sealer needs `&mut` for its counter and is owned by the writer instead, see [`Sealer::V2`]).
pub(crate) trait SealFrame: Send + Sync {
    /// Appends the complete WebSocket frame of the sealed message (an `encrypted` event) to
    /// `out`; false, with `out` as it was, if sealing failed.
    fn seal_wire(&self, frame: &[u8], out: &mut Vec<u8>) -> bool;
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
    /// The complete WebSocket text frame of `{"event":..,"data":..}`, what every plaintext
    /// receiver gets byte for byte, followed by the spaces of [`Outgoing::json_padded`].
    wire: Box<[u8]>,
    /// Where the JSON text starts in `wire`, after the frame header.
    json_at: usize,
    /// Where the frame ends in `wire`, before the spaces.
    frame_end: usize,
}

/// AES-GCM's block length, which [`Outgoing::json_padded`] rounds up to.
const AES_BLOCK: usize = 16;

impl Outgoing {
    pub(crate) fn new(event: &str, data: Box<RawValue>) -> Arc<Self> {
        let json = encode_frame(event, &data);
        let pad = json.len().next_multiple_of(AES_BLOCK) - json.len();
        let wire = wire::text_frame_padded(&json, pad);
        let frame_end = wire.len() - pad;
        Arc::new(Self {
            event: event.into(),
            data,
            json_at: frame_end - json.len(),
            frame_end,
            wire,
        })
    }

    /// The complete frame for plaintext receivers.
    pub(crate) fn wire(&self) -> &[u8] {
        &self.wire[..self.frame_end]
    }

    /// `{"event":..,"data":..}`: what the v2 sealer seals.
    pub(crate) fn json(&self) -> &[u8] {
        &self.wire[self.json_at..self.frame_end]
    }

    /// [`Outgoing::json`] followed by spaces up to a whole number of AES blocks: what the v1
    /// sealer seals. The spaces are insignificant JSON whitespace, so a v1 client (the spec's
    /// or ours) parses the same message. They save work per receiver: AES-GCM encrypts and
    /// hashes whole 16-byte blocks together, and a partial last block costs AWS-LC one more
    /// single-block AES call and GHASH multiply: ~30 of ~270 ns for a ~110-byte message on a
    /// CPU without vector AES (`seal_v1/into` against `seal_v1/into_padded` in the
    /// micro-benchmarks). The padding is built once per message, in the frame's allocation,
    /// and the ciphertext no longer gives the message's exact length.
    pub(crate) fn json_padded(&self) -> &[u8] {
        &self.wire[self.json_at..]
    }

    /// [`Outgoing::json`] as text (it is built from a `String`, so always UTF-8).
    pub(crate) fn text(&self) -> &str {
        std::str::from_utf8(self.json()).unwrap_or_default()
    }
}

/// Consecutive messages to one room, fanned out together: a plaintext member queues the
/// whole run as one item ([`Queued::Run`]), so the queue's lock and the shared reference are
/// taken once per member per run instead of once per message.
pub(crate) struct Run {
    msgs: Box<[Arc<Outgoing>]>,
    /// The frames one after another, as every plaintext member receives them: joined once
    /// per run, so a member's write is one `send` of shared bytes, not a copy per member.
    wire: Box<[u8]>,
    /// What the run accounts for in an encrypted client's queue.
    sealed_bytes: usize,
}

impl Run {
    pub(crate) fn new(msgs: Vec<Arc<Outgoing>>) -> Arc<Self> {
        let mut wire = Vec::with_capacity(msgs.iter().map(|m| m.wire().len()).sum());
        for m in &msgs {
            wire.extend_from_slice(m.wire());
        }
        let sealed_bytes = msgs.iter().map(|m| sealed_cost(m)).sum();
        Arc::new(Self {
            msgs: msgs.into_boxed_slice(),
            wire: wire.into_boxed_slice(),
            sealed_bytes,
        })
    }

    pub(crate) fn sealed_bytes(&self) -> usize {
        self.sealed_bytes
    }

    pub(crate) fn msgs(&self) -> &[Arc<Outgoing>] {
        &self.msgs
    }

    /// The frames' total length.
    pub(crate) fn bytes(&self) -> usize {
        self.wire.len()
    }

    /// Every frame of the run, in order, as a plaintext member receives them.
    pub(crate) fn wire(&self) -> &[u8] {
        &self.wire
    }
}

/// What one fan-out to a room delivers: a message, or a run of consecutive ones.
#[derive(Clone)]
pub(crate) enum Fanned {
    One(Arc<Outgoing>),
    Run(Arc<Run>),
}

/// One of `of` disjoint shares of a room's members, by the hash of their ids: a large room's
/// fan-out is split into lanes that worker threads fan out side by side. Every room's member
/// table hashes with the hub's one hasher ([`Index::member_hasher`]), so a client falls in the
/// same lane of every room for the hub's lifetime and no split can reach it twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lane {
    index: usize,
    of: usize,
}

impl Lane {
    /// Every member: the fan-out in one piece.
    pub(crate) const ALL: Lane = Lane { index: 0, of: 1 };

    /// The `of` lanes of a split.
    pub(crate) fn split(of: usize) -> impl Iterator<Item = Lane> {
        let of = of.max(1);
        (0..of).map(move |index| Lane { index, of })
    }

    /// Which of the split's lanes this is (from 0).
    pub(crate) fn index(self) -> usize {
        self.index
    }

    /// Whether an id of hash `hash` falls in this lane (a multiply-shift: every lane takes an
    /// equal share of the hashes).
    fn holds(self, hash: u64) -> bool {
        self.of == 1 || ((u128::from(hash) * self.of as u128) >> 64) as usize == self.index
    }
}

/// Receivers per lane below which a room's fan-out is not split: a split costs a task per
/// lane and a wake of another worker, a few microseconds; 128 `send`s take a few hundred.
pub(crate) const LANE_RECEIVERS: usize = 128;

/// The lanes a direct fan-out to `members` receivers splits into, with `workers` worker
/// threads: one per worker, each with at least [`LANE_RECEIVERS`] receivers.
pub(crate) fn lanes_for(members: usize, workers: usize) -> usize {
    (members / LANE_RECEIVERS).clamp(1, workers.max(1))
}

/// Deliveries a cork queues before it wakes the writers it owes, so a burst to a large room
/// does not hold back the first receivers for long (about a millisecond of fan-out).
pub(crate) const CORK_DELIVERIES: usize = 16 * 1024;

/// A burst under load owed to at most this many receivers is written to their sockets by the
/// fan-out (a few dozen `send`s take well under a millisecond); to more, their writers are
/// woken, so the sends are shared by the worker threads. Writing a 1,000-member room's bursts
/// from the fan-out cost a fifth more CPU per delivery and a quarter of the deliveries/s.
pub(crate) const DIRECT_RECEIVERS: usize = 64;

/// A burst of at most this many messages from the inbox is written to each parked receiver's
/// socket as it is fanned out (a room's consecutive messages as one run, in one `send`),
/// whatever the room's size: under a steady rate, messages come alone or by two to four while
/// the previous one is fanned out, and waking a task per receiver for them cost about a
/// tenth more CPU per delivery than the `send`s themselves saved by spreading over threads.
/// A longer burst means a publisher far ahead of the fan-out (the windowed benchmarks see
/// 17–64): its writers are woken as [`Cork::release`] says, and batch across bursts.
pub(crate) const DIRECT_BURST: usize = 8;

/// The wake-ups a fan-out owes: every receiver whose queue was empty is woken once, when the
/// cork is released (or dropped), not per message, or has its queue written by the fan-out
/// itself (a short burst, or a burst to a few receivers). A batch of messages fanned
/// out under one cork reaches each socket in one write, and no writer drains a queue the
/// fan-out is still filling.
#[derive(Default)]
pub(crate) struct Cork {
    owed: Vec<Arc<Client>>,
    deliveries: usize,
    /// The cork holds a short burst ([`DIRECT_BURST`]): each receiver whose writer is parked
    /// gets each message, or each run, written to its socket as it is fanned out
    /// ([`Outbox::write_or_push`], [`Outbox::write_or_push_run`]), not queued and woken.
    ///
    /// [`Outbox::write_or_push`]: crate::session::Outbox::write_or_push
    /// [`Outbox::write_or_push_run`]: crate::session::Outbox::write_or_push_run
    direct: bool,
}

impl Cork {
    /// A cork whose fan-out writes to parked writers' sockets as it goes (see
    /// [`Cork::set_direct`]).
    pub(crate) fn direct() -> Self {
        let mut cork = Self::default();
        cork.direct = true;
        cork
    }

    /// Whether what is fanned out next is written to parked writers' sockets as it goes.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Sets whether what is fanned out next is written to parked writers' sockets as it goes.
    pub(crate) fn set_direct(&mut self, direct: bool) {
        self.direct = direct;
    }

    /// Settles the wake-ups owed: under a direct cork ([`DIRECT_BURST`]), or when at most
    /// [`DIRECT_RECEIVERS`] receivers are owed, what each was given is written straight to its
    /// socket where its writer is parked
    /// ([`Outbox::write_direct`](crate::session::Outbox::write_direct)), and the rest are
    /// woken; otherwise every writer is woken, drains what accumulates by the time it runs,
    /// and the writing is shared across the worker threads.
    pub(crate) fn release(&mut self) {
        self.settle(self.direct || self.owed.len() <= DIRECT_RECEIVERS);
    }

    fn settle(&mut self, direct: bool) {
        for client in self.owed.drain(..) {
            if !(direct && client.outbox.write_direct()) {
                client.outbox.wake();
            }
        }
        self.deliveries = 0;
    }

    /// Deliveries queued since the last release.
    pub(crate) fn deliveries(&self) -> usize {
        self.deliveries
    }
}

impl Drop for Cork {
    /// A cork dropped is an API call's: released as a burst is (an application's thread that
    /// sends to a large room wakes the writers rather than making every `send` itself).
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

/// A client in the index, with the rooms it joined.
struct Entry {
    client: Arc<Client>,
    /// The rooms joined besides the own-id room: a short list (at most
    /// `max_rooms_per_client`). Three inline: the two default rooms and one more take no
    /// allocation, and cost less memory than the list they would otherwise grow to.
    rooms: SmallVec<[RoomName; 3]>,
    /// Whether the client is in its own-id room (from authentication on). That room is not in
    /// `Index::rooms`: its one member is the client of the same id, found in `Index::clients`.
    own_room: bool,
}

impl HasId for Entry {
    fn id(&self) -> &str {
        &self.client.id
    }
}

impl Entry {
    fn room_count(&self) -> usize {
        self.rooms.len() + usize::from(self.own_room)
    }
}

/// A user's sessions on this instance (usually one, kept inline).
struct Sessions {
    user: Box<str>,
    clients: SmallVec<[Arc<Client>; 1]>,
}

impl HasId for Sessions {
    fn id(&self) -> &str {
        &self.user
    }
}

/// The hasher of the tables keyed by client id.
///
/// SECURITY: client ids are drawn at random by this server ([`ClientIds`]), so no peer chooses
/// the keys of these tables and a fast hash is safe; the tables keyed by names peers choose
/// (rooms, users) keep std's SipHash with its random keys.
pub(super) type ById = foldhash::fast::RandomState;

struct Index {
    clients: IdTable<Entry>,
    /// Each user's sessions on this instance. User ids come from the application and may be
    /// chosen by peers: hashed with std's SipHash and its random keys.
    users: IdTable<Sessions, RandomState>,
    /// Rooms with members, own-id rooms aside (see [`Entry::own_room`]).
    rooms: HashMap<RoomName, IdTable<Arc<Client>>>,
    /// The hasher of every room's member table (clones of one): a client id hashes alike in
    /// all of them, so its [`Lane`] never changes.
    member_hasher: ById,
    /// Clients in their own-id room.
    own_rooms: usize,
    /// The hub's id source, to tell names that cannot be own-id rooms without a lookup.
    ids: ClientIds,
}

impl Index {
    /// Every member of `room`: those in `rooms` and, if `room` is a client's own-id room, that
    /// client.
    fn members<'a>(&'a self, room: &str) -> impl Iterator<Item = &'a Arc<Client>> {
        let joined = self.rooms.get(room).into_iter().flat_map(IdTable::iter);
        joined.chain(self.own_room(room))
    }

    /// The members of `room` in `lane`. An own-id room's one member is in the first lane.
    fn members_in<'a>(&'a self, room: &str, lane: Lane) -> impl Iterator<Item = &'a Arc<Client>> {
        let joined = self.rooms.get(room).into_iter();
        let joined = joined.flat_map(move |members| members.iter_lane(lane));
        joined.chain(self.own_room(room).filter(|_| lane.index == 0))
    }

    /// The authenticated client whose own-id room is `room`, if any.
    fn own_room(&self, room: &str) -> Option<&Arc<Client>> {
        if !self.ids.may_have_issued(room) {
            return None;
        }
        self.clients
            .get(room)
            .filter(|e| e.own_room)
            .map(|e| &e.client)
    }
}

/// Milliseconds since the server started, for cheap atomic activity stamps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// [`Clock::now_ms`] for an instant the caller has read already.
    pub(crate) fn ms_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.0).as_millis()).unwrap_or(u64::MAX)
    }
}

/// The broker's subscription, and whether it receives this instance's own-id channels itself.
struct Watching {
    subscription: Box<dyn Subscription>,
    /// [`Subscription::watch_own_ids`] took the id prefix: a client's own-id room and client
    /// channel are not watched one by one.
    own_ids: bool,
}

/// The indexes and the fan-out.
pub(crate) struct Hub {
    index: RwLock<Index>,
    watching: OnceLock<Watching>,
    /// Where client ids come from (one prefix per instance).
    pub(crate) ids: ClientIds,
    pub(crate) clock: Clock,
    max_rooms_per_client: usize,
    pub(crate) counters: Arc<Counters>,
}

impl Hub {
    pub(crate) fn new(max_rooms_per_client: usize) -> Self {
        let ids = ClientIds::new();
        Self {
            index: RwLock::new(Index {
                clients: IdTable::default(),
                users: IdTable::default(),
                rooms: HashMap::new(),
                member_hasher: ById::default(),
                own_rooms: 0,
                ids: ids.clone(),
            }),
            watching: OnceLock::new(),
            ids,
            clock: Clock(Instant::now()),
            max_rooms_per_client,
            counters: Arc::default(),
        }
    }

    pub(crate) fn set_subscription(&self, subscription: Box<dyn Subscription>) {
        let own_ids = subscription.watch_own_ids(self.ids.prefix());
        let _ = self.watching.set(Watching {
            subscription,
            own_ids,
        });
    }

    pub(crate) fn subscription(&self) -> Option<&dyn Subscription> {
        self.watching.get().map(|w| &*w.subscription)
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

    /// Whether a client's own-id room and client channel need watching one by one: not when
    /// the subscription receives every channel of this instance's ids itself.
    fn watches_own_ids_one_by_one(&self) -> bool {
        self.watching.get().is_some_and(|w| !w.own_ids)
    }

    /// Tracks a new, unauthorized connection. False, and nothing changed, if its id is taken
    /// (ids carry 62 random bits: the caller draws another).
    pub(crate) fn insert(&self, client: Arc<Client>) -> bool {
        let mut index = self.write();
        index.clients.insert(Entry {
            client,
            rooms: SmallVec::new(),
            own_room: false,
        })
    }

    /// Marks a client authenticated: indexes its user, joins its own-id room and `rooms`.
    /// Returns false if the client is gone (it disconnected while authenticating).
    pub(crate) fn authenticate(
        &self,
        client: &Arc<Client>,
        identity: Identity,
        rooms: &[RoomName],
    ) -> bool {
        let mut guard = self.write();
        let index = &mut *guard;
        let Some(entry) = index.clients.get_mut(&client.id) else {
            return false;
        };
        let user_id = identity.user_id.clone();
        let _ = client.identity.set(identity);
        client.set_state(ClientState::Authenticated);
        // The own-id room first, then the defaults.
        let one_by_one = self.watches_own_ids_one_by_one();
        if !entry.own_room {
            entry.own_room = true;
            index.own_rooms += 1;
            if one_by_one && !index.rooms.contains_key(&*client.id) {
                self.watch(Channel::Room(String::from(&*client.id)));
            }
        }
        if let Some(user) = user_id {
            let sessions = &mut index
                .users
                .get_or_insert_with(&user, || Sessions {
                    user: user.as_str().into(),
                    clients: SmallVec::new(),
                })
                .clients;
            if sessions.is_empty() {
                self.watch(Channel::User(user));
            }
            if !sessions.iter().any(|c| c.id == client.id) {
                sessions.push(client.clone());
            }
        }
        if one_by_one {
            self.watch(Channel::Client(String::from(&*client.id)));
        }
        for room in rooms.iter().cloned() {
            if let Err(e) = self.join_locked(index, &client.id, room) {
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
        if entry.rooms.contains(&room) || (entry.own_room && room.as_str() == &**id) {
            return Ok(false);
        }
        if entry.room_count() >= self.max_rooms_per_client {
            return Err(RoomError::TooManyRooms);
        }
        entry.rooms.push(room.clone());
        let client = entry.client.clone();
        let own_room = index.own_room(room.as_str()).is_some();
        let hasher = &index.member_hasher;
        let members = (index.rooms.entry(room.clone()))
            .or_insert_with(|| IdTable::with_hasher(hasher.clone()));
        if members.is_empty() && !own_room {
            self.watch(Channel::Room(room.as_str().to_owned()));
        }
        members.insert(client);
        Ok(true)
    }

    fn leave_locked(&self, index: &mut Index, id: &str, room: &str) -> bool {
        let Some(entry) = index.clients.get_mut(id) else {
            return false;
        };
        let Some(at) = entry.rooms.iter().position(|r| r.as_str() == room) else {
            return false;
        };
        entry.rooms.swap_remove(at);
        self.drop_member(index, room, id);
        true
    }

    /// Takes `id` out of `room`'s members; an emptied room is dropped, and unwatched unless
    /// it is also a tracked client's own-id room.
    fn drop_member(&self, index: &mut Index, room: &str, id: &str) {
        let Some(members) = index.rooms.get_mut(room) else {
            return;
        };
        members.remove(id);
        if members.is_empty() {
            index.rooms.remove(room);
            if index.own_room(room).is_none() {
                self.unwatch(Channel::Room(room.to_owned()));
            }
        }
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
        if !index.clients.contains(id) {
            return Err(RoomError::UnknownClient);
        }
        Ok(self.leave_locked(&mut index, id, room))
    }

    /// Whether the client is in `room`.
    pub(crate) fn is_member(&self, id: &str, room: &str) -> bool {
        self.read().clients.get(id).is_some_and(|e| {
            (e.own_room && room == id) || e.rooms.iter().any(|r| r.as_str() == room)
        })
    }

    /// Forgets a client everywhere. Returns it if it was tracked.
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Client>> {
        let mut index = self.write();
        let entry = index.clients.remove(id)?;
        for room in &entry.rooms {
            self.drop_member(&mut index, room.as_str(), id);
        }
        let one_by_one = self.watches_own_ids_one_by_one();
        if entry.own_room {
            index.own_rooms -= 1;
            if one_by_one && !index.rooms.contains_key(id) {
                self.unwatch(Channel::Room(id.to_owned()));
            }
        }
        if let Some(user) = entry.client.user_id()
            && let Some(sessions) = index.users.get_mut(user)
        {
            sessions.clients.retain(|c| &*c.id != id);
            if sessions.clients.is_empty() {
                index.users.remove(user);
                self.unwatch(Channel::User(user.to_owned()));
            }
        }
        if one_by_one && (entry.client.is_authenticated() || entry.client.identity.get().is_some())
        {
            self.unwatch(Channel::Client(id.to_owned()));
        }
        Some(entry.client)
    }

    /// Removes every client (shutdown). Returns them.
    pub(crate) fn drain(&self) -> Vec<Arc<Client>> {
        let ids: Vec<ClientId> = self
            .read()
            .clients
            .iter()
            .map(|e| e.client.id.clone())
            .collect();
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
        self.count(fan_out(sessions.clients.iter(), msg, exclude, cork), cork)
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
        self.count(fan_out(index.members(room), msg, exclude, cork), cork)
    }

    /// The members of `room` in `lane`, in the order a fan-out visits them.
    #[cfg(test)]
    pub(crate) fn members_in(&self, room: &str, lane: Lane) -> Vec<Arc<Client>> {
        self.read().members_in(room, lane).cloned().collect()
    }

    /// The members of a room (its own-id member aside).
    pub(crate) fn room_len(&self, room: &str) -> usize {
        self.read().rooms.get(room).map_or(0, IdTable::len)
    }

    /// Queues a message, or a run of messages, for the members of a room in `lane`; the
    /// writers owed a wake are woken every [`CORK_DELIVERIES`] deliveries. Returns the
    /// deliveries queued.
    pub(crate) fn to_room_lane(
        &self,
        room: &str,
        what: &Fanned,
        lane: Lane,
        cork: &mut Cork,
    ) -> usize {
        let index = self.read();
        let (mut tally, mut total) = (Tally::default(), 0);
        for client in index
            .members_in(room, lane)
            .filter(|c| c.is_authenticated())
        {
            match what {
                Fanned::One(msg) => tally.add(deliver(client, msg, cork)),
                Fanned::Run(run) => {
                    // Encrypted members' writers seal the run message by message.
                    let seal = client.is_encrypted();
                    let pushed = if cork.direct {
                        client.outbox.write_or_push_run(run, seal)
                    } else {
                        client.outbox.push_run(run, seal)
                    };
                    if pushed.first {
                        cork.owed.push(client.clone());
                    }
                    tally.queued += pushed.queued;
                    tally.dropped += pushed.dropped;
                }
            }
            if cork.deliveries + tally.queued >= CORK_DELIVERIES {
                total += self.count(std::mem::take(&mut tally), cork);
                cork.release();
            }
        }
        total + self.count(tally, cork)
    }

    /// Queues `msg` for every authenticated client, minus `exclude`.
    pub(crate) fn to_all(&self, msg: &Arc<Outgoing>, exclude: &[&str], cork: &mut Cork) -> usize {
        let index = self.read();
        let clients = index.clients.iter().map(|e| &e.client);
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
        matches!(
            deliver(client, &msg, &mut cork),
            Push::Queued | Push::First | Push::Written
        )
    }

    // ---- queries ----

    pub(crate) fn is_client(&self, id: &str) -> bool {
        self.read().clients.contains(id)
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
            .iter()
            .map(|e| info_of(e, now))
            .collect()
    }

    pub(crate) fn infos_by_user(&self, user: &str) -> Vec<ClientInfo> {
        let index = self.read();
        let sessions = index.users.get(user).into_iter().flat_map(|s| &s.clients);
        Self::infos_of(&index, sessions, self.clock.now_ms())
    }

    pub(crate) fn infos_by_room(&self, room: &str) -> Vec<ClientInfo> {
        let index = self.read();
        Self::infos_of(&index, index.members(room), self.clock.now_ms())
    }

    fn infos_of<'a>(
        index: &Index,
        clients: impl Iterator<Item = &'a Arc<Client>>,
        now_ms: u64,
    ) -> Vec<ClientInfo> {
        clients
            .filter_map(|c| index.clients.get(&c.id))
            .map(|e| info_of(e, now_ms))
            .collect()
    }

    /// Sizes of the three indexes (clients, users, rooms; own-id rooms count as rooms).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let index = self.read();
        (
            index.clients.len(),
            index.users.len(),
            index.rooms.len() + index.own_rooms,
        )
    }

    /// Live connections by state, plus encrypted and backpressured counts.
    pub(crate) fn census(&self) -> (ConnectionCounts, u64, u64) {
        let mut counts = ConnectionCounts::default();
        let (mut encrypted, mut backpressured) = (0, 0);
        for e in self.read().clients.iter() {
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
            .iter()
            .filter(|e| {
                e.client.is_authenticated()
                    && now.saturating_sub(e.client.last_activity_ms()) > timeout_ms
            })
            .map(|e| e.client.clone())
            .collect()
    }
}

fn info_of(entry: &Entry, now_ms: u64) -> ClientInfo {
    let mut rooms: Vec<RoomName> = entry.rooms.to_vec();
    if entry.own_room {
        // Client ids are UUIDs: always a valid room name.
        rooms.extend(RoomName::new(&entry.client.id));
    }
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
            Push::Queued | Push::First | Push::Written => self.queued += 1,
            Push::Dropped => self.dropped += 1,
            Push::Closed => {}
        }
    }
}

/// Queues `msg` for one client: the shared frame for plaintext receivers, the message itself
/// for encrypted ones (their writer seals it).
fn deliver(client: &Arc<Client>, msg: &Arc<Outgoing>, cork: &mut Cork) -> Push {
    let seal = client.is_encrypted();
    let push = if cork.direct {
        client.outbox.write_or_push(msg, seal)
    } else {
        client.outbox.push_quiet(Queued::message(msg, seal))
    };
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

#[cfg(test)]
mod tests {
    use std::{sync::Mutex, time::Duration};

    use super::*;
    use crate::session::Outbox;

    /// Records every watch (`+name`) and unwatch (`-name`); with `own_ids`, it takes the id
    /// prefix (records `*prefix`) as a broker with patterns does.
    #[derive(Clone, Default)]
    struct Recorder {
        log: Arc<Mutex<Vec<String>>>,
        own_ids: bool,
    }

    impl Recorder {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.log.lock().unwrap())
        }
    }

    impl Subscription for Recorder {
        fn watch(&self, channel: &Channel) {
            self.log
                .lock()
                .unwrap()
                .push(format!("+{}", channel.name()));
        }
        fn unwatch(&self, channel: &Channel) {
            self.log
                .lock()
                .unwrap()
                .push(format!("-{}", channel.name()));
        }
        fn watch_own_ids(&self, prefix: &str) -> bool {
            if self.own_ids {
                self.log.lock().unwrap().push(format!("*{prefix}"));
            }
            self.own_ids
        }
        fn close(&self) {}
    }

    fn hub() -> (Hub, Recorder) {
        let hub = Hub::new(8);
        let recorder = Recorder::default();
        hub.set_subscription(Box::new(recorder.clone()));
        (hub, recorder)
    }

    fn client(hub: &Hub, id: &str) -> Arc<Client> {
        let client = Arc::new(Client::new(id.into(), Outbox::new(1 << 20, false), 0));
        assert!(hub.insert(client.clone()));
        client
    }

    /// Clients `c0`, `c1` … authenticated into `rooms`.
    fn authenticated(hub: &Hub, n: usize, rooms: &[&str]) -> Vec<Arc<Client>> {
        let rooms: Vec<RoomName> = rooms.iter().map(|r| room(r)).collect();
        (0..n)
            .map(|n| {
                let c = client(hub, &format!("c{n}"));
                assert!(hub.authenticate(&c, Identity::anonymous(), &rooms));
                c
            })
            .collect()
    }

    fn room(name: &str) -> RoomName {
        RoomName::new(name).unwrap()
    }

    fn message() -> Arc<Outgoing> {
        Outgoing::new("m", RawValue::from_string("1".into()).unwrap())
    }

    /// Plaintext receivers get the frame byte for byte, v2 seals the JSON as it is, and v1
    /// seals it followed by spaces up to whole AES blocks, at every length around a block.
    #[test]
    fn only_the_v1_plaintext_is_padded_to_whole_aes_blocks() {
        for n in 0..40 {
            let data = serde_json::to_string(&"x".repeat(n)).unwrap();
            let json = encode_frame("m", &RawValue::from_string(data.clone()).unwrap());
            let msg = Outgoing::new("m", RawValue::from_string(data).unwrap());
            assert_eq!(msg.json(), json.as_bytes(), "{n}");
            assert_eq!(msg.wire(), &*wire::text_frame(&json), "{n}");
            let padded = msg.json_padded();
            assert_eq!(padded.len() % AES_BLOCK, 0, "{n}");
            assert!(padded.len() - json.len() < AES_BLOCK, "{n}");
            assert_eq!(&padded[..json.len()], json.as_bytes(), "{n}");
            assert!(padded[json.len()..].iter().all(|&b| b == b' '), "{n}");
        }
    }

    #[test]
    fn own_id_rooms_are_served_from_the_client_index() {
        let (hub, _) = hub();
        let ids = [hub.ids.assign(), hub.ids.assign()];
        let ids = [&*ids[0], &*ids[1]];
        let a = client(&hub, ids[0]);
        let b = client(&hub, ids[1]);
        let msg = message();
        // Before authentication there is no own-id room.
        assert_eq!(hub.to_room(ids[0], &msg, &[], &mut Cork::default()), 0);
        assert!(!hub.is_member(ids[0], ids[0]));
        for c in [&a, &b] {
            assert!(hub.authenticate(c, Identity::user("u"), &[room("lobby")]));
        }
        // Only `lobby` is materialised; the own-id rooms still count as rooms.
        assert_eq!(hub.read().rooms.len(), 1);
        assert_eq!(hub.counts(), (2, 1, 3));
        assert!(hub.is_member(ids[0], ids[0]));
        assert!(!hub.is_member(ids[0], ids[1]));
        assert_eq!(hub.to_room(ids[0], &msg, &[], &mut Cork::default()), 1);
        assert_eq!(
            hub.to_room(ids[0], &msg, &[ids[0]], &mut Cork::default()),
            0
        );
        assert_eq!(hub.to_room("lobby", &msg, &[], &mut Cork::default()), 2);
        assert_eq!(hub.to_user("u", &msg, &[ids[1]], &mut Cork::default()), 1);
        let rooms = hub.info(ids[0]).unwrap().rooms;
        assert_eq!(rooms, vec![ids[0].to_owned(), "lobby".to_owned()]);
        assert_eq!(hub.infos_by_room(ids[1]).len(), 1);
        assert_eq!(hub.leave(ids[0], ids[0]), Err(RoomError::OwnRoom));
        hub.remove(ids[0]);
        assert_eq!(hub.to_room(ids[0], &msg, &[], &mut Cork::default()), 0);
        assert_eq!(hub.counts(), (1, 1, 2));
    }

    #[test]
    fn own_id_room_interest_lasts_while_any_member_is_left() {
        let (hub, recorder) = hub();
        let id = &*hub.ids.assign();
        let a = client(&hub, id);
        let b = client(&hub, "b");
        assert!(hub.authenticate(&a, Identity::anonymous(), &[]));
        assert!(hub.authenticate(&b, Identity::anonymous(), &[]));
        let watched = recorder.take();
        assert!(watched.contains(&format!("+ws:room:{id}")), "{watched:?}");
        // The application puts `b` into `a`'s own-id room: one room, two members.
        assert_eq!(hub.join("b", room(id)), Ok(true));
        assert_eq!(hub.to_room(id, &message(), &[], &mut Cork::default()), 2);
        assert!(recorder.take().is_empty(), "already watched");
        assert_eq!(hub.leave("b", id), Ok(true));
        assert!(recorder.take().is_empty(), "`a` still needs it");
        assert_eq!(hub.join("b", room(id)), Ok(true));
        hub.remove(id);
        assert!(
            !recorder.take().contains(&format!("-ws:room:{id}")),
            "`b` still needs it"
        );
        hub.remove("b");
        assert!(recorder.take().contains(&format!("-ws:room:{id}")));
    }

    /// The activity clock reads milliseconds off an instant the caller already has, and an
    /// instant from before the server started reads as 0 rather than panicking.
    #[test]
    fn clock_reads_an_instant_taken_earlier() {
        let start = Instant::now();
        let clock = Clock(start);
        assert_eq!(clock.ms_at(start), 0);
        assert_eq!(clock.ms_at(start + Duration::from_millis(1_500)), 1_500);
        if let Some(before) = start.checked_sub(Duration::from_secs(1)) {
            assert_eq!(clock.ms_at(before), 0);
        }
        assert!(clock.now_ms() >= clock.ms_at(start));
    }

    /// Only this instance's ids name own-id rooms: a room named after another instance's id
    /// is an ordinary room, materialised and watched by name.
    #[test]
    fn another_instances_id_names_an_ordinary_room() {
        let (hub, recorder) = hub();
        let foreign = ClientIds::new().assign();
        assert!(!hub.ids.may_have_issued(&foreign));
        let a = client(&hub, &hub.ids.assign());
        assert!(hub.authenticate(&a, Identity::anonymous(), &[room(&foreign)]));
        assert!(recorder.take().contains(&format!("+ws:room:{foreign}")));
        assert_eq!(hub.read().rooms.len(), 1);
        assert_eq!(
            hub.to_room(&foreign, &message(), &[], &mut Cork::default()),
            1
        );
    }

    /// A subscription that takes the id prefix is not asked to watch a client's own-id room
    /// and client channel; the user and the rooms joined are watched as ever.
    #[test]
    fn own_channels_are_left_to_a_subscription_that_takes_the_id_prefix() {
        let hub = Hub::new(8);
        let recorder = Recorder {
            own_ids: true,
            ..Recorder::default()
        };
        hub.set_subscription(Box::new(recorder.clone()));
        assert_eq!(recorder.take(), [format!("*{}", hub.ids.prefix())]);
        let id = hub.ids.assign();
        let a = client(&hub, &id);
        assert!(hub.authenticate(&a, Identity::user("u"), &[room("lobby")]));
        assert_eq!(recorder.take(), ["+ws:user:u", "+ws:room:lobby"]);
        assert_eq!(hub.to_room(&id, &message(), &[], &mut Cork::default()), 1);
        hub.remove(&id);
        assert_eq!(recorder.take(), ["-ws:room:lobby", "-ws:user:u"]);
    }

    #[test]
    fn a_taken_id_is_not_tracked_twice() {
        let (hub, _) = hub();
        let first = client(&hub, "same");
        let second = Arc::new(Client::new("same".into(), Outbox::new(1 << 20, false), 0));
        assert!(!hub.insert(second.clone()));
        assert!(Arc::ptr_eq(&hub.client("same").unwrap(), &first));
    }

    #[test]
    fn the_room_limit_counts_the_own_id_room() {
        let (hub, _) = hub();
        let a = client(&hub, "a");
        assert!(hub.authenticate(&a, Identity::anonymous(), &[]));
        for n in 0..7 {
            assert_eq!(hub.join("a", room(&format!("r{n}"))), Ok(true));
        }
        assert_eq!(hub.join("a", room("r7")), Err(RoomError::TooManyRooms));
        assert_eq!(hub.join("a", room("r0")), Ok(false));
        assert_eq!(hub.join("a", room("a")), Ok(false), "its own-id room");
    }
    #[test]
    fn a_run_reaches_every_member_and_wakes_writers_as_it_goes() {
        use futures_util::FutureExt as _;
        let (hub, _) = hub();
        let members = authenticated(&hub, 300, &["big"]);
        // One member is encrypted: its writer seals the run message by message.
        let sealed = &members[7];
        assert!(sealed.sealer.set(Sealer::Transform).is_ok());
        assert!(sealed.enable_encryption());
        let run = Run::new((0..64).map(|_| message()).collect());
        let mut cork = Cork::default();
        assert_eq!(
            hub.to_room_lane("big", &Fanned::Run(run.clone()), Lane::ALL, &mut cork),
            300 * 64
        );
        // 19,200 deliveries: the writers of the first 16,384 were woken during the run.
        assert!(
            !cork.owed.is_empty() && cork.owed.len() < 300 - 200,
            "{}",
            cork.owed.len()
        );
        assert_eq!(
            hub.counters
                .deliveries
                .load(std::sync::atomic::Ordering::Relaxed),
            300 * 64
        );
        let mut batch = Vec::new();
        let next = members[0].outbox.next_batch(&mut batch).now_or_never();
        assert!(next.is_some());
        assert!(matches!(&batch[..], [Queued::Run(r)] if Arc::ptr_eq(r, &run)));
        batch.clear();
        let next = sealed.outbox.next_batch(&mut batch).now_or_never();
        assert!(next.is_some());
        assert!(matches!(&batch[..], [Queued::SealRun(r)] if Arc::ptr_eq(r, &run)));
    }

    /// The lanes of a split share a room's members out, each member to one lane, and a client
    /// stays in its lane in every room, across a room's being emptied and made again; the
    /// lanes' fan-outs together reach every member once.
    #[test]
    fn lanes_share_out_a_room_and_keep_each_client_in_one_lane() {
        let (hub, _) = hub();
        let members = authenticated(&hub, 400, &["a", "b"]);
        let lanes_of = |room: &str| -> Vec<Vec<String>> {
            Lane::split(3)
                .map(|lane| {
                    let mut ids: Vec<String> = (hub.members_in(room, lane).iter())
                        .map(|c| c.id.to_string())
                        .collect();
                    ids.sort_unstable();
                    ids
                })
                .collect()
        };
        let in_a = lanes_of("a");
        let mut all: Vec<&String> = in_a.iter().flatten().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 400, "every member in exactly one lane");
        assert_eq!(in_a.iter().map(Vec::len).sum::<usize>(), 400);
        assert!(
            in_a.iter().all(|l| l.len() > 80),
            "{:?}",
            in_a.iter().map(Vec::len)
        );
        assert_eq!(lanes_of("b"), in_a);
        // Emptied (the room's table is dropped) and joined again: the same lanes.
        for c in &members {
            assert_eq!(hub.leave(&c.id, "b"), Ok(true));
        }
        assert!(lanes_of("b").iter().all(Vec::is_empty));
        for c in members.iter().rev() {
            assert_eq!(hub.join(&c.id, room("b")), Ok(true));
        }
        assert_eq!(lanes_of("b"), in_a);
        // A fan-out lane by lane queues every member's message once.
        let msg = message();
        let mut total = 0;
        for lane in Lane::split(3) {
            total += hub.to_room_lane("a", &Fanned::One(msg.clone()), lane, &mut Cork::default());
        }
        assert_eq!(total, 400);
        assert!(
            members
                .iter()
                .all(|c| c.outbox.queued_bytes() == msg.wire().len())
        );
        assert_eq!(Lane::split(0).count(), 1);
        assert_eq!(
            (lanes_for(0, 2), lanes_for(255, 2), lanes_for(256, 2)),
            (1, 1, 2)
        );
        assert_eq!((lanes_for(10_000, 2), lanes_for(10_000, 0)), (2, 1));
    }

    /// A short burst under a direct cork reaches parked plaintext members' sockets as the
    /// fan-out goes, a run in one `send`: no writer is owed a wake. A busy writer and an
    /// encrypted member (whose writer seals) are owed one, and their queues hold the run.
    #[tokio::test]
    async fn a_direct_cork_writes_a_run_to_parked_members_sockets() {
        use futures_util::FutureExt as _;
        use tokio::io::AsyncReadExt as _;

        use crate::session::Line;
        let (hub, _) = hub();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut peers = Vec::new();
        let mut members = Vec::new();
        for n in 0..4 {
            let (peer, accepted) =
                tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
            peers.push(peer.unwrap());
            let c = client(&hub, &format!("c{n}"));
            let counters = Arc::new(Counters::default());
            c.outbox
                .attach_line(Line::new(accepted.unwrap().0), counters);
            assert!(hub.authenticate(&c, Identity::anonymous(), &[room("r")]));
            members.push(c);
        }
        // Members 0 and 1 wait on their queues; 2 is busy writing; 3 is encrypted.
        let mut batch = Vec::new();
        for c in &members[..2] {
            assert!(c.outbox.next_batch(&mut batch).now_or_never().is_none());
        }
        let sealed = &members[3];
        assert!(sealed.sealer.set(Sealer::Transform).is_ok());
        assert!(sealed.enable_encryption());
        assert!(
            sealed
                .outbox
                .next_batch(&mut batch)
                .now_or_never()
                .is_none()
        );
        let run = Run::new((0..3).map(|_| message()).collect());
        let mut cork = Cork::default();
        cork.set_direct(true);
        assert_eq!(
            hub.to_room_lane("r", &Fanned::Run(run.clone()), Lane::ALL, &mut cork),
            4 * 3
        );
        let mut owed: Vec<&str> = cork.owed.iter().map(|c| &*c.id).collect();
        owed.sort_unstable();
        assert_eq!(owed, ["c2", "c3"]);
        for (c, peer) in members[..2].iter().zip(&mut peers) {
            assert_eq!(c.outbox.queued_bytes(), 0);
            let mut got = vec![0; run.bytes()];
            peer.read_exact(&mut got).await.unwrap();
            assert_eq!(got, run.wire());
        }
        assert_eq!(members[2].outbox.queued_bytes(), run.bytes());
        assert_eq!(sealed.outbox.queued_bytes(), run.sealed_bytes());
        // Without a direct cork, a parked member's run is queued and its writer owed a wake.
        let mut cork = Cork::default();
        hub.to_room_lane("r", &Fanned::Run(run.clone()), Lane::ALL, &mut cork);
        assert!(cork.owed.iter().any(|c| &*c.id == "c0"));
        assert_eq!(members[0].outbox.queued_bytes(), run.bytes());
        cork.owed.clear();
    }
}
