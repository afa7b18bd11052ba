//! Every route, fed malformed input, answers in the JSON error shape
//! `{"status": "error", "code", "message", "errors"?}` with a JSON content type: the API's
//! routes and the UI's, axum's own extractor rejections (a path segment that is not UTF-8),
//! wrong methods (405), unknown routes (404), missing credentials, bodies that are not JSON
//! or of the wrong media type.

mod common;

use common::Api;
use reqwest::Method;
use reqwest::header::COOKIE;
use serde_json::{Value, json};

/// Every route of the server: method, path (`{id}` is replaced), and whether it is a UI route
/// (session cookie) rather than an API route (bearer token).
const ROUTES: &[(&str, &str, bool)] = &[
    ("GET", "/api/v1/ping", false),
    ("GET", "/api/v1/account", false),
    ("GET", "/api/v1/alerts/count", false),
    ("GET", "/api/v1/risk_profile", false),
    ("POST", "/api/v1/agent_instance/register", false),
    ("GET", "/api/v1/agent_instance", false),
    ("GET", "/api/v1/agent_instance/{id}", false),
    ("PUT", "/api/v1/agent_instance/{id}", false),
    ("POST", "/api/v1/agent_instance/{id}/start", false),
    ("POST", "/api/v1/agent_instance/{id}/finish", false),
    ("POST", "/api/v1/agent_instance/{id}/record_quality", false),
    ("POST", "/api/v1/agent_instance/{id}/terminate", false),
    ("POST", "/api/v1/agent_spans", false),
    ("GET", "/api/v1/agent_spans", false),
    ("POST", "/api/v1/agent_spans/{id}/finish", false),
    ("POST", "/api/v1/agent", false),
    ("GET", "/api/v1/agent", false),
    ("GET", "/api/v1/agent/{id}", false),
    ("POST", "/api/v1/bulk", false),
    ("POST", "/__admin/faults", false),
    ("GET", "/__admin/requests", false),
    ("POST", "/v1/traces", false),
    ("POST", "/ui/api/login", true),
    ("GET", "/ui/api/session", true),
    ("GET", "/ui/api/agents", true),
    ("GET", "/ui/api/runs", true),
    ("GET", "/ui/api/runs/{id}", true),
    ("GET", "/ui/api/runs/{id}/events", true),
    ("POST", "/ui/api/runs/{id}/terminate", true),
    // Last: it ends the session the others use.
    ("POST", "/ui/api/logout", true),
];

/// Sends `request`; asserts an error status in the JSON error shape and returns (status, code).
async fn assert_error(what: &str, request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.unwrap_or_else(|error| panic!("{what}: no answer: {error}"));
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|value| value.to_str().ok()).unwrap_or("").to_string();
    let text = response.text().await.expect("body");
    assert!((400..600).contains(&status), "{what}: {status} is not an error: {text:.200}");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {status} with content type '{content_type}': {text:.200}"
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {status} body is not JSON: {text:.200}"));
    assert_eq!(body["status"], "error", "{what}: {body}");
    assert!(body["code"].as_str().is_some_and(|code| !code.is_empty()), "{what}: {body}");
    assert!(body["message"].as_str().is_some_and(|message| !message.is_empty()), "{what}: {body}");
    assert!(body.get("errors").is_none_or(Value::is_object), "{what}: {body}");
    (status, body["code"].as_str().unwrap_or_default().to_string())
}

async fn ui_session(api: &Api) -> (String, String) {
    let response =
        api.http.post(api.url("/ui/api/login")).json(&json!({"token": api.server.token()})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_malformed_input_in_the_json_error_shape() {
    let api = Api::start();
    let token = api.server.token().to_string();
    let (cookie, csrf) = ui_session(&api).await;
    let credentials = |request: reqwest::RequestBuilder, ui: bool| {
        if ui { request.header(COOKIE, &cookie).header("X-CSRF-Token", &csrf) } else { request.bearer_auth(&token) }
    };
    let mut checked = 0;
    for &(method, template, ui) in ROUTES {
        let method: Method = method.parse().unwrap();
        let takes_id = template.contains("{id}");
        let path = template.replace("{id}", "01m91rncd5dj44w704cdwz1r9hx1vxfq");

        // A method the route does not have: 405.
        let wrong = if method == Method::DELETE || method == Method::PATCH { Method::PUT } else { Method::PATCH };
        let what = format!("{wrong} {path}");
        let (status, code) = assert_error(&what, credentials(api.http.request(wrong, api.url(&path)), ui)).await;
        assert_eq!((status, code.as_str()), (405, "method_not_allowed"), "{what}");

        // Missing credentials (the login route takes none; the ping answers 401 too).
        if template != "/ui/api/login" {
            let what = format!("{method} {path} without credentials");
            let (status, _) = assert_error(&what, api.http.request(method.clone(), api.url(&path))).await;
            // Logout checks the CSRF token before the session: 403.
            assert!(matches!(status, 401 | 403), "{what}: {status}");
        }

        // A path segment that is not UTF-8, and one that is not an id.
        if takes_id {
            for bad in ["%FF%FE", "not-an-id"] {
                let path = template.replace("{id}", bad);
                let what = format!("{method} {path}");
                let request = credentials(api.http.request(method.clone(), api.url(&path)), ui);
                let (status, _) =
                    assert_error(&what, request.header("content-type", "application/json").body("{}")).await;
                assert!(matches!(status, 400 | 404 | 422), "{what}: {status}");
            }
        }

        // A body that is not JSON (logout reads none).
        if (method == Method::POST || method == Method::PUT) && template != "/ui/api/logout" {
            let what = format!("{method} {path} with a broken body");
            let request = credentials(api.http.request(method.clone(), api.url(&path)), ui)
                .header("content-type", "application/json")
                .body("{\"details\": ");
            let (status, _) = assert_error(&what, request).await;
            assert!(matches!(status, 400 | 404 | 415 | 422), "{what}: {status}");
        }
        checked += 1;
    }
    assert_eq!(checked, ROUTES.len());

    // Malformed queries.
    for path in [
        "/api/v1/agent_instance?pagination[offset]=-1",
        "/api/v1/agent_instance?pagination[page_size]=abc",
        "/api/v1/agent_spans?agent_instance_id=%FF",
        "/api/v1/agent?sorting=nope",
    ] {
        let (status, _) = assert_error(path, api.http.get(api.url(path)).bearer_auth(&token)).await;
        assert!(matches!(status, 400 | 422), "{path}: {status}");
    }
    for path in ["/ui/api/runs", "/ui/api/runs?agent_id=%FF%FE", "/ui/api/runs?agent_id=x&since=yesterday"] {
        let (status, _) = assert_error(path, api.http.get(api.url(path)).header(COOKIE, &cookie)).await;
        assert_eq!(status, 422, "{path}");
    }
    // The login's media type, unknown routes under each prefix, and a forged session.
    let (status, _) = assert_error("login as a form", api.http.post(api.url("/ui/api/login")).body("token=x")).await;
    assert_eq!(status, 415);
    for path in ["/nope", "/api/v1/nope", "/ui/api/nope", "/ui/nope", "/__admin/nope", "/api/v1/agent_instance/x/y/z"] {
        let (status, code) = assert_error(path, api.http.get(api.url(path)).bearer_auth(&token)).await;
        assert_eq!((status, code.as_str()), (404, "not_found"), "{path}");
    }
    let forged = api.http.get(api.url("/ui/api/agents")).header(COOKIE, "pf_session=forged");
    assert_eq!(assert_error("forged session", forged).await.0, 401);
}
