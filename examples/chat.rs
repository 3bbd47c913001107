//! A runnable chat server: the demo page at `/`, WebSocket at `/ws`, token auth, built-in
//! encryption v2 (the JS client's default; server hellos signed with a fresh key whose public
//! half is printed at start, for clients to pin) and v1 for clients that offer a v1 key.
//!
//! ```text
//! cargo run --example chat -- --addr 127.0.0.1:8080
//! open http://127.0.0.1:8080/
//! ```
//!
//! The token is the user name (1–32 of `[A-Za-z0-9_-]`); clients may join rooms named `chat-*`;
//! `{"event":"chat","data":{"room","text"}}` from a member goes to the room as
//! `{"event":"chat","data":{"room","from","text","time"}}`.

use std::net::SocketAddr;

use sealcast::{
    Identity, Server,
    crypto::{KeyPair, v2::ServerSigningKey},
    demo,
    server::V2Config,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut addr: SocketAddr = "127.0.0.1:8080".parse()?;
    let mut require_encryption = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs a value")?.parse()?,
            "--require-encryption" => require_encryption = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }

    let signing_key = ServerSigningKey::generate();
    let signing_public = signing_key.public_key_b64();
    let server = Server::builder()
        .identifier("chat")
        .require_encryption(require_encryption)
        .encryption_v1(KeyPair::generate())
        .encryption_v2(V2Config::new().signing_key(signing_key))
        .authenticate(|req| async move {
            Ok(req
                .token()
                .filter(|t| demo::valid_name(t))
                .map(Identity::user))
        })
        .validate_rooms(|req| async move {
            Ok(req
                .rooms
                .into_iter()
                .filter(|r| r.starts_with("chat-"))
                .collect())
        })
        .on_message(|msg| demo::relay_chat(msg, 2000))
        .build()
        .await?;

    let app = server.router::<()>().merge(demo::router());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    #[allow(clippy::print_stdout)]
    {
        println!("v2 server signing key (pin it as serverSigningKey): {signing_public}");
        println!("listening on http://{local}");
    }
    let handle = server.clone();
    server
        .serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            handle.shutdown().await;
        })
        .await?;
    Ok(())
}
