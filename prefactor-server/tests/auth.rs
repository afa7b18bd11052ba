//! Bearer authentication on every endpoint.

mod common;

use common::Api;
use prefactor_server::ServerConfig;
use serde_json::json;

#[tokio::test]
async fn missing_token_is_401_json_on_every_kind_of_route() {
    let api = Api::start();
    for path in ["/api/v1/ping", "/api/v1/agent", "/api/v1/agent_spans?agent_instance_id=x", "/no/such/route"] {
        let (status, body) = api.send(api.http.get(api.url(path))).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["code"], "unauthorized");
    }
    let (status, _) = api.send(api.http.post(api.url("/api/v1/agent_spans")).json(&json!({}))).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn wrong_token_and_wrong_scheme_are_rejected() {
    let api = Api::start();
    let (status, body) = api.send(api.http.get(api.url("/api/v1/ping")).bearer_auth("not-the-token")).await;
    assert_eq!(status, 401);
    assert_eq!(body["message"], "invalid bearer token");
    let (status, _) = api
        .send(api.http.get(api.url("/api/v1/ping")).header("authorization", format!("Basic {}", api.server.token())))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn every_configured_token_is_accepted_and_bearer_is_case_insensitive() {
    let api = Api::start_with(ServerConfig::default().with_token("first").with_token("second"));
    assert_eq!(api.server.token(), "first");
    for token in ["first", "second"] {
        let (status, _) =
            api.send(api.http.get(api.url("/api/v1/ping")).header("authorization", format!("bearer {token}"))).await;
        assert_eq!(status, 200, "{token}");
    }
}

#[tokio::test]
async fn rejected_requests_do_not_reach_handlers() {
    let api = Api::start();
    let (status, _) = api
        .send(
            api.http
                .post(api.url("/api/v1/agent_instance/register"))
                .bearer_auth("bad")
                .json(&json!({"agent_version": {}})),
        )
        .await;
    assert_eq!(status, 401);
    let (_, list) = api.get("/api/v1/agent_instance").await;
    assert_eq!(list["summaries"].as_array().unwrap().len(), 0);
}
