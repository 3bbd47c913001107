//! [`RedisConfig`]: where Redis is, how to subscribe, timeouts, backoff and signing.

use super::*;

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
    pub(super) urls: Vec<String>,
    pub(super) cluster: bool,
    pub(super) mode: SubscriptionMode,
    pub(super) signing_key: Option<SigningKey>,
    pub(super) connect_timeout: Duration,
    pub(super) publish_timeout: Duration,
    pub(super) reconnect_min: Duration,
    pub(super) reconnect_max: Duration,
    pub(super) health_check_interval: Duration,
    pub(super) limits: Limits,
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

    /// One Redis server, e.g. `redis://:password@127.0.0.1:6379/0` or
    /// `redis://user:password@host:6379` (`redis+unix:///path?pass=…` works too; `rediss://`
    /// needs a TLS feature of the `redis` crate, whose pub/sub connection the subscriber then
    /// uses instead of its own).
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
    pub(super) fn nodes(&self) -> Result<Vec<Node>, BrokerError> {
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

/// A URL without its password, for messages.
pub(super) fn redact(url: &str) -> String {
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
