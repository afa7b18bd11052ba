//! Quickstart: a small research agent, instrumented with prefactor's macros, whose run is
//! printed back as a tree once it ends.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set, it reports to that Prefactor API;
//! otherwise it starts the local server in-process on a SQLite file. Nothing here calls the
//! network: the "LLM" and the tools are deterministic stand-ins.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use std::time::Duration;

use prefactor::{QualityType, SchemaRegistry};
use serde::Serialize;

/// The planner's output.
#[derive(Debug, Serialize, prefactor::Payload)]
struct Plan {
    /// Steps, in order.
    steps: Vec<String>,
    /// Tokens the (simulated) model used.
    tokens: u32,
}

/// A passage found by retrieval.
#[derive(Debug, Clone, Serialize, prefactor::Payload)]
struct Passage {
    source: String,
    text: String,
    score: f32,
}

/// The agent's answer.
#[derive(Debug, Serialize, prefactor::Payload)]
struct Answer {
    text: String,
    sources: Vec<String>,
}

const CORPUS: &[(&str, &str)] = &[
    ("handbook/tides.md", "Lisbon sits on the Tagus estuary; tides reach 3.8 m during spring tides."),
    ("handbook/trams.md", "Tram 28 climbs from Martim Moniz to Campo de Ourique through Alfama."),
    ("handbook/weather.md", "Lisbon has about 2,800 hours of sunshine a year, among Europe's sunniest capitals."),
];

/// The planner "LLM call": deterministic, but shaped like one.
#[prefactor::span(schema = "agent:llm", title = "LLM call", template = "{{ model }}: {{ prompt | truncate: 48 }}")]
fn plan(model: &str, prompt: &str) -> Plan {
    let steps = vec!["retrieve background".to_owned(), "check weather".to_owned(), "convert budget".to_owned()];
    Plan { tokens: (prompt.len() as u32) / 4 + 40, steps }
}

/// Retrieval: ranks the corpus by word overlap with the query.
#[prefactor::span(schema = "agent:retrieval", title = "Retrieval", template = "top {{ k }} for {{ query }}")]
async fn retrieve(query: &str, k: usize) -> Vec<Passage> {
    tokio::time::sleep(Duration::from_millis(8)).await;
    let words: Vec<String> = query.to_lowercase().split_whitespace().map(str::to_owned).collect();
    let mut passages: Vec<Passage> = CORPUS
        .iter()
        .map(|(source, text)| {
            let hits = words.iter().filter(|word| text.to_lowercase().contains(word.as_str())).count();
            Passage { source: (*source).to_owned(), text: (*text).to_owned(), score: hits as f32 / words.len() as f32 }
        })
        .collect();
    passages.sort_by(|a, b| b.score.total_cmp(&a.score));
    passages.truncate(k);
    passages
}

/// Tool one: a weather lookup.
#[prefactor::span(schema = "agent:tool:weather", title = "Weather tool", template = "{{ city }}")]
async fn weather(city: &str) -> WeatherReport {
    tokio::time::sleep(Duration::from_millis(5)).await;
    WeatherReport { city: city.to_owned(), celsius: 21.5, sky: "clear".to_owned() }
}

#[derive(Debug, Serialize, prefactor::Payload)]
struct WeatherReport {
    city: String,
    celsius: f32,
    sky: String,
}

/// Tool two: currency conversion, whose rate service times out on the first call.
#[prefactor::span(
    schema = "agent:tool:currency",
    title = "Currency tool",
    template = "{{ amount }} {{ from }} to {{ to }}",
    err(Display)
)]
async fn convert_currency(amount: f64, from: &str, to: &str, attempt: u32) -> Result<Conversion, RateError> {
    tokio::time::sleep(Duration::from_millis(3)).await;
    if attempt == 1 {
        return Err(RateError::Timeout { service: "rates.example".to_owned(), after_ms: 250 });
    }
    Ok(Conversion { converted: amount * 0.92, currency: to.to_owned(), rate: 0.92 })
}

#[derive(Debug, Serialize, prefactor::Payload)]
struct Conversion {
    converted: f64,
    currency: String,
    rate: f64,
}

#[derive(Debug)]
enum RateError {
    Timeout { service: String, after_ms: u64 },
}

impl std::fmt::Display for RateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateError::Timeout { service, after_ms } => write!(f, "{service} did not answer within {after_ms} ms"),
        }
    }
}

impl std::error::Error for RateError {}

/// A nested sub-task: drafts the answer with a second LLM call.
#[prefactor::span(schema = "agent:subtask", title = "Sub-task", template = "{{ goal }}")]
async fn write_answer(goal: &str, passages: &[Passage], weather: &WeatherReport, budget: &Conversion) -> Answer {
    let draft = plan("sim-writer-1", &format!("Write: {goal}"));
    let text = format!(
        "{} It is {} and {:.1}°C today; your budget is {:.0} {} ({} drafting steps).",
        passages.first().map_or("", |p| p.text.as_str()),
        weather.sky,
        weather.celsius,
        budget.converted,
        budget.currency,
        draft.steps.len()
    );
    Answer { text, sources: passages.iter().map(|p| p.source.clone()).collect() }
}

/// The agent: one run per question.
#[prefactor::agent(name = "lisbon-trip-assistant", version = "1.0.0", description = "Plans a day in Lisbon")]
async fn trip_assistant(question: &str, budget_usd: f64) -> Result<Answer, RateError> {
    let plan = plan("sim-planner-1", question);
    let passages = retrieve("Lisbon trams tides sunshine", 2).await;
    let report = weather("Lisbon").await;
    // The rate service times out once; the agent retries and carries on.
    let mut attempt = 1;
    let budget = loop {
        match convert_currency(budget_usd, "USD", "EUR", attempt).await {
            Ok(conversion) => break conversion,
            Err(error) if attempt < 3 => {
                tracing::info!(%error, "retrying the currency conversion");
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    };
    let answer = write_answer(&plan.steps.join(", "), &passages, &report, &budget).await;
    if let Some(run) = prefactor::current_instance() {
        // Remembered so that `main` can fetch this run back and print it.
        *LAST_RUN.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(run.id());
        let quality = AnswerQuality { score: 0.87, cited_sources: answer.sources.len() as u32 };
        if let Ok(payload) = prefactor::Payload::from_serialize(&quality) {
            run.record_quality("answer_quality", payload);
        }
    }
    Ok(answer)
}

static LAST_RUN: std::sync::Mutex<Option<prefactor::InstanceId>> = std::sync::Mutex::new(None);

#[derive(Serialize, prefactor::Payload)]
struct AnswerQuality {
    score: f64,
    cited_sources: u32,
}

/// The quality schema of the run, declared next to the span schemas the macros collect.
fn schemas() -> Result<SchemaRegistry, prefactor::Error> {
    let mut registry = SchemaRegistry::new();
    registry.register_quality_schema(
        QualityType::new("answer_quality", prefactor::schema_for::<AnswerQuality>())
            .title("Answer quality")
            .description("How good the final answer is")
            .template("score {{ score }}, {{ cited_sources }} sources"),
    )?;
    Ok(registry)
}

/// What one run of the quickstart produced, read back from the API.
struct Outcome {
    answer: Answer,
    run_id: prefactor::InstanceId,
    run: recorded_run::RecordedRun,
    /// Kept alive (with its embedded server) until the outcome is printed.
    backend: backend::Backend,
}

/// Runs the agent once, delivers everything, and reads the run back.
async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-quickstart.db")?;
    let config = backend.config()?.schema_registry(schemas()?).build()?;
    // Returns at once, even when the API is down (the run is then queued until it answers).
    let guard = prefactor::init(config).await?;

    let answer = trip_assistant("What should I do on a sunny day in Lisbon with 120 USD?", 120.0).await?;

    // Deliver everything before reading it back.
    guard.close().await?;
    let run_id =
        LAST_RUN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().ok_or("the agent did not run")?;
    let run = backend.fetch_run_async(&run_id).await?;
    Ok(Outcome { answer, run_id, run, backend })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let Outcome { answer, run_id, run, backend } = run().await?;
    println!("answer: {}\n", answer.text);
    print!("{}", run.render());
    if let Some(quality) = run.instance.quality_summaries.as_ref().and_then(|q| q.get("answer_quality")) {
        println!("quality: answer_quality = {quality}");
    }
    println!();
    match &backend.db_path {
        Some(db) => println!(
            "The run is stored in {db}. To see it in the browser, serve it with\n  cargo run -p prefactor-server -- --db {db} --token dev\nthen open http://127.0.0.1:7878/#/runs/{run_id} (log in with the token 'dev'),\nor read it with\n  curl -H 'Authorization: Bearer dev' 'http://127.0.0.1:7878/api/v1/agent_spans?agent_instance_id={run_id}&include_summaries=true'",
            db = db.display()
        ),
        None => println!(
            "Sent to {url}: open run {run_id} in Prefactor (a prefactor-server there shows it at {url}/#/runs/{run_id}).",
            url = backend.api_url.trim_end_matches('/')
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::recorded_run::{field, result_field};
    use serde_json::json;

    #[tokio::test]
    async fn the_whole_run_is_recorded_with_its_tree_payloads_and_quality() {
        let outcome = super::run().await.expect("the quickstart runs");
        let run = &outcome.run;
        assert_eq!(run.instance.id, outcome.run_id.to_string());
        assert_eq!(run.status(), "complete");
        assert_eq!(run.spans.len(), 7, "{}", run.render());

        // The failed first currency call and the retry, each with its own attempt and outcome.
        let currency = run.named("agent:tool:currency");
        let statuses: Vec<&str> = currency.iter().map(|span| span.status.as_str()).collect();
        assert_eq!(statuses, ["failed", "complete"]);
        assert_eq!(field(currency[0], "attempt"), Some(&json!(1)));
        let error = result_field(currency[0], "error").and_then(|error| error.get("message"));
        assert_eq!(error, Some(&json!("rates.example did not answer within 250 ms")));
        assert_eq!(result_field(currency[1], "currency"), Some(&json!("EUR")));
        assert_eq!(currency[1].summary.as_deref(), Some("120 USD to EUR"));

        // Top-level steps hang off the run; the writer's LLM call nests under the sub-task.
        let subtask = run.only("agent:subtask").expect("one sub-task");
        let llm_calls = run.named("agent:llm");
        assert_eq!(llm_calls.len(), 2);
        let writer = llm_calls[1];
        assert_eq!(run.parent_of(writer).map(|p| p.id.as_str()), Some(subtask.id.as_str()));
        for span in run.spans.iter().filter(|span| span.id != writer.id) {
            assert_eq!(span.parent_span_id, None, "{} should be top-level", span.schema_name);
        }
        assert_eq!(field(llm_calls[1], "model"), Some(&json!("sim-writer-1")));
        assert_eq!(result_field(run.only("agent:tool:weather").unwrap(), "celsius"), Some(&json!(21.5)));
        assert_eq!(outcome.answer.sources, ["handbook/tides.md", "handbook/weather.md"]);

        let quality = run.instance.quality_summaries.as_ref().and_then(|q| q.get("answer_quality"));
        assert_eq!(quality.map(String::as_str), Some("score 0.87, 2 sources"));
    }
}
