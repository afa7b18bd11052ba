//! Bulk delivery (`POST /api/v1/bulk`): whole runs in few requests, create+finish merged, item
//! errors failing only their operation, whole-request retries with the same keys, the auth
//! latch, and the fallback to one request per operation on a server without bulk.

use std::time::Duration;

use prefactor_runtime::{
    Client, CreateInstance, Delivery, Error, FinishSpan, FinishStatus, Payload, SchemaRegistry, SpanType,
};
use prefactor_server::{FaultRule, LocalServer, RecordedRequest};
use serde_json::{Value, json};

use crate::common::{config_for, flush, instance_details, requests, server, span_by_id, spans_of};

/// A bulk client; `linger` long enough that a test's spans end while their create waits.
async fn bulk_client(server: &LocalServer, linger: Duration) -> Client {
    let config = config_for(server, Delivery::Bulk).linger(linger).build().expect("valid config");
    let client = Client::new(config).expect("client");
    client.initialize().await.expect("initialize");
    client
}

fn bulk_requests(server: &LocalServer) -> Vec<RecordedRequest> {
    requests(server, "POST", "/api/v1/bulk")
}

/// Every item of the recorded bulk requests, in order.
fn items(requests: &[RecordedRequest]) -> Vec<Value> {
    requests.iter().flat_map(|r| r.body.as_ref().unwrap()["items"].as_array().cloned().unwrap_or_default()).collect()
}

/// POSTs other than to `/bulk` (single requests).
fn single_posts(server: &LocalServer) -> usize {
    requests(server, "POST", "/api/v1/").iter().filter(|r| r.path != "/api/v1/bulk").count()
}

#[tokio::test]
async fn a_whole_run_goes_out_in_one_bulk_request_with_parents_right() {
    let server = server();
    let client = bulk_client(&server, Duration::from_millis(500)).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    instance.start();
    let parent = instance.span("t:parent").payload(Payload::from(json!({"q": "plan"}))).start();
    let children: Vec<_> = (0..3)
        .map(|i| {
            let child = instance.span("t:child").parent(parent.id()).payload(Payload::from(json!({"i": i}))).start();
            let id = child.id();
            child.finish(FinishSpan::complete().result(Payload::from(json!({"done": i}))));
            id
        })
        .collect();
    let parent_id = parent.id();
    parent.complete();
    instance.finish(FinishStatus::Complete);
    flush(&client).await;

    let bulk = bulk_requests(&server);
    // Register and start do not linger: they may leave before the spans are queued.
    assert!(bulk.len() <= 2, "4 spans and the finish in one request: {} requests", bulk.len());
    assert!(items(&bulk[bulk.len() - 1..]).len() >= 5);
    assert_eq!(items(&bulk).len(), 7);
    assert_eq!(single_posts(&server), 0);
    let sent = items(&bulk);
    let types: Vec<_> = sent.iter().map(|item| item["_type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(types[..2], ["agent_instances/register", "agent_instances/start"]);
    assert_eq!(types.iter().filter(|t| *t == "agent_spans/create").count(), 4);
    assert_eq!(types.iter().filter(|t| *t == "agent_spans/finish").count(), 0, "every finish merged");
    assert_eq!(types.last().map(String::as_str), Some("agent_instances/finish"));
    let position = |id: String| sent.iter().position(|item| item["details"]["id"] == id.as_str()).unwrap();
    for child in &children {
        assert!(position(parent_id.to_string()) < position(child.to_string()), "parent before child");
    }

    let spans = spans_of(&server, instance.id()).await;
    assert_eq!(spans.len(), 4);
    assert!(spans.iter().all(|s| s["status"] == "complete"));
    for child in &children {
        assert_eq!(span_by_id(&spans, &child.to_string())["parent_span_id"], parent_id.to_string());
    }
    assert_eq!(instance_details(&server, instance.id()).await["status"], "complete");
    let report = client.close().await.expect("nothing lost");
    assert_eq!(report.delivered, 1 + 1 + 8 + 1);
}

#[tokio::test]
async fn a_span_still_open_after_the_linger_is_created_active_and_finished_later() {
    let server = server();
    let client = bulk_client(&server, Duration::from_millis(20)).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    let quick = instance.span("t:quick").start();
    let quick_id = quick.id();
    quick.complete();
    let slow = instance.span("t:slow").start();
    let slow_id = slow.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans = spans_of(&server, instance.id()).await;
    assert_eq!(span_by_id(&spans, &slow_id.to_string())["status"], "active", "visible while it runs");
    slow.complete();
    flush(&client).await;

    let sent = items(&bulk_requests(&server));
    let creates: Vec<_> = sent.iter().filter(|i| i["_type"] == "agent_spans/create").collect();
    let finishes: Vec<_> = sent.iter().filter(|i| i["_type"] == "agent_spans/finish").collect();
    let created = |id: String| creates.iter().find(|c| c["details"]["id"] == id.as_str()).unwrap()["details"].clone();
    assert_eq!(created(quick_id.to_string())["status"], "complete", "create-as-terminal");
    assert!(created(quick_id.to_string())["finished_at"].is_string());
    assert_eq!(created(slow_id.to_string())["status"], "active");
    assert_eq!(finishes.len(), 1);
    assert_eq!(finishes[0]["agent_span_id"], slow_id.to_string());
    let spans = spans_of(&server, instance.id()).await;
    assert!(spans.iter().all(|s| s["status"] == "complete"));
}

#[tokio::test]
async fn a_bad_item_fails_only_its_operation_and_the_items_after_it_are_sent_again() {
    let server = server();
    let mut registry = SchemaRegistry::new();
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
    registry.register_type(SpanType::new("t:strict", schema)).unwrap();
    let config = config_for(&server, Delivery::Bulk).linger(Duration::from_millis(500)).schema_registry(registry);
    let client = Client::new(config.build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    flush(&client).await;
    server.clear_requests();
    let good_before = instance.span("t:strict").payload(Payload::from(json!({"n": 1}))).start().id();
    let bad = instance.span("t:strict").payload(Payload::from(json!({"n": "not a number"}))).start().id();
    let good_after: Vec<_> =
        (2..5).map(|n| instance.span("t:strict").payload(Payload::from(json!({"n": n}))).start().id()).collect();
    instance.finish(FinishStatus::Complete);
    flush(&client).await;

    let bulk = bulk_requests(&server);
    assert_eq!(bulk.len(), 2, "the batch, then what the server did not run after the bad item");
    let first: Vec<_> = items(&bulk[..1]);
    let again: Vec<_> = items(&bulk[1..]);
    assert_eq!(first.len(), 5 + 1, "5 spans, instance finish");
    assert_eq!(again.len(), 3 + 1, "the 3 later spans and the instance finish, not the bad one");
    assert!(again.iter().all(|item| item["details"]["id"] != bad.to_string()));

    let spans = spans_of(&server, instance.id()).await;
    assert_eq!(spans.len(), 4);
    for id in good_after.iter().chain([&good_before]) {
        assert_eq!(span_by_id(&spans, &id.to_string())["status"], "complete");
    }
    assert_eq!(instance_details(&server, instance.id()).await["status"], "complete");
    let stats = client.stats();
    assert_eq!(stats.retried, 0, "sending skipped items again is not a retry");
    match client.close().await {
        Err(Error::TelemetryLost(report)) => {
            assert_eq!(report.failed, 2, "the bad create and its merged finish");
            match report.first_error {
                Some(Error::Http { status: Some(422), operation: "span create", message, .. }) => {
                    assert!(message.contains("payload"), "{message}")
                }
                other => panic!("expected the item's 422, got {other:?}"),
            }
        }
        other => panic!("expected TelemetryLost, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failing_bulk_request_is_retried_whole_with_the_same_keys() {
    let server = server();
    let client = bulk_client(&server, Duration::from_millis(500)).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    flush(&client).await;
    server.clear_requests();
    server.add_fault(FaultRule::status("/api/v1/bulk", 503).times(2));
    let ids: Vec<_> =
        (0..20).map(|i| instance.span("t:x").payload(Payload::from(json!({"i": i}))).start().id()).collect();
    instance.finish(FinishStatus::Complete);
    flush(&client).await;

    let bulk = bulk_requests(&server);
    assert_eq!(bulk.iter().map(|r| r.status).collect::<Vec<_>>(), [503, 503, 200]);
    let keys = |r: &RecordedRequest| -> Vec<Value> {
        items(std::slice::from_ref(r)).iter().map(|item| item["idempotency_key"].clone()).collect()
    };
    assert_eq!(keys(&bulk[0]).len(), 21, "20 spans and the instance finish");
    assert!(bulk.iter().all(|r| keys(r) == keys(&bulk[0])), "each attempt repeats the items and keys");
    let stats = client.stats();
    assert_eq!((stats.retried, stats.failed), (2 * 21, 0));
    let spans = spans_of(&server, instance.id()).await;
    assert_eq!(spans.len(), 20);
    for id in ids {
        span_by_id(&spans, &id.to_string());
    }
}

#[tokio::test]
async fn a_timed_out_bulk_request_is_sent_again_with_the_same_keys_and_duplicates_nothing() {
    let server = server();
    let config = config_for(&server, Delivery::Bulk)
        .linger(Duration::from_millis(200))
        .request_timeout(Duration::from_millis(300));
    let client = Client::new(config.build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    flush(&client).await;
    server.clear_requests();
    // The server holds the next request for a second: the client gives up after 300 ms.
    server.add_fault(FaultRule::delay("/api/v1/bulk", 1_000).times(1));
    for i in 0..10 {
        drop(instance.span("t:x").payload(Payload::from(json!({"i": i}))).start());
    }
    flush(&client).await;
    let answered: Vec<_> = bulk_requests(&server).into_iter().filter(|r| r.status == 200).collect();
    assert!(!answered.is_empty());
    let keys = |r: &RecordedRequest| -> Vec<Value> {
        items(std::slice::from_ref(r)).iter().map(|item| item["idempotency_key"].clone()).collect()
    };
    assert!(answered.iter().all(|r| keys(r) == keys(&answered[0])), "every attempt carries the same items");
    assert_eq!(spans_of(&server, instance.id()).await.len(), 10, "no span twice");
    let stats = client.stats();
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.retried, 10, "the timed-out request's 10 items, once");
}

#[tokio::test]
async fn a_401_on_the_bulk_request_latches_the_client() {
    let server = server();
    let client = bulk_client(&server, Duration::from_millis(2)).await;
    server.add_fault(FaultRule::status("/api/v1/bulk", 401));
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    drop(instance.span("t:x").start());
    flush(&client).await;
    server.clear_faults();
    for _ in 0..5 {
        drop(instance.span("t:after").start());
    }
    flush(&client).await;
    assert_eq!(bulk_requests(&server).len(), 1, "nothing is sent after a 401");
    assert_eq!(single_posts(&server), 0);
    let stats = client.stats();
    // What the rejected request carried failed (the register, and the first span's create with
    // its merged finish when it was queued in time); everything else was dropped unsent.
    let carried = items(&bulk_requests(&server)).len();
    assert_eq!(stats.failed, if carried == 1 { 1 } else { 3 }, "{stats:?}");
    assert_eq!(stats.failed + stats.dropped, 1 + 2 + 10, "register, 6 spans × create and finish");
    match client.close().await {
        Err(Error::TelemetryLost(report)) => {
            assert!(matches!(report.auth_failure, Some(Error::Auth { status: 401, .. })));
        }
        other => panic!("expected TelemetryLost, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_without_bulk_gets_one_request_per_operation_and_loses_nothing() {
    for status in [404, 405] {
        let server = server();
        // What a server without the endpoint answers, made by the server's fault injection.
        server.add_fault(FaultRule::status("/api/v1/bulk", status));
        let client = bulk_client(&server, Duration::from_millis(2)).await;
        let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
        instance.start();
        let parent = instance.span("t:parent").start();
        let child = instance.span("t:child").parent(parent.id()).start();
        let (parent_id, child_id) = (parent.id(), child.id());
        child.complete();
        parent.complete();
        flush(&client).await;
        for _ in 0..5 {
            drop(instance.span("t:later").start());
        }
        instance.finish(FinishStatus::Complete);
        flush(&client).await;

        assert_eq!(bulk_requests(&server).len(), 1, "bulk is tried once ({status})");
        // Register, start, 7 span creates, the instance finish (+ unmerged span finishes).
        assert!(single_posts(&server) >= 10);
        let spans = spans_of(&server, instance.id()).await;
        assert_eq!(spans.len(), 7);
        assert!(spans.iter().all(|s| s["status"] == "complete"));
        assert_eq!(span_by_id(&spans, &child_id.to_string())["parent_span_id"], parent_id.to_string());
        assert_eq!(instance_details(&server, instance.id()).await["status"], "complete");
        let report = client.close().await.expect("nothing lost");
        assert_eq!(report.delivered, 1 + 1 + 14 + 1);
    }
}

/// One run with a parent, a child and five later spans, then its finish; the spans' ids.
async fn run_with_children(client: &Client) -> (prefactor_runtime::InstanceId, String, String) {
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    instance.start();
    let parent = instance.span("t:parent").start();
    let child = instance.span("t:child").parent(parent.id()).start();
    let (parent_id, child_id) = (parent.id().to_string(), child.id().to_string());
    child.complete();
    parent.complete();
    for _ in 0..5 {
        drop(instance.span("t:later").start());
    }
    instance.finish(FinishStatus::Complete);
    flush(client).await;
    (instance.id(), parent_id, child_id)
}

async fn assert_run_stored(server: &LocalServer, run: &(prefactor_runtime::InstanceId, String, String)) {
    let (instance, parent_id, child_id) = run;
    let spans = spans_of(server, *instance).await;
    assert_eq!(spans.len(), 7);
    assert!(spans.iter().all(|s| s["status"] == "complete"));
    assert_eq!(span_by_id(&spans, child_id)["parent_span_id"], parent_id.as_str());
    assert_eq!(instance_details(server, *instance).await["status"], "complete");
}

#[tokio::test]
async fn a_bulk_request_rejected_as_a_whole_is_sent_again_one_request_per_item() {
    for status in [400, 413, 415, 422] {
        let server = server();
        let client = bulk_client(&server, Duration::from_millis(2)).await;
        // What an API whose bulk form differs would answer, once.
        server.add_fault(FaultRule::status("/api/v1/bulk", status).times(1));
        let first = run_with_children(&client).await;
        assert_run_stored(&server, &first).await;
        let rejected: Vec<_> = bulk_requests(&server).into_iter().filter(|r| r.status == status).collect();
        let rejected_items = items(&rejected).len();
        assert!(rejected_items >= 1, "one bulk request was rejected ({status})");
        assert!(single_posts(&server) >= rejected_items, "the rejected items went one request each ({status})");
        // Once they are settled, bulk delivery comes back.
        server.clear_requests();
        let second = run_with_children(&client).await;
        assert_run_stored(&server, &second).await;
        assert_eq!(single_posts(&server), 0, "bulk again after one rejection ({status})");
        let report = client.close().await.expect("nothing lost");
        assert_eq!((report.delivered, report.failed), (2 * (1 + 1 + 14 + 1), 0), "{report:?}");
    }
}

#[tokio::test]
async fn bulk_rejected_again_and_again_switches_the_client_to_one_request_per_operation() {
    let server = server();
    server.add_fault(FaultRule::status("/api/v1/bulk", 422));
    let client = bulk_client(&server, Duration::from_millis(2)).await;
    let runs = [run_with_children(&client).await, run_with_children(&client).await, run_with_children(&client).await];
    for run in &runs {
        assert_run_stored(&server, run).await;
    }
    assert_eq!(bulk_requests(&server).len(), 3, "three rejections, then no more bulk");
    let report = client.close().await.expect("nothing lost");
    assert_eq!(report.failed, 0, "{report:?}");
}

#[tokio::test]
async fn items_a_bulk_answer_does_not_settle_go_alone_and_are_not_lost() {
    let server = server();
    let client = bulk_client(&server, Duration::from_millis(2)).await;
    // A 2xx with no outputs at all, then one that is not a bulk answer: neither settles any
    // item, and the items may have run, so they go again (with their keys) on their own.
    server.add_fault(
        FaultRule::status("/api/v1/bulk", 200)
            .body(r#"{"status":"success","outputs":{}}"#, "application/json")
            .times(2),
    );
    server.add_fault(FaultRule::status("/api/v1/bulk", 200).body("<html>ok</html>", "text/html").times(1));
    let run = run_with_children(&client).await;
    assert_run_stored(&server, &run).await;
    let report = client.close().await.expect("nothing lost");
    assert_eq!((report.failed, report.lost), (0, 0), "{report:?}");
}

#[tokio::test]
async fn many_instances_share_bulk_requests_and_flush_is_exact() {
    let server = server();
    let config = config_for(&server, Delivery::Bulk).bulk_max_items(50).concurrency(4);
    let client = Client::new(config.build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let mut instances = Vec::new();
    for _ in 0..20 {
        let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
        instance.start();
        for i in 0..10 {
            drop(instance.span("t:x").payload(Payload::from(json!({"i": i}))).start());
        }
        instance.finish(FinishStatus::Complete);
        instances.push(instance);
    }
    flush(&client).await;
    // Flush returned: everything queued before it is stored.
    for instance in &instances {
        assert_eq!(spans_of(&server, instance.id()).await.len(), 10);
        assert_eq!(instance_details(&server, instance.id()).await["status"], "complete");
    }
    let bulk = bulk_requests(&server);
    assert!(bulk.iter().all(|r| items(std::slice::from_ref(r)).len() <= 50), "bulk_max_items is kept");
    assert!(bulk.len() < 20 * 13 / 5, "far fewer requests than operations: {}", bulk.len());
    assert_eq!(single_posts(&server), 0);
    let report = client.close().await.expect("nothing lost");
    assert_eq!(report.delivered, 20 * (3 + 20));
}

#[tokio::test]
async fn the_control_signal_of_a_bulk_item_terminates_the_instance() {
    let server = server();
    let client = bulk_client(&server, Duration::from_millis(2)).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    flush(&client).await;
    server.terminate_instance(&instance.id().to_string(), Some("policy breach")).unwrap();
    drop(instance.span("t:x").start());
    flush(&client).await;
    assert!(instance.is_terminated());
    assert_eq!(instance.termination_reason().as_deref(), Some("policy breach"));
    instance.finish(FinishStatus::Complete);
    flush(&client).await;
    assert_eq!(client.stats().failed, 0, "finishing a terminated instance (409) is done");
}

#[tokio::test]
async fn bulk_requests_get_minimal_outputs_and_still_see_the_terminate_control() {
    let server = server();
    let client = bulk_client(&server, Duration::from_millis(2)).await;
    // Not started, so not polled: only a bulk output can tell it is terminated.
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    flush(&client).await;
    server.terminate_instance(&instance.id().to_string(), Some("minimal stop")).unwrap();
    drop(instance.span("t:x").start());
    flush(&client).await;
    assert!(instance.is_terminated());
    assert_eq!(instance.termination_reason().as_deref(), Some("minimal stop"));

    let bulk = bulk_requests(&server);
    assert!(bulk.len() >= 2, "the register, then the span: {} requests", bulk.len());
    for request in &bulk {
        assert_eq!(request.header("prefer"), Some("return=minimal"));
        assert_eq!(request.status, 200);
        assert_eq!(request.response_header("preference-applied"), Some("return=minimal"), "minimal outputs");
    }
    assert_eq!(client.stats().failed, 0);
}
