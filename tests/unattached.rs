//! Work moved out of the run without its context (plain `tokio::spawn`, `spawn_blocking`,
//! `std::thread::spawn`): its spans cannot be recorded, and are counted per span type in
//! `stats().unattached` and reported by `close()` with the fix, never lost silently.

use std::time::Duration;

use prefactor::{Config, Error, InstanceId};
use prefactor_server::{LocalServer, ServerConfig};

#[prefactor::span(schema = "un:sync_child")]
fn sync_child() -> u32 {
    1
}

#[prefactor::span(schema = "un:async_child")]
async fn async_child() -> u32 {
    2
}

#[prefactor::span(schema = "un:parent")]
async fn parent() {
    tokio::spawn(async_child()).await.expect("task");
    tokio::task::spawn_blocking(sync_child).await.expect("blocking task");
    std::thread::spawn(sync_child).join().expect("thread");
}

#[prefactor::agent(name = "unattached")]
async fn agent() -> InstanceId {
    parent().await;
    prefactor::current_instance().expect("inside the agent").id()
}

#[test]
fn spans_opened_outside_the_run_are_counted_by_type_and_reported_with_the_fix() {
    let server = LocalServer::start(ServerConfig::default()).expect("server");
    let config = Config::builder().api_url(server.base_url()).api_token(server.token()).build().expect("config");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let guard = prefactor::init(config).await.expect("init");
        let instance = agent().await;
        assert_eq!(guard.client().stats().unattached, 3);
        guard.client().flush(Duration::from_secs(20)).await.expect("flush");
        let spans = reqwest::Client::new()
            .get(format!("{}/api/v1/agent_spans?agent_instance_id={instance}", server.base_url()))
            .bearer_auth(server.token())
            .send()
            .await
            .expect("GET")
            .json::<serde_json::Value>()
            .await
            .expect("JSON");
        let spans = spans["summaries"].as_array().expect("span list");
        assert_eq!(spans.len(), 1, "only the parent is recorded: {spans:#?}");
        match guard.close().await {
            Err(Error::TelemetryLost(report)) => {
                assert_eq!(report.lost, 0, "every operation was delivered: {report:?}");
                assert_eq!(report.stats.unattached, 3);
                assert_eq!(report.unattached, vec![("un:async_child".to_owned(), 1), ("un:sync_child".to_owned(), 2)]);
                assert!(!report.is_clean());
                let text = report.to_string();
                assert!(
                    text.starts_with(
                        "1 span of type un:async_child, 2 spans of type un:sync_child were opened outside any agent run"
                    ),
                    "{text}"
                );
                assert!(text.contains("`prefactor::spawn`") && text.contains("`.in_current_context()`"), "{text}");
            }
            other => panic!("expected the unattached spans to be reported, got {other:?}"),
        }
    });
}
