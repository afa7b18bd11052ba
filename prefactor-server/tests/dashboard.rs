//! The seven reads of Prefactor's open dashboard (prefactordev/prefactor-open-dashboard), each
//! with the exact query string it sends, and the fields it reads from the answers. Paging goes
//! past offset 100 the way the dashboard pages: `pagination[page_size]=100`, then
//! `next_page_offset` until it is null.

mod common;

use std::collections::HashSet;

use common::Api;
use serde_json::{Value, json};

/// The dashboard's paging and sorting suffix.
fn paging(offset: u64) -> String {
    format!("pagination[page_size]=100&pagination[offset]={offset}&sorting[field]=id&sorting[direction]=desc")
}

/// Every row of a list, paged as the dashboard pages (bounded: at most 20 pages).
async fn all_pages(api: &Api, path_and_filter: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut offset = 0;
    for _ in 0..20 {
        let separator = if path_and_filter.contains('?') { '&' } else { '?' };
        let (status, body) = api.get(&format!("{path_and_filter}{separator}{}", paging(offset))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["sorting"], json!({"field": "id", "direction": "desc"}));
        let page = body["summaries"].as_array().expect("summaries").clone();
        assert!(page.len() <= 100);
        let empty = page.is_empty();
        rows.extend(page);
        match body["pagination"]["next_page_offset"].as_u64() {
            Some(next) if !empty => offset = next,
            _ => return rows,
        }
    }
    panic!("more than 20 pages")
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter().map(|row| row["id"].as_str().expect("id").to_string()).collect()
}

fn assert_newest_first(ids: &[String]) {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "id descending");
}

async fn register_for(api: &Api, agent_id: &str, purpose: &str) -> String {
    let body = json!({"agent_id": agent_id, "purpose": purpose, "agent_version": {"name": "Dash", "external_identifier": "v1"}});
    let (status, body) = api.post("/api/v1/agent_instance/register", body).await;
    assert_eq!(status, 200, "{body}");
    body["details"]["id"].as_str().unwrap().to_string()
}

async fn new_agent(api: &Api, name: &str) -> String {
    let (status, body) = api.post("/api/v1/agent", json!({"details": {"name": name}})).await;
    assert_eq!(status, 200, "{body}");
    body["details"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn account_answers_the_servers_one_account() {
    let api = Api::start();
    let instance = api.register(None).await;
    let (status, body) = api.get("/api/v1/account").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["id"], instance["account_id"]);
    assert_eq!(body["details"]["type"], "account");
    let (status, _) = api.send(api.http.get(api.url("/api/v1/account"))).await;
    assert_eq!(status, 401, "the dashboard's token check must fail without a token");
}

#[tokio::test]
async fn alerts_count_is_a_top_level_count() {
    let api = Api::start();
    let (status, body) = api.get("/api/v1/alerts/count").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 0);
}

#[tokio::test]
async fn risk_profiles_list_is_empty_for_the_account() {
    let api = Api::start();
    let (_, account) = api.get("/api/v1/account").await;
    let account_id = account["details"]["id"].as_str().unwrap();
    let (status, body) =
        api.get(&format!("/api/v1/risk_profile?account_id={account_id}&pagination[page_size]=100")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summaries"], json!([]));
    let other = "01k2dyevhz0000001ffz5j16ag7p8wkb";
    let (status, _) = api.get(&format!("/api/v1/risk_profile?account_id={other}&pagination[page_size]=100")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn agents_page_newest_first_past_offset_100() {
    let api = Api::start();
    for index in 0..103 {
        new_agent(&api, &format!("agent {index}")).await;
    }
    let rows = all_pages(&api, "/api/v1/agent").await;
    assert_eq!(rows.len(), 103);
    let ids = ids(&rows);
    assert_newest_first(&ids);
    for row in &rows {
        for field in ["id", "name", "status", "type", "updated_at"] {
            assert!(!row[field].is_null(), "agent row lacks {field}: {row}");
        }
    }
}

#[tokio::test]
async fn instances_of_an_agent_page_newest_first_past_offset_100() {
    let api = Api::start();
    let agent = new_agent(&api, "many runs").await;
    let other = new_agent(&api, "other").await;
    register_for(&api, &other, "live").await;
    let mut registered = Vec::new();
    for index in 0..102 {
        registered.push(register_for(&api, &agent, if index % 2 == 0 { "live" } else { "eval" }).await);
    }
    api.post(&format!("/api/v1/agent_instance/{}/start", registered[0]), json!({})).await;
    api.post(&format!("/api/v1/agent_instance/{}/terminate", registered[0]), json!({"reason": "stop"})).await;
    let rows = all_pages(&api, &format!("/api/v1/agent_instance?agent_id={agent}")).await;
    let listed = ids(&rows);
    assert_newest_first(&listed);
    assert_eq!(listed.iter().collect::<HashSet<_>>(), registered.iter().collect::<HashSet<_>>());
    let terminated = rows.iter().find(|row| row["id"] == registered[0].as_str()).unwrap();
    assert_eq!(terminated["termination_reason"], "stop");
    for row in &rows {
        assert_eq!(row["agent_id"], agent.as_str());
        for field in ["id", "status", "purpose", "started_at", "finished_at", "agent_id", "termination_reason"] {
            assert!(row.get(field).is_some(), "instance row lacks {field}: {row}");
        }
    }
}

#[tokio::test]
async fn spans_of_an_agent_page_newest_first_past_offset_100_with_risk_fields() {
    let api = Api::start();
    let agent = new_agent(&api, "spanning").await;
    let first = register_for(&api, &agent, "live").await;
    let second = register_for(&api, &agent, "eval").await;
    let unrelated = register_for(&api, &new_agent(&api, "other").await, "live").await;
    let mut created = Vec::new();
    for index in 0..130 {
        let instance = if index % 3 == 0 { &second } else { &first };
        let payload = json!({"index": index, "secret": {"$sensitive": "api_key", "value": "sk-1", "labels": ["pii"]}});
        let (status, body) = api
            .post(
                "/api/v1/agent_spans",
                json!({"details": {"agent_instance_id": instance, "schema_name": "agent:tool", "status": "complete",
                                   "payload": payload, "result_payload": {"ok": index}, "sensitive_encoding": index == 0}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        created.push(body["details"]["id"].as_str().unwrap().to_string());
    }
    api.create_span(&unrelated, "agent:tool", "active", json!({})).await;
    let rows = all_pages(&api, &format!("/api/v1/agent_spans?agent_id={agent}&include_risk_level=true")).await;
    let listed = ids(&rows);
    assert_eq!(listed.len(), 130);
    assert_newest_first(&listed);
    assert_eq!(listed.iter().collect::<HashSet<_>>(), created.iter().collect::<HashSet<_>>());
    let fields = [
        "id",
        "status",
        "schema_name",
        "schema_title",
        "started_at",
        "finished_at",
        "parent_span_id",
        "agent_instance_id",
        "agent_id",
        "purpose",
        "risk_level",
        "risk_score",
        "sensitive_encoding",
        "payload",
        "result_payload",
    ];
    for row in &rows {
        for field in fields {
            assert!(row.get(field).is_some(), "span row lacks {field}: {row}");
        }
        assert_eq!(row["agent_id"], agent.as_str());
        let expected_purpose = if row["agent_instance_id"] == second.as_str() { "eval" } else { "live" };
        assert_eq!(row["purpose"], expected_purpose);
        assert!(row["risk_level"].is_null() && row["risk_score"].is_null(), "no risk profile: null");
        assert_eq!(row["payload"]["secret"]["$sensitive"], "api_key", "sensitive values are stored as sent");
        assert_eq!(row["result_payload"]["ok"], row["payload"]["index"]);
    }
    let oldest = rows.last().unwrap();
    assert_eq!(oldest["id"], created[0].as_str());
    assert_eq!(oldest["sensitive_encoding"], true);

    // The agent's span count is reused between pages only while nothing was written.
    let first_page = format!("/api/v1/agent_spans?agent_id={agent}&include_risk_level=true&{}", paging(0));
    let (_, before) = api.get(&first_page).await;
    assert_eq!(before["pagination"]["item_count"], 130);
    let (_, newest) = api.create_span(&first, "agent:tool", "active", json!({})).await;
    let (_, after) = api.get(&first_page).await;
    assert_eq!(after["pagination"]["item_count"], 131, "a write makes the next list count again");
    assert_eq!(after["summaries"][0]["id"], newest["details"]["id"]);
}

#[tokio::test]
async fn newest_spans_of_a_long_run_come_first_with_either_sorting_form() {
    let api = Api::start();
    let instance = api.register_id().await;
    let mut created = Vec::new();
    for _ in 0..105 {
        let (_, body) = api.create_span(&instance, "agent:tool", "active", json!({})).await;
        created.push(body["details"]["id"].as_str().unwrap().to_string());
    }
    let newest = created.last().unwrap().as_str();
    let bracket = format!("/api/v1/agent_spans?agent_instance_id={instance}&{}", paging(0));
    let (_, body) = api.get(&bracket).await;
    assert_eq!(body["summaries"][0]["id"], newest);
    assert_eq!(body["pagination"]["next_page_offset"], 100);
    let (_, body) = api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance}&sorting=-id")).await;
    assert_eq!(body["summaries"][0]["id"], newest);
    let (status, body) = api
        .get(&format!("/api/v1/agent_spans?agent_instance_id={instance}&sorting[field]=id&sorting[direction]=sideways"))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"]["sorting[direction]"].is_array(), "{body}");
    let (status, _) =
        api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance}&pagination[page_size]=101")).await;
    assert_eq!(status, 422, "page size is capped at 100");
}

#[tokio::test]
async fn legacy_quality_payload_is_replaced_by_put_and_read_by_get() {
    let api = Api::start();
    let schema = json!({
        "external_identifier": "q-v1",
        "quality_schema": {
            "title": "Quality",
            "schema": {"type": "object", "properties": {"score": {"type": "number"}}, "required": ["score"]},
            "template": "Score {{ score }}"
        }
    });
    let instance = api.register(Some(schema)).await["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/agent_instance/{instance}");
    let (status, body) = api.get(&path).await;
    assert_eq!(status, 200);
    assert!(body["details"]["quality_payload"].is_null() && body["details"]["quality_summary"].is_null(), "{body}");

    let put = |payload: Value| api.send(api.http.put(api.url(&path)).bearer_auth(api.server.token()).json(&payload));
    let (status, body) = put(json!({"details": {"quality_payload": {"score": 0.5}}})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = put(json!({"details": {"quality_payload": {"score": 0.9}}})).await;
    assert_eq!(status, 200, "{body}");
    let (status, rejected) = put(json!({"details": {"quality_payload": {"score": "high"}}})).await;
    assert_eq!(status, 422, "{rejected}");

    let (_, body) = api.get(&path).await;
    assert_eq!(body["details"]["quality_payload"], json!({"score": 0.9}), "replaced, not merged");
    assert_eq!(body["details"]["quality_summary"], "Score 0.9");
    let (_, spans) = api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance}&sorting=id")).await;
    let quality: Vec<&Value> =
        spans["summaries"].as_array().unwrap().iter().filter(|s| s["schema_name"] == "prefactor:quality").collect();
    assert_eq!(quality.len(), 2, "each publish records a prefactor:quality span: {spans}");
    assert_eq!(quality[1]["payload"], json!({"score": 0.9}));
    assert_eq!(quality[1]["status"], "complete");
}

#[tokio::test]
async fn register_accepts_what_prefactor_core_0_5_3_sends() {
    let api = Api::start();
    let agent = new_agent(&api, "core").await;
    let body = json!({
        "agent_id": agent,
        "external_identifier": "job-42",
        "agent_version": {"name": "py", "external_identifier": "v1", "runtime_environment": {
            "agent_sdk": [], "os": "linux", "prefactor_sdk": ["prefactor-core@0.5.3"], "runtime": "cpython@3.12"}},
        "runtime_environment": {"runtime": "node@22"},
        "agent_schema_version": {"external_identifier": "s1", "span_type_schemas": [{
            "name": "agent:llm", "params_schema": {"type": "object"},
            "data_risk": {"sensitivity": "high", "categories": ["pii"]}}]}
    });
    let (status, registered) = api.post("/api/v1/agent_instance/register", body.clone()).await;
    assert_eq!(status, 200, "{registered}");
    assert_eq!(registered["details"]["external_identifier"], "job-42");
    let id = registered["details"]["id"].as_str().unwrap();
    let (_, fetched) = api.get(&format!("/api/v1/agent_instance/{id}")).await;
    assert_eq!(fetched["details"]["external_identifier"], "job-42");

    let (status, duplicate) = api.post("/api/v1/agent_instance/register", body.clone()).await;
    // A 422 naming the field, not a 409: an SDK takes a 409 to a register for "already made".
    assert_eq!(status, 422, "external_identifier is unique per agent: {duplicate}");
    assert!(duplicate["errors"]["external_identifier"][0].as_str().unwrap().contains("job-42"), "{duplicate}");
    let mut elsewhere = body;
    elsewhere["agent_id"] = json!(new_agent(&api, "another").await);
    let (status, other) = api.post("/api/v1/agent_instance/register", elsewhere).await;
    assert_eq!(status, 200, "another agent may use the same identifier: {other}");
}

/// An agent with more spans than its list sorts by time (20,000): asked for no order, its
/// list is read in id order and says so; asked for `started_at`, it is a 422 that names the
/// orders that work; by id, and one run's spans by `started_at`, it answers as always.
#[tokio::test]
async fn an_agent_too_large_to_sort_by_time_lists_by_id_and_refuses_a_time_sort() {
    let api = Api::start();
    let instance = api.register_id().await;
    let (_, run) = api.get(&format!("/api/v1/agent_instance/{instance}")).await;
    let agent = run["details"]["agent_id"].as_str().unwrap().to_string();
    let spans = prefactor_server::db::spans::SORTED_AGENT_LIST_LIMIT + 1;
    for batch in 0..spans.div_ceil(1_000) {
        let items: Vec<Value> = (batch * 1_000..((batch + 1) * 1_000).min(spans))
            .map(|index| {
                json!({"_type": "agent_spans/create", "idempotency_key": format!("span-key-{index:06}"),
                       "details": {"agent_instance_id": instance, "schema_name": "agent:x", "status": "complete",
                                   "payload": {"index": index}}})
            })
            .collect();
        let (status, body) = api.post("/api/v1/bulk", json!({ "items": items })).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = api.get(&format!("/api/v1/agent_spans?agent_id={agent}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sorting"], json!({"field": "id", "direction": "asc"}));
    assert_eq!(body["pagination"]["item_count"], spans);
    let ids: Vec<&str> = body["summaries"].as_array().unwrap().iter().map(|row| row["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
    for sorting in ["sorting=started_at", "sorting[field]=inserted_at&sorting[direction]=desc"] {
        let (status, body) = api.get(&format!("/api/v1/agent_spans?agent_id={agent}&{sorting}")).await;
        assert_eq!(status, 422, "{sorting}: {body}");
        assert!(body["message"].as_str().unwrap().contains("sort by id"), "{body}");
    }
    let (status, _) = api.get(&format!("/api/v1/agent_spans?agent_id={agent}&{}", paging(0))).await;
    assert_eq!(status, 200);
    let (status, body) =
        api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance}&sorting=-started_at")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pagination"]["item_count"], spans);
}
