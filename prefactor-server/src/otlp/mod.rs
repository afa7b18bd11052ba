//! OTLP ingest: `POST /v1/traces` (OTLP/HTTP, protobuf or JSON, optionally gzip) stores
//! OpenTelemetry spans as spans of agent instances, so an agent written in any language with
//! any OTel instrumentation shows up next to the Rust ones.
//!
//! It sits behind the same middleware as the API ([`crate::pipeline`]): bearer token, body
//! limit (which also bounds the decompressed body), bodies-in-flight budget, body timeout,
//! request log and fault rules. Decoding uses the official protobuf definitions
//! (`opentelemetry-proto`, with its OTLP/JSON serde). [`mapping`] turns OTel spans into
//! span rows, [`store`] writes them in one writer job. A span that cannot be stored (bad ids,
//! no start time) is counted in the answer's `partial_success`, and the others are stored.
//! Errors of a protobuf request are answered as a protobuf `google.rpc.Status`, as OTLP/HTTP
//! clients expect; errors of a JSON request in the server's JSON error shape.

pub mod mapping;
pub mod store;

use std::collections::HashMap;
use std::io::Read;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::Value;

use crate::db::spans::PayloadTexts;
use crate::error::ApiError;
use crate::state::AppState;
use mapping::{attribute_map, map_span};
use store::{Service, SpanToStore, TraceToStore};

/// The route.
pub const TRACES_PATH: &str = "/v1/traces";

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The two encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// The encoding a request's `Content-Type` names (None for any other type).
    pub fn of(headers: &HeaderMap) -> Option<Encoding> {
        let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case(PROTOBUF) {
            Some(Encoding::Protobuf)
        } else if media_type.eq_ignore_ascii_case(JSON) {
            Some(Encoding::Json)
        } else {
            None
        }
    }
}

/// `POST /v1/traces`.
pub async fn ingest(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(encoding) = Encoding::of(&headers) else {
        return ApiError::new(
            415,
            "unsupported_media_type",
            format!("send OTLP as {PROTOBUF} or {JSON} (OTLP/HTTP); gRPC is not served"),
        )
        .into_response();
    };
    match ingest_request(&state, &headers, encoding, &body).await {
        Ok(answer) => encode_answer(encoding, &answer),
        Err(error) => error.into_response(),
    }
}

async fn ingest_request(
    state: &AppState,
    headers: &HeaderMap,
    encoding: Encoding,
    body: &[u8],
) -> Result<ExportTraceServiceResponse, ApiError> {
    let limit = state.options.max_body_bytes;
    let body = decompress(headers, body, limit)?;
    let ParsedExport { traces, refused } = parse_export(encoding, &body)?;
    let account = state.account.clone();
    if !traces.is_empty() {
        state.db.write(move |conn| store::store(conn, &account, traces)).await?;
    }
    let partial_success = (!refused.is_empty()).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(refused.len()).unwrap_or(i64::MAX),
        error_message: summary_of(&refused),
    });
    Ok(ExportTraceServiceResponse { partial_success })
}

/// The body without its `Content-Encoding` (identity or gzip), at most `limit` bytes.
fn decompress<'a>(headers: &HeaderMap, body: &'a [u8], limit: usize) -> Result<std::borrow::Cow<'a, [u8]>, ApiError> {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|value| value.to_str().ok()).map(str::trim);
    match encoding {
        None | Some("") => Ok(body.into()),
        Some(name) if name.eq_ignore_ascii_case("identity") => Ok(body.into()),
        Some(name) if name.eq_ignore_ascii_case("gzip") => {
            let mut inflated = Vec::new();
            // One byte over the limit tells a body at the limit from a larger one; a gzip bomb
            // stops there.
            let read = flate2::read::GzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut inflated)
                .map_err(|error| ApiError::new(400, "bad_request", format!("the gzip body is corrupt: {error}")))?;
            if read > limit {
                return Err(ApiError::new(
                    413,
                    "payload_too_large",
                    format!("the decompressed body exceeds the limit of {limit} bytes"),
                ));
            }
            Ok(inflated.into())
        }
        Some(other) => Err(ApiError::new(
            415,
            "unsupported_media_type",
            format!("Content-Encoding '{other}' is not supported (send gzip or none)"),
        )),
    }
}

/// What an export request holds, ready to store.
pub struct ParsedExport {
    /// Its spans grouped by trace, in order of first appearance.
    pub traces: Vec<TraceToStore>,
    /// Why each refused span was refused.
    pub refused: Vec<String>,
}

/// Decodes an (uncompressed) export body and maps its spans: a 400 when the body is not an
/// export in `encoding`, else the spans to store and the refused ones.
///
/// ```
/// use prefactor_server::otlp::{Encoding, parse_export};
/// let empty = parse_export(Encoding::Json, br#"{"resourceSpans": []}"#).unwrap();
/// assert!(empty.traces.is_empty() && empty.refused.is_empty());
/// assert_eq!(parse_export(Encoding::Protobuf, b"\xff\xff").err().unwrap().status, 400);
/// ```
pub fn parse_export(encoding: Encoding, body: &[u8]) -> Result<ParsedExport, ApiError> {
    let (traces, refused) = prepare(decode(encoding, body)?);
    Ok(ParsedExport { traces, refused })
}

fn decode(encoding: Encoding, body: &[u8]) -> Result<ExportTraceServiceRequest, ApiError> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|error| ApiError::new(400, "bad_request", format!("not an OTLP protobuf trace export: {error}"))),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|error| ApiError::bad_json(format!("not an OTLP/JSON trace export: {error}"))),
    }
}

/// The request's spans grouped by trace (in order of first appearance) with their payload
/// texts, and why each refused span was refused.
fn prepare(request: ExportTraceServiceRequest) -> (Vec<TraceToStore>, Vec<String>) {
    let mut traces: Vec<TraceToStore> = Vec::new();
    let mut index: HashMap<[u8; 16], usize> = HashMap::new();
    let mut refused = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.map(|resource| attribute_map(&resource.attributes)).unwrap_or_default();
        let service = Service {
            name: resource
                .get("service.name")
                .and_then(Value::as_str)
                .filter(|name| !name.trim().is_empty())
                .unwrap_or("unknown_service")
                .to_string(),
            version: resource.get("service.version").and_then(Value::as_str).map(str::to_string),
            resource: Value::Object(resource),
        };
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans.scope.as_ref().map(|scope| (scope.name.as_str(), scope.version.as_str()));
            for span in &scope_spans.spans {
                match map_span(span, scope) {
                    Ok(mapped) => {
                        let texts = PayloadTexts {
                            payload: crate::db::spans::json_text(&mapped.payload),
                            result_payload: Some(crate::db::spans::json_text(&mapped.result_payload)),
                        };
                        let at = *index.entry(mapped.trace_id).or_insert_with(|| {
                            traces.push(TraceToStore {
                                trace_id: mapped.trace_id,
                                service: service.clone(),
                                spans: Vec::new(),
                            });
                            traces.len() - 1
                        });
                        if let Some(trace) = traces.get_mut(at) {
                            trace.spans.push(SpanToStore { span: mapped, texts });
                        }
                    }
                    Err(why) => refused.push(why.0),
                }
            }
        }
    }
    (traces, refused)
}

/// The partial-success message: how many were refused and the first few reasons.
fn summary_of(refused: &[String]) -> String {
    let shown: Vec<&str> = refused.iter().take(3).map(String::as_str).collect();
    let more = refused.len().saturating_sub(shown.len());
    let mut message = format!("{} span(s) refused: {}", refused.len(), shown.join("; "));
    if more > 0 {
        message.push_str(&format!("; and {more} more"));
    }
    message
}

fn encode_answer(encoding: Encoding, answer: &ExportTraceServiceResponse) -> Response {
    match encoding {
        Encoding::Protobuf => ([(header::CONTENT_TYPE, PROTOBUF)], answer.encode_to_vec()).into_response(),
        Encoding::Json => match serde_json::to_vec(answer) {
            Ok(body) => ([(header::CONTENT_TYPE, JSON)], body).into_response(),
            Err(error) => ApiError::internal(format!("OTLP answer: {error}")).into_response(),
        },
    }
}

/// `google.rpc.Status` (its `details` left empty), the error body OTLP/HTTP clients decode.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Middleware around the API's: an error answer to a protobuf request on [`TRACES_PATH`]
/// (including the pipeline's own 401, 413, 408 and 503) goes out as a protobuf
/// [`RpcStatus`] with the same HTTP status and headers; everything else passes unchanged.
pub async fn protobuf_errors(request: Request, next: Next) -> Response {
    let protobuf = request.uri().path() == TRACES_PATH && Encoding::of(request.headers()) == Some(Encoding::Protobuf);
    let response = next.run(request).await;
    if !protobuf || !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&text)
        .ok()
        .and_then(|error| error.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&text).into_owned());
    let status = RpcStatus { code: rpc_code(parts.status.as_u16()), message };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(status.encode_to_vec()))
}

/// The `google.rpc.Code` closest to an HTTP status.
fn rpc_code(status: u16) -> i32 {
    match status {
        400 | 413 | 415 | 422 => 3, // INVALID_ARGUMENT
        401 => 16,                  // UNAUTHENTICATED
        403 => 7,                   // PERMISSION_DENIED
        404 => 5,                   // NOT_FOUND
        408 | 504 => 4,             // DEADLINE_EXCEEDED
        429 => 8,                   // RESOURCE_EXHAUSTED
        502 | 503 => 14,            // UNAVAILABLE
        _ => 13,                    // INTERNAL
    }
}
