//! `sealcast serve`: a standalone gateway that embeds the library, configured by a TOML file and
//! `SEALCAST_*` environment variables, for deployments that do not write Rust.
//!
//! ```text
//!                       ┌──────────────────────── sealcast serve ───────────────────────────┐
//!  browser/app ──ws──▶  │ /ws       Server (auth: demo or JWT, room policy, chat relay)      │──▶ Redis (optional)
//!  backend ─────http──▶ │ /api/*    publish, room members (Bearer api key)                   │
//!  Prometheus ──http──▶ │ /metrics  /healthz  /readyz                                        │──▶ webhook (POST JSON)
//!  people ──────http──▶ │ /         the demo page                                            │
//!                       └────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the keys, their defaults, file + environment + flags merging, validation |
//! | [`auth`] | demo names and JWT verification |
//! | [`policy`] | room glob patterns and per-client grants |
//! | [`api`] | the HTTP API |
//! | [`prometheus`] | the `/metrics` text format |
//! | [`webhook`] | connect/disconnect notifications |
//!
//! [`serve`] runs the whole thing until SIGTERM or SIGINT, then shuts down gracefully: readiness
//! goes to 503, new connections are refused, every client is closed with 1001, webhooks drain.
//! The reference of every key is the README (section "`sealcast serve`").

pub mod api;
pub mod auth;
pub mod config;
pub mod policy;
pub mod prometheus;
pub mod webhook;

use std::{
    future::IntoFuture as _,
    io::Write as _,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use self::{
    auth::Authenticator,
    config::{AuthMode, Config, ConfigError, EncryptionMode, LogFormat, Sources, WebhookEvent},
    policy::{Grants, RoomPolicy},
    webhook::Webhook,
};
use crate::{
    Server, TransportOptions,
    broker::{RedisBroker, RedisConfig, SigningKey, SubscriptionMode},
    crypto::{KeyPair, v2::ServerSigningKey},
    protocol::Limits,
};

/// How often grants of clients that are gone are pruned.
const GRANT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is invalid (exit code 2).
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Starting or running failed (exit code 1).
    #[error("{0}")]
    Runtime(String),
}

impl GatewayError {
    /// The process exit code: 2 for configuration errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            Self::Runtime(_) => 1,
        }
    }
}

/// What `sealcast serve` was asked on the command line.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The TOML file.
    pub config: Option<PathBuf>,
    /// `--listen`, overriding `listen`.
    pub listen: Option<String>,
    /// `--redis`, overriding `redis.url`.
    pub redis: Option<String>,
    /// `--log-format`, overriding `log.format`.
    pub log_format: Option<String>,
    /// Print the effective configuration (secrets redacted) and exit.
    pub print_config: bool,
}

impl ServeOptions {
    /// The configuration sources: the file, the process environment, the flags.
    pub fn sources(&self) -> Sources {
        let mut flags = Vec::new();
        if let Some(listen) = &self.listen {
            flags.push(("listen", "--listen", listen.clone()));
        }
        if let Some(redis) = &self.redis {
            flags.push(("redis.url", "--redis", redis.clone()));
        }
        if let Some(format) = &self.log_format {
            flags.push(("log.format", "--log-format", format.clone()));
        }
        // `vars_os`: a variable that is not UTF-8 must not panic; ours are skipped with a note.
        let env = std::env::vars_os()
            .filter_map(|(k, v)| {
                let k = k.into_string().ok()?;
                if !k.starts_with(config::ENV_PREFIX) {
                    return None;
                }
                let v = v
                    .into_string()
                    .unwrap_or_else(|_| format!("<{k} is not valid UTF-8>"));
                Some((k, v))
            })
            .collect();
        Sources {
            file: self.config.clone(),
            env,
            flags,
        }
    }
}

/// Runs `sealcast serve`: loads and checks the configuration, then serves until a signal.
pub async fn serve(options: ServeOptions) -> Result<(), GatewayError> {
    let loaded = Config::load(options.sources())?;
    let config = loaded.config;
    let prepared = Prepared::new(&config)?;
    if options.print_config {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(config.to_redacted_toml().as_bytes());
        let _ = out.flush();
        return Ok(());
    }
    init_tracing(&config);
    for name in &loaded.unknown_env {
        tracing::warn!(variable = %name, "ignoring unknown SEALCAST_* environment variable");
    }
    for warning in &prepared.warnings {
        tracing::warn!("{warning}");
    }
    run(config, prepared).await
}

/// Everything read from files at start, before anything listens: configuration errors here
/// exit with 2 like the others.
struct Prepared {
    authenticator: Authenticator,
    key_pair: Option<KeyPair>,
    /// The v2 signing key, when v2 is offered.
    signing_key: Option<ServerSigningKey>,
    webhook: Option<Arc<Webhook>>,
    /// Logged once logging is set up.
    warnings: Vec<String>,
}

impl Prepared {
    fn new(config: &Config) -> Result<Self, ConfigError> {
        let authenticator = Authenticator::new(config.auth_mode(), &config.auth.jwt)?;
        let mut warnings = Vec::new();
        let e = &config.encryption;
        let key_pair = match (e.offers("v1"), &e.key_file) {
            (false, _) => None,
            (true, Some(path)) => {
                let key = "encryption.key_file";
                let secret = read_secret(path, key, &mut warnings)?;
                Some(KeyPair::from_secret_bytes(&secret).map_err(|_| invalid_secret(key, path))?)
            }
            (true, None) => Some(KeyPair::generate()),
        };
        let signing_key = match (e.offers("v2"), &e.signing_key_file) {
            (false, _) => None,
            (true, Some(path)) => {
                let key = "encryption.signing_key_file";
                let secret = read_secret(path, key, &mut warnings)?;
                Some(
                    ServerSigningKey::from_secret_bytes(&secret)
                        .map_err(|_| invalid_secret(key, path))?,
                )
            }
            (true, None) => Some(ServerSigningKey::generate()),
        };
        let webhook =
            Webhook::new(&config.webhook).map_err(|m| ConfigError::new("webhook.url", m))?;
        Ok(Self {
            authenticator,
            key_pair,
            signing_key,
            webhook,
            warnings,
        })
    }
}

fn invalid_secret(key: &'static str, path: &std::path::Path) -> ConfigError {
    ConfigError::new(
        key,
        format!(
            "{} does not hold a valid P-256 secret key (32 bytes, base64 or hex)",
            path.display()
        ),
    )
}

/// Reads a P-256 secret from a file: 32 bytes as base64 or hex. Warns when the file is readable
/// by every user.
fn read_secret(
    path: &std::path::Path,
    key: &'static str,
    warnings: &mut Vec<String>,
) -> Result<zeroize::Zeroizing<Vec<u8>>, ConfigError> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
    let text = zeroize::Zeroizing::new(text);
    let trimmed = text.trim();
    let bytes = zeroize::Zeroizing::new(
        if trimmed.len() == 64 && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&trimmed[2 * i..2 * i + 2], 16).unwrap_or(0))
                .collect::<Vec<u8>>()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(trimmed)
                .map_err(|_| invalid_secret(key, path))?
        },
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o004 != 0
        {
            warnings.push(format!(
                "{key} {} is readable by every user; chmod 600 it",
                path.display()
            ));
        }
    }
    Ok(bytes)
}

/// Logs go to stderr, as text or JSON; `RUST_LOG` overrides `log.level`.
fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The state the hooks and the operations routes share.
struct Gateway {
    authenticator: Authenticator,
    policy: RoomPolicy,
    grants: Grants,
    webhook: Option<Arc<Webhook>>,
    chat_relay: bool,
    max_text_chars: usize,
    redis: Option<RedisBroker>,
    draining: AtomicBool,
    api_publishes: Arc<AtomicU64>,
}

async fn run(config: Config, prepared: Prepared) -> Result<(), GatewayError> {
    // First, so a SIGTERM during start-up (e.g. while Redis is tried) shuts down gracefully
    // once started instead of killing the process.
    let mut signals = Signals::new()
        .map_err(|e| GatewayError::Runtime(format!("cannot listen for signals: {e}")))?;
    let mode = config.auth_mode();
    if mode == AuthMode::Demo {
        tracing::warn!(
            "auth.mode = \"demo\": INSECURE, any user name is accepted as a token; configure [auth.jwt] before exposing this gateway"
        );
    }
    let redis = match &config.redis.url {
        Some(url) => Some(connect_redis(&config, url).await?),
        None => None,
    };
    let gateway = Arc::new(Gateway {
        authenticator: prepared.authenticator,
        policy: RoomPolicy::new(&config.rooms),
        grants: Grants::default(),
        webhook: prepared.webhook,
        chat_relay: config.chat_relay(),
        max_text_chars: config.chat.max_text_chars,
        redis: redis.clone(),
        draining: AtomicBool::new(false),
        api_publishes: Arc::new(AtomicU64::new(0)),
    });

    let signing_public = prepared
        .signing_key
        .as_ref()
        .map(ServerSigningKey::public_key_b64);
    let server = build_server(
        &config,
        &gateway,
        prepared.key_pair,
        prepared.signing_key,
        redis.clone(),
    )
    .await?;
    let background = vec![tokio::spawn(sweep_grants(gateway.clone(), server.clone()))];

    let app = router(&config, &gateway, &server);
    let listener = crate::server::bind(config.listen)
        .map_err(|e| GatewayError::Runtime(format!("cannot listen on {}: {e}", config.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| GatewayError::Runtime(format!("cannot read the bound address: {e}")))?;
    announce(local, &config, &server, signing_public.as_deref());

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = server
        .serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop_rx.await;
        });
    let http = tokio::spawn(serving.into_future());

    let signal = signals.recv().await;
    tracing::info!(%signal, "shutting down: refusing new connections, closing clients with 1001");
    tokio::spawn(async move {
        let second = signals.recv().await;
        tracing::warn!(signal = %second, "second signal: exiting now");
        std::process::exit(1);
    });
    gateway.draining.store(true, Ordering::Release);
    let graceful = async {
        let _ = stop_tx.send(());
        server.shutdown().await;
        match http.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "http server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "http server task failed"),
        }
        if let Some(webhook) = &gateway.webhook {
            webhook.drain(config.webhook.timeout.0).await;
        }
    };
    if tokio::time::timeout(config.shutdown_timeout.0, graceful)
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = %humantime::format_duration(config.shutdown_timeout.0),
            "graceful shutdown took too long; exiting anyway"
        );
    }
    for task in background {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Prints the bound address on stdout (tests and scripts parse it) and logs the setup.
fn announce(local: SocketAddr, config: &Config, server: &Server, signing_public: Option<&str>) {
    {
        let mut out = std::io::stdout().lock();
        if let Some(key) = signing_public {
            let _ = writeln!(
                out,
                "v2 server signing key (pin it as serverSigningKey): {key}"
            );
        }
        let _ = writeln!(out, "listening on http://{local}");
        let _ = out.flush();
    }
    tracing::info!(
        address = %local,
        websocket = %server.path(),
        auth = match config.auth_mode() { AuthMode::Demo => "demo", AuthMode::Jwt => "jwt" },
        encryption = match config.encryption.mode {
            EncryptionMode::Allowed => "allowed",
            EncryptionMode::Required => "required",
            EncryptionMode::Disabled => "disabled",
        },
        broker = if config.redis.url.is_some() { "redis" } else { "memory" },
        api = config.api.key.is_some(),
        demo = config.demo,
        "sealcast gateway listening"
    );
}

async fn connect_redis(config: &Config, url: &str) -> Result<RedisBroker, GatewayError> {
    let r = &config.redis;
    let mut redis: RedisConfig = url
        .parse()
        .map_err(|e| ConfigError::new("redis.url", format!("{e}")))?;
    if r.cluster {
        redis = redis.cluster(true);
    }
    redis = redis
        .subscription_mode(match r.subscription_mode {
            config::SubscriptionModeName::Interest => SubscriptionMode::Interest,
            config::SubscriptionModeName::Pattern => SubscriptionMode::Pattern,
        })
        .connect_timeout(r.connect_timeout.0)
        .publish_timeout(r.publish_timeout.0);
    if let Some(key) = &r.signing_key {
        let key = SigningKey::new(key.expose())
            .map_err(|e| ConfigError::new("redis.signing_key", e.to_string()))?;
        redis = redis.signing_key(key);
    }
    match RedisBroker::connect(redis.clone()).await {
        Ok(broker) => Ok(broker),
        Err(e) => {
            // Start anyway, not ready: orchestrators see /readyz fail instead of a crash loop,
            // and the broker connects when Redis comes back.
            tracing::warn!(error = %e, "redis is unreachable; starting not ready, retrying in the background");
            RedisBroker::new(redis).map_err(|e| GatewayError::Runtime(e.to_string()))
        }
    }
}

/// Drops the grants of clients that left without a disconnect report (e.g. closed during the
/// encryption handshake, after authentication succeeded).
async fn sweep_grants(gateway: Arc<Gateway>, server: Server) {
    let mut tick = tokio::time::interval(GRANT_SWEEP_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        gateway.grants.retain(|id| server.client(id).is_some());
    }
}

async fn build_server(
    config: &Config,
    gateway: &Arc<Gateway>,
    key_pair: Option<KeyPair>,
    signing_key: Option<ServerSigningKey>,
    redis: Option<RedisBroker>,
) -> Result<Server, GatewayError> {
    let s = &config.server;
    let transport = TransportOptions {
        max_payload_length: s.max_payload_bytes,
        idle_timeout: s.idle_timeout.0,
        backpressure_limit: s.backpressure_limit_bytes,
        close_on_backpressure_limit: s.close_on_backpressure_limit,
        ..TransportOptions::default()
    };
    let limits = Limits {
        max_rooms_per_client: s.max_rooms_per_client,
        allowed_origins: (!s.allowed_origins.is_empty()).then(|| s.allowed_origins.clone()),
        ..Limits::default()
    };
    let mut builder = Server::builder()
        .identifier(s.identifier.clone())
        .path(s.path.clone())
        .default_rooms(s.default_rooms.clone())
        .auth_timeout(s.auth_timeout.0)
        .heartbeat_interval(s.heartbeat_interval.0)
        .heartbeat_timeout(s.heartbeat_timeout.0)
        .transport(transport)
        .limits(limits)
        .require_encryption(config.encryption.mode == EncryptionMode::Required);
    if let Some(pair) = key_pair {
        tracing::info!(server_public_key = %pair.public_key_b64(), "encryption v1 enabled");
        builder = builder.encryption_v1(pair);
    }
    if let Some(signing_key) = signing_key {
        let e = &config.encryption;
        // Required with only v2 offered: v1 and plaintext clients are refused before auth.
        let required = e.mode == EncryptionMode::Required && !e.offers("v1");
        tracing::info!(
            signing_key = %signing_key.public_key_b64(),
            required,
            "encryption v2 enabled"
        );
        builder = builder.encryption_v2(
            crate::server::V2Config::new()
                .signing_key(signing_key)
                .required(required),
        );
    }
    if let Some(redis) = redis {
        builder = builder.broker(redis);
    }

    let g = gateway.clone();
    builder = builder.authenticate(move |req| {
        let g = g.clone();
        async move {
            let token = req.token();
            let verified = match g.authenticator.verify(token.as_deref()) {
                Ok(v) => v,
                Err(reason) => {
                    // SECURITY: the reason only, never the token.
                    tracing::debug!(client = %req.client_id, %reason, "authentication refused");
                    return Ok(None);
                }
            };
            let grant = match g.policy.grant(
                verified.identity.user_id.as_deref(),
                verified.claims.as_ref(),
            ) {
                Ok(grant) => grant,
                Err(reason) => {
                    tracing::debug!(client = %req.client_id, %reason, "authentication refused: room claim");
                    return Ok(None);
                }
            };
            g.grants.insert(&req.client_id, grant);
            Ok(Some(verified.identity))
        }
    });
    let g = gateway.clone();
    builder = builder.validate_rooms(move |req| {
        let g = g.clone();
        async move {
            let Some(grant) = g.grants.get(&req.client_id) else {
                return Ok(Vec::new());
            };
            Ok(req.rooms.into_iter().filter(|r| grant.allows(r)).collect())
        }
    });
    let g = gateway.clone();
    builder = builder.on_connected(move |event| {
        let g = g.clone();
        async move {
            if let Some(webhook) = &g.webhook {
                webhook.notify(WebhookEvent::Connect, &event);
            }
            Ok(())
        }
    });
    let g = gateway.clone();
    builder = builder.on_disconnected(move |event| {
        let g = g.clone();
        async move {
            g.grants.remove(&event.client_id);
            if let Some(webhook) = &g.webhook {
                webhook.notify(WebhookEvent::Disconnect, &event);
            }
            Ok(())
        }
    });
    if gateway.chat_relay {
        let max_chars = gateway.max_text_chars;
        builder = builder.on_message(move |msg| crate::demo::relay_chat(msg, max_chars));
    }
    builder.build().await.map_err(|e| match e {
        crate::server::BuildError::InvalidDefaultRoom { name, source } => GatewayError::Config(
            ConfigError::new("server.default_rooms", format!("{name:?}: {source}")),
        ),
        crate::server::BuildError::InvalidOption(m) => {
            GatewayError::Config(ConfigError::new("server", m))
        }
        e => GatewayError::Runtime(format!("cannot start the server: {e}")),
    })
}

/// State of the operations routes.
#[derive(Clone)]
struct Ops {
    gateway: Arc<Gateway>,
    server: Server,
}

fn router(config: &Config, gateway: &Arc<Gateway>, server: &Server) -> Router {
    let ops = Ops {
        gateway: gateway.clone(),
        server: server.clone(),
    };
    let mut routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if config.metrics.enabled {
        routes = routes.route("/metrics", get(metrics));
    }
    let mut app = routes.with_state(ops).merge(server.router::<()>());
    if let Some(key) = &config.api.key {
        let state = api::ApiState::new(
            server.clone(),
            key.expose(),
            config.api.max_body_bytes,
            gateway.api_publishes.clone(),
        );
        app = app.merge(api::router(Arc::new(state)));
    }
    if config.demo {
        app = app.merge(crate::demo::router());
    }
    app.fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(ops): State<Ops>) -> Response {
    let draining = ops.gateway.draining.load(Ordering::Acquire);
    let broker = ops.server.broker().is_ready();
    let body = json!({
        "status": if !draining && broker { "ready" } else { "not ready" },
        "broker": if broker { "ready" } else { "unavailable" },
        "draining": draining,
    });
    let status = if !draining && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(ops): State<Ops>) -> Response {
    let g = &ops.gateway;
    let snapshot = prometheus::Snapshot {
        server: ops.server.metrics(),
        broker_ready: ops.server.broker().is_ready(),
        redis: g.redis.as_ref().map(RedisBroker::stats),
        webhook: g.webhook.as_ref().map(|w| w.stats()),
        api_publishes: g.api_publishes.load(Ordering::Relaxed),
    };
    (
        [(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        prometheus::render(&snapshot),
    )
        .into_response()
}

/// SIGTERM and SIGINT (Ctrl-C), listened to from start-up on, so a signal that arrives while
/// the gateway starts is not lost (nor does it kill the process without a graceful shutdown).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Waits for the next signal; returns its name.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
