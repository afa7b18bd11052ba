//! The `tracing` bridge (feature `tracing-bridge`) against the local server over HTTP:
//! `#[instrument]` spans inside runs stored as Prefactor spans with their fields, parents and
//! statuses; Prefactor ids in `fmt` log lines; spans outside runs left alone.
#![deny(clippy::pedantic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{current_instance_id, finished_spans_of, harness, rejected_requests, span};
use prefactor::InstanceId;
use prefactor::tracing_bridge::{PrefactorIds, PrefactorLayer};
use serde_json::{Value, json};
use tracing_subscriber::prelude::*;

/// Log lines written by the `fmt` layer of one test's subscriber.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Lines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("UTF-8 log lines")
    }
}

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` under the bridge and a `fmt` layer with Prefactor ids, on this thread only (tests
/// of this binary run in parallel), and returns what `f` returned and the lines logged.
fn with_bridge<R>(layer: PrefactorLayer, f: impl FnOnce() -> R) -> (R, String) {
    let lines = Lines::default();
    let writer = lines.clone();
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .event_format(PrefactorIds::new(tracing_subscriber::fmt::format().without_time()))
        .with_writer(move || writer.clone());
    let subscriber = tracing_subscriber::registry().with(layer).with(fmt);
    let out = tracing::subscriber::with_default(subscriber, f);
    (out, lines.text())
}

#[prefactor::span(schema = "bridge:rank")]
fn rank(hits: u32) -> u32 {
    tracing::info!("ranking");
    hits * 2
}

#[tracing::instrument(ret, fields(source = "cache", found = tracing::field::Empty))]
fn search(query: &str, limit: u32, ratio: f64, exact: bool) -> u32 {
    tracing::Span::current().record("found", 3_u64);
    rank(limit)
}

#[prefactor::span(schema = "bridge:plan")]
fn plan(goal: &str) -> u32 {
    search(goal, 5, 0.5, true)
}

#[prefactor::agent(name = "bridge-tree")]
fn tree_agent() -> (InstanceId, u32) {
    (current_instance_id(), plan("find trams"))
}

#[test]
fn an_instrument_span_in_a_run_is_a_child_span_with_its_fields_and_parents_on_both_sides() {
    harness();
    let ((instance, out), _) = with_bridge(PrefactorLayer::new(), tree_agent);
    assert_eq!(out, 10);

    let spans = finished_spans_of(instance, 3);
    let plan = span(&spans, "bridge:plan");
    let search = span(&spans, "tracing:span");
    let rank = span(&spans, "bridge:rank");
    assert_eq!(
        search["payload"],
        json!({
            "name": "search",
            "target": "tracing_bridge",
            "fields": {"source": "cache", "query": "find trams", "limit": 5, "ratio": 0.5, "exact": true}
        })
    );
    // Recorded later, and the return value of `ret`.
    assert_eq!(search["result_payload"], json!({"found": 3, "return": "10"}));
    assert_eq!(search["status"], "complete");
    // The tracing span is a child of the `#[prefactor::span]` it ran in...
    assert_eq!(search["parent_span_id"], plan["id"]);
    // ...and a `#[prefactor::span]` inside the `#[instrument]` function nests under it.
    assert_eq!(rank["parent_span_id"], search["id"]);
    assert_eq!(plan["parent_span_id"], Value::Null);
    assert_eq!(rejected_requests(), Vec::<String>::new());
}

/// A declared span type (the API rejects undeclared ones) that `fetch` is mapped to.
#[prefactor::span(schema = "bridge:fetch")]
fn declared_fetch(url: &str) -> Result<u32, String> {
    u32::try_from(url.len()).map_err(|error| error.to_string())
}

/// The type `lookup` is mapped to by its target.
#[prefactor::span(schema = "bridge:lookup")]
fn declared_lookup(city: &str) {
    let _ = city;
}

#[tracing::instrument(err)]
fn fetch(url: &str) -> Result<u32, String> {
    if url.starts_with("https://") { Ok(200) } else { Err(format!("refused: {url}")) }
}

#[tracing::instrument(name = "lookup", target = "bridge::tools")]
fn lookup(city: &str) -> u32 {
    21
}

#[prefactor::agent(name = "bridge-mapped")]
fn mapped_agent() -> InstanceId {
    let _ = fetch("https://example.com");
    let _ = fetch("ftp://example.com");
    let _ = lookup("Lisbon");
    current_instance_id()
}

#[test]
fn mapped_spans_carry_their_fields_and_errors_fail_them() {
    harness();
    // Outside a run: they record nothing, and only declare the span types mapped to.
    let _ = (declared_fetch("https://example.com/declared"), declared_lookup("Porto"));
    let layer = PrefactorLayer::new().map_name("fetch", "bridge:fetch").map_target("bridge", "bridge:none");
    let layer = layer.map_target("bridge::tools", "bridge:lookup");
    let (instance, _) = with_bridge(layer, mapped_agent);

    let spans = finished_spans_of(instance, 3);
    let fetches: Vec<&Value> = spans.iter().filter(|s| s["schema_name"] == "bridge:fetch").collect();
    assert_eq!(fetches.len(), 2, "{spans:#?}");
    assert_eq!(fetches[0]["payload"], json!({"url": "https://example.com"}));
    assert_eq!(fetches[0]["status"], "complete");
    assert_eq!(fetches[1]["payload"], json!({"url": "ftp://example.com"}));
    assert_eq!(fetches[1]["status"], "failed");
    assert_eq!(
        fetches[1]["result_payload"],
        json!({"error": {"message": "refused: ftp://example.com", "type": "tracing"}})
    );
    // The longest target prefix wins (`bridge::tools` over `bridge`).
    let lookup = span(&spans, "bridge:lookup");
    assert_eq!(lookup["payload"], json!({"city": "Lisbon"}));
    assert_eq!(lookup["status"], "complete");
    assert_eq!(rejected_requests(), Vec::<String>::new());
}

#[prefactor::span(schema = "bridge:log")]
fn logging_step(goal: &str) -> String {
    tracing::info!(goal, "inside the span");
    prefactor::Context::current().span_id().expect("inside a span").to_string()
}

#[prefactor::agent(name = "bridge-logs")]
fn logging_agent() -> (InstanceId, String) {
    tracing::info!("in the run, outside spans");
    (current_instance_id(), logging_step("log"))
}

#[test]
fn log_lines_inside_prefactor_spans_carry_their_ids() {
    harness();
    let ((instance, span_id), lines) = with_bridge(PrefactorLayer::new(), || {
        tracing::info!("before the run");
        logging_agent()
    });
    let spans = finished_spans_of(instance, 1);
    assert_eq!(span(&spans, "bridge:log")["id"], span_id.as_str());

    let lines: Vec<&str> = lines.lines().collect();
    let line =
        |needle: &str| *lines.iter().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} in {lines:#?}"));
    assert!(line("before the run").starts_with(" INFO"), "{lines:#?}");
    assert!(
        line("in the run, outside spans").starts_with(&format!("prefactor.instance_id={instance}  INFO")),
        "{lines:#?}"
    );
    assert!(
        line("inside the span")
            .starts_with(&format!("prefactor.instance_id={instance} prefactor.span_id={span_id}  INFO")),
        "{lines:#?}"
    );
}

#[tracing::instrument]
fn outside(step: u32) -> u32 {
    tracing::info!("outside any run");
    step + 1
}

#[prefactor::agent(name = "bridge-after")]
fn after_agent() -> InstanceId {
    current_instance_id()
}

#[test]
fn spans_outside_runs_are_not_recorded_nor_counted() {
    let client = harness().guard.client();
    let unattached = client.stats().unattached;
    let (out, lines) = with_bridge(PrefactorLayer::new(), || {
        let out = outside(1);
        // A thread of its own, with no run and a tracing span as the explicit parent.
        std::thread::spawn(|| tracing::info_span!("detached").in_scope(|| outside(2))).join().unwrap();
        out
    });
    assert_eq!(out, 2);
    assert!(!lines.contains("prefactor."), "{lines}");
    assert_eq!(client.stats().unattached, unattached);
    // A run afterwards holds no span but its own (none).
    let (instance, _) = with_bridge(PrefactorLayer::new(), after_agent);
    finished_spans_of(instance, 0);
}
