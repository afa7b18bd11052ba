//! The client from plain synchronous code: no tokio runtime anywhere on this thread.

use std::time::Duration;

use prefactor_runtime::{Client, CreateInstance, FinishSpan, FinishStatus, Payload};
use serde_json::json;

use crate::common::{config, requests, server};

#[test]
fn a_synchronous_program_records_a_span_tree() {
    assert!(tokio::runtime::Handle::try_current().is_err(), "no runtime on this thread");
    let server = server();
    let client = Client::new(config(&server).build().unwrap()).unwrap();
    client.initialize_blocking().unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    instance.start();
    let root = instance.span("t:root").payload(Payload::from(json!({"q": "hello"}))).start();
    let child = {
        let _entered = root.enter();
        let child = instance.span("t:child").start();
        let id = child.id();
        child.finish(FinishSpan::complete().result(Payload::from(json!({"ok": true}))));
        id
    };
    let root_id = root.id();
    drop(root);
    instance.finish(FinishStatus::Complete);
    client.flush_blocking(Duration::from_secs(20)).unwrap();

    let creates = requests(&server, "POST", "/api/v1/agent_spans");
    let child_create = creates
        .iter()
        .find(|r| r.path == "/api/v1/agent_spans" && r.body.as_ref().unwrap()["details"]["id"] == child.to_string())
        .expect("child sent");
    assert_eq!(child_create.body.as_ref().unwrap()["details"]["parent_span_id"], root_id.to_string());
    assert!(creates.iter().all(|r| r.status == 200));
    let report = client.close_blocking().unwrap();
    assert!(report.is_clean());
    assert_eq!(report.delivered, client.stats().enqueued);
}

#[test]
fn the_client_is_send_sync_and_clone() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<Client>();
    assert_send_sync_clone::<prefactor_runtime::AgentInstanceHandle>();
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<prefactor_runtime::SpanGuard>();
    assert_send_sync::<prefactor_runtime::Context>();
}
