//! `#[prefactor::agent]` against the local server: instance registration and the final status
//! for every way an agent function can end, `current_instance`, and termination by the platform.
#![deny(clippy::pedantic)]

mod common;

use common::{current_instance_id, finished_spans_of, flush, harness, instance};
use prefactor::{InstanceId, Terminated};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// Waits (bounded) until the server reports `status` for the instance.
fn wait_for_status(id: InstanceId, status: &str) -> serde_json::Value {
    flush();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let details = instance(id);
        if details["status"] == status {
            return details;
        }
        assert!(Instant::now() < deadline, "instance never became {status}: {details:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[prefactor::span(schema = "life:step")]
fn step(n: u32) -> u32 {
    n + 1
}

#[prefactor::agent(name = "lifecycle", version = "9.9.9", purpose = "eval", description = "tests")]
fn completes(id: &mpsc::Sender<InstanceId>) -> u32 {
    id.send(current_instance_id()).expect("receiver alive");
    step(1)
}

#[prefactor::agent]
fn fails(id: &mpsc::Sender<InstanceId>) -> Result<u32, String> {
    id.send(current_instance_id()).expect("receiver alive");
    step(1);
    Err("gave up".into())
}

#[prefactor::agent]
fn panics(id: &mpsc::Sender<InstanceId>) -> u32 {
    id.send(current_instance_id()).expect("receiver alive");
    panic!("agent blew up")
}

#[test]
fn a_sync_agent_finishes_complete_failed_or_failed_on_panic() {
    harness();
    let (tx, rx) = mpsc::channel();
    assert_eq!(completes(&tx), 2, "the function's value is unchanged");
    let completed = rx.recv().expect("id sent");
    assert_eq!(fails(&tx), Err("gave up".to_owned()), "the function's error is unchanged");
    let failed = rx.recv().expect("id sent");
    assert!(std::panic::catch_unwind(|| panics(&tx)).is_err(), "the panic propagates");
    let panicked = rx.recv().expect("id sent");

    let details = wait_for_status(completed, "complete");
    assert_eq!(details["purpose"], "eval");
    assert!(details["started_at"].is_string(), "the instance was started: {details:#}");
    let spans = finished_spans_of(completed, 1);
    assert_eq!((spans[0]["schema_name"].as_str(), spans[0]["parent_span_id"].is_null()), (Some("life:step"), true));
    wait_for_status(failed, "failed");
    wait_for_status(panicked, "failed");
    assert!(prefactor::current_instance().is_none(), "the instance is only current inside the agent");
}

#[prefactor::agent]
async fn async_agent(mode: &str, id: mpsc::Sender<InstanceId>) -> Result<u32, String> {
    id.send(current_instance_id()).expect("receiver alive");
    tokio::task::yield_now().await;
    match mode {
        "ok" => Ok(step(1)),
        "err" => Err("nope".into()),
        "panic" => panic!("async agent blew up"),
        _ => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(0)
        }
    }
}

#[test]
fn an_async_agent_finishes_complete_failed_or_cancelled() {
    harness();
    let runtime = runtime();
    let (tx, rx) = mpsc::channel();
    assert_eq!(runtime.block_on(async_agent("ok", tx.clone())), Ok(2));
    let completed = rx.recv().expect("id sent");
    assert_eq!(runtime.block_on(async_agent("err", tx.clone())), Err("nope".to_owned()));
    let failed = rx.recv().expect("id sent");
    let joined = runtime.block_on(async { prefactor::spawn(async_agent("panic", tx.clone())).await });
    assert!(joined.is_err(), "the panic reaches the join handle");
    let panicked = rx.recv().expect("id sent");
    let cut =
        runtime.block_on(async { tokio::time::timeout(Duration::from_millis(50), async_agent("hang", tx)).await });
    assert!(cut.is_err(), "the agent's future was dropped");
    let cancelled = rx.recv().expect("id sent");

    wait_for_status(completed, "complete");
    assert_eq!(finished_spans_of(completed, 1)[0]["payload"], serde_json::json!({"n": 1}));
    wait_for_status(failed, "failed");
    wait_for_status(panicked, "failed");
    wait_for_status(cancelled, "cancelled");
}

/// A job from a queue, whose id names the run.
struct Job {
    id: String,
    ticket: Option<u64>,
}

#[prefactor::agent(external_id = job.id)]
fn run_job(job: Job, id: &mpsc::Sender<InstanceId>) -> String {
    id.send(current_instance_id()).expect("receiver alive");
    job.id
}

#[prefactor::agent(external_id = job.ticket)]
async fn run_ticket(job: &Job, id: mpsc::Sender<InstanceId>) -> Option<u64> {
    id.send(current_instance_id()).expect("receiver alive");
    job.ticket
}

#[test]
fn an_agent_run_carries_its_external_id_when_it_has_one() {
    harness();
    // External ids are unique per agent and the harness's server lives as long as this binary.
    let job = format!("job-{}", prefactor::Pfid::generate(0));
    let (tx, rx) = mpsc::channel();
    assert_eq!(run_job(Job { id: job.clone(), ticket: None }, &tx), job, "the body still owns the job");
    let by_job = rx.recv().expect("id sent");
    let ticket = u64::from(std::process::id()) * 1_000 + 7;
    let runtime = runtime();
    assert_eq!(
        runtime.block_on(run_ticket(&Job { id: String::new(), ticket: Some(ticket) }, tx.clone())),
        Some(ticket)
    );
    let by_ticket = rx.recv().expect("id sent");
    assert_eq!(runtime.block_on(run_ticket(&Job { id: String::new(), ticket: None }, tx)), None);
    let without = rx.recv().expect("id sent");

    assert_eq!(wait_for_status(by_job, "complete")["external_identifier"], job.as_str());
    assert_eq!(wait_for_status(by_ticket, "complete")["external_identifier"], ticket.to_string());
    assert!(wait_for_status(without, "complete")["external_identifier"].is_null(), "`None`: no id sent");
}

#[derive(Debug, PartialEq)]
enum AgentError {
    Stopped(Option<String>),
}

impl From<Terminated> for AgentError {
    fn from(terminated: Terminated) -> Self {
        AgentError::Stopped(terminated.reason)
    }
}

#[prefactor::agent(stop_on_terminate)]
async fn long_running(id: mpsc::Sender<InstanceId>) -> Result<u32, AgentError> {
    id.send(current_instance_id()).expect("receiver alive");
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(1)
}

#[prefactor::agent]
async fn cooperative(id: mpsc::Sender<InstanceId>) -> Result<u32, Terminated> {
    id.send(current_instance_id()).expect("receiver alive");
    let reason = prefactor::terminated().await;
    prefactor::check_terminated()?;
    Ok(u32::try_from(reason.map_or(0, |reason| reason.len())).unwrap_or(0))
}

/// Terminates the instance whose id arrives on `rx`, once the server knows it.
fn terminate_when_registered(rx: &mpsc::Receiver<InstanceId>, reason: &'static str) -> InstanceId {
    let id = rx.recv_timeout(Duration::from_secs(10)).expect("the agent started");
    wait_for_status(id, "active");
    harness().server.terminate_instance(&id.to_string(), Some(reason)).expect("the server terminates the instance");
    id
}

#[test]
fn stop_on_terminate_ends_the_agent_with_the_platform_reason() {
    harness();
    let runtime = runtime();
    let (tx, rx) = mpsc::channel();
    let agent = runtime.spawn(long_running(tx));
    let id = terminate_when_registered(&rx, "budget exceeded");
    let outcome = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), agent).await });
    let result = outcome.expect("stopped well before the body's 60 s sleep").expect("no panic");
    assert_eq!(result, Err(AgentError::Stopped(Some("budget exceeded".into()))));
    assert_eq!(instance(id)["status"], "terminated");
}

#[test]
fn terminated_and_check_terminated_let_an_agent_stop_itself() {
    harness();
    let runtime = runtime();
    let (tx, rx) = mpsc::channel();
    let agent = runtime.spawn(cooperative(tx));
    terminate_when_registered(&rx, "operator");
    let outcome = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), agent).await });
    let result = outcome.expect("the agent noticed the termination").expect("no panic");
    assert_eq!(result, Err(Terminated { reason: Some("operator".into()) }));
}
