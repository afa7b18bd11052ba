//! An agent started while the Prefactor API is down (issue "an agent starts at once"): `init`
//! returns before the API exists at all, the agent runs normally, and once the API comes up
//! (8 s later, on the same address) every run made meanwhile is stored and `close()` reports
//! nothing lost. Default retry settings, as a user would have them. And with a wrong token:
//! the agent runs the same, the client is latched and `close()` says so.
//!
//! The tests install the process-wide client in turn (`SERIAL`).

mod common;

use std::time::{Duration, Instant};

use common::{down_address, get_json_from as get_json};
use prefactor::{Config, Error, InstanceId};
use prefactor_server::{LocalServer, ServerConfig};

const TOKEN: &str = "startup-token";
const OUTAGE: Duration = Duration::from_secs(8);
const RUNS: usize = 20;

/// One installed client at a time in this binary.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[prefactor::span(schema = "startup:lookup")]
async fn lookup(n: usize) -> usize {
    n * 2
}

#[prefactor::span(schema = "startup:step")]
async fn step(n: usize) -> usize {
    lookup(n).await + 1
}

#[prefactor::agent(name = "startup-answer")]
async fn answer(n: usize) -> usize {
    step(n).await
}

#[prefactor::agent(name = "startup")]
async fn run(n: usize) -> (InstanceId, usize) {
    let id = prefactor::current_instance().expect("inside the agent").id();
    (id, step(n).await)
}

#[test]
fn an_agent_started_while_the_api_is_down_records_every_run_once_it_is_back() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (down, address) = down_address();
    let config = Config::builder().api_url(format!("http://{address}")).api_token(TOKEN).build().expect("config");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (runs, report) = runtime.block_on(async {
        let outage_started = Instant::now();
        // The README's pattern, with `?`: it cannot fail because the API is down.
        let guard = prefactor::init(config).await.expect("init returns with the API down");
        assert!(
            matches!(guard.client().check_connection(Duration::ZERO).await, Err(Error::ApiUnreachable { .. })),
            "init did not wait for the API"
        );
        let mut runs = Vec::new();
        for n in 0..RUNS {
            let (id, output) = run(n).await;
            assert_eq!(output, n * 2 + 1, "the agent runs normally");
            runs.push(id);
            tokio::time::sleep(OUTAGE / (RUNS as u32 * 2)).await;
        }
        assert_eq!(guard.client().stats().sent, 0, "nothing could be delivered yet");
        tokio::time::sleep(OUTAGE.saturating_sub(outage_started.elapsed())).await;
        drop(down);
        let server = LocalServer::start(ServerConfig::default().with_token(TOKEN).with_listen(address))
            .expect("the API comes up on the address that was down");
        let report = guard.close().await;
        (runs, (server, report))
    });
    let (server, report) = report;
    let report = report.expect("close reports nothing lost");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.delivered, RUNS as u64 * 7, "register, start, 2 spans × create and finish, finish");
    for id in runs {
        let details = &get_json(&server, &format!("/agent_instance/{id}"))["details"];
        assert_eq!(details["status"], "complete", "{details:#}");
        let spans = get_json(&server, &format!("/agent_spans?agent_instance_id={id}&pagination[page_size]=10"));
        let spans = spans["summaries"].as_array().expect("span list");
        let of = |schema: &str| spans.iter().find(|s| s["schema_name"] == schema).expect("stored").clone();
        assert_eq!(spans.len(), 2);
        assert_eq!(of("startup:lookup")["parent_span_id"], of("startup:step")["id"]);
        assert!(spans.iter().all(|s| s["status"] == "complete"), "{spans:#?}");
    }
}

#[test]
fn with_a_wrong_token_the_agent_runs_unaffected_and_close_reports_the_rejection() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let server = LocalServer::start(ServerConfig::default()).expect("server");
    let config = Config::builder().api_url(server.base_url()).api_token("wrong-token").build().expect("config");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let guard = prefactor::init(config).await.expect("init does not wait for the token check");
        assert_eq!(answer(1).await, 3); // may be queued before the answer: dropped, counted
        match guard.client().check_connection(Duration::from_secs(10)).await {
            Err(Error::Auth { status: 401, .. }) => {}
            other => panic!("expected the 401, got {other:?}"),
        }
        for n in 0..5 {
            assert_eq!(answer(n).await, n * 2 + 1, "the agent runs normally (unrecorded)");
        }
        let stats = guard.client().stats();
        assert_eq!((stats.sent, stats.unattached), (0, 0), "nothing sent, no span blamed on a context: {stats:?}");
        match guard.close().await {
            Err(Error::TelemetryLost(report)) => {
                assert!(matches!(report.auth_failure, Some(Error::Auth { status: 401, .. })), "{report:?}");
                assert!(report.unattached.is_empty(), "{report:?}");
                assert!(report.to_string().contains("sending stopped"), "{report}");
            }
            other => panic!("expected the rejection in the close report, got {other:?}"),
        }
    });
    let sent: Vec<_> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(sent, ["/api/v1/ping"], "nothing but the token check reached the API");
}
