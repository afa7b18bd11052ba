//! Retries (same key, Retry-After), permanent errors, the auth latch, 409 as done.

use std::time::{Duration, Instant};

use prefactor_runtime::{
    Client, CreateInstance, Delivery, Error, FinishSpan, FinishStatus, Payload, SchemaRegistry, SpanType,
};
use prefactor_server::FaultRule;
use serde_json::json;

use crate::common::{
    BOTH_MODES, client, config, config_for, flush, instance_details, requests, server, span_by_id, spans_of,
};

#[tokio::test]
async fn transient_errors_are_retried_with_the_same_idempotency_key() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    flush(&client).await;
    server.add_fault(FaultRule::status("/api/v1/agent_spans", 503).method("POST").times(2));
    let span = instance.span("t:x").start();
    let id = span.id();
    span.complete();
    flush(&client).await;

    let attempts: Vec<_> = requests(&server, "POST", "/api/v1/agent_spans")
        .into_iter()
        .filter(|r| r.path == "/api/v1/agent_spans")
        .collect();
    assert_eq!(attempts.iter().map(|r| r.status).collect::<Vec<_>>(), vec![503, 503, 200]);
    let keys: Vec<_> = attempts.iter().map(|r| r.body.as_ref().unwrap()["idempotency_key"].clone()).collect();
    assert!(keys[0].is_string());
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    assert_eq!(client.stats().retried, 2);
    assert_eq!(client.stats().failed, 0);
    assert_eq!(span_by_id(&spans_of(&server, instance.id()).await, &id.to_string())["status"], "complete");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = server();
    // Retry-After is capped at max_retry_delay, so allow more than the server asks for.
    let client = Client::new(config(&server).max_retry_delay(Duration::from_secs(5)).build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    flush(&client).await;
    server.add_fault(FaultRule::status("/api/v1/agent_spans", 429).method("POST").retry_after(1).times(1));
    let started = Instant::now();
    drop(instance.span("t:x").start());
    flush(&client).await;
    // The configured backoff is 10 ms; only Retry-After explains a second of waiting.
    assert!(started.elapsed() >= Duration::from_millis(950), "waited {:?}", started.elapsed());
    assert_eq!(client.stats().retried, 1);
}

#[tokio::test]
async fn transient_failures_never_fail_an_operation() {
    for delivery in BOTH_MODES {
        let server = server();
        // No retry count: delivery retries until it succeeds.
        let client = Client::new(config_for(&server, delivery).build().unwrap()).unwrap();
        client.initialize().await.unwrap();
        let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
        flush(&client).await;
        server.clear_requests();
        let path = if delivery == Delivery::Bulk { "/api/v1/bulk" } else { "/api/v1/agent_spans" };
        server.add_fault(FaultRule::status(path, 500).method("POST").body("<html>oops</html>", "text/html").times(8));
        let kept = instance.span("t:kept").create().unwrap();
        flush(&client).await;
        let statuses: Vec<_> = requests(&server, "POST", path).iter().map(|r| r.status).collect();
        assert_eq!(statuses, [vec![500; 8], vec![200]].concat(), "8 failures, then delivered");
        assert_eq!(span_by_id(&spans_of(&server, instance.id()).await, &kept.to_string())["status"], "active");
        let stats = client.stats();
        assert_eq!((stats.failed, stats.retried, stats.sent), (0, 8, 2), "{stats:?}");
        let report = client.close().await.expect("nothing lost");
        assert_eq!((report.lost, report.unknown, report.confirmed_after_unknown), (0, 0, 0), "{report:?}");
    }
}

#[tokio::test]
async fn a_422_fails_only_that_span_with_the_servers_message() {
    for delivery in BOTH_MODES {
        let server = server();
        let mut registry = SchemaRegistry::new();
        registry
            .register_type(SpanType::new(
                "t:strict",
                json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
            ))
            .unwrap();
        let client = Client::new(config_for(&server, delivery).schema_registry(registry).build().unwrap()).unwrap();
        client.initialize().await.unwrap();
        let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
        let good_before = instance.span("t:strict").payload(Payload::from(json!({"n": 1}))).start().id();
        let bad = instance.span("t:strict").payload(Payload::from(json!({"n": "not a number"}))).start().id();
        let good_after = instance.span("t:strict").payload(Payload::from(json!({"n": 2}))).start().id();
        instance.finish(FinishStatus::Complete);
        flush(&client).await;

        let spans = spans_of(&server, instance.id()).await;
        assert_eq!(spans.len(), 2);
        span_by_id(&spans, &good_before.to_string());
        span_by_id(&spans, &good_after.to_string());
        assert!(spans.iter().all(|s| s["id"] != bad.to_string()));
        assert_eq!(instance_details(&server, instance.id()).await["status"], "complete");
        match client.close().await {
            Err(Error::TelemetryLost(report)) => {
                assert_eq!(report.failed, 2, "the bad create and its finish");
                match report.first_error {
                    Some(Error::Http { status: Some(422), message, .. }) => {
                        assert!(message.contains("payload"), "{message}")
                    }
                    other => panic!("expected the 422, got {other:?}"),
                }
            }
            other => panic!("expected TelemetryLost, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_401_latches_the_client_and_close_reports_it() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    flush(&client).await;
    server.add_fault(FaultRule::status("/api/v1/agent_spans", 401).method("POST"));
    instance.span("t:x").create().unwrap();
    flush(&client).await;
    server.clear_faults();
    for _ in 0..5 {
        drop(instance.span("t:after").start());
    }
    assert!(matches!(client.create_agent_instance(CreateInstance::default()), Err(Error::Auth { status: 401, .. })));
    flush(&client).await;
    assert_eq!(requests(&server, "POST", "/api/v1/agent_spans").len(), 1, "nothing is sent after a 401");
    let stats = client.stats();
    assert_eq!(stats.dropped, 10, "5 spans × create and finish: {stats:?}");
    match client.close().await {
        Err(Error::TelemetryLost(report)) => {
            assert!(matches!(report.auth_failure, Some(Error::Auth { status: 401, .. })));
            assert!(report.to_string().contains("sending stopped"), "{report}");
        }
        other => panic!("expected TelemetryLost, got {other:?}"),
    }
}

#[tokio::test]
async fn a_409_on_finish_counts_as_done() {
    let server = server();
    let client = client(&server).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    let span = instance.span("t:x").create().unwrap();
    flush(&client).await;
    instance.finish_span(span, FinishSpan::complete()).unwrap();
    flush(&client).await;
    // A second finish of the same span: the server answers 409 (or replays the first answer
    // for the repeated key); either way it is not a failure.
    server.add_fault(FaultRule::status(&format!("/api/v1/agent_spans/{span}/finish"), 409).times(1));
    instance.finish_span(span, FinishSpan::failed()).unwrap();
    server.terminate_instance(&instance.id().to_string(), Some("stop")).unwrap();
    instance.finish(FinishStatus::Complete); // 409: already terminated
    flush(&client).await;
    let mut statuses: Vec<u16> =
        server.requests().iter().filter(|r| r.path.ends_with("/finish")).map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409, 409]);
    assert_eq!(client.stats().failed, 0);
    assert!(client.close().await.unwrap().is_clean());
}

#[tokio::test]
async fn a_timed_out_request_is_retried_and_a_create_that_already_exists_counts_as_done() {
    let server = server();
    let client = Client::new(config(&server).request_timeout(Duration::from_millis(300)).build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    flush(&client).await;
    // The first attempt times out on the client but is still handled by the server later.
    server.add_fault(FaultRule::delay("/api/v1/agent_spans", 1_000).method("POST").times(1));
    let id = instance.span("t:slow").create().unwrap();
    flush(&client).await;
    assert!(client.stats().retried >= 1);
    // Let the delayed first attempt finish on the server.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(span_by_id(&spans_of(&server, instance.id()).await, &id.to_string())["status"], "active");

    // A create answered 409 (the span exists: an earlier attempt created it) is done.
    server.add_fault(FaultRule::status("/api/v1/agent_spans", 409).method("POST").times(1));
    instance.span("t:conflict").create().unwrap();
    flush(&client).await;
    assert_eq!(client.stats().failed, 0);
    assert!(client.close().await.unwrap().is_clean());
}

#[tokio::test]
async fn a_child_of_a_refused_span_is_sent_as_a_root_span() {
    for delivery in BOTH_MODES {
        let server = server();
        let mut registry = SchemaRegistry::new();
        let strict = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
        registry.register_type(SpanType::new("t:strict", strict)).unwrap();
        let client = Client::new(config_for(&server, delivery).schema_registry(registry).build().unwrap()).unwrap();
        client.initialize().await.unwrap();
        let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
        let parent = instance.span("t:strict").payload(Payload::from(json!({"n": "not a number"}))).start();
        let child = instance.span("t:strict").parent(parent.id()).payload(Payload::from(json!({"n": 1}))).start();
        let (parent_id, child_id) = (parent.id(), child.id());
        drop(child);
        drop(parent);
        flush(&client).await;
        let spans = spans_of(&server, instance.id()).await;
        assert_eq!(spans.len(), 1, "{delivery}: only the child");
        assert_eq!(span_by_id(&spans, &child_id.to_string())["parent_span_id"], serde_json::Value::Null);
        match client.close().await {
            Err(Error::TelemetryLost(report)) => {
                assert_eq!(report.failed, 2, "{delivery}: the parent's create and finish: {report:?}");
                assert_eq!(report.failure_reasons.len(), 1, "{:?}", report.failure_reasons);
                assert!(report.failure_reasons[0].0.contains("payload"), "{:?}", report.failure_reasons);
                assert!(!report.to_string().contains(&child_id.to_string()), "{parent_id}");
            }
            other => panic!("expected TelemetryLost, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_refused_register_fails_its_run_precisely() {
    let server = prefactor_server::LocalServer::start(prefactor_server::ServerConfig {
        strict_agents: true,
        ..prefactor_server::ServerConfig::default()
    })
    .unwrap();
    let client = Client::new(config(&server).agent_id("no-such-agent").build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    instance.start();
    drop(instance.span("t:x").start());
    instance.finish(FinishStatus::Complete);
    flush(&client).await;
    match client.close().await {
        Err(Error::TelemetryLost(report)) => {
            assert_eq!(report.failed, 5, "register, start, span create + finish, finish: {report:?}");
            assert_eq!(report.failure_reasons[0].1, 1, "the register, with the server's reason");
            assert!(report.failure_reasons[0].0.contains("no-such-agent"), "{:?}", report.failure_reasons);
            let doomed = &report.failure_reasons[1..];
            assert_eq!(doomed.iter().map(|(_, n)| n).sum::<u64>(), 4, "{doomed:?}");
            assert!(doomed.iter().all(|(reason, _)| reason.contains("registration")), "{doomed:?}");
        }
        other => panic!("expected TelemetryLost, got {other:?}"),
    }
}
