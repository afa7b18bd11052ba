//! Span create / finish: state machine, already-terminal spans, pending instances, control.

mod common;

use common::{Api, llm_schema};
use prefactor_protocol::{AgentSpan, Pfid, SuccessResponse};
use serde_json::{Value, json};

fn id_of(body: &Value) -> String {
    body["details"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn create_active_on_pending_instance_then_finish() {
    let api = Api::start();
    let instance = api.register(Some(llm_schema())).await;
    assert_eq!(instance["status"], "pending");
    let instance_id = instance["id"].as_str().unwrap();
    let (status, created) = api.create_span(instance_id, "agent:llm", "active", json!({"model": "m1"})).await;
    assert_eq!(status, 200, "{created}");
    assert!(created.get("control").is_none(), "no control while the instance runs");
    let parsed: SuccessResponse<AgentSpan> = serde_json::from_value(created.clone()).unwrap();
    let span = parsed.details;
    assert_eq!(span.type_, "agent_span");
    assert_eq!(span.agent_instance_id, instance_id);
    assert_eq!(span.schema_title.as_deref(), Some("LLM Call"));
    assert_eq!(span.summary.as_deref(), Some("m1"));
    assert_eq!(span.account_id.as_deref(), instance["account_id"].as_str());
    assert_eq!(span.agent_id.as_deref(), instance["agent_id"].as_str());
    assert!(span.finished_at.is_none() && span.result_payload.is_none());
    assert!(created["details"]["parent_span_id"].is_null());

    let (status, finished) = api
        .finish_span(&span.id, json!({"status": "complete", "result_payload": {"tokens": 42}, "timestamp": "2026-08-04T06:55:43.1002+00:00"}))
        .await;
    assert_eq!(status, 200, "{finished}");
    assert_eq!(finished["details"]["status"], "complete");
    assert_eq!(finished["details"]["result_payload"], json!({"tokens": 42}));
    assert_eq!(finished["details"]["summary"], "m1: 42 tokens");
    assert_eq!(finished["details"]["finished_at"], "2026-08-04T06:55:43.100200Z");
    assert_eq!(finished["details"]["payload"], json!({"model": "m1"}));

    let (_, got) = api.get(&format!("/api/v1/agent_instance/{instance_id}")).await;
    assert_eq!(
        got["details"]["span_counts"],
        json!({"total": 1, "pending": 0, "active": 0, "complete": 1, "failed": 0, "cancelled": 0, "finished": 1})
    );
}

#[tokio::test]
async fn second_finish_is_409_invalid_action() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let (_, created) = api.create_span(&instance_id, "agent:x", "active", json!({})).await;
    let span_id = id_of(&created);
    assert_eq!(api.finish_span(&span_id, json!({"status": "failed"})).await.0, 200);
    for status in ["complete", "failed", "cancelled"] {
        let (code, error) = api.finish_span(&span_id, json!({"status": status})).await;
        assert_eq!(code, 409);
        assert_eq!(error["code"], "invalid_action");
    }
}

#[tokio::test]
async fn pending_span_can_be_cancelled_or_completed() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    for finish_status in ["cancelled", "complete"] {
        let (_, created) = api.create_span(&instance_id, "agent:retrieval", "pending", json!({})).await;
        assert_eq!(created["details"]["status"], "pending");
        let (status, finished) = api.finish_span(&id_of(&created), json!({"status": finish_status})).await;
        assert_eq!(status, 200);
        assert_eq!(finished["details"]["status"], finish_status);
    }
}

#[tokio::test]
async fn finish_without_status_defaults_to_complete() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let (_, created) = api.create_span(&instance_id, "agent:x", "active", json!({})).await;
    let (_, finished) = api.finish_span(&id_of(&created), json!({})).await;
    assert_eq!(finished["details"]["status"], "complete");
    assert!(finished["details"]["finished_at"].is_string());
}

#[tokio::test]
async fn spans_created_already_terminal_keep_client_times_and_result() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let (status, created) = api
        .post(
            "/api/v1/agent_spans",
            json!({"details": {
                "agent_instance_id": instance_id, "schema_name": "ai-sdk:llm", "status": "complete",
                "payload": {"span_id": "local-1", "inputs": {"ai.model.id": "m"}},
                "result_payload": {"text": "42"}, "parent_span_id": null,
                "started_at": "2026-08-04T06:55:42.001Z", "finished_at": "2026-08-04T06:55:43.517Z",
                "sensitive_encoding": false
            }, "idempotency_key": "3b1f0c0e-8a77-4b6e-9d61-0d2a3a9e5c12"}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let details = &created["details"];
    assert_eq!(details["status"], "complete");
    assert_eq!(details["started_at"], "2026-08-04T06:55:42.001000Z");
    assert_eq!(details["finished_at"], "2026-08-04T06:55:43.517000Z");
    assert_eq!(details["payload"]["span_id"], "local-1");
    assert_eq!(details["result_payload"], json!({"text": "42"}));
    let (status, error) = api.finish_span(&id_of(&created), json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(error["code"], "invalid_action");
    // A terminal span created without finished_at gets "now".
    let (_, failed) = api.create_span(&instance_id, "agent:x", "failed", json!({})).await;
    assert!(failed["details"]["finished_at"].is_string());
}

#[tokio::test]
async fn span_cannot_be_created_as_terminated() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let (status, error) = api.create_span(&instance_id, "agent:x", "terminated", json!({})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["details.status"].is_array());
}

#[tokio::test]
async fn parent_must_exist_in_the_same_instance() {
    let api = Api::start();
    let first = api.register_id().await;
    let second = api.register_id().await;
    let (_, parent) = api.create_span(&first, "agent:x", "active", json!({})).await;
    let parent_id = id_of(&parent);
    let child = |instance: &str, parent: &str| json!({"details": {"agent_instance_id": instance, "schema_name": "agent:y", "status": "active", "payload": {}, "parent_span_id": parent}});
    let (status, created) = api.post("/api/v1/agent_spans", child(&first, &parent_id)).await;
    assert_eq!(status, 200);
    assert_eq!(created["details"]["parent_span_id"], parent_id);
    let (status, error) = api.post("/api/v1/agent_spans", child(&second, &parent_id)).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["details.parent_span_id"].is_array());
    let (status, _) = api.post("/api/v1/agent_spans", child(&first, &Pfid::generate(1).to_string())).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn client_supplied_span_id_is_used_and_duplicates_conflict() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let id = Pfid::generate(3).to_string();
    let body = json!({"details": {"agent_instance_id": instance_id, "schema_name": "agent:x", "status": "active", "payload": {}, "id": id}});
    let (status, created) = api.post("/api/v1/agent_spans", body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(created["details"]["id"], id);
    let (status, error) = api.post("/api/v1/agent_spans", body).await;
    assert_eq!(status, 409);
    assert_eq!(error["code"], "conflict");
}

#[tokio::test]
async fn unknown_instance_and_unknown_span_are_404() {
    let api = Api::start();
    let missing = Pfid::generate(1).to_string();
    let (status, error) = api.create_span(&missing, "agent:x", "active", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "not_found");
    let (status, error) = api.finish_span(&missing, json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "not_found");
}

#[tokio::test]
async fn spans_are_accepted_after_instance_finish() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let (_, open) = api.create_span(&instance_id, "agent:x", "active", json!({})).await;
    api.post(&format!("/api/v1/agent_instance/{instance_id}/finish"), json!({})).await;
    let (status, finished) = api.finish_span(&id_of(&open), json!({})).await;
    assert_eq!(status, 200);
    assert!(finished.get("control").is_none());
    let (status, _) = api.create_span(&instance_id, "agent:late", "complete", json!({})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn terminated_instance_puts_control_on_span_responses() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let (_, open) = api.create_span(&instance_id, "agent:x", "active", json!({})).await;
    assert!(open.get("control").is_none());
    api.post(
        &format!("/api/v1/agent_instance/{instance_id}/terminate"),
        json!({"reason": "policy breach: refund over limit"}),
    )
    .await;
    let expected = json!({"terminate": true, "reason": "policy breach: refund over limit"});
    let (status, finished) = api.finish_span(&id_of(&open), json!({"status": "complete"})).await;
    assert_eq!(status, 200);
    assert_eq!(finished["control"], expected);
    let (status, created) = api.create_span(&instance_id, "agent:y", "active", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(created["control"], expected);
    // Termination without a reason: reason is null, terminate still true.
    let other = api.register_id().await;
    api.server.terminate_instance(&other, None).unwrap();
    let (_, created) = api.create_span(&other, "agent:y", "active", json!({})).await;
    assert_eq!(created["control"], json!({"terminate": true, "reason": null}));
}

#[tokio::test]
async fn idempotency_key_inside_details_is_honoured() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let body = json!({"details": {"agent_instance_id": instance_id, "schema_name": "agent:x", "status": "active", "payload": {}, "idempotency_key": "k-details"}});
    let (_, first) = api.post("/api/v1/agent_spans", body.clone()).await;
    let (_, second) = api.post("/api/v1/agent_spans", body).await;
    assert_eq!(first, second);
    let (_, counts) = api.get(&format!("/api/v1/agent_instance/{instance_id}")).await;
    assert_eq!(counts["details"]["span_counts"]["total"], 1);
}
