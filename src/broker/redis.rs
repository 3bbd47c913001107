//! The Redis broker: scale out across processes on one Redis, single node or Redis Cluster.
//!
//! # Connections
//! A [`RedisBroker`] owns one connection for publishing, and every [`Subscription`] it hands out
//! owns one pub/sub connection. Both are the broker's own, opened from the configured URLs, so
//! pub/sub traffic never shares a socket with the application's Redis usage (the reference's
//! `duplicate()` does the same).
//!
//! # Subscription modes
//! * [`SubscriptionMode::Interest`] (the default): `SUBSCRIBE ws:broadcast`, plus the exact
//!   `ws:room:{room}`, `ws:client:{id}` and `ws:user:{id}` channels this instance has local members
//!   for. The hub calls [`Subscription::watch`] on a channel's first local member and
//!   [`Subscription::unwatch`] when the last one leaves; Redis then only sends an instance the
//!   traffic it can deliver.
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
//! Whatever arrives from Redis is parsed with [`Envelope::parse`] under [`Limits`]; malformed
//! envelopes, envelopes whose type or target disagree with their channel, and (with a
//! [`RedisConfig::signing_key`]) unsigned or badly signed envelopes are dropped, logged and
//! counted in [`RedisStats::dropped_invalid`]. See [`SigningKey`] for the signature's wire form.

use std::{
    collections::HashSet,
    fmt,
    str::FromStr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError,
    aio::{MultiplexedConnection, PubSubSink, PubSubStream},
};
use tokio::{
    sync::{Notify, mpsc, watch},
    task::JoinHandle,
    time::{Instant, timeout},
};

use super::{BoxFuture, Broker, BrokerError, Delivery, Subscription, signing::SigningKey};
use crate::protocol::{Channel, Envelope, Limits};

/// How a subscriber chooses its Redis subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionMode {
    /// The reference's scheme: `ws:broadcast` plus the patterns `ws:room:*`, `ws:client:*` and
    /// `ws:user:*`. Every instance receives every message.
    Pattern,
    /// `ws:broadcast` plus exact channels for the rooms, clients and users this instance has
    /// local members for (see [`Subscription::watch`]). The default.
    #[default]
    Interest,
}

/// Where and how a [`RedisBroker`] (or an [`Emitter`](crate::emitter::Emitter)) talks to Redis.
///
/// ```
/// use std::time::Duration;
/// use sealcast::broker::{RedisConfig, SigningKey, SubscriptionMode};
///
/// let single = RedisConfig::new("redis://127.0.0.1:6379");
/// let cluster = RedisConfig::from_urls(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
///     .subscription_mode(SubscriptionMode::Pattern)
///     .signing_key(SigningKey::new("a shared secret of 16+ bytes").unwrap())
///     .publish_timeout(Duration::from_millis(500));
/// assert!(!single.is_cluster() && cluster.is_cluster());
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    urls: Vec<String>,
    cluster: bool,
    mode: SubscriptionMode,
    signing_key: Option<SigningKey>,
    connect_timeout: Duration,
    publish_timeout: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
    health_check_interval: Duration,
    limits: Limits,
}

impl RedisConfig {
    /// Default for [`RedisConfig::connect_timeout`]: 3 s.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
    /// Default for [`RedisConfig::publish_timeout`]: 1 s.
    pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
    /// Default first delay of [`RedisConfig::reconnect_backoff`]: 100 ms.
    pub const RECONNECT_MIN: Duration = Duration::from_millis(100);
    /// Default cap of [`RedisConfig::reconnect_backoff`]: 5 s.
    pub const RECONNECT_MAX: Duration = Duration::from_secs(5);
    /// Default for [`RedisConfig::health_check_interval`]: 5 s.
    pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);
    /// How long a subscriber waits for room in a full server inbox before dropping an envelope
    /// (counted in [`RedisStats::dropped_overflow`]): 1 s.
    pub const INBOX_SEND_TIMEOUT: Duration = Duration::from_secs(1);

    /// One Redis server, e.g. `redis://:password@127.0.0.1:6379/0` (`rediss://` needs a TLS
    /// feature of the `redis` crate; `redis+unix:///path` works too).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            cluster: false,
            mode: SubscriptionMode::default(),
            signing_key: None,
            connect_timeout: Self::CONNECT_TIMEOUT,
            publish_timeout: Self::PUBLISH_TIMEOUT,
            reconnect_min: Self::RECONNECT_MIN,
            reconnect_max: Self::RECONNECT_MAX,
            health_check_interval: Self::HEALTH_CHECK_INTERVAL,
            limits: Limits::default(),
        }
    }

    /// Several URLs: nodes of one Redis Cluster (cluster mode is switched on when more than one
    /// URL is given). Tried in turn when one is unreachable.
    pub fn from_urls<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        let cluster = urls.len() > 1;
        Self {
            urls,
            cluster,
            ..Self::new(String::new())
        }
    }

    /// Whether the URLs are Redis Cluster nodes: the broker then discovers the other nodes with
    /// `CLUSTER NODES` and fails over between them. Defaults to `true` when several URLs are
    /// given, `false` for one.
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// How subscribers choose their subscriptions. Defaults to [`SubscriptionMode::Interest`].
    pub fn subscription_mode(mut self, mode: SubscriptionMode) -> Self {
        self.mode = mode;
        self
    }

    /// Signs every published envelope and drops every received envelope that is unsigned or
    /// badly signed. All instances and emitters on the bus must share the key; reference peers
    /// do not sign, so they cannot talk to a signing deployment. Defaults to no signing.
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// Bound on opening one connection to one node (TCP, handshake and the initial
    /// subscriptions). Defaults to [`RedisConfig::CONNECT_TIMEOUT`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bound on one publish, reconnecting included: a publish never keeps its caller longer.
    /// Defaults to [`RedisConfig::PUBLISH_TIMEOUT`].
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// Reconnect delays: `min`, doubling up to `max`, each with random jitter (between half and
    /// all of the delay). Defaults to [`RedisConfig::RECONNECT_MIN`] and
    /// [`RedisConfig::RECONNECT_MAX`].
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// How often an idle subscriber pings Redis to notice a dead connection that sent no reset.
    /// Defaults to [`RedisConfig::HEALTH_CHECK_INTERVAL`].
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        self.health_check_interval = interval;
        self
    }

    /// Limits applied to envelopes received from Redis (size, JSON depth). Defaults to
    /// [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The configured URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Whether cluster mode is on.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The subscription mode.
    pub fn mode(&self) -> SubscriptionMode {
        self.mode
    }

    /// Parses every URL into a node.
    fn nodes(&self) -> Result<Vec<Node>, BrokerError> {
        if self.urls.is_empty() || self.urls.iter().any(|u| u.trim().is_empty()) {
            return Err(BrokerError::Config("no Redis URL given".into()));
        }
        self.urls
            .iter()
            .map(|url| {
                url.trim()
                    .into_connection_info()
                    .map(Node::new)
                    .map_err(|e| {
                        BrokerError::Config(format!("invalid Redis URL {}: {e}", redact(url)))
                    })
            })
            .collect()
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact(u)).collect();
        f.debug_struct("RedisConfig")
            .field("urls", &urls)
            .field("cluster", &self.cluster)
            .field("mode", &self.mode)
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "<redacted>"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("publish_timeout", &self.publish_timeout)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("health_check_interval", &self.health_check_interval)
            .field("limits", &self.limits)
            .finish()
    }
}

impl From<&str> for RedisConfig {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<String> for RedisConfig {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

impl FromStr for RedisConfig {
    type Err = BrokerError;

    /// One URL, or several separated by commas (cluster nodes).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let urls: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let config = Self::from_urls(urls);
        config.nodes()?;
        Ok(config)
    }
}

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

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
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
// Subscriber

/// What a subscription's task and its handle share.
struct SubShared {
    mode: SubscriptionMode,
    // std Mutex: `watch`/`unwatch` are sync and may run under the hub's lock; held only to
    // edit the sets.
    desired: Mutex<Desired>,
    /// Wakes the task after `desired` changed. A `Notify` keeps at most one permit, so any number
    /// of changes coalesce into one resync: no queue grows, whatever the churn.
    changed: Notify,
    ready: watch::Sender<bool>,
    stop: watch::Sender<bool>,
}

/// The exact channels a subscriber should hold (interest mode).
struct Desired {
    wanted: HashSet<String>,
    /// Channels whose wanted state changed since the task last synced; bounded by the number of
    /// distinct channels touched, and emptied by every sync.
    dirty: HashSet<String>,
}

impl SubShared {
    fn new(mode: SubscriptionMode) -> Self {
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

    fn set_interest(&self, channel: &Channel, wanted: bool) {
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
struct RedisSubscription {
    shared: Arc<SubShared>,
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
async fn run_subscriber(inner: Arc<Inner>, shared: Arc<SubShared>, inbox: mpsc::Sender<Delivery>) {
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
    use super::*;

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

    #[test]
    fn log_limiter_lets_one_warning_through_per_second() {
        let l = LogLimiter::new();
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        assert_eq!(l.suppressed.load(Ordering::Relaxed), 2);
    }
}
