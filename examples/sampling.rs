//! Sampling: send 1 % of a busy agent's runs, but every run that fails or is slow, and all of
//! a critical agent's runs.
//!
//! ```sh
//! cargo run --example sampling
//! ```
//!
//! A triage agent handles 300 tickets; one in 25 fails and one is slow. Head sampling keeps
//! about 1 % of its runs (decided once per run, from a hash of its id, so a run is sent whole
//! or not at all); the tail rule (`keep_failed_runs`, on by default, and `keep_slow_runs`)
//! sends every failed and slow run anyway: their operations wait on the client's worker
//! thread until the run ends. A billing agent has its own rate of 1: all its runs are sent.
//! Nothing sampled out counts as lost: `close()` is clean, and `stats()` says what was left
//! out.
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set it reports to that API; otherwise it
//! starts the local server in-process on a SQLite file.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use std::time::Duration;

use prefactor::{CloseReport, InstanceId, SampleDecision, Stats};

const TICKETS: u32 = 300;
/// The ticket that takes long (over the slow-run threshold).
const SLOW_TICKET: u32 = 7;
const SLOW_RUN: Duration = Duration::from_millis(300);

#[prefactor::span(schema = "agent:llm", title = "Classify")]
fn classify(ticket: u32) -> Result<&'static str, String> {
    if ticket % 25 == 24 { Err(format!("ticket {ticket}: the model returned no label")) } else { Ok("billing") }
}

#[prefactor::span(schema = "agent:tool", title = "Route")]
fn route(ticket: u32, label: &str) -> String {
    if ticket == SLOW_TICKET {
        std::thread::sleep(SLOW_RUN + Duration::from_millis(100));
    }
    format!("queue-{label}-{}", ticket % 3)
}

/// A ticket's run: its id and sampling decision.
type Ticket = (InstanceId, SampleDecision);

/// One ticket; `Err` (a failed run) when the model gives no label. Spans of unsampled runs
/// are neither serialized nor queued, yet `current_instance()` works as usual.
#[prefactor::agent(name = "triage", version = "1.0.0")]
fn triage(ticket: u32) -> Result<Ticket, Ticket> {
    let run = prefactor::current_instance().expect("inside its run");
    let this = (run.id(), run.sampling());
    let label = classify(ticket).map_err(|_| this)?;
    let _queue = route(ticket, label);
    Ok(this)
}

#[prefactor::span(schema = "agent:payment", title = "Charge")]
fn charge(cents: u64) -> u64 {
    cents
}

#[prefactor::agent(name = "billing", version = "1.0.0")]
fn billing(cents: u64) -> Option<InstanceId> {
    charge(cents);
    prefactor::current_instance().map(|run| run.id())
}

/// The runs of one example run and what the client reported.
struct Outcome {
    report: CloseReport,
    /// Failed or slow triage runs, with whether they were sampled at the head.
    kept: Vec<(InstanceId, &'static str, SampleDecision)>,
    /// Triage runs that completed quickly: sent only when sampled.
    ordinary: Vec<(InstanceId, SampleDecision)>,
    billing: Vec<InstanceId>,
    backend: backend::Backend,
}

fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-sampling.db")?;
    let config =
        backend.config()?.sample_rate(0.01).sample_rate_for("billing", 1.0).keep_slow_runs(SLOW_RUN).build()?;
    let guard = prefactor::init_blocking(config)?;
    let (mut kept, mut ordinary) = (Vec::new(), Vec::new());
    for ticket in 0..TICKETS {
        match triage(ticket) {
            Ok((id, decision)) if ticket == SLOW_TICKET => kept.push((id, "slow", decision)),
            Ok(ordinary_run) => ordinary.push(ordinary_run),
            Err((id, decision)) => kept.push((id, "failed", decision)),
        }
    }
    let billing: Vec<InstanceId> = (1..=3).filter_map(|n| billing(n * 1_000)).collect();
    let report = guard.client().close_blocking()?;
    drop(guard);
    Ok(Outcome { report, kept, ordinary, billing, backend })
}

fn print_stats(stats: &Stats) {
    println!(
        "runs sampled out: {} ({} spans); kept by the tail rule: {}; operations discarded on the worker: {}",
        stats.sampled_out_runs, stats.sampled_out_spans, stats.kept_by_tail_rule, stats.sampled_out
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let Outcome { report, kept, ordinary, billing, backend } = run()?;
    println!("client closed clean: {} (sampling is not loss)", report.is_clean());
    print_stats(&report.stats);
    let sampled = ordinary.iter().filter(|(_, decision)| decision.is_sent()).count();
    println!("{} ordinary triage runs, {sampled} of them sampled and sent", ordinary.len());
    for (id, why, decision) in &kept {
        let run = backend.fetch_run(id).map_err(|error| error.to_string())?;
        println!("kept ({why}, {decision:?} at the head): run {id}, {} spans, {}", run.spans.len(), run.status());
    }
    println!("billing runs (their own rate: 1) sent: {}", billing.len());
    if let Some((id, _, _)) = kept.first() {
        println!("{}", backend.location(&id.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(backend: &backend::Backend, id: InstanceId) -> Option<recorded_run::RecordedRun> {
        backend.fetch_run(&id).ok()
    }

    #[test]
    fn failed_and_slow_runs_are_kept_at_one_percent_and_the_rest_is_whole_or_absent() {
        let outcome = run().expect("the example runs");
        let stats = outcome.report.stats;
        assert!(outcome.report.is_clean(), "{}", outcome.report);
        let failed = outcome.kept.iter().filter(|(_, why, _)| *why == "failed").count();
        assert_eq!(failed as u32, TICKETS / 25, "every failed run is on the server: {stats:?}");
        for (id, why, _) in &outcome.kept {
            let run = fetch(&outcome.backend, *id).expect("a kept run is on the server");
            let spans = if *why == "failed" { 1 } else { 2 };
            assert_eq!(run.spans.len(), spans, "{why} run {id} is whole:\n{}", run.render());
        }
        for (id, decision) in &outcome.ordinary {
            match fetch(&outcome.backend, *id) {
                Some(run) => assert!(decision.is_sent() && run.spans.len() == 2, "{decision:?}\n{}", run.render()),
                None => assert!(!decision.is_sent(), "a sampled run is missing"),
            }
        }
        let unsampled = outcome.ordinary.iter().filter(|(_, decision)| !decision.is_sent()).count() as u64;
        assert_eq!(stats.sampled_out_runs, unsampled);
        assert_eq!(stats.sampled_out_spans, unsampled * 2);
        assert!(unsampled >= u64::from(TICKETS) * 9 / 10, "about 1 % sampled: {unsampled} left out");
        assert_eq!(outcome.billing.len(), 3);
        assert!(outcome.billing.iter().all(|id| fetch(&outcome.backend, *id).is_some()), "billing is always sent");
    }
}
