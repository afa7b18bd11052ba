//! `POST /api/v1/bulk`: mixed batches, order dependence, stop at the first error, replay,
//! whole-request validation, auth and the terminate control, over real HTTP.

mod common;

use common::{Api, llm_schema};
use prefactor_protocol::{BulkResponse, Pfid};
use serde_json::{Value, json};

fn new_id() -> String {
    Pfid::generate(Pfid::random_partition()).encode().as_str().to_string()
}

async fn bulk(api: &Api, items: Value) -> (u16, Value) {
    api.post("/api/v1/bulk", json!({ "items": items })).await
}

/// Posts a batch that must be accepted as a whole and returns its `outputs`.
async fn accepted(api: &Api, items: Value) -> serde_json::Map<String, Value> {
    let (status, body) = bulk(api, items).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success", "{body}");
    let typed: BulkResponse = serde_json::from_value(body.clone()).expect("bulk response shape");
    assert_eq!(typed.status, "success");
    body["outputs"].as_object().expect("outputs object").clone()
}

async fn span_list(api: &Api, instance_id: &str) -> Vec<Value> {
    let (status, body) = api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance_id}&sorting=id")).await;
    assert_eq!(status, 200, "{body}");
    body["summaries"].as_array().unwrap().clone()
}

fn span_create(key: &str, instance_id: &str, id: &str, parent: Option<&str>, status: &str, payload: Value) -> Value {
    let mut details = json!({"agent_instance_id": instance_id, "id": id, "schema_name": "agent:llm",
        "status": status, "payload": payload, "parent_span_id": parent});
    if status == "complete" {
        details["result_payload"] = json!({"tokens": 7});
    }
    json!({"_type": "agent_spans/create", "idempotency_key": key, "details": details})
}

#[tokio::test]
async fn a_mixed_batch_runs_in_order_and_is_visible_through_the_get_endpoints() {
    let api = Api::start();
    let (instance_id, root, child, leaf) = (new_id(), new_id(), new_id(), new_id());
    let items = json!([
        {"_type": "agent_instances/register", "idempotency_key": "register-0001", "id": instance_id,
         "agent_version": {"name": "Bulk", "external_identifier": "v1"}, "agent_schema_version": llm_schema()},
        {"_type": "agent_instances/start", "idempotency_key": "start-000001", "agent_instance_id": instance_id,
         "timestamp": "2026-11-26T12:00:00Z"},
        span_create("create-root-1", &instance_id, &root, None, "active", json!({"model": "m-root"})),
        span_create("create-child-1", &instance_id, &child, Some(&root), "active", json!({"model": "m-child"})),
        span_create("create-leaf-1", &instance_id, &leaf, Some(&child), "complete", json!({"model": "m-leaf"})),
        {"_type": "agent_spans/finish", "idempotency_key": "finish-child-1", "agent_span_id": child,
         "status": "failed", "result_payload": {"tokens": 3}},
        {"_type": "agent_spans/finish", "idempotency_key": "finish-root-1", "agent_span_id": root},
        {"_type": "agent_instances/record_quality", "idempotency_key": "quality-0001",
         "agent_instance_id": instance_id, "name": "accuracy", "payload": {"score": 0.5}},
        {"_type": "agent_instances/finish", "idempotency_key": "finish-instance", "agent_instance_id": instance_id,
         "status": "complete"}
    ]);
    let outputs = accepted(&api, items).await;
    assert_eq!(outputs.len(), 9, "{outputs:?}");
    for (key, output) in &outputs {
        assert_eq!(output["status"], "success", "{key}: {output}");
    }
    assert_eq!(outputs["register-0001"]["details"]["id"], instance_id.as_str());
    assert_eq!(outputs["start-000001"]["details"]["status"], "active");
    assert_eq!(outputs["create-leaf-1"]["details"]["summary"], "m-leaf: 7 tokens");
    assert_eq!(outputs["finish-child-1"]["details"]["status"], "failed");
    assert_eq!(outputs["quality-0001"]["details"]["quality_summaries"]["accuracy"], "Score: 0.5");
    assert_eq!(outputs["finish-instance"]["details"]["status"], "complete");

    let (status, instance) = api.get(&format!("/api/v1/agent_instance/{instance_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(instance["details"]["status"], "complete");
    assert_eq!(instance["details"]["started_at"], "2026-11-26T12:00:00.000000Z");
    assert_eq!(instance["details"]["span_counts"]["total"], 3);
    let spans = span_list(&api, &instance_id).await;
    let by_id = |id: &str| spans.iter().find(|span| span["id"] == id).cloned().expect("span listed");
    assert_eq!(by_id(&root)["status"], "complete");
    assert!(by_id(&root)["parent_span_id"].is_null());
    assert_eq!(by_id(&child)["status"], "failed");
    assert_eq!(by_id(&child)["parent_span_id"], root.as_str());
    assert_eq!(by_id(&child)["result_payload"], json!({"tokens": 3}));
    assert_eq!(by_id(&leaf)["parent_span_id"], child.as_str());
}

#[tokio::test]
async fn agents_create_show_and_list_in_one_batch() {
    let api = Api::start();
    let agent_id = new_id();
    let items = json!([
        {"_type": "agents/create", "idempotency_key": "agent-create", "details": {"id": agent_id, "name": "Bulk agent"}},
        {"_type": "agents/show", "idempotency_key": "agent-show-1", "agent_id": agent_id},
        {"_type": "agents/list", "idempotency_key": "agent-list-1", "pagination": {"page_size": 1}, "sorting": "-id"}
    ]);
    let outputs = accepted(&api, items).await;
    assert_eq!(outputs["agent-create"]["details"]["name"], "Bulk agent");
    assert_eq!(outputs["agent-show-1"]["details"]["id"], agent_id.as_str());
    assert_eq!(outputs["agent-list-1"]["summaries"].as_array().unwrap().len(), 1);
    assert_eq!(outputs["agent-list-1"]["pagination"]["page_size"], 1);
    assert_eq!(outputs["agent-list-1"]["sorting"]["direction"], "desc");
    let (status, got) = api.get(&format!("/api/v1/agent/{agent_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["details"]["name"], "Bulk agent");
}

#[tokio::test]
async fn processing_stops_at_the_first_failing_item_and_later_items_are_not_applied() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let (first, after) = (new_id(), new_id());
    let missing = new_id();
    let items = json!([
        span_create("create-first", &instance_id, &first, None, "active", json!({})),
        {"_type": "agent_spans/finish", "idempotency_key": "finish-missing", "agent_span_id": missing},
        span_create("create-after", &instance_id, &after, None, "active", json!({}))
    ]);
    let outputs = accepted(&api, items).await;
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert_eq!(outputs["create-first"]["status"], "success");
    assert_eq!(outputs["finish-missing"]["status"], "error");
    assert_eq!(outputs["finish-missing"]["code"], "not_found");
    assert!(!outputs.contains_key("create-after"));
    let spans = span_list(&api, &instance_id).await;
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0]["id"], first.as_str());

    // An item whose parameters are invalid stops the batch the same way.
    let (second, third) = (new_id(), new_id());
    let items = json!([
        span_create("create-second", &instance_id, &second, None, "active", json!({})),
        span_create("create-badstat", &instance_id, &new_id(), None, "terminated", json!({})),
        span_create("create-third", &instance_id, &third, None, "active", json!({}))
    ]);
    let outputs = accepted(&api, items).await;
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert_eq!(outputs["create-badstat"]["code"], "validation_error");
    assert!(outputs["create-badstat"]["errors"]["details.status"].is_array());
    let ids: Vec<Value> = span_list(&api, &instance_id).await.into_iter().map(|span| span["id"].clone()).collect();
    assert_eq!(ids, vec![json!(first), json!(second)]);
}

#[tokio::test]
async fn a_failing_item_leaves_no_partial_writes() {
    let api = Api::start();
    let existing = api.register_id().await;
    let new_agent = new_id();
    // Register with an unknown agent id creates that agent, then fails on the taken instance
    // id: the agent must be rolled back with the item.
    let items = json!([
        {"_type": "agent_instances/register", "idempotency_key": "register-dup", "id": existing,
         "agent_id": new_agent, "agent_version": {"name": "X"}}
    ]);
    let outputs = accepted(&api, items).await;
    assert_eq!(outputs["register-dup"]["code"], "conflict", "{outputs:?}");
    let (status, _) = api.get(&format!("/api/v1/agent/{new_agent}")).await;
    assert_eq!(status, 404, "the failed item's agent insert was rolled back");
}

#[tokio::test]
async fn an_item_can_act_on_what_an_earlier_item_created() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let span = new_id();
    let items = json!([
        span_create("create-span-1", &instance_id, &span, None, "active", json!({"model": "m"})),
        {"_type": "agent_spans/finish", "idempotency_key": "finish-span-1", "agent_span_id": span,
         "result_payload": {"tokens": 1}},
        {"_type": "agent_spans/finish", "idempotency_key": "finish-span-2", "agent_span_id": span}
    ]);
    let outputs = accepted(&api, items).await;
    assert_eq!(outputs["create-span-1"]["details"]["status"], "active");
    assert_eq!(outputs["finish-span-1"]["details"]["status"], "complete");
    assert_eq!(outputs["finish-span-2"]["code"], "invalid_action");
    let spans = span_list(&api, &instance_id).await;
    assert_eq!(spans[0]["status"], "complete");
    assert_eq!(spans[0]["result_payload"], json!({"tokens": 1}));
}

#[tokio::test]
async fn repeated_keys_replay_the_stored_outputs_and_a_reused_key_fails_its_item() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let (a, b) = (new_id(), new_id());
    let items = json!([
        span_create("replay-create-a", &instance_id, &a, None, "complete", json!({"model": "m"})),
        span_create("replay-create-b", &instance_id, &b, Some(&a), "complete", json!({"model": "m"}))
    ]);
    let first = accepted(&api, items.clone()).await;
    let second = accepted(&api, items).await;
    assert_eq!(first, second, "a replay answers with the stored outputs");
    assert_eq!(span_list(&api, &instance_id).await.len(), 2);

    // The item key is the operation's key: the single endpoint replays it too.
    let single = json!({"details": {"agent_instance_id": instance_id, "id": a, "schema_name": "agent:llm",
        "status": "complete", "payload": {"model": "m"}, "parent_span_id": null, "result_payload": {"tokens": 7}},
        "idempotency_key": "replay-create-a"});
    let (status, body) = api.post("/api/v1/agent_spans", single).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, first["replay-create-a"]);

    let reused = json!([
        span_create("replay-create-c", &instance_id, &new_id(), None, "active", json!({})),
        span_create("replay-create-a", &instance_id, &a, None, "complete", json!({"model": "changed"}))
    ]);
    let outputs = accepted(&api, reused).await;
    assert_eq!(outputs["replay-create-c"]["status"], "success");
    assert_eq!(outputs["replay-create-a"]["status"], "error");
    assert_eq!(outputs["replay-create-a"]["code"], "idempotency_key_reused");
    assert_eq!(span_list(&api, &instance_id).await.len(), 3);
}

#[tokio::test]
async fn bad_batches_are_422_and_apply_nothing() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let valid = |key: &str| span_create(key, &instance_id, &new_id(), None, "active", json!({}));
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "items"),
        (json!({"items": []}), "items"),
        (json!({"items": {"a": 1}}), "items"),
        (json!({"items": [valid("good-key-1"), 5]}), "items[1]"),
        (json!({"items": [valid("good-key-1"), {"_type": "agent_spans/create"}]}), "items[1].idempotency_key"),
        (json!({"items": [valid("good-key-1"), valid("short-7")]}), "items[1].idempotency_key"),
        (json!({"items": [valid("good-key-1"), valid(&"k".repeat(65))]}), "items[1].idempotency_key"),
        (json!({"items": [valid("good-key-1"), valid("good-key-1")]}), "items[1].idempotency_key"),
        (
            json!({"items": [valid("good-key-1"), {"_type": "agent_spans/delete", "idempotency_key": "good-key-2"}]}),
            "items[1]._type",
        ),
        (json!({"items": [valid("good-key-1"), {"_type": 3, "idempotency_key": "good-key-2"}]}), "items[1]._type"),
        (json!({"items": [valid("good-key-1"), {"idempotency_key": "good-key-2"}]}), "items[1]._type"),
    ];
    for (body, path) in cases {
        let (status, answer) = api.post("/api/v1/bulk", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(answer["status"], "error");
        assert_eq!(answer["code"], "validation_error");
        assert!(answer["errors"][path].is_array(), "{path} in {answer}");
    }
    // Broken JSON anywhere is a 400 and nothing runs: in an item after good ones, after an
    // item that fails its checks, or in another top-level field.
    let broken = |items: &[String], extra: &str| {
        let request = api.http.post(api.url("/api/v1/bulk")).bearer_auth(api.server.token());
        request.header("content-type", "application/json").body(format!(r#"{{"items": [{}]{extra}}}"#, items.join(",")))
    };
    let bad_status = span_create("bad-status-1", &instance_id, &new_id(), None, "bogus", json!({})).to_string();
    let broken_item = r#"{"_type": "agent_spans/create", "idempotency_key": "broken-1", "details": {"a": [1,}}"#;
    for (items, extra) in [
        (vec![valid("good-key-1").to_string(), broken_item.to_string()], ""),
        (vec![bad_status, broken_item.to_string()], ""),
        (vec![valid("good-key-1").to_string()], r#", "extra": nul"#),
    ] {
        let (status, answer) = api.send(broken(&items, extra)).await;
        assert_eq!((status, answer["code"].as_str()), (400, Some("invalid_json")), "{items:?}{extra}: {answer}");
    }

    // A head field named twice: which action or key was meant is not clear.
    let twice = format!(
        r#"{{"items": [{}, {{"_type": "agent_spans/create", "_type": "agents/create", "idempotency_key": "good-key-2"}}]}}"#,
        valid("good-key-1")
    );
    let request = api.http.post(api.url("/api/v1/bulk")).bearer_auth(api.server.token());
    let (status, answer) = api.send(request.header("content-type", "application/json").body(twice)).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["errors"]["items[1]"][0].as_str().unwrap().contains("at most once"), "{answer}");
    let too_many: Vec<Value> = (0..1001).map(|index| valid(&format!("too-many-{index:04}"))).collect();
    let (status, answer) = bulk(&api, Value::Array(too_many)).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("at most 1000"), "{answer}");
    let (status, answer) = api.post_raw("/api/v1/bulk", r#"{"items": [}"#).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "invalid_json");
    assert!(span_list(&api, &instance_id).await.is_empty(), "no item of a rejected batch ran");
}

#[tokio::test]
async fn bulk_needs_the_bearer_token() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let body = json!({"items": [span_create("auth-create", &instance_id, &new_id(), None, "active", json!({}))]});
    let (status, answer) = api.send(api.http.post(api.url("/api/v1/bulk")).json(&body)).await;
    assert_eq!(status, 401);
    assert_eq!(answer["code"], "unauthorized");
    let (status, _) = api.send(api.http.post(api.url("/api/v1/bulk")).bearer_auth("wrong").json(&body)).await;
    assert_eq!(status, 401);
    assert!(span_list(&api, &instance_id).await.is_empty());
}

#[tokio::test]
async fn span_outputs_carry_the_terminate_control_and_items_are_schema_checked() {
    let api = Api::start();
    let instance_id = api.register(Some(llm_schema())).await["id"].as_str().unwrap().to_string();
    let open = new_id();
    let created = accepted(
        &api,
        json!([span_create("ctl-create-1", &instance_id, &open, None, "active", json!({"model": "m"}))]),
    )
    .await;
    assert!(created["ctl-create-1"].get("control").is_none());
    api.server.terminate_instance(&instance_id, Some("operator stop")).unwrap();
    let items = json!([
        span_create("ctl-create-2", &instance_id, &new_id(), None, "complete", json!({"model": "m"})),
        {"_type": "agent_spans/finish", "idempotency_key": "ctl-finish-1", "agent_span_id": open},
        span_create("ctl-invalid", &instance_id, &new_id(), None, "active", json!({"model": 5}))
    ]);
    let outputs = accepted(&api, items).await;
    for key in ["ctl-create-2", "ctl-finish-1"] {
        assert_eq!(outputs[key]["status"], "success", "{key}");
        assert_eq!(outputs[key]["control"], json!({"terminate": true, "reason": "operator stop"}), "{key}");
    }
    assert_eq!(outputs["ctl-invalid"]["code"], "validation_error");
    assert!(outputs["ctl-invalid"]["errors"]["details.payload/model"].is_array(), "{}", outputs["ctl-invalid"]);
}
