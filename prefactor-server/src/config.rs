//! Server configuration: where to listen, where to store data, which tokens to accept.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::template::TemplateLimits;
pub use crate::validation::DEFAULT_SCHEMA_CACHE_ENTRIES;

/// Default request body limit (2 MiB): large enough for any span payload the SDKs produce,
/// small enough that a runaway client cannot exhaust memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Default byte budget of the in-memory request log (bodies plus headers): 64 MiB.
pub const DEFAULT_RECORD_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Default budget of request bodies in flight at once, all connections together: 64 MiB.
pub const DEFAULT_MAX_BODIES_IN_FLIGHT_BYTES: usize = 64 * 1024 * 1024;

/// Default time to receive a whole request body once its headers arrived.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Default limit of open client connections: beyond it, new connections wait in the listen
/// backlog until one closes.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Default time to receive a request's headers, counted from when the connection starts
/// waiting for them (so it also closes a keep-alive connection idle that long).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Default capacity of the in-memory request log used by tests (`LocalServer::requests`).
pub const DEFAULT_RECORD_CAPACITY: usize = 100_000;

/// Where the SQLite database lives.
///
/// ```
/// use prefactor_server::DbLocation;
/// let location = DbLocation::Path("prefactor.db".into());
/// assert!(matches!(location, DbLocation::Path(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DbLocation {
    /// A fresh SQLite file in a temporary directory, deleted on shutdown.
    #[default]
    Temp,
    /// A private in-memory database (lost on shutdown; no WAL, reads share the writer connection).
    Memory,
    /// A SQLite file at this path (created when missing, migrated on start).
    Path(PathBuf),
}

impl DbLocation {
    /// Parses the CLI form: `:memory:` means [`DbLocation::Memory`], anything else is a file path.
    ///
    /// ```
    /// use prefactor_server::DbLocation;
    /// assert_eq!(DbLocation::from_cli(":memory:"), DbLocation::Memory);
    /// assert_eq!(DbLocation::from_cli("x.db"), DbLocation::Path("x.db".into()));
    /// ```
    pub fn from_cli(value: &str) -> DbLocation {
        if value == ":memory:" { DbLocation::Memory } else { DbLocation::Path(PathBuf::from(value)) }
    }
}

/// Everything [`crate::LocalServer::start`] needs. Public fields plus `with_*` builders.
///
/// ```
/// use prefactor_server::{DbLocation, ServerConfig};
/// let config = ServerConfig::default()
///     .with_token("secret")
///     .with_db(DbLocation::Memory)
///     .with_strict_agents(true);
/// assert_eq!(config.tokens, vec!["secret".to_string()]);
/// assert!(config.validate_schemas);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Database location.
    pub db: DbLocation,
    /// Accepted bearer tokens; empty means one random token is generated at start.
    pub tokens: Vec<String>,
    /// When true, register with an unknown or missing `agent_id` is rejected instead of
    /// creating the agent.
    pub strict_agents: bool,
    /// When true, span payloads are validated against the span type's JSON Schemas.
    pub validate_schemas: bool,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// How many requests the in-memory request log keeps (0 disables recording).
    pub record_capacity: usize,
    /// How many bytes (bodies plus headers) the request log holds at most.
    pub record_max_bytes: usize,
    /// Bytes of request bodies read or handled at once, all connections together; a request
    /// that cannot get its share within a second is answered 503.
    pub max_bodies_in_flight_bytes: usize,
    /// Time to receive a whole request body; a slower body is answered 408.
    pub body_read_timeout: Duration,
    /// Open client connections at most; further connections wait in the listen backlog (they
    /// are accepted as others close).
    pub max_connections: usize,
    /// Time to receive a request's headers (slowloris clients); also the longest a keep-alive
    /// connection stays idle. Past it the connection is closed.
    pub header_read_timeout: Duration,
    /// Tokio worker threads of the server runtime.
    pub worker_threads: usize,
    /// Limits of summary templates (size and nesting at register, the budget of a render).
    pub template_limits: TemplateLimits,
    /// How many compiled schema versions are kept in memory (least recently used dropped).
    pub schema_cache_entries: usize,
    /// How long idempotency records are kept (see [`crate::db::maintenance`]).
    pub idempotency_window: Duration,
    /// Finished runs older than this are deleted with their spans, in the background (`None`,
    /// the default: kept forever).
    pub retain: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: DbLocation::Temp,
            tokens: Vec::new(),
            strict_agents: false,
            validate_schemas: true,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            record_capacity: DEFAULT_RECORD_CAPACITY,
            record_max_bytes: DEFAULT_RECORD_MAX_BYTES,
            max_bodies_in_flight_bytes: DEFAULT_MAX_BODIES_IN_FLIGHT_BYTES,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            worker_threads: 2,
            template_limits: TemplateLimits::default(),
            schema_cache_entries: DEFAULT_SCHEMA_CACHE_ENTRIES,
            idempotency_window: crate::db::maintenance::DEFAULT_IDEMPOTENCY_WINDOW,
            retain: None,
        }
    }
}

impl ServerConfig {
    /// Sets the listen address.
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// Sets the database location.
    pub fn with_db(mut self, db: DbLocation) -> Self {
        self.db = db;
        self
    }

    /// Adds one accepted bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.tokens.push(token.into());
        self
    }

    /// Turns strict agent handling on or off.
    pub fn with_strict_agents(mut self, strict: bool) -> Self {
        self.strict_agents = strict;
        self
    }

    /// Turns payload validation on or off.
    pub fn with_validate_schemas(mut self, validate: bool) -> Self {
        self.validate_schemas = validate;
        self
    }

    /// Sets the request body limit in bytes.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets the request log capacity (0 disables recording).
    pub fn with_record_capacity(mut self, capacity: usize) -> Self {
        self.record_capacity = capacity;
        self
    }

    /// Sets the limits of summary templates.
    pub fn with_template_limits(mut self, limits: TemplateLimits) -> Self {
        self.template_limits = limits;
        self
    }

    /// Sets the limit of open client connections (at least 1).
    pub fn with_max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Sets the time to receive a request's headers (and the keep-alive idle time).
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets the time to receive a whole request body.
    pub fn with_body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// Sets the number of tokio worker threads.
    pub fn with_worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = threads.max(1);
        self
    }

    /// Deletes finished runs older than `retain` with their spans, in the background.
    pub fn with_retain(mut self, retain: Option<Duration>) -> Self {
        self.retain = retain;
        self
    }

    /// Sets how long idempotency records are kept.
    pub fn with_idempotency_window(mut self, window: Duration) -> Self {
        self.idempotency_window = window;
        self
    }
}
