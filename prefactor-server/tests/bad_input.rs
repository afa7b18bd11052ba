//! Bad input never gives a 500: every mistake answers a JSON error saying what is wrong.

mod common;

use common::Api;
use prefactor_protocol::Pfid;
use prefactor_server::ServerConfig;
use serde_json::json;

#[tokio::test]
async fn malformed_json_is_400_with_position() {
    let api = Api::start();
    let (status, error) = api.post_raw("/api/v1/agent_spans", "{\"details\": {").await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "invalid_json");
    assert!(error["message"].as_str().unwrap().contains("line 1"), "{error}");
    let (status, _) = api.post_raw("/api/v1/agent_instance/register", "not json").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn non_object_body_is_422() {
    let api = Api::start();
    let (status, error) = api.post_raw("/api/v1/agent_instance/register", "[1, 2]").await;
    assert_eq!(status, 422);
    assert!(error["errors"]["body"][0].as_str().unwrap().contains("array"));
}

#[tokio::test]
async fn wrong_types_and_missing_fields_are_422_naming_the_field() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let cases = [
        (
            json!({"details": {"agent_instance_id": 12, "schema_name": "x", "status": "active"}}),
            "details.agent_instance_id",
        ),
        (json!({"details": {"agent_instance_id": instance_id, "status": "active"}}), "details"),
        (
            json!({"details": {"agent_instance_id": instance_id, "schema_name": "x", "status": "running"}}),
            "details.status",
        ),
        (
            json!({"details": {"agent_instance_id": instance_id, "schema_name": "x", "status": "active", "payload": [1]}}),
            "details.payload",
        ),
        (
            json!({"details": {"agent_instance_id": instance_id, "schema_name": "x", "status": "active", "started_at": "yesterday"}}),
            "details.started_at",
        ),
        (json!({}), "body"),
    ];
    for (body, field) in cases {
        let (status, error) = api.post("/api/v1/agent_spans", body.clone()).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(error["code"], "validation_error");
        assert!(error["errors"][field].is_array(), "{field} in {error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let (status, error) =
        api.post(&format!("/api/v1/agent_instance/{instance_id}/finish"), json!({"status": "finished"})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["status"].is_array(), "{error}");
}

#[tokio::test]
async fn invalid_pfids_are_422() {
    let api = Api::start();
    let (status, error) =
        api.post("/api/v1/agent_instance/register", json!({"agent_version": {}, "agent_id": "agent-1"})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["agent_id"][0].as_str().unwrap().contains("PFID"), "{error}");
    let (status, error) = api.create_span("uuid-like-id", "agent:x", "active", json!({})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["details.agent_instance_id"].is_array());
    let (status, _) = api.finish_span("not-a-pfid", json!({})).await;
    assert_eq!(status, 422);
    let (status, _) = api.get("/api/v1/agent_instance/8zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz").await;
    assert_eq!(status, 422);
    let id = Pfid::generate(1).to_string();
    let (status, _) =
        api.post("/api/v1/agent_instance/register", json!({"agent_version": {}, "id": format!("{id}x")})).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn oversized_body_is_413_json() {
    let api = Api::start_with(ServerConfig::default().with_max_body_bytes(1024));
    let big = "x".repeat(2048);
    let (status, error) = api.post("/api/v1/agent_instance/register", json!({"agent_version": {"name": big}})).await;
    assert_eq!(status, 413);
    assert_eq!(error["code"], "payload_too_large");
    assert!(error["message"].as_str().unwrap().contains("1024"));
    let recorded = api.server.requests();
    assert_eq!(recorded.last().unwrap().status, 413);
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_405() {
    let api = Api::start();
    let (status, error) = api.get("/api/v1/no_such_thing").await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "not_found");
    assert!(error["message"].as_str().unwrap().contains("/api/v1/no_such_thing"));
    let (status, error) =
        api.send(api.http.delete(api.url("/api/v1/agent_spans")).bearer_auth(api.server.token())).await;
    assert_eq!(status, 405);
    assert_eq!(error["code"], "method_not_allowed");
}

#[tokio::test]
async fn bad_query_parameters_are_422() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    for query in [
        format!("agent_instance_id={instance_id}&pagination[page_size]=0"),
        format!("agent_instance_id={instance_id}&pagination[page_size]=101"),
        format!("agent_instance_id={instance_id}&pagination[offset]=-1"),
        format!("agent_instance_id={instance_id}&sorting=payload"),
        format!("agent_instance_id={instance_id}&include_summaries=maybe"),
        "include_summaries=true".to_string(),
    ] {
        let (status, error) = api.get(&format!("/api/v1/agent_spans?{query}")).await;
        assert_eq!(status, 422, "{query}: {error}");
        assert!(error["errors"].is_object());
    }
}
