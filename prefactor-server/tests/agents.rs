//! `POST /api/v1/agent`, `GET /api/v1/agent`, `GET /api/v1/agent/{id}`.

mod common;

use common::Api;
use prefactor_protocol::{Agent, ListResponse, Pfid, SuccessResponse};
use serde_json::json;

#[tokio::test]
async fn create_then_get_with_counts_and_actions() {
    let api = Api::start();
    let (status, created) = api
        .post(
            "/api/v1/agent",
            json!({"details": {"name": "Support bot", "description": "helps", "external_identifier": "support", "team_id": "t1"}}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let agent: SuccessResponse<Agent> = serde_json::from_value(created).unwrap();
    let agent = agent.details;
    assert_eq!(agent.type_, "agent");
    assert_eq!(agent.name, "Support bot");
    assert_eq!(agent.external_identifier.as_deref(), Some("support"));
    assert_eq!(agent.team_id.as_deref(), Some("t1"));
    assert!(agent.available_actions.unwrap().retire);
    let (status, got) = api.get(&format!("/api/v1/agent/{}", agent.id)).await;
    assert_eq!(status, 200);
    assert_eq!(got["details"]["status"], "pending");
    assert_eq!(got["details"]["instance_counts"]["total"], 0);
    api.post("/api/v1/agent_instance/register", json!({"agent_version": {}, "agent_id": agent.id})).await;
    let (_, got) = api.get(&format!("/api/v1/agent/{}", agent.id)).await;
    assert_eq!(got["details"]["status"], "active");
    assert_eq!(got["details"]["instance_counts"]["pending"], 1);
}

#[tokio::test]
async fn client_id_duplicate_external_identifier_and_empty_name() {
    let api = Api::start();
    let id = Pfid::generate(9).to_string();
    let (status, created) =
        api.post("/api/v1/agent", json!({"details": {"name": "A", "id": id, "external_identifier": "ext"}})).await;
    assert_eq!(status, 200);
    assert_eq!(created["details"]["id"], id);
    let (status, error) =
        api.post("/api/v1/agent", json!({"details": {"name": "B", "external_identifier": "ext"}})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["details.external_identifier"].is_array());
    let (status, error) = api.post("/api/v1/agent", json!({"details": {"name": "C", "id": id}})).await;
    assert_eq!(status, 409);
    assert_eq!(error["code"], "conflict");
    let (status, error) = api.post("/api/v1/agent", json!({"details": {"name": " "}})).await;
    assert_eq!(status, 422);
    assert!(error["errors"]["details.name"].is_array());
    let (status, _) = api.post("/api/v1/agent", json!({"name": "flat"})).await;
    assert_eq!(status, 422, "create is wrapped in details");
}

#[tokio::test]
async fn list_is_newest_first_with_pagination() {
    let api = Api::start();
    let mut ids = Vec::new();
    for index in 0..3 {
        let (_, created) = api.post("/api/v1/agent", json!({"details": {"name": format!("agent {index}")}})).await;
        ids.push(created["details"]["id"].as_str().unwrap().to_string());
    }
    let (status, body) = api.get("/api/v1/agent?pagination[page_size]=2").await;
    assert_eq!(status, 200);
    let list: ListResponse<Agent> = serde_json::from_value(body.clone()).unwrap();
    let listed: Vec<&str> = list.summaries.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(listed, vec![ids[2].as_str(), ids[1].as_str()]);
    assert_eq!(body["sorting"], json!({"field": "id", "direction": "desc"}));
    assert_eq!(body["pagination"]["next_page_offset"], 2);
    let (_, page2) = api.get("/api/v1/agent?pagination[page_size]=2&pagination[offset]=2").await;
    assert_eq!(page2["summaries"][0]["id"], ids[0]);
    assert!(page2["pagination"]["next_page_offset"].is_null());
}

#[tokio::test]
async fn unknown_agent_is_404() {
    let api = Api::start();
    let (status, error) = api.get(&format!("/api/v1/agent/{}", Pfid::generate(1))).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "not_found");
}
