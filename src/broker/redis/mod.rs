//! The Redis broker: scale out across processes on one Redis, single node or Redis Cluster.
//!
//! # Connections
//! A [`RedisBroker`] owns one connection for publishing, and every [`Subscription`] it hands out
//! owns one pub/sub connection. Both are the broker's own, opened from the configured URLs, so
//! pub/sub traffic never shares a socket with the application's Redis usage (the reference's
//! `duplicate()` does the same). A subscription's connection to a TCP or Unix-socket Redis is
//! the project's own (`conn`): commands are written as RESP2 and replies decoded in place by
//! [`crate::protocol::resp`], in a buffer that never holds more than one reply; over `rediss://`
//! it is the `redis` crate's pub/sub connection.
//!
//! # Subscription modes
//! * [`SubscriptionMode::Interest`] (the default): `SUBSCRIBE ws:broadcast`, plus the exact
//!   `ws:room:{room}` and `ws:user:{id}` channels this instance has local members for. The hub
//!   calls [`Subscription::watch`] on a channel's first local member and
//!   [`Subscription::unwatch`] when the last one leaves; Redis then only sends an instance the
//!   traffic it can deliver. Its own clients' `ws:client:{id}` and `ws:room:{id}` channels come
//!   through two patterns, `PSUBSCRIBE ws:client:{prefix}* ws:room:{prefix}*`, since every client
//!   id of an instance starts with its prefix ([`Subscription::watch_own_ids`]): a connection
//!   costs one `SUBSCRIBE` (its user's channel) rather than three, and a channel under the prefix
//!   is never subscribed by name as well, so nothing arrives twice.
//! * [`SubscriptionMode::Pattern`]: the reference's `SUBSCRIBE ws:broadcast` +
//!   `PSUBSCRIBE ws:room:* ws:client:* ws:user:*`; every instance receives every message.
//!
//! Both use the reference's channel names, so reference servers and emitters on the same Redis
//! reach sealcast instances and the other way round.
//!
//! # Redis Cluster
//! Classic `PUBLISH`/`SUBSCRIBE` are not sharded: a message published on any node is forwarded
//! over the cluster bus to subscribers on every node. The broker therefore treats cluster nodes as
//! equivalent endpoints: it publishes through one node and subscribes on one node, and when a node
//! dies it moves to the next. With [`RedisConfig::cluster`] it also learns the other nodes from
//! `CLUSTER NODES`, so one seed URL is enough to fail over. (A slot-routing cluster client would
//! send `PUBLISH` to the node owning the channel name's slot and fail whenever that node is down,
//! which pub/sub does not need.)
//!
//! # Resilience
//! When Redis goes away, local delivery carries on: [`Broker::publish`] fails with
//! [`BrokerError::Unavailable`] within [`RedisConfig::publish_timeout`] (at once while a reconnect
//! is backing off), counts the failure in [`RedisBroker::stats`] and logs it (`warn`, at most once
//! a second). Subscribers reconnect with capped, jittered exponential backoff
//! ([`RedisConfig::reconnect_backoff`]) and resubscribe to everything they should hold.
//! [`Broker::is_ready`] says whether the connections are up.
//!
//! # Untrusted input
//! The subscriber reads lengths from their headers before their bytes: a message longer than
//! [`Limits::max_envelope_bytes`] is skipped as it arrives, never buffered, and counted as
//! invalid. Whatever arrives from Redis is parsed with [`Envelope::parse`] under [`Limits`]; malformed
//! envelopes, envelopes whose type or target disagree with their channel, and (with a
//! [`RedisConfig::signing_key`]) unsigned or badly signed envelopes are dropped, logged and
//! counted in [`RedisStats::dropped_invalid`]. See [`SigningKey`] for the signature's wire form.

use std::{
    fmt,
    str::FromStr,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError,
    aio::MultiplexedConnection,
};
use tokio::{
    sync::{Notify, mpsc, watch},
    task::JoinHandle,
    time::{Instant, timeout},
};

use super::{BoxFuture, Broker, BrokerError, Delivery, Subscription, signing::SigningKey};
use crate::protocol::{Channel, Envelope, Limits};

mod config;
mod conn;
mod subscriber;

pub use config::{RedisConfig, SubscriptionMode};
use subscriber::{RedisSubscription, SubShared, run_subscriber};
/// Counters of a [`RedisBroker`], since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Envelopes published successfully.
    pub published: u64,
    /// Publishes that failed (Redis unreachable, timed out, or refused the command).
    pub publish_failures: u64,
    /// Messages received from Redis, valid or not.
    pub received: u64,
    /// Received messages dropped as malformed, oversized, too deep, mismatched with their
    /// channel, or (with a signing key) unsigned or badly signed.
    pub dropped_invalid: u64,
    /// Valid envelopes dropped because the server's inbox stayed full for
    /// [`RedisConfig::INBOX_SEND_TIMEOUT`].
    pub dropped_overflow: u64,
    /// Connections (publisher or subscriber) re-established after being lost.
    pub reconnects: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    publish_failures: AtomicU64,
    received: AtomicU64,
    dropped_invalid: AtomicU64,
    dropped_overflow: AtomicU64,
    reconnects: AtomicU64,
}

fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed) + 1
}

/// Publishes and subscribes through Redis. Cheap to clone (an `Arc` inside).
///
/// ```no_run
/// # async fn demo() -> Result<(), sealcast::broker::BrokerError> {
/// use sealcast::broker::{RedisBroker, RedisConfig};
///
/// let broker = RedisBroker::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
/// // hand `broker` to the server builder; every instance on this Redis is one deployment.
/// println!("{:?}", broker.stats());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisConfig,
    nodes: Nodes,
    publisher: Publisher,
    counters: Counters,
    closed: AtomicBool,
    // std Mutex: held only to push, prune or take entries, never across an await.
    subscriptions: Mutex<Vec<(Weak<SubShared>, JoinHandle<()>)>>,
    publish_warnings: LogLimiter,
    invalid_warnings: LogLimiter,
}

impl RedisBroker {
    /// A broker that connects on first use: it checks the configuration but opens no
    /// connection yet.
    pub fn new(config: RedisConfig) -> Result<Self, BrokerError> {
        let nodes = config.nodes()?;
        let publisher = Publisher::new(&config);
        Ok(Self {
            inner: Arc::new(Inner {
                nodes: Nodes(Mutex::new(nodes)),
                publisher,
                counters: Counters::default(),
                closed: AtomicBool::new(false),
                subscriptions: Mutex::new(Vec::new()),
                publish_warnings: LogLimiter::new(),
                invalid_warnings: LogLimiter::new(),
                config,
            }),
        })
    }

    /// A broker with its publishing connection open (each node tried for at most
    /// [`RedisConfig::connect_timeout`]); in cluster mode the other nodes are discovered too.
    /// Fails with [`BrokerError::Unavailable`], naming the URLs, when no node answers.
    pub async fn connect(config: RedisConfig) -> Result<Self, BrokerError> {
        let broker = Self::new(config)?;
        let inner = &broker.inner;
        let (_, mut conn, node) = inner
            .connect_publisher()
            .await
            .map_err(BrokerError::Unavailable)?;
        if inner.config.cluster {
            let _ = timeout(
                inner.config.connect_timeout,
                discover(inner, &node, &mut conn),
            )
            .await;
        }
        Ok(broker)
    }

    /// A snapshot of the broker's counters.
    pub fn stats(&self) -> RedisStats {
        let c = &self.inner.counters;
        RedisStats {
            published: c.published.load(Ordering::Relaxed),
            publish_failures: c.publish_failures.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            dropped_invalid: c.dropped_invalid.load(Ordering::Relaxed),
            dropped_overflow: c.dropped_overflow.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
        }
    }

    /// The nodes the broker knows, as `redis://host:port` (configured ones first, then those
    /// discovered in cluster mode). Never includes credentials.
    pub fn known_nodes(&self) -> Vec<String> {
        self.inner
            .nodes
            .snapshot()
            .iter()
            .map(|n| n.label.clone())
            .collect()
    }

    /// The configuration the broker was built with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroker")
            .field("nodes", &self.known_nodes())
            .field("mode", &self.inner.config.mode)
            .field("ready", &self.is_ready())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Broker for RedisBroker {
    fn publish(&self, envelope: Arc<Envelope>) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move {
            let inner = &self.inner;
            if inner.closed.load(Ordering::Acquire) {
                return Err(BrokerError::Closed);
            }
            let channel = envelope.channel().name();
            let payload = match &inner.config.signing_key {
                Some(key) => key.sign(&envelope),
                None => envelope.to_json(),
            };
            match inner.publish_payload(&channel, &payload).await {
                Ok(()) => {
                    bump(&inner.counters.published);
                    Ok(())
                }
                Err(reason) => {
                    let failures = bump(&inner.counters.publish_failures);
                    if let Some(suppressed) = inner.publish_warnings.allow() {
                        tracing::warn!(
                            %channel,
                            error = %reason,
                            failures_total = failures,
                            suppressed,
                            "redis publish failed; local delivery is unaffected"
                        );
                    }
                    Err(BrokerError::Unavailable(reason))
                }
            }
        })
    }

    fn subscribe(
        &self,
        inbox: mpsc::Sender<Delivery>,
    ) -> BoxFuture<'_, Result<Box<dyn Subscription>, BrokerError>> {
        Box::pin(async move {
            let inner = &self.inner;
            if inner.closed.load(Ordering::Acquire) {
                return Err(BrokerError::Closed);
            }
            let shared = Arc::new(SubShared::new(inner.config.mode));
            let mut ready = shared.ready.subscribe();
            let task = tokio::spawn(run_subscriber(inner.clone(), shared.clone(), inbox));
            {
                let mut subs = lock(&inner.subscriptions);
                subs.retain(|(s, handle)| s.strong_count() > 0 && !handle.is_finished());
                subs.push((Arc::downgrade(&shared), task));
            }
            // Wait (bounded) for the first subscription, so that what is published after
            // `subscribe` returns is received; if Redis is down the task keeps retrying.
            let first = timeout(inner.config.connect_timeout, ready.wait_for(|r| *r)).await;
            if !matches!(first, Ok(Ok(_))) {
                tracing::warn!("redis subscriber is not connected yet; it keeps retrying");
            }
            Ok(Box::new(RedisSubscription { shared }) as Box<dyn Subscription>)
        })
    }

    fn is_ready(&self) -> bool {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) || !inner.publisher.is_connected() {
            return false;
        }
        lock(&inner.subscriptions)
            .iter()
            .filter_map(|(s, _)| s.upgrade())
            .filter(|s| !*s.stop.borrow())
            .all(|s| *s.ready.borrow())
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let inner = &self.inner;
            inner.closed.store(true, Ordering::Release);
            let subs = std::mem::take(&mut *lock(&inner.subscriptions));
            for (shared, _) in &subs {
                if let Some(shared) = shared.upgrade() {
                    shared.stop.send_replace(true);
                }
            }
            for (_, handle) in subs {
                let abort = handle.abort_handle();
                if timeout(Duration::from_secs(1), handle).await.is_err() {
                    abort.abort();
                }
            }
            lock(&inner.publisher.state).conn = None;
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// One Redis endpoint: how to connect, and a credential-free label for logs and errors.
#[derive(Clone)]
struct Node {
    info: ConnectionInfo,
    label: String,
}

impl Node {
    fn new(info: ConnectionInfo) -> Self {
        let label = match info.addr() {
            ConnectionAddr::Unix(path) => format!("redis+unix://{}", path.display()),
            addr @ ConnectionAddr::TcpTls { .. } => format!("rediss://{addr}"),
            addr => format!("redis://{addr}"),
        };
        Self { info, label }
    }

    fn client(&self) -> Result<Client, String> {
        Client::open(self.info.clone()).map_err(|e| format!("{}: {e}", self.label))
    }
}

/// The known nodes: the configured ones, then those discovered in cluster mode.
struct Nodes(Mutex<Vec<Node>>);

impl Nodes {
    fn snapshot(&self) -> Vec<Node> {
        lock(&self.0).clone()
    }

    /// Adds `addrs` (from `CLUSTER NODES` on `seed`) with `seed`'s credentials and TLS settings.
    fn merge(&self, seed: &Node, addrs: Vec<(String, u16)>) {
        let mut nodes = lock(&self.0);
        for (host, port) in addrs {
            let addr = match seed.info.addr() {
                ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(host, port),
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => return,
            };
            let key = addr.to_string();
            if nodes.iter().any(|n| n.info.addr().to_string() == key) {
                continue;
            }
            let node = Node::new(seed.info.clone().set_addr(addr));
            tracing::debug!(node = %node.label, "discovered redis cluster node");
            nodes.push(node);
        }
    }
}

/// Learns the cluster's other nodes from `CLUSTER NODES` on `conn` (connected to `node`).
async fn discover(inner: &Inner, node: &Node, conn: &mut MultiplexedConnection) {
    match redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async::<String>(conn)
        .await
    {
        Ok(text) => inner.nodes.merge(node, parse_cluster_nodes(&text)),
        Err(e) => tracing::debug!(node = %node.label, error = %e, "CLUSTER NODES failed"),
    }
}

/// Opens a short-lived connection to `node` and runs [`discover`] on it.
async fn discover_from(inner: Arc<Inner>, node: Node) {
    let work = async {
        if let Ok(mut conn) = open_multiplexed(&inner.config, &node).await {
            discover(&inner, &node, &mut conn).await;
        }
    };
    let _ = timeout(inner.config.connect_timeout, work).await;
}

/// Reachable node addresses from `CLUSTER NODES` output: one line per node,
/// `<id> <ip:port@cport[,hostname]> <flags> ...`; failed, handshaking and address-less nodes are
/// skipped.
fn parse_cluster_nodes(text: &str) -> Vec<(String, u16)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _id = fields.next()?;
            let addr = fields.next()?;
            let flags = fields.next()?;
            if flags
                .split(',')
                .any(|f| matches!(f, "fail" | "fail?" | "handshake" | "noaddr"))
            {
                return None;
            }
            let host_port = addr.split(['@', ',']).next()?;
            let (host, port) = host_port.rsplit_once(':')?;
            let port: u16 = port.parse().ok()?;
            if host.is_empty() || port == 0 {
                return None;
            }
            Some((host.to_owned(), port))
        })
        .collect()
}

async fn open_multiplexed(
    config: &RedisConfig,
    node: &Node,
) -> Result<MultiplexedConnection, String> {
    let client = node.client()?;
    let settings = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.publish_timeout));
    match timeout(
        config.connect_timeout,
        client.get_multiplexed_async_connection_with_config(&settings),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("{}: {e}", node.label)),
        Err(_) => Err(format!(
            "{}: connect timed out after {:?}",
            node.label, config.connect_timeout
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Publisher

/// The publishing connection, reconnected lazily (single-flight) with backoff.
struct Publisher {
    // std Mutex: held only to read or swap the connection slot, never across an await.
    state: Mutex<PubState>,
    // Held across the connect, so concurrent publishers wait for one attempt instead of
    // each opening a connection.
    connecting: tokio::sync::Mutex<()>,
}

struct PubState {
    conn: Option<(u64, MultiplexedConnection)>,
    generation: u64,
    /// No connection attempt before this instant (set when an attempt fails).
    retry_at: Option<Instant>,
    backoff: Backoff,
    next_node: usize,
    ever_connected: bool,
}

impl Publisher {
    fn new(config: &RedisConfig) -> Self {
        Self {
            state: Mutex::new(PubState {
                conn: None,
                generation: 0,
                retry_at: None,
                backoff: Backoff::new(config),
                next_node: random_index(),
                ever_connected: false,
            }),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn is_connected(&self) -> bool {
        lock(&self.state).conn.is_some()
    }

    /// The current connection; `Ok(None)` when one may be opened now; an error while backing off.
    fn current(&self) -> Result<Option<(u64, MultiplexedConnection)>, String> {
        let st = lock(&self.state);
        if let Some((generation, conn)) = &st.conn {
            return Ok(Some((*generation, conn.clone())));
        }
        let now = Instant::now();
        match st.retry_at {
            Some(at) if now < at => Err(format!(
                "redis is unreachable; next connection attempt in {:?}",
                at - now
            )),
            _ => Ok(None),
        }
    }

    /// Forgets connection `generation` after it failed, so the next publish reconnects.
    fn invalidate(&self, generation: u64) {
        let mut st = lock(&self.state);
        if st.conn.as_ref().is_some_and(|(g, _)| *g == generation) {
            st.conn = None;
        }
    }
}

/// Arms the backoff unless the connect attempt succeeds, also when the attempt is cancelled by
/// the caller's timeout.
struct AttemptGuard<'a> {
    publisher: &'a Publisher,
    armed: bool,
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut st = lock(&self.publisher.state);
            let delay = st.backoff.next_delay();
            st.retry_at = Some(Instant::now() + delay);
            st.next_node = st.next_node.wrapping_add(1);
        }
    }
}

impl Inner {
    /// Publishes `payload` on `channel`, within `publish_timeout`.
    async fn publish_payload(&self, channel: &str, payload: &str) -> Result<(), String> {
        let mut used: Option<u64> = None;
        let attempt = async {
            let mut last_error = String::new();
            // A second try only when the first failed on a connection that turned out to be
            // dead (Redis restarted since it was opened): it reconnects at once.
            for _ in 0..2 {
                let (generation, mut conn) = self.publisher_connection().await?;
                used = Some(generation);
                let result = redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<i64>(&mut conn)
                    .await;
                match result {
                    Ok(_) => return Ok(()),
                    Err(e) => {
                        self.publisher.invalidate(generation);
                        if !is_connection_error(&e) {
                            return Err(e.to_string());
                        }
                        last_error = e.to_string();
                    }
                }
            }
            Err(last_error)
        };
        let limit = self.config.publish_timeout;
        let outcome = timeout(limit, attempt).await;
        match outcome {
            Ok(result) => result,
            Err(_) => {
                if let Some(generation) = used {
                    self.publisher.invalidate(generation);
                }
                Err(format!("publish timed out after {limit:?}"))
            }
        }
    }

    async fn publisher_connection(&self) -> Result<(u64, MultiplexedConnection), String> {
        if let Some(current) = self.publisher.current()? {
            return Ok(current);
        }
        let _single_flight = self.publisher.connecting.lock().await;
        if let Some(current) = self.publisher.current()? {
            return Ok(current);
        }
        self.connect_publisher()
            .await
            .map(|(generation, conn, _)| (generation, conn))
    }

    /// Opens the publishing connection, trying every node in turn.
    async fn connect_publisher(&self) -> Result<(u64, MultiplexedConnection, Node), String> {
        let mut guard = AttemptGuard {
            publisher: &self.publisher,
            armed: true,
        };
        let nodes = self.nodes.snapshot();
        let start = lock(&self.publisher.state).next_node;
        let mut errors = Vec::new();
        for i in 0..nodes.len() {
            if self.closed.load(Ordering::Acquire) {
                return Err("broker is shut down".into());
            }
            let index = (start.wrapping_add(i)) % nodes.len();
            let node = &nodes[index];
            match open_multiplexed(&self.config, node).await {
                Ok(conn) => {
                    guard.armed = false;
                    let mut st = lock(&self.publisher.state);
                    st.generation += 1;
                    st.conn = Some((st.generation, conn.clone()));
                    st.retry_at = None;
                    st.backoff.reset();
                    st.next_node = index;
                    if st.ever_connected {
                        bump(&self.counters.reconnects);
                        tracing::info!(node = %node.label, "redis publisher reconnected");
                    }
                    st.ever_connected = true;
                    return Ok((st.generation, conn, node.clone()));
                }
                Err(e) => errors.push(e),
            }
        }
        Err(format!("cannot connect to redis: {}", errors.join("; ")))
    }

    /// Counts and logs a dropped envelope (debug each, warn at most once a second).
    fn drop_invalid(&self, channel: &str, reason: &dyn fmt::Display) {
        let total = bump(&self.counters.dropped_invalid);
        tracing::debug!(%channel, %reason, "dropped envelope from redis");
        if let Some(suppressed) = self.invalid_warnings.allow() {
            tracing::warn!(
                %channel,
                %reason,
                dropped_total = total,
                suppressed,
                "dropped invalid envelope from redis"
            );
        }
    }
}

fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Capped exponential backoff with jitter.
struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    fn new(config: &RedisConfig) -> Self {
        Self {
            min: config.reconnect_min,
            max: config.reconnect_max,
            attempt: 0,
        }
    }

    /// `min * 2^attempt` capped at `max`, then a random point between half of it and all of it.
    fn next_delay(&mut self) -> Duration {
        let base = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = base / 2;
        let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        let jitter = getrandom::u64().unwrap_or(0) % span.saturating_add(1);
        half + Duration::from_micros(jitter)
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A random starting index, so instances spread over cluster nodes.
fn random_index() -> usize {
    usize::try_from(getrandom::u64().unwrap_or(0) % 1024).unwrap_or(0)
}

/// Lets a warning through at most once a second and counts what it held back.
struct LogLimiter {
    base: std::time::Instant,
    /// Milliseconds since `base` of the last warning; `u64::MAX` before the first.
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    const EVERY_MS: u64 = 1000;

    fn new() -> Self {
        Self {
            base: std::time::Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last warning)` when a warning may be logged now.
    fn allow(&self) -> Option<u64> {
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= Self::EVERY_MS;
        if due
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::{config::redact, *};

    #[test]
    fn cluster_nodes_output_is_parsed() {
        let text = "\
07c3 127.0.0.1:30004@31004 master - 0 1426238317239 4 connected 0-5460
67ed 127.0.0.1:30002@31002,node-b master - 0 1426238316232 2 connected 5461-10922
2929 127.0.0.1:30003@31003 myself,master - 0 0 3 connected 10923-16383
aaaa 127.0.0.1:30005@31005 master,fail - 0 0 5 disconnected
bbbb :0@0 master,noaddr - 0 0 6 disconnected
cccc ::1:30006@31006 slave 07c3 0 0 4 connected
";
        assert_eq!(
            parse_cluster_nodes(text),
            vec![
                ("127.0.0.1".to_owned(), 30004),
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30003),
                ("::1".to_owned(), 30006),
            ]
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let config = RedisConfig::new("redis://x")
            .reconnect_backoff(Duration::from_millis(100), Duration::from_secs(5));
        let mut b = Backoff::new(&config);
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let second = b.next_delay();
        assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
        for _ in 0..10 {
            b.next_delay();
        }
        for _ in 0..40 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(2500) && d <= Duration::from_secs(5),
                "{d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn urls_are_validated_and_redacted() {
        assert!(matches!(
            RedisBroker::new(RedisConfig::new("not a url")),
            Err(BrokerError::Config(_))
        ));
        assert!(matches!(
            RedisBroker::new(RedisConfig::from_urls(Vec::<String>::new())),
            Err(BrokerError::Config(_))
        ));
        assert_eq!(redact("redis://:hunter2@host:1/0"), "redis://***@host:1/0");
        assert_eq!(redact("redis://host:1"), "redis://host:1");
        let config = RedisConfig::new("redis://user:hunter2@127.0.0.1:7000");
        assert!(!format!("{config:?}").contains("hunter2"));
        let broker = RedisBroker::new(config).unwrap();
        assert_eq!(broker.known_nodes(), vec!["redis://127.0.0.1:7000"]);
        let parsed: RedisConfig = "redis://a:1, redis://b:2".parse().unwrap();
        assert!(parsed.is_cluster());
        assert_eq!(parsed.urls().len(), 2);
    }

    #[test]
    fn discovered_nodes_inherit_credentials_and_deduplicate() {
        let broker = RedisBroker::new(RedisConfig::new("redis://:pw@127.0.0.1:7000")).unwrap();
        let seed = broker.inner.nodes.snapshot()[0].clone();
        broker.inner.nodes.merge(
            &seed,
            vec![("127.0.0.1".into(), 7000), ("127.0.0.1".into(), 7001)],
        );
        let nodes = broker.inner.nodes.snapshot();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].info.redis_settings().password(), Some("pw"));
        assert_eq!(nodes[1].label, "redis://127.0.0.1:7001");
    }

    #[test]
    fn log_limiter_lets_one_warning_through_per_second() {
        let l = LogLimiter::new();
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        assert_eq!(l.suppressed.load(Ordering::Relaxed), 2);
    }
}
