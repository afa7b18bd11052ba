//! Summary templates are client input rendering end-user payloads: every way a template can
//! hang, abort or bloat the server ends in a `null` summary with the span stored, and a
//! template too big or too deeply nested is refused at register (422 naming the span type).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Api;
use prefactor_protocol::Pfid;
use serde_json::{Value, json};

/// A schema document whose span type and quality schema both use `template` (each with a
/// new version identifier, since a changed document needs one).
fn schema(template: &str) -> Value {
    static VERSIONS: AtomicUsize = AtomicUsize::new(0);
    json!({
        "external_identifier": format!("hostile-v{}", VERSIONS.fetch_add(1, Ordering::Relaxed)),
        "span_type_schemas": [{"name": "t:hostile", "params_schema": {"type": "object"}, "template": template}],
        "quality_schemas": [{"name": "q", "schema": {"type": "object"}, "template": template}]
    })
}

/// Creates a span of the hostile type and returns (status, summary), checking it is stored.
async fn span_summary(api: &Api, instance: &str, payload: Value) -> Value {
    let (status, body) = api.create_span(instance, "t:hostile", "complete", payload).await;
    assert_eq!(status, 200, "{body}");
    let id = body["details"]["id"].as_str().unwrap().to_string();
    let (status, listed) =
        api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance}&include_summaries=true")).await;
    assert_eq!(status, 200, "{listed}");
    let stored = listed["summaries"].as_array().unwrap().iter().find(|span| span["id"] == json!(id)).cloned();
    let stored = stored.expect("the span is stored");
    assert_eq!(stored["summary"], body["details"]["summary"], "list renders as the create did");
    body["details"]["summary"].clone()
}

async fn still_writes(api: &Api, instance: &str) {
    let (status, body) = api.get("/api/v1/ping").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api.create_span(instance, "t:hostile", "active", json!({"n": 1, "count": 1})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_sized_by_the_payload_gives_a_null_summary_not_an_abort() {
    let api = Api::start();
    let instance = api.register(Some(schema("{% for i in (1..count) %}*{% endfor %}"))).await;
    let instance = instance["id"].as_str().unwrap();
    let started = Instant::now();
    assert_eq!(span_summary(&api, instance, json!({"count": 3})).await, json!("***"));
    assert_eq!(span_summary(&api, instance, json!({"count": 1_000_000_000_000i64})).await, Value::Null);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    still_writes(&api, instance).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_loops_and_big_outputs_are_cut_off() {
    let api = Api::start();
    let templates = [
        "{% for a in (1..100000) %}{% for b in (1..100000) %}x{% endfor %}{% endfor %}",
        "{% assign s = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' %}{% for i in (1..30) %}{% assign s = s | append: s %}{% endfor %}{{ s }}",
        "{% for i in (1..9999) %}{{ text }}{% endfor %}",
    ];
    for template in templates {
        let instance = api.register(Some(schema(template))).await;
        let instance = instance["id"].as_str().unwrap();
        let started = Instant::now();
        let summary = span_summary(&api, instance, json!({"text": "y".repeat(1000)})).await;
        assert_eq!(summary, Value::Null, "{template}");
        assert!(started.elapsed() < Duration::from_secs(5), "{template} took {:?}", started.elapsed());
        still_writes(&api, instance).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_or_huge_template_is_refused_at_register_naming_the_span_type() {
    let api = Api::start();
    let deep = format!("{}x{}", "{% if a %}".repeat(3000), "{% endif %}".repeat(3000));
    let huge = "x".repeat(100_000);
    for template in [deep, huge] {
        let body = json!({"agent_version": {"name": "T", "external_identifier": "v1"}, "agent_schema_version": schema(&template)});
        let (status, body) = api.post("/api/v1/agent_instance/register", body).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["message"].as_str().unwrap().contains("t:hostile"), "{body}");
        assert!(body["errors"]["agent_schema_version.span_type_schemas[0].template"].is_array(), "{body}");
    }
    let (status, _) = api.get("/api/v1/ping").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_integer_filters_give_a_null_summary() {
    let api = Api::start();
    let instance = api.register(Some(schema("{{ n | divided_by: -1 }}"))).await;
    let instance = instance["id"].as_str().unwrap();
    assert_eq!(span_summary(&api, instance, json!({"n": 6})).await, json!("-6"));
    assert_eq!(span_summary(&api, instance, json!({"n": i64::MIN})).await, Value::Null);
    still_writes(&api, instance).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_through_a_missing_variable_renders_that_part_empty() {
    let api = Api::start();
    let instance = api.register(Some(schema("[{{ nope.deeper }}]{{ n }}"))).await;
    let instance = instance["id"].as_str().unwrap();
    assert_eq!(span_summary(&api, instance, json!({"n": 5})).await, json!("[]5"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_quality_template_never_holds_the_writer() {
    let api = Api::start();
    let instance =
        api.register(Some(schema("{% for i in (1..count) %}{% for j in (1..count) %}*{% endfor %}{% endfor %}"))).await;
    let instance = instance["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/agent_instance/{instance}/record_quality");
    let started = Instant::now();
    let (status, body) = api.post(&path, json!({"name": "q", "payload": {"count": 1_000_000}})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["details"]["quality_payloads"]["q"].is_object(), "payload stored: {body}");
    assert!(body["details"]["quality_summaries"].get("q").is_none(), "no summary: {body}");
    let (status, body) = api.post(&path, json!({"name": "q", "payload": {"count": 2}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["quality_summaries"]["q"], json!("****"));
    assert!(started.elapsed() < Duration::from_secs(5));
    still_writes(&api, &instance).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quality_recorded_in_the_bulk_request_that_registers_its_instance_gets_its_summary() {
    let api = Api::start();
    let instance_id = Pfid::generate(Pfid::random_partition()).encode().as_str().to_string();
    let items = json!([
        {"_type": "agent_instances/register", "idempotency_key": "bulk-register-0001", "id": instance_id,
         "agent_version": {"name": "T", "external_identifier": "v1"}, "agent_schema_version": schema("count={{ count }}")},
        {"_type": "agent_instances/record_quality", "idempotency_key": "bulk-quality-00001",
         "agent_instance_id": instance_id, "name": "q", "payload": {"count": 7}}
    ]);
    let (status, answer) = api.post("/api/v1/bulk", json!({ "items": items })).await;
    assert_eq!(status, 200, "{answer}");
    let quality = &answer["outputs"]["bulk-quality-00001"];
    assert_eq!(quality["details"]["quality_summaries"]["q"], json!("count=7"), "{answer}");
    let (status, instance) = api.get(&format!("/api/v1/agent_instance/{instance_id}")).await;
    assert_eq!(status, 200, "{instance}");
    assert_eq!(instance["details"]["quality_summaries"]["q"], json!("count=7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_open_span_is_answered_and_replayed_with_its_summary() {
    let api = Api::start();
    let instance = api.register(Some(schema("n={{ n }}"))).await;
    let instance = instance["id"].as_str().unwrap();
    let body = json!({"details": {"agent_instance_id": instance, "schema_name": "t:hostile", "status": "active",
                                  "payload": {"n": 4}, "idempotency_key": "open-span-key-0001"}});
    let send = || async {
        let response = api
            .http
            .post(api.url("/api/v1/agent_spans"))
            .bearer_auth(api.server.token())
            .json(&body)
            .send()
            .await
            .expect("sent");
        (response.status().as_u16(), response.text().await.expect("body"))
    };
    let (status, first) = send().await;
    assert_eq!(status, 200, "{first}");
    let parsed: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(parsed["details"]["summary"], json!("n=4"));
    let (status, replay) = send().await;
    assert_eq!(status, 200);
    assert_eq!(replay, first, "the replay is byte for byte the first answer");
}
