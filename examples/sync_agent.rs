//! An agent with no async code at all: plain functions, plain threads, blocking HTTP.
//!
//! ```sh
//! cargo run --example sync_agent
//! ```
//!
//! `prefactor::init_blocking` starts the client (its worker has its own thread, so no async
//! runtime is needed here), synchronous `#[agent]` / `#[span]` functions record the run, a
//! `Context` carries the current span into worker threads, and the run is read back with
//! blocking reqwest and printed as a tree.
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set it reports to that API; otherwise it
//! starts the local server in-process on a SQLite file.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use std::fmt;
use std::time::Duration;

use prefactor::{CloseReport, Context, InstanceId};
use serde::Serialize;

/// A document waiting to be sorted.
#[derive(Debug, Clone, Serialize, prefactor::Payload)]
struct Document {
    id: u32,
    title: String,
    body: String,
}

/// What kind of document it is.
#[derive(Debug, Serialize, prefactor::Payload)]
struct Classification {
    kind: String,
    confidence: f32,
}

/// The fields read from an invoice.
#[derive(Debug, Serialize, prefactor::Payload)]
struct Invoice {
    amount_eur: f64,
    due_days: u32,
}

/// Why fields could not be read.
#[derive(Debug)]
struct ExtractError {
    document_id: u32,
    missing: &'static str,
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {} has no {}", self.document_id, self.missing)
    }
}

impl std::error::Error for ExtractError {}

/// Where a document ended up.
#[derive(Debug, Serialize, prefactor::Payload)]
struct Routing {
    queue: String,
    amount_eur: Option<f64>,
}

/// A keyword "model": deterministic, but shaped like a classifier call.
#[prefactor::span(schema = "agent:classify", title = "Classify", template = "{{ title }}")]
fn classify(title: &str, body: &str) -> Classification {
    std::thread::sleep(Duration::from_millis(2));
    let kind = if body.contains("EUR") { "invoice" } else { "letter" };
    Classification { kind: kind.to_owned(), confidence: if kind == "invoice" { 0.94 } else { 0.71 } }
}

/// Reads the amount and the payment term; fails when the amount is missing.
#[prefactor::span(
    schema = "agent:extract",
    title = "Extract fields",
    template = "document {{ document_id }}",
    err(Display)
)]
fn extract(document_id: u32, body: &str) -> Result<Invoice, ExtractError> {
    let amount = body.split_whitespace().zip(body.split_whitespace().skip(1)).find_map(|(number, unit)| {
        (unit.trim_matches(|c: char| !c.is_alphanumeric()) == "EUR").then(|| number.parse::<f64>().ok()).flatten()
    });
    let amount_eur = amount.ok_or(ExtractError { document_id, missing: "amount" })?;
    Ok(Invoice { amount_eur, due_days: if body.contains("immediately") { 0 } else { 30 } })
}

/// One document: classify it, read its fields when it is an invoice, route it.
#[prefactor::span(schema = "agent:document", title = "Document", template = "{{ document.title }}")]
fn route(document: &Document) -> Routing {
    let class = classify(&document.title, &document.body);
    if class.kind != "invoice" {
        return Routing { queue: "correspondence".to_owned(), amount_eur: None };
    }
    match extract(document.id, &document.body) {
        Ok(invoice) if invoice.due_days == 0 => {
            Routing { queue: "pay-now".to_owned(), amount_eur: Some(invoice.amount_eur) }
        }
        Ok(invoice) => Routing { queue: "payables".to_owned(), amount_eur: Some(invoice.amount_eur) },
        Err(error) => {
            tracing::info!(%error, "sending the document to a person");
            Routing { queue: "manual-review".to_owned(), amount_eur: None }
        }
    }
}

/// A content fingerprint (runs on a worker thread).
#[prefactor::span(schema = "agent:fingerprint", title = "Fingerprint", template = "document {{ document_id }}")]
fn fingerprint(document_id: u32, body: &str) -> String {
    let hash = body
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3));
    format!("{document_id}:{hash:016x}")
}

/// Fingerprints every document on its own thread. The current context (this span) is handed to
/// each thread, so the threads' spans nest under it.
#[prefactor::span(schema = "agent:archive", title = "Archive", template = "{{ documents | size }} documents")]
fn archive(documents: &[Document]) -> Vec<String> {
    let context = Context::current();
    std::thread::scope(|scope| {
        let workers: Vec<_> = documents
            .iter()
            .map(|document| {
                let context = context.clone();
                scope.spawn(move || {
                    let _entered = context.enter();
                    fingerprint(document.id, &document.body)
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().unwrap_or_else(|_| "lost".to_owned())).collect()
    })
}

/// The agent's answer: where each document went.
#[derive(Debug)]
struct Triage {
    run_id: Option<InstanceId>,
    routes: Vec<(String, String)>,
    fingerprints: Vec<String>,
}

/// The agent: one run per batch of documents.
#[prefactor::agent(name = "document-triage", version = "1.0.0", description = "Routes incoming documents")]
fn triage(batch: &[Document]) -> Triage {
    let routes = batch.iter().map(|document| (document.title.clone(), route(document).queue)).collect();
    let fingerprints = archive(batch);
    Triage { run_id: prefactor::current_instance().map(|run| run.id()), routes, fingerprints }
}

fn inbox() -> Vec<Document> {
    let document = |id: u32, title: &str, body: &str| Document { id, title: title.to_owned(), body: body.to_owned() };
    vec![
        document(1, "Invoice 2026-118", "Cloud hosting, November: 420.50 EUR, due in 30 days."),
        document(2, "Thank-you note", "Thanks for the quick turnaround on the audit."),
        document(3, "Invoice (scanned)", "Amount illegible; total in EUR, payable immediately."),
        document(4, "Final notice", "Domain renewal: 19.99 EUR, payable immediately."),
    ]
}

/// What one run produced, read back from the API.
struct Outcome {
    triage: Triage,
    report: CloseReport,
    run: recorded_run::RecordedRun,
    /// Kept alive (with its embedded server) until the outcome is printed.
    backend: backend::Backend,
}

/// Runs the agent on the inbox, closes the client, and reads the run back.
fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-sync-agent.db")?;
    let guard = prefactor::init_blocking(backend.config()?.build()?)?;

    let triage = triage(&inbox());

    // Deliver everything (an error if anything was lost), then uninstall the client.
    let report = guard.client().close_blocking()?;
    drop(guard);
    let run_id = triage.run_id.ok_or("the agent did not run")?;
    let run = backend.fetch_run(&run_id).map_err(|error| error.to_string())?;
    Ok(Outcome { triage, report, run, backend })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let Outcome { triage, report, run, backend } = run()?;
    for (title, queue) in &triage.routes {
        println!("{title:<20} → {queue}");
    }
    println!("fingerprints: {}", triage.fingerprints.join(", "));
    println!("client closed: {} operations delivered, nothing lost\n", report.delivered);
    backend.print_trace(&run);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::recorded_run::{field, result_field};
    use serde_json::json;

    #[test]
    fn a_synchronous_agent_is_recorded_with_thread_parents() {
        let outcome = super::run().expect("the example runs");
        let run = &outcome.run;
        assert!(outcome.report.is_clean(), "{}", outcome.report);
        assert_eq!(run.status(), "complete", "{}", run.render());
        let queues: Vec<&str> = outcome.triage.routes.iter().map(|(_, queue)| queue.as_str()).collect();
        assert_eq!(queues, ["payables", "correspondence", "manual-review", "pay-now"]);

        // Each document is a top-level span holding its own classify / extract calls.
        let documents = run.named("agent:document");
        assert_eq!(documents.len(), 4);
        let children: Vec<Vec<(&str, &str)>> = documents
            .iter()
            .map(|document| {
                assert_eq!(document.parent_span_id, None);
                run.children_of(document).iter().map(|s| (s.schema_name.as_str(), s.status.as_str())).collect()
            })
            .collect();
        assert_eq!(
            children,
            [
                vec![("agent:classify", "complete"), ("agent:extract", "complete")],
                vec![("agent:classify", "complete")],
                vec![("agent:classify", "complete"), ("agent:extract", "failed")],
                vec![("agent:classify", "complete"), ("agent:extract", "complete")],
            ]
        );
        assert_eq!(documents[2].summary.as_deref(), Some("Invoice (scanned)"));
        let failed = run.children_of(documents[2])[1];
        let message = result_field(failed, "error").and_then(|error| error.get("message"));
        assert_eq!(message, Some(&json!("document 3 has no amount")));
        assert_eq!(result_field(documents[0], "amount_eur"), Some(&json!(420.5)));

        // The spans made on the worker threads nest under the span that spawned the threads.
        let archive = run.only("agent:archive").expect("one archive span");
        assert_eq!(archive.summary.as_deref(), Some("4 documents"));
        let fingerprints = run.named("agent:fingerprint");
        assert_eq!(fingerprints.len(), 4);
        for span in &fingerprints {
            assert_eq!(run.parent_of(span).map(|p| p.id.as_str()), Some(archive.id.as_str()));
        }
        let mut ids: Vec<i64> = fingerprints.iter().filter_map(|s| field(s, "document_id")?.as_i64()).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3, 4]);
    }
}
