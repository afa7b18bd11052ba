//! `GET /ui/api/runs/{id}/events`: server-sent events for the run view. The stream polls the
//! run's change fingerprint ([`crate::db::runs::fingerprint`]) and sends a `changed` event
//! whenever it moves; the page then re-reads the run. It ends once the run is finished
//! (after telling the page), when the run disappears, when the server shuts down, or after
//! [`MAX_STREAM`] (the browser's `EventSource` reconnects by itself).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use crate::db::runs;
use crate::ids::parse_path_id;
use crate::state::AppState;
use crate::ui::api::require_session;

/// How often a stream looks for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(400);
/// Longest life of one stream.
pub const MAX_STREAM: Duration = Duration::from_secs(10 * 60);

const TERMINAL: [&str; 4] = ["complete|", "failed|", "cancelled|", "terminated|"];

struct Watch {
    state: AppState,
    id: String,
    last: Option<String>,
    opened: Instant,
    finished: bool,
}

/// The handler (see the module doc).
pub async fn events(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(error) = require_session(&state, &headers) {
        return error.into_response();
    }
    let id = match parse_path_id("agent instance", &id) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    let watch = Watch { state, id, last: None, opened: Instant::now(), finished: false };
    let stream = futures_util::stream::unfold(watch, next_event);
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

async fn next_event(mut watch: Watch) -> Option<(Result<Event, Infallible>, Watch)> {
    while !watch.finished && watch.opened.elapsed() < MAX_STREAM && !watch.state.stopping.load(Ordering::Relaxed) {
        let id = watch.id.clone();
        let fingerprint = watch.state.db.read(move |conn| runs::fingerprint(conn, &id)).await.ok()??;
        if watch.last.as_deref() != Some(fingerprint.as_str()) {
            watch.finished = TERMINAL.iter().any(|status| fingerprint.starts_with(status));
            let event = Event::default().event("changed").data(&fingerprint);
            watch.last = Some(fingerprint);
            return Some((Ok(event), watch));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    None
}
