//! The live page (`GET /`): one HTML document, its script and its style,
//! compiled into the binary (no CDN, nothing built outside cargo). The page
//! holds no data of its own: it asks for a token once, keeps it in memory,
//! and reads the API with it (`/v1/whoami`, `/v1/runs`, a run's events
//! over SSE with `Last-Event-ID` after a reconnect). Served without a
//! token, with a content security policy that allows only this origin.

use axum::http::header;
use axum::response::IntoResponse;

/// The page's script.
pub const SCRIPT: &str = "/page.js";
/// The page's style.
pub const STYLE: &str = "/page.css";

const HTML: &str = include_str!("page/index.html");
const JS: &str = include_str!("page/page.js");
const CSS: &str = include_str!("page/page.css");

/// The page's own files: served to anyone (they hold no data).
pub fn is_page(route: &str) -> bool {
    matches!(route, "/" | SCRIPT | STYLE)
}

fn serve(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}

/// `GET /`.
pub async fn index() -> impl IntoResponse {
    serve("text/html; charset=utf-8", HTML)
}

/// `GET /page.js`.
pub async fn script() -> impl IntoResponse {
    serve("text/javascript; charset=utf-8", JS)
}

/// `GET /page.css`.
pub async fn style() -> impl IntoResponse {
    serve("text/css; charset=utf-8", CSS)
}
