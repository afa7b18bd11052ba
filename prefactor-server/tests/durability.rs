//! Data survives a shutdown and a restart on the same database file.

mod common;

use common::{Api, llm_schema};
use prefactor_server::{DbLocation, ServerConfig};
use serde_json::json;

#[tokio::test]
async fn data_written_before_shutdown_is_there_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let config = || ServerConfig::default().with_db(DbLocation::Path(path.clone())).with_token("t");
    let first = Api::start_with(config());
    let instance = first.register(Some(llm_schema())).await;
    let instance_id = instance["id"].as_str().unwrap().to_string();
    let (_, span) = first.create_span(&instance_id, "agent:llm", "active", json!({"model": "m"})).await;
    let span_id = span["details"]["id"].as_str().unwrap().to_string();
    let body = json!({"result_payload": {"tokens": 3}, "idempotency_key": "finish-1"});
    let (_, finished) = first.finish_span(&span_id, body.clone()).await;
    first.server.shutdown();
    assert!(path.exists(), "a named database file is kept");

    let second = Api::start_with(config());
    let (status, got) = second.get(&format!("/api/v1/agent_instance/{instance_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["details"]["account_id"], instance["account_id"], "account ids are stable");
    assert_eq!(got["details"]["span_counts"]["complete"], 1);
    let (_, spans) =
        second.get(&format!("/api/v1/agent_spans?agent_instance_id={instance_id}&include_summaries=true")).await;
    assert_eq!(spans["summaries"][0]["summary"], "m: 3 tokens", "schema version survives");
    // Idempotency records survive too: the retry replays the stored answer.
    let (status, replay) = second.finish_span(&span_id, body).await;
    assert_eq!(status, 200);
    assert_eq!(replay, finished);
}

#[tokio::test]
async fn in_memory_database_works_without_a_file() {
    let api = Api::start_with(ServerConfig::default().with_db(DbLocation::Memory));
    assert!(api.server.db_path().is_none());
    let instance_id = api.register_id().await;
    let (status, _) = api.get(&format!("/api/v1/agent_instance/{instance_id}")).await;
    assert_eq!(status, 200);
}
