//! `Capture`: run code under a client that records instead of sending, and read back the runs
//! and spans it would have sent (`prefactor::testing`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::capture::client::Client;
use crate::capture::context::Context;
use crate::capture::instrument::{FutureExt, Instrumented};
use crate::config::{Config, ConfigBuilder};
use crate::delivery::recorder::Recorder;
use crate::report::captured_run::CapturedRun;
use crate::report::error::Error;
use crate::schema::registry::SchemaRegistry;

/// Captures alive in the process: while there are none, the macros never look for one.
static LIVE_CAPTURES: AtomicUsize = AtomicUsize::new(0);

/// A capturing client: the code under test runs with the real client code (the macros, the
/// explicit API, context propagation, the queue), but the operations taken from the queue are
/// recorded instead of sent. No server, no thread, no network; nothing is global, so tests
/// that capture run in parallel.
///
/// Code runs under a capture inside [`run`](Capture::run) (synchronous) or
/// [`run_async`](Capture::run_async): there `#[agent]` functions record into it (rather than
/// into the installed client, if any), and so does everything they call, across tasks and
/// threads as the context is carried (see [`spawn`](crate::spawn)). Explicit-API code uses
/// [`client`](Capture::client) directly. Then [`runs`](Capture::runs) returns the runs.
///
/// ```
/// use prefactor_runtime::testing::Capture;
/// use prefactor_runtime::{AgentStatus, CreateInstance, FinishStatus, Payload};
/// use serde_json::json;
///
/// fn answer(client: &prefactor_runtime::Client) -> Result<(), prefactor_runtime::Error> {
///     let run = client.create_agent_instance(CreateInstance::default())?;
///     run.start();
///     run.span("agent:llm").payload(Payload::from(json!({"model": "m"}))).start().complete();
///     run.finish(FinishStatus::Complete);
///     Ok(())
/// }
///
/// let capture = Capture::new()?;
/// answer(capture.client())?;
/// let runs = capture.runs();
/// assert_eq!(runs.len(), 1);
/// let llm = runs[0].span("agent:llm").expect("an LLM span");
/// assert_eq!((llm.status, &llm.payload), (AgentStatus::Complete, &json!({"model": "m"})));
/// # Ok::<(), prefactor_runtime::Error>(())
/// ```
pub struct Capture {
    client: Client,
    recorder: Arc<Recorder>,
}

impl Capture {
    /// A capture with the span types declared by `#[span]` (as `init` registers them).
    ///
    /// Fails as [`Client::initialize`] would: with [`Error::SchemaConflict`] when two
    /// declarations of a span type disagree.
    pub fn new() -> Result<Capture, Error> {
        Capture::with_registry(SchemaRegistry::default())
    }

    /// A capture with your explicit span types too (what you pass to
    /// [`ConfigBuilder::schema_registry`](crate::ConfigBuilder::schema_registry)).
    pub fn with_registry(registry: SchemaRegistry) -> Result<Capture, Error> {
        Capture::with_config(Config::builder().schema_registry(registry))
    }

    /// A capture that records what a client with `config`'s settings would send: its sampling
    /// (unsampled runs are absent, held runs appear once the tail rule keeps them), scrubbing,
    /// size limit and schemas. Where it would send them is ignored (nothing is sent).
    ///
    /// ```
    /// use prefactor_runtime::testing::Capture;
    /// use prefactor_runtime::{Config, CreateInstance, FinishStatus};
    ///
    /// let capture = Capture::with_config(Config::builder().sample_rate(0.0))?;
    /// for status in [FinishStatus::Complete, FinishStatus::Failed] {
    ///     let run = capture.client().create_agent_instance(CreateInstance::default())?;
    ///     run.span("agent:step").start().complete();
    ///     run.finish(status);
    /// }
    /// let runs = capture.runs();
    /// assert_eq!(runs.len(), 1, "only the failed run is kept by the tail rule");
    /// assert_eq!(capture.client().stats().sampled_out_runs, 1);
    /// # Ok::<(), prefactor_runtime::Error>(())
    /// ```
    pub fn with_config(config: ConfigBuilder) -> Result<Capture, Error> {
        let (client, recorder) = Client::new_capturing(config)?;
        LIVE_CAPTURES.fetch_add(1, Ordering::AcqRel);
        Ok(Capture { client, recorder })
    }

    /// The capturing client, for the explicit API.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The context that makes this capture's client current (no instance, no span).
    pub fn context(&self) -> Context {
        Context::new(Some(self.client.clone()), None, None)
    }

    /// Runs `f` with this capture current on this thread: `#[agent]` functions called
    /// inside record into it.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        self.context().in_scope(f)
    }

    /// `future` with this capture current whenever it is polled: `#[agent]` functions
    /// awaited inside record into it.
    ///
    /// ```
    /// # async fn agent() {}
    /// # async fn test() -> Result<(), prefactor_runtime::Error> {
    /// let capture = prefactor_runtime::testing::Capture::new()?;
    /// capture.run_async(agent()).await;
    /// let runs = capture.runs();
    /// # Ok(())
    /// # }
    /// ```
    pub fn run_async<F: Future>(&self, future: F) -> Instrumented<F> {
        future.in_context(self.context())
    }

    /// The runs recorded so far, in the order they were registered: every operation the
    /// client queued up to this call (from any thread), folded into its run.
    pub fn runs(&self) -> Vec<CapturedRun> {
        self.recorder.runs()
    }

    /// The run of the agent named `name` (`#[agent(name = ..)]`, default the function's
    /// name) recorded last.
    pub fn last_run_of(&self, name: &str) -> Option<CapturedRun> {
        self.runs().into_iter().rev().find(|run| run.agent_name.as_deref() == Some(name))
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        self.recorder.clear();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        LIVE_CAPTURES.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").field("stats", &self.client.stats()).finish()
    }
}

/// The capturing client current on this thread, if any capture is alive: for `#[agent]`
/// (which prefers it to the installed client) and `#[span]` (which uses it when no client is
/// installed). One relaxed load while no capture exists.
#[inline]
pub fn capturing_client() -> Option<Client> {
    if LIVE_CAPTURES.load(Ordering::Relaxed) == 0 {
        return None;
    }
    Context::with_current(|cx| cx.client().filter(|client| client.is_capturing()).cloned())
}
