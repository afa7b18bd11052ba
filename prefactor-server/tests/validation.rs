//! Payload validation against span type schemas; errors name the failing JSON path.

mod common;

use common::{Api, llm_schema};
use prefactor_server::ServerConfig;
use serde_json::json;

#[tokio::test]
async fn payload_failing_params_schema_is_422_naming_the_path() {
    let api = Api::start();
    let instance_id = api.register(Some(llm_schema())).await["id"].as_str().unwrap().to_string();
    let (status, error) = api.create_span(&instance_id, "agent:llm", "active", json!({"model": 3})).await;
    assert_eq!(status, 422);
    assert_eq!(error["code"], "validation_error");
    let messages = error["errors"]["details.payload/model"].as_array().expect("path key");
    assert!(messages[0].as_str().unwrap().contains("string"), "{error}");
    let (status, error) = api.create_span(&instance_id, "agent:llm", "active", json!({})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["details.payload"][0].as_str().unwrap().contains("model"), "{error}");
    let (_, counts) = api.get(&format!("/api/v1/agent_instance/{instance_id}")).await;
    assert_eq!(counts["details"]["span_counts"]["total"], 0, "nothing stored");
}

#[tokio::test]
async fn result_payload_is_checked_on_finish_and_on_terminal_create() {
    let api = Api::start();
    let instance_id = api.register(Some(llm_schema())).await["id"].as_str().unwrap().to_string();
    let (_, created) = api.create_span(&instance_id, "agent:llm", "active", json!({"model": "m"})).await;
    let span_id = created["details"]["id"].as_str().unwrap().to_string();
    let (status, error) = api.finish_span(&span_id, json!({"result_payload": {"tokens": "many"}})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["result_payload/tokens"].is_array(), "{error}");
    // The failed finish did not change the span.
    let (status, _) = api.finish_span(&span_id, json!({"result_payload": {"tokens": 5}})).await;
    assert_eq!(status, 200);
    let (status, error) = api
        .post(
            "/api/v1/agent_spans",
            json!({"details": {"agent_instance_id": instance_id, "schema_name": "agent:llm", "status": "complete", "payload": {"model": "m"}, "result_payload": {"tokens": 1.5}}}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(error["errors"]["details.result_payload/tokens"].is_array(), "{error}");
}

#[tokio::test]
async fn unknown_span_type_is_422_when_the_schema_declares_types() {
    let api = Api::start();
    let declared = api.register(Some(llm_schema())).await["id"].as_str().unwrap().to_string();
    let (status, error) = api.create_span(&declared, "agent:unknown", "active", json!({})).await;
    assert_eq!(status, 422);
    let message = error["errors"]["details.schema_name"][0].as_str().unwrap();
    assert!(message.contains("agent:llm"), "lists declared types: {message}");
    // Without a schema version any name is accepted.
    let free = api.register_id().await;
    let (status, _) = api.create_span(&free, "agent:unknown", "active", json!({"any": 1})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn legacy_span_schemas_map_is_used_when_no_rich_form() {
    let api = Api::start();
    let schema = json!({"external_identifier": "legacy", "span_schemas": {"langchain:agent": {"type": "object", "required": ["input"]}}});
    let instance_id = api.register(Some(schema)).await["id"].as_str().unwrap().to_string();
    let (status, _) = api.create_span(&instance_id, "langchain:agent", "active", json!({})).await;
    assert_eq!(status, 422);
    let (status, _) = api.create_span(&instance_id, "langchain:agent", "active", json!({"input": "x"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn invalid_schema_document_is_rejected_at_register() {
    let api = Api::start();
    let schema = json!({"external_identifier": "bad", "span_type_schemas": [{"name": "a", "params_schema": {"type": "no-such-type"}}]});
    let (status, error) =
        api.post("/api/v1/agent_instance/register", json!({"agent_version": {}, "agent_schema_version": schema})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["agent_schema_version.span_type_schemas[0].params_schema"].is_array(), "{error}");
}

#[tokio::test]
async fn validation_flag_off_accepts_anything() {
    let api = Api::start_with(ServerConfig::default().with_validate_schemas(false));
    let instance_id = api.register(Some(llm_schema())).await["id"].as_str().unwrap().to_string();
    let (status, created) = api.create_span(&instance_id, "agent:llm", "active", json!({"model": 3})).await;
    assert_eq!(status, 200);
    let (status, _) = api.create_span(&instance_id, "agent:unknown", "active", json!({})).await;
    assert_eq!(status, 200);
    let span_id = created["details"]["id"].as_str().unwrap();
    let (status, _) = api.finish_span(span_id, json!({"result_payload": {"tokens": "x"}})).await;
    assert_eq!(status, 200);
}
