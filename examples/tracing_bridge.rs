//! The `tracing` bridge: an agent whose helpers are instrumented with `tracing` only (as rig,
//! reqwest middleware and most Rust libraries are) shows those spans in its Prefactor run,
//! and its log lines name the Prefactor run and span they were written in.
//!
//! ```sh
//! cargo run --example tracing_bridge --features tracing-bridge
//! ```
//!
//! `PrefactorLayer` records every `tracing` span opened inside the run: `fetch_page` (async,
//! `#[instrument(err)]`) as the span type `agent:http` it is mapped to, `tokenize` as the
//! default `tracing:span`. The failed fetch is a failed span; the `#[prefactor::span]` called
//! inside `fetch_page` nests under it. `PrefactorIds` prefixes the `fmt` lines with the ids.
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set it reports to that API; otherwise it
//! starts the local server in-process on a SQLite file.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use prefactor::tracing_bridge::{PrefactorIds, PrefactorLayer};
use prefactor::{InstanceId, SchemaRegistry, SpanType};
use serde_json::json;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Library code: instrumented with `tracing`, knows nothing of Prefactor.
mod http {
    use std::time::Duration;

    #[tracing::instrument(err, fields(bytes = tracing::field::Empty))]
    pub async fn fetch_page(url: &str) -> Result<String, String> {
        tokio::time::sleep(Duration::from_millis(3)).await;
        if !url.starts_with("https://") {
            return Err(format!("{url}: only https is allowed"));
        }
        let body = format!("<html>{url}: trams climb from Martim Moniz to Campo de Ourique</html>");
        tracing::Span::current().record("bytes", body.len());
        tracing::info!(url, "fetched");
        super::check_policy(url);
        Ok(body)
    }

    #[tracing::instrument(skip(text), fields(chars = text.len()))]
    pub fn tokenize(text: &str) -> usize {
        text.split_whitespace().count()
    }
}

/// The agent's own span, inside a `tracing` span.
#[prefactor::span(schema = "agent:policy", template = "{{ url }}")]
fn check_policy(url: &str) -> bool {
    tracing::info!("policy checked");
    url.contains("example")
}

#[prefactor::agent(name = "tracing-bridge-demo")]
async fn research(urls: &[&str]) -> (InstanceId, usize) {
    let id = prefactor::current_instance().map(|instance| instance.id()).expect("inside the run");
    let mut words = 0;
    for url in urls {
        match http::fetch_page(url).await {
            Ok(page) => words += http::tokenize(&page),
            Err(error) => tracing::warn!(%error, "skipped"),
        }
    }
    (id, words)
}

/// `agent:http` is declared here (the API rejects undeclared span types): its payload is the
/// `fetch_page` span's fields, its result what the span recorded.
fn schemas() -> Result<SchemaRegistry, prefactor::Error> {
    let mut registry = SchemaRegistry::new();
    registry.register_type(
        SpanType::new("agent:http", json!({"type": "object", "properties": {"url": {"type": "string"}}}))
            .result_schema(json!({"type": "object", "properties": {"bytes": {"type": "integer"}}}))
            .title("HTTP fetch")
            .template("{{ url }}"),
    )?;
    Ok(registry)
}

struct Outcome {
    words: usize,
    run: recorded_run::RecordedRun,
    backend: backend::Backend,
}

async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-tracing-bridge.db")?;
    let guard = prefactor::init(backend.config()?.schema_registry(schemas()?).build()?).await?;

    let (run_id, words) = research(&["https://example.com/trams", "http://example.com/insecure"]).await;

    guard.close().await?;
    let run = backend.fetch_run_async(&run_id).await?;
    Ok(Outcome { words, run, backend })
}

/// The bridge (every span, whatever the log level) and `fmt` lines with Prefactor ids.
fn subscriber() -> impl tracing::Subscriber + Send + Sync {
    let fmt = tracing_subscriber::fmt::layer()
        .event_format(PrefactorIds::new(tracing_subscriber::fmt::format().without_time()))
        .with_writer(std::io::stderr)
        // The example's own lines; the embedded server logs only warnings.
        .with_filter(Targets::new().with_default(LevelFilter::WARN).with_target("tracing_bridge", LevelFilter::INFO));
    tracing_subscriber::registry().with(PrefactorLayer::new().map_name("fetch_page", "agent:http")).with(fmt)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing::subscriber::set_global_default(subscriber())?;
    let Outcome { words, run, backend } = run().await?;
    println!("{words} words fetched\n");
    backend.print_trace(&run);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::recorded_run::{field, result_field};
    use serde_json::json;

    #[tokio::test]
    async fn the_tracing_spans_are_in_the_run_with_their_fields_status_and_children() {
        let _default = tracing::subscriber::set_default(super::subscriber());
        let outcome = super::run().await.expect("the example runs");
        let run = &outcome.run;
        assert_eq!(outcome.words, 10);
        assert_eq!(run.status(), "complete", "{}", run.render());

        let fetches = run.named("agent:http");
        assert_eq!(fetches.len(), 2, "{}", run.render());
        assert_eq!(field(fetches[0], "url"), Some(&json!("https://example.com/trams")));
        assert_eq!(fetches[0].status, prefactor::AgentStatus::Complete);
        assert_eq!(result_field(fetches[0], "bytes"), Some(&json!(89)));
        assert_eq!(fetches[1].status, prefactor::AgentStatus::Failed);
        let message = result_field(fetches[1], "error").and_then(|error| error.get("message"));
        assert_eq!(message, Some(&json!("http://example.com/insecure: only https is allowed")));

        let policy = run.only("agent:policy").expect("one policy span");
        assert_eq!(run.parent_of(policy).map(|p| p.id.as_str()), Some(fetches[0].id.as_str()));
        let tokenize = run.only("tracing:span").expect("one tokenize span");
        assert_eq!(field(tokenize, "name"), Some(&json!("tokenize")));
        assert_eq!(field(tokenize, "fields"), Some(&json!({"chars": 89})));
        assert_eq!(tokenize.parent_span_id, None);
    }
}
