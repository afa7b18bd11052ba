//! The client API without macros: the calls the reference SDKs' own example makes, one by one.
//!
//! ```sh
//! cargo run --example explicit_api
//! ```
//!
//! A `Client` is created and initialized by hand, registers an agent instance with an explicit
//! schema registry, starts it, records spans every way the API allows (a deferred span with an
//! explicit `start`, spans ended with `complete` / `fail` / `cancel`, a parent entered as the
//! context of its children, the low-level `create_span` / `finish_span` pair with explicit times), finishes the
//! instance, closes the client and prints the run as the API stored it.
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set it reports to that API; otherwise it
//! starts the local server in-process on a SQLite file.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use std::time::{Duration, SystemTime};

use prefactor::{
    AgentVersion, Client, CloseReport, CreateInstance, DataRisk, FinishSpan, FinishStatus, Inclusion, InstanceId,
    InstancePurpose, Payload, Permission, SchemaRegistry, SpanType,
};
use serde_json::{Value, json};

/// The span types this agent records. The API rejects span types a schema version does not
/// declare, so every name used below is registered here.
fn schemas() -> Result<SchemaRegistry, prefactor::Error> {
    // Results are not required to have every field: a failed call records its error.
    let llm_result = json!({ "type": "object", "properties": { "response": { "type": "string" }, "tokens": { "type": "integer" } } });
    let mut registry = SchemaRegistry::new();
    registry
        .register_type(
            SpanType::new("agent:llm", object(&[("model", "string"), ("prompt", "string")]))
                .result_schema(llm_result)
                .title("LLM call")
                .description("One completion request")
                .template("{{ model }}: {{ prompt | truncate: 40 }}"),
        )?
        .register_type(
            SpanType::new("agent:step", object(&[("step", "string")])).title("Agent step").template("{{ step }}"),
        )?
        .register_type(
            SpanType::new("agent:tool", object(&[("tool", "string"), ("query", "string")]))
                .title("Tool call")
                .template("{{ tool }}({{ query }})")
                .data_risk(search_risk()),
        )?
        .register_type(SpanType::new("agent:guardrail", object(&[("policy", "string")])).title("Guardrail"))?
        .register_type(
            SpanType::new("agent:retrieval", object(&[("query", "string"), ("k", "integer")]))
                .result_schema(object(&[("hits", "integer")]))
                .title("Retrieval")
                .template("top {{ k }} for {{ query }}"),
        )?;
    Ok(registry)
}

/// The search tool talks to the outside world and never sees personal data.
fn search_risk() -> DataRisk {
    let mut risk = DataRisk::default();
    risk.action_profile.external_communication = Permission::Allowed;
    risk.action_profile.financial_transactions = Permission::Disallowed;
    risk.params_data_categories.personal_identifiers = Inclusion::Excluded;
    risk
}

/// A JSON schema of an object with these typed, required properties.
fn object(properties: &[(&str, &str)]) -> Value {
    let props: serde_json::Map<String, Value> =
        properties.iter().map(|(name, kind)| ((*name).to_owned(), json!({ "type": kind }))).collect();
    let required: Vec<&str> = properties.iter().map(|(name, _)| *name).collect();
    json!({ "type": "object", "properties": props, "required": required })
}

/// A payload from a JSON literal (objects stay objects).
fn payload(value: Value) -> Payload {
    Payload::from(value)
}

/// Records one agent run with explicit calls only and returns its id.
fn record_run(client: &Client) -> Result<InstanceId, prefactor::Error> {
    // Register (queued: the id is generated here, nothing waits on the network) and start.
    let version = AgentVersion {
        name: Some("explicit-api-agent".to_owned()),
        external_identifier: Some("1.0.0".to_owned()),
        description: Some("Answers a question with explicit client calls".to_owned()),
        ..AgentVersion::default()
    };
    let instance = client
        .create_agent_instance(CreateInstance::default().agent_version(version).purpose(InstancePurpose::SmokeTest))?;
    instance.start();

    // 1. A deferred span: made first, its payload known later, then started explicitly.
    let mut llm = instance.span("agent:llm").deferred();
    llm.set_payload(payload(json!({ "model": "sim-1", "prompt": "How tall is the Eiffel Tower?" })));
    llm.start();
    llm.finish(FinishSpan::complete().result(payload(json!({ "response": "330 m", "tokens": 12 }))));

    // 2. A parent entered as the current context: spans opened meanwhile nest under it.
    let mut step = instance.span("agent:step").payload(payload(json!({ "step": "verify" }))).start();
    {
        let _entered = step.enter();
        let search = || payload(json!({ "tool": "search", "query": "eiffel height" }));
        let first = instance.span("agent:tool").payload(search()).start();
        first.finish(FinishSpan::failed().result(payload(json!({ "error": "search backend timed out" }))));
        let retry = instance.span("agent:tool").payload(search()).start();
        retry.finish(FinishSpan::complete().result(payload(json!({ "hits": 3 }))));
        // Not needed after all: cancelled before it started (sent once, as `cancelled`).
        let mut guardrail = instance.span("agent:guardrail").deferred();
        guardrail.set_payload(payload(json!({ "policy": "no-speculation" })));
        guardrail.cancel();
    }
    step.set_result(payload(json!({ "verified": true })));
    step.complete();

    // 3. The low-level pair (the reference SDKs' `create_span` / `finish_span`): ids managed by
    //    the caller, parents, statuses and times explicit. Here the retrieval ran 30 ms ago.
    let began = SystemTime::now() - Duration::from_millis(30);
    let retrieval = instance
        .span("agent:retrieval")
        .payload(payload(json!({ "query": "Eiffel Tower facts", "k": 2 })))
        .started_at(began)
        .create()?;
    let rerank = instance
        .span("agent:llm")
        .parent(retrieval)
        .payload(payload(json!({ "model": "sim-rerank", "prompt": "rank 2 passages" })))
        .create()?;
    instance.finish_span(rerank, FinishSpan::failed().result(payload(json!({ "error": "context too long" }))))?;
    let ended = began + Duration::from_millis(20);
    instance.finish_span(retrieval, FinishSpan::complete().result(payload(json!({ "hits": 2 }))).ended_at(ended))?;

    // Sent after everything else of this instance.
    instance.finish(FinishStatus::Complete);
    Ok(instance.id())
}

/// What one run produced, read back from the API.
struct Outcome {
    run: recorded_run::RecordedRun,
    report: CloseReport,
    /// Kept alive (with its embedded server) until the outcome is printed.
    backend: backend::Backend,
}

/// Creates and initializes a client, records the run, closes, and reads the run back.
async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-explicit-api.db")?;
    let client = Client::new(backend.config()?.schema_registry(schemas()?).build()?)?;
    client.initialize().await?; // returns at once: the token is checked in the background
    // This program reads its run back, so it needs the API now: it opts in to failing fast
    // (a wrong token or an absent API is an error here; an agent would just run on).
    client.check_connection(Duration::from_secs(10)).await?;

    let instance_id = record_run(&client)?;

    client.flush(Duration::from_secs(5)).await?;
    // `close` is an error when anything was lost, so `?` cannot hide lost telemetry.
    let report = client.close().await?;

    let run = backend.fetch_run_async(&instance_id).await?;
    Ok(Outcome { run, report, backend })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let Outcome { run, report, backend } = run().await?;
    println!(
        "client closed: {} operations delivered, {} retried, nothing lost\n",
        report.delivered, report.stats.retried
    );
    backend.print_trace(&run);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::recorded_run::{field, result_field};
    use serde_json::json;

    #[tokio::test]
    async fn every_explicit_call_reaches_the_api_as_written() {
        let outcome = super::run().await.expect("the example runs");
        let run = &outcome.run;
        assert!(outcome.report.is_clean(), "{}", outcome.report);
        // Register, start, the span operations, finish: all delivered.
        assert_eq!(outcome.report.delivered, outcome.report.stats.enqueued);
        assert_eq!(run.status(), "complete");
        assert_eq!(run.spans.len(), 7, "{}", run.render());

        // The deferred span carries the payload set before its explicit start.
        let llm = run.named("agent:llm");
        let answer = llm.iter().find(|span| field(span, "model") == Some(&json!("sim-1"))).expect("the first LLM call");
        assert_eq!(answer.status.as_str(), "complete");
        assert_eq!(result_field(answer, "tokens"), Some(&json!(12)));
        assert_eq!(answer.parent_span_id, None);

        // The entered step is the parent of the failed tool call, its retry and the guardrail.
        let step = run.only("agent:step").expect("one step");
        assert_eq!(result_field(step, "verified"), Some(&json!(true)));
        let children: Vec<(&str, &str)> =
            run.children_of(step).iter().map(|span| (span.schema_name.as_str(), span.status.as_str())).collect();
        assert_eq!(children, [("agent:tool", "failed"), ("agent:tool", "complete"), ("agent:guardrail", "cancelled")]);
        assert_eq!(run.children_of(step)[0].summary.as_deref(), Some("search(eiffel height)"));

        // create_span / finish_span: explicit parent and status.
        let retrieval = run.only("agent:retrieval").expect("one retrieval");
        assert_eq!(retrieval.status.as_str(), "complete");
        assert_eq!(retrieval.summary.as_deref(), Some("top 2 for Eiffel Tower facts"));
        let rerank = run.children_of(retrieval);
        assert_eq!(rerank.len(), 1);
        assert_eq!(rerank[0].status.as_str(), "failed");
        assert_eq!(result_field(rerank[0], "error"), Some(&json!("context too long")));
        // The caller's start and end times are kept, to the microsecond.
        let at = |time: &Option<String>| {
            let text = time.as_deref().expect("a time");
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).expect(text)
        };
        let took = at(&retrieval.finished_at) - at(&retrieval.started_at);
        assert_eq!(took, time::Duration::milliseconds(20));

        let counts = run.instance.span_counts.as_ref().expect("span counts");
        assert_eq!((counts.complete, counts.failed, counts.cancelled), (4, 2, 1));
    }
}
