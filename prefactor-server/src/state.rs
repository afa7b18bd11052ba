//! What every handler shares.

use std::sync::Arc;

use crate::auth::Tokens;
use crate::db::Db;
use crate::db::meta::LocalAccount;
use crate::faults::Faults;
use crate::recorder::Recorder;
use crate::validation::SchemaCache;

/// Shared server state (cheap to clone: everything inside is shared).
#[derive(Clone)]
pub struct AppState {
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
    /// Behaviour switches.
    pub options: Arc<Options>,
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
}
