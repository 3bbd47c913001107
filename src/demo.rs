//! The demo page (encrypted room chat) and the JavaScript client, embedded in the binary so the
//! gateway and the chat example serve them from anywhere.

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
