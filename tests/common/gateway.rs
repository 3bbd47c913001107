//! `sealcast serve` as a child process for tests: started with a config file, environment and
//! flags on `--listen 127.0.0.1:0`, its address read from the `listening on http://ADDR` line,
//! killed on drop. Plus a small HTTP client and JWT helpers.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::Value;

use super::WsClient;

/// How long the gateway may take to print its address.
const START_WAIT: Duration = Duration::from_secs(20);

/// A path to a file under tests/fixtures/gateway.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gateway")
        .join(name)
}

/// A fresh temporary directory.
pub fn temp_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sealcast-gateway-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// How to start a gateway.
#[derive(Default, Clone)]
pub struct Spec {
    pub config: Option<String>,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl Spec {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// The command, with a clean `SEALCAST_*`/`RUST_LOG` environment; the config file (if any)
    /// goes into `dir`.
    fn command(&self, dir: &std::path::Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealcast"));
        cmd.arg("serve");
        for (key, _) in std::env::vars() {
            if key.starts_with("SEALCAST_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        if let Some(config) = &self.config {
            let path = dir.join("sealcast.toml");
            std::fs::write(&path, config).unwrap();
            cmd.arg("--config").arg(path);
        }
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `sealcast serve ...` expecting it to exit by itself (config errors,
    /// `--print-config`).
    pub async fn run_to_exit(self) -> Output {
        tokio::task::spawn_blocking(move || {
            let dir = temp_dir();
            let mut cmd = self.command(&dir);
            cmd.stdin(Stdio::null());
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // A gateway that does not exit (a test bug) is killed after a while.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let out = child.wait_with_output().unwrap();
            let _ = std::fs::remove_dir_all(dir);
            out
        })
        .await
        .unwrap()
    }

    /// Starts a gateway on a free port and waits for its address.
    pub async fn start(self) -> Gateway {
        let dir = temp_dir();
        let mut cmd = self.command(&dir);
        cmd.args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr_text = Arc::new(Mutex::new(String::new()));
        {
            let mut stderr = child.stderr.take().unwrap();
            let text = stderr_text.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    text.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        {
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = line.strip_prefix("listening on http://") {
                        let _ = tx.send(addr.trim().parse().unwrap());
                    }
                }
            });
        }
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(START_WAIT))
            .await
            .unwrap();
        let mut gateway = Gateway {
            child: Some(child),
            addr: "127.0.0.1:0".parse().unwrap(),
            stderr: stderr_text,
            dir,
        };
        match addr {
            Ok(addr) => gateway.addr = addr,
            Err(_) => {
                let status = gateway.child.as_mut().unwrap().try_wait().ok().flatten();
                panic!(
                    "the gateway did not print its address (exit: {status:?}); stderr:\n{}",
                    gateway.stderr()
                );
            }
        }
        gateway
    }
}

/// A running `sealcast serve`.
pub struct Gateway {
    child: Option<Child>,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    dir: PathBuf,
}

/// An HTTP response: status and body text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn client(&self) -> WsClient {
        WsClient::connect(&self.ws_url()).await
    }

    /// A client authenticated with `token`.
    pub async fn authed(&self, token: &str) -> WsClient {
        let mut c = self.client().await;
        c.authenticate(token).await;
        c
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Everything the gateway wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (up to `WAIT`) until stderr contains `needle`.
    pub async fn stderr_contains(&self, needle: &str) -> bool {
        let deadline = tokio::time::Instant::now() + super::WAIT;
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        http("GET", &self.url(path), &[], "").await
    }

    pub async fn get_with_key(&self, path: &str, key: &str) -> Reply {
        let auth = format!("Bearer {key}");
        http("GET", &self.url(path), &[("authorization", &auth)], "").await
    }

    /// POSTs `body` to `path`, with `Authorization: Bearer <key>` when given.
    pub async fn post(&self, path: &str, key: Option<&str>, body: &str) -> Reply {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        http("POST", &self.url(path), &headers, body).await
    }

    /// One sample of `/metrics` (the first line whose series is exactly `series`).
    pub async fn metric(&self, series: &str) -> u64 {
        let reply = self.get("/metrics").await;
        assert_eq!(reply.status, 200);
        reply
            .body
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .map(|v| v.trim().parse::<u64>().unwrap())
            })
            .unwrap_or_else(|| panic!("no {series} in:\n{}", reply.body))
    }

    /// Waits (up to `WAIT`) until `series` is at least `min`; returns its value.
    pub async fn metric_at_least(&self, series: &str, min: u64) -> u64 {
        let deadline = tokio::time::Instant::now() + super::WAIT;
        loop {
            let value = self.metric(series).await;
            if value >= min || tokio::time::Instant::now() > deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to `WAIT`) until `series` equals `expected`; returns its last value.
    pub async fn metric_eventually(&self, series: &str, expected: u64) -> u64 {
        let deadline = tokio::time::Instant::now() + super::WAIT;
        loop {
            let value = self.metric(series).await;
            if value == expected || tokio::time::Instant::now() > deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM with `kill`.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -TERM {}", self.pid());
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(status);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One HTTP/1.1 request.
pub async fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = axum::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = tokio::time::timeout(super::WAIT, client.request(request))
        .await
        .expect("an HTTP answer in time")
        .expect("an HTTP answer");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An HS256 token.
pub fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// An ES256 token signed with a fixture key.
pub fn es256(claims: &Value, private_fixture: &str) -> String {
    let pem = std::fs::read(fixture(private_fixture)).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap(),
    )
    .unwrap()
}

/// An RS256 token signed with a fixture key.
pub fn rs256(claims: &Value, private_fixture: &str) -> String {
    let pem = std::fs::read(fixture(private_fixture)).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

/// Sends `authenticate` with `token` and expects the refusal: `Authentication failed`, 4003.
pub async fn expect_refused(gateway: &Gateway, token: &str) {
    let mut c = gateway.client().await;
    c.emit(
        "authenticate",
        serde_json::json!({"type": "token", "token": token}),
    )
    .await;
    c.expect_error("Authentication failed").await;
    let (code, _) = c.expect_close().await;
    assert_eq!(code, Some(4003));
}
