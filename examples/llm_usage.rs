//! LLM calls as first-class data: an agent whose model calls are recorded with
//! `prefactor::llm` types — the request (model, parameters, messages, tools), the response
//! (text, tool calls, finish reason), token usage with cache and reasoning tokens, the time to
//! the first token, and the cost from the price table (built-in prices, plus one of your own
//! for a self-hosted model).
//!
//! ```sh
//! cargo run --example llm_usage
//! ```
//!
//! With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set, it reports to that Prefactor API;
//! otherwise it starts the local server in-process on a SQLite file. The "provider" is a
//! deterministic stand-in with canned answers and token counts.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::{self, BoxStream};
use prefactor::llm::{self, Message, ModelPrice, Request, Response, Tool, ToolCall, Usage};
use serde_json::{Value, json};

#[derive(Debug)]
struct ModelError(&'static str);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ModelError {}

/// The stand-in provider: asks for the weather tool first, answers once it has the result.
fn provider_answer(request: &Request) -> Response {
    let model = format!("{}-2024-08-06", request.model);
    if request.messages.iter().any(|message| message.role == llm::Role::Tool) {
        Response::text("It is 21 °C and sunny in Lisbon: a good evening for the river.")
            .id("resp-2")
            .model(model)
            .finish_reason("stop")
            .usage(Usage::new(1_450, 40).cache_read(1_024))
    } else {
        Response::default()
            .id("resp-1")
            .model(model)
            .tool_call(ToolCall::from_json_text("get_weather", r#"{"city":"Lisbon"}"#).id("call_1"))
            .finish_reason("tool_calls")
            .usage(Usage::new(1_380, 22))
    }
}

/// One chat-completions call. The request is the argument `inputs` (where the Prefactor
/// dashboard reads the model); the response is the result, priced when recorded.
#[prefactor::span(
    schema = "agent:llm",
    title = "LLM call",
    template = "{{ inputs.model }} -> {{ ai.finishReason.unified }}: {{ usage.total_tokens }} tokens, {{ usage.cost.total }} {{ usage.cost.currency }}"
)]
async fn chat(inputs: &Request) -> Result<Response, ModelError> {
    tokio::time::sleep(Duration::from_millis(15)).await;
    Ok(provider_answer(inputs))
}

#[prefactor::span(schema = "agent:tool", title = "Tool call", template = "{{ call.name }}")]
fn run_tool(call: &ToolCall) -> Value {
    json!({"city": call.arguments["city"], "temp_c": 21, "sky": "sunny"})
}

/// A streamed chunk, as clients deliver them: text, the model, and with the last chunk the
/// usage and the finish reason.
#[derive(Debug, Clone)]
struct Delta {
    text: &'static str,
    model: &'static str,
    usage: Option<Usage>,
    finish_reason: Option<&'static str>,
}

/// Folds the chunks into one `llm::Response` (priced once the usage arrives).
fn add_delta(response: &mut Response, delta: &Delta) {
    response.push_text(delta.text);
    response.model.get_or_insert_with(|| delta.model.to_owned());
    if let Some(usage) = &delta.usage {
        response.usage = Some(usage.clone());
    }
    if let Some(reason) = delta.finish_reason {
        response.finish_reason = Some(reason.to_owned());
    }
}

/// A streamed call to a self-hosted model: the span lasts as long as the stream and records
/// the time to the first token next to the folded response.
#[prefactor::span(
    schema = "agent:llm:stream",
    title = "Streamed LLM call",
    template = "{{ inputs.model }}: first token after {{ stream.time_to_first_item_ms | round }} ms, {{ usage.cost.total }} {{ usage.cost.currency }}",
    reduce = add_delta
)]
fn chat_stream(inputs: &Request) -> BoxStream<'static, Result<Delta, ModelError>> {
    let _ = inputs;
    const WORDS: [&str; 4] = ["Bring ", "a ", "light ", "jacket."];
    stream::iter(WORDS.into_iter().enumerate())
        .then(|(index, text)| async move {
            tokio::time::sleep(Duration::from_millis(if index == 0 { 40 } else { 3 })).await;
            let last = index == WORDS.len() - 1;
            Ok(Delta {
                text,
                model: "house-llama-70b",
                usage: last.then(|| Usage::new(96, 4)),
                finish_reason: last.then_some("stop"),
            })
        })
        .boxed()
}

#[prefactor::agent(name = "llm-usage", version = "1.0.0", description = "Weather advice with a tool call")]
async fn advise(question: &str) -> Result<String, ModelError> {
    let mut request = Request::new("gpt-4o")
        .provider("openai")
        .message(Message::system("You give short weather advice."))
        .message(Message::user(question))
        .tool(Tool::function("get_weather").description("Current weather of a city").parameters(json!({
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]
        })))
        .temperature(0.3)
        .max_tokens(200);
    let first = chat(&request).await?;
    for call in &first.tool_calls {
        let result = run_tool(call);
        request.messages.push(Message::new(llm::Role::Assistant, vec![llm::Part::ToolCall(call.clone())]));
        request.messages.push(Message::tool(call.id.clone().unwrap_or_default(), result));
    }
    let answer = chat(&request).await?;

    let tip_request =
        Request::new("house-llama-70b").provider("vllm").message(Message::user("One clothing tip?")).streamed();
    let mut tip = String::new();
    let mut deltas = chat_stream(&tip_request);
    while let Some(delta) = deltas.next().await {
        tip.push_str(delta?.text);
    }

    if let Some(run) = prefactor::current_instance() {
        *LAST_RUN.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(run.id());
    }
    Ok(format!("{} {tip}", answer.content))
}

static LAST_RUN: std::sync::Mutex<Option<prefactor::InstanceId>> = std::sync::Mutex::new(None);

struct Outcome {
    answer: String,
    run: recorded_run::RecordedRun,
    backend: backend::Backend,
}

async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    // Your own model's price, in the process-wide table next to the built-in ones.
    llm::add_price(ModelPrice::per_million("house-llama-70b", 0.20, 0.20).as_of("2026-12-01"))?;
    let backend = backend::Backend::from_env_or_embedded("prefactor-llm-usage.db")?;
    let guard = prefactor::init(backend.config()?.build()?).await?;
    let answer = advise("What should I wear for an evening walk in Lisbon?").await?;
    guard.close().await?;
    let run_id =
        LAST_RUN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().ok_or("the agent did not run")?;
    let run = backend.fetch_run_async(&run_id).await?;
    Ok(Outcome { answer, run, backend })
}

/// The run's total cost per currency, from the recorded results.
fn total_cost(run: &recorded_run::RecordedRun) -> Vec<(String, f64)> {
    let mut totals: Vec<(String, f64)> = Vec::new();
    for span in &run.spans {
        let Some(cost) = recorded_run::result_field(span, "usage").and_then(|usage| usage.get("cost")) else {
            continue;
        };
        let currency = cost["currency"].as_str().unwrap_or("?").to_owned();
        let amount = cost["total"].as_f64().unwrap_or(0.0);
        match totals.iter_mut().find(|(c, _)| *c == currency) {
            Some((_, sum)) => *sum += amount,
            None => totals.push((currency, amount)),
        }
    }
    totals
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let Outcome { answer, run, backend } = run().await?;
    println!("answer: {answer}\n");
    print!("{}", run.render());
    for (currency, total) in total_cost(&run) {
        println!("run cost: {total:.6} {currency}");
    }
    println!("\n{}", backend.location(&run.instance.id));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::recorded_run::result_field;
    use serde_json::json;

    #[tokio::test]
    async fn the_llm_spans_carry_usage_cost_and_ttft() {
        let outcome = super::run().await.expect("the example runs");
        let run = &outcome.run;
        assert_eq!(run.status(), "complete", "{}", run.render());
        let calls = run.named("agent:llm");
        assert_eq!(calls.len(), 2, "{}", run.render());
        let (ask, answer) = (calls[0], calls[1]);
        assert_eq!(
            result_field(ask, "ai"),
            Some(&json!({"finishReason": {"unified": "tool-calls", "raw": "tool_calls"}}))
        );
        assert_eq!(result_field(ask, "usage").map(|u| &u["cost"]["priced_as"]), Some(&json!("gpt-4o")));
        let answer_cost = result_field(answer, "usage").map(|u| u["cost"]["total"].as_f64().unwrap_or_default());
        // 426 fresh input tokens at $2.50/M, 1024 cached at $1.25/M, 40 output at $10/M.
        let expected = (426.0 * 2.5 + 1024.0 * 1.25 + 40.0 * 10.0) / 1e6;
        assert!(answer_cost.is_some_and(|cost| (cost - expected).abs() < 1e-12), "{answer_cost:?}");
        assert_eq!(run.named("agent:tool").len(), 1);

        let streamed = run.only("agent:llm:stream").expect("the streamed call");
        let ttft = result_field(streamed, "stream").and_then(|s| s["time_to_first_item_ms"].as_f64());
        assert!(ttft.is_some_and(|ms| ms >= 40.0), "{ttft:?}");
        assert_eq!(result_field(streamed, "content"), Some(&json!("Bring a light jacket.")));
        let cost = result_field(streamed, "usage").map(|u| u["cost"].clone()).unwrap_or_default();
        assert_eq!(cost["priced_as"], "house-llama-70b", "your own price: {cost}");
        assert!(outcome.answer.ends_with("Bring a light jacket."));

        let rendered = run.render();
        assert!(rendered.contains("gpt-4o -> tool-calls: 1402 tokens"), "{rendered}");
        assert_eq!(super::total_cost(run).len(), 1, "all in USD");
    }
}
