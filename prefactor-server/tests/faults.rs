//! Fault injection: status/body/content type/Retry-After, delays, `times`, method and glob
//! matching, and the HTTP admin endpoints.

mod common;

use std::time::{Duration, Instant};

use common::Api;
use prefactor_server::FaultRule;
use serde_json::{Value, json};

#[tokio::test]
async fn status_fault_replaces_the_answer_with_a_json_error() {
    let api = Api::start();
    api.server.add_fault(FaultRule::status("/api/v1/ping", 503).retry_after(7));
    let response = api.http.get(api.url("/api/v1/ping")).bearer_auth(api.server.token()).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["code"], "server_error");
    api.server.clear_faults();
    assert_eq!(api.get("/api/v1/ping").await.0, 200);
}

#[tokio::test]
async fn times_limits_how_often_a_rule_applies() {
    let api = Api::start();
    api.server.add_fault(FaultRule::status("/api/v1/ping", 429).times(2));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(api.get("/api/v1/ping").await.0);
    }
    assert_eq!(statuses, vec![429, 429, 200]);
}

#[tokio::test]
async fn raw_html_body_and_content_type() {
    let api = Api::start();
    api.server.add_fault(FaultRule::status("/api/v1/ping", 502).body("<html>Bad gateway</html>", "text/html"));
    let response = api.http.get(api.url("/api/v1/ping")).bearer_auth(api.server.token()).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_eq!(response.text().await.unwrap(), "<html>Bad gateway</html>");
}

#[tokio::test]
async fn glob_and_method_matching_hits_only_span_finish() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    api.server.add_fault(FaultRule::status("/api/v1/agent_spans/*/finish", 409).method("POST"));
    let (status, created) = api.create_span(&instance_id, "agent:x", "active", json!({})).await;
    assert_eq!(status, 200, "create is not matched");
    let span_id = created["details"]["id"].as_str().unwrap();
    let (status, error) = api.finish_span(span_id, json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(error["code"], "conflict");
    // The fault answered instead of the handler: the span is still active.
    let (_, list) = api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance_id}")).await;
    assert_eq!(list["summaries"][0]["status"], "active");
}

#[tokio::test]
async fn delay_only_rule_slows_then_handles() {
    let api = Api::start();
    api.server.add_fault(FaultRule::delay("/api/v1/ping", 300).times(1));
    let started = Instant::now();
    let (status, _) = api.get("/api/v1/ping").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    api.get("/api/v1/ping").await;
    assert!(started.elapsed() < Duration::from_millis(300), "rule used up");
}

#[tokio::test]
async fn admin_endpoints_add_and_clear_rules_with_auth() {
    let api = Api::start();
    let (status, _) =
        api.send(api.http.post(api.url("/__admin/faults")).json(&json!({"path": "/api/v1/ping", "status": 500}))).await;
    assert_eq!(status, 401, "admin needs the token too");
    let (status, body) = api
        .post("/__admin/faults", json!({"path": "/api/v1/ping", "status": 404, "body": "{\"code\":\"not_found\"}"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["details"]["status"], 404);
    let (status, body) = api.get("/api/v1/ping").await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"code": "not_found"}));
    let (status, _) = api.send(api.http.delete(api.url("/__admin/faults")).bearer_auth(api.server.token())).await;
    assert_eq!(status, 200);
    assert_eq!(api.get("/api/v1/ping").await.0, 200);
    let (status, error) = api.post("/__admin/faults", json!({"status": 500})).await;
    assert_eq!(status, 422, "path is required: {error}");
}

#[tokio::test]
async fn faulted_requests_are_recorded_and_admin_requests_are_not() {
    let api = Api::start();
    api.post("/__admin/faults", json!({"path": "/api/v1/ping", "status": 500, "times": 1})).await;
    api.get("/api/v1/ping").await;
    let recorded = api.server.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, 500);
    let (_, log) = api.get("/__admin/requests").await;
    assert_eq!(log["details"][0]["status"], 500);
}

/// Sends a span create and returns whether an answer arrived (`None`: the connection was lost).
async fn create_answered(api: &Api, instance_id: &str) -> Option<u16> {
    let body = json!({"details": {"agent_instance_id": instance_id, "schema_name": "agent:x",
        "status": "active", "payload": {}}});
    let response =
        api.http.post(api.url("/api/v1/agent_spans")).bearer_auth(api.server.token()).json(&body).send().await;
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            response.bytes().await.ok().map(|_| status)
        }
        Err(_) => None,
    }
}

async fn span_count(api: &Api, instance_id: &str) -> usize {
    let (_, list) = api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance_id}")).await;
    list["summaries"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn reset_before_applies_nothing_and_reset_after_applies_without_an_answer() {
    use prefactor_server::faults::Reset;
    let api = Api::start();
    let instance_id = api.register_id().await;
    api.server.add_fault(FaultRule::reset("/api/v1/agent_spans", Reset::Before).method("POST").times(1));
    assert_eq!(create_answered(&api, &instance_id).await, None, "no answer");
    assert_eq!(span_count(&api, &instance_id).await, 0, "nothing was applied");

    api.server.add_fault(FaultRule::reset("/api/v1/agent_spans", Reset::After).method("POST").times(1));
    assert_eq!(create_answered(&api, &instance_id).await, None, "no answer");
    assert_eq!(span_count(&api, &instance_id).await, 1, "the create was applied");
    assert_eq!(create_answered(&api, &instance_id).await, Some(200), "rules used up");
}

#[tokio::test]
async fn probability_rules_fault_their_share_repeatably_for_a_seed() {
    let api = Api::start();
    let run = |seed| {
        let api = &api;
        async move {
            api.server.clear_faults();
            api.server.seed_faults(seed);
            api.server.add_fault(FaultRule::status("/api/v1/ping", 503).probability(0.1));
            api.server.add_fault(FaultRule::status("/api/v1/ping", 500).probability(0.1));
            let mut statuses = Vec::new();
            for _ in 0..400 {
                statuses.push(api.get("/api/v1/ping").await.0);
            }
            statuses
        }
    };
    let first = run(7).await;
    assert_eq!(first, run(7).await, "the same seed faults the same requests");
    let share = |status| first.iter().filter(|s| **s == status).count();
    assert!((20..=60).contains(&share(503)), "{} of 400 answered 503", share(503));
    assert!((20..=60).contains(&share(500)), "{} of 400 answered 500", share(500));
    assert_eq!(share(200) + share(503) + share(500), 400);
}
