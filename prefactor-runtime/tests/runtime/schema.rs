//! The schema registry becomes the register's `agent_schema_version`, with a stable id.

use prefactor_runtime::{
    Classification, Client, CreateInstance, DataRisk, Error, Inclusion, Permission, QualityType, SchemaRegistry,
    SpanType,
};
use serde_json::json;

use crate::common::{config, flush, requests, server};

fn registry() -> SchemaRegistry {
    let mut registry = SchemaRegistry::new();
    registry
        .register_type(
            SpanType::new("agent:llm", json!({"type": "object", "properties": {"model": {"type": "string"}}}))
                .result_schema(json!({"type": "object"}))
                .title("LLM call")
                .description("One model call")
                .template("{{ model }}"),
        )
        .unwrap();
    registry
}

#[tokio::test]
async fn a_program_that_runs_again_reuses_its_schema_version() {
    let server = server();
    let mut identifiers = Vec::new();
    for _run in 0..2 {
        let client = Client::new(config(&server).schema_registry(registry()).build().unwrap()).unwrap();
        client.initialize().await.unwrap();
        client.create_agent_instance(CreateInstance::default()).unwrap();
        flush(&client).await;
        client.close().await.unwrap();
    }
    for register in requests(&server, "POST", "/api/v1/agent_instance/register") {
        assert_eq!(register.status, 200);
        let doc = &register.body.as_ref().unwrap()["agent_schema_version"];
        assert_eq!(doc["span_type_schemas"][0]["name"], "agent:llm");
        assert_eq!(doc["span_type_schemas"][0]["template"], "{{ model }}");
        identifiers.push(doc["external_identifier"].as_str().unwrap().to_owned());
    }
    assert_eq!(identifiers.len(), 2);
    assert!(identifiers[0].starts_with("sha256:"));
    assert_eq!(identifiers[0], identifiers[1]);
}

#[tokio::test]
async fn an_explicit_external_identifier_is_kept() {
    let server = server();
    let client = Client::new(config(&server).schema_registry(registry()).build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    assert!(client.schema_registry().contains_type("agent:llm"));
    client.create_agent_instance(CreateInstance::default().external_schema_version_id("my-schemas-v3")).unwrap();
    flush(&client).await;
    let register = &requests(&server, "POST", "/api/v1/agent_instance/register")[0];
    assert_eq!(register.body.as_ref().unwrap()["agent_schema_version"]["external_identifier"], "my-schemas-v3");
}

#[test]
fn conflicting_registrations_name_both_places() {
    let mut base = registry();
    base.register_type(SpanType::new("agent:llm", json!({"type": "object"})).title("LLM call")).unwrap_err();
    let mut other = SchemaRegistry::new();
    other.register_type(SpanType::new("agent:llm", json!({"type": "string"}))).unwrap();
    match base.merge(&other) {
        Err(Error::SchemaConflict { name, first, second }) => {
            assert_eq!(name, "agent:llm");
            assert!(first.contains("schema.rs") && second.contains("schema.rs"), "{first} / {second}");
            assert_ne!(first, second);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Identical content merges.
    let mut same = registry();
    same.merge(&registry()).unwrap();
    assert_eq!(same.len(), 1);
    assert_eq!(same.to_agent_schema_version(None), registry().to_agent_schema_version(None));
}

#[tokio::test]
async fn data_risk_reaches_the_server_with_the_schema() {
    let mut risk = DataRisk::default();
    risk.action_profile.external_communication = Permission::Allowed;
    risk.params_data_categories.personal_identifiers = Inclusion::Included;
    risk.result_data_categories.classification = Classification::Confidential;
    let mut registry = SchemaRegistry::new();
    registry
        .register_type(SpanType::new("agent:email", json!({"type": "object"})).data_risk(risk))
        .unwrap()
        .register_quality_schema(QualityType::new("tone", json!({"type": "object"})).data_risk(DataRisk::default()))
        .unwrap();
    let server = server();
    let client = Client::new(config(&server).schema_registry(registry).build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    client.create_agent_instance(CreateInstance::default()).unwrap();
    flush(&client).await;
    let register = &requests(&server, "POST", "/api/v1/agent_instance/register")[0];
    assert_eq!(register.status, 200, "the server accepts the document");
    let doc = &register.body.as_ref().unwrap()["agent_schema_version"];
    let sent = &doc["span_type_schemas"][0]["data_risk"];
    assert_eq!(sent["action_profile"]["external_communication"], "allowed");
    assert_eq!(sent["action_profile"]["destroy_data"], "unknown");
    assert_eq!(sent["params_data_categories"]["personal_identifiers"], "included");
    assert_eq!(sent["result_data_categories"]["classification"], "confidential");
    assert_eq!(doc["quality_schemas"][0]["data_risk"]["params_data_categories"]["classification"], "unknown");
}
