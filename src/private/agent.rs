//! Running an annotated function as an agent instance.

use super::warn_once::warn_no_client;
use pin_project_lite::pin_project;
use prefactor_runtime::{
    AgentInstanceHandle, AgentVersion, ContextGuard, CreateInstance, Error, FinishStatus, FutureExt, InstancePurpose,
    Instrumented, Terminated, global_client,
};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

/// What `#[agent(...)]` knows at compile time.
pub struct AgentSite {
    /// `id = ".."` (else `PREFACTOR_AGENT_ID`, else the client's configured agent id).
    pub id: Option<&'static str>,
    /// `name = ".."`, default the function's name: the agent version's name.
    pub name: &'static str,
    /// `version = ".."`, default the crate version: the agent version's external identifier.
    pub version: &'static str,
    /// `description = ".."`.
    pub description: Option<&'static str>,
    /// `purpose = "live" | "smoke_test" | "eval"` (checked by the macro).
    pub purpose: Option<&'static str>,
}

/// A started instance; finishes it when dropped unfinished (failed while panicking,
/// cancelled otherwise).
pub struct AgentRun {
    handle: AgentInstanceHandle,
    finished: bool,
}

impl AgentRun {
    fn finish(mut self, status: FinishStatus) {
        self.finished = true;
        self.handle.finish(status);
    }
}

impl Drop for AgentRun {
    fn drop(&mut self) {
        if !self.finished {
            let status = if std::thread::panicking() { FinishStatus::Failed } else { FinishStatus::Cancelled };
            self.handle.finish(status);
        }
    }
}

/// A variable's value, `None` when unset or blank: shells and CI files often leave
/// `PREFACTOR_AGENT_ID=""`, and sending `agent_id: ""` gets every run's register refused.
fn set_value(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Registers and starts an instance with the client's schemas and `external_id` (the value of
/// `external_id = expr` for this call); `None` without a client (the function then runs
/// unrecorded) or when registration cannot even be queued.
pub fn start_agent(site: &AgentSite, external_id: Option<String>) -> Option<AgentRun> {
    // A test capture current here wins over the installed client (`prefactor::testing`).
    let captured = prefactor_runtime::capturing_client();
    let Some(client) = captured.as_ref().or_else(|| global_client()) else {
        warn_no_client(site.name);
        return None;
    };
    let mut options = CreateInstance::default().agent_version(AgentVersion {
        name: Some(site.name.to_owned()),
        external_identifier: Some(site.version.to_owned()),
        description: site.description.map(str::to_owned),
        runtime_environment: None,
    });
    // No schema document: the client sends its registry (every `#[span]` schema, collected
    // at start).
    options.agent_id = site.id.map(str::to_owned).or_else(|| set_value(std::env::var("PREFACTOR_AGENT_ID").ok()));
    options.purpose = site.purpose.and_then(purpose);
    if let Some(id) = external_id {
        options = options.external_identifier(id);
    }
    match client.create_agent_instance(options) {
        Ok(handle) => {
            handle.start();
            Some(AgentRun { handle, finished: false })
        }
        // A rejected token was logged once when it latched the client; not again per run.
        Err(error @ Error::Auth { .. }) => {
            tracing::debug!(agent = site.name, %error, "prefactor: the token was rejected; running unrecorded");
            None
        }
        Err(error) => {
            tracing::warn!(agent = site.name, %error, "prefactor: could not register the agent instance; running unrecorded");
            None
        }
    }
}

fn purpose(name: &str) -> Option<InstancePurpose> {
    match name {
        "live" => Some(InstancePurpose::Live),
        "smoke_test" => Some(InstancePurpose::SmokeTest),
        "eval" => Some(InstancePurpose::Eval),
        _ => None,
    }
}

/// Makes the instance current on this thread for a synchronous body.
#[must_use]
pub fn enter_agent(run: &Option<AgentRun>) -> Option<ContextGuard> {
    run.as_ref().map(|run| run.handle.context().enter())
}

/// Leaves the instance's scope and finishes it with the status of the output.
pub fn finish_agent_sync<R: ?Sized, S: FnOnce(&R) -> FinishStatus>(
    run: Option<AgentRun>,
    entered: Option<ContextGuard>,
    output: &R,
    status: S,
) {
    drop(entered);
    if let Some(run) = run {
        run.finish(status(output));
    }
}

/// The `Terminated` error handed to `E::from` by `stop_on_terminate`.
#[must_use]
pub fn terminated(reason: Option<String>) -> Terminated {
    Terminated { reason }
}

/// The (unused) termination handler type of [`run_agent`].
pub type OnTerminated<T> = fn(Option<String>) -> T;

type Termination = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// Runs an async agent body inside the instance's context.
pub fn run_agent<F, S>(run: AgentRun, future: F, status: S) -> AgentFuture<F, S, OnTerminated<F::Output>>
where
    F: Future,
    S: FnOnce(&F::Output) -> FinishStatus,
{
    agent_future(run, future, status, None)
}

/// Like [`run_agent`], but stops the body when the platform terminates the instance and
/// returns `on_terminated(reason)` instead.
pub fn run_agent_until_terminated<F, S, T>(
    run: AgentRun,
    future: F,
    status: S,
    on_terminated: T,
) -> AgentFuture<F, S, T>
where
    F: Future,
    S: FnOnce(&F::Output) -> FinishStatus,
    T: FnOnce(Option<String>) -> F::Output,
{
    agent_future(run, future, status, Some(on_terminated))
}

fn agent_future<F: Future, S, T>(
    run: AgentRun,
    future: F,
    status: S,
    on_terminated: Option<T>,
) -> AgentFuture<F, S, T> {
    let context = run.handle.context();
    let termination: Option<Termination> =
        on_terminated.as_ref().map(|_| Box::pin(run.handle.terminated()) as Termination);
    AgentFuture {
        inner: Some(future.in_context(context)),
        termination,
        run: Some(run),
        status: Some(status),
        on_terminated,
    }
}

pin_project! {
    /// The future of an async agent function (see [`run_agent`]).
    pub struct AgentFuture<F, S, T> {
        // Declared first: the body is dropped (inside the instance's context) before the run.
        #[pin]
        inner: Option<Instrumented<F>>,
        termination: Option<Termination>,
        run: Option<AgentRun>,
        status: Option<S>,
        on_terminated: Option<T>,
    }
}

impl<F, S, T> Future for AgentFuture<F, S, T>
where
    F: Future,
    S: FnOnce(&F::Output) -> FinishStatus,
    T: FnOnce(Option<String>) -> F::Output,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if let Some(termination) = this.termination.as_mut()
            && let Poll::Ready(reason) = termination.as_mut().poll(cx)
        {
            this.inner.set(None);
            *this.termination = None;
            if let (Some(run), Some(on_terminated)) = (this.run.take(), this.on_terminated.take()) {
                run.finish(FinishStatus::Cancelled);
                return Poll::Ready(on_terminated(reason));
            }
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else { return Poll::Pending };
        let watch = FailRunOnPanic(this.run);
        let poll = inner.poll(cx);
        if let Poll::Ready(output) = &poll
            && let (Some(run), Some(status)) = (watch.0.take(), this.status.take())
        {
            run.finish(status(output));
        }
        poll
    }
}

/// Fails the instance if the poll it watches unwinds.
struct FailRunOnPanic<'a>(&'a mut Option<AgentRun>);

impl Drop for FailRunOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(run) = self.0.take()
        {
            run.finish(FinishStatus::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::set_value;

    #[test]
    fn an_empty_agent_id_variable_counts_as_unset() {
        assert_eq!(set_value(None), None);
        assert_eq!(set_value(Some(String::new())), None);
        assert_eq!(set_value(Some("  ".into())), None);
        assert_eq!(set_value(Some(" agent-1 ".into())), Some("agent-1".into()));
    }
}
