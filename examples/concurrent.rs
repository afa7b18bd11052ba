//! Many agent runs and spawned tasks at once, each span under the right parent.
//!
//! ```sh
//! cargo run --example concurrent
//! ```
//!
//! Six runs of a fan-out research agent start together on a multi-threaded runtime. Each run
//! spawns one task per topic with `prefactor::spawn`, and each of those spawns two searches with
//! `tokio::spawn(... .in_current_context())`, so hundreds of polls interleave on four threads.
//! Every span carries the run and worker it belongs to in its payload; once the runs end, the
//! example reads them back and checks that every span sits in the right run under the right
//! parent, and says so.
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set it reports to that API; otherwise it
//! starts the local server in-process on a SQLite file.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use std::time::Duration;

use prefactor::{FutureExt, InstanceId};
use prefactor_protocol::AgentSpan;
use recorded_run::{RecordedRun, field};
use serde::Serialize;

/// Agent runs started at once.
const RUNS: u32 = 6;
/// Topics (worker tasks) per run.
const TOPICS: &[&str] = &["solar", "wind", "tidal"];

/// What one search found.
#[derive(Debug, Serialize, prefactor::Payload)]
struct Hits {
    count: u32,
    best: String,
}

/// One worker's conclusion.
#[derive(Debug, Serialize, prefactor::Payload)]
struct Finding {
    topic: String,
    sources: u32,
}

/// A simulated latency that differs per run, worker and query, so tasks finish out of order.
fn latency(run: u32, worker: u32, salt: u32) -> Duration {
    Duration::from_millis(u64::from(4 + (run * 7 + worker * 5 + salt * 3) % 13))
}

/// Picks the topics to research (a synchronous "LLM call").
#[prefactor::span(schema = "agent:plan", title = "Plan", template = "run {{ run }}: {{ topics | size }} topics")]
fn plan(run: u32, topics: &[&str]) -> Vec<String> {
    topics.iter().map(|topic| format!("{topic} energy")).collect()
}

/// One search, on its own task.
#[prefactor::span(schema = "agent:search", title = "Search", template = "run {{ run }}/{{ worker }}: {{ query }}")]
async fn search(run: u32, worker: u32, query: String) -> Hits {
    let salt = query.len() as u32;
    tokio::time::sleep(latency(run, worker, salt)).await;
    Hits { count: (salt + run) % 5 + 1, best: format!("{query}: overview") }
}

/// Condenses both searches (synchronous, inside the worker).
#[prefactor::span(schema = "agent:summarize", title = "Summarize", template = "run {{ run }}/{{ worker }}")]
fn summarize(run: u32, worker: u32, hits: u32) -> u32 {
    hits
}

/// One worker: two searches at once, each spawned as a task that keeps this span as its parent.
#[prefactor::span(schema = "agent:worker", title = "Worker", template = "run {{ run }}/{{ worker }}: {{ topic }}")]
async fn investigate(run: u32, worker: u32, topic: String) -> Finding {
    tokio::time::sleep(latency(run, worker, 0)).await;
    let history = tokio::spawn(search(run, worker, format!("{topic} history")).in_current_context());
    let outlook = tokio::spawn(search(run, worker, format!("{topic} outlook")).in_current_context());
    let mut hits = 0;
    for task in [history, outlook] {
        hits += task.await.map_or(0, |found| found.count);
    }
    Finding { topic, sources: summarize(run, worker, hits) }
}

/// What one agent run returns.
#[derive(Debug)]
struct Report {
    run: u32,
    instance: Option<InstanceId>,
    findings: Vec<Finding>,
}

/// The agent: one worker task per topic, all spawned at once with `prefactor::spawn`.
#[prefactor::agent(name = "fan-out-researcher", version = "1.0.0", description = "Researches topics in parallel")]
async fn research(run: u32) -> Report {
    let workers: Vec<_> = plan(run, TOPICS)
        .into_iter()
        .zip(0..)
        .map(|(topic, worker)| prefactor::spawn(investigate(run, worker, topic)))
        .collect();
    let mut findings = Vec::new();
    for worker in workers {
        findings.extend(worker.await.ok());
    }
    Report { run, instance: prefactor::current_instance().map(|instance| instance.id()), findings }
}

/// The result of checking every span of every run read back.
#[derive(Debug, Default)]
struct ParentCheck {
    spans: usize,
    /// Spans whose parent was checked (all but the top-level ones).
    parents: usize,
    /// One line per span in the wrong run or under the wrong parent.
    mismatches: Vec<String>,
}

impl ParentCheck {
    /// Checks one run: every span belongs to `run`; plans and workers are top-level; searches
    /// and summaries sit under the worker span of the same run and worker.
    fn check_run(&mut self, run: u32, recorded: &RecordedRun) {
        for span in &recorded.spans {
            self.spans += 1;
            if number(span, "run") != Some(run) {
                self.mismatch(span, format!("belongs to run {:?}, found in run {run}", number(span, "run")));
            }
            let parent = recorded.parent_of(span);
            match span.schema_name.as_str() {
                "agent:plan" | "agent:worker" if span.parent_span_id.is_some() => {
                    self.mismatch(span, "should be top-level".to_owned());
                }
                "agent:plan" | "agent:worker" => {}
                "agent:search" | "agent:summarize" => {
                    self.parents += 1;
                    let expected = (Some(run), number(span, "worker"));
                    let found = parent
                        .filter(|p| p.schema_name == "agent:worker")
                        .map(|p| (number(p, "run"), number(p, "worker")));
                    if found != Some(expected) {
                        self.mismatch(span, format!("expected under worker {expected:?}, found under {found:?}"));
                    }
                }
                other => self.mismatch(span, format!("unexpected span type {other}")),
            }
        }
    }

    fn mismatch(&mut self, span: &AgentSpan, problem: String) {
        self.mismatches.push(format!("{} {}: {problem}", span.schema_name, span.id));
    }
}

fn number(span: &AgentSpan, key: &str) -> Option<u32> {
    field(span, key)?.as_u64()?.try_into().ok()
}

/// What all runs produced, read back from the API.
struct Outcome {
    reports: Vec<Report>,
    runs: Vec<RecordedRun>,
    check: ParentCheck,
    /// Kept alive (with its embedded server) until the outcome is printed.
    backend: backend::Backend,
}

/// Starts every run at once, waits for all, closes the client, reads the runs back and checks
/// them.
async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-concurrent.db")?;
    let guard = prefactor::init(backend.config()?.build()?).await?;

    // Agent runs need no context: each starts its own instance.
    let runs: Vec<_> = (1..=RUNS).map(|run| tokio::spawn(research(run))).collect();
    let mut reports = Vec::new();
    for run in runs {
        reports.push(run.await?);
    }
    guard.close().await?;

    let mut recorded = Vec::new();
    let mut check = ParentCheck::default();
    for report in &reports {
        let id = report.instance.ok_or("a run was not recorded")?;
        let run = backend.fetch_run_async(&id).await?;
        check.check_run(report.run, &run);
        recorded.push(run);
    }
    Ok(Outcome { reports, runs: recorded, check, backend })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let Outcome { reports, runs, check, backend } = run().await?;
    println!("run  instance                          status    spans  findings");
    for (report, recorded) in reports.iter().zip(&runs) {
        let findings: Vec<String> = report.findings.iter().map(|f| format!("{} ({})", f.topic, f.sources)).collect();
        println!(
            "{:>3}  {}  {:<8}  {:>5}  {}",
            report.run,
            recorded.instance.id,
            recorded.status(),
            recorded.spans.len(),
            findings.join(", ")
        );
    }
    if let Some(first) = runs.first() {
        println!("\nrun 1 as recorded:\n{}", first.render());
    }
    if check.mismatches.is_empty() {
        println!(
            "checked {} spans in {} runs: every span is in its own run, and all {} parents are right",
            check.spans,
            runs.len(),
            check.parents
        );
    } else {
        println!("{} of {} spans are misplaced:", check.mismatches.len(), check.spans);
        for mismatch in &check.mismatches {
            println!("  {mismatch}");
        }
    }
    if let Some(db) = &backend.db_path {
        println!("The runs are stored in {}.", db.display());
    }
    if check.mismatches.is_empty() { Ok(()) } else { Err("misplaced spans".into()) }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    fn instant(text: Option<&str>) -> OffsetDateTime {
        OffsetDateTime::parse(text.expect("a timestamp"), &Rfc3339).expect("an RFC 3339 timestamp")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_runs_and_tasks_keep_their_parents() {
        let outcome = super::run().await.expect("the example runs");
        let check = &outcome.check;
        assert!(check.mismatches.is_empty(), "{:#?}", check.mismatches);

        let workers = super::TOPICS.len();
        let per_run = 1 + workers * 4; // plan, and per worker: itself, two searches, a summary
        assert_eq!(outcome.runs.len(), super::RUNS as usize);
        assert_eq!(check.spans, super::RUNS as usize * per_run);
        assert_eq!(check.parents, super::RUNS as usize * workers * 3);
        for (report, run) in outcome.reports.iter().zip(&outcome.runs) {
            assert_eq!(run.status(), "complete");
            assert_eq!(run.count_status("complete"), per_run, "{}", run.render());
            assert_eq!(report.findings.len(), workers);
            for worker in run.named("agent:worker") {
                assert_eq!(run.children_of(worker).len(), 3, "{}", run.render());
            }
        }

        // The runs really overlapped: the last one started before the first one finished.
        let last_start = outcome.runs.iter().map(|run| instant(run.instance.started_at.as_deref())).max();
        let first_finish = outcome.runs.iter().map(|run| instant(run.instance.finished_at.as_deref())).min();
        assert!(last_start < first_finish, "runs did not overlap: {last_start:?} vs {first_finish:?}");
    }
}
