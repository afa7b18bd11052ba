//! Spans: client ids, explicit start/complete/fail/cancel, drop and panic, merging.

use prefactor_runtime::{CreateInstance, FinishSpan, FinishStatus, Payload};
use serde_json::json;

use crate::common::{client, flush, requests, server, span_by_id, spans_of};

#[tokio::test]
async fn span_ids_are_client_pfids_and_reach_the_server_unchanged() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    let span = instance.span("agent:llm").payload(Payload::from(json!({"model": "m1"}))).start();
    let id = span.id();
    assert_eq!(id.pfid().partition(), client.partition());
    span.finish(FinishSpan::complete().result(Payload::from(json!({"tokens": 7}))));
    flush(&client).await;

    let spans = spans_of(&server, instance.id()).await;
    let stored = span_by_id(&spans, &id.to_string());
    assert_eq!(stored["agent_instance_id"], instance.id().to_string());
    assert_eq!(stored["schema_name"], "agent:llm");
    assert_eq!(stored["status"], "complete");
    assert_eq!(stored["payload"], json!({"model": "m1"}));
    assert_eq!(stored["result_payload"], json!({"tokens": 7}));
    assert!(stored["started_at"].as_str().unwrap() <= stored["finished_at"].as_str().unwrap());
}

#[tokio::test]
async fn complete_fail_cancel_and_drop_end_with_their_status() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    let completed = instance.span("t:a").start();
    let failed = instance.span("t:b").start();
    let cancelled = instance.span("t:c").start();
    let dropped = instance.span("t:d").start();
    let mut dropped_failed = instance.span("t:e").start();
    dropped_failed.set_drop_status(FinishStatus::Failed);
    let ids = [completed.id(), failed.id(), cancelled.id(), dropped.id(), dropped_failed.id()];
    completed.complete();
    failed.finish(FinishSpan::failed().result(Payload::from(json!({"error": "boom"}))));
    cancelled.cancel();
    drop(dropped);
    drop(dropped_failed);
    flush(&client).await;

    let spans = spans_of(&server, instance.id()).await;
    let status = |i: usize| span_by_id(&spans, &ids[i].to_string())["status"].as_str().unwrap().to_owned();
    assert_eq!(status(0), "complete");
    assert_eq!(status(1), "failed");
    assert_eq!(status(2), "cancelled");
    assert_eq!(status(3), "complete");
    assert_eq!(status(4), "failed");
    assert_eq!(span_by_id(&spans, &ids[1].to_string())["result_payload"], json!({"error": "boom"}));
    assert_eq!(client.stats().failed, 0);
}

#[tokio::test]
async fn a_guard_dropped_during_a_panic_finishes_as_failed() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    let handle = instance.clone();
    let id = std::thread::spawn(move || {
        let (tx, rx) = std::sync::mpsc::channel();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let span = handle.span("t:panics").start();
            tx.send(span.id()).unwrap();
            panic!("agent code panicked");
        }));
        assert!(outcome.is_err());
        rx.recv().unwrap()
    })
    .join()
    .unwrap();
    flush(&client).await;
    let spans = spans_of(&server, instance.id()).await;
    assert_eq!(span_by_id(&spans, &id.to_string())["status"], "failed");
}

#[tokio::test]
async fn set_result_merges_into_the_final_result() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    let mut span = instance.span("t:r").start();
    let id = span.id();
    span.set_result(Payload::from(json!({"a": 1, "b": 1})));
    span.set_result(Payload::from(json!({"b": 2})));
    // The result given at the end is merged last: its keys win.
    span.finish(FinishSpan::complete().result(Payload::from(json!({"b": 3, "c": 3}))));
    flush(&client).await;
    let spans = spans_of(&server, instance.id()).await;
    assert_eq!(span_by_id(&spans, &id.to_string())["result_payload"], json!({"a": 1, "b": 3, "c": 3}));
}

#[tokio::test]
async fn create_and_finish_waiting_together_go_out_as_one_terminal_create() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    // Many short spans queued faster than the worker sends: most creates still wait when their
    // finish arrives, so they merge.
    let mut ids = Vec::new();
    for i in 0..300 {
        let span = instance.span("t:short").payload(Payload::from(json!({"i": i}))).start();
        ids.push(span.id());
    }
    flush(&client).await;

    let creates = requests(&server, "POST", "/api/v1/agent_spans");
    let creates: Vec<_> = creates.iter().filter(|r| r.path == "/api/v1/agent_spans").collect();
    let finishes = requests(&server, "POST", "/api/v1/agent_spans/").len();
    assert_eq!(creates.len(), 300, "one create per span");
    let merged = creates.iter().filter(|r| r.body.as_ref().unwrap()["details"]["status"] == "complete").count();
    assert!(merged > 0, "at least some creates carried the finish");
    assert_eq!(merged + finishes, 300, "every span finished exactly once");
    for merged_create in creates.iter().filter(|r| r.body.as_ref().unwrap()["details"]["status"] == "complete") {
        assert!(merged_create.body.as_ref().unwrap()["details"]["finished_at"].is_string());
    }
    let stats = client.stats();
    assert_eq!(stats.sent, 600 + 1, "creates and finishes count as operations (+ register)");
    let spans = spans_of(&server, instance.id()).await;
    assert_eq!(spans.len(), 300);
    assert!(spans.iter().all(|s| s["status"] == "complete"));
}

#[tokio::test]
async fn deferred_spans_start_explicitly_or_are_sent_once_at_the_end() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();

    let mut explicit = instance.span("t:explicit").deferred();
    explicit.set_payload(Payload::from(json!({"before": true})));
    explicit.start();
    explicit.set_payload(Payload::from(json!({"ignored": true})));
    let explicit_id = explicit.id();

    let mut never_started = instance.span("t:lazy").deferred();
    never_started.set_payload(Payload::from(json!({"lazy": 1})));
    let lazy_id = never_started.id();
    drop(never_started);
    explicit.complete();
    flush(&client).await;

    let spans = spans_of(&server, instance.id()).await;
    assert_eq!(span_by_id(&spans, &explicit_id.to_string())["payload"], json!({"before": true}));
    let lazy = span_by_id(&spans, &lazy_id.to_string());
    assert_eq!(lazy["payload"], json!({"lazy": 1}));
    assert_eq!(lazy["status"], "complete");
    let lazy_requests = requests(&server, "POST", "/api/v1/agent_spans")
        .into_iter()
        .filter(|r| {
            r.body.as_ref().is_some_and(|b| b["details"]["id"] == lazy_id.to_string())
                || r.path.contains(&lazy_id.to_string())
        })
        .count();
    assert_eq!(lazy_requests, 1, "an unstarted span is sent as one create-as-terminal request");
}

#[tokio::test]
async fn create_span_and_finish_span_by_id() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    let parent = instance.span("t:parent").payload(Payload::from(json!({"p": 1}))).create().unwrap();
    let child = instance.span("t:child").parent(parent).create().unwrap();
    instance.finish_span(child, FinishSpan::failed().result(Payload::from(json!({"why": "x"})))).unwrap();
    instance.finish_span(parent, FinishSpan::complete()).unwrap();
    flush(&client).await;
    let spans = spans_of(&server, instance.id()).await;
    let stored_child = span_by_id(&spans, &child.to_string());
    assert_eq!(stored_child["parent_span_id"], parent.to_string());
    assert_eq!(stored_child["status"], "failed");
    assert_eq!(span_by_id(&spans, &parent.to_string())["status"], "complete");
}

#[tokio::test]
async fn a_noop_guard_sends_nothing() {
    let server = server();
    let client = client(&server).await;
    let guard = prefactor_runtime::SpanGuard::noop();
    guard.complete();
    flush(&client).await;
    assert_eq!(client.stats().enqueued, 0);
    assert!(requests(&server, "POST", "/api/v1/agent_spans").is_empty());
}

/// Guards keep their client alive themselves: one that ends on another thread, after the
/// opening thread exited, still delivers its finish.
#[tokio::test]
async fn a_guard_ends_on_another_thread_after_the_thread_that_opened_it_exited() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    let handle = instance.clone();
    let (kept, ended_there) = std::thread::spawn(move || {
        let ended_there = handle.span("t:home").start();
        let id = ended_there.id();
        ended_there.complete();
        (handle.span("t:moved").start(), id)
    })
    .join()
    .unwrap();
    let moved = kept.id();
    kept.finish(FinishSpan::failed().result(Payload::from(json!({"ended": "elsewhere"}))));
    flush(&client).await;

    let spans = spans_of(&server, instance.id()).await;
    assert_eq!(span_by_id(&spans, &ended_there.to_string())["status"], "complete");
    let stored = span_by_id(&spans, &moved.to_string());
    assert_eq!(stored["status"], "failed");
    assert_eq!(stored["result_payload"], json!({"ended": "elsewhere"}));
    assert_eq!(client.stats().dropped, 0);
}

#[tokio::test]
async fn caller_given_start_and_end_times_are_kept() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    let began = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_785_826_541_123_456);
    let ended = began + std::time::Duration::from_millis(250);
    // A guarded span and a deferred one (sent at its end as one create-as-terminal request).
    let guarded = instance.span("t:guarded").started_at(began).start();
    let guarded_id = guarded.id();
    guarded.finish(FinishSpan::complete().ended_at(ended));
    let deferred = instance.span("t:deferred").started_at(began).deferred();
    let deferred_id = deferred.id();
    deferred.finish(FinishSpan::cancelled().ended_at(ended));
    flush(&client).await;
    let spans = spans_of(&server, instance.id()).await;
    for id in [guarded_id, deferred_id] {
        let span = span_by_id(&spans, &id.to_string());
        assert_eq!(span["started_at"], "2026-08-04T06:55:41.123456Z", "{span}");
        assert_eq!(span["finished_at"], "2026-08-04T06:55:41.373456Z", "{span}");
    }
    assert_eq!(span_by_id(&spans, &deferred_id.to_string())["status"], "cancelled");
}
