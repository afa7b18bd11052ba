//! initialize: returns at once whatever the network does; the token check runs in the
//! background (an API down at startup loses nothing, a rejected token latches the client);
//! `check_connection` is the fail-fast opt-in.

use std::time::{Duration, Instant};

use prefactor_runtime::{Client, Config, CreateInstance, Delivery, Error, FinishStatus};
use prefactor_server::{LocalServer, ServerConfig};

use crate::common::{BOTH_MODES, config, down_address, instance_details, requests, server, spans_of};

#[tokio::test]
async fn initialize_checks_the_token_once_in_the_background_and_a_second_call_is_an_error() {
    let server = server();
    let client = Client::new(config(&server).build().unwrap()).unwrap();
    assert!(!client.is_initialized());
    assert!(matches!(client.check_connection(Duration::from_secs(1)).await, Err(Error::NotInitialized)));
    client.initialize().await.unwrap();
    assert!(client.is_initialized());
    assert!(matches!(client.initialize().await, Err(Error::AlreadyInitialized)));
    client.check_connection(Duration::from_secs(10)).await.expect("the local server accepts the token");
    client.check_connection(Duration::ZERO).await.expect("the answer is kept");
    assert_eq!(requests(&server, "GET", "/api/v1/ping").len(), 1);
    let report = client.close().await.unwrap();
    assert!(report.is_clean());
    assert!(matches!(client.close().await, Err(Error::Closed)));
    assert!(matches!(client.initialize().await, Err(Error::Closed)));
    assert!(matches!(client.check_connection(Duration::ZERO).await, Err(Error::Closed)));
}

#[tokio::test]
async fn a_rejected_token_latches_the_client_without_touching_the_agent() {
    let server = server();
    let client = Client::new(config(&server).api_token("wrong-token").build().unwrap()).unwrap();
    client.initialize().await.expect("initialize does not wait for the token check");
    // The agent's calls made before the answer are accepted, and held: nothing but the check
    // is ever sent with a rejected token.
    let instance = client.create_agent_instance(CreateInstance::default()).expect("no answer yet");
    instance.start();
    drop(instance.span("t:step").start());
    match client.check_connection(Duration::from_secs(10)).await {
        Err(Error::Auth { status: 401, .. }) => {}
        other => panic!("expected the 401, got {other:?}"),
    }
    assert!(client.is_initialized(), "a latched client stays installed and usable");
    assert!(matches!(client.create_agent_instance(CreateInstance::default()), Err(Error::Auth { status: 401, .. })));
    drop(instance.span("t:after").start()); // accepted and counted, never raised
    instance.finish(FinishStatus::Complete);
    assert_eq!(requests(&server, "GET", "/api/v1/ping").len(), 1, "a 401 is not retried");
    assert_eq!(server.requests().len(), 1, "nothing but the token check was sent");
    match client.close().await {
        Err(Error::TelemetryLost(report)) => {
            assert!(matches!(report.auth_failure, Some(Error::Auth { status: 401, .. })), "{report:?}");
            assert_eq!(report.dropped, 7, "register, start, 2 spans × 2, finish: {report:?}");
            assert_eq!(report.stats.dropped, report.dropped);
            assert!(report.to_string().contains("sending stopped"), "{report}");
        }
        other => panic!("expected TelemetryLost, got {other:?}"),
    }
}

#[tokio::test]
async fn check_connection_fails_fast_within_its_timeout_when_the_api_is_down() {
    let (_down, address) = down_address();
    let config = Config::builder()
        .api_url(format!("http://{address}"))
        .api_token("t")
        .initial_retry_delay(Duration::from_millis(20))
        .max_retry_delay(Duration::from_millis(100))
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    client.initialize_blocking().expect("initialize returns with the API down");
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let outcome = client.check_connection_blocking(timeout);
    let waited = started.elapsed();
    match outcome {
        Err(Error::ApiUnreachable { waited: reported, last_error: Some(last) }) => {
            assert_eq!(reported, timeout);
            assert!(matches!(*last, Error::Http { status: None, .. }), "a refused connection: {last:?}");
        }
        other => panic!("expected ApiUnreachable with the refused connection, got {other:?}"),
    }
    assert!(waited >= timeout, "waited the whole timeout: {waited:?}");
    // Generous: the answer comes from a timer of the worker, not from a request.
    assert!(waited < timeout + Duration::from_secs(5), "answered at its deadline: {waited:?}");
    assert!(matches!(client.check_connection(Duration::ZERO).await, Err(Error::ApiUnreachable { .. })));
    assert!(client.close().await.expect("nothing was queued").is_clean());
}

/// The API is down when the client starts and comes back later on the same address: every
/// operation made meanwhile is delivered. They wait for the token check: nothing is sent
/// (nor retried) against the dead API.
#[tokio::test]
async fn runs_made_while_the_api_is_down_at_startup_are_all_stored_once_it_is_back() {
    for delivery in BOTH_MODES {
        api_down_then_back(delivery, None).await;
    }
}

/// The same with a spool: during the startup outage what waits goes to disk, and is sent from
/// there once the API is back.
#[tokio::test]
async fn with_a_spool_a_startup_outage_sends_what_waits_to_disk_and_delivers_it_later() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    api_down_then_back(Delivery::Bulk, Some(dir.path())).await;
}

async fn api_down_then_back(delivery: Delivery, spool: Option<&std::path::Path>) {
    const TOKEN: &str = "startup-token";
    let (down, address) = down_address();
    let config = Config::builder()
        .delivery(delivery)
        .api_url(format!("http://{address}"))
        .api_token(TOKEN)
        .initial_retry_delay(Duration::from_millis(20))
        .max_retry_delay(Duration::from_millis(200))
        .close_timeout(Duration::from_secs(20));
    let config = match spool {
        Some(dir) => config.spool_dir(dir),
        None => config,
    };
    let client = Client::new(config.build().unwrap()).unwrap();
    client.initialize().await.expect("initialize returns with the API down");
    let mut runs = Vec::new();
    for i in 0..10 {
        let instance = client.create_agent_instance(CreateInstance::default()).expect("the client works");
        instance.start();
        let step = instance.span("t:step").start();
        let child = instance.span("t:child").parent(step.id()).start();
        child.complete();
        step.complete();
        instance.finish(if i % 2 == 0 { FinishStatus::Complete } else { FinishStatus::Failed });
        runs.push(instance.id());
    }
    // Let a few probes fail before the API comes up (and, with a spool, what waits go there).
    for _ in 0..500 {
        let probed = matches!(
            client.check_connection(Duration::ZERO).await,
            Err(Error::ApiUnreachable { last_error: Some(_), .. })
        );
        if probed && (spool.is_none() || client.stats().spooled == 10 * 7) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(client.check_connection(Duration::ZERO).await, Err(Error::ApiUnreachable { .. })));
    let held = client.stats();
    assert_eq!((held.sent, held.retried), (0, 0), "held, not sent: {held:?}");
    let expect_spooled = if spool.is_some() { 10 * 7 } else { 0 };
    assert_eq!(held.spooled, expect_spooled, "{held:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(down);
    let server = LocalServer::start(ServerConfig::default().with_token(TOKEN).with_listen(address))
        .expect("the server starts on the address that was down");
    if spool.is_some() {
        // The spool is sent by its own replay, which keeps probing: let it catch up (bounded)
        // rather than close at once (a closing client leaves a stalled spool to the next one).
        let started = Instant::now();
        let last = *runs.last().expect("runs were made");
        let url = format!("{}/api/v1/agent_instance/{last}", server.base_url());
        let http = reqwest::Client::new();
        while started.elapsed() < Duration::from_secs(20) {
            let response = http.get(&url).bearer_auth(TOKEN).send().await.expect("the server answers");
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if body["details"]["status"] == "failed" {
                break; // the last operation of the last run is stored
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let report = client.close().await.expect("nothing lost once the API is back");
    assert_eq!(report.stats.failed + report.stats.dropped + report.left_in_spool, 0, "{report:?}");
    for (i, id) in runs.into_iter().enumerate() {
        let details = instance_details(&server, id).await;
        let status = if i % 2 == 0 { "complete" } else { "failed" };
        assert_eq!(details["status"], status, "run {i} ({delivery:?})");
        let spans = spans_of(&server, id).await;
        assert_eq!(spans.len(), 2, "run {i} ({delivery:?})");
        let step = spans.iter().find(|s| s["schema_name"] == "t:step").expect("the step");
        let child = spans.iter().find(|s| s["schema_name"] == "t:child").expect("the child");
        assert_eq!(child["parent_span_id"], step["id"]);
    }
}
