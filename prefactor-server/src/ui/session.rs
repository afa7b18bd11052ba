//! Browser sessions of the trace UI. Logging in with one of the server's tokens creates a
//! session: an unguessable id in an `HttpOnly; SameSite=Strict` cookie (scripts cannot read
//! it, other sites cannot send it) and a CSRF token the page sends back in `X-CSRF-Token` on
//! every state change. Sessions live in memory (a restart logs everyone out), at most
//! [`MAX_SESSIONS`] at a time, each for [`SESSION_LIFETIME`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "pf_session";
/// Header carrying the CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session stays valid after login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Most sessions kept at once; a new login beyond that ends the oldest.
pub const MAX_SESSIONS: usize = 256;

/// One logged-in browser.
#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    created: Instant,
}

/// The live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

/// What a login hands the browser.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The `Set-Cookie` value.
    pub cookie: HeaderValue,
    /// The CSRF token the page must echo.
    pub csrf: String,
}

impl Sessions {
    /// Starts a session (ending the oldest when [`MAX_SESSIONS`] are live).
    pub fn create(&self) -> Result<NewSession, getrandom::Error> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut live = self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        live.retain(|_, session| session.created.elapsed() < SESSION_LIFETIME);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, s)| s.created).map(|(id, _)| id.clone())
        {
            live.remove(&oldest);
        }
        live.insert(id.clone(), Session { csrf: csrf.clone(), created: Instant::now() });
        let cookie =
            format!("{COOKIE_NAME}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}", SESSION_LIFETIME.as_secs());
        let cookie = HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""));
        Ok(NewSession { cookie, csrf })
    }

    /// The CSRF token of the request's session, when its cookie names a live one.
    pub fn csrf_for(&self, headers: &HeaderMap) -> Option<String> {
        let id = session_cookie(headers)?;
        let live = self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        live.get(id).filter(|s| s.created.elapsed() < SESSION_LIFETIME).map(|s| s.csrf.clone())
    }

    /// True when the request has a live session and its `X-CSRF-Token` matches it.
    pub fn check_csrf(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = self.csrf_for(headers) else {
            return false;
        };
        let presented = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
        bool::from(expected.as_bytes().ct_eq(presented))
    }

    /// Ends the request's session.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(id);
        }
    }
}

/// True when the request's `Content-Type` is JSON.
pub fn content_is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
}

/// The `Set-Cookie` value that clears the session cookie.
pub fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static("pf_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

/// 32 random bytes from the operating system, as hex.
fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(cookie: &HeaderValue, csrf: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let pair = cookie.to_str().unwrap().split(';').next().unwrap().to_string();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; {pair}")).unwrap());
        if let Some(csrf) = csrf {
            headers.insert(CSRF_HEADER, HeaderValue::from_str(csrf).unwrap());
        }
        headers
    }

    #[test]
    fn a_session_needs_its_cookie_and_its_csrf_token() {
        let sessions = Sessions::default();
        let session = sessions.create().unwrap();
        assert!(session.cookie.to_str().unwrap().contains("HttpOnly; SameSite=Strict"));
        assert_eq!(sessions.csrf_for(&with_cookie(&session.cookie, None)), Some(session.csrf.clone()));
        assert!(sessions.check_csrf(&with_cookie(&session.cookie, Some(&session.csrf))));
        assert!(!sessions.check_csrf(&with_cookie(&session.cookie, Some("guess"))));
        assert!(!sessions.check_csrf(&with_cookie(&session.cookie, None)));
        assert!(sessions.csrf_for(&HeaderMap::new()).is_none());
        sessions.end(&with_cookie(&session.cookie, None));
        assert!(sessions.csrf_for(&with_cookie(&session.cookie, None)).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let sessions = Sessions::default();
        let first = sessions.create().unwrap();
        for _ in 0..MAX_SESSIONS {
            sessions.create().unwrap();
        }
        assert!(sessions.csrf_for(&with_cookie(&first.cookie, None)).is_none(), "the oldest session ended");
        assert_eq!(sessions.live.lock().unwrap().len(), MAX_SESSIONS);
    }
}
