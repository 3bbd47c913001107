//! `sealcast serve` configuration: errors exit with 2 naming the key (and the variable that set
//! it), the environment overrides the file and flags override both, `--print-config` redacts
//! secrets, the encryption key file is used.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::gateway::{Spec, fixture};
use serde_json::json;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn config_errors_exit_with_2_and_name_the_key() {
    let not_pem = env!("CARGO_MANIFEST_DIR").to_owned() + "/Cargo.toml";
    let cases: Vec<(Spec, Vec<&str>)> =
        vec![
        // unknown keys
        (
            Spec::new().config("[server]\npaht = \"/x\"\n"),
            vec!["`server.paht`", "unknown key"],
        ),
        (Spec::new().config("lisen = \"127.0.0.1:1\"\n"), vec!["`lisen`"]),
        (
            Spec::new().config("[auth.jwt]\nsecrett = \"x\"\n"),
            vec!["`auth.jwt.secrett`"],
        ),
        // bad types
        (
            Spec::new().config("demo = \"yes\"\n"),
            vec!["`demo`", "boolean"],
        ),
        (
            Spec::new().config("[server]\nmax_payload_bytes = \"big\"\n"),
            vec!["`server.max_payload_bytes`"],
        ),
        (
            Spec::new().config("[rooms]\nallow = \"chat-*\"\n"),
            vec!["`rooms.allow`"],
        ),
        // bad values
        (
            Spec::new().config("listen = \"nowhere\"\n"),
            vec!["`listen`", "IP:PORT"],
        ),
        (
            Spec::new().config("[auth.jwt]\nalgorithm = \"HS999\"\n"),
            vec!["`auth.jwt.algorithm`"],
        ),
        (
            Spec::new().config("[auth.jwt]\nsecret = \"too short\"\n"),
            vec!["`auth.jwt.secret`", "32 bytes"],
        ),
        (
            Spec::new().config("[server]\nauth_timeout = \"soon\"\n"),
            vec!["`server.auth_timeout`", "duration"],
        ),
        (
            Spec::new().config("[server]\npath = \"/metrics\"\n"),
            vec!["`server.path`"],
        ),
        (
            Spec::new().config("[rooms]\nallow = [\"user-{id}\"]\n"),
            vec!["`rooms.allow`", "{user}"],
        ),
        (
            Spec::new().config("[api]\nkey = \"short\"\n"),
            vec!["`api.key`", "16 bytes"],
        ),
        (
            Spec::new().config("[webhook]\nurl = \"ftp://example\"\n"),
            vec!["`webhook.url`"],
        ),
        (
            Spec::new().config("[redis]\nurl = \"http://not-redis\"\n"),
            vec!["`redis.url`"],
        ),
        (
            Spec::new().config(
                "[auth.jwt]\nalgorithm = \"ES256\"\npublic_key_file = \"/nonexistent/key.pem\"\n",
            ),
            vec!["`auth.jwt.public_key_file`", "/nonexistent/key.pem"],
        ),
        (
            Spec::new().config(&format!(
                "[auth.jwt]\nalgorithm = \"ES256\"\npublic_key_file = \"{not_pem}\"\n"
            )),
            vec!["`auth.jwt.public_key_file`", "PEM"],
        ),
        (
            Spec::new().config("[encryption]\nkey_file = \"/nonexistent/server.key\"\n"),
            vec!["`encryption.key_file`"],
        ),
        (
            Spec::new().config("[encryption]\nprofiles = [\"v3\"]\n"),
            vec!["`encryption.profiles`", "v3"],
        ),
        (
            Spec::new().config("[encryption]\nprofiles = []\n"),
            vec!["`encryption.profiles`", "disabled"],
        ),
        (
            Spec::new().config(
                "[encryption]\nprofiles = [\"v1\"]\nsigning_key_file = \"/etc/hostname\"\n",
            ),
            vec!["`encryption.signing_key_file`", "v2"],
        ),
        // from the environment and flags: the variable or flag is named too
        (
            Spec::new().env("SEALCAST_SERVER_MAX_PAYLOAD_BYTES", "lots"),
            vec!["`server.max_payload_bytes`", "SEALCAST_SERVER_MAX_PAYLOAD_BYTES"],
        ),
        (
            Spec::new().env("SEALCAST_AUTH_JWT_SECRET", "short"),
            vec!["`auth.jwt.secret`", "SEALCAST_AUTH_JWT_SECRET", "32 bytes"],
        ),
        (
            Spec::new().env("SEALCAST_DEMO", "perhaps"),
            vec!["`demo`", "SEALCAST_DEMO"],
        ),
        (
            Spec::new().arg("--listen").arg("localhost"),
            vec!["`listen`", "--listen"],
        ),
        (
            Spec::new().arg("--log-format").arg("xml"),
            vec!["`log.format`", "--log-format"],
        ),
        // the file itself
        (
            Spec::new().config("listen = [\n"),
            vec!["not valid TOML", "line 1"],
        ),
        (
            Spec::new().arg("--config").arg("/nonexistent/sealcast.toml"),
            vec!["/nonexistent/sealcast.toml"],
        ),
    ];
    for (spec, mentions) in cases {
        let label = format!("{:?} {:?} {:?}", spec.config, spec.env, spec.args);
        let out = spec.run_to_exit().await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{label}: {err}");
        for m in mentions {
            assert!(err.contains(m), "{label}: {m:?} not in {err}");
        }
        assert!(
            stdout(&out).is_empty(),
            "{label}: nothing on stdout: {}",
            stdout(&out)
        );
    }
}

#[tokio::test]
async fn environment_overrides_the_file_and_flags_override_the_environment() {
    let out = Spec::new()
        .config("demo = true\n[log]\nlevel = \"warn\"\n[redis]\nurl = \"redis://file:6379\"\n")
        .env("SEALCAST_LOG_LEVEL", "debug")
        .env("SEALCAST_DEMO", "false")
        .env("SEALCAST_SERVER_DEFAULT_ROOMS", "lobby,news")
        .env("SEALCAST_REDIS_URL", "redis://env:6379")
        .arg("--redis")
        .arg("redis://flag:6379")
        .arg("--print-config")
        .run_to_exit()
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed: toml::Table = toml::from_str(&stdout(&out)).unwrap();
    assert_eq!(printed["log"]["level"].as_str(), Some("debug"));
    assert_eq!(printed["demo"].as_bool(), Some(false));
    assert_eq!(
        printed["server"]["default_rooms"],
        toml::Value::Array(vec!["lobby".into(), "news".into()])
    );
    assert_eq!(printed["redis"]["url"].as_str(), Some("redis://flag:6379"));

    // And live: the demo page is gone, the API key from the environment opens the API.
    let key = "an api key from the environment";
    let gw = Spec::new()
        .env("SEALCAST_DEMO", "false")
        .env("SEALCAST_API_KEY", key)
        .start()
        .await;
    let page = gw.get("/").await;
    assert_eq!(page.status, 404);
    assert_eq!(page.json(), json!({"error": "not found"}));
    let ok = gw
        .post(
            "/api/publish",
            Some(key),
            r#"{"broadcast":true,"event":"e"}"#,
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test]
async fn the_sample_config_is_valid_and_shows_the_defaults() {
    let sample = Spec::new()
        .arg("--config")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/sealcast.toml"
        ))
        .arg("--print-config")
        .run_to_exit()
        .await;
    assert_eq!(sample.status.code(), Some(0), "{}", stderr(&sample));
    let defaults = Spec::new().arg("--print-config").run_to_exit().await;
    assert_eq!(stdout(&sample), stdout(&defaults));
}

#[tokio::test]
async fn print_config_redacts_secrets() {
    let secrets = [
        "hs256-secret-that-is-long-enough-0123456789",
        "the-api-key-0123456789",
        "redis-password-xyz",
        "signing-key-0123456789",
        "webhook-secret-0123",
    ];
    let out = Spec::new()
        .config(&format!(
            r#"
[auth.jwt]
secret = "{}"
[api]
key = "{}"
[redis]
url = "redis://:{}@127.0.0.1:6379"
signing_key = "{}"
[webhook]
url = "http://127.0.0.1:9/hook"
secret = "{}"
"#,
            secrets[0], secrets[1], secrets[2], secrets[3], secrets[4]
        ))
        .arg("--print-config")
        .run_to_exit()
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = stdout(&out);
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} printed:\n{shown}");
        assert!(!stderr(&out).contains(secret));
    }
    let printed: toml::Table = toml::from_str(&shown).unwrap();
    assert_eq!(
        printed["auth"]["jwt"]["secret"].as_str(),
        Some("<redacted>")
    );
    assert_eq!(printed["api"]["key"].as_str(), Some("<redacted>"));
    assert_eq!(
        printed["redis"]["url"].as_str(),
        Some("redis://<redacted>@127.0.0.1:6379")
    );
    // The resolved mode is shown.
    assert_eq!(printed["auth"]["mode"].as_str(), Some("jwt"));
}

#[tokio::test]
async fn the_encryption_key_file_is_used() {
    let dir = common::gateway::temp_dir();
    let secret = [7u8; 32];
    let path = dir.join("server.key");
    std::fs::write(
        &path,
        base64::engine::general_purpose::STANDARD.encode(secret) + "\n",
    )
    .unwrap();
    let expected = sealcast::crypto::KeyPair::from_secret_bytes(&secret)
        .unwrap()
        .public_key_b64();
    let gw = Spec::new()
        .config(&format!(
            "[encryption]\nkey_file = \"{}\"\n",
            path.display()
        ))
        .start()
        .await;
    let client_key = sealcast::crypto::KeyPair::generate();
    let mut c = gw.client().await;
    c.emit(
        "authenticate",
        json!({"type": "token", "token": "alice", "publicKey": client_key.public_key_b64()}),
    )
    .await;
    let connected = c.expect_event("connected").await;
    assert_eq!(connected["data"]["serverPublicKey"], expected.as_str());

    // A file that is not a key is a configuration error.
    std::fs::write(&path, "not a key").unwrap();
    let out = Spec::new()
        .config(&format!(
            "[encryption]\nkey_file = \"{}\"\n",
            path.display()
        ))
        .run_to_exit()
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("`encryption.key_file`"));
    let _ = std::fs::remove_dir_all(dir);

    // Fixture keys are PEM, not raw: also refused, not crashed on.
    let out = Spec::new()
        .config(&format!(
            "[encryption]\nkey_file = \"{}\"\n",
            fixture("es256-private.pem").display()
        ))
        .run_to_exit()
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
