//! What every handler shares.

use std::sync::Arc;

use crate::auth::Tokens;
use crate::db::Db;
use crate::db::meta::LocalAccount;
use crate::faults::Faults;
use crate::inflight::BodyBudget;
use crate::recorder::Recorder;
use crate::validation::SchemaCache;

/// Shared server state. Cloned for every request by the middleware stack, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> AppState {
        AppState { inner: Arc::new(shared) }
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.inner
    }
}

/// What every handler shares.
pub struct Shared {
    /// Storage.
    pub db: Db,
    /// The local account's ids.
    pub account: Arc<LocalAccount>,
    /// Compiled schema versions.
    pub schemas: SchemaCache,
    /// Accepted bearer tokens.
    pub tokens: Arc<Tokens>,
    /// Injected faults.
    pub faults: Faults,
    /// Request log.
    pub recorder: Recorder,
    /// Budget of request bodies in flight.
    pub bodies: BodyBudget,
    /// Behaviour switches.
    pub options: Arc<Options>,
    /// Sort keys of recent pages' last rows (keyset pagination behind offsets).
    pub page_keys: crate::page_keys::PageKeys,
    /// Logged-in browsers of the trace UI.
    pub sessions: crate::ui::session::Sessions,
    /// Set when the server starts shutting down, so long-lived answers (the UI's event
    /// streams) end instead of holding the graceful shutdown for its whole grace period.
    pub stopping: std::sync::atomic::AtomicBool,
}

/// Behaviour switches taken from [`crate::ServerConfig`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Reject unknown / missing agents at register.
    pub strict_agents: bool,
    /// Validate payloads against span type schemas.
    pub validate_schemas: bool,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Time to receive a whole request body.
    pub body_read_timeout: std::time::Duration,
}
