//! `GET /api/v1/ping` over real HTTP.

mod common;

use common::Api;

#[tokio::test]
async fn ping_answers_success_with_token_type() {
    let api = Api::start();
    let (status, body) = api.get("/api/v1/ping").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "success");
    assert_eq!(body["details"]["token_type"], "api");
}

#[test]
fn start_from_sync_code_gives_url_token_and_temp_db_that_is_removed() {
    let server = prefactor_server::LocalServer::start(Default::default()).unwrap();
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    assert!(!server.base_url().ends_with('/'));
    assert!(server.token().starts_with("pfl_"));
    let db = server.db_path().unwrap().to_path_buf();
    assert!(db.exists());
    server.shutdown();
    assert!(!db.exists(), "temporary database is deleted on shutdown");
}

#[tokio::test]
async fn ping_requests_are_recorded_in_order() {
    let api = Api::start();
    api.get("/api/v1/ping").await;
    api.get("/api/v1/ping?x=1").await;
    let requests = api.server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/api/v1/ping");
    assert_eq!(requests[1].query.as_deref(), Some("x=1"));
    assert_eq!(requests[1].status, 200);
    let expected = format!("Bearer {}", api.server.token());
    assert_eq!(requests[0].header("authorization"), Some(expected.as_str()));
    api.server.clear_requests();
    assert!(api.server.requests().is_empty());
}
