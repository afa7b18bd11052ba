//! The schema registry becomes the register's `agent_schema_version`, with a stable id.

use prefactor_runtime::{Client, CreateInstance, Error, SchemaRegistry};
use serde_json::json;

use crate::common::{config, flush, requests, server};

fn registry() -> SchemaRegistry {
    let mut registry = SchemaRegistry::new();
    registry
        .register_type(
            "agent:llm",
            json!({"type": "object", "properties": {"model": {"type": "string"}}}),
            Some(json!({"type": "object"})),
            Some("LLM call"),
            Some("One model call"),
            Some("{{ model }}"),
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
    client
        .create_agent_instance(CreateInstance {
            external_schema_version_id: Some("my-schemas-v3".into()),
            ..CreateInstance::default()
        })
        .unwrap();
    flush(&client).await;
    let register = &requests(&server, "POST", "/api/v1/agent_instance/register")[0];
    assert_eq!(register.body.as_ref().unwrap()["agent_schema_version"]["external_identifier"], "my-schemas-v3");
}

#[test]
fn conflicting_registrations_name_both_places() {
    let mut base = registry();
    base.register_type("agent:llm", json!({"type": "object"}), None, Some("LLM call"), None, None).unwrap_err();
    let mut other = SchemaRegistry::new();
    other.register_type("agent:llm", json!({"type": "string"}), None, None, None, None).unwrap();
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
