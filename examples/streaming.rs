//! Streaming: an agent whose model answers token by token. The LLM call is a streaming span:
//! open until the last token (or until the agent stops reading), with the time to the first
//! token, the token count and the usage reduced from the chunks in its result.
//!
//! ```sh
//! cargo run --example streaming
//! ```
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set, it reports to that Prefactor API;
//! otherwise it starts the local server in-process on a SQLite file. The "model" is a
//! deterministic stand-in that streams a canned reply with pauses between chunks.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::{self, BoxStream};
use serde::Serialize;

/// One chunk of a streamed completion, as LLM clients deliver them: text, and with the last
/// chunk the usage and the finish reason.
#[derive(Debug, Clone)]
struct Chunk {
    text: String,
    usage: Option<Usage>,
    finish_reason: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Usage {
    input_tokens: u32,
    output_tokens: u32,
}

/// What the span keeps of the chunks: the reply, and once the last chunk came, the usage and
/// why it stopped.
#[derive(Default, Serialize)]
struct Completion {
    text: String,
    usage: Option<Usage>,
    finish_reason: Option<&'static str>,
}

fn add_chunk(completion: &mut Completion, chunk: &Chunk) {
    completion.text.push_str(&chunk.text);
    completion.usage = chunk.usage.or(completion.usage);
    completion.finish_reason = chunk.finish_reason.or(completion.finish_reason);
}

#[derive(Debug)]
struct ModelError(&'static str);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ModelError {}

/// The model's reply, streamed: a first chunk after `first_token_ms` (the model "thinking"),
/// then one every few milliseconds, each checked by the client's safety filter (spans opened
/// while the stream is polled are children of its span). The span lasts until the stream ends.
#[prefactor::span(
    schema = "agent:llm",
    title = "LLM call",
    template = "{{ model }}: {{ prompt }}",
    skip(first_token_ms),
    reduce = add_chunk
)]
fn stream_completion(model: &str, prompt: &str, first_token_ms: u64) -> BoxStream<'static, Result<Chunk, ModelError>> {
    let words: Vec<String> = reply_to(prompt).split_inclusive(' ').map(str::to_owned).collect();
    let count = words.len();
    let input_tokens = prompt.split_whitespace().count() as u32;
    stream::iter(words.into_iter().enumerate())
        .then(move |(index, word)| async move {
            let pause = if index == 0 { first_token_ms } else { 4 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
            if index % 8 == 7 && !safety_filter(&word) {
                return Err(ModelError("the reply was filtered"));
            }
            let last = index + 1 == count;
            Ok(Chunk {
                text: word,
                usage: last.then_some(Usage { input_tokens, output_tokens: count as u32 }),
                finish_reason: last.then_some("stop"),
            })
        })
        .boxed()
}

fn reply_to(prompt: &str) -> String {
    if prompt.contains("summary") {
        "Lisbon: trams, tides and about 2,800 hours of sunshine a year.".to_owned()
    } else {
        "Take tram 28 from Martim Moniz up through Alfama, then walk down to the river for the sunset.".to_owned()
    }
}

/// The client's check of a streamed chunk.
#[prefactor::span(schema = "agent:guardrail", title = "Safety filter")]
fn safety_filter(text: &str) -> bool {
    !text.contains("forbidden")
}

/// The agent: streams a full answer, then asks for a summary but only reads its first three
/// chunks (that LLM span is `cancelled`, with what it got so far).
#[prefactor::agent(name = "streaming-guide", version = "1.0.0", description = "Answers token by token")]
async fn guide(question: &str) -> Result<String, ModelError> {
    let mut answer = String::new();
    let mut chunks = stream_completion("sim-stream-1", question, 60);
    while let Some(chunk) = chunks.next().await {
        answer.push_str(&chunk?.text);
    }

    let first_words: Vec<String> = stream_completion("sim-stream-1", "a one-line summary", 20)
        .take(3)
        .filter_map(|chunk| async move { chunk.ok().map(|chunk| chunk.text) })
        .collect()
        .await;

    if let Some(run) = prefactor::current_instance() {
        *LAST_RUN.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(run.id());
    }
    Ok(format!("{answer}\n(summary, cut short: {}…)", first_words.concat()))
}

static LAST_RUN: std::sync::Mutex<Option<prefactor::InstanceId>> = std::sync::Mutex::new(None);

struct Outcome {
    answer: String,
    run: recorded_run::RecordedRun,
    backend: backend::Backend,
}

async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let backend = backend::Backend::from_env_or_embedded("prefactor-streaming.db")?;
    let guard = prefactor::init(backend.config()?.build()?).await?;
    let answer = guide("What should I do on a sunny evening in Lisbon?").await?;
    guard.close().await?;
    let run_id =
        LAST_RUN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().ok_or("the agent did not run")?;
    let run = backend.fetch_run_async(&run_id).await?;
    Ok(Outcome { answer, run, backend })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let Outcome { answer, run, backend } = run().await?;
    println!("answer: {answer}\n");
    backend.print_trace(&run);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::recorded_run::result_field;
    use serde_json::json;

    #[tokio::test]
    async fn the_llm_spans_record_ttft_usage_and_the_early_stop() {
        let outcome = super::run().await.expect("the example runs");
        let run = &outcome.run;
        assert_eq!(run.status(), "complete", "{}", run.render());
        let llm = run.named("agent:llm");
        assert_eq!(llm.len(), 2, "{}", run.render());

        // The full answer: complete, 18 chunks, the first after the model's 60 ms pause.
        let (full, summary) = (llm[0], llm[1]);
        assert_eq!(full.status.as_str(), "complete");
        let stream = result_field(full, "stream").expect("the stream's counts");
        assert_eq!(stream["items"], json!(18));
        let ttft = stream["time_to_first_item_ms"].as_f64().expect("a time to first token");
        assert!(ttft >= 60.0, "{ttft}");
        assert_eq!(result_field(full, "usage"), Some(&json!({"input_tokens": 10, "output_tokens": 18})));
        assert_eq!(result_field(full, "finish_reason"), Some(&json!("stop")));
        assert!(outcome.answer.starts_with("Take tram 28"));

        // The safety filter ran while the stream was polled: children of the LLM span.
        let checks = run.children_of(full);
        assert_eq!(checks.len(), 2, "{}", run.render());
        assert!(checks.iter().all(|check| check.schema_name == "agent:guardrail"));

        // The summary was cut short: cancelled, with the three chunks it got.
        assert_eq!(summary.status.as_str(), "cancelled");
        assert_eq!(result_field(summary, "stream").map(|stream| &stream["items"]), Some(&json!(3)));
        assert_eq!(result_field(summary, "text"), Some(&json!("Lisbon: trams, tides ")));
        assert_eq!(result_field(summary, "usage"), Some(&json!(null)), "no usage before the last chunk");
    }
}
