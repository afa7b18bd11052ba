//! Per-instance order on the wire; different instances go concurrently.

use prefactor_runtime::{CreateInstance, FinishStatus, FutureExt, InstanceId};
use prefactor_server::{FaultRule, RecordedRequest};

use crate::common::{client, flush, server};

fn position(log: &[RecordedRequest], what: impl Fn(&RecordedRequest) -> bool) -> usize {
    log.iter().position(what).expect("request present")
}

fn is_register_of(r: &RecordedRequest, id: InstanceId) -> bool {
    r.path == "/api/v1/agent_instance/register" && r.body.as_ref().is_some_and(|b| b["id"] == id.to_string())
}

fn is_create_of(r: &RecordedRequest, span: &str) -> bool {
    r.path == "/api/v1/agent_spans" && r.body.as_ref().is_some_and(|b| b["details"]["id"] == span)
}

#[tokio::test]
async fn each_instance_keeps_its_order_while_instances_run_concurrently() {
    let server = server();
    let client = client(&server).await;
    let slow = client.create_agent_instance(CreateInstance::default()).unwrap();
    let fast = client.create_agent_instance(CreateInstance::default()).unwrap();
    // The first instance's start is slow: the second instance must not wait for it.
    server.add_fault(FaultRule::delay(&format!("/api/v1/agent_instance/{}/start", slow.id()), 2_000));
    let mut trees = Vec::new();
    for instance in [&slow, &fast] {
        instance.start();
        let root = instance.span("t:root").start();
        let (child, leaf) = async {
            let child = instance.span("t:child").start();
            let leaf = {
                let _in_child = child.enter();
                instance.span("t:leaf").start().id()
            };
            (child.id(), leaf)
        }
        .in_context(root.context())
        .await;
        trees.push((instance.id(), root.id(), child, leaf));
        drop(root);
        instance.finish(FinishStatus::Complete);
    }
    // While the slow start is still being answered, the fast instance is already done.
    let fast_status = async || get_status(&server, fast.id()).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fast_status().await != (200, Some("complete".to_owned())) {
        assert!(std::time::Instant::now() < deadline, "the fast instance never completed");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(get_status(&server, slow.id()).await, (200, Some("pending".to_owned())), "the slow start is in flight");
    flush(&client).await;

    let log = server.requests();
    for (instance, root, child, leaf) in &trees {
        let id = instance.to_string();
        let register = position(&log, |r| is_register_of(r, *instance));
        let start = position(&log, |r| r.path == format!("/api/v1/agent_instance/{id}/start"));
        let finish = position(&log, |r| r.path == format!("/api/v1/agent_instance/{id}/finish"));
        let root_create = position(&log, |r| is_create_of(r, &root.to_string()));
        let child_create = position(&log, |r| is_create_of(r, &child.to_string()));
        let leaf_create = position(&log, |r| is_create_of(r, &leaf.to_string()));
        assert!(register < start && register < root_create, "register first");
        assert!(root_create < child_create && child_create < leaf_create, "parents before children");
        assert!([start, root_create, child_create, leaf_create].iter().all(|&p| p < finish), "instance finish last");
        if let Some(root_finish) = log.iter().position(|r| r.path == format!("/api/v1/agent_spans/{root}/finish")) {
            assert!(root_create < root_finish);
        }
        assert!(log.iter().filter(|r| r.method == "POST").all(|r| r.status < 300), "every request succeeded");
    }
}

/// HTTP status and instance status of `GET /agent_instance/{id}`.
async fn get_status(server: &prefactor_server::LocalServer, id: InstanceId) -> (u16, Option<String>) {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/agent_instance/{id}", server.base_url()))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["details"]["status"].as_str().map(str::to_owned))
}
