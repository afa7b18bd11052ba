//! Agent instance endpoints: register / start / finish / get / list / record_quality / terminate.

mod common;

use common::{Api, llm_schema};
use prefactor_protocol::{AgentInstance, ListResponse, Pfid, SuccessResponse};
use prefactor_server::ServerConfig;
use serde_json::{Value, json};

const REQUIRED_FIELDS: [&str; 9] = [
    "type",
    "id",
    "account_id",
    "agent_id",
    "agent_version_id",
    "environment_id",
    "agent_deployment_id",
    "status",
    "inserted_at",
];

#[tokio::test]
async fn register_returns_a_complete_pending_instance() {
    let api = Api::start();
    let details = api.register(Some(llm_schema())).await;
    for field in REQUIRED_FIELDS {
        assert!(details.get(field).is_some_and(|v| !v.is_null()), "missing {field}: {details}");
    }
    for field in ["started_at", "finished_at", "termination_reason"] {
        assert!(details[field].is_null(), "{field} present and null");
    }
    assert_eq!(details["type"], "agent_instance");
    assert_eq!(details["status"], "pending");
    assert_eq!(details["purpose"], "live");
    assert_eq!(details["span_counts"]["total"], 0);
    assert_eq!(details["quality_payloads"], json!({}));
    assert!(details["id"].as_str().unwrap().parse::<Pfid>().is_ok());
    let inserted = details["inserted_at"].as_str().unwrap();
    assert!(inserted.ends_with('Z') && inserted.len() == 27, "UTC with microseconds: {inserted}");
    // The body parses as the protocol type, as the SDKs will parse it.
    let _: AgentInstance = serde_json::from_value(details).unwrap();
}

#[tokio::test]
async fn register_echoes_ids_purpose_and_reuses_agent_and_version() {
    let api = Api::start();
    let agent_id = Pfid::generate(7).to_string();
    let environment_id = Pfid::generate(7).to_string();
    let instance_id = Pfid::generate(7).to_string().to_uppercase();
    let body = json!({
        "agent_version": {"name": "Bot", "external_identifier": "v8"},
        "agent_id": agent_id, "environment_id": environment_id, "id": instance_id,
        "purpose": "eval", "update_current_version": false
    });
    let (status, first) = api.post("/api/v1/agent_instance/register", body).await;
    assert_eq!(status, 200, "{first}");
    let first = &first["details"];
    assert_eq!(first["id"], instance_id.to_lowercase());
    assert_eq!(first["agent_id"], agent_id);
    assert_eq!(first["environment_id"], environment_id);
    assert_eq!(first["purpose"], "eval");
    let (_, second) = api
        .post(
            "/api/v1/agent_instance/register",
            json!({"agent_version": {"external_identifier": "v8"}, "agent_id": agent_id}),
        )
        .await;
    assert_eq!(second["details"]["agent_version_id"], first["agent_version_id"]);
    assert_ne!(second["details"]["id"], first["id"]);
    // The unknown agent id was created (dev convenience).
    let (status, agent) = api.get(&format!("/api/v1/agent/{agent_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(agent["details"]["name"], "Bot");
    assert_eq!(agent["details"]["status"], "active");
    assert_eq!(agent["details"]["instance_counts"]["total"], 2);
}

#[tokio::test]
async fn register_with_an_existing_instance_id_is_a_conflict() {
    let api = Api::start();
    let id = Pfid::generate(1).to_string();
    let body = json!({"agent_version": {}, "id": id});
    assert_eq!(api.post("/api/v1/agent_instance/register", body.clone()).await.0, 200);
    let (status, error) = api.post("/api/v1/agent_instance/register", body).await;
    assert_eq!(status, 409);
    assert_eq!(error["code"], "conflict");
}

#[tokio::test]
async fn strict_agents_rejects_unknown_and_missing_agent() {
    let api = Api::start_with(ServerConfig::default().with_strict_agents(true));
    let unknown = Pfid::generate(1).to_string();
    let (status, error) =
        api.post("/api/v1/agent_instance/register", json!({"agent_version": {}, "agent_id": unknown})).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "not_found");
    assert!(error["message"].as_str().unwrap().contains("not found"));
    let (status, error) = api.post("/api/v1/agent_instance/register", json!({"agent_version": {}})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["agent_id"].is_array());
    // A known agent works.
    let (_, agent) = api.post("/api/v1/agent", json!({"details": {"name": "Known"}})).await;
    let (status, _) = api
        .post("/api/v1/agent_instance/register", json!({"agent_version": {}, "agent_id": agent["details"]["id"]}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn schema_version_with_same_identifier_and_different_content_is_rejected() {
    let api = Api::start();
    let agent_id = Pfid::generate(1).to_string();
    let register = |schema: Value| json!({"agent_version": {}, "agent_id": agent_id, "agent_schema_version": schema});
    assert_eq!(api.post("/api/v1/agent_instance/register", register(llm_schema())).await.0, 200);
    assert_eq!(api.post("/api/v1/agent_instance/register", register(llm_schema())).await.0, 200);
    let mut changed = llm_schema();
    changed["span_type_schemas"][0]["title"] = json!("Changed");
    let (status, error) = api.post("/api/v1/agent_instance/register", register(changed)).await;
    assert_eq!(status, 422);
    let message = error["errors"]["agent_schema_version.external_identifier"][0].as_str().unwrap();
    assert!(message.contains("different content"), "{message}");
}

#[tokio::test]
async fn start_then_finish_sets_times_and_status() {
    let api = Api::start();
    let id = api.register_id().await;
    let (status, started) = api
        .post(&format!("/api/v1/agent_instance/{id}/start"), json!({"timestamp": "2026-08-04T08:55:41.254871+02:00"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(started["details"]["status"], "active");
    assert_eq!(started["details"]["started_at"], "2026-08-04T06:55:41.254871Z");
    let (status, finished) = api
        .post(
            &format!("/api/v1/agent_instance/{id}/finish"),
            json!({"status": "failed", "timestamp": "2026-08-04T06:56:02"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(finished["details"]["status"], "failed");
    assert_eq!(finished["details"]["finished_at"], "2026-08-04T06:56:02.000000Z");
    // Finishing again is a conflict; a late start changes nothing.
    let (status, error) = api.post(&format!("/api/v1/agent_instance/{id}/finish"), json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(error["code"], "conflict");
    let (status, late) = api.post(&format!("/api/v1/agent_instance/{id}/start"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(late["details"]["status"], "failed");
}

#[tokio::test]
async fn finish_from_pending_defaults_to_complete_with_empty_body() {
    let api = Api::start();
    let id = api.register_id().await;
    let response = api
        .http
        .post(api.url(&format!("/api/v1/agent_instance/{id}/finish")))
        .bearer_auth(api.server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["details"]["status"], "complete");
    assert!(body["details"]["finished_at"].is_string());
}

#[tokio::test]
async fn get_and_unknown_instance() {
    let api = Api::start();
    let id = api.register_id().await;
    let (status, body) = api.get(&format!("/api/v1/agent_instance/{id}")).await;
    assert_eq!(status, 200);
    let parsed: SuccessResponse<AgentInstance> = serde_json::from_value(body).unwrap();
    assert_eq!(parsed.details.id, id);
    let missing = Pfid::generate(1).to_string();
    for path in [
        format!("/api/v1/agent_instance/{missing}"),
        format!("/api/v1/agent_instance/{missing}/start"),
        format!("/api/v1/agent_instance/{missing}/finish"),
        format!("/api/v1/agent_instance/{missing}/terminate"),
    ] {
        let (status, error) =
            if path.ends_with(&missing) { api.get(&path).await } else { api.post(&path, json!({})).await };
        assert_eq!(status, 404, "{path}");
        assert_eq!(error["code"], "not_found");
    }
}

#[tokio::test]
async fn list_filters_by_agent_newest_first() {
    let api = Api::start();
    let agent_a = Pfid::generate(1).to_string();
    let agent_b = Pfid::generate(1).to_string();
    let mut ids_a = Vec::new();
    for agent in [&agent_a, &agent_a, &agent_b] {
        let (_, body) =
            api.post("/api/v1/agent_instance/register", json!({"agent_version": {}, "agent_id": agent})).await;
        if agent == &agent_a {
            ids_a.push(body["details"]["id"].as_str().unwrap().to_string());
        }
    }
    let (status, body) = api.get(&format!("/api/v1/agent_instance?agent_id={agent_a}")).await;
    assert_eq!(status, 200);
    let list: ListResponse<AgentInstance> = serde_json::from_value(body).unwrap();
    let listed: Vec<String> = list.summaries.iter().map(|i| i.id.clone()).collect();
    ids_a.reverse();
    assert_eq!(listed, ids_a);
    assert_eq!(list.pagination.unwrap().item_count, 2);
    let (_, all) = api.get("/api/v1/agent_instance").await;
    assert_eq!(all["summaries"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn record_quality_stores_renders_and_removes() {
    let api = Api::start();
    let id = api.register(Some(llm_schema())).await["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/agent_instance/{id}/record_quality");
    let (status, body) = api.post(&path, json!({"name": "accuracy", "payload": {"score": 0.92}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["quality_payloads"]["accuracy"]["score"], 0.92);
    assert_eq!(body["details"]["quality_summaries"]["accuracy"], "Score: 0.92");
    let (status, error) = api.post(&path, json!({"name": "accuracy", "payload": {"score": "high"}})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["payload/score"].is_array(), "{error}");
    let (status, error) = api.post(&path, json!({"name": "speed", "payload": {}})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["name"].is_array());
    let (status, body) = api.post(&path, json!({"name": "accuracy", "payload": null})).await;
    assert_eq!(status, 200);
    assert_eq!(body["details"]["quality_payloads"], json!({}));
    assert_eq!(body["details"]["quality_summaries"], json!({}));
}

#[tokio::test]
async fn terminate_sets_status_reason_and_blocks_finish() {
    let api = Api::start();
    let id = api.register_id().await;
    let (status, body) =
        api.post(&format!("/api/v1/agent_instance/{id}/terminate"), json!({"reason": "policy breach"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "success");
    assert_eq!(body["details"]["status"], "terminated");
    assert_eq!(body["details"]["termination_reason"], "policy breach");
    let (_, got) = api.get(&format!("/api/v1/agent_instance/{id}")).await;
    assert_eq!(got["details"]["status"], "terminated");
    assert!(got["details"]["finished_at"].is_string());
    let (status, error) = api.post(&format!("/api/v1/agent_instance/{id}/finish"), json!({"status": "complete"})).await;
    assert_eq!(status, 409);
    assert_eq!(error["code"], "conflict");
    let (status, _) = api.post(&format!("/api/v1/agent_instance/{id}/terminate"), json!({})).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn local_server_terminate_instance_matches_the_endpoint() {
    let api = Api::start();
    let id = api.register_id().await;
    api.server.terminate_instance(&id, Some("from the test")).unwrap();
    let (_, got) = api.get(&format!("/api/v1/agent_instance/{id}")).await;
    assert_eq!(got["details"]["status"], "terminated");
    assert_eq!(got["details"]["termination_reason"], "from the test");
    assert!(api.server.terminate_instance(&id, None).is_err());
    assert!(api.server.terminate_instance(&Pfid::generate(1).to_string(), None).is_err());
}
