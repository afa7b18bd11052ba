//! OpenTelemetry export: the same agent run goes to Prefactor and, as OTel spans with the
//! GenAI semantic conventions, to any OTLP/HTTP receiver (an OTel Collector, Jaeger, Tempo...).
//!
//! ```sh
//! cargo run --example otel_export --features otel
//! # to a collector of yours instead of the local server's OTLP endpoint:
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run --example otel_export --features otel
//! # with message content, under the latest GenAI conventions:
//! OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental \
//! OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY \
//!   cargo run --example otel_export --features otel
//! ```
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set, Prefactor spans go to that API;
//! otherwise the local server runs in-process on a SQLite file. Without
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, the OTel spans go to the local server's own OTLP receiver
//! (`POST /v1/traces`), so the run is stored twice there: as Prefactor sent it and as the OTel
//! export sent it (its agent is the OTel `service.name`). Nothing here calls the network: the
//! "LLM" and the tool are deterministic stand-ins.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use std::time::Duration;

use prefactor::OtelExport;
use serde::Serialize;

/// Token counts, as LLM APIs report them (exported as `gen_ai.usage.*`).
#[derive(Debug, Serialize, prefactor::Payload)]
struct Usage {
    input_tokens: u32,
    output_tokens: u32,
}

/// A completion (`model` becomes `gen_ai.response.model`, `finish_reason` the finish reasons).
#[derive(Debug, Serialize, prefactor::Payload)]
struct Completion {
    text: String,
    model: String,
    usage: Usage,
    finish_reason: String,
}

/// `agent:llm` is a `chat` operation: the OTel span is `chat sim-gpt`, of kind CLIENT.
#[prefactor::span(schema = "agent:llm", title = "LLM call", template = "{{ model }}")]
fn chat(model: &str, messages: Vec<String>) -> Completion {
    let last = messages.last().cloned().unwrap_or_default();
    Completion {
        text: format!("Pack for {} days of sun.", last.len() % 5 + 3),
        model: format!("{model}-2026-01"),
        usage: Usage { input_tokens: 9 * messages.len() as u32, output_tokens: 7 },
        finish_reason: "stop".to_owned(),
    }
}

/// `agent:tool` is an `execute_tool` operation: the OTel span is `execute_tool weather`.
#[prefactor::span(schema = "agent:tool", title = "Tool call", template = "{{ tool_name }}({{ city }})")]
fn weather(tool_name: &str, city: &str) -> String {
    let _ = tool_name;
    format!("{city}: 24°C, clear")
}

/// The run is the `invoke_agent packing-assistant` span, the root of its trace.
#[prefactor::agent(name = "packing-assistant")]
fn assist(question: &str) -> String {
    let forecast = weather("weather", "Lisbon");
    chat("sim-gpt", vec![question.to_owned(), forecast]).text
}

/// What one run of the example produced.
struct Outcome {
    answer: String,
    /// The run as the Prefactor API stored it.
    native: recorded_run::RecordedRun,
    /// The run as the local server's OTLP ingest stored it (None with another receiver).
    exported: Option<recorded_run::RecordedRun>,
    /// Where the run is stored.
    location: String,
}

fn run() -> Result<Outcome, Box<dyn std::error::Error + Send + Sync>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-otel-export.db").map_err(|e| e.to_string())?;
    let own_receiver = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
        && std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none();
    let mut export = OtelExport::otlp_http().service_name("packing-service");
    if own_receiver {
        export = export.endpoint(&backend.api_url).header("authorization", format!("Bearer {}", backend.api_token));
    }
    let guard = prefactor::init_blocking(backend.config()?.otel(export).build()?)?;
    let answer = assist("What should I pack for Lisbon?");
    // Both deliveries: the Prefactor API, and the OTLP export's batch processor.
    guard.client().flush_blocking(Duration::from_secs(20))?;
    guard.client().close_blocking()?;
    drop(guard);

    let native_id = latest_instance(&backend, |row| !is_otel(row))?;
    let native = backend.fetch_run(&native_id)?;
    let exported = if own_receiver && backend.server.is_some() {
        let id = latest_instance(&backend, is_otel)?;
        Some(backend.fetch_run(&id)?)
    } else {
        None
    };
    Ok(Outcome { answer, native, exported, location: backend.location(&native_id) })
}

fn is_otel(row: &serde_json::Value) -> bool {
    row["external_identifier"].as_str().is_some_and(|id| id.starts_with("otel:"))
}

/// The newest instance the API lists that `keep` accepts.
fn latest_instance(
    backend: &backend::Backend,
    keep: impl Fn(&serde_json::Value) -> bool,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let list: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/agent_instance?pagination[page_size]=100", backend.api_url))
        .bearer_auth(&backend.api_token)
        .send()?
        .error_for_status()?
        .json()?;
    let rows = list["summaries"].as_array().ok_or("no instance list")?;
    let row = rows.iter().filter(|row| keep(row)).max_by_key(|row| row["id"].as_str().unwrap_or_default().to_owned());
    Ok(row.and_then(|row| row["id"].as_str()).ok_or("the run is not listed")?.to_owned())
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let outcome = run()?;
    println!("{}\n", outcome.answer);
    println!("As Prefactor recorded it:\n{}", outcome.native.render());
    match &outcome.exported {
        Some(run) => println!("As the OTLP export delivered it (POST /v1/traces):\n{}", run.render()),
        None => println!("The OTel spans went to the OTLP endpoint of your environment."),
    }
    println!("{}", outcome.location);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::recorded_run;
    #[test]
    fn the_run_arrives_twice_with_the_same_tree() {
        let outcome = super::run().expect("the example runs");
        assert!(outcome.answer.starts_with("Pack for"));
        let native = &outcome.native;
        assert_eq!(native.spans.len(), 2, "{}", native.render());
        let exported = outcome.exported.expect("the local server received the OTLP export");
        // The OTel root is the run itself (`invoke_agent`), so the export has one span more.
        assert_eq!(exported.spans.len(), 3, "{}", exported.render());
        let root = exported.only("agent:agent").expect("the invoke_agent root");
        assert_eq!(root.parent_span_id, None);
        for kind in ["agent:llm", "agent:tool"] {
            let span = exported.only(kind).expect("one span of each kind");
            assert_eq!(exported.parent_of(span).map(|p| p.id.as_str()), Some(root.id.as_str()), "{kind}");
        }
        let llm = exported.only("agent:llm").unwrap();
        assert_eq!(recorded_run::field(llm, "model"), Some(&serde_json::json!("sim-gpt")));
        let usage = recorded_run::result_field(llm, "usage");
        assert_eq!(usage, Some(&serde_json::json!({"input_tokens": 18, "output_tokens": 7})));
        assert_eq!(exported.status(), "complete");
    }
}
