//! The subscriber task: one pub/sub connection, the subscriptions it should hold (pattern or
//! interest), reconnect with backoff and resubscribe, and the untrusted-input checks on what
//! arrives.

use super::*;

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
}

/// The exact channels a subscriber should hold (interest mode).
struct Desired {
    wanted: HashSet<String>,
    /// Channels whose wanted state changed since the task last synced; bounded by the number of
    /// distinct channels touched, and emptied by every sync.
    dirty: HashSet<String>,
}

impl SubShared {
    pub(super) fn new(mode: SubscriptionMode) -> Self {
        let wanted = HashSet::from([Channel::BROADCAST.to_owned()]);
        Self {
            mode,
            desired: Mutex::new(Desired {
                wanted,
                dirty: HashSet::new(),
            }),
            changed: Notify::new(),
            ready: watch::Sender::new(false),
            stop: watch::Sender::new(false),
        }
    }

    pub(super) fn set_interest(&self, channel: &Channel, wanted: bool) {
        if self.mode != SubscriptionMode::Interest || *channel == Channel::Broadcast {
            return;
        }
        let name = channel.name();
        let changed = {
            let mut d = lock(&self.desired);
            let changed = if wanted {
                d.wanted.insert(name.clone())
            } else {
                d.wanted.remove(&name)
            };
            if changed {
                d.dirty.insert(name);
            }
            changed
        };
        if changed {
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
            opened = open_subscriber(&inner, &shared, &node) => opened,
        };
        match opened {
            Ok((sink, stream, held)) => {
                if connected_before {
                    bump(&inner.counters.reconnects);
                    tracing::info!(
                        node = %node.label,
                        channels = held.len(),
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
                let end = pump(&inner, &shared, &inbox, sink, stream, held, &mut stop).await;
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

/// Opens a pub/sub connection to `node` and subscribes to everything the subscription should hold.
async fn open_subscriber(
    inner: &Inner,
    shared: &SubShared,
    node: &Node,
) -> Result<(PubSubSink, PubSubStream, HashSet<String>), String> {
    let limit = inner.config.connect_timeout;
    let client = node.client()?;
    let pubsub = match timeout(limit, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("connect timed out after {limit:?}")),
    };
    let (mut sink, stream) = pubsub.split();
    let mut held = HashSet::new();
    let subscribed = timeout(limit, async {
        match shared.mode {
            SubscriptionMode::Pattern => {
                sink.subscribe(Channel::BROADCAST).await?;
                sink.psubscribe(&[
                    Channel::ROOM_PATTERN,
                    Channel::CLIENT_PATTERN,
                    Channel::USER_PATTERN,
                ])
                .await?;
            }
            SubscriptionMode::Interest => {
                let all: Vec<String> = {
                    let mut d = lock(&shared.desired);
                    d.dirty.clear();
                    d.wanted.iter().cloned().collect()
                };
                for chunk in all.chunks(SUBSCRIBE_BATCH) {
                    sink.subscribe(chunk).await?;
                    held.extend(chunk.iter().cloned());
                }
            }
        }
        Ok::<(), RedisError>(())
    })
    .await;
    match subscribed {
        Ok(Ok(())) => Ok((sink, stream, held)),
        Ok(Err(e)) => Err(format!("subscribe failed: {e}")),
        Err(_) => Err(format!("subscribe timed out after {limit:?}")),
    }
}

/// Applies the changes to the desired set since the last sync.
async fn sync_interest(
    sink: &mut PubSubSink,
    shared: &SubShared,
    held: &mut HashSet<String>,
) -> Result<(), RedisError> {
    let (add, remove): (Vec<String>, Vec<String>) = {
        let mut d = lock(&shared.desired);
        let dirty = std::mem::take(&mut d.dirty);
        let mut add = Vec::new();
        let mut remove = Vec::new();
        for name in dirty {
            match (d.wanted.contains(&name), held.contains(&name)) {
                (true, false) => add.push(name),
                (false, true) => remove.push(name),
                _ => {}
            }
        }
        (add, remove)
    };
    for chunk in add.chunks(SUBSCRIBE_BATCH) {
        sink.subscribe(chunk).await?;
        held.extend(chunk.iter().cloned());
    }
    // Never send an UNSUBSCRIBE without arguments: it would drop every subscription.
    for chunk in remove.chunks(SUBSCRIBE_BATCH) {
        sink.unsubscribe(chunk).await?;
        for name in chunk {
            held.remove(name);
        }
    }
    Ok(())
}

async fn pump(
    inner: &Inner,
    shared: &SubShared,
    inbox: &mpsc::Sender<Delivery>,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    mut held: HashSet<String>,
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
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return PumpEnd::Stopped,
            () = inbox.closed() => return PumpEnd::Stopped,
            () = shared.changed.notified(), if interest => {
                match timeout(limit, sync_interest(&mut sink, shared, &mut held)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return PumpEnd::Lost(format!("resubscribe failed: {e}")),
                    Err(_) => return PumpEnd::Lost("resubscribe timed out".into()),
                }
            }
            msg = stream.next() => match msg {
                Some(msg) => {
                    if !handle_message(inner, inbox, &msg).await {
                        return PumpEnd::Stopped;
                    }
                }
                None => return PumpEnd::Lost("connection closed".into()),
            },
            _ = health.tick() => match timeout(limit, sink.ping::<redis::Value>()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return PumpEnd::Lost(format!("health check failed: {e}")),
                Err(_) => return PumpEnd::Lost("health check timed out".into()),
            },
        }
    }
}

/// Validates one message and hands it to the inbox; `false` when the inbox is gone.
async fn handle_message(inner: &Inner, inbox: &mpsc::Sender<Delivery>, msg: &redis::Msg) -> bool {
    bump(&inner.counters.received);
    let channel = msg.get_channel_name();
    let raw = msg.get_payload_bytes();
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
    // The redis crate reads the socket into its own unbounded queue; bounding how long we wait
    // for room in the inbox bounds how far that queue can grow behind a stalled server.
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
        assert!(d.wanted.contains("ws:room:r") && d.wanted.contains("ws:broadcast"));
        assert_eq!(d.dirty.len(), 1);
        drop(d);
        let pattern = SubShared::new(SubscriptionMode::Pattern);
        pattern.set_interest(&room, true);
        assert!(lock(&pattern.desired).dirty.is_empty());
    }
}
