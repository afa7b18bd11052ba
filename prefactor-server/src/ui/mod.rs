//! The trace UI: a login page and a small vanilla-JS app served at `/`, reading the JSON
//! endpoints under `/ui/api/` with a session cookie (see [`session`]). The assets are the
//! hand-written files under `prefactor-server/ui/`, compiled into the binary.
//!
//! Hostile data is harmless by construction: the page builds every node with `textContent`
//! (never `innerHTML`), and every UI response carries a Content-Security-Policy that allows
//! only this server's own script and style files (no inline script or style, no other origin),
//! so even a rendering mistake could not run a payload's `<script>`.

pub mod api;
pub mod live;
pub mod session;
pub mod usage;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::AppState;

/// The Content-Security-Policy of every UI response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");
const FAVICON_SVG: &str = include_str!("../../ui/favicon.svg");

/// The UI's routes (outside the API's bearer-token middleware: they use the session instead).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/ui/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/favicon.svg", get(|| async { asset("image/svg+xml", FAVICON_SVG) }))
        .route("/ui/api/login", post(api::login))
        .route("/ui/api/logout", post(api::logout))
        .route("/ui/api/session", get(api::session))
        .route("/ui/api/agents", get(api::agents_page))
        .route("/ui/api/runs", get(api::runs_page))
        .route("/ui/api/runs/{id}", get(api::run_view))
        .route("/ui/api/runs/{id}/events", get(live::events))
        .route("/ui/api/runs/{id}/terminate", post(api::terminate))
        // axum's own rejections (a bad path segment, a wrong method) in the JSON error shape,
        // like the API's.
        .layer(map_response(crate::pipeline::json_rejection))
        .layer(map_response(security_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}
