//! The demo page (encrypted room chat) and the JavaScript client, embedded in the binary so the
//! gateway and the chat example serve them from anywhere, and the small chat protocol the page
//! speaks: user names as tokens, and the relay of `chat` events to a room.
//!
//! The page sends `{"event":"chat","data":{"room","text"}}`; a member's message goes to the room
//! (on every instance) as `{"event":"chat","data":{"room","from","text","time"}}`.

use std::time::SystemTime;

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};

/// The browser/Node client module.
pub const CLIENT_JS: &str = include_str!("../examples/js/sealcast-client.js");
/// Its TypeScript declarations.
pub const CLIENT_DTS: &str = include_str!("../examples/js/sealcast-client.d.ts");
const INDEX_HTML: &str = include_str!("../examples/js/index.html");
const DEMO_JS: &str = include_str!("../examples/js/demo.js");
const DEMO_CSS: &str = include_str!("../examples/js/demo.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A router serving the demo page at `/` and its assets beside it.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    const JS: &str = "text/javascript; charset=utf-8";
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/index.html",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route("/demo.js", get(|| async { asset(JS, DEMO_JS) }))
        .route(
            "/demo.css",
            get(|| async { asset("text/css; charset=utf-8", DEMO_CSS) }),
        )
        .route(
            "/sealcast-client.js",
            get(|| async { asset(JS, CLIENT_JS) }),
        )
        .route(
            "/sealcast-client.d.ts",
            get(|| async { asset("text/plain; charset=utf-8", CLIENT_DTS) }),
        )
}

/// A demo user name: 1–32 of `[A-Za-z0-9_-]`.
pub fn valid_name(token: &str) -> bool {
    (1..=32).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[derive(serde::Deserialize)]
struct Chat {
    room: String,
    text: String,
}

/// The chat relay, for [`ServerBuilder::on_message`](crate::ServerBuilder::on_message): a `chat`
/// event from a member of its room, with 1 to `max_chars` characters of text, is sent to the
/// room on every instance with the sender's user id and the time. Anything else is ignored.
pub async fn relay_chat(
    msg: crate::server::MessageEvent,
    max_chars: usize,
) -> crate::server::HookResult<()> {
    if msg.event != "chat" {
        return Ok(());
    }
    let chat: Chat = msg.data()?;
    let member = msg
        .server
        .client(&msg.client_id)
        .is_some_and(|c| c.rooms.contains(&chat.room));
    let chars = chat.text.chars().count();
    if !member || chars == 0 || chars > max_chars {
        return Ok(());
    }
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let out = serde_json::json!({"room": chat.room, "from": msg.user_id, "text": chat.text, "time": time});
    msg.server
        .send_to_room_everywhere(&chat.room, "chat", &out, &[])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names() {
        assert!(valid_name("a") && valid_name(&"x".repeat(32)) && valid_name("A-z_09"));
        for bad in ["", &"x".repeat(33), "a b", "é", "bad token!"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
