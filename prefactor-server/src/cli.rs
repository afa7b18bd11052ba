//! Command line of the `prefactor-server` binary.

use std::net::SocketAddr;

use clap::Parser;

use std::time::Duration;

use crate::config::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_BODIES_IN_FLIGHT_BYTES, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_RECORD_MAX_BYTES, DEFAULT_SCHEMA_CACHE_ENTRIES, DbLocation, ServerConfig,
};
use crate::template::{
    DEFAULT_MAX_ITERATIONS, DEFAULT_MAX_NESTING, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_RENDER_TIME,
    DEFAULT_MAX_TEMPLATE_BYTES, DEFAULT_MAX_WORK_BYTES, TemplateLimits,
};

/// Bounded request log of the binary (visible at `GET /__admin/requests`).
const CLI_RECORD_CAPACITY: usize = 10_000;

/// A local Prefactor-compatible API server on SQLite.
#[derive(Debug, Parser)]
#[command(name = "prefactor-server", version, about)]
pub struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// SQLite database file, or `:memory:`.
    #[arg(long, default_value = "prefactor.db")]
    pub db: String,
    /// Accepted bearer token (repeatable). Without any, one is generated and printed.
    #[arg(long = "token", env = "PREFACTOR_SERVER_TOKEN", value_delimiter = ',')]
    pub tokens: Vec<String>,
    /// Reject register with a missing or unknown agent_id instead of creating the agent.
    #[arg(long)]
    pub strict_agents: bool,
    /// Do not validate span and quality payloads against their JSON Schemas.
    #[arg(long)]
    pub no_validation: bool,
    /// Largest accepted request body in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Largest summary template in bytes (larger: register answers 422).
    #[arg(long, default_value_t = DEFAULT_MAX_TEMPLATE_BYTES)]
    pub max_template_bytes: usize,
    /// Deepest block nesting of a summary template (deeper: register answers 422).
    #[arg(long, default_value_t = DEFAULT_MAX_NESTING)]
    pub max_template_nesting: usize,
    /// Loop iterations of one summary render (over: the summary is null).
    #[arg(long, default_value_t = DEFAULT_MAX_ITERATIONS)]
    pub max_template_iterations: u64,
    /// Largest rendered summary in bytes (over: the summary is null).
    #[arg(long, default_value_t = DEFAULT_MAX_OUTPUT_BYTES)]
    pub max_summary_bytes: usize,
    /// Intermediate bytes (filter results, captures) of one summary render (over: null).
    #[arg(long, default_value_t = DEFAULT_MAX_WORK_BYTES)]
    pub max_template_work_bytes: usize,
    /// Wall-clock milliseconds of one summary render (over: the summary is null).
    #[arg(long, default_value_t = DEFAULT_MAX_RENDER_TIME.as_millis() as u64)]
    pub max_render_ms: u64,
    /// Bytes of request bodies read or handled at once, all connections together (a request
    /// that cannot get its share within a second: 503 with Retry-After).
    #[arg(long, default_value_t = DEFAULT_MAX_BODIES_IN_FLIGHT_BYTES)]
    pub max_bodies_in_flight_bytes: usize,
    /// Seconds to receive a whole request body (slower: 408).
    #[arg(long, default_value_t = DEFAULT_BODY_READ_TIMEOUT.as_secs())]
    pub body_read_timeout_secs: u64,
    /// Open client connections at most (more wait in the listen backlog until one closes).
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds to receive a request's headers, also the longest idle keep-alive (slower or
    /// idler connections are closed).
    #[arg(long, default_value_t = DEFAULT_HEADER_READ_TIMEOUT.as_secs())]
    pub header_read_timeout_secs: u64,
    /// Requests kept in the request log (`GET /__admin/requests`; 0 disables it).
    #[arg(long, default_value_t = CLI_RECORD_CAPACITY)]
    pub request_log_entries: usize,
    /// Bytes (bodies plus headers) the request log holds at most.
    #[arg(long, default_value_t = DEFAULT_RECORD_MAX_BYTES)]
    pub request_log_bytes: usize,
    /// Compiled schema versions kept in memory (least recently used dropped).
    #[arg(long, default_value_t = DEFAULT_SCHEMA_CACHE_ENTRIES)]
    pub schema_cache_entries: usize,
    /// Delete finished runs older than this (e.g. `30d`, `12h`) with their spans, in the
    /// background; off by default.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub retain: Option<Duration>,
    /// How long idempotency records are kept (a retried request older than this runs again).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "7days")]
    pub idempotency_window: Duration,
}

impl Cli {
    /// The server configuration these flags describe.
    ///
    /// ```
    /// use clap::Parser;
    /// use prefactor_server::cli::Cli;
    /// let cli = Cli::parse_from(["prefactor-server", "--db", ":memory:", "--token", "a", "--token", "b"]);
    /// let config = cli.into_config();
    /// assert_eq!(config.tokens, vec!["a", "b"]);
    /// assert_eq!(config.db, prefactor_server::DbLocation::Memory);
    /// ```
    pub fn into_config(self) -> ServerConfig {
        ServerConfig {
            listen: self.listen,
            db: DbLocation::from_cli(&self.db),
            tokens: self.tokens.into_iter().filter(|t| !t.is_empty()).collect(),
            strict_agents: self.strict_agents,
            validate_schemas: !self.no_validation,
            max_body_bytes: self.max_body_bytes,
            record_capacity: self.request_log_entries,
            record_max_bytes: self.request_log_bytes,
            max_bodies_in_flight_bytes: self.max_bodies_in_flight_bytes,
            body_read_timeout: Duration::from_secs(self.body_read_timeout_secs),
            max_connections: self.max_connections.max(1),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            worker_threads: self.workers.max(1),
            template_limits: TemplateLimits {
                max_template_bytes: self.max_template_bytes,
                max_nesting: self.max_template_nesting,
                max_iterations: self.max_template_iterations,
                max_output_bytes: self.max_summary_bytes,
                max_work_bytes: self.max_template_work_bytes,
                max_render_time: Duration::from_millis(self.max_render_ms),
            },
            schema_cache_entries: self.schema_cache_entries,
            idempotency_window: self.idempotency_window,
            retain: self.retain,
        }
    }
}
