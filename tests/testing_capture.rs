//! `prefactor::testing`: runs recorded by a capture, with the macros (sync and async, across
//! tasks and threads) and the explicit API; captures in parallel do not mix; and a capture
//! records what the real client sends (the same run against the local server).
#![deny(clippy::pedantic)]

mod common;

use common::{current_instance_id, finished_spans_of, instance};
use prefactor::testing::{Capture, CapturedRun, TreeOptions};
use prefactor::{AgentStatus, CreateInstance, FinishSpan, FinishStatus, InstanceId, Payload, SpanId, agent, span};
use serde_json::{Value, json};
use std::cell::Cell;

#[span(schema = "capture:llm", template = "{{ prompt }}")]
fn complete(prompt: &str, temperature: f32) -> String {
    format!("echo: {prompt} at {temperature}")
}

#[span(schema = "capture:tool")]
fn tool(query: &str) -> Result<Vec<String>, String> {
    if query.is_empty() { Err("empty query".to_owned()) } else { Ok(vec![format!("hit for {query}")]) }
}

#[span(schema = "capture:plan")]
fn plan(question: &str) -> Result<String, String> {
    let hits = tool(question)?;
    Ok(complete(&hits.join(", "), 0.5))
}

#[agent(name = "capture-bot")]
fn bot(question: &str) -> Result<String, String> {
    plan(question)
}

#[test]
fn a_sync_run_is_recorded_with_statuses_parents_payloads_and_results() {
    let capture = Capture::new().expect("a capture");
    let answer = capture.run(|| bot("rust"));
    assert_eq!(answer.as_deref(), Ok("echo: hit for rust at 0.5"));

    let runs = capture.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(
        (run.agent_name.as_deref(), run.status, run.registered),
        (Some("capture-bot"), AgentStatus::Complete, true)
    );
    assert!(run.started_at.is_some() && run.finished_at >= run.started_at);
    let plan = run.span("capture:plan").expect("the plan span");
    let tool = run.span("capture:tool").expect("the tool span");
    let llm = run.span("capture:llm").expect("the llm span");
    assert_eq!(plan.parent, None);
    assert_eq!((tool.parent, llm.parent), (Some(plan.id), Some(plan.id)));
    assert_eq!(run.parent_of(llm).map(|parent| parent.id), Some(plan.id));
    assert_eq!(run.children_of(plan.id).count(), 2);
    assert_eq!(llm.payload, json!({"prompt": "hit for rust", "temperature": 0.5}));
    assert_eq!(llm.result, Some(json!({"output": "echo: hit for rust at 0.5"})));
    assert_eq!(tool.result_at("/output/0"), Some(&json!("hit for rust")));
    assert!([plan, tool, llm].iter().all(|span| span.status == AgentStatus::Complete && span.duration().is_some()));
    insta::assert_snapshot!("sync_run", run.tree());
}

#[test]
fn a_failed_call_fails_its_span_and_the_run() {
    let capture = Capture::new().expect("a capture");
    assert!(capture.run(|| bot("")).is_err());
    let run = capture.last_run_of("capture-bot").expect("recorded");
    assert_eq!(run.status, AgentStatus::Failed);
    let tool = run.span("capture:tool").expect("the tool span");
    assert_eq!(tool.status, AgentStatus::Failed);
    assert_eq!(tool.result_at("/error/message"), Some(&json!("empty query")));
    assert!(run.span("capture:llm").is_none(), "the model is never called");
    insta::assert_snapshot!("failed_run", run.tree());
}

#[span(schema = "capture:fetch")]
async fn fetch(url: String) -> usize {
    tokio::task::yield_now().await;
    url.len()
}

#[agent(name = "async-bot")]
async fn async_bot(urls: Vec<String>) -> usize {
    // One fetch in this task, the others on tasks that may run on other threads.
    let first = fetch(urls[0].clone()).await;
    let mut handles = Vec::new();
    for url in urls.into_iter().skip(1) {
        handles.push(prefactor::spawn(fetch(url)));
    }
    let mut total = first;
    for handle in handles {
        total += handle.await.expect("the task ran");
    }
    let on_a_thread = prefactor::spawn_blocking(|| complete("blocking", 1.0)).await.expect("ran");
    total + on_a_thread.len()
}

#[test]
fn an_async_run_is_recorded_across_tasks_and_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let capture = Capture::new().expect("a capture");
    let urls: Vec<String> = (0..4).map(|n| format!("https://example.com/{n}")).collect();
    let total = runtime.block_on(capture.run_async(async_bot(urls)));
    assert_eq!(total, 4 * 21 + "echo: blocking at 1".len());

    let run = capture.last_run_of("async-bot").expect("recorded");
    assert_eq!(run.status, AgentStatus::Complete);
    let fetches: Vec<_> = run.spans_of("capture:fetch").collect();
    assert_eq!(fetches.len(), 4, "every fetch, on whichever thread it ran: {run:#?}");
    assert!(fetches.iter().all(|span| span.parent.is_none() && span.status == AgentStatus::Complete));
    assert_eq!(run.span("capture:llm").map(|span| span.status), Some(AgentStatus::Complete));
    // Spans finish in any order across tasks: the tree still lists them as opened.
    let tree = run.tree_with(&TreeOptions::default().results(false).payloads(false));
    assert_eq!(
        tree,
        "run async-bot [complete]\n├─ capture:fetch [complete]\n├─ capture:fetch [complete]\n├─ capture:fetch [complete]\n├─ capture:fetch [complete]\n└─ capture:llm [complete]\n"
    );
}

#[test]
fn an_async_span_dropped_before_it_finishes_is_cancelled() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let capture = Capture::new().expect("a capture");
    runtime.block_on(capture.run_async(async {
        #[agent(name = "impatient")]
        async fn impatient() {
            let never = fetch_forever();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(1), never).await;
        }
        impatient().await;
    }));
    let run = capture.last_run_of("impatient").expect("recorded");
    assert_eq!(run.span("capture:forever").map(|span| span.status), Some(AgentStatus::Cancelled));
    assert_eq!(run.status, AgentStatus::Complete);
}

#[span(schema = "capture:forever")]
async fn fetch_forever() {
    std::future::pending::<()>().await;
}

#[span(schema = "capture:resumed", skip(gate))]
async fn resumed(gate: tokio::sync::oneshot::Receiver<()>) -> u8 {
    let _ = gate.await;
    complete("after the wait", 0.0);
    7
}

/// A span future entered on each poll: started inside its run, then resumed on a thread with
/// no context at all, it still is the current span there (its child nests under it) and
/// finishes with its result.
#[test]
fn an_async_span_resumed_outside_its_run_is_still_the_parent_of_its_children() {
    let capture = Capture::new().expect("a capture");
    let run = capture.client().create_agent_instance(CreateInstance::default()).expect("registered");
    run.start();
    let (open, gate) = tokio::sync::oneshot::channel();
    let mut call = Box::pin(resumed(gate));
    let mut task = std::task::Context::from_waker(std::task::Waker::noop());
    let first = run.context().in_scope(|| call.as_mut().poll(&mut task));
    assert!(first.is_pending(), "the span waits for its gate");
    open.send(()).expect("the span still waits");
    let output = std::thread::spawn(move || futures_executor::block_on(call)).join().expect("resumed");
    assert_eq!(output, 7);
    run.finish(FinishStatus::Complete);

    let recorded = capture.runs();
    let resumed = recorded[0].span("capture:resumed").expect("the resumed span");
    let child = recorded[0].span("capture:llm").expect("its child");
    assert_eq!((resumed.status, resumed.result.as_ref()), (AgentStatus::Complete, Some(&json!({"output": 7}))));
    assert_eq!(child.parent, Some(resumed.id));
}

#[test]
fn the_explicit_api_is_recorded_with_qualities_and_times() {
    let capture = Capture::new().expect("a capture");
    let client = capture.client();
    let run = client.create_agent_instance(CreateInstance::default()).expect("registered");
    run.start();
    let chain = run.span("capture:chain").payload(Payload::from(json!({"steps": 2}))).start();
    let child = {
        let _entered = chain.enter();
        run.span("capture:step").create().expect("created")
    };
    run.finish_span(child, FinishSpan::failed().result(Payload::from(json!({"why": "timeout"})))).expect("finished");
    let mut deferred = run.span("capture:late").parent(chain.id()).deferred();
    deferred.set_payload(Payload::from(json!({"set": "before start"})));
    deferred.cancel();
    chain.complete();
    run.record_quality("helpfulness", Payload::from(json!({"score": 4})));
    run.finish(FinishStatus::Cancelled);

    let recorded = capture.runs();
    let recorded = &recorded[0];
    assert_eq!(recorded.id, run.id());
    assert_eq!(recorded.status, AgentStatus::Cancelled);
    assert_eq!(recorded.quality, vec![("helpfulness".to_owned(), Some(json!({"score": 4})))]);
    let step = recorded.span_by_id(child).expect("the step");
    assert_eq!((step.status, step.result_at("/why")), (AgentStatus::Failed, Some(&json!("timeout"))));
    let late = recorded.span("capture:late").expect("the deferred span");
    assert_eq!((late.status, &late.payload), (AgentStatus::Cancelled, &json!({"set": "before start"})));
    insta::assert_snapshot!("explicit_api", recorded.tree());
    // Everything was "delivered" to the capture: a clean close.
    assert_eq!(client.stats().sent, client.stats().enqueued);
    let report = client.close_blocking().expect("nothing lost");
    assert!(report.is_clean(), "{report}");
}

#[test]
fn captures_in_parallel_do_not_mix_and_a_span_outside_any_run_is_unattached() {
    let threads: Vec<_> = (0..4)
        .map(|n| {
            std::thread::spawn(move || {
                let capture = Capture::new().expect("a capture");
                for _ in 0..=n {
                    capture.run(|| bot("parallel")).expect("answered");
                }
                // Outside `run`: nothing records, the capture is not current.
                let _ = bot("outside");
                capture.run(|| complete("no run", 0.0));
                (n, capture.runs().len(), capture.client().stats().unattached)
            })
        })
        .collect();
    for thread in threads {
        let (n, runs, unattached) = thread.join().expect("no panic");
        assert_eq!((runs, unattached), (n + 1, 1), "capture {n}");
    }
}

#[test]
fn clear_forgets_and_stable_trees_hide_ids_and_times() {
    let capture = Capture::new().expect("a capture");
    capture.run(|| bot("first")).expect("answered");
    let first = capture.runs()[0].tree();
    capture.clear();
    assert!(capture.runs().is_empty());
    capture.run(|| bot("first")).expect("answered");
    let again = capture.runs();
    assert_eq!(again[0].tree(), first, "the same code renders the same tree");
    let span = &again[0].spans[0];
    let ids = json!({"span": span.id.to_string(), "at": "12:00", "nested": [{"at": "12:01"}]});
    let mut run = again[0].clone();
    run.spans.truncate(1);
    run.spans[0].payload = ids;
    assert_eq!(
        run.tree_with(&TreeOptions::default().normalize("span").normalize("at").results(false)),
        "run capture-bot [complete]\n└─ capture:plan [complete] {\"at\":\"<at>\",\"nested\":[{\"at\":\"<at>\"}],\"span\":\"<span>\"}\n"
    );
}

/// Records its instance id into `id`; one tool call fails, the plan succeeds.
#[agent(name = "fidelity")]
fn fidelity(question: &str, id: &Cell<Option<InstanceId>>) -> Result<String, String> {
    id.set(Some(current_instance_id()));
    let _ = tool("");
    plan(question)
}

#[test]
fn a_capture_records_what_the_client_sends_to_the_server() {
    let _ = common::harness();
    let id = Cell::new(None);
    fidelity("same", &id).expect("answered");
    let id = id.get().expect("an instance");
    let server_spans = finished_spans_of(id, 4);
    let server_instance = instance(id);

    let capture = Capture::new().expect("a capture");
    capture.run(|| fidelity("same", &Cell::new(None))).expect("answered");
    let captured: CapturedRun = capture.last_run_of("fidelity").expect("recorded");

    assert_eq!(server_instance["status"], captured.status.as_str());
    let position = |spans: &[Value], id: &Value| spans.iter().position(|span| &span["id"] == id);
    let from_server: Vec<(Value, Value, Value, Value, Option<usize>)> = server_spans
        .iter()
        .map(|span| {
            let parent = position(&server_spans, &span["parent_span_id"]);
            (
                span["schema_name"].clone(),
                span["status"].clone(),
                span["payload"].clone(),
                span["result_payload"].clone(),
                parent,
            )
        })
        .collect();
    let captured_position = |id: Option<SpanId>| id.and_then(|id| captured.spans.iter().position(|span| span.id == id));
    let from_capture: Vec<(Value, Value, Value, Value, Option<usize>)> = captured
        .spans
        .iter()
        .map(|span| {
            (
                json!(span.schema),
                json!(span.status.as_str()),
                span.payload.clone(),
                span.result.clone().unwrap_or(Value::Null),
                captured_position(span.parent),
            )
        })
        .collect();
    assert_eq!(from_capture, from_server);
}

/// An async agent for the sampling tests: a span on this task and one on a spawned task.
#[agent(name = "sampled-bot")]
async fn sampled_bot(question: String) -> Result<String, String> {
    let asked = question.clone();
    let spawned = prefactor::spawn(async move { tool(&asked) }).await.map_err(|error| error.to_string())??;
    Ok(complete(&format!("{question}: {}", spawned.join(", ")), 0.1))
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A capture with sampling records what a sampling client would send: an unsampled run is
/// absent (its spans, on any task, neither serialized nor queued), a failed one kept whole by
/// the tail rule; all counted in the stats.
#[test]
fn a_capture_with_sampling_records_only_the_runs_a_sampling_client_would_send() {
    let no_tail =
        Capture::with_config(prefactor::Config::builder().sample_rate(0.0).keep_failed_runs(false)).expect("a capture");
    let answers = block_on(async {
        (no_tail.run_async(sampled_bot("ok".into())).await, no_tail.run_async(sampled_bot(String::new())).await)
    });
    assert_eq!(
        answers,
        (Ok("echo: ok: hit for ok at 0.1".into()), Err("empty query".into())),
        "the code runs the same"
    );
    assert!(no_tail.runs().is_empty(), "nothing of an unsampled run is recorded");
    let stats = no_tail.client().stats();
    assert_eq!((stats.sampled_out_runs, stats.sampled_out_spans, stats.enqueued), (2, 3, 0));

    let tail = Capture::with_config(prefactor::Config::builder().sample_rate(0.0)).expect("a capture");
    let answers = block_on(async {
        (tail.run_async(sampled_bot("ok".into())).await, tail.run_async(sampled_bot(String::new())).await)
    });
    assert!(answers.0.is_ok() && answers.1.is_err());
    let runs = tail.runs();
    assert_eq!(runs.len(), 1, "only the failed run: {runs:#?}");
    assert_eq!(runs[0].status, AgentStatus::Failed);
    assert_eq!(runs[0].span("capture:tool").map(|span| span.status), Some(AgentStatus::Failed));
    let stats = tail.client().stats();
    assert_eq!((stats.kept_by_tail_rule, stats.sampled_out_runs, stats.sampled_out_spans), (1, 1, 2));
    assert!(tail.client().close_blocking().expect("sampling is not loss").is_clean());
}
