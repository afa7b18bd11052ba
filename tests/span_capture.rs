//! `#[prefactor::span]` against the local server: payloads, result payloads, statuses and
//! parents for every supported function shape, and the server's schema validation accepting
//! every payload the macros produce.
#![deny(clippy::pedantic)]

mod common;

use common::{current_instance_id, finished_spans_of, harness, rejected_requests, span};
use prefactor::{FutureExt, InstanceId, Payload};
use serde::Serialize;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;

/// A question to the model.
///
/// Sent with every LLM call.
#[derive(Serialize, Payload, Clone)]
struct Question {
    text: String,
    #[serde(rename = "max_tokens")]
    limit: u32,
    #[serde(skip)]
    #[allow(dead_code)]
    secret: String,
}

#[derive(Serialize, Payload)]
#[payload(title = "Answer", description = "What the model said")]
struct Answer {
    text: String,
    tokens: u32,
}

#[derive(Serialize, Payload)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Step {
    #[allow(dead_code)]
    Think {
        thought: String,
    },
    Act {
        tool: String,
    },
}

#[derive(Debug)]
struct ToolError {
    code: u16,
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tool failed with {}", self.code)
    }
}

#[prefactor::span(schema = "test:llm", title = "LLM call", template = "{{ question.text }}", fields(model = "m-1"))]
fn ask(question: &Question, temperature: f64) -> Answer {
    Answer { text: format!("re: {}", question.text), tokens: u32::try_from(question.text.len()).unwrap_or(0) }
}

#[prefactor::span(schema = "test:plain_return")]
fn shout(text: &str) -> String {
    text.to_uppercase()
}

#[prefactor::span(schema = "test:skips", skip(token), fields(token_len = token.len()))]
fn with_secret(user: &str, token: &str) -> usize {
    user.len() + token.len()
}

#[prefactor::span(schema = "test:skip_all", skip_all, skip_ret)]
fn private_call(secret: &str) -> String {
    secret.chars().rev().collect()
}

/// The tool may call out; its results are internal.
fn tool_risk() -> prefactor::DataRisk {
    let mut risk = prefactor::DataRisk::default();
    risk.action_profile.external_communication = prefactor::Permission::Allowed;
    risk.result_data_categories.classification = prefactor::Classification::Internal;
    risk
}

#[prefactor::span(schema = "test:result", data_risk = tool_risk)]
fn tool(code: u16) -> Result<Step, ToolError> {
    if code == 0 { Ok(Step::Act { tool: "search".into() }) } else { Err(ToolError { code }) }
}

#[prefactor::span(schema = "test:result_debug", err(Debug))]
fn tool_debug(code: u16) -> Result<(), ToolError> {
    if code == 0 { Ok(()) } else { Err(ToolError { code }) }
}

#[prefactor::span(schema = "test:panics")]
fn explode(reason: &str) -> u8 {
    panic!("{reason}")
}

#[prefactor::span(schema = "test:generic")]
fn generic<T: Serialize + Clone>(item: T, tag: impl Serialize) -> Vec<T> {
    let _ = serde_json::to_string(&tag);
    vec![item.clone(), item]
}

#[prefactor::span(schema = "test:pattern")]
fn pattern((left, right): (u8, u8), Question { text, .. }: Question) -> usize {
    usize::from(left) + usize::from(right) + text.len()
}

struct Bot {
    name: String,
    calls: u32,
}

trait Tool {
    fn invoke(&self, input: &str) -> String;
}

impl Tool for Bot {
    #[prefactor::span(schema = "test:trait_impl")]
    fn invoke(&self, input: &str) -> String {
        format!("{}:{input}", self.name)
    }
}

impl Bot {
    #[prefactor::span(schema = "test:method")]
    fn greet(&self, who: &str) -> String {
        format!("{} greets {who}", self.name)
    }

    #[prefactor::span(schema = "test:method_mut", skip_ret)]
    fn counter(&mut self, by: u32) -> &mut u32 {
        self.calls += by;
        &mut self.calls
    }

    #[prefactor::span(schema = "test:async_method")]
    async fn think(&self, steps: u32) -> Result<u32, String> {
        tokio::task::yield_now().await;
        if steps == 0 { Err("no steps".into()) } else { Ok(steps * 2) }
    }

    /// The shape `async-trait` expands to.
    #[prefactor::span(schema = "test:boxed_future")]
    fn boxed(&self, steps: u32) -> Pin<Box<dyn Future<Output = u32> + Send + '_>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            steps + u32::try_from(self.name.len()).unwrap_or(0)
        })
    }
}

#[prefactor::span(schema = "test:impl_future")]
fn later(value: u32) -> impl Future<Output = u32> {
    async move {
        tokio::task::yield_now().await;
        value + 1
    }
}

#[prefactor::span(schema = "test:outer")]
fn outer(depth: u32) -> u32 {
    inner(depth) + inner(depth + 1)
}

#[prefactor::span(schema = "test:inner")]
fn inner(depth: u32) -> u32 {
    depth
}

#[prefactor::span(schema = "test:async_outer")]
async fn async_outer(n: u32) -> u32 {
    let (a, b) = tokio::join!(async_child(n, 1), async_child(n, 2));
    let spawned = prefactor::spawn(async_child(n, 3)).await.unwrap_or(0);
    a + b + spawned
}

#[prefactor::span(schema = "test:async_child")]
async fn async_child(n: u32, branch: u32) -> u32 {
    tokio::task::yield_now().await;
    async_leaf(branch).await + n
}

#[prefactor::span(schema = "test:async_leaf")]
async fn async_leaf(branch: u32) -> u32 {
    tokio::task::yield_now().await;
    branch
}

#[prefactor::span(schema = "test:slow")]
async fn slow(millis: u64) -> u64 {
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    millis
}

#[prefactor::span(schema = "test:async_panic")]
async fn async_explode(after_yield: bool) -> u8 {
    if after_yield {
        tokio::task::yield_now().await;
    }
    panic!("async boom")
}

/// Two declarations of one span type with identical schemas: they merge at start-up.
#[prefactor::span(schema = "test:lookup")]
fn lookup_user(key: &str) -> u32 {
    u32::try_from(key.len()).unwrap_or(0)
}

#[prefactor::span(schema = "test:lookup")]
fn lookup_team(key: &str) -> u32 {
    u32::try_from(key.len()).unwrap_or(0) * 2
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

fn question() -> Question {
    Question { text: "hello".into(), limit: 64, secret: "s3cr3t".into() }
}

/// Spans recorded by one call of `sync_agent` / `async_agent`.
const SYNC_SPANS: usize = 16;
const ASYNC_SPANS: usize = 13;

#[prefactor::agent(name = "capture-sync")]
fn sync_agent() -> InstanceId {
    let _ = ask(&question(), 0.5);
    let _ = shout("hey");
    let _ = with_secret("ann", "tok");
    let _ = private_call("abc");
    let _ = tool(0);
    let _ = tool(7);
    let _ = tool_debug(9);
    let _ = generic(3_u8, "t");
    let _ = pattern((1, 2), question());
    let mut bot = Bot { name: "bot".into(), calls: 0 };
    let _ = bot.invoke("in");
    let _ = bot.greet("you");
    *bot.counter(2) += 1;
    let _ = outer(1);
    let caught = std::panic::catch_unwind(|| explode("kaboom"));
    assert!(caught.is_err(), "the panic propagates unchanged");
    current_instance_id()
}

#[test]
fn sync_spans_record_payloads_results_and_statuses() {
    harness();
    let id = sync_agent();
    let spans = finished_spans_of(id, SYNC_SPANS);

    let llm = span(&spans, "test:llm");
    assert_eq!(llm["status"], "complete");
    assert_eq!(
        llm["payload"],
        json!({"question": {"text": "hello", "max_tokens": 64}, "temperature": 0.5, "model": "m-1"})
    );
    assert_eq!(llm["result_payload"], json!({"text": "re: hello", "tokens": 5}));
    assert_eq!(llm["parent_span_id"], Value::Null);

    assert_eq!(span(&spans, "test:plain_return")["result_payload"], json!({"output": "HEY"}));
    assert_eq!(span(&spans, "test:skips")["payload"], json!({"user": "ann", "token_len": 3}));
    let private = span(&spans, "test:skip_all");
    assert_eq!(private["payload"], json!({}));
    assert!(private["result_payload"].is_null() || private["result_payload"] == json!({}), "{private}");

    let results: Vec<&Value> = spans.iter().filter(|span| span["schema_name"] == "test:result").collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["status"], "complete");
    assert_eq!(results[0]["result_payload"], json!({"kind": "act", "tool": "search"}));
    assert_eq!(results[1]["status"], "failed");
    assert_eq!(
        results[1]["result_payload"],
        json!({"error": {"message": "tool failed with 7", "type": "span_capture::ToolError"}})
    );
    let debug = span(&spans, "test:result_debug");
    assert_eq!(debug["status"], "failed");
    assert_eq!(debug["result_payload"]["error"]["message"], "ToolError { code: 9 }");

    assert_eq!(span(&spans, "test:generic")["payload"], json!({"item": 3, "tag": "t"}));
    assert_eq!(span(&spans, "test:generic")["result_payload"], json!({"output": [3, 3]}));
    assert_eq!(span(&spans, "test:pattern")["payload"], json!({"left": 1, "right": 2, "text": "hello"}));
    assert_eq!(span(&spans, "test:trait_impl")["payload"], json!({"input": "in"}));
    assert_eq!(span(&spans, "test:method")["payload"], json!({"who": "you"}), "self is never captured");
    assert_eq!(span(&spans, "test:method_mut")["payload"], json!({"by": 2}));

    let outer = span(&spans, "test:outer");
    let children: Vec<&Value> = spans.iter().filter(|span| span["schema_name"] == "test:inner").collect();
    assert_eq!(children.len(), 2);
    assert!(children.iter().all(|child| child["parent_span_id"] == outer["id"]), "{children:#?}");
    assert_eq!(outer["result_payload"], json!({"output": 3}));

    let exploded = span(&spans, "test:panics");
    assert_eq!(exploded["status"], "failed");
    assert_eq!(exploded["payload"], json!({"reason": "kaboom"}));
}

#[prefactor::agent(name = "capture-async")]
async fn async_agent() -> InstanceId {
    let bot = Bot { name: "bot".into(), calls: 0 };
    let _ = bot.think(3).await;
    let _ = bot.think(0).await;
    let _ = bot.boxed(4).await;
    let _ = later(41).await;
    let _ = async_outer(10).await;
    let cancelled = tokio::time::timeout(std::time::Duration::from_millis(20), slow(60_000)).await;
    assert!(cancelled.is_err(), "the slow span is cut off");
    let panicked = prefactor::spawn(async_explode(true)).await;
    assert!(panicked.is_err(), "the panic propagates to the task's join handle");
    current_instance_id()
}

#[test]
fn async_spans_keep_parents_across_await_and_record_cancellation_and_panics() {
    harness();
    let id = runtime().block_on(async_agent());
    let spans = finished_spans_of(id, ASYNC_SPANS);

    let think: Vec<&Value> = spans.iter().filter(|span| span["schema_name"] == "test:async_method").collect();
    assert_eq!(think.len(), 2);
    assert_eq!(
        (think[0]["status"].as_str(), think[0]["result_payload"].clone()),
        (Some("complete"), json!({"output": 6}))
    );
    assert_eq!(think[1]["status"], "failed");
    assert_eq!(think[1]["result_payload"]["error"]["message"], "no steps");

    let boxed = span(&spans, "test:boxed_future");
    assert_eq!(
        (boxed["payload"].clone(), boxed["result_payload"].clone()),
        (json!({"steps": 4}), json!({"output": 7}))
    );
    assert_eq!(span(&spans, "test:impl_future")["result_payload"], json!({"output": 42}));

    let outer = span(&spans, "test:async_outer");
    assert_eq!(outer["result_payload"], json!({"output": 36}));
    let children: Vec<&Value> = spans.iter().filter(|span| span["schema_name"] == "test:async_child").collect();
    assert_eq!(children.len(), 3, "two joined and one spawned child");
    assert!(children.iter().all(|child| child["parent_span_id"] == outer["id"]), "{children:#?}");
    for child in &children {
        let branch = &child["payload"]["branch"];
        let leaf = spans
            .iter()
            .find(|span| span["schema_name"] == "test:async_leaf" && span["payload"]["branch"] == *branch)
            .expect("each child has its leaf");
        assert_eq!(leaf["parent_span_id"], child["id"], "concurrent children keep their own context");
    }

    assert_eq!(span(&spans, "test:slow")["status"], "cancelled");
    assert_eq!(span(&spans, "test:async_panic")["status"], "failed");
}

#[test]
fn spans_run_in_a_spawned_task_with_in_context_keep_the_agent_as_parent() {
    harness();
    let id = runtime().block_on(async {
        #[prefactor::agent(name = "capture-context")]
        async fn run() -> InstanceId {
            let context = prefactor::Context::current();
            let handle = tokio::spawn(async_leaf(7).in_context(context));
            assert_eq!(handle.await.ok(), Some(7));
            current_instance_id()
        }
        run().await
    });
    let spans = finished_spans_of(id, 1);
    let leaf = span(&spans, "test:async_leaf");
    assert_eq!(leaf["payload"], json!({"branch": 7}));
    assert_eq!(leaf["parent_span_id"], Value::Null, "a direct child of the instance");
}

#[test]
fn the_server_validates_and_accepts_every_payload_the_macros_produce() {
    harness();
    let sync_id = sync_agent();
    let async_id = runtime().block_on(async_agent());
    let stored = finished_spans_of(sync_id, SYNC_SPANS).len() + finished_spans_of(async_id, ASYNC_SPANS).len();
    assert_eq!(stored, SYNC_SPANS + ASYNC_SPANS, "every span was stored");
    assert_eq!(rejected_requests(), Vec::<String>::new());
}

#[test]
fn every_span_schema_is_registered_with_its_location() {
    let registry = harness().guard.client().schema_registry();
    let llm = registry.span_types().find(|schema| schema.name == "test:llm").expect("test:llm is registered");
    assert_eq!(llm.title.as_deref(), Some("LLM call"));
    assert_eq!(llm.template.as_deref(), Some("{{ question.text }}"));
    let params = &llm.params_schema;
    assert_eq!(params["required"], json!(["question", "temperature", "model"]));
    let question = &params["properties"]["question"];
    assert_eq!(question["properties"]["max_tokens"]["type"], "integer");
    assert!(question["properties"].get("secret").is_none(), "serde(skip) is respected");
    assert_eq!(question["title"], "A question to the model.");
    assert_eq!(question["description"], "Sent with every LLM call.");
    let result = llm.result_schema.as_ref().expect("a result schema");
    assert_eq!(result["title"], "Answer");
    assert_eq!(result["description"], "What the model said");
    let tool = registry.span_types().find(|schema| schema.name == "test:result").expect("test:result");
    assert!(tool.result_schema.as_ref().is_some_and(|schema| schema.to_string().contains("\"error\"")));
    let risk = tool.data_risk.as_ref().expect("the declared data risk");
    assert_eq!(risk["action_profile"]["external_communication"], "allowed");
    assert_eq!(risk["result_data_categories"]["classification"], "internal");
    assert!(llm.data_risk.is_none(), "none declared");
    assert!(!params.to_string().contains("additionalProperties"));

    assert_eq!(lookup_user("ab") + lookup_team("ab"), 6);
    let lookups = registry.span_types().filter(|schema| schema.name == "test:lookup").count();
    let declared = prefactor::__private::inventory::iter::<prefactor::__private::StaticSpanType>
        .into_iter()
        .filter(|declared| declared.name == "test:lookup")
        .count();
    assert_eq!((declared, lookups), (2, 1), "identical declarations merge into one span type");

    let location = prefactor::__private::inventory::iter::<prefactor::__private::StaticSpanType>
        .into_iter()
        .find(|declared| declared.name == "test:llm")
        .map(prefactor::__private::StaticSpanType::location)
        .expect("submitted through inventory");
    assert!(location.starts_with("tests/span_capture.rs:"), "{location}");
}

#[derive(Default, Serialize)]
struct Transcript {
    text: String,
}

// A reducer takes `&Item`, here `&String`.
#[allow(clippy::ptr_arg)]
fn append(transcript: &mut Transcript, word: &String) {
    transcript.text.push_str(word);
}

/// A streamed reply whose item `fail_at` (if any) is an error.
#[prefactor::span(schema = "test:stream", reduce = append)]
fn stream_reply(
    words: u8,
    fail_at: Option<u8>,
) -> std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<String, ToolError>> + Send>> {
    struct Words {
        next: u8,
        count: u8,
        fail_at: Option<u8>,
    }
    impl futures_core::Stream for Words {
        type Item = Result<String, ToolError>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
            let at = self.next;
            self.next += 1;
            std::task::Poll::Ready(
                (at < self.count).then(|| {
                    if Some(at) == self.fail_at { Err(ToolError { code: 429 }) } else { Ok(format!("w{at} ")) }
                }),
            )
        }
    }
    Box::pin(Words { next: 0, count: words, fail_at })
}

#[prefactor::agent(name = "capture-stream")]
fn stream_agent() -> InstanceId {
    use futures_util::StreamExt as _;
    let drain = |stream: Pin<Box<dyn futures_core::Stream<Item = Result<String, ToolError>> + Send>>, take: usize| {
        futures_executor::block_on(stream.take(take).count())
    };
    assert_eq!(drain(stream_reply(3, None), usize::MAX), 3);
    assert_eq!(drain(stream_reply(3, Some(1)), usize::MAX), 3);
    assert_eq!(drain(stream_reply(5, None), 2), 2);
    current_instance_id()
}

#[test]
fn streaming_spans_reach_the_server_complete_failed_and_cancelled_with_their_counts() {
    harness();
    let id = stream_agent();
    let spans = finished_spans_of(id, 3);
    let statuses: Vec<&Value> = spans.iter().map(|span| &span["status"]).collect();
    assert_eq!(statuses, [&json!("complete"), &json!("failed"), &json!("cancelled")]);
    assert_eq!(spans[0]["payload"], json!({"words": 3, "fail_at": null}));
    assert_eq!(spans[0]["result_payload"]["text"], "w0 w1 w2 ");
    assert_eq!(spans[0]["result_payload"]["stream"]["items"], 3);
    assert!(spans[0]["result_payload"]["stream"]["time_to_first_item_ms"].is_number());
    assert_eq!(spans[1]["result_payload"]["error"]["message"], "tool failed with 429");
    assert_eq!(spans[1]["result_payload"]["stream"]["items"], 2);
    assert_eq!(spans[2]["result_payload"]["stream"]["items"], 2);
    assert_eq!(spans[2]["result_payload"]["text"], "w0 w1 ");
    assert_eq!(rejected_requests(), Vec::<String>::new(), "the stream result schema accepts every result");
}
