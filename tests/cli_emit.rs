//! `sealcast emit` against a real `redis-server`: what it publishes, and its exit codes
//! (2 for usage errors, 1 for runtime failures) with clear messages.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    process::{Command, Output},
    time::{Duration, Instant},
};

use common::redis::RedisProcess;
use futures_util::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

async fn sealcast(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sealcast"))
            .args(&args)
            .env_remove("SEALCAST_REDIS")
            .env_remove("SEALCAST_SIGNING_KEY")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn emit_publishes_the_reference_envelope_for_each_target() {
    let redis = RedisProcess::start().await;
    let url = redis.url();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.psubscribe("ws:*").await.unwrap();
    let mut wire = pubsub.into_on_message();

    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            args(&[
                "--room",
                "dashboard",
                "--event",
                "data:update",
                "--data",
                r#"{"metric":"cpu","value":42.5}"#,
                "--exclude",
                "c1",
                "--exclude",
                "c2",
            ]),
            "ws:room:dashboard",
            r#"{"serverId":"emitter","type":"room","target":"dashboard","event":"data:update","data":{"metric":"cpu","value":42.5},"exclude":["c1","c2"]}"#,
        ),
        (
            args(&[
                "--user",
                "user-456",
                "-e",
                "notification",
                "-d",
                r#"{"message":"ready"}"#,
            ]),
            "ws:user:user-456",
            r#"{"serverId":"emitter","type":"user","target":"user-456","event":"notification","data":{"message":"ready"}}"#,
        ),
        (
            args(&["--client", "c-9", "--event", "ping"]),
            "ws:client:c-9",
            r#"{"serverId":"emitter","type":"client","target":"c-9","event":"ping","data":null}"#,
        ),
        (
            args(&[
                "--broadcast",
                "--event",
                "system:maintenance",
                "--data",
                "[1,2,3]",
            ]),
            "ws:broadcast",
            r#"{"serverId":"emitter","type":"broadcast","event":"system:maintenance","data":[1,2,3]}"#,
        ),
    ];
    for (target_args, channel, payload) in cases {
        let mut full = args(&["emit", "--redis", &url]);
        full.extend(target_args);
        let out = sealcast(full).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let msg = tokio::time::timeout(WAIT, wire.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(msg.get_channel_name(), channel);
        assert_eq!(msg.get_payload::<String>().unwrap(), payload);
    }

    // The URL may come from the environment, and a signing key adds `sig`.
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_sealcast"))
                .args(["emit", "--broadcast", "--event", "signed"])
                .env("SEALCAST_REDIS", url)
                .env("SEALCAST_SIGNING_KEY", "a shared key of 16+ bytes")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let msg = tokio::time::timeout(WAIT, wire.next())
        .await
        .unwrap()
        .unwrap();
    let payload = msg.get_payload::<String>().unwrap();
    assert!(
        payload.starts_with(
            r#"{"serverId":"emitter","type":"broadcast","event":"signed","data":null,"sig":""#
        ),
        "{payload}"
    );
}

#[tokio::test]
async fn usage_errors_exit_with_2() {
    let url = "redis://127.0.0.1:1";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "emit", "--redis", url, "--room", "r", "--event", "e", "--data", "{bad",
            ],
            "--data",
        ),
        (vec!["emit", "--redis", url, "--event", "e"], "--room"),
        (
            vec![
                "emit", "--redis", url, "--room", "r", "--user", "u", "--event", "e",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "emit",
                "--redis",
                url,
                "--room",
                "ws:room:x",
                "--event",
                "e",
            ],
            "reserved prefix",
        ),
        (
            vec!["emit", "--redis", url, "--room", "", "--event", "e"],
            "empty",
        ),
        (
            vec!["emit", "--redis", url, "--broadcast", "--event", ""],
            "empty",
        ),
        (
            vec![
                "emit",
                "--redis",
                url,
                "--broadcast",
                "--event",
                "e",
                "--exclude",
                "c1",
            ],
            "--room",
        ),
        (
            vec![
                "emit",
                "--redis",
                "http://not-redis",
                "--broadcast",
                "--event",
                "e",
            ],
            "--redis",
        ),
        (vec!["emit", "--room", "r", "--event", "e"], "--redis"),
        (
            vec![
                "emit",
                "--redis",
                url,
                "--broadcast",
                "--event",
                "e",
                "--signing-key",
                "short",
            ],
            "16 bytes",
        ),
        (vec!["nope"], "unrecognized subcommand"),
    ];
    for (argv, mentions) in cases {
        let out = sealcast(args(&argv)).await;
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(mentions),
            "{argv:?}: {}",
            stderr(&out)
        );
    }
}

#[tokio::test]
async fn unreachable_redis_exits_with_1_naming_the_url() {
    let port = common::redis::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let started = Instant::now();
    let out = sealcast(args(&[
        "emit",
        "--redis",
        &url,
        "--connect-timeout",
        "1s",
        "--room",
        "r",
        "--event",
        "e",
        "--data",
        "{}",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&url), "{err}");
    assert!(
        err.starts_with("sealcast: ") || err.contains("\nsealcast: "),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
