//! flush and shutdown return within their deadline against a slow server.

use std::time::{Duration, Instant};

use prefactor_runtime::{CreateInstance, Delivery, Error};
use prefactor_server::FaultRule;

use crate::common::{BOTH_MODES, client_for, flush, server};

#[tokio::test]
async fn flush_and_shutdown_keep_their_deadlines() {
    for delivery in BOTH_MODES {
        flush_and_shutdown_keep_their_deadlines_in(delivery).await;
    }
}

async fn flush_and_shutdown_keep_their_deadlines_in(delivery: Delivery) {
    let server = server();
    let client = client_for(&server, delivery).await;
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    flush(&client).await;
    let span_requests = if delivery == Delivery::Bulk { "/api/v1/bulk" } else { "/api/v1/agent_spans" };
    server.add_fault(FaultRule::delay(span_requests, 3_000));
    for _ in 0..5 {
        drop(instance.span("t:slow").start());
    }
    let started = Instant::now();
    assert!(matches!(client.flush(Duration::from_millis(200)).await, Err(Error::Timeout)));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(200) && waited < Duration::from_millis(2_000), "{waited:?}");

    let started = Instant::now();
    let result = client.shutdown(Duration::from_millis(300)).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(2_500), "shutdown took {waited:?}");
    match result {
        Err(Error::TelemetryLost(report)) => {
            assert!(report.timed_out);
            // Still in flight at the deadline: the server may yet apply them.
            assert_eq!(report.unknown, 10, "5 spans × create + finish: {report:?}");
            assert_eq!(report.undelivered, 0, "{report:?}");
            assert_eq!(report.lost, 10);
        }
        other => panic!("expected TelemetryLost, got {other:?}"),
    }
    // Closed: nothing more is accepted, and it is counted.
    drop(instance.span("t:late").start());
    assert_eq!(client.stats().dropped, 2);
    assert!(matches!(client.flush(Duration::from_secs(1)).await, Err(Error::Closed)));
}
