//! The one middleware every request passes, in this order: note the arrival (request log),
//! buffer the body (413 over the limit), check the bearer token (401), apply fault rules,
//! run the handler, record the request with its status. One middleware instead of a stack of
//! three keeps the per-request overhead (boxed futures, service clones) low on the hot path.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::rejection;
use crate::error::ApiError;
use crate::faults::{self, Fault};
use crate::recorder::RawRequest;
use crate::state::AppState;

/// The middleware function (see the module doc).
pub async fn handle(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let recorder = &state.recorder;
    let record = recorder.enabled() && !request.uri().path().starts_with("/__admin");
    let sequence = recorder.arrival();
    let (parts, body) = request.into_parts();
    let pending = record.then(|| RawRequest {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
        body: Bytes::new(),
        status: 0,
        response_headers: HeaderMap::new(),
    });
    let limit = state.options.max_body_bytes;
    let (body, response) = match to_bytes(body, limit).await {
        Ok(bytes) => {
            let recorded = if record { bytes.clone() } else { Bytes::new() };
            let response = match rejection(&state, &parts.headers, parts.uri.path()) {
                Some(unauthorized) => unauthorized,
                None => match faults::apply(&state.faults, parts.method.as_str(), parts.uri.path()).await {
                    Fault::Answer(fault) => fault,
                    Fault::Pass => next.run(Request::from_parts(parts, Body::from(bytes))).await,
                    Fault::ApplyThenReset => {
                        faults::reset(next.run(Request::from_parts(parts, Body::from(bytes))).await)
                    }
                },
            };
            (recorded, response)
        }
        Err(_) => {
            let error =
                ApiError::new(413, "payload_too_large", format!("request body exceeds the limit of {limit} bytes"));
            (Bytes::new(), error.into_response())
        }
    };
    if let Some(mut entry) = pending {
        entry.body = body;
        entry.status = response.status().as_u16();
        entry.response_headers = response.headers().clone();
        recorder.push(sequence, entry);
    }
    response
}
