//! Fault injection, a feature of the server (not a mock): rules make matching requests answer
//! with a chosen status/body, wait before being handled, or lose the connection before or
//! after the request is applied, always or with a probability drawn from a seeded generator,
//! so SDK failure handling can be tested against real HTTP. Managed via
//! [`crate::LocalServer::add_fault`] / [`crate::LocalServer::seed_faults`] or
//! `POST /__admin/faults` / `DELETE /__admin/faults`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// One fault rule.
///
/// ```
/// use prefactor_server::FaultRule;
/// let rule = FaultRule::status("/api/v1/agent_spans/*/finish", 503).times(2);
/// assert!(rule.matches("POST", "/api/v1/agent_spans/abc/finish"));
/// assert!(!rule.matches("POST", "/api/v1/agent_spans"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// HTTP method to match (case-insensitive); `None` matches any.
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix, or a pattern with `*` wildcards matched segment by segment
    /// (`/api/v1/agent_spans/*/finish`); a pattern must match every segment of the path.
    pub path: String,
    /// Answer with this status instead of handling the request (`None` = handle normally).
    #[serde(default)]
    pub status: Option<u16>,
    /// Raw body sent with `status` (default: a JSON error object); may be non-JSON.
    #[serde(default)]
    pub body: Option<String>,
    /// Content type of `body` (default `application/json`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Sets `Retry-After: <seconds>`.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Wait this long before answering (or before handling, when `status` is `None`).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Apply to the next N matching requests only; `None` = until cleared.
    #[serde(default)]
    pub times: Option<u32>,
    /// Lose the connection instead of answering: `before` the request is handled (nothing is
    /// applied) or `after` it was handled (applied, but the client never sees the answer).
    #[serde(default)]
    pub reset: Option<Reset>,
    /// Apply to this share of matching requests (0–1) instead of all of them. One number is
    /// drawn per request: the rules with a probability that match it split `[0, 1)` in the
    /// order added, so rules of 0.05 each fault disjoint 5 % slices of the traffic.
    #[serde(default)]
    pub probability: Option<f64>,
}

/// When a [`FaultRule`] loses the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reset {
    /// Before the request is handled: nothing is applied.
    Before,
    /// After the request was handled and committed: the answer never arrives.
    After,
}

/// What the pipeline does with a request after the fault rules were consulted.
pub enum Fault {
    /// No rule applies: handle it normally.
    Pass,
    /// Answer this instead of handling it.
    Answer(Response),
    /// Handle it, then lose the connection instead of answering ([`reset`]).
    ApplyThenReset,
}

impl FaultRule {
    /// A rule answering `status` for requests whose path matches `path` (any method).
    pub fn status(path: &str, status: u16) -> FaultRule {
        FaultRule { path: path.to_string(), status: Some(status), ..FaultRule::default() }
    }

    /// A rule delaying requests whose path matches `path` by `delay_ms`.
    pub fn delay(path: &str, delay_ms: u64) -> FaultRule {
        FaultRule { path: path.to_string(), delay_ms: Some(delay_ms), ..FaultRule::default() }
    }

    /// Restricts the rule to one method.
    pub fn method(mut self, method: &str) -> FaultRule {
        self.method = Some(method.to_string());
        self
    }

    /// Sends this raw body with this content type.
    pub fn body(mut self, body: &str, content_type: &str) -> FaultRule {
        self.body = Some(body.to_string());
        self.content_type = Some(content_type.to_string());
        self
    }

    /// Applies the rule to the next `n` matching requests only.
    pub fn times(mut self, n: u32) -> FaultRule {
        self.times = Some(n);
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, seconds: u64) -> FaultRule {
        self.retry_after = Some(seconds);
        self
    }

    /// A rule losing the connection of requests whose path matches `path`, `when`.
    ///
    /// ```
    /// use prefactor_server::{FaultRule, faults::Reset};
    /// let rule = FaultRule::reset("/api/v1/bulk", Reset::After).probability(0.05);
    /// assert_eq!(rule.reset, Some(Reset::After));
    /// ```
    pub fn reset(path: &str, when: Reset) -> FaultRule {
        FaultRule { path: path.to_string(), reset: Some(when), ..FaultRule::default() }
    }

    /// Applies the rule to this share (0–1) of the matching requests only.
    pub fn probability(mut self, share: f64) -> FaultRule {
        self.probability = Some(share);
        self
    }

    /// True when the rule applies to this request.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let method_matches = self.method.as_deref().is_none_or(|wanted| wanted.eq_ignore_ascii_case(method));
        method_matches && path_matches(&self.path, path)
    }
}

fn path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains('*') {
        return path.starts_with(pattern);
    }
    let wanted: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let actual: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    wanted.len() == actual.len() && wanted.iter().zip(&actual).all(|(wanted, actual)| segment_matches(wanted, actual))
}

/// Glob match of one segment where `*` matches any run of characters.
fn segment_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The active rules, shared by the server and its [`crate::LocalServer`] handle.
#[derive(Clone)]
pub struct Faults {
    rules: Arc<Mutex<Vec<FaultRule>>>,
    /// Number of rules, read without the lock on every request.
    count: Arc<AtomicUsize>,
    /// Draws the numbers of probability rules (seeded with [`Faults::seed`] for repeatable runs).
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { rules: Arc::default(), count: Arc::default(), rng: Arc::new(Mutex::new(fastrand::Rng::new())) }
    }
}

impl Faults {
    /// Adds a rule; rules are tried in the order added.
    pub fn add(&self, rule: FaultRule) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push(rule);
            self.count.store(rules.len(), Ordering::Release);
        }
    }

    /// Restarts the generator of probability rules from `seed`.
    pub fn seed(&self, seed: u64) {
        if let Ok(mut rng) = self.rng.lock() {
            *rng = fastrand::Rng::with_seed(seed);
        }
    }

    /// Removes every rule.
    pub fn clear(&self) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.clear();
            self.count.store(0, Ordering::Release);
        }
    }

    /// The first rule matching the request, consuming one of its `times`.
    fn take_match(&self, method: &str, path: &str) -> Option<FaultRule> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut rules = self.rules.lock().ok()?;
        let mut draw = None;
        let mut share = 0.0;
        let index = rules.iter().position(|rule| {
            if !rule.matches(method, path) {
                return false;
            }
            let Some(probability) = rule.probability else { return true };
            share += probability.clamp(0.0, 1.0);
            let drawn = *draw.get_or_insert_with(|| self.rng.lock().map_or(1.0, |mut rng| rng.f64()));
            drawn < share
        })?;
        let rule = rules[index].clone();
        if let Some(times) = rules[index].times.as_mut() {
            *times = times.saturating_sub(1);
            if *times == 0 {
                rules.remove(index);
                self.count.store(rules.len(), Ordering::Release);
            }
        }
        Some(rule)
    }
}

/// Applies the first matching rule: waits its delay, then says whether to answer with a fault,
/// handle the request, or handle it and then lose the connection. Admin routes are never
/// faulted.
pub async fn apply(faults: &Faults, method: &str, path: &str) -> Fault {
    if path.starts_with("/__admin") {
        return Fault::Pass;
    }
    let Some(rule) = faults.take_match(method, path) else { return Fault::Pass };
    tracing::debug!(path, status = ?rule.status, delay_ms = ?rule.delay_ms, reset = ?rule.reset, "injecting fault");
    if let Some(delay) = rule.delay_ms {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match (rule.reset, rule.status) {
        (Some(Reset::Before), _) => Fault::Answer(reset(StatusCode::OK.into_response())),
        (Some(Reset::After), _) => Fault::ApplyThenReset,
        (None, Some(status)) => Fault::Answer(fault_response(&rule, status)),
        (None, None) => Fault::Pass,
    }
}

/// `response` with its body replaced by one that fails at once: the connection is closed
/// before a complete answer is written, so the client sees a transport error, never a status
/// it could trust.
pub fn reset(response: Response) -> Response {
    let (parts, _) = response.into_parts();
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset"))
    });
    Response::from_parts(parts, Body::from_stream(failing))
}

fn fault_response(rule: &FaultRule, status: u16) -> Response {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = rule.body.clone().unwrap_or_else(|| {
        ApiError::new(status, default_code(status), format!("injected fault ({status})")).to_json().to_string()
    });
    let mut response = (status_code, body).into_response();
    let content_type = rule.content_type.as_deref().unwrap_or("application/json");
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    if let Some(seconds) = rule.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn default_code(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        422 => "validation_error",
        429 => "rate_limited",
        500..=599 => "server_error",
        _ => "injected_fault",
    }
}
