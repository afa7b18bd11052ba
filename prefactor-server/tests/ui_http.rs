//! The trace UI over plain HTTP: nothing readable without a session (even on loopback), the
//! session cookie's flags, CSRF on terminate, the security headers, the run view's data and
//! the live stream. (The browser tests in the root crate's `tests/ui_browser.rs` drive the
//! page itself.)

mod common;

use std::time::Duration;

use common::{Api, llm_schema};
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, SET_COOKIE};
use serde_json::{Value, json};

struct Session {
    cookie: String,
    csrf: String,
}

async fn login(api: &Api, token: &str) -> Result<Session, u16> {
    let response = api.http.post(api.url("/ui/api/login")).json(&json!({"token": token})).send().await.unwrap();
    if !response.status().is_success() {
        return Err(response.status().as_u16());
    }
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    Ok(Session { cookie, csrf: body["csrf_token"].as_str().unwrap().to_string() })
}

async fn ui_get(api: &Api, session: Option<&Session>, path: &str) -> (u16, Value) {
    let mut request = api.http.get(api.url(path));
    if let Some(session) = session {
        request = request.header(COOKIE, &session.cookie);
    }
    api.send(request).await
}

async fn terminate(api: &Api, session: &Session, run: &str, csrf: Option<&str>, reason: &str) -> (u16, Value) {
    let mut request = api
        .http
        .post(api.url(&format!("/ui/api/runs/{run}/terminate")))
        .header(COOKIE, &session.cookie)
        .json(&json!({"reason": reason}));
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-Token", csrf);
    }
    api.send(request).await
}

#[tokio::test]
async fn pages_are_served_with_a_strict_policy_and_data_needs_a_session() {
    let api = Api::start();
    let instance = api.register(None).await;
    let run = instance["id"].as_str().unwrap();
    let agent = instance["agent_id"].as_str().unwrap();
    for path in ["/", "/ui/app.js", "/ui/app.css"] {
        let response = api.http.get(api.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let policy = response.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
    }
    let html = api.http.get(api.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains("style="), "no inline script or style");
    let js = api.http.get(api.url("/ui/app.js")).send().await.unwrap().text().await.unwrap();
    assert!(!js.contains("innerHTML") && !js.contains("insertAdjacentHTML") && !js.contains("eval("));

    for path in [
        "/ui/api/session".to_string(),
        "/ui/api/agents".to_string(),
        format!("/ui/api/runs?agent_id={agent}"),
        format!("/ui/api/runs/{run}"),
        format!("/ui/api/runs/{run}/events"),
    ] {
        let (status, body) = ui_get(&api, None, &path).await;
        assert_eq!(status, 401, "{path}: {body}");
        let forged = Session { cookie: "pf_session=0123".into(), csrf: String::new() };
        let (status, _) = ui_get(&api, Some(&forged), &path).await;
        assert_eq!(status, 401, "{path} with a made-up session");
    }
    let (status, _) = api.send(api.http.get(api.url("/ui/api/agents")).bearer_auth(api.server.token())).await;
    assert_eq!(status, 401, "the API token alone is not a browser session");
}

#[tokio::test]
async fn login_takes_the_servers_token_as_json_only() {
    let api = Api::start();
    assert_eq!(login(&api, "wrong").await.err(), Some(401));
    let form = api
        .http
        .post(api.url("/ui/api/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", api.server.token()))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415, "a cross-site form cannot log a browser in");
    let session = login(&api, api.server.token()).await.unwrap();
    let (status, body) = ui_get(&api, Some(&session), "/ui/api/session").await;
    assert_eq!((status, body["csrf_token"].as_str()), (200, Some(session.csrf.as_str())));
    let logout = api
        .http
        .post(api.url("/ui/api/logout"))
        .header(COOKIE, &session.cookie)
        .header("X-CSRF-Token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200);
    assert_eq!(ui_get(&api, Some(&session), "/ui/api/agents").await.0, 401, "logged out");
}

#[tokio::test]
async fn agents_runs_and_the_run_view_carry_what_the_pages_show() {
    let api = Api::start();
    let session = login(&api, api.server.token()).await.unwrap();
    let instance = api.register(Some(llm_schema())).await;
    let run = instance["id"].as_str().unwrap().to_string();
    let agent = instance["agent_id"].as_str().unwrap().to_string();
    let (_, parent) =
        api.create_span(&run, "agent:llm", "active", json!({"model": "<img src=x onerror=alert(1)>"})).await;
    let parent_id = parent["details"]["id"].as_str().unwrap();
    let (status, body) = api
        .post(
            "/api/v1/agent_spans",
            json!({"details": {"agent_instance_id": run, "schema_name": "agent:llm", "status": "failed",
                "parent_span_id": parent_id, "payload": {"model": "m", "needle": "find-me-42"},
                "result_payload": {"error": {"message": "rate limited", "type": "429"}, "tokens": 3}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    api.finish_span(
        parent_id,
        json!({"result_payload": {"usage": {"input_tokens": 100, "output_tokens": 20}, "cost": 0.01}}),
    )
    .await;
    let other = api.register(None).await["id"].as_str().unwrap().to_string();

    let (status, agents) = ui_get(&api, Some(&session), "/ui/api/agents").await;
    assert_eq!(status, 200);
    let listed = agents["agents"].as_array().unwrap().iter().find(|a| a["id"] == agent.as_str()).unwrap();
    assert_eq!(listed["run_count"], 2);

    let (_, runs) = ui_get(&api, Some(&session), &format!("/ui/api/runs?agent_id={agent}")).await;
    assert_eq!(runs["total"], 2);
    let row = runs["runs"].as_array().unwrap().iter().find(|r| r["id"] == run.as_str()).unwrap().clone();
    assert_eq!((row["span_count"].as_u64(), row["failed_count"].as_u64()), (Some(2), Some(1)));
    assert_eq!(row["error"], "rate limited");
    let (_, found) = ui_get(&api, Some(&session), &format!("/ui/api/runs?agent_id={agent}&q=find-me-42")).await;
    assert_eq!(found["runs"].as_array().unwrap().iter().map(|r| r["id"].clone()).collect::<Vec<_>>(), vec![json!(run)]);
    let (_, none) = ui_get(&api, Some(&session), &format!("/ui/api/runs?agent_id={agent}&q=find%25me")).await;
    assert_eq!(none["total"], 0, "LIKE wildcards in the search are literal");
    let (_, pending) = ui_get(&api, Some(&session), &format!("/ui/api/runs?agent_id={agent}&status=pending")).await;
    assert_eq!(pending["total"], 2);
    let (_, later) =
        ui_get(&api, Some(&session), &format!("/ui/api/runs?agent_id={agent}&since=2999-01-01T00:00:00Z")).await;
    assert_eq!(later["total"], 0);
    let (status, _) = ui_get(&api, Some(&session), &format!("/ui/api/runs?agent_id={agent}&status=exploded")).await;
    assert_eq!(status, 422);

    let (status, view) = ui_get(&api, Some(&session), &format!("/ui/api/runs/{run}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["spans"].as_array().unwrap().len(), 2);
    let failed = view["spans"].as_array().unwrap().iter().find(|s| s["status"] == "failed").unwrap();
    assert_eq!(failed["error"], "rate limited");
    assert_eq!(failed["parent_span_id"], parent_id);
    let llm = view["spans"].as_array().unwrap().iter().find(|s| s["id"] == parent_id).unwrap();
    assert_eq!(llm["payload"]["model"], "<img src=x onerror=alert(1)>", "stored and sent as data, unchanged");
    assert_eq!(llm["title"], "LLM Call");
    assert!(view["span_types"]["agent:llm"]["params_schema"].is_object());
    assert_eq!(view["usage"]["input_tokens"], 100);
    assert_eq!(view["usage"]["total_tokens"], 120);
    assert_eq!(view["usage"]["cost"], 0.01);
    assert!(other != run);
}

/// The runs page over HTTP: its `older` / `newer` keys page through every run and back, a
/// search answers how far it read, and a bad key, both keys or an offset too deep for a walk
/// are 422s.
#[tokio::test]
async fn the_runs_page_pages_by_key_and_says_how_far_a_search_read() {
    let api = Api::start();
    let session = login(&api, api.server.token()).await.unwrap();
    let first = api.register(None).await;
    let agent = first["agent_id"].as_str().unwrap().to_string();
    let mut registered = vec![first["id"].as_str().unwrap().to_string()];
    for _ in 0..119 {
        registered.push(api.register_id().await);
    }
    let runs_url = |extra: &str| format!("/ui/api/runs?agent_id={agent}{extra}");
    let ids = |page: &Value| -> Vec<String> {
        page["runs"].as_array().unwrap().iter().map(|run| run["id"].as_str().unwrap().to_string()).collect()
    };
    let mut pages = vec![ui_get(&api, Some(&session), &runs_url("")).await.1];
    assert_eq!((pages[0]["total"].as_u64(), pages[0]["newer"].is_null()), (Some(120), true), "{}", pages[0]);
    while let Some(older) = pages.last().unwrap()["older"].as_str() {
        let offset = 50 * pages.len();
        let (status, page) = ui_get(&api, Some(&session), &runs_url(&format!("&offset={offset}&after={older}"))).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["offset"], offset);
        pages.push(page);
        assert!(pages.len() <= 3, "120 runs are three pages");
    }
    let mut listed: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(listed.len(), 120);
    listed.sort();
    registered.sort();
    assert_eq!(listed, registered, "every run once");
    let newer = pages[2]["newer"].as_str().unwrap();
    let (_, back) = ui_get(&api, Some(&session), &runs_url(&format!("&offset=50&before={newer}"))).await;
    assert_eq!((ids(&back), back["offset"].as_u64()), (ids(&pages[1]), Some(50)));
    // Newer from page 2 reaches the newest run: the answer is the first page, numbered so.
    let newer = pages[1]["newer"].as_str().unwrap();
    let (_, top) = ui_get(&api, Some(&session), &runs_url(&format!("&offset=7&before={newer}"))).await;
    assert_eq!((ids(&top), top["offset"].as_u64(), top["newer"].is_null()), (ids(&pages[0]), Some(0), true));
    let (status, _) = ui_get(&api, Some(&session), &runs_url(&format!("&offset={}&after={newer}", u64::MAX))).await;
    assert_eq!(status, 200, "a huge offset only numbers the rows");

    let (_, since) = ui_get(&api, Some(&session), &runs_url("&since=2000-01-01T00:00:00Z")).await;
    assert_eq!((since["total"].as_u64(), since["total_is_lower_bound"].as_bool()), (Some(120), Some(false)));
    let (_, searched) = ui_get(&api, Some(&session), &runs_url("&q=nowhere")).await;
    assert_eq!(searched["runs"].as_array().unwrap().len(), 0);
    assert_eq!(searched["search"]["runs_examined"], 120, "{searched}");
    assert_eq!((searched["search"]["stopped"].as_bool(), searched["older"].is_null()), (Some(false), true));

    for bad in ["&after=nonsense", "&after=a~b&before=a~b", "&offset=10001", "&q=x&before=a~b"] {
        let (status, body) = ui_get(&api, Some(&session), &runs_url(bad)).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
}

#[tokio::test]
async fn terminate_needs_the_csrf_token_and_a_reason_and_the_agent_is_told() {
    let api = Api::start();
    let session = login(&api, api.server.token()).await.unwrap();
    let run = api.register_id().await;
    api.post(&format!("/api/v1/agent_instance/{run}/start"), json!({})).await;
    assert_eq!(terminate(&api, &session, &run, None, "stop").await.0, 403);
    assert_eq!(terminate(&api, &session, &run, Some("forged"), "stop").await.0, 403);
    let (status, body) = terminate(&api, &session, &run, Some(&session.csrf), "   ").await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = terminate(&api, &session, &run, Some(&session.csrf), "looping on search").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["run"]["status"], "terminated");
    let (status, _) = terminate(&api, &session, &run, Some(&session.csrf), "again").await;
    assert_eq!(status, 409, "already terminated");
    let (_, span) = api.create_span(&run, "agent:tool", "active", json!({})).await;
    assert_eq!(span["control"], json!({"terminate": true, "reason": "looping on search"}), "{span}");
}

#[tokio::test]
async fn the_live_stream_announces_new_spans() {
    let api = Api::start();
    let session = login(&api, api.server.token()).await.unwrap();
    let run = api.register_id().await;
    api.post(&format!("/api/v1/agent_instance/{run}/start"), json!({})).await;
    let mut response = api
        .http
        .get(api.url(&format!("/ui/api/runs/{run}/events")))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut seen = String::new();
    let mut created = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // The first event is the current state; a second one must follow the new span.
    while seen.matches("event: changed").count() < 2 {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await.expect("an event within 10 s").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("the stream stays open")));
        if !created && seen.contains("event: changed") {
            created = true;
            api.create_span(&run, "agent:tool", "active", json!({})).await;
        }
    }
    assert!(seen.contains("|1|"), "the second event counts the new span: {seen}");
}

/// Every key of `runtime_environment` is optional upstream and its shape is not checked: a
/// register whose environment has other types is accepted, and the run view shows it as sent.
#[tokio::test]
async fn a_runtime_environment_of_another_shape_is_kept_as_sent() {
    let api = Api::start();
    let environment = json!({"agent_sdk": "langchain", "os": 7, "extra": {"k": true}});
    let body = json!({"agent_version": {"name": "odd", "runtime_environment": environment}});
    let (status, registered) = api.post("/api/v1/agent_instance/register", body).await;
    assert_eq!(status, 200, "{registered}");
    let run = registered["details"]["id"].as_str().unwrap();
    let session = login(&api, api.server.token()).await.expect("a session");
    let (status, view) = ui_get(&api, Some(&session), &format!("/ui/api/runs/{run}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["runtime_environment"], environment);
}
