//! The platform terminates running agents, and they stop cleanly.
//!
//! ```sh
//! cargo run --example termination
//! ```
//!
//! Two agents run until an operator stops them with
//! `POST /api/v1/agent_instance/{id}/terminate` (the same request works against a real
//! Prefactor API with an operator token):
//!
//! * `queue-watcher` uses `#[agent(stop_on_terminate)]`: the moment the client learns of the
//!   termination, the body is dropped (the span in flight ends as `cancelled`) and the function
//!   returns `Err(Terminated)` converted into its own error type.
//! * `report-writer` stops cooperatively: `prefactor::check_terminated()?` at the top of each
//!   step, and `prefactor::terminated()` to cut a pause short. The step in flight completes.
//!
//! The client learns of a termination from the `control` signal of the next span response, or
//! else from its periodic poll (set to 200 ms here; 30 s by default).
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set it reports to that API, and
//! terminates with `PREFACTOR_OPERATOR_TOKEN` (default: the API token); otherwise it starts the
//! local server in-process on a SQLite file.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use prefactor::{Client, InstanceId, Terminated};
use recorded_run::RecordedRun;
use serde::Serialize;
use tokio::sync::mpsc;

/// Upper bound of either agent's work, far more than it gets to do before it is stopped.
const MAX_STEPS: u32 = 100;
/// Steps an agent completes before the operator terminates it.
const STEPS_BEFORE_TERMINATION: u32 = 3;
const WATCHER_REASON: &str = "maintenance window: queue consumers paused";
const WRITER_REASON: &str = "budget exhausted";

/// Reported by an agent after each step: which run, how far.
#[derive(Debug, Clone, Copy)]
struct Progress {
    instance: InstanceId,
    step: u32,
}

fn report(progress: &mpsc::UnboundedSender<Progress>, step: u32) {
    if let Some(instance) = prefactor::current_instance() {
        let _ = progress.send(Progress { instance: instance.id(), step });
    }
}

// ---- queue-watcher: stopped at once with `stop_on_terminate`

/// Messages taken from the queue.
#[derive(Debug, Serialize, prefactor::Payload)]
struct Batch {
    messages: Vec<String>,
}

/// Waits for the next batch of messages (slow: it is a long poll).
#[prefactor::span(schema = "agent:poll", title = "Poll queue", template = "batch {{ batch }}")]
async fn poll_queue(batch: u32) -> Batch {
    tokio::time::sleep(Duration::from_millis(40)).await;
    Batch { messages: (1..=2).map(|n| format!("order-{batch}-{n}")).collect() }
}

/// Why the watcher stopped.
#[derive(Debug, PartialEq)]
enum WatchError {
    /// The platform terminated the run (made by `stop_on_terminate`).
    Terminated(Terminated),
}

impl From<Terminated> for WatchError {
    fn from(terminated: Terminated) -> Self {
        WatchError::Terminated(terminated)
    }
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchError::Terminated(terminated) => write!(f, "{terminated}"),
        }
    }
}

/// Watches a queue forever (well, `MAX_STEPS` batches) until the platform stops it.
#[prefactor::agent(name = "queue-watcher", version = "1.0.0", stop_on_terminate)]
async fn watch_queue(progress: mpsc::UnboundedSender<Progress>) -> Result<u32, WatchError> {
    let mut handled = 0;
    for batch in 1..=MAX_STEPS {
        handled += poll_queue(batch).await.messages.len() as u32;
        report(&progress, batch);
    }
    Ok(handled)
}

// ---- report-writer: stops between steps with `check_terminated` / `terminated`

/// Drafts one section (an "LLM call").
#[prefactor::span(schema = "agent:draft", title = "Draft section", template = "section {{ number }}")]
async fn draft(number: u32) -> String {
    tokio::time::sleep(Duration::from_millis(25)).await;
    format!("Section {number}: …")
}

/// Writes sections until done or terminated. The step in flight always completes.
#[prefactor::agent(name = "report-writer", version = "1.0.0")]
async fn write_report(progress: mpsc::UnboundedSender<Progress>) -> Result<Vec<String>, Terminated> {
    let mut sections = Vec::new();
    for number in 1..=MAX_STEPS {
        prefactor::check_terminated()?;
        sections.push(draft(number).await);
        report(&progress, number);
        // Rate-limit pause, cut short when the platform says stop.
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(15)) => {}
            reason = prefactor::terminated() => return Err(Terminated { reason }),
        }
    }
    Ok(sections)
}

// ---- the operator

/// Sends the operator's terminate request over the API.
struct Operator {
    http: reqwest::Client,
    api_url: String,
    token: String,
}

impl Operator {
    fn new(backend: &backend::Backend) -> Operator {
        let token = std::env::var("PREFACTOR_OPERATOR_TOKEN").unwrap_or_else(|_| backend.api_token.clone());
        Operator { http: reqwest::Client::new(), api_url: backend.api_url.clone(), token }
    }

    async fn terminate(&self, instance: InstanceId, reason: &str) -> Result<(), reqwest::Error> {
        self.http
            .post(format!("{}/api/v1/agent_instance/{instance}/terminate", self.api_url))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "reason": reason }))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

/// How one agent was stopped.
struct Stopped<T> {
    instance: InstanceId,
    /// What the agent function returned.
    result: T,
    /// Steps reported before the function returned.
    steps: u32,
    /// From sending the terminate request to the function's return.
    reaction: Duration,
}

/// Runs `agent`, terminates it once it reported `STEPS_BEFORE_TERMINATION` steps, and waits
/// (bounded) for it to return.
async fn run_and_terminate<F, T>(
    client: &Client,
    operator: &Operator,
    reason: &str,
    agent: impl FnOnce(mpsc::UnboundedSender<Progress>) -> F,
) -> Result<Stopped<T>, Box<dyn std::error::Error>>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (progress, mut updates) = mpsc::unbounded_channel();
    let task = tokio::spawn(agent(progress));
    let mut last = None;
    while let Some(update) = tokio::time::timeout(Duration::from_secs(5), updates.recv()).await? {
        last = Some(update);
        if update.step >= STEPS_BEFORE_TERMINATION {
            break;
        }
    }
    let instance = last.ok_or("the agent stopped before it was terminated")?.instance;
    // The run is only milliseconds old: make sure the platform has its registration before an
    // operator can see (and stop) it.
    client.flush(Duration::from_secs(5)).await?;
    let asked = Instant::now();
    operator.terminate(instance, reason).await?;
    let result = tokio::time::timeout(Duration::from_secs(5), task).await??;
    let reaction = asked.elapsed();
    let mut steps = last.map_or(0, |update| update.step);
    while let Ok(update) = updates.try_recv() {
        steps = update.step;
    }
    Ok(Stopped { instance, result, steps, reaction })
}

/// What both runs produced, read back from the API.
struct Outcome {
    watcher: Stopped<Result<u32, WatchError>>,
    writer: Stopped<Result<Vec<String>, Terminated>>,
    watcher_run: RecordedRun,
    writer_run: RecordedRun,
    /// Kept alive (with its embedded server) until the outcome is printed.
    backend: backend::Backend,
}

/// Runs both agents, terminating each while it works, and reads both runs back.
async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-termination.db")?;
    let config = backend.config()?.termination_poll_interval(Duration::from_millis(200)).build()?;
    let guard = prefactor::init(config).await?;
    let operator = Operator::new(&backend);

    let watcher = run_and_terminate(guard.client(), &operator, WATCHER_REASON, watch_queue).await?;
    let writer = run_and_terminate(guard.client(), &operator, WRITER_REASON, write_report).await?;

    guard.close().await?;
    let watcher_run = backend.fetch_run_async(&watcher.instance).await?;
    let writer_run = backend.fetch_run_async(&writer.instance).await?;
    Ok(Outcome { watcher, writer, watcher_run, writer_run, backend })
}

fn print_run<T, E: fmt::Display>(name: &str, stopped: &Stopped<Result<T, E>>, run: &RecordedRun) {
    let returned = match &stopped.result {
        Ok(_) => "Ok (it was never stopped)".to_owned(),
        Err(error) => format!("Err({error})"),
    };
    println!(
        "{name}\n  returned {returned}\n  after {} steps, {:.1?} after the terminate request was sent; recorded as {} (reason: {})",
        stopped.steps,
        stopped.reaction,
        run.status(),
        run.instance.termination_reason.as_deref().unwrap_or("none"),
    );
    print!("{}", run.render());
    println!();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let outcome = run().await?;
    print_run("queue-watcher (stop_on_terminate)", &outcome.watcher, &outcome.watcher_run);
    print_run("report-writer (check_terminated / terminated)", &outcome.writer, &outcome.writer_run);
    if let Some(db) = &outcome.backend.db_path {
        println!("The runs are stored in {}.", db.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn terminated_agents_stop_and_are_recorded_as_terminated() {
        let outcome = run().await.expect("the example runs");
        let reason = |text: &str| Terminated { reason: Some(text.to_owned()) };

        // stop_on_terminate: the body was dropped, so the poll in flight was cancelled.
        let (watcher, run) = (&outcome.watcher, &outcome.watcher_run);
        assert_eq!(watcher.result, Err(WatchError::Terminated(reason(WATCHER_REASON))));
        assert_eq!(run.status(), "terminated");
        assert_eq!(run.instance.termination_reason.as_deref(), Some(WATCHER_REASON));
        assert!(watcher.steps >= STEPS_BEFORE_TERMINATION && watcher.steps < MAX_STEPS, "{} steps", watcher.steps);
        assert_eq!(run.count_status("complete"), watcher.steps as usize, "{}", run.render());
        assert_eq!(run.count_status("cancelled"), 1, "{}", run.render());
        assert_eq!(run.spans.len(), watcher.steps as usize + 1);

        // Cooperative: every step that started also completed; nothing was cancelled.
        let (writer, run) = (&outcome.writer, &outcome.writer_run);
        assert_eq!(writer.result, Err(reason(WRITER_REASON)));
        assert_eq!(run.status(), "terminated");
        assert_eq!(run.instance.termination_reason.as_deref(), Some(WRITER_REASON));
        assert!(writer.steps >= STEPS_BEFORE_TERMINATION && writer.steps < MAX_STEPS, "{} steps", writer.steps);
        assert_eq!(run.spans.len(), writer.steps as usize, "{}", run.render());
        assert_eq!(run.count_status("complete"), writer.steps as usize);

        // Both noticed within the poll interval plus a step, not after the 30 s default.
        for reaction in [watcher.reaction, writer.reaction] {
            assert!(reaction < Duration::from_secs(2), "stopping took {reaction:?}");
        }
    }
}
