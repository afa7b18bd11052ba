//! The one middleware every API request passes, in this order: note the arrival (request
//! log); check the bearer token (401, before anything of the body is read, so an
//! unauthenticated request can neither pin memory nor reach the log with its body); refuse a
//! declared `Content-Length` over the limit at once (413, without reading); take a share of
//! the bodies-in-flight budget (503 when the server is saturated, see [`crate::inflight`]);
//! read the body within the limit (413) and the read timeout (408); apply fault rules; run
//! the handler; turn any handler answer that is not JSON (axum's own extractor rejections, such as a
//! non-UTF-8 path segment) into the JSON error shape; record the request with its status.
//! One middleware instead of a stack keeps the per-request overhead (boxed futures, service
//! clones) low on the hot path.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::rejection;
use crate::error::ApiError;
use crate::faults::{self, Fault};
use crate::recorder::RawRequest;
use crate::state::AppState;

/// Largest non-JSON error body converted to the JSON shape (axum's rejections are one line).
const REJECTION_TEXT_LIMIT: usize = 4096;

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
    let (body, response) = answer(&state, parts, body, next, record).await;
    if let Some(mut entry) = pending {
        entry.body = body;
        entry.status = response.status().as_u16();
        entry.response_headers = response.headers().clone();
        recorder.push(sequence, entry);
    }
    response
}

/// The answer, and the body to record (empty unless recording and authenticated).
async fn answer(state: &AppState, parts: Parts, body: Body, next: Next, record: bool) -> (Bytes, Response) {
    let declared = declared_length(&parts.headers);
    // An answer given without reading the body closes the connection: the unread rest of the
    // body must not be taken for the next request, and the client must not reuse it.
    let unread = |response: Response| {
        let has_body =
            declared != Some(0) && (declared.is_some() || parts.headers.contains_key(header::TRANSFER_ENCODING));
        (Bytes::new(), if has_body { closing(response) } else { response })
    };
    if let Some(unauthorized) = rejection(state, &parts.headers, parts.uri.path()) {
        return unread(unauthorized);
    }
    let limit = state.options.max_body_bytes;
    if declared.is_some_and(|length| length > limit as u64) {
        return unread(too_large(limit));
    }
    let share_bytes = declared.map_or(limit, |length| usize::try_from(length).unwrap_or(limit));
    let Some(_share) = state.bodies.share(share_bytes).await else {
        let mut busy =
            ApiError::new(503, "server_busy", "too many request bodies in flight; retry shortly").into_response();
        busy.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return unread(busy);
    };
    let bytes = match tokio::time::timeout(state.options.body_read_timeout, to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => {
            let over_limit = error.into_inner().is::<http_body_util::LengthLimitError>();
            let answer = if over_limit {
                too_large(limit)
            } else {
                ApiError::new(400, "bad_request", "the request body could not be read").into_response()
            };
            return (Bytes::new(), closing(answer));
        }
        Err(_) => {
            let timeout = state.options.body_read_timeout.as_secs();
            let answer =
                ApiError::new(408, "request_timeout", format!("the request body took longer than {timeout} s"));
            return (Bytes::new(), closing(answer.into_response()));
        }
    };
    let recorded = if record { bytes.clone() } else { Bytes::new() };
    let response = match faults::apply(&state.faults, parts.method.as_str(), parts.uri.path()).await {
        Fault::Answer(fault) => fault,
        // An injected answer goes out as configured (it may be HTML on purpose).
        Fault::Pass => json_rejection(next.run(Request::from_parts(parts, Body::from(bytes))).await).await,
        Fault::ApplyThenReset => {
            faults::reset(json_rejection(next.run(Request::from_parts(parts, Body::from(bytes))).await).await)
        }
    };
    (recorded, response)
}

/// `response` with `Connection: close`.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The `Content-Length` a request declares (None when absent or not a number).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

fn too_large(limit: usize) -> Response {
    ApiError::new(413, "payload_too_large", format!("request body exceeds the limit of {limit} bytes")).into_response()
}

/// An error answer that is not JSON (axum's extractor rejections are plain text, its 405s
/// empty) in the JSON error shape with the same status and headers; every other answer
/// unchanged. The UI's routes pass through it too.
pub async fn json_rejection(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = to_bytes(body, REJECTION_TEXT_LIMIT).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = if text.trim().is_empty() { status.canonical_reason().unwrap_or("error") } else { text.trim() };
    let mut answer = ApiError::new(status.as_u16(), code_of(status), message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// The error code of a status: its reason phrase in snake case (`bad_request`).
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "validation_error",
        429 => "too_many_requests",
        503 => "service_unavailable",
        code if code >= 500 => "internal_error",
        _ => "bad_request",
    }
}
