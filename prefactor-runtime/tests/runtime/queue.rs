//! The bounded queue: a full queue drops (and counts) instead of blocking.

use std::time::{Duration, Instant};

use prefactor_runtime::{Client, CreateInstance};
use prefactor_server::FaultRule;

use crate::common::{config, flush, requests, server};

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_blocking() {
    let server = server();
    let client = Client::new(config(&server).queue_capacity(8).concurrency(1).build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    server.add_fault(FaultRule::delay("/api/v1/agent_spans", 300));
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    let started = Instant::now();
    for _ in 0..200 {
        drop(instance.span("t:x").start());
    }
    // 200 spans against a server answering each request in 300 ms: a blocking client would
    // need about a minute here.
    assert!(started.elapsed() < Duration::from_secs(5), "enqueue never waits");
    let stats = client.stats();
    assert!(stats.dropped > 0, "{stats:?}");
    assert_eq!(stats.enqueued + stats.dropped, 1 + 400, "register + 200 × (create, finish): {stats:?}");
    server.clear_faults();
    flush(&client).await;
    let stats = client.stats();
    let span_requests = requests(&server, "POST", "/api/v1/agent_spans").len() as u64;
    assert!(span_requests > 0 && span_requests <= stats.enqueued);
    assert_eq!(stats.sent, stats.enqueued);
    let err = client.close().await.unwrap_err();
    match err {
        prefactor_runtime::Error::TelemetryLost(report) => {
            assert_eq!(report.dropped, stats.dropped);
            assert_eq!(report.lost, stats.dropped);
        }
        other => panic!("expected TelemetryLost, got {other:?}"),
    }
}
