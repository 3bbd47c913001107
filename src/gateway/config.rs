//! The gateway's configuration: a TOML file, `SEALCAST_*` environment variables and command-line
//! flags, merged in that order (later wins) and validated into a [`Config`] whose errors name the
//! offending key (and the variable or flag that set it).
//!
//! Every key has a default, so an empty file (or none) is a valid configuration: the demo on
//! `127.0.0.1:8080` with the in-memory broker. Every scalar or list key can be set from the
//! environment as `SEALCAST_` followed by its dotted path in upper case with `.` replaced by `_`
//! (`auth.jwt.secret` → `SEALCAST_AUTH_JWT_SECRET`); lists are comma-separated. `SEALCAST_REDIS`
//! and `SEALCAST_SIGNING_KEY` (the names `sealcast emit` reads) are accepted for `redis.url` and
//! `redis.signing_key` too. `[[rooms.rules]]` can only be set in the file.

use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use zeroize::Zeroize;

/// The prefix of every environment variable the gateway reads.
pub const ENV_PREFIX: &str = "SEALCAST_";

/// An invalid configuration. Its message names the key, and where the bad value came from when
/// it was not the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The dotted key (`auth.jwt.secret`), or the file for errors about the file as a whole.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
    /// The environment variable or flag that set the value, if not the file.
    pub origin: Option<String>,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            origin: None,
        }
    }

    fn render(&self) -> String {
        match &self.origin {
            Some(origin) => format!("`{}` (set by {origin}): {}", self.key, self.message),
            None => format!("`{}`: {}", self.key, self.message),
        }
    }
}

// ---- value types ----

/// A secret string (key, password): never printed by `Debug`, serialized as `"<redacted>"`,
/// wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// What `--print-config` shows instead of a secret.
    pub const REDACTED: &'static str = "<redacted>";

    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Self::REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A duration written the humantime way: `"5s"`, `"500ms"`, `"1m 30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            de::Error::custom(format!(
                "invalid duration {s:?} ({e}): write a number and a unit, like \"5s\" or \"500ms\""
            ))
        })
    }
}

// ---- the configuration ----

/// The gateway's effective configuration. Field docs give each key's default; the README (section "`sealcast serve`")
/// lists them with their environment variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, `IP:PORT` (port 0 picks a free one). Defaults to `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Serve the demo page at `/`. Defaults to `true`.
    pub demo: bool,
    /// Longest graceful shutdown (closing clients, draining webhooks) before the process exits
    /// anyway. Defaults to `10s`.
    pub shutdown_timeout: Dur,
    /// Logging.
    pub log: LogConfig,
    /// WebSocket server options.
    pub server: ServerConfig,
    /// End-to-end encryption of deliveries.
    pub encryption: EncryptionConfig,
    /// Redis, to scale out over several gateway instances.
    pub redis: RedisSection,
    /// Who may connect.
    pub auth: AuthConfig,
    /// Which rooms clients may join.
    pub rooms: RoomsConfig,
    /// The demo's chat relay.
    pub chat: ChatConfig,
    /// The HTTP API for backends.
    pub api: ApiConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Connect/disconnect notifications to an HTTP endpoint.
    pub webhook: WebhookConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            demo: true,
            shutdown_timeout: Dur::secs(10),
            log: LogConfig::default(),
            server: ServerConfig::default(),
            encryption: EncryptionConfig::default(),
            redis: RedisSection::default(),
            auth: AuthConfig::default(),
            rooms: RoomsConfig::default(),
            chat: ChatConfig::default(),
            api: ApiConfig::default(),
            metrics: MetricsConfig::default(),
            webhook: WebhookConfig::default(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines. The default.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` or `"json"`. Defaults to `"text"`.
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `sealcast=debug,warn`); `RUST_LOG` overrides it.
    /// Defaults to `"info"`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// `[server]`: the WebSocket server's options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// A name for logs. Defaults to `"sealcast"`.
    pub identifier: String,
    /// The WebSocket path. Defaults to `"/ws"`.
    pub path: String,
    /// Rooms every client joins after authentication.
    /// Defaults to `["ws-default", "ws-notification"]`.
    pub default_rooms: Vec<String>,
    /// Time a client has to send `authenticate`. Defaults to `5s`.
    pub auth_timeout: Dur,
    /// Stale-client sweep interval. Defaults to `30s`.
    pub heartbeat_interval: Dur,
    /// Inactivity before close 4002. Defaults to `90s`.
    pub heartbeat_timeout: Dur,
    /// Transport idle close; `0s` disables. Defaults to `60s`.
    pub idle_timeout: Dur,
    /// Largest inbound frame in bytes (1009 past it). Defaults to `131072` (128 KiB).
    pub max_payload_bytes: usize,
    /// Bytes queued per client before frames are dropped. Defaults to `1048576` (1 MiB).
    pub backpressure_limit_bytes: usize,
    /// Close slow clients (1008) instead of dropping frames. Defaults to `false`.
    pub close_on_backpressure_limit: bool,
    /// Most rooms per client. Defaults to `256`.
    pub max_rooms_per_client: usize,
    /// Browser origins allowed to open a WebSocket (`https://app.example.com`); empty allows
    /// any. Defaults to `[]`.
    pub allowed_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let o = crate::ServerOptions::default();
        Self {
            identifier: o.identifier,
            path: o.path,
            default_rooms: o.default_rooms,
            auth_timeout: Dur(o.auth_timeout),
            heartbeat_interval: Dur(o.heartbeat_interval),
            heartbeat_timeout: Dur(o.heartbeat_timeout),
            idle_timeout: Dur(o.transport.idle_timeout),
            max_payload_bytes: o.transport.max_payload_length,
            backpressure_limit_bytes: o.transport.backpressure_limit,
            close_on_backpressure_limit: o.transport.close_on_backpressure_limit,
            max_rooms_per_client: o.limits.max_rooms_per_client,
            allowed_origins: Vec::new(),
        }
    }
}

/// Whether clients encrypt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionMode {
    /// Clients that offer a key get sealed delivery; others stay in plaintext. The default.
    #[default]
    Allowed,
    /// Clients without a successful handshake are closed with 4004.
    Required,
    /// No handshake is offered; everything is plaintext.
    Disabled,
}

/// `[encryption]`: the built-in profiles (v2, and v1 for the reference's clients).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// `"allowed"`, `"required"` or `"disabled"`. Defaults to `"allowed"`.
    pub mode: EncryptionMode,
    /// The profiles offered: `"v2"` (the hardened channel) and/or `"v1"` (the reference's,
    /// for compatibility). With only `"v2"` and `mode = "required"`, v1 and plaintext clients
    /// are refused. Defaults to `["v2", "v1"]`.
    pub profiles: Vec<String>,
    /// File holding the v2 server signing key (a P-256 secret: 32 bytes as base64 or hex).
    /// Clients that pin its public half authenticate the server. Without it a signing key is
    /// generated at start and its public half printed. Defaults to none.
    pub signing_key_file: Option<PathBuf>,
    /// File holding the server's P-256 secret key: 32 bytes as base64 or hex
    /// (`head -c 32 /dev/urandom | base64`). Without it a key pair is generated at start (fine
    /// for one instance; instances behind a load balancer do not need to share it).
    /// Defaults to none.
    pub key_file: Option<PathBuf>,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        Self {
            mode: EncryptionMode::default(),
            profiles: vec!["v2".to_owned(), "v1".to_owned()],
            signing_key_file: None,
            key_file: None,
        }
    }
}

impl EncryptionConfig {
    /// Whether `profile` (`"v1"` or `"v2"`) is offered.
    pub fn offers(&self, profile: &str) -> bool {
        self.mode != EncryptionMode::Disabled && self.profiles.iter().any(|p| p == profile)
    }
}

/// How Redis subscribers pick channels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionModeName {
    /// Only channels with local members. The default.
    #[default]
    Interest,
    /// `PSUBSCRIBE` every room, client and user channel (the reference's scheme).
    Pattern,
}

/// `[redis]`: scale out over several instances.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSection {
    /// Redis URL; several comma-separated URLs are Redis Cluster nodes. Without it the embedded
    /// memory broker is used (one instance). Defaults to none.
    pub url: Option<String>,
    /// Treat a single URL as a Redis Cluster node. Defaults to `false`.
    pub cluster: bool,
    /// Shared key (16+ bytes) signing and verifying every envelope. Defaults to none.
    pub signing_key: Option<Secret>,
    /// `"interest"` or `"pattern"`. Defaults to `"interest"`.
    pub subscription_mode: SubscriptionModeName,
    /// Bound on one connection attempt. Defaults to `3s`.
    pub connect_timeout: Dur,
    /// Bound on one publish. Defaults to `1s`.
    pub publish_timeout: Dur,
}

impl Default for RedisSection {
    fn default() -> Self {
        Self {
            url: None,
            cluster: false,
            signing_key: None,
            subscription_mode: SubscriptionModeName::Interest,
            connect_timeout: Dur(crate::broker::RedisConfig::CONNECT_TIMEOUT),
            publish_timeout: Dur(crate::broker::RedisConfig::PUBLISH_TIMEOUT),
        }
    }
}

/// How clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// INSECURE: the token is a user name (1–32 of `[A-Za-z0-9_-]`), nothing is verified.
    Demo,
    /// The token is a JWT verified with `[auth.jwt]`.
    Jwt,
}

/// `[auth]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `"demo"` or `"jwt"`. Defaults to `"jwt"` when `auth.jwt.secret` or
    /// `auth.jwt.public_key_file` is set, `"demo"` otherwise.
    pub mode: Option<AuthMode>,
    /// JWT verification.
    pub jwt: JwtConfig,
}

/// JWT signature algorithms the gateway verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (`auth.jwt.secret`).
    HS256,
    /// RSASSA-PKCS1-v1_5 SHA-256 with a public key (`auth.jwt.public_key_file`).
    RS256,
    /// ECDSA P-256 SHA-256 with a public key (`auth.jwt.public_key_file`).
    ES256,
}

/// `[auth.jwt]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// `"HS256"`, `"RS256"` or `"ES256"`; tokens signed otherwise are refused. Defaults to
    /// `"HS256"` with a secret; required with a public key file.
    pub algorithm: Option<JwtAlgorithm>,
    /// The HS256 shared secret (32+ bytes). Defaults to none.
    pub secret: Option<Secret>,
    /// PEM file with the RS256 or ES256 public key (`-----BEGIN PUBLIC KEY-----`).
    /// Defaults to none.
    pub public_key_file: Option<PathBuf>,
    /// Required `iss` claim. Defaults to none (not checked).
    pub issuer: Option<String>,
    /// Required `aud` claim. Defaults to none (not checked).
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf` (at most 5 minutes). Defaults to `5s`.
    pub leeway: Dur,
    /// Refuse tokens without `exp`. Defaults to `true`.
    pub require_exp: bool,
    /// The claim holding the user id (a string). Defaults to `"sub"`.
    pub user_claim: String,
    /// Claims copied into the client's metadata (visible to webhooks and the API).
    /// Defaults to `[]`.
    pub metadata_claims: Vec<String>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            algorithm: None,
            secret: None,
            public_key_file: None,
            issuer: None,
            audience: None,
            leeway: Dur::secs(5),
            require_exp: true,
            user_claim: "sub".to_owned(),
            metadata_claims: Vec::new(),
        }
    }
}

/// `[rooms]`: which rooms a client may join, as glob patterns (`*` any run of characters, `?`
/// one character); `{user}` in a configured pattern is the client's user id, matched literally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Patterns every authenticated client may join. Defaults to `["chat-*"]` in demo mode,
    /// `[]` with JWT.
    pub allow: Option<Vec<String>>,
    /// Patterns nobody may join, whatever else allows them. Defaults to `[]`.
    pub deny: Vec<String>,
    /// A JWT claim listing patterns this token may join (e.g. `"rooms"`). Defaults to none.
    pub claim: Option<String>,
    /// Extra patterns for tokens whose claim has a given value (file only).
    pub rules: Vec<RoomRule>,
}

/// `[[rooms.rules]]`: `allow` applies to tokens whose `claim` equals `equals` (or, for a list
/// claim, contains it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomRule {
    /// The claim to look at (`"role"`).
    pub claim: String,
    /// The value it must have (`"admin"`).
    pub equals: String,
    /// Patterns allowed to matching tokens.
    pub allow: Vec<String>,
}

/// `[chat]`: the demo page's protocol, relayed by the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Relay `{"event":"chat","data":{"room","text"}}` from a room member to the room (on every
    /// instance) as `{room, from, text, time}`. Defaults to `true` in demo mode, `false` with JWT.
    pub relay: Option<bool>,
    /// Longest relayed text, in characters. Defaults to `2000`.
    pub max_text_chars: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            relay: None,
            max_text_chars: 2000,
        }
    }
}

/// `[api]`: the HTTP API (`/api/...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The key backends send as `Authorization: Bearer <key>` (16+ bytes). Without it the API is
    /// disabled (404). Defaults to none.
    pub key: Option<Secret>,
    /// Largest request body in bytes (413 past it). Defaults to `65536`.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            key: None,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics at `/metrics`. Defaults to `true`.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Events a webhook can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvent {
    /// A client authenticated.
    Connect,
    /// An authenticated client left.
    Disconnect,
}

impl WebhookEvent {
    /// The name in the payload.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Disconnect => "disconnect",
        }
    }
}

/// `[webhook]`: an HTTP POST of JSON per event, sent in the background.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` endpoint. Defaults to none (no webhook).
    pub url: Option<String>,
    /// Bound on one request; failures and timeouts are logged, never retried. Defaults to `2s`.
    pub timeout: Dur,
    /// Which events to send. Defaults to `["connect", "disconnect"]`.
    pub events: Vec<WebhookEvent>,
    /// Key for the `X-Sealcast-Signature: sha256=<hex HMAC of the body>` header.
    /// Defaults to none (unsigned).
    pub secret: Option<Secret>,
    /// Requests in flight at once; events past it are dropped (counted, logged).
    /// Defaults to `256`.
    pub max_in_flight: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: None,
            timeout: Dur::secs(2),
            events: vec![WebhookEvent::Connect, WebhookEvent::Disconnect],
            secret: None,
            max_in_flight: 256,
        }
    }
}

// URLs may carry credentials: `Debug` shows them redacted, like `--print-config`.
impl fmt::Debug for RedisSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSection")
            .field("url", &self.url.as_deref().map(redact_urls))
            .field("cluster", &self.cluster)
            .field("signing_key", &self.signing_key)
            .field("subscription_mode", &self.subscription_mode)
            .field("connect_timeout", &self.connect_timeout)
            .field("publish_timeout", &self.publish_timeout)
            .finish()
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url.as_deref().map(redact_urls))
            .field("timeout", &self.timeout)
            .field("events", &self.events)
            .field("secret", &self.secret)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

// ---- sources ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Int,
    List,
}

/// Every key settable from the environment or a flag, with its value kind.
const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Str),
    ("demo", Kind::Bool),
    ("shutdown_timeout", Kind::Str),
    ("log.format", Kind::Str),
    ("log.level", Kind::Str),
    ("server.identifier", Kind::Str),
    ("server.path", Kind::Str),
    ("server.default_rooms", Kind::List),
    ("server.auth_timeout", Kind::Str),
    ("server.heartbeat_interval", Kind::Str),
    ("server.heartbeat_timeout", Kind::Str),
    ("server.idle_timeout", Kind::Str),
    ("server.max_payload_bytes", Kind::Int),
    ("server.backpressure_limit_bytes", Kind::Int),
    ("server.close_on_backpressure_limit", Kind::Bool),
    ("server.max_rooms_per_client", Kind::Int),
    ("server.allowed_origins", Kind::List),
    ("encryption.mode", Kind::Str),
    ("encryption.key_file", Kind::Str),
    ("encryption.profiles", Kind::List),
    ("encryption.signing_key_file", Kind::Str),
    ("redis.url", Kind::Str),
    ("redis.cluster", Kind::Bool),
    ("redis.signing_key", Kind::Str),
    ("redis.subscription_mode", Kind::Str),
    ("redis.connect_timeout", Kind::Str),
    ("redis.publish_timeout", Kind::Str),
    ("auth.mode", Kind::Str),
    ("auth.jwt.algorithm", Kind::Str),
    ("auth.jwt.secret", Kind::Str),
    ("auth.jwt.public_key_file", Kind::Str),
    ("auth.jwt.issuer", Kind::Str),
    ("auth.jwt.audience", Kind::Str),
    ("auth.jwt.leeway", Kind::Str),
    ("auth.jwt.require_exp", Kind::Bool),
    ("auth.jwt.user_claim", Kind::Str),
    ("auth.jwt.metadata_claims", Kind::List),
    ("rooms.allow", Kind::List),
    ("rooms.deny", Kind::List),
    ("rooms.claim", Kind::Str),
    ("chat.relay", Kind::Bool),
    ("chat.max_text_chars", Kind::Int),
    ("api.key", Kind::Str),
    ("api.max_body_bytes", Kind::Int),
    ("metrics.enabled", Kind::Bool),
    ("webhook.url", Kind::Str),
    ("webhook.timeout", Kind::Str),
    ("webhook.events", Kind::List),
    ("webhook.secret", Kind::Str),
    ("webhook.max_in_flight", Kind::Int),
];

/// Short names kept for compatibility with `sealcast emit`, used when the long name is unset.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("SEALCAST_REDIS", "redis.url"),
    ("SEALCAST_SIGNING_KEY", "redis.signing_key"),
];

/// Variables with the prefix that are not configuration keys but are expected.
const ENV_NOT_KEYS: &[&str] = &["SEALCAST_CONFIG"];

/// The environment variable for a dotted key: `auth.jwt.secret` → `SEALCAST_AUTH_JWT_SECRET`.
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Every key that can be set from the environment, with its variable, in reference order.
pub fn env_keys() -> impl Iterator<Item = (&'static str, String)> {
    KEYS.iter().map(|(key, _)| (*key, env_var(key)))
}

/// What a configuration is made of, lowest precedence first.
#[derive(Debug, Default)]
pub struct Sources {
    /// The TOML file (`--config`).
    pub file: Option<PathBuf>,
    /// The process environment (only `SEALCAST_*` variables are looked at).
    pub env: Vec<(String, String)>,
    /// Command-line overrides: (dotted key, flag name, value).
    pub flags: Vec<(&'static str, &'static str, String)>,
}

/// A configuration and the notes made while loading it.
#[derive(Debug)]
pub struct Loaded {
    /// The validated configuration, with mode-dependent defaults filled in.
    pub config: Config,
    /// `SEALCAST_*` variables that are not configuration keys (worth a warning: typos).
    pub unknown_env: Vec<String>,
}

impl Config {
    /// Reads, merges and validates a configuration. Checks that referenced files exist but does
    /// not parse them: [`super::serve`] reads the key files before it listens.
    pub fn load(sources: Sources) -> Result<Loaded, ConfigError> {
        let mut table = match &sources.file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        let mut origins: BTreeMap<String, String> = BTreeMap::new();
        let mut unknown_env = Vec::new();

        let env: BTreeMap<&str, &str> = sources
            .env
            .iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for name in env.keys() {
            let known = KEYS.iter().any(|(key, _)| env_var(key) == *name)
                || ENV_ALIASES.iter().any(|(alias, _)| alias == name)
                || ENV_NOT_KEYS.contains(name);
            if !known {
                unknown_env.push((*name).to_owned());
            }
        }
        for (alias, key) in ENV_ALIASES {
            if let Some(value) = env.get(alias)
                && !env.contains_key(env_var(key).as_str())
            {
                set(&mut table, key, kind_of(key), value, alias)?;
                origins.insert((*key).to_owned(), (*alias).to_owned());
            }
        }
        for (key, kind) in KEYS {
            let name = env_var(key);
            if let Some(value) = env.get(name.as_str()) {
                set(&mut table, key, *kind, value, &name)?;
                origins.insert((*key).to_owned(), name);
            }
        }
        for (key, flag, value) in &sources.flags {
            set(&mut table, key, kind_of(key), value, flag)?;
            origins.insert((*key).to_owned(), (*flag).to_owned());
        }

        let with_origin = |mut e: ConfigError| {
            e.origin = origins.get(&e.key).cloned();
            e
        };
        let mut config: Config =
            serde_path_to_error::deserialize(table).map_err(|e| with_origin(serde_error(&e)))?;
        config.resolve();
        config.validate().map_err(with_origin)?;
        Ok(Loaded {
            config,
            unknown_env,
        })
    }

    /// Fills in the defaults that depend on other keys.
    fn resolve(&mut self) {
        let jwt = &self.auth.jwt;
        let mode = *self.auth.mode.get_or_insert(
            if jwt.secret.is_some() || jwt.public_key_file.is_some() {
                AuthMode::Jwt
            } else {
                AuthMode::Demo
            },
        );
        if self.auth.mode == Some(AuthMode::Jwt)
            && self.auth.jwt.algorithm.is_none()
            && self.auth.jwt.secret.is_some()
        {
            self.auth.jwt.algorithm = Some(JwtAlgorithm::HS256);
        }
        self.rooms.allow.get_or_insert_with(|| match mode {
            AuthMode::Demo => vec!["chat-*".to_owned()],
            AuthMode::Jwt => Vec::new(),
        });
        self.chat.relay.get_or_insert(mode == AuthMode::Demo);
    }

    /// The resolved authentication mode.
    pub fn auth_mode(&self) -> AuthMode {
        self.auth.mode.unwrap_or(AuthMode::Demo)
    }

    /// Whether the chat relay runs.
    pub fn chat_relay(&self) -> bool {
        self.chat.relay.unwrap_or(false)
    }

    /// Checks every value that serde's types do not.
    fn validate(&self) -> Result<(), ConfigError> {
        filter_ok("log.level", &self.log.level)?;
        positive("shutdown_timeout", self.shutdown_timeout)?;

        let s = &self.server;
        if s.identifier.trim().is_empty() {
            return Err(err("server.identifier", "must not be empty"));
        }
        check_ws_path(&s.path, self.demo)?;
        for room in &s.default_rooms {
            crate::protocol::RoomName::new(room)
                .map_err(|e| err("server.default_rooms", format!("{room:?}: {e}")))?;
        }
        positive("server.auth_timeout", s.auth_timeout)?;
        positive("server.heartbeat_interval", s.heartbeat_interval)?;
        positive("server.heartbeat_timeout", s.heartbeat_timeout)?;
        at_least("server.max_payload_bytes", s.max_payload_bytes, 1024)?;
        at_least(
            "server.backpressure_limit_bytes",
            s.backpressure_limit_bytes,
            1024,
        )?;
        at_least("server.max_rooms_per_client", s.max_rooms_per_client, 1)?;
        for origin in &s.allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(err(
                    "server.allowed_origins",
                    format!("{origin:?} is not an origin like \"https://app.example.com\""),
                ));
            }
        }

        let e = &self.encryption;
        if let Some(p) = e
            .profiles
            .iter()
            .find(|p| !matches!(p.as_str(), "v1" | "v2"))
        {
            return Err(err(
                "encryption.profiles",
                format!("unknown profile {p:?} (expected \"v2\" and/or \"v1\")"),
            ));
        }
        if e.profiles.is_empty() && e.mode != EncryptionMode::Disabled {
            return Err(err(
                "encryption.profiles",
                "is empty; set encryption.mode = \"disabled\" to turn encryption off",
            ));
        }
        if let Some(path) = &e.signing_key_file {
            if !e.profiles.iter().any(|p| p == "v2") || e.mode == EncryptionMode::Disabled {
                return Err(err(
                    "encryption.signing_key_file",
                    "is set but the v2 profile is not enabled",
                ));
            }
            file_exists("encryption.signing_key_file", path)?;
        }
        if let Some(path) = &self.encryption.key_file {
            if self.encryption.mode == EncryptionMode::Disabled {
                return Err(err(
                    "encryption.key_file",
                    "is set but encryption.mode is \"disabled\"",
                ));
            }
            file_exists("encryption.key_file", path)?;
        }

        let r = &self.redis;
        match &r.url {
            Some(url) => {
                url.parse::<crate::broker::RedisConfig>()
                    .map_err(|e| err("redis.url", e.to_string()))?;
            }
            None => {
                if r.signing_key.is_some() {
                    return Err(err("redis.signing_key", "is set but redis.url is not"));
                }
                if r.cluster {
                    return Err(err("redis.cluster", "is set but redis.url is not"));
                }
            }
        }
        if let Some(key) = &r.signing_key {
            crate::broker::SigningKey::new(key.expose())
                .map_err(|e| err("redis.signing_key", e.to_string()))?;
        }
        positive("redis.connect_timeout", r.connect_timeout)?;
        positive("redis.publish_timeout", r.publish_timeout)?;

        self.validate_auth()?;
        self.validate_rooms()?;

        at_least("chat.max_text_chars", self.chat.max_text_chars, 1)?;
        if let Some(key) = &self.api.key
            && key.expose().len() < 16
        {
            return Err(err("api.key", "must be at least 16 bytes"));
        }
        at_least("api.max_body_bytes", self.api.max_body_bytes, 256)?;

        let w = &self.webhook;
        if let Some(url) = &w.url {
            super::webhook::parse_url(url).map_err(|m| err("webhook.url", m))?;
        }
        positive("webhook.timeout", w.timeout)?;
        at_least("webhook.max_in_flight", w.max_in_flight, 1)?;
        if w.max_in_flight > super::webhook::MAX_IN_FLIGHT {
            return Err(err(
                "webhook.max_in_flight",
                format!("must be at most {}", super::webhook::MAX_IN_FLIGHT),
            ));
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let j = &self.auth.jwt;
        if self.auth_mode() == AuthMode::Demo {
            if j.secret.is_some() || j.public_key_file.is_some() {
                return Err(err(
                    "auth.mode",
                    "is \"demo\" but auth.jwt is configured: set auth.mode = \"jwt\" or remove the JWT keys",
                ));
            }
            return Ok(());
        }
        match (j.algorithm, &j.secret, &j.public_key_file) {
            (_, None, None) => Err(err(
                "auth.jwt",
                "auth.mode is \"jwt\": set auth.jwt.secret (HS256) or auth.jwt.public_key_file (RS256/ES256)",
            )),
            (_, Some(_), Some(_)) => Err(err(
                "auth.jwt.secret",
                "set either auth.jwt.secret or auth.jwt.public_key_file, not both",
            )),
            (Some(JwtAlgorithm::HS256) | None, Some(secret), None) => {
                if secret.expose().len() < 32 {
                    Err(err(
                        "auth.jwt.secret",
                        "must be at least 32 bytes for HS256",
                    ))
                } else {
                    Ok(())
                }
            }
            (Some(alg), Some(_), None) => Err(err(
                "auth.jwt.algorithm",
                format!("{alg:?} verifies with a public key: set auth.jwt.public_key_file"),
            )),
            (None, None, Some(_)) => Err(err(
                "auth.jwt.algorithm",
                "is required with auth.jwt.public_key_file: \"RS256\" or \"ES256\"",
            )),
            (Some(JwtAlgorithm::HS256), None, Some(_)) => Err(err(
                "auth.jwt.algorithm",
                "HS256 verifies with auth.jwt.secret; use \"RS256\" or \"ES256\" with a public key file",
            )),
            (Some(_), None, Some(path)) => file_exists("auth.jwt.public_key_file", path),
        }?;
        if j.leeway.0 > Duration::from_secs(300) {
            return Err(err("auth.jwt.leeway", "must be at most 5m"));
        }
        if j.user_claim.is_empty() {
            return Err(err("auth.jwt.user_claim", "must not be empty"));
        }
        for claim in &j.metadata_claims {
            if claim.is_empty() {
                return Err(err(
                    "auth.jwt.metadata_claims",
                    "claim names must not be empty",
                ));
            }
        }
        Ok(())
    }

    fn validate_rooms(&self) -> Result<(), ConfigError> {
        let r = &self.rooms;
        for pattern in r.allow.iter().flatten() {
            super::policy::Glob::check_template(pattern)
                .map_err(|m| ConfigError::new("rooms.allow", m))?;
        }
        for pattern in &r.deny {
            super::policy::Glob::check_template(pattern)
                .map_err(|m| ConfigError::new("rooms.deny", m))?;
        }
        let demo = self.auth_mode() == AuthMode::Demo;
        if let Some(claim) = &r.claim {
            if claim.is_empty() {
                return Err(ConfigError::new("rooms.claim", "must not be empty"));
            }
            if demo {
                return Err(ConfigError::new(
                    "rooms.claim",
                    "needs auth.mode = \"jwt\" (demo tokens have no claims)",
                ));
            }
        }
        for (i, rule) in r.rules.iter().enumerate() {
            let key = format!("rooms.rules[{i}]");
            if demo {
                return Err(ConfigError::new(
                    key,
                    "needs auth.mode = \"jwt\" (demo tokens have no claims)",
                ));
            }
            if rule.claim.is_empty() {
                return Err(ConfigError::new(
                    format!("{key}.claim"),
                    "must not be empty",
                ));
            }
            for pattern in &rule.allow {
                super::policy::Glob::check_template(pattern)
                    .map_err(|m| ConfigError::new(format!("{key}.allow"), m))?;
            }
        }
        Ok(())
    }

    /// The configuration as TOML with every secret replaced by `"<redacted>"` and credentials
    /// removed from URLs: what `--print-config` shows.
    pub fn to_redacted_toml(&self) -> String {
        let mut copy = self.clone();
        copy.redis.url = copy.redis.url.as_deref().map(redact_urls);
        copy.webhook.url = copy.webhook.url.as_deref().map(redact_urls);
        toml::to_string_pretty(&copy)
            .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }
}

/// Removes `user:password@` from every comma-separated URL.
pub(crate) fn redact_urls(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let url = url.trim();
            let Some((scheme, rest)) = url.split_once("://") else {
                return url.to_owned();
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}@{}", Secret::REDACTED, &rest[at + 1..]),
                None => url.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(key, message)
}

fn kind_of(key: &str) -> Kind {
    KEYS.iter()
        .find(|(k, _)| *k == key)
        .map_or(Kind::Str, |(_, kind)| *kind)
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&name, format!("cannot read the config file: {e}")))?;
    toml::from_str::<toml::Table>(&text).map_err(|e| {
        ConfigError::new(
            &name,
            format!("not valid TOML: {}", e.to_string().trim_end()),
        )
    })
}

/// Sets `key` (dotted) in `table` from a string value of the given kind.
fn set(
    table: &mut toml::Table,
    key: &str,
    kind: Kind,
    raw: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    let bad = |message: String| ConfigError {
        key: key.to_owned(),
        message,
        origin: Some(origin.to_owned()),
    };
    let value = match kind {
        Kind::Str => toml::Value::String(raw.to_owned()),
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(bad(format!("{raw:?} is not a boolean (true or false)"))),
        },
        Kind::Int => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| bad(format!("{raw:?} is not an integer")))?,
        Kind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    };
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut current = table;
    let mut path = String::new();
    for part in parts {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(part);
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::new(
                    path,
                    "must be a table (a [section]) in the config file",
                ));
            }
        };
    }
    current.insert(last.to_owned(), value);
    Ok(())
}

/// Turns a deserialization error into one that names the key.
fn serde_error(e: &serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let inner = e.inner().to_string();
    // The toml deserializer appends "in `key`" lines; the key is named separately.
    let mut message = inner
        .lines()
        .filter(|l| !l.trim_start().starts_with("in `"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned();
    if path == "listen" {
        message.push_str(" (expected IP:PORT, like \"127.0.0.1:8080\" or \"0.0.0.0:8080\")");
    }
    // `unknown field `x`, expected ...`: the key is the unknown one.
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        // serde_path_to_error's path already ends with the unknown key; be robust either way.
        let key = if path.is_empty() {
            field.to_owned()
        } else if path == field || path.ends_with(&format!(".{field}")) {
            path
        } else {
            format!("{path}.{field}")
        };
        return ConfigError::new(key, format!("unknown key ({message})"));
    }
    let key = if path.is_empty() {
        "(top level)".to_owned()
    } else {
        path
    };
    ConfigError::new(key, message)
}

fn filter_ok(key: &str, filter: &str) -> Result<(), ConfigError> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|e| ConfigError::new(key, format!("not a valid log filter: {e}")))
}

fn positive(key: &str, d: Dur) -> Result<(), ConfigError> {
    if d.0.is_zero() {
        Err(ConfigError::new(key, "must be longer than zero"))
    } else {
        Ok(())
    }
}

fn at_least(key: &str, value: usize, min: usize) -> Result<(), ConfigError> {
    if value < min {
        Err(ConfigError::new(key, format!("must be at least {min}")))
    } else {
        Ok(())
    }
}

fn file_exists(key: &str, path: &Path) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(ConfigError::new(
            key,
            format!("{} is not a file", path.display()),
        )),
        Err(e) => Err(ConfigError::new(
            key,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// Paths the gateway itself serves; the WebSocket path must not take one.
const RESERVED_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];
const DEMO_PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/demo.js",
    "/demo.css",
    "/sealcast-client.js",
    "/sealcast-client.d.ts",
];

fn check_ws_path(path: &str, demo: bool) -> Result<(), ConfigError> {
    let bad = |m: &str| Err(ConfigError::new("server.path", format!("{path:?} {m}")));
    if !path.starts_with('/') || path.len() < 2 {
        return bad("must start with '/' and name a path, like \"/ws\"");
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
        || path.contains("//")
    {
        return bad("may only contain letters, digits, '/', '-', '_' and '.'");
    }
    if RESERVED_PATHS.contains(&path)
        || path == "/api"
        || path.starts_with("/api/")
        || (demo && DEMO_PATHS.contains(&path))
    {
        return bad("is used by the gateway itself");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn load(toml_text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "sealcast-config-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sealcast.toml");
        std::fs::write(&file, toml_text).unwrap();
        let result = Config::load(Sources {
            file: Some(file),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            flags: Vec::new(),
        });
        let _ = std::fs::remove_dir_all(dir);
        result
    }

    #[test]
    fn defaults_are_the_demo() {
        let c = load("", &[]).unwrap().config;
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.auth_mode(), AuthMode::Demo);
        assert_eq!(c.rooms.allow, Some(vec!["chat-*".to_owned()]));
        assert!(c.chat_relay() && c.demo && c.redis.url.is_none() && c.api.key.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("[server]\npaht = \"/x\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "server.paht");
        let e = load("demo = \"yes\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "demo");
        let e = load("[auth.jwt]\nleeway = \"soon\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "auth.jwt.leeway");
        let e = load("[auth.jwt]\nsecret = \"short\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "auth.jwt.secret");
        let e = load("", &[("SEALCAST_LISTEN", "nowhere")]).unwrap_err();
        assert_eq!(e.key, "listen");
        assert_eq!(e.origin.as_deref(), Some("SEALCAST_LISTEN"));
        let e = load("", &[("SEALCAST_DEMO", "maybe")]).unwrap_err();
        assert!(e.to_string().contains("SEALCAST_DEMO"), "{e}");
        let e = load("[server]\npath = \"/metrics\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "server.path");
        let e = load("[rooms]\nclaim = \"rooms\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "rooms.claim");
    }

    #[test]
    fn env_wins_over_the_file_and_aliases_yield_to_long_names() {
        let l = load(
            "[log]\nlevel = \"info\"\n",
            &[
                ("SEALCAST_LOG_LEVEL", "debug"),
                ("SEALCAST_REDIS", "redis://a:6379"),
                ("SEALCAST_REDIS_URL", "redis://b:6379"),
                ("SEALCAST_SERVER_DEFAULT_ROOMS", "lobby, news"),
                ("SEALCAST_NOT_A_KEY", "x"),
            ],
        )
        .unwrap();
        assert_eq!(l.config.log.level, "debug");
        assert_eq!(l.config.redis.url.as_deref(), Some("redis://b:6379"));
        assert_eq!(l.config.server.default_rooms, ["lobby", "news"]);
        assert_eq!(l.unknown_env, ["SEALCAST_NOT_A_KEY"]);
    }

    #[test]
    fn every_env_key_is_a_config_key() {
        for (key, kind) in KEYS {
            let sample = match kind {
                Kind::Bool => "true",
                Kind::Int => "1",
                Kind::List | Kind::Str => "x",
            };
            let mut table = toml::Table::new();
            set(&mut table, key, *kind, sample, "test").unwrap();
            if let Err(e) = serde_path_to_error::deserialize::<_, Config>(table) {
                let e = serde_error(&e);
                assert!(!e.message.starts_with("unknown key"), "{key}: {e}");
            }
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let l = load(
            "[auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef-hs\"\n[api]\nkey = \"api-key-0123456789\"\n[redis]\nurl = \"redis://:hunter2@127.0.0.1:6379\"\nsigning_key = \"signing-key-0123456789\"\n",
            &[],
        )
        .unwrap();
        let shown = l.config.to_redacted_toml();
        for secret in [
            "0123456789abcdef0123456789abcdef-hs",
            "api-key-0123456789",
            "hunter2",
            "signing-key-0123456789",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("<redacted>"));
        assert!(!format!("{:?}", l.config).contains("hunter2"));
        assert!(!format!("{:?}", l.config).contains("api-key-0123456789"));
        // What is printed loads again (secrets aside).
        assert!(toml::from_str::<toml::Table>(&shown).is_ok());
    }
}
