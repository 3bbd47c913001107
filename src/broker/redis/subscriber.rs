//! The subscriber task: one pub/sub connection, the subscriptions it should hold (pattern or
//! interest), reconnect with backoff and resubscribe, and the untrusted-input checks on what
//! arrives.

use std::hash::{BuildHasher, RandomState};

use hashbrown::{HashTable, hash_table::Entry};

use super::conn::{self, Command, Event, Sink, Stream};
use super::*;
use crate::protocol::EnvelopeError;

/// What a subscription's task and its handle share.
pub(super) struct SubShared {
    pub(super) mode: SubscriptionMode,
    // std Mutex: `watch`/`unwatch` are sync and may run under the hub's lock; held only to
    // edit the sets.
    desired: Mutex<Desired>,
    /// Wakes the task after `desired` changed. A `Notify` keeps at most one permit, so any number
    /// of changes coalesce into one resync: no queue grows, whatever the churn.
    pub(super) changed: Notify,
    pub(super) ready: watch::Sender<bool>,
    pub(super) stop: watch::Sender<bool>,
    /// Interest mode: the channels of this instance's client ids, received through patterns
    /// once the server names its id prefix ([`Subscription::watch_own_ids`]).
    own_ids: OnceLock<OwnIds>,
}

/// The direct channels of one instance's clients: every `ws:room:{id}` and `ws:client:{id}`
/// whose id starts with the instance's prefix, one pattern each.
struct OwnIds {
    prefix: Box<str>,
    /// `ws:room:{prefix}` and `ws:client:{prefix}`.
    channels: [String; 2],
}

impl OwnIds {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
            channels: [
                Channel::Room(prefix.to_owned()).name(),
                Channel::Client(prefix.to_owned()).name(),
            ],
        }
    }

    /// Whether the patterns deliver `name` (so an exact subscription would deliver it twice).
    fn covers(&self, name: &str) -> bool {
        self.channels.iter().any(|c| name.starts_with(c.as_str()))
    }

    fn patterns(&self) -> Vec<String> {
        self.channels.iter().map(|c| format!("{c}*")).collect()
    }
}

/// The exact channels a subscriber should hold (interest mode), and what its connection holds.
///
/// The connection holds exactly `wanted`, except for the channels in `dirty` (and those of a sync
/// round in flight, once it completes): each name is one shared allocation, and no second set of
/// held names is kept. Both tables keep each name's hash beside it, computed once per change
/// under the one `hasher`: a connect storm grows `wanted` by one channel per user, and a rehash
/// then reads no name.
struct Desired {
    /// SipHash with random keys: channel names carry user ids and room names, which peers may
    /// choose.
    hasher: RandomState,
    wanted: HashTable<Name>,
    /// Channels whose wanted state changed since the task last synced, each with whether the
    /// connection holds it; bounded by the number of distinct channels touched, and emptied by
    /// every sync, one round of at most [`SUBSCRIBE_BATCH`] at a time.
    dirty: HashTable<Dirty>,
}

/// A channel name and its hash under [`Desired::hasher`].
struct Name {
    hash: u64,
    name: Arc<str>,
}

impl Name {
    fn is(&self, hash: u64, name: &str) -> bool {
        self.hash == hash && *self.name == *name
    }
}

/// A channel changed since the last sync, and whether the connection holds it.
struct Dirty {
    name: Name,
    held: bool,
}

/// The commands one round of a sync sends: the names are the ones in [`Desired`], not copies.
#[derive(Default)]
struct Changes {
    add: Vec<Arc<str>>,
    remove: Vec<Arc<str>>,
    /// Whether changes are left for another round.
    more: bool,
}

/// A `wanted` set this much larger than its contents is shrunk, so a storm of connections that
/// came and went does not keep its table.
const SHRINK_RATIO: usize = 4;

/// Capacity below which `wanted` is never shrunk.
const MIN_CAPACITY: usize = 64;

impl Desired {
    /// Wants the broadcast channel (every mode receives it).
    fn new() -> Self {
        let mut desired = Self {
            hasher: RandomState::new(),
            wanted: HashTable::new(),
            dirty: HashTable::new(),
        };
        let hash = desired.hasher.hash_one(Channel::BROADCAST);
        desired.wanted.insert_unique(
            hash,
            Name {
                hash,
                name: Arc::from(Channel::BROADCAST),
            },
            |n| n.hash,
        );
        desired
    }

    /// The wanted name `name`, if it is wanted.
    #[cfg(test)]
    fn wanted(&self, name: &str) -> Option<&Arc<str>> {
        let hash = self.hasher.hash_one(name);
        self.wanted
            .find(hash, |n| n.is(hash, name))
            .map(|n| &n.name)
    }

    /// Records that `name` is now wanted (or not), and whether that changed anything.
    fn set(&mut self, name: &str, wanted: bool) -> bool {
        let hash = self.hasher.hash_one(name);
        let shared = if wanted {
            let Entry::Vacant(slot) = self.wanted.entry(hash, |n| n.is(hash, name), |n| n.hash)
            else {
                return false;
            };
            // A channel still dirty keeps its allocation, so the names stay shared.
            let shared = match self.dirty.find(hash, |d| d.name.is(hash, name)) {
                Some(dirty) => dirty.name.name.clone(),
                None => Arc::from(name),
            };
            slot.insert(Name {
                hash,
                name: shared.clone(),
            });
            shared
        } else {
            match self.wanted.find_entry(hash, |n| n.is(hash, name)) {
                Ok(found) => found.remove().0.name,
                Err(_) => return false,
            }
        };
        // The first change since the last sync records what the connection holds: the state
        // before this change.
        if let Entry::Vacant(slot) =
            self.dirty
                .entry(hash, |d| d.name.is(hash, name), |d| d.name.hash)
        {
            slot.insert(Dirty {
                name: Name { hash, name: shared },
                held: !wanted,
            });
        }
        true
    }

    /// Takes up to [`SUBSCRIBE_BATCH`] of the changes since the last sync: what to subscribe and
    /// unsubscribe. A sync takes rounds until none are left, so what it holds aside stays bounded
    /// by one batch whatever the churn.
    fn take_changes(&mut self) -> Changes {
        let mut changes = Changes::default();
        let Self { wanted, dirty, .. } = self;
        for Dirty { name, held } in dirty.extract_if(|_| true).take(SUBSCRIBE_BATCH) {
            let is_wanted = wanted
                .find(name.hash, |n| n.is(name.hash, &name.name))
                .is_some();
            match (is_wanted, held) {
                (true, false) => changes.add.push(name.name),
                (false, true) => changes.remove.push(name.name),
                _ => {}
            }
        }
        changes.more = !self.dirty.is_empty();
        if !changes.more {
            self.dirty.shrink_to(SUBSCRIBE_BATCH, |d| d.name.hash);
        }
        if self.wanted.capacity() > MIN_CAPACITY
            && self.wanted.len() < self.wanted.capacity() / SHRINK_RATIO
        {
            self.wanted
                .shrink_to(MIN_CAPACITY.max(self.wanted.len() * 2), |n| n.hash);
        }
        changes
    }

    /// Takes everything wanted, for a new connection that holds nothing yet.
    fn take_all(&mut self) -> Vec<Arc<str>> {
        self.dirty.clear();
        self.dirty.shrink_to(SUBSCRIBE_BATCH, |d| d.name.hash);
        self.wanted.iter().map(|n| n.name.clone()).collect()
    }
}

impl SubShared {
    pub(super) fn new(mode: SubscriptionMode) -> Self {
        Self {
            mode,
            desired: Mutex::new(Desired::new()),
            changed: Notify::new(),
            ready: watch::Sender::new(false),
            stop: watch::Sender::new(false),
            own_ids: OnceLock::new(),
        }
    }

    pub(super) fn set_interest(&self, channel: &Channel, wanted: bool) {
        if self.mode != SubscriptionMode::Interest || *channel == Channel::Broadcast {
            return;
        }
        let name = channel.name();
        if self.own_ids.get().is_some_and(|own| own.covers(&name)) {
            return;
        }
        if lock(&self.desired).set(&name, wanted) {
            self.changed.notify_one();
        }
    }
}

/// A server's subscription through a [`RedisBroker`]; stops its connection when closed or
/// dropped.
pub(super) struct RedisSubscription {
    pub(super) shared: Arc<SubShared>,
}

impl Subscription for RedisSubscription {
    fn watch(&self, channel: &Channel) {
        self.shared.set_interest(channel, true);
    }

    fn unwatch(&self, channel: &Channel) {
        self.shared.set_interest(channel, false);
    }

    fn watch_own_ids(&self, prefix: &str) -> bool {
        let shared = &self.shared;
        match shared.mode {
            // Every room and client channel arrives already.
            SubscriptionMode::Pattern => true,
            SubscriptionMode::Interest => {
                if shared.own_ids.set(OwnIds::new(prefix)).is_ok() {
                    // The task subscribes the patterns on its next sync.
                    shared.changed.notify_one();
                }
                shared
                    .own_ids
                    .get()
                    .is_some_and(|own| *own.prefix == *prefix)
            }
        }
    }

    fn close(&self) {
        self.shared.stop.send_replace(true);
    }
}

impl Drop for RedisSubscription {
    fn drop(&mut self) {
        self.close();
    }
}

/// Most channels named in one SUBSCRIBE/UNSUBSCRIBE command.
const SUBSCRIBE_BATCH: usize = 256;

enum PumpEnd {
    Stopped,
    Lost(String),
}

/// Connects, subscribes, pumps messages into the inbox; reconnects with backoff until stopped.
pub(super) async fn run_subscriber(
    inner: Arc<Inner>,
    shared: Arc<SubShared>,
    inbox: mpsc::Sender<Delivery>,
) {
    let mut stop = shared.stop.subscribe();
    let mut backoff = Backoff::new(&inner.config);
    let mut node_index = random_index();
    let mut connected_before = false;
    loop {
        if *stop.borrow() || inbox.is_closed() || inner.closed.load(Ordering::Acquire) {
            break;
        }
        let nodes = inner.nodes.snapshot();
        let Some(node) = nodes.get(node_index % nodes.len().max(1)).cloned() else {
            break;
        };
        let opened = tokio::select! {
            biased;
            _ = stop.changed() => break,
            opened = open_subscriber(&inner, &shared, &node, &inbox) => opened,
        };
        match opened {
            Ok((sink, stream, held, own_held)) => {
                if connected_before {
                    bump(&inner.counters.reconnects);
                    tracing::info!(
                        node = %node.label,
                        channels = held,
                        "redis subscriber reconnected and resubscribed"
                    );
                } else {
                    tracing::debug!(node = %node.label, "redis subscriber connected");
                }
                connected_before = true;
                backoff.reset();
                shared.ready.send_replace(true);
                if !inner.publisher.is_connected() {
                    // Redis is reachable again: reopen the publishing connection now rather than
                    // on the next publish, so readiness reflects it.
                    let inner = inner.clone();
                    tokio::spawn(async move {
                        let _ = inner.connect_publisher().await;
                    });
                }
                if inner.config.cluster {
                    tokio::spawn(discover_from(inner.clone(), node.clone()));
                }
                let end = pump(&inner, &shared, &inbox, (sink, stream, own_held), &mut stop).await;
                shared.ready.send_replace(false);
                match end {
                    PumpEnd::Stopped => break,
                    PumpEnd::Lost(reason) => tracing::warn!(
                        node = %node.label,
                        %reason,
                        "redis subscriber lost its connection; local delivery continues, reconnecting"
                    ),
                }
            }
            Err(error) => {
                tracing::warn!(
                    node = %node.label,
                    %error,
                    "redis subscriber cannot connect; retrying with backoff"
                );
                node_index = node_index.wrapping_add(1);
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    shared.ready.send_replace(false);
}

/// Opens a pub/sub connection to `node` and subscribes to everything the subscription should
/// hold, waiting until Redis confirmed it all (messages that arrive meanwhile are delivered);
/// returns how many exact channels it subscribed to in interest mode, and whether it
/// subscribed the own-id patterns.
async fn open_subscriber(
    inner: &Inner,
    shared: &SubShared,
    node: &Node,
    inbox: &mpsc::Sender<Delivery>,
) -> Result<(Sink, Stream, usize, bool), String> {
    let limit = inner.config.connect_timeout;
    let max_bulk = inner.config.limits.max_envelope_bytes;
    let (mut sink, mut stream) = conn::open(node, max_bulk, limit).await?;
    let subscribed = timeout(limit, async {
        // Each command's confirmations are read before the next command is sent, so a
        // resubscription of many channels never has Redis queue more than one command's
        // replies for this connection.
        let held = match shared.mode {
            SubscriptionMode::Pattern => {
                let n = sink
                    .command(Command::Subscribe, &[Channel::BROADCAST])
                    .await?;
                await_confirmations(&mut stream, n, inner, inbox).await?;
                let patterns = [
                    Channel::ROOM_PATTERN,
                    Channel::CLIENT_PATTERN,
                    Channel::USER_PATTERN,
                ];
                let n = sink.command(Command::PatternSubscribe, &patterns).await?;
                await_confirmations(&mut stream, n, inner, inbox).await?;
                (0, false)
            }
            SubscriptionMode::Interest => {
                let all = lock(&shared.desired).take_all();
                for chunk in all.chunks(SUBSCRIBE_BATCH) {
                    let n = sink.command(Command::Subscribe, chunk).await?;
                    await_confirmations(&mut stream, n, inner, inbox).await?;
                }
                let own = shared.own_ids.get();
                if let Some(own) = own {
                    let n = sink
                        .command(Command::PatternSubscribe, &own.patterns())
                        .await?;
                    await_confirmations(&mut stream, n, inner, inbox).await?;
                }
                (all.len(), own.is_some())
            }
        };
        Ok::<_, String>(held)
    })
    .await;
    match subscribed {
        Ok(Ok((held, own_held))) => Ok((sink, stream, held, own_held)),
        Ok(Err(e)) => Err(format!("subscribe failed: {e}")),
        Err(_) => Err(format!("subscribe timed out after {limit:?}")),
    }
}

/// Reads the stream until `pending` subscription confirmations arrived, delivering the messages
/// that come meanwhile.
async fn await_confirmations(
    stream: &mut Stream,
    mut pending: usize,
    inner: &Inner,
    inbox: &mpsc::Sender<Delivery>,
) -> Result<(), String> {
    while pending > 0 {
        match stream.next().await? {
            Some(Event::Confirmed) => pending -= 1,
            Some(event) => {
                if !handle_event(inner, inbox, event).await {
                    return Err("stopped".to_owned());
                }
            }
            None => return Err("connection closed".to_owned()),
        }
    }
    Ok(())
}

/// Sends one round of the changes to the desired set since the last sync; when more are left,
/// leaves a permit in `changed` so the task runs the next round on its next turn. Subscribes
/// the own-id patterns once they are known (`own_held` says whether this connection has).
/// Returns how many confirmations the round awaits on the stream (see [`Sink::command`]): the
/// next round is sent once they arrived, so a burst of changes coalesces into few commands.
async fn sync_interest(
    sink: &mut Sink,
    shared: &SubShared,
    own_held: &mut bool,
) -> Result<usize, String> {
    let mut pending = 0;
    if !*own_held && let Some(own) = shared.own_ids.get() {
        pending += sink
            .command(Command::PatternSubscribe, &own.patterns())
            .await?;
        *own_held = true;
    }
    let changes = lock(&shared.desired).take_changes();
    if !changes.add.is_empty() {
        pending += sink.command(Command::Subscribe, &changes.add).await?;
    }
    // Never send an UNSUBSCRIBE without arguments: it would drop every subscription.
    if !changes.remove.is_empty() {
        pending += sink.command(Command::Unsubscribe, &changes.remove).await?;
    }
    if changes.more {
        shared.changed.notify_one();
    }
    Ok(pending)
}

async fn pump(
    inner: &Inner,
    shared: &SubShared,
    inbox: &mpsc::Sender<Delivery>,
    (mut sink, mut stream, mut own_held): (Sink, Stream, bool),
    stop: &mut watch::Receiver<bool>,
) -> PumpEnd {
    let limit = inner.config.connect_timeout;
    let every = inner
        .config
        .health_check_interval
        .max(Duration::from_millis(10));
    let mut health = tokio::time::interval_at(Instant::now() + every, every);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interest = shared.mode == SubscriptionMode::Interest;
    // Confirmations the last sync round still awaits, and whether a PING awaits its reply (the
    // connection is lost if it does not come within `limit`).
    let mut pending = 0usize;
    let mut ping_pending = false;
    let ping_timeout = tokio::time::sleep(limit);
    tokio::pin!(ping_timeout);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return PumpEnd::Stopped,
            () = inbox.closed() => return PumpEnd::Stopped,
            () = shared.changed.notified(), if interest && pending == 0 => {
                match timeout(limit, sync_interest(&mut sink, shared, &mut own_held)).await {
                    Ok(Ok(n)) => pending = n,
                    Ok(Err(e)) => return PumpEnd::Lost(format!("resubscribe failed: {e}")),
                    Err(_) => return PumpEnd::Lost("resubscribe timed out".into()),
                }
            }
            event = stream.next() => match event {
                Ok(Some(Event::Confirmed)) => pending = pending.saturating_sub(1),
                Ok(Some(Event::Pong)) => ping_pending = false,
                Ok(Some(event)) => {
                    if !handle_event(inner, inbox, event).await {
                        return PumpEnd::Stopped;
                    }
                }
                Ok(None) => return PumpEnd::Lost("connection closed".into()),
                Err(e) => return PumpEnd::Lost(e),
            },
            () = &mut ping_timeout, if ping_pending => {
                return PumpEnd::Lost("health check timed out".into());
            }
            _ = health.tick(), if !ping_pending => {
                match timeout(limit, sink.ping()).await {
                    // The crate's connection answered already.
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => {
                        ping_pending = true;
                        ping_timeout.as_mut().reset(Instant::now() + limit);
                    }
                    Ok(Err(e)) => return PumpEnd::Lost(format!("health check failed: {e}")),
                    Err(_) => return PumpEnd::Lost("health check timed out".into()),
                }
            }
        }
    }
}

/// Hands a message event to [`handle_message`]; counts a message too long to read as received
/// and invalid. `false` when the inbox is gone.
async fn handle_event(inner: &Inner, inbox: &mpsc::Sender<Delivery>, event: Event<'_>) -> bool {
    match event {
        Event::Message { channel, payload } => {
            bump(&inner.counters.received);
            match std::str::from_utf8(channel) {
                Ok(channel) => handle_message(inner, inbox, channel, payload).await,
                Err(_) => {
                    let channel = String::from_utf8_lossy(channel);
                    inner.drop_invalid(&channel, &"channel is not UTF-8");
                    true
                }
            }
        }
        Event::TooLong { channel } => {
            bump(&inner.counters.received);
            let channel =
                channel.map_or_else(|| "(name over the limit)".into(), String::from_utf8_lossy);
            inner.drop_invalid(&channel, &EnvelopeError::TooLarge);
            true
        }
        Event::Confirmed | Event::Pong => true,
    }
}

/// Validates one message (counted as received by [`handle_event`]) and hands it to the inbox;
/// `false` when the inbox is gone.
async fn handle_message(
    inner: &Inner,
    inbox: &mpsc::Sender<Delivery>,
    channel: &str,
    raw: &[u8],
) -> bool {
    // SECURITY: everything from Redis is untrusted: bounded parse, optional signature, and the
    // envelope must match the channel it came on.
    let envelope = match Envelope::parse(raw, &inner.config.limits) {
        Ok(envelope) => envelope,
        Err(e) => {
            inner.drop_invalid(channel, &e);
            return true;
        }
    };
    if let Some(key) = &inner.config.signing_key
        && let Err(e) = key.verify(raw, &envelope)
    {
        inner.drop_invalid(channel, &e);
        return true;
    }
    if !envelope.matches_channel(channel) {
        inner.drop_invalid(channel, &"envelope does not match its channel");
        return true;
    }
    let delivery = Delivery {
        channel: Arc::from(channel),
        envelope: Arc::new(envelope),
    };
    // Bounding how long we wait for room in the inbox bounds how long the connection goes
    // unread behind a stalled server (the crate's connection, used for TLS, reads the socket
    // into its own unbounded queue meanwhile).
    match inbox.try_send(delivery) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
        Err(mpsc::error::TrySendError::Full(delivery)) => {
            match timeout(RedisConfig::INBOX_SEND_TIMEOUT, inbox.send(delivery)).await {
                Ok(Ok(())) => true,
                Ok(Err(_)) => false,
                Err(_) => {
                    let total = bump(&inner.counters.dropped_overflow);
                    tracing::warn!(
                        %channel,
                        dropped_total = total,
                        "server inbox full; dropped an envelope from redis"
                    );
                    true
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_changes_coalesce_into_the_dirty_set() {
        let shared = SubShared::new(SubscriptionMode::Interest);
        let room = Channel::Room("r".into());
        shared.set_interest(&room, true);
        shared.set_interest(&room, false);
        shared.set_interest(&room, true);
        shared.set_interest(&Channel::Broadcast, false);
        let d = lock(&shared.desired);
        assert!(d.wanted("ws:room:r").is_some() && d.wanted("ws:broadcast").is_some());
        assert_eq!(d.dirty.len(), 1);
        drop(d);
        let pattern = SubShared::new(SubscriptionMode::Pattern);
        pattern.set_interest(&room, true);
        assert!(lock(&pattern.desired).dirty.is_empty());
    }

    /// Runs a whole sync's rounds, checking each fits in one command.
    fn sync(shared: &SubShared) -> Changes {
        let mut all = Changes::default();
        loop {
            let round = lock(&shared.desired).take_changes();
            assert!(round.add.len() <= SUBSCRIBE_BATCH && round.remove.len() <= SUBSCRIBE_BATCH);
            all.add.extend(round.add);
            all.remove.extend(round.remove);
            if !round.more {
                return all;
            }
        }
    }

    #[test]
    fn synced_channels_share_the_wanted_allocation_and_shrink_after_unwatch() {
        const N: usize = 2_000;
        let shared = SubShared::new(SubscriptionMode::Interest);
        let rooms: Vec<Channel> = (0..N).map(|i| Channel::Room(i.to_string())).collect();
        for room in &rooms {
            shared.set_interest(room, true);
        }
        let changes = sync(&shared);
        assert_eq!(changes.add.len(), N);
        assert!(changes.remove.is_empty());
        {
            let d = lock(&shared.desired);
            assert!(d.dirty.is_empty());
            for name in &changes.add {
                let kept = d.wanted(name).expect("a synced channel stays wanted");
                assert!(Arc::ptr_eq(kept, name));
                assert_eq!(Arc::strong_count(name), 2);
            }
        }
        drop(changes);
        let grown = lock(&shared.desired).wanted.capacity();
        for room in &rooms {
            shared.set_interest(room, false);
        }
        let changes = sync(&shared);
        assert_eq!(changes.remove.len(), N);
        assert!(changes.add.is_empty());
        // The names sent in the UNSUBSCRIBE are the only copies left.
        assert!(
            changes
                .remove
                .iter()
                .all(|name| Arc::strong_count(name) == 1)
        );
        let d = lock(&shared.desired);
        assert_eq!(d.wanted.len(), 1);
        assert!(d.wanted.capacity() <= MIN_CAPACITY * 2 && d.wanted.capacity() < grown);
        assert!(d.dirty.is_empty() && d.dirty.capacity() <= SUBSCRIBE_BATCH * 2);
    }

    #[test]
    fn a_sync_sends_only_what_differs_from_what_the_connection_holds() {
        let shared = SubShared::new(SubscriptionMode::Interest);
        let room = Channel::Room("r".into());
        let take = || {
            let c = sync(&shared);
            (c.add.len(), c.remove.len())
        };
        shared.set_interest(&room, true);
        assert_eq!(take(), (1, 0));
        // Held and wanted again: nothing to send.
        shared.set_interest(&room, false);
        shared.set_interest(&room, true);
        assert_eq!(take(), (0, 0));
        shared.set_interest(&room, false);
        assert_eq!(take(), (0, 1));
        // Neither held nor wanted in the end: nothing to send.
        shared.set_interest(&room, true);
        shared.set_interest(&room, false);
        assert_eq!(take(), (0, 0));
        // A new connection takes everything wanted and starts with nothing dirty.
        shared.set_interest(&room, true);
        let all = lock(&shared.desired).take_all();
        assert_eq!(all.len(), 2);
        assert_eq!(take(), (0, 0));
        shared.set_interest(&room, false);
        assert_eq!(take(), (0, 1));
    }
}
