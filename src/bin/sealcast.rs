//! The `sealcast` command line.
//!
//! * `sealcast serve`: the standalone gateway ([`sealcast::gateway`]): WebSocket, HTTP API,
//!   metrics and the demo page, configured by a TOML file and `SEALCAST_*` variables.
//! * `sealcast emit`: publish one message through Redis to the clients of every sealcast (or
//!   reference) server instance on it, like the library's [`Emitter`].
//!
//! Exit codes: 0 on success (and after a graceful shutdown on SIGTERM/SIGINT), 2 for usage and
//! configuration errors (bad flags, bad JSON, bad room name, bad config key), 1 when the work
//! itself fails (Redis unreachable, publish refused, address in use).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand, error::ErrorKind};
use sealcast::{
    broker::{RedisConfig, SigningKey},
    emitter::{EmitError, Emitter},
    gateway::{self, ServeOptions},
    protocol::RoomName,
};
use serde_json::value::RawValue;

#[derive(Debug, Parser)]
#[command(
    name = "sealcast",
    version,
    about = "Encryption-first real-time messaging over WebSocket"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: WebSocket at /ws, HTTP API, /metrics, /healthz, /readyz, demo page at /.
    Serve(ServeArgs),
    /// Publish one message through Redis to every server instance's matching clients.
    Emit(Box<EmitArgs>),
}

/// Flags of `sealcast serve`. Everything else is in the config file or `SEALCAST_*` variables
/// (see the README); flags win over both.
#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML configuration file (every key is optional).
    #[arg(long, short, env = "SEALCAST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address to listen on, IP:PORT (port 0 picks a free one; the bound address is printed as
    /// `listening on http://ADDR`). Overrides `listen`. `--addr` is accepted too (like
    /// `examples/chat.rs`).
    #[arg(long, alias = "addr", value_name = "ADDR")]
    listen: Option<String>,

    /// Redis URL to scale out over several instances; comma-separated URLs are Redis Cluster
    /// nodes. Overrides `redis.url`.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,

    /// Log format: text or json. Overrides `log.format`.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,

    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .args(["room", "user", "client", "broadcast"])
))]
struct EmitArgs {
    /// Redis URL (e.g. redis://127.0.0.1:6379); several comma-separated URLs are Redis Cluster
    /// nodes.
    #[arg(long, env = "SEALCAST_REDIS", value_name = "URL", value_parser = parse_redis)]
    redis: RedisConfig,

    /// Treat the URL(s) as Redis Cluster nodes (discover the others, fail over between them).
    #[arg(long)]
    cluster: bool,

    /// Send to every member of this room.
    #[arg(long, value_name = "ROOM", value_parser = parse_room)]
    room: Option<String>,

    /// Send to every session of this user.
    #[arg(long, value_name = "USER_ID", value_parser = parse_non_empty)]
    user: Option<String>,

    /// Send to this client.
    #[arg(long, value_name = "CLIENT_ID", value_parser = parse_non_empty)]
    client: Option<String>,

    /// Send to every authenticated client.
    #[arg(long)]
    broadcast: bool,

    /// The event name the clients receive.
    #[arg(long, short, value_name = "EVENT", value_parser = parse_non_empty)]
    event: String,

    /// The payload, as JSON.
    #[arg(long, short, value_name = "JSON", default_value = "null", value_parser = parse_json)]
    data: Box<RawValue>,

    /// A client id of the room that must not receive the message (repeatable).
    // Checked after parsing: clap lets `requires = "room"` pass when a conflicting target is given.
    #[arg(long, value_name = "CLIENT_ID")]
    exclude: Vec<String>,

    /// Sign the envelope with this shared key (at least 16 bytes), for deployments that verify
    /// signatures.
    #[arg(
        long,
        env = "SEALCAST_SIGNING_KEY",
        hide_env_values = true,
        value_name = "KEY",
        value_parser = parse_signing_key
    )]
    signing_key: Option<SigningKey>,

    /// How long to try to reach Redis before giving up (e.g. 3s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
}

impl Cli {
    /// Usage rules clap cannot express.
    fn check(&self) -> Result<(), clap::Error> {
        match &self.command {
            Command::Emit(args) if !args.exclude.is_empty() && args.room.is_none() => {
                Err(Cli::command().error(
                    ErrorKind::MissingRequiredArgument,
                    "--exclude only applies to --room",
                ))
            }
            _ => Ok(()),
        }
    }
}

fn parse_redis(s: &str) -> Result<RedisConfig, String> {
    s.parse::<RedisConfig>().map_err(|e| e.to_string())
}

fn parse_room(s: &str) -> Result<String, String> {
    RoomName::new(s)
        .map(|r| r.as_str().to_owned())
        .map_err(|e| e.to_string())
}

fn parse_non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_owned())
    }
}

fn parse_json(s: &str) -> Result<Box<RawValue>, String> {
    serde_json::from_str::<Box<RawValue>>(s).map_err(|e| format!("not valid JSON: {e}"))
}

fn parse_signing_key(s: &str) -> Result<SigningKey, String> {
    SigningKey::new(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    // Usage errors exit with 2 here, before anything runs.
    let cli = Cli::parse();
    if let Err(e) = cli.check() {
        e.exit();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sealcast: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => serve(&runtime, args),
        Command::Emit(args) => {
            init_tracing("warn");
            match runtime.block_on(emit(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("sealcast: {message}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs the gateway; it sets up its own logging from its configuration.
fn serve(runtime: &tokio::runtime::Runtime, args: ServeArgs) -> ExitCode {
    let options = ServeOptions {
        config: args.config,
        listen: args.listen,
        redis: args.redis,
        log_format: args.log_format,
        print_config: args.print_config,
    };
    match runtime.block_on(gateway::serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sealcast: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides `default`.
fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn emit(args: EmitArgs) -> Result<(), String> {
    let mut config = args.redis.connect_timeout(args.connect_timeout);
    if args.cluster {
        config = config.cluster(true);
    }
    if let Some(key) = args.signing_key {
        config = config.signing_key(key);
    }
    let emitter = Emitter::connect(config).await.map_err(|e| e.to_string())?;
    let exclude: Vec<&str> = args.exclude.iter().map(String::as_str).collect();
    let event = args.event.as_str();
    let data = &args.data;
    let sent: Result<(), EmitError> = if let Some(room) = &args.room {
        emitter.to_room(room, event, data, &exclude).await
    } else if let Some(user) = &args.user {
        emitter.to_user(user, event, data).await
    } else if let Some(client) = &args.client {
        emitter.to_client(client, event, data).await
    } else {
        emitter.broadcast(event, data).await
    };
    emitter.shutdown().await;
    sent.map_err(|e| format!("publish failed: {e}"))
}
