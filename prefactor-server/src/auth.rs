//! Bearer-token authentication on every route.
//!
//! Tokens are compared in constant time (`subtle`) against every configured token without
//! stopping at the first match, so response timing does not reveal how much of a guess was
//! right. Tokens are never logged.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// The accepted tokens.
pub struct Tokens {
    accepted: Vec<String>,
}

impl Tokens {
    /// Accepts these tokens (must not be empty; the server generates one when none is given).
    pub fn new(accepted: Vec<String>) -> Tokens {
        Tokens { accepted }
    }

    /// The first accepted token.
    pub fn first(&self) -> &str {
        self.accepted.first().map(String::as_str).unwrap_or("")
    }

    /// True when `candidate` equals one of the accepted tokens.
    ///
    /// ```
    /// use prefactor_server::auth::Tokens;
    /// let tokens = Tokens::new(vec!["a".into(), "secret".into()]);
    /// assert!(tokens.accepts("secret"));
    /// assert!(!tokens.accepts("secreT"));
    /// ```
    pub fn accepts(&self, candidate: &str) -> bool {
        let mut matched = subtle::Choice::from(0);
        for token in &self.accepted {
            matched |= token.as_bytes().ct_eq(candidate.as_bytes());
        }
        bool::from(matched)
    }
}

/// A random token: 32 lowercase alphanumerics prefixed `pfl_` (prefactor local).
pub fn generate_token() -> String {
    let mut token = String::from("pfl_");
    for _ in 0..32 {
        token.push(fastrand::alphanumeric().to_ascii_lowercase());
    }
    token
}

/// `None` when `headers` carry `Authorization: Bearer <accepted token>`, else the 401 JSON
/// error to answer with.
pub fn rejection(state: &AppState, headers: &HeaderMap, path: &str) -> Option<Response> {
    let presented = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).map(str::trim);
    let error = match presented {
        None => "missing Authorization header (expected 'Bearer <token>')",
        Some(value) => match bearer_token(value) {
            None => "Authorization header must use the Bearer scheme",
            Some(token) if state.tokens.accepts(token) => return None,
            Some(_) => "invalid bearer token",
        },
    };
    tracing::debug!(path, "rejected request: {error}");
    let mut response = ApiError::unauthorized(error).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
