//! `sealcast serve` authentication and rooms: JWT (HS256, ES256, RS256) accepted and refused for
//! bad signature, expiry, not-before and algorithm confusion; claims → user id and metadata;
//! room policy from config globs, a rooms claim and claim rules; the demo mode and its chat relay
//! (encrypted receivers included).
#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Received,
    gateway::{Gateway, Spec, es256, expect_refused, fixture, hs256, now, rs256},
};
use sealcast::crypto::{KeyPair, PublicKey, V1Key};
use serde_json::{Value, json};

const SECRET: &str = "the HS256 secret shared with the issuer";
const API_KEY: &str = "api key for the auth tests";

async fn hs256_gateway() -> Gateway {
    Spec::new()
        .config(&format!(
            r#"
[auth.jwt]
secret = "{SECRET}"
leeway = "5s"
metadata_claims = ["name", "plan"]
[api]
key = "{API_KEY}"
"#
        ))
        .start()
        .await
}

/// The room's members as the API lists them.
async fn members(gw: &Gateway, room: &str) -> Vec<Value> {
    let reply = gw
        .get_with_key(&format!("/api/rooms/{room}/clients"), API_KEY)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["clients"].as_array().unwrap().clone()
}

#[tokio::test]
async fn jwt_hs256_accepts_valid_tokens_and_refuses_bad_ones() {
    let gw = hs256_gateway().await;
    let token = hs256(
        &json!({"sub": "alice", "name": "Alice", "plan": "pro", "role": "x", "exp": now() + 300}),
        SECRET,
    );
    let mut alice = gw.client().await;
    let connected = alice.authenticate(&token).await;
    assert_eq!(connected["data"]["userId"], "alice");
    // Configured claims became metadata; others did not.
    let id = alice.id.clone().unwrap();
    let listed = members(&gw, &id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["userId"], "alice");
    assert_eq!(
        listed[0]["metadata"],
        json!({"name": "Alice", "plan": "pro"})
    );

    let bad_signature = hs256(
        &json!({"sub": "mallory", "exp": now() + 300}),
        "a different secret of the same length!",
    );
    expect_refused(&gw, &bad_signature).await;
    let expired = hs256(&json!({"sub": "bob", "exp": now() - 60}), SECRET);
    expect_refused(&gw, &expired).await;
    let not_yet_valid = hs256(
        &json!({"sub": "bob", "exp": now() + 300, "nbf": now() + 120}),
        SECRET,
    );
    expect_refused(&gw, &not_yet_valid).await;
    let no_expiry = hs256(&json!({"sub": "bob"}), SECRET);
    expect_refused(&gw, &no_expiry).await;
    let no_subject = hs256(&json!({"exp": now() + 300}), SECRET);
    expect_refused(&gw, &no_subject).await;
    expect_refused(&gw, "alice").await; // a demo name is not a JWT

    // Within the leeway: accepted.
    let just_expired = hs256(&json!({"sub": "carol", "exp": now() - 1}), SECRET);
    gw.authed(&just_expired).await;

    assert_eq!(gw.metric("sealcast_auth_failures_total").await, 6);
}

#[tokio::test]
async fn jwt_es256_and_rs256_verify_with_public_keys() {
    let es = Spec::new()
        .config(&format!(
            "[auth.jwt]\nalgorithm = \"ES256\"\npublic_key_file = \"{}\"\n",
            fixture("es256-public.pem").display()
        ))
        .start()
        .await;
    let claims = json!({"sub": "erin", "exp": now() + 300});
    let connected = es
        .client()
        .await
        .authenticate(&es256(&claims, "es256-private.pem"))
        .await;
    assert_eq!(connected["data"]["userId"], "erin");
    expect_refused(&es, &es256(&claims, "es256-other-private.pem")).await;
    let expired = json!({"sub": "erin", "exp": now() - 60});
    expect_refused(&es, &es256(&expired, "es256-private.pem")).await;
    let early = json!({"sub": "erin", "exp": now() + 300, "nbf": now() + 60});
    expect_refused(&es, &es256(&early, "es256-private.pem")).await;
    // An HS256 token "signed" with the public key is not accepted (algorithm confusion).
    let public_pem = std::fs::read_to_string(fixture("es256-public.pem")).unwrap();
    expect_refused(&es, &hs256(&claims, &public_pem)).await;

    let rs = Spec::new()
        .config(&format!(
            "[auth.jwt]\nalgorithm = \"RS256\"\npublic_key_file = \"{}\"\n",
            fixture("rs256-public.pem").display()
        ))
        .start()
        .await;
    let claims = json!({"sub": "rick", "exp": now() + 300});
    let connected = rs
        .client()
        .await
        .authenticate(&rs256(&claims, "rs256-private.pem"))
        .await;
    assert_eq!(connected["data"]["userId"], "rick");
    expect_refused(&rs, &es256(&claims, "es256-private.pem")).await;
    let public_pem = std::fs::read_to_string(fixture("rs256-public.pem")).unwrap();
    expect_refused(&rs, &hs256(&claims, &public_pem)).await;
}

/// The rooms among `rooms` that `user` is a member of.
async fn joined<'a>(gw: &Gateway, user: &str, rooms: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    for room in rooms {
        if members(gw, room).await.iter().any(|m| m["userId"] == user) {
            out.push(*room);
        }
    }
    out
}

#[tokio::test]
async fn room_policy_from_globs_claims_and_rules() {
    let gw = Spec::new()
        .config(&format!(
            r#"
[auth.jwt]
secret = "{SECRET}"
[rooms]
allow = ["public-*", "user-{{user}}"]
deny = ["public-secret"]
claim = "rooms"
[[rooms.rules]]
claim = "role"
equals = "admin"
allow = ["admin-*"]
[api]
key = "{API_KEY}"
"#
        ))
        .start()
        .await;
    let token = |claims: Value| hs256(&claims, SECRET);
    let mut alice = gw
        .authed(&token(
            json!({"sub": "alice", "exp": now() + 300, "rooms": ["team-a-*"], "role": "dev"}),
        ))
        .await;
    let mut root = gw
        .authed(&token(
            json!({"sub": "root", "exp": now() + 300, "role": ["ops", "admin"]}),
        ))
        .await;
    let rooms = [
        "public-1",
        "public-secret",
        "user-alice",
        "user-root",
        "team-a-x",
        "team-b-x",
        "admin-ops",
        "other",
    ];
    alice.join(&rooms).await;
    root.join(&rooms).await;
    // Joins have no reply. One request is validated as a whole, so once an allowed room shows
    // up, the refused ones have been decided too.
    for (user, room) in [("alice", "team-a-x"), ("root", "admin-ops")] {
        let deadline = tokio::time::Instant::now() + common::WAIT;
        while joined(&gw, user, &[room]).await.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{user} never joined {room}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    assert_eq!(
        joined(&gw, "alice", &rooms).await,
        ["public-1", "user-alice", "team-a-x"],
        "alice: config globs, {{user}}, her rooms claim; not deny-listed, not admin"
    );
    assert_eq!(
        joined(&gw, "root", &rooms).await,
        ["public-1", "user-root", "admin-ops"],
        "root: config globs, {{user}}, the admin rule"
    );

    // A malformed rooms claim refuses the token.
    expect_refused(
        &gw,
        &token(json!({"sub": "x", "exp": now() + 300, "rooms": 42})),
    )
    .await;
}

#[tokio::test]
async fn demo_mode_relays_chat_like_the_example() {
    let gw = Spec::new().start().await;
    assert!(
        gw.stderr_contains("INSECURE").await,
        "demo mode is logged as insecure: {}",
        gw.stderr()
    );
    // The demo page and its client are served.
    let page = gw.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert_eq!(gw.get("/sealcast-client.js").await.status, 200);

    let mut alice = gw.authed("alice").await;
    // Bob offers a key, like the demo page: his deliveries are sealed.
    let bob_key = KeyPair::generate();
    let mut bob = gw.client().await;
    bob.emit(
        "authenticate",
        json!({"type": "token", "token": "bob", "publicKey": bob_key.public_key_b64()}),
    )
    .await;
    let connected = bob.expect_event("connected").await;
    let server_key =
        PublicKey::from_b64(connected["data"]["serverPublicKey"].as_str().unwrap()).unwrap();
    let salt = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        connected["data"]["salt"].as_str().unwrap(),
    )
    .unwrap();
    let bob_v1 = V1Key::derive(&bob_key, &server_key, &salt).unwrap();
    let mut eve = gw.authed("eve").await;

    // Bob joins and hears his own message (sealed) back: he is a member before Alice speaks.
    bob.join(&["chat-lobby"]).await;
    bob.emit("chat", json!({"room": "chat-lobby", "text": "bob here"}))
        .await;
    let open = |sealed: &Value| -> Value {
        let plain = bob_v1
            .open(
                sealed["data"]["iv"].as_str().unwrap(),
                sealed["data"]["ct"].as_str().unwrap(),
                None,
            )
            .unwrap();
        serde_json::from_slice(&plain).unwrap()
    };
    let own = open(&bob.expect_event("encrypted").await);
    assert_eq!(
        (&own["event"], &own["data"]["from"]),
        (&json!("chat"), &json!("bob"))
    );
    alice.join(&["chat-lobby", "private"]).await;
    alice
        .emit("chat", json!({"room": "chat-lobby", "text": "hello bob"}))
        .await;
    let to_alice = alice.expect_event("chat").await;
    assert_eq!(to_alice["data"]["room"], "chat-lobby");
    assert_eq!(to_alice["data"]["from"], "alice");
    assert_eq!(to_alice["data"]["text"], "hello bob");
    assert!(to_alice["data"]["time"].as_str().unwrap().ends_with('Z'));

    let inner = open(&bob.expect_event("encrypted").await);
    assert_eq!(inner["event"], "chat");
    assert_eq!(inner["data"]["from"], "alice");
    assert_eq!(inner["data"]["text"], "hello bob");

    // Not a member: not relayed. Not a chat-* room: not joined.
    eve.emit("chat", json!({"room": "chat-lobby", "text": "let me in"}))
        .await;
    alice
        .emit("chat", json!({"room": "private", "text": "x"}))
        .await;
    assert!(
        !matches!(
            alice.recv_within(common::QUIET).await,
            Some(Received::Event(_))
        ),
        "nothing relayed"
    );
    eve.expect_silence().await;

    // A bad demo name is refused.
    expect_refused(&gw, "not a name!").await;
}
