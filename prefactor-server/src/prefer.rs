//! The `Prefer` request header (RFC 7240), as far as the server honours it: `return=minimal`
//! on `POST /api/v1/bulk` drops each successful output down to its status and `control`.
//!
//! Why: the SDKs read only `status`, `control` and the error fields of a bulk output, while
//! the full output echoes every span (payloads, timestamps, rendered summary), which cost the
//! server about a fifth of a span's work to build. Clients that do not send the header get the
//! documented full outputs; servers that do not know it ignore it (RFC 7240 section 2), so a
//! client must still accept full outputs.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

/// The `Preference-Applied` value answered when `return=minimal` was honoured.
pub const MINIMAL_APPLIED: &str = "return=minimal";

/// True when the request's `Prefer` headers ask for `return=minimal`.
///
/// Preferences are comma separated, may carry `;` parameters, and may repeat across header
/// lines; names are case-insensitive, values may be quoted, and only the FIRST `return`
/// preference counts (RFC 7240 section 2).
///
/// ```
/// use axum::http::{HeaderMap, HeaderValue};
/// use prefactor_server::prefer::prefers_minimal_return;
/// let mut headers = HeaderMap::new();
/// assert!(!prefers_minimal_return(&headers));
/// headers.insert("prefer", HeaderValue::from_static("respond-async, Return = \"minimal\""));
/// assert!(prefers_minimal_return(&headers));
/// headers.insert("prefer", HeaderValue::from_static("return=representation, return=minimal"));
/// assert!(!prefers_minimal_return(&headers));
/// ```
pub fn prefers_minimal_return(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(return_preference)
        .is_some_and(|value| value.eq_ignore_ascii_case("minimal"))
}

/// The value of one preference (`name [= value] *(; parameter)`) when its name is `return`.
fn return_preference(preference: &str) -> Option<&str> {
    let head = preference.split(';').next().unwrap_or_default();
    let (name, value) = head.split_once('=').unwrap_or((head, ""));
    name.trim().eq_ignore_ascii_case("return").then(|| value.trim().trim_matches('"'))
}

/// Extracts whether a request prefers `return=minimal`, reading the headers in place (the
/// `HeaderMap` extractor would clone them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturnMinimal(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for ReturnMinimal {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ReturnMinimal(prefers_minimal_return(&parts.headers)))
    }
}
