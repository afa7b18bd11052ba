//! Idempotency keys in the body, in `details`, and in the `Idempotency-Key` header: replay of
//! the stored answer, 422 `idempotency_key_reused` for a key reused with another body.

mod common;

use common::Api;
use prefactor_server::ServerConfig;
use serde_json::json;

#[tokio::test]
async fn register_replays_the_stored_answer_for_a_repeated_body_key() {
    let api = Api::start();
    let body = json!({"agent_version": {"name": "A"}, "idempotency_key": "6f1c2a9e-3b7d-4c51-9a0e-2f5d8b1c7e44"});
    let (status, first) = api.post("/api/v1/agent_instance/register", body.clone()).await;
    assert_eq!(status, 200);
    let (status, second) = api.post("/api/v1/agent_instance/register", body).await;
    assert_eq!(status, 200);
    assert_eq!(first, second, "byte-identical replay");
    let (_, list) = api.get("/api/v1/agent_instance").await;
    assert_eq!(list["summaries"].as_array().unwrap().len(), 1, "no second instance");
}

#[tokio::test]
async fn reused_key_with_a_different_body_is_rejected() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let path = format!("/api/v1/agent_instance/{instance_id}/finish");
    let (status, _) = api.post(&path, json!({"status": "complete", "idempotency_key": "fin-1"})).await;
    assert_eq!(status, 200);
    let (status, error) = api.post(&path, json!({"status": "failed", "idempotency_key": "fin-1"})).await;
    assert_eq!(status, 422);
    assert_eq!(error["code"], "idempotency_key_reused");
    // Same key, same body: the original success is replayed, not the 409 of a second finish.
    let (status, replay) = api.post(&path, json!({"status": "complete", "idempotency_key": "fin-1"})).await;
    assert_eq!(status, 200);
    assert_eq!(replay["details"]["status"], "complete");
}

#[tokio::test]
async fn span_finish_retry_with_same_key_is_a_success_not_a_409() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let (_, created) = api.create_span(&instance_id, "agent:x", "active", json!({})).await;
    let span_id = created["details"]["id"].as_str().unwrap().to_string();
    let body = json!({"status": "complete", "result_payload": {"a": 1}, "idempotency_key": "aa41"});
    let (_, first) = api.finish_span(&span_id, body.clone()).await;
    let (status, second) = api.finish_span(&span_id, body).await;
    assert_eq!(status, 200);
    assert_eq!(first, second);
    let (status, _) = api.finish_span(&span_id, json!({"status": "complete", "idempotency_key": "other"})).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn header_key_is_honoured() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let send = |key: &'static str, schema: &'static str| {
        api.send(
            api.http
                .post(api.url("/api/v1/agent_spans"))
                .bearer_auth(api.server.token())
                .header("Idempotency-Key", key)
                .json(&json!({"details": {"agent_instance_id": instance_id, "schema_name": schema, "status": "active", "payload": {}}})),
        )
    };
    let (_, first) = send("hdr-1", "agent:x").await;
    let (_, second) = send("hdr-1", "agent:x").await;
    assert_eq!(first["details"]["id"], second["details"]["id"]);
    let (status, error) = send("hdr-1", "agent:other").await;
    assert_eq!(status, 422);
    assert_eq!(error["code"], "idempotency_key_reused");
}

#[tokio::test]
async fn top_level_key_on_span_create_is_honoured() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let body = json!({"details": {"agent_instance_id": instance_id, "schema_name": "agent:x", "status": "complete", "payload": {}}, "idempotency_key": "ts-key"});
    let (_, first) = api.post("/api/v1/agent_spans", body.clone()).await;
    let (_, second) = api.post("/api/v1/agent_spans", body).await;
    assert_eq!(first, second);
}

#[tokio::test]
async fn keys_are_scoped_by_path() {
    let api = Api::start();
    let first = api.register_id().await;
    let second = api.register_id().await;
    for id in [&first, &second] {
        let (status, body) =
            api.post(&format!("/api/v1/agent_instance/{id}/start"), json!({"idempotency_key": "same"})).await;
        assert_eq!(status, 200);
        assert_eq!(body["details"]["id"], id.as_str());
    }
}

#[tokio::test]
async fn failed_requests_are_not_stored_so_a_retry_can_succeed() {
    let api = Api::start_with(ServerConfig::default().with_strict_agents(true));
    let (_, agent) = api.post("/api/v1/agent", json!({"details": {"name": "A"}})).await;
    let agent_id = agent["details"]["id"].as_str().unwrap();
    let (status, _) = api
        .post(
            "/api/v1/agent_instance/register",
            json!({"agent_version": {}, "agent_id": "01m8bn5be3nzdb0xzrgt6mbmg5xebszx", "idempotency_key": "retry"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .post(
            "/api/v1/agent_instance/register",
            json!({"agent_version": {}, "agent_id": agent_id, "idempotency_key": "retry"}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn overlong_and_empty_keys_are_422() {
    let api = Api::start();
    let long = "k".repeat(65);
    let (status, error) =
        api.post("/api/v1/agent_instance/register", json!({"agent_version": {}, "idempotency_key": long})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["idempotency_key"].is_array());
    let ok = "k".repeat(64);
    let (status, _) =
        api.post("/api/v1/agent_instance/register", json!({"agent_version": {}, "idempotency_key": ok})).await;
    assert_eq!(status, 200);
    let (status, _) =
        api.post("/api/v1/agent_instance/register", json!({"agent_version": {}, "idempotency_key": ""})).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn span_replays_answer_as_first_given_whatever_happened_since() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let create = |status: &str, key: &str| {
        json!({"details": {"agent_instance_id": instance_id, "schema_name": "agent:x", "status": status,
            "payload": {"q": 1}}, "idempotency_key": key})
    };
    // An open span's answer is replayed as it was, even after the span was finished.
    let (_, open) = api.post("/api/v1/agent_spans", create("active", "open-span-key")).await;
    let open_id = open["details"]["id"].as_str().unwrap().to_string();
    assert_eq!(api.finish_span(&open_id, json!({"status": "complete"})).await.0, 200);
    let (status, replay) = api.post("/api/v1/agent_spans", create("active", "open-span-key")).await;
    assert_eq!(status, 200);
    assert_eq!(replay, open, "the stored answer, not the span's current state");
    assert_eq!(replay["details"]["status"], "active");

    // A terminal span created before the terminate replays without control, and one created
    // after it replays with the control signal it was answered with.
    let (_, before) = api.post("/api/v1/agent_spans", create("complete", "done-before-key")).await;
    api.server.terminate_instance(&instance_id, Some("stop now")).unwrap();
    let (_, after) = api.post("/api/v1/agent_spans", create("complete", "done-after-key")).await;
    assert_eq!(after["control"], json!({"terminate": true, "reason": "stop now"}));
    let (_, replay_before) = api.post("/api/v1/agent_spans", create("complete", "done-before-key")).await;
    assert_eq!(replay_before, before);
    assert!(replay_before.get("control").is_none());
    let (_, replay_after) = api.post("/api/v1/agent_spans", create("complete", "done-after-key")).await;
    assert_eq!(replay_after, after);
    let (_, list) = api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance_id}")).await;
    assert_eq!(list["summaries"].as_array().unwrap().len(), 3, "replays created nothing");
}

#[tokio::test]
async fn a_claimed_key_is_given_up_when_its_span_write_fails_and_replays_with_its_control() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let new_id = || prefactor_protocol::Pfid::generate(7).encode().as_str().to_string();
    let (span_id, done_id) = (new_id(), new_id());
    // A finish (its key is claimed before the write) of a span that does not exist yet: 404,
    // and the key stays free for the retry once the span exists.
    let finish = json!({"status": "complete", "idempotency_key": "claim-finish-1"});
    assert_eq!(api.finish_span(&span_id, finish.clone()).await.0, 404);
    let create = |id: &str, instance: &str, status: &str, key: &str| {
        json!({"details": {"id": id, "agent_instance_id": instance, "schema_name": "agent:x", "status": status,
            "payload": {}}, "idempotency_key": key})
    };
    let (status, _) = api.post("/api/v1/agent_spans", create(&span_id, &instance_id, "active", "claim-open-1")).await;
    assert_eq!(status, 200);
    let (status, finished) = api.finish_span(&span_id, finish.clone()).await;
    assert_eq!(status, 200, "{finished}");
    assert_eq!(api.finish_span(&span_id, finish).await, (200, finished));

    // A terminal create with a client id on an unknown instance: 404, key free again (a
    // different body with it is not `idempotency_key_reused`).
    let unknown = new_id();
    let (status, _) = api.post("/api/v1/agent_spans", create(&done_id, &unknown, "complete", "claim-done-1")).await;
    assert_eq!(status, 404);
    api.server.terminate_instance(&instance_id, Some("claimed stop")).unwrap();
    let (status, done) =
        api.post("/api/v1/agent_spans", create(&done_id, &instance_id, "complete", "claim-done-1")).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["control"], json!({"terminate": true, "reason": "claimed stop"}));
    let replay = api.post("/api/v1/agent_spans", create(&done_id, &instance_id, "complete", "claim-done-1")).await;
    assert_eq!(replay, (200, done));
    let (status, reused) =
        api.post("/api/v1/agent_spans", create(&done_id, &instance_id, "failed", "claim-done-1")).await;
    assert_eq!((status, reused["code"].as_str()), (422, Some("idempotency_key_reused")));
}

#[tokio::test]
async fn register_and_agent_create_replay_their_first_answer_after_the_resource_changed() {
    let api = Api::start();
    let (status, agent) =
        api.post("/api/v1/agent", json!({"details": {"name": "Replayed"}, "idempotency_key": "agent-create-1"})).await;
    assert_eq!(status, 200);
    let agent_id = agent["details"]["id"].as_str().unwrap().to_string();
    let register = json!({"agent_id": agent_id, "agent_version": {"name": "A"}, "idempotency_key": "register-1"});
    let (_, registered) = api.post("/api/v1/agent_instance/register", register.clone()).await;
    let instance_id = registered["details"]["id"].as_str().unwrap().to_string();
    // The agent turns active, the instance runs, gets a span and finishes.
    api.post(&format!("/api/v1/agent_instance/{instance_id}/start"), json!({})).await;
    assert_eq!(api.create_span(&instance_id, "agent:x", "complete", json!({})).await.0, 200);
    let finish = json!({"status": "complete", "idempotency_key": "finish-1"});
    let (_, finished) = api.post(&format!("/api/v1/agent_instance/{instance_id}/finish"), finish.clone()).await;

    let (status, replay) = api.post("/api/v1/agent_instance/register", register).await;
    assert_eq!((status, &replay), (200, &registered), "the register's answer, not the finished instance");
    let (status, replay) =
        api.post("/api/v1/agent", json!({"details": {"name": "Replayed"}, "idempotency_key": "agent-create-1"})).await;
    assert_eq!((status, &replay), (200, &agent), "the create's answer, not the active agent");
    let (status, replay) = api.post(&format!("/api/v1/agent_instance/{instance_id}/finish"), finish).await;
    assert_eq!((status, &replay), (200, &finished));
}

#[tokio::test]
async fn records_hold_a_reference_not_the_answer() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    for index in 0..20 {
        let body = json!({"details": {"agent_instance_id": instance_id, "schema_name": "agent:x", "status": "active",
            "payload": {"text": "x".repeat(500)}}, "idempotency_key": format!("open-{index}")});
        assert_eq!(api.post("/api/v1/agent_spans", body).await.0, 200);
    }
    let conn = rusqlite::Connection::open(api.server.db_path().unwrap()).unwrap();
    let (records, bodies, longest): (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(body), COALESCE(MAX(LENGTH(id) + LENGTH(resource_id)), 0) FROM idempotency_records",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!((records, bodies), (20, 0), "a span id per record, no answer bodies");
    assert!(longest < 64, "{longest}");
}
