//! Agent instances: register (queued, client id), start, finish, quality, the manager.

use prefactor_runtime::{
    AgentVersion, Client, CreateInstance, FinishStatus, InstanceId, InstancePurpose, Payload, Pfid, QualityType,
    SchemaRegistry, SpanType,
};
use serde_json::json;

use crate::common::{client, config, flush, instance_details, requests, server, spans_of};

#[tokio::test]
async fn lifecycle_register_start_span_finish() {
    let server = server();
    let client = client(&server).await;
    let instance = client
        .create_agent_instance(
            CreateInstance::default()
                .agent_version(AgentVersion {
                    name: Some("Test agent".into()),
                    external_identifier: Some("v1".into()),
                    ..AgentVersion::default()
                })
                .purpose(InstancePurpose::Eval),
        )
        .unwrap();
    instance.start();
    instance.start(); // only the first call counts
    drop(instance.span("t:first").start());
    instance.finish(FinishStatus::Failed);
    instance.finish(FinishStatus::Complete); // ignored
    flush(&client).await;

    let details = instance_details(&server, instance.id()).await;
    assert_eq!(details["id"], instance.id().to_string());
    assert_eq!(details["status"], "failed");
    assert_eq!(details["purpose"], "eval");
    assert!(details["started_at"].is_string());
    assert!(details["finished_at"].is_string());
    assert_eq!(spans_of(&server, instance.id()).await.len(), 1);
    assert_eq!(requests(&server, "POST", &format!("/api/v1/agent_instance/{}/start", instance.id())).len(), 1);
    let register = &requests(&server, "POST", "/api/v1/agent_instance/register")[0];
    let body = register.body.as_ref().unwrap();
    assert_eq!(body["id"], instance.id().to_string());
    assert_eq!(body["agent_version"]["name"], "Test agent");
    assert!(body["idempotency_key"].as_str().unwrap().len() <= 64);
    assert_eq!(client.stats().failed, 0);
}

#[tokio::test]
async fn agent_and_environment_ids_come_from_the_config_and_set_the_partition() {
    let server = server();
    let agent = Pfid::generate(4242).to_string();
    let environment = Pfid::generate(4242).to_string();
    let client = Client::new(config(&server).agent_id(&agent).environment_id(&environment).build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    assert_eq!(client.partition(), 4242);
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    assert_eq!(instance.id().pfid().partition(), 4242);
    flush(&client).await;
    let details = instance_details(&server, instance.id()).await;
    assert_eq!(details["agent_id"], agent);
    assert_eq!(details["environment_id"], environment);
}

#[tokio::test]
async fn caller_chosen_instance_id_is_used() {
    let server = server();
    let client = client(&server).await;
    let id = InstanceId::generate(client.partition());
    let instance = client.create_agent_instance(CreateInstance::default().instance_id(id)).unwrap();
    assert_eq!(instance.id(), id);
    flush(&client).await;
    assert_eq!(instance_details(&server, id).await["status"], "pending");
}

#[tokio::test]
async fn record_quality_reaches_the_instance() {
    let server = server();
    let mut registry = SchemaRegistry::new();
    registry
        .register_type(SpanType::new("t:step", json!({"type": "object"})))
        .unwrap()
        .register_quality_schema(
            QualityType::new("accuracy", json!({"type": "object", "properties": {"score": {"type": "number"}}}))
                .title("Accuracy"),
        )
        .unwrap();
    let client = Client::new(config(&server).schema_registry(registry).build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    instance.record_quality("accuracy", Payload::from(json!({"score": 0.9})));
    flush(&client).await;
    let details = instance_details(&server, instance.id()).await;
    assert_eq!(details["quality_payloads"]["accuracy"], json!({"score": 0.9}));
    assert_eq!(client.stats().failed, 0);
}

#[tokio::test]
async fn instance_manager_finds_and_finishes_instances_by_id() {
    let server = server();
    let client = client(&server).await;
    let manager = client.instance_manager();
    let a = manager.create(CreateInstance::default()).unwrap();
    let b = manager.create(CreateInstance::default()).unwrap();
    manager.start(a.id());
    manager.start(b.id());
    assert_eq!(manager.live().len(), 2);
    manager.finish(a.id(), FinishStatus::Complete);
    let live: Vec<InstanceId> = manager.live().iter().map(|h| h.id()).collect();
    assert_eq!(live, vec![b.id()]);
    flush(&client).await;
    assert_eq!(instance_details(&server, a.id()).await["status"], "complete");
    assert_eq!(instance_details(&server, b.id()).await["status"], "active");
}

#[tokio::test]
async fn creating_an_instance_before_initialize_is_an_error() {
    let server = server();
    let client = Client::new(config(&server).build().unwrap()).unwrap();
    let err = client.create_agent_instance(CreateInstance::default()).unwrap_err();
    assert!(matches!(err, prefactor_runtime::Error::NotInitialized), "{err}");
}
