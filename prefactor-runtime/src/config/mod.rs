//! `Config` and its builder: API endpoint, credentials, HTTP, queue and termination settings.

pub(crate) mod delivery;
mod runtime_environment;
pub(crate) mod sampling;

pub use runtime_environment::RUNTIME;
#[cfg(feature = "otel")]
pub(crate) mod otel;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::delivery::Delivery;
use crate::config::sampling::{HoldBudget, SampleOverflow, Sampling};
use crate::record::scrub::Scrubber;
use crate::record::truncate::MIN_LIMIT;
use crate::report::error::Error;
use crate::schema::registry::SchemaRegistry;

/// The most items a bulk request may carry (the local server's limit, see
/// `prefactor-server/README.md`).
pub const MAX_BULK_ITEMS: usize = 1000;

/// The longest accepted linger: a span create never waits longer than this for its finish.
pub const MAX_LINGER: Duration = Duration::from_secs(1);

/// The largest [`ConfigBuilder::max_payload_bytes`]: a span's payload and result at this size
/// still fit in one request under the local server's 2 MiB body limit.
pub const MAX_PAYLOAD_BYTES: usize = 960 * 1024;

/// The smallest [`ConfigBuilder::max_payload_bytes`].
pub const MIN_PAYLOAD_BYTES: usize = MIN_LIMIT;

/// The `X-Prefactor-SDK` entry of this crate.
pub const SDK_HEADER_ENTRY: &str = concat!("prefactor-rs@", env!("CARGO_PKG_VERSION"));

/// Client settings. Build one with [`Config::builder`] or [`Config::from_env`].
///
/// `Debug` never shows the token.
///
/// ```
/// use std::time::Duration;
/// use prefactor_runtime::Config;
///
/// let config = Config::builder()
///     .api_url("http://127.0.0.1:8080")
///     .api_token("secret-token")
///     .termination_poll_interval(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert_eq!(config.termination_poll_interval(), Duration::from_secs(10));
/// assert!(!format!("{config:?}").contains("secret-token"));
/// ```
#[derive(Clone)]
pub struct Config {
    api_url: String,
    api_token: String,
    agent_id: Option<String>,
    environment_id: Option<String>,
    request_timeout: Duration,
    connect_timeout: Duration,
    initial_retry_delay: Duration,
    max_retry_delay: Duration,
    retry_multiplier: f64,
    queue_capacity: usize,
    concurrency: usize,
    termination_poll_interval: Duration,
    close_timeout: Duration,
    delivery: Delivery,
    bulk_max_items: usize,
    linger: Duration,
    schema_registry: Option<SchemaRegistry>,
    sdk_header_entries: Vec<String>,
    agent_sdk_entries: Vec<String>,
    spool_dir: Option<PathBuf>,
    spool_max_bytes: u64,
    scrub_secrets: bool,
    scrub_patterns: Vec<String>,
    /// Compiled from `scrub_secrets` and `scrub_patterns` by `build()`.
    scrubber: Option<Arc<Scrubber>>,
    max_payload_bytes: usize,
    sampling: Sampling,
    #[cfg(feature = "otel")]
    otel: Option<otel::OtelExport>,
}

impl Config {
    /// A builder with the defaults: 30 s request timeout, 10 s connect timeout, retries of
    /// transient failures without a count, with delays from 1 s doubling up to 30 s (jittered),
    /// a queue of 65 536 operations, 32 concurrent requests,
    /// a 30 s termination poll, a 30 s close deadline, and bulk delivery of up to 500 operations
    /// per request with a 2 ms linger.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// A builder filled from the environment (see [`ConfigBuilder::from_env_with`] for the
    /// variables). Unset variables keep their defaults; `build()` then checks the result.
    ///
    /// ```
    /// let builder = prefactor_runtime::Config::from_env().unwrap();
    /// let _config = builder.api_url("http://127.0.0.1:1").api_token("t").build().unwrap();
    /// ```
    pub fn from_env() -> Result<ConfigBuilder, Error> {
        ConfigBuilder::default().from_env_with(|key| std::env::var(key).ok())
    }

    /// The API base URL (without `/api/v1`, without trailing slash).
    pub fn api_url(&self) -> &str {
        &self.api_url
    }
    pub(crate) fn api_token(&self) -> &str {
        &self.api_token
    }
    /// The default agent id for new instances.
    pub fn agent_id(&self) -> Option<&str> {
        self.agent_id.as_deref()
    }
    /// The default environment id for new instances.
    pub fn environment_id(&self) -> Option<&str> {
        self.environment_id.as_deref()
    }
    /// Total time allowed for one HTTP attempt.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
    /// Time allowed to open a connection.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    /// Delay before the first retry.
    pub fn initial_retry_delay(&self) -> Duration {
        self.initial_retry_delay
    }
    /// Upper bound of any retry delay (also caps `Retry-After`). With no retry count, this is
    /// the longest an operation waits between two attempts; after an outage, what waited goes
    /// out as soon as the server answers again rather than after this delay.
    pub fn max_retry_delay(&self) -> Duration {
        self.max_retry_delay
    }
    /// Growth factor of the retry delay.
    pub fn retry_multiplier(&self) -> f64 {
        self.retry_multiplier
    }
    /// Maximum number of queued operations; more are dropped and counted.
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }
    /// Maximum number of requests in flight.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }
    /// How often live instances are polled for termination.
    pub fn termination_poll_interval(&self) -> Duration {
        self.termination_poll_interval
    }
    /// Deadline used by `close()`.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }
    /// How operations are sent: in bulk requests (default) or one request each.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }
    /// Most operations in one bulk request.
    pub fn bulk_max_items(&self) -> usize {
        self.bulk_max_items
    }
    /// How long a span create waits for its span's finish, so that both leave as one
    /// create-as-terminal request; a span still open after this is sent as `active`.
    pub fn linger(&self) -> Duration {
        self.linger
    }
    /// The directory of the disk spool, if on (see [`ConfigBuilder::spool_dir`]).
    pub fn spool_dir(&self) -> Option<&Path> {
        self.spool_dir.as_deref()
    }
    /// Most bytes the spool may hold.
    pub fn spool_max_bytes(&self) -> u64 {
        self.spool_max_bytes
    }
    /// Whether secret-looking values are scrubbed from payloads (see
    /// [`ConfigBuilder::scrub_secrets`]).
    pub fn scrub_secrets(&self) -> bool {
        self.scrub_secrets
    }
    /// The custom scrubbing patterns (see [`ConfigBuilder::scrub_pattern`]).
    pub fn scrub_patterns(&self) -> &[String] {
        &self.scrub_patterns
    }
    pub(crate) fn scrubber(&self) -> Option<&Scrubber> {
        self.scrubber.as_deref()
    }
    /// The most bytes of JSON a span payload or result keeps (see
    /// [`ConfigBuilder::max_payload_bytes`]).
    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }
    /// The share of agent runs sent, for agents without their own rate (see
    /// [`ConfigBuilder::sample_rate`]).
    pub fn sample_rate(&self) -> f64 {
        self.sampling.rate
    }
    /// The share of runs sent for the agent named `agent` (its name, or its agent id): its own
    /// rate if set with [`ConfigBuilder::sample_rate_for`], else [`sample_rate`](Config::sample_rate).
    pub fn sample_rate_of(&self, agent: &str) -> f64 {
        self.sampling.rate_of(Some(agent), None)
    }
    /// Whether unsampled runs that fail are sent anyway (see [`ConfigBuilder::keep_failed_runs`]).
    pub fn keep_failed_runs(&self) -> bool {
        self.sampling.keep_failed
    }
    /// The duration over which unsampled runs are sent anyway (see [`ConfigBuilder::keep_slow_runs`]).
    pub fn keep_slow_runs(&self) -> Option<Duration> {
        self.sampling.keep_slower_than
    }
    /// The most the worker holds of runs waiting for their end (see [`HoldBudget`]).
    pub fn sample_hold_budget(&self) -> HoldBudget {
        self.sampling.budget
    }
    /// What happens to a held run over its budget (see [`SampleOverflow`]).
    pub fn sample_overflow(&self) -> SampleOverflow {
        self.sampling.overflow
    }
    pub(crate) fn sampling(&self) -> &Sampling {
        &self.sampling
    }
    /// The explicit schema registry, if any.
    pub fn schema_registry(&self) -> Option<&SchemaRegistry> {
        self.schema_registry.as_ref()
    }
    /// The OpenTelemetry export, when configured (feature `otel`).
    #[cfg(feature = "otel")]
    pub fn otel(&self) -> Option<&otel::OtelExport> {
        self.otel.as_ref()
    }

    /// Whether nothing goes to the Prefactor API (an OTel-only export).
    pub(crate) fn otel_only(&self) -> bool {
        #[cfg(feature = "otel")]
        return self.otel.as_ref().is_some_and(otel::OtelExport::is_only);
        #[cfg(not(feature = "otel"))]
        false
    }
    /// The full `X-Prefactor-SDK` header: extra entries first, this crate last.
    pub fn sdk_header(&self) -> String {
        self.sdk_entries().join(" ")
    }

    /// The `X-Prefactor-SDK` entries, each once: extra entries first, this crate last.
    fn sdk_entries(&self) -> Vec<&str> {
        let mut entries: Vec<&str> = Vec::new();
        for entry in self.sdk_header_entries.iter().map(String::as_str).chain([SDK_HEADER_ENTRY]) {
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        entries
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Config");
        debug
            .field("api_url", &self.api_url)
            .field("api_token", &"<redacted>")
            .field("agent_id", &self.agent_id)
            .field("environment_id", &self.environment_id)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("initial_retry_delay", &self.initial_retry_delay)
            .field("max_retry_delay", &self.max_retry_delay)
            .field("retry_multiplier", &self.retry_multiplier)
            .field("queue_capacity", &self.queue_capacity)
            .field("concurrency", &self.concurrency)
            .field("termination_poll_interval", &self.termination_poll_interval)
            .field("close_timeout", &self.close_timeout)
            .field("delivery", &self.delivery)
            .field("bulk_max_items", &self.bulk_max_items)
            .field("linger", &self.linger)
            .field("spool_dir", &self.spool_dir)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .field("scrub_secrets", &self.scrub_secrets)
            .field("scrub_patterns", &self.scrub_patterns.len())
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("sampling", &self.sampling)
            .field("schema_registry", &self.schema_registry.as_ref().map(|r| r.len()))
            .field("sdk_header", &self.sdk_header())
            .field("agent_sdk_entries", &self.agent_sdk_entries);
        #[cfg(feature = "otel")]
        debug.field("otel", &self.otel);
        debug.finish()
    }
}

/// Builds a [`Config`]; `build()` validates every field and names the one at fault.
///
/// ```
/// use prefactor_runtime::{Config, Error};
///
/// let err = Config::builder().api_url("http://x").api_token("").build().unwrap_err();
/// assert!(matches!(err, Error::InvalidConfig { field: "api_token", .. }));
/// ```
#[derive(Clone)]
pub struct ConfigBuilder {
    config: Config,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        ConfigBuilder {
            config: Config {
                api_url: String::new(),
                api_token: String::new(),
                agent_id: None,
                environment_id: None,
                request_timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(10),
                initial_retry_delay: Duration::from_secs(1),
                max_retry_delay: Duration::from_secs(30),
                retry_multiplier: 2.0,
                queue_capacity: 65_536,
                concurrency: 32,
                termination_poll_interval: Duration::from_secs(30),
                close_timeout: Duration::from_secs(30),
                delivery: Delivery::Bulk,
                bulk_max_items: 500,
                linger: Duration::from_millis(2),
                schema_registry: None,
                sdk_header_entries: Vec::new(),
                agent_sdk_entries: Vec::new(),
                spool_dir: None,
                spool_max_bytes: 64 << 20,
                scrub_secrets: true,
                scrub_patterns: Vec::new(),
                scrubber: None,
                max_payload_bytes: 256 * 1024,
                sampling: Sampling::default(),
                #[cfg(feature = "otel")]
                otel: None,
            },
        }
    }
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConfigBuilder").field(&self.config).finish()
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    };
}

impl ConfigBuilder {
    /// The API base URL, e.g. `https://app.prefactorai.com` (paths `/api/v1/...` are appended).
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.config.api_url = url.into();
        self
    }
    /// The bearer token.
    pub fn api_token(mut self, token: impl Into<String>) -> Self {
        self.config.api_token = token.into();
        self
    }
    /// The default agent id (needed with account-scoped tokens). When it is a PFID, its
    /// partition is used for all ids this client generates.
    pub fn agent_id(mut self, id: impl Into<String>) -> Self {
        self.config.agent_id = Some(id.into());
        self
    }
    /// The default environment id.
    pub fn environment_id(mut self, id: impl Into<String>) -> Self {
        self.config.environment_id = Some(id.into());
        self
    }
    setter!(
        /// Total time allowed for one HTTP attempt (> 0).
        request_timeout: Duration
    );
    setter!(
        /// Time allowed to connect (> 0).
        connect_timeout: Duration
    );
    setter!(
        /// Delay before the first retry (> 0, ≤ `max_retry_delay`).
        initial_retry_delay: Duration
    );
    setter!(
        /// Upper bound of a retry delay, `Retry-After` included (> 0; default 30 s, the
        /// OpenTelemetry exporters' cap).
        max_retry_delay: Duration
    );
    setter!(
        /// Growth factor of the retry delay (≥ 1).
        retry_multiplier: f64
    );
    setter!(
        /// Maximum queued operations (≥ 1). When full, new operations are dropped and counted.
        queue_capacity: usize
    );
    setter!(
        /// Maximum requests in flight (1–256).
        concurrency: usize
    );
    setter!(
        /// Interval of the termination poll of live instances (> 0; default 30 s).
        termination_poll_interval: Duration
    );
    setter!(
        /// Deadline of `close()` (> 0; default 30 s).
        close_timeout: Duration
    );
    setter!(
        /// Bulk requests (default) or one request per operation.
        delivery: Delivery
    );
    setter!(
        /// Most operations per bulk request (1–[`MAX_BULK_ITEMS`]; default 500).
        bulk_max_items: usize
    );
    setter!(
        /// How long a span create may wait for its finish to leave with it as one
        /// create-as-terminal request (0–[`MAX_LINGER`]; default 2 ms; 0 sends creates at once).
        linger: Duration
    );
    /// Turns the disk spool on (off by default): operations that cannot reach the API during
    /// an outage (a request failing again and again) are written to this directory instead of
    /// waiting in memory, and so are those still unsent when the client closes; they are sent
    /// again, in order and with their idempotency keys, by this client once the API answers or
    /// by the next client started with the same directory. An agent killed during an outage
    /// loses nothing it had queued once spooled. One process at a time per directory (a lock
    /// file; a second client runs without a spool and logs why).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("prefactor-spool-doc");
    /// let config = prefactor_runtime::Config::builder()
    ///     .api_url("http://127.0.0.1:9")
    ///     .api_token("t")
    ///     .spool_dir(&dir)
    ///     .spool_max_bytes(16 << 20)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.spool_dir(), Some(dir.as_path()));
    /// ```
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.spool_dir = Some(dir.into());
        self
    }
    setter!(
        /// Most bytes the spool may hold (≥ 4096; default 64 MiB); operations beyond are
        /// dropped and counted.
        spool_max_bytes: u64
    );
    setter!(
        /// Scrubbing of secret-looking values (on by default): before a payload or result is
        /// spooled or sent, the client's worker thread (never the agent's) replaces by
        /// `"[REDACTED]"` API keys (`sk-…`, `sk-ant-…`, AWS, GitHub, Google, Slack, Stripe,
        /// Hugging Face, Prefactor), JSON Web Tokens, `Bearer`/`Basic` credentials, passwords in
        /// URLs, PEM private keys, and any value under a password-like key (`password`,
        /// `api_key`, `client_secret`, `token`, `authorization`, `cookie`, …; not `max_tokens`
        /// or other token counts). Counted in [`Stats::scrubbed`](crate::Stats::scrubbed).
        /// `false` turns the built-in rules off; patterns added with
        /// [`scrub_pattern`](ConfigBuilder::scrub_pattern) still apply.
        ///
        /// ```
        /// let config = prefactor_runtime::Config::builder()
        ///     .api_url("http://127.0.0.1:9")
        ///     .api_token("t")
        ///     .scrub_secrets(false)
        ///     .build()
        ///     .unwrap();
        /// assert!(!config.scrub_secrets());
        /// ```
        scrub_secrets: bool
    );
    /// Adds a pattern (regex syntax, matched in every string of a payload) whose matches are
    /// replaced by `"[REDACTED]"`, in addition to the built-in rules; with a group named
    /// `secret`, only that group is replaced. An invalid pattern fails `build()` with
    /// [`Error::InvalidConfig`] naming `scrub_patterns`.
    ///
    /// ```
    /// use prefactor_runtime::{Config, Error};
    ///
    /// let config = Config::builder()
    ///     .api_url("http://127.0.0.1:9")
    ///     .api_token("t")
    ///     .scrub_pattern(r"\bACME-[0-9]{8}\b")
    ///     .scrub_pattern(r"patient=(?P<secret>\d+)")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.scrub_patterns().len(), 2);
    ///
    /// let err = Config::builder().api_url("http://127.0.0.1:9").api_token("t").scrub_pattern("(").build();
    /// assert!(matches!(err, Err(Error::InvalidConfig { field: "scrub_patterns", .. })));
    /// ```
    pub fn scrub_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.config.scrub_patterns.push(pattern.into());
        self
    }
    setter!(
        /// The most bytes of JSON a span payload or result keeps
        /// ([`MIN_PAYLOAD_BYTES`]–[`MAX_PAYLOAD_BYTES`]; default 256 KiB). A larger one is cut
        /// down on the worker thread, keeping its shape and the span: long strings are
        /// shortened, each ending with `…[truncated N bytes]`, then the largest arrays lose
        /// their last elements, and a `"$truncated"` key says what was cut. Counted in
        /// [`Stats::truncated`](crate::Stats::truncated).
        ///
        /// ```
        /// let config = prefactor_runtime::Config::builder()
        ///     .api_url("http://127.0.0.1:9")
        ///     .api_token("t")
        ///     .max_payload_bytes(64 * 1024)
        ///     .build()
        ///     .unwrap();
        /// assert_eq!(config.max_payload_bytes(), 65_536);
        /// ```
        max_payload_bytes: usize
    );
    /// Head sampling: the share of agent runs sent (0–1; default 1, every run). Decided once
    /// per run, when it is created, from a hash of its instance id: a run is sent whole or not
    /// at all, and the same id and rate always decide the same way (choose the id with
    /// [`CreateInstance::instance_id`](crate::CreateInstance::instance_id) to decide by a job
    /// or conversation). Runs of agents with their own rate
    /// ([`sample_rate_for`](ConfigBuilder::sample_rate_for)) follow it instead. An unsampled
    /// run is still sent if a tail rule keeps it ([`keep_failed_runs`](ConfigBuilder::keep_failed_runs),
    /// on by default, and [`keep_slow_runs`](ConfigBuilder::keep_slow_runs)). Sampled-out runs
    /// are counted in [`Stats`](crate::Stats), never as lost.
    ///
    /// ```
    /// let config = prefactor_runtime::Config::builder()
    ///     .api_url("http://127.0.0.1:9")
    ///     .api_token("t")
    ///     .sample_rate(0.01)
    ///     .sample_rate_for("billing", 1.0)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!((config.sample_rate_of("triage"), config.sample_rate_of("billing")), (0.01, 1.0));
    /// ```
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.config.sampling.rate = rate;
        self
    }
    /// The sampling rate of one agent, matched with its name (`#[agent(name)]`,
    /// [`AgentVersion::name`](crate::AgentVersion)) or its agent id; overrides
    /// [`sample_rate`](ConfigBuilder::sample_rate). Setting the same agent again replaces its rate.
    pub fn sample_rate_for(mut self, agent: impl Into<String>, rate: f64) -> Self {
        let agent = agent.into().trim().to_owned();
        self.config.sampling.rates.retain(|(known, _)| *known != agent);
        self.config.sampling.rates.push((agent, rate));
        self
    }
    /// The tail rule for failures (on by default): an unsampled run that ends `failed`, or in
    /// which any span fails, is sent whole anyway. Its operations are held by the client's
    /// worker (never the agent's thread) until the run ends or a span fails, within the
    /// [`sample_hold_budget`](ConfigBuilder::sample_hold_budget). `false` with no
    /// [`keep_slow_runs`](ConfigBuilder::keep_slow_runs) makes unsampled runs cost almost
    /// nothing: none of their operations is even queued.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let config = prefactor_runtime::Config::builder()
    ///     .api_url("http://127.0.0.1:9")
    ///     .api_token("t")
    ///     .sample_rate(0.05)
    ///     .keep_failed_runs(true)
    ///     .keep_slow_runs(Duration::from_secs(30))
    ///     .build()
    ///     .unwrap();
    /// assert!(config.keep_failed_runs());
    /// assert_eq!(config.keep_slow_runs(), Some(Duration::from_secs(30)));
    /// ```
    pub fn keep_failed_runs(mut self, keep: bool) -> Self {
        self.config.sampling.keep_failed = keep;
        self
    }
    /// The tail rule for slow runs (off by default): an unsampled run that lasts longer than
    /// `threshold` (from its start to its finish; sent as soon as one of its operations comes
    /// later than that) is sent whole anyway.
    pub fn keep_slow_runs(mut self, threshold: Duration) -> Self {
        self.config.sampling.keep_slower_than = Some(threshold);
        self
    }
    /// How much the worker may hold of unsampled runs waiting for their end (see [`HoldBudget`]).
    ///
    /// ```
    /// use prefactor_runtime::{Config, HoldBudget, SampleOverflow};
    ///
    /// let config = Config::builder()
    ///     .api_url("http://127.0.0.1:9")
    ///     .api_token("t")
    ///     .sample_rate(0.1)
    ///     .sample_hold_budget(HoldBudget::default().per_run(512, 1 << 20))
    ///     .sample_overflow(SampleOverflow::Drop)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.sample_hold_budget().run_ops(), 512);
    ///
    /// let too_big = Config::builder().api_url("http://127.0.0.1:9").api_token("t")
    ///     .sample_hold_budget(HoldBudget::default().per_run(1 << 20, 1 << 20));
    /// assert!(too_big.build().is_err(), "a run's bound over the total");
    /// ```
    pub fn sample_hold_budget(mut self, budget: HoldBudget) -> Self {
        self.config.sampling.budget = budget;
        self
    }
    /// What happens to a held run over its budget (default: sent, see [`SampleOverflow`]).
    pub fn sample_overflow(mut self, overflow: SampleOverflow) -> Self {
        self.config.sampling.overflow = overflow;
        self
    }
    /// An explicit schema registry, merged with the statically declared span types.
    pub fn schema_registry(mut self, registry: crate::schema::registry::SchemaRegistry) -> Self {
        self.config.schema_registry = Some(registry);
        self
    }
    /// Also (or, with [`OtelExport::only`](otel::OtelExport::only), only) exports every span
    /// and agent run as an OpenTelemetry span (feature `otel`; see [`otel::OtelExport`]).
    ///
    /// ```
    /// use prefactor_runtime::{Config, OtelExport};
    ///
    /// let config = Config::builder()
    ///     .api_url("http://127.0.0.1:8080")
    ///     .api_token("t")
    ///     .otel(OtelExport::otlp_http())
    ///     .build()
    ///     .unwrap();
    /// assert!(!config.otel().unwrap().is_only());
    /// ```
    #[cfg(feature = "otel")]
    pub fn otel(mut self, export: otel::OtelExport) -> Self {
        self.config.otel = Some(export);
        self
    }
    /// Adds an `X-Prefactor-SDK` entry (e.g. an adapter, `my-adapter@1.2.0`) before ours; it
    /// is listed in `runtime_environment.prefactor_sdk` too.
    pub fn sdk_header_entry(mut self, entry: impl Into<String>) -> Self {
        if let Some(entry) = sdk_entry(entry.into()) {
            self.config.sdk_header_entries.push(entry);
        }
        self
    }

    /// Adds an agent framework the runs use (`name@version`, e.g. `rig-core@0.9.0`) to
    /// `runtime_environment.agent_sdk` (see [`Config::runtime_environment`]).
    ///
    /// ```
    /// let config = prefactor_runtime::Config::builder()
    ///     .api_url("http://127.0.0.1:8080")
    ///     .api_token("t")
    ///     .agent_sdk_entry("rig-core@0.9.0")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.runtime_environment().agent_sdk, ["rig-core@0.9.0"]);
    /// ```
    pub fn agent_sdk_entry(mut self, entry: impl Into<String>) -> Self {
        if let Some(entry) = sdk_entry(entry.into())
            && !self.config.agent_sdk_entries.contains(&entry)
        {
            self.config.agent_sdk_entries.push(entry);
        }
        self
    }

    /// Applies settings found through `lookup` (normally the process environment):
    /// `PREFACTOR_API_URL`, `PREFACTOR_API_TOKEN`, `PREFACTOR_AGENT_ID`, `PREFACTOR_ENVIRONMENT_ID`,
    /// `PREFACTOR_REQUEST_TIMEOUT` / `PREFACTOR_CONNECT_TIMEOUT` / `PREFACTOR_INITIAL_RETRY_DELAY` /
    /// `PREFACTOR_MAX_RETRY_DELAY` / `PREFACTOR_TERMINATION_POLL_INTERVAL` / `PREFACTOR_CLOSE_TIMEOUT`
    /// (seconds, decimals allowed), `PREFACTOR_RETRY_MULTIPLIER`,
    /// `PREFACTOR_QUEUE_CAPACITY`, `PREFACTOR_CONCURRENCY`, `PREFACTOR_DELIVERY` (`bulk` or
    /// `per_request`), `PREFACTOR_BULK_MAX_ITEMS`, `PREFACTOR_LINGER` (seconds),
    /// `PREFACTOR_SPOOL_DIR`, `PREFACTOR_SPOOL_MAX_BYTES`, `PREFACTOR_SCRUB_SECRETS` (`true`
    /// or `false`), `PREFACTOR_MAX_PAYLOAD_BYTES`, `PREFACTOR_SAMPLE_RATE`,
    /// `PREFACTOR_SAMPLE_RATES` (`agent=rate` pairs separated by commas),
    /// `PREFACTOR_KEEP_FAILED_RUNS` (`true` or `false`), `PREFACTOR_KEEP_SLOW_RUNS` (seconds),
    /// `PREFACTOR_SAMPLE_OVERFLOW` (`keep` or `drop`). An empty variable counts as unset. A
    /// value that does not parse is an [`Error::InvalidConfig`]. `PREFACTOR_MAX_RETRIES` is
    /// ignored with a warning (once per process): retries have no count any more (see
    /// [`Config::max_retry_delay`]).
    ///
    /// ```
    /// use prefactor_runtime::Config;
    ///
    /// let env = |key: &str| match key {
    ///     "PREFACTOR_API_URL" => Some("http://127.0.0.1:9".to_owned()),
    ///     "PREFACTOR_API_TOKEN" => Some("tok".to_owned()),
    ///     "PREFACTOR_QUEUE_CAPACITY" => Some("1024".to_owned()),
    ///     _ => None,
    /// };
    /// let config = Config::builder().from_env_with(env).unwrap().build().unwrap();
    /// assert_eq!(config.queue_capacity(), 1024);
    /// ```
    pub fn from_env_with(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |key: &str| lookup(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if let Some(v) = get("PREFACTOR_API_URL") {
            self.config.api_url = v;
        }
        if let Some(v) = get("PREFACTOR_API_TOKEN") {
            self.config.api_token = v;
        }
        if let Some(v) = get("PREFACTOR_AGENT_ID") {
            self.config.agent_id = Some(v);
        }
        if let Some(v) = get("PREFACTOR_ENVIRONMENT_ID") {
            self.config.environment_id = Some(v);
        }
        let seconds = |field: &'static str, v: String| -> Result<Duration, Error> {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| invalid(field, format!("`{v}` is not a number of seconds")))
        };
        let durations: [(&str, &'static str, &mut Duration); 7] = [
            ("PREFACTOR_REQUEST_TIMEOUT", "request_timeout", &mut self.config.request_timeout),
            ("PREFACTOR_CONNECT_TIMEOUT", "connect_timeout", &mut self.config.connect_timeout),
            ("PREFACTOR_INITIAL_RETRY_DELAY", "initial_retry_delay", &mut self.config.initial_retry_delay),
            ("PREFACTOR_MAX_RETRY_DELAY", "max_retry_delay", &mut self.config.max_retry_delay),
            (
                "PREFACTOR_TERMINATION_POLL_INTERVAL",
                "termination_poll_interval",
                &mut self.config.termination_poll_interval,
            ),
            ("PREFACTOR_CLOSE_TIMEOUT", "close_timeout", &mut self.config.close_timeout),
            ("PREFACTOR_LINGER", "linger", &mut self.config.linger),
        ];
        for (key, field, slot) in durations {
            if let Some(v) = get(key) {
                *slot = seconds(field, v)?;
            }
        }
        if let Some(v) = get("PREFACTOR_MAX_RETRIES") {
            warn_max_retries_ignored(&v);
        }
        if let Some(v) = get("PREFACTOR_RETRY_MULTIPLIER") {
            self.config.retry_multiplier = parse_number("retry_multiplier", &v)?;
        }
        if let Some(v) = get("PREFACTOR_QUEUE_CAPACITY") {
            self.config.queue_capacity = parse_number("queue_capacity", &v)?;
        }
        if let Some(v) = get("PREFACTOR_CONCURRENCY") {
            self.config.concurrency = parse_number("concurrency", &v)?;
        }
        if let Some(v) = get("PREFACTOR_DELIVERY") {
            self.config.delivery = v.parse().map_err(|reason| invalid("delivery", reason))?;
        }
        if let Some(v) = get("PREFACTOR_BULK_MAX_ITEMS") {
            self.config.bulk_max_items = parse_number("bulk_max_items", &v)?;
        }
        if let Some(v) = get("PREFACTOR_SPOOL_DIR") {
            self.config.spool_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("PREFACTOR_SPOOL_MAX_BYTES") {
            self.config.spool_max_bytes = parse_number("spool_max_bytes", &v)?;
        }
        if let Some(v) = get("PREFACTOR_SCRUB_SECRETS") {
            self.config.scrub_secrets = parse_bool("scrub_secrets", &v)?;
        }
        if let Some(v) = get("PREFACTOR_MAX_PAYLOAD_BYTES") {
            self.config.max_payload_bytes = parse_number("max_payload_bytes", &v)?;
        }
        if let Some(v) = get("PREFACTOR_SAMPLE_RATE") {
            self.config.sampling.rate = parse_number("sample_rate", &v)?;
        }
        if let Some(v) = get("PREFACTOR_SAMPLE_RATES") {
            for (agent, rate) in sampling::parse_rates(&v)? {
                self = self.sample_rate_for(agent, rate);
            }
        }
        if let Some(v) = get("PREFACTOR_KEEP_FAILED_RUNS") {
            self.config.sampling.keep_failed = parse_bool("keep_failed_runs", &v)?;
        }
        if let Some(v) = get("PREFACTOR_KEEP_SLOW_RUNS") {
            self.config.sampling.keep_slower_than = Some(seconds("keep_slow_runs", v)?);
        }
        if let Some(v) = get("PREFACTOR_SAMPLE_OVERFLOW") {
            self.config.sampling.overflow = v.parse().map_err(|reason| invalid("sample_overflow", reason))?;
        }
        Ok(self)
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<Config, Error> {
        let mut c = self.config;
        c.api_url = c.api_url.trim().trim_end_matches('/').to_owned();
        if c.otel_only() {
            // Nothing is sent to the API: an absent URL or token is fine. The transport is
            // still built (and never used), so it gets a well-formed placeholder.
            if c.api_url.is_empty() {
                c.api_url = "http://127.0.0.1".to_owned();
            }
            if c.api_token.trim().is_empty() {
                c.api_token = "unused".to_owned();
            }
        }
        if c.api_url.is_empty() {
            return Err(invalid("api_url", "is required".into()));
        }
        match reqwest::Url::parse(&c.api_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => return Err(invalid("api_url", format!("`{}` is not an http(s) URL", c.api_url))),
        }
        if c.api_token.trim().is_empty() {
            return Err(invalid("api_token", "is required".into()));
        }
        if c.api_token.chars().any(|ch| ch.is_control() || ch == ' ') {
            return Err(invalid("api_token", "contains spaces or control characters".into()));
        }
        positive("request_timeout", c.request_timeout)?;
        positive("connect_timeout", c.connect_timeout)?;
        positive("initial_retry_delay", c.initial_retry_delay)?;
        positive("max_retry_delay", c.max_retry_delay)?;
        positive("termination_poll_interval", c.termination_poll_interval)?;
        positive("close_timeout", c.close_timeout)?;
        if c.initial_retry_delay > c.max_retry_delay {
            return Err(invalid("initial_retry_delay", "must not exceed max_retry_delay".into()));
        }
        if !(c.retry_multiplier.is_finite() && c.retry_multiplier >= 1.0) {
            return Err(invalid("retry_multiplier", format!("must be ≥ 1, got {}", c.retry_multiplier)));
        }
        if c.queue_capacity == 0 || c.queue_capacity > (1 << 28) {
            return Err(invalid("queue_capacity", format!("must be between 1 and 2^28, got {}", c.queue_capacity)));
        }
        if !(1..=256).contains(&c.concurrency) {
            return Err(invalid("concurrency", format!("must be between 1 and 256, got {}", c.concurrency)));
        }
        if !(1..=MAX_BULK_ITEMS).contains(&c.bulk_max_items) {
            return Err(invalid(
                "bulk_max_items",
                format!("must be between 1 and {MAX_BULK_ITEMS}, got {}", c.bulk_max_items),
            ));
        }
        if c.spool_max_bytes < 4096 {
            return Err(invalid("spool_max_bytes", format!("must be at least 4096, got {}", c.spool_max_bytes)));
        }
        if c.linger > MAX_LINGER {
            return Err(invalid("linger", format!("must be at most {MAX_LINGER:?}, got {:?}", c.linger)));
        }
        if !(MIN_PAYLOAD_BYTES..=MAX_PAYLOAD_BYTES).contains(&c.max_payload_bytes) {
            return Err(invalid(
                "max_payload_bytes",
                format!("must be between {MIN_PAYLOAD_BYTES} and {MAX_PAYLOAD_BYTES}, got {}", c.max_payload_bytes),
            ));
        }
        c.sampling.validate()?;
        c.scrubber = Scrubber::new(c.scrub_secrets, &c.scrub_patterns)
            .map_err(|(pattern, reason)| invalid("scrub_patterns", format!("`{pattern}`: {reason}")))?
            .map(Arc::new);
        for (field, value) in [("agent_id", &c.agent_id), ("environment_id", &c.environment_id)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(invalid(field, "must not be empty when set".into()));
            }
        }
        Ok(c)
    }
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidConfig { field, reason }
}

fn positive(field: &'static str, value: Duration) -> Result<(), Error> {
    if value.is_zero() { Err(invalid(field, "must be greater than zero".into())) } else { Ok(()) }
}

fn parse_bool(field: &'static str, value: &str) -> Result<bool, Error> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(field, format!("`{value}` is not true or false"))),
    }
}

fn parse_number<T: std::str::FromStr>(field: &'static str, value: &str) -> Result<T, Error> {
    value.parse().map_err(|_| invalid(field, format!("`{value}` is not a valid number")))
}

/// `PREFACTOR_MAX_RETRIES` is set: it has no effect since retries have no count (0.2), and
/// the setting was removed from `Config`. Said once per process, as a warning, so that a
/// deployment still setting it learns why it changes nothing.
fn warn_max_retries_ignored(value: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            value,
            "prefactor: PREFACTOR_MAX_RETRIES has no effect and can be removed: telemetry is retried without a \
             count until delivered, close()'s deadline, or a full queue (see PREFACTOR_MAX_RETRY_DELAY)"
        );
    });
}

/// An SDK entry as written (`name@version`), trimmed; `None` when blank.
fn sdk_entry(entry: String) -> Option<String> {
    let entry = entry.trim().trim_end_matches('@');
    (!entry.is_empty()).then(|| entry.to_owned())
}
