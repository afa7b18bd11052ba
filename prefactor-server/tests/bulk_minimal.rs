//! `POST /api/v1/bulk` with `Prefer: return=minimal` (RFC 7240): minimal outputs, the
//! `Preference-Applied` answer header, replays with and without the header, and the terminate
//! control, over real HTTP.

mod common;

use common::{Api, llm_schema};
use prefactor_protocol::Pfid;
use serde_json::{Map, Value, json};

fn new_id() -> String {
    Pfid::generate(Pfid::random_partition()).encode().as_str().to_string()
}

/// A bulk answer: status, `Preference-Applied` header and body.
struct Answer {
    status: u16,
    applied: Option<String>,
    body: Value,
}

impl Answer {
    fn outputs(&self) -> &Map<String, Value> {
        assert_eq!(self.status, 200, "{}", self.body);
        self.body["outputs"].as_object().expect("outputs object")
    }
}

/// POSTs `items` to `/bulk` with the given `Prefer` header (or none).
async fn bulk(api: &Api, prefer: Option<&str>, items: &Value) -> Answer {
    let mut request =
        api.http.post(api.url("/api/v1/bulk")).bearer_auth(api.server.token()).json(&json!({ "items": items }));
    if let Some(prefer) = prefer {
        request = request.header("prefer", prefer);
    }
    let response = request.send().await.expect("request completes");
    let status = response.status().as_u16();
    let applied = response.headers().get("preference-applied").map(|value| value.to_str().expect("ASCII").to_string());
    let body = response.json().await.expect("JSON answer");
    Answer { status, applied, body }
}

fn span_create(key: &str, instance_id: &str, id: &str, status: &str) -> Value {
    json!({"_type": "agent_spans/create", "idempotency_key": key, "details": {"agent_instance_id": instance_id,
        "id": id, "schema_name": "agent:llm", "status": status, "payload": {"model": "m"}}})
}

fn span_finish(key: &str, span_id: &str) -> Value {
    json!({"_type": "agent_spans/finish", "idempotency_key": key, "agent_span_id": span_id,
        "result_payload": {"tokens": 3}})
}

/// A minimal success output: exactly this, no other field.
fn success() -> Value {
    json!({"status": "success"})
}

#[tokio::test]
async fn minimal_outputs_are_the_status_only_and_errors_keep_their_shape() {
    let api = Api::start();
    let instance_id = api.register(Some(llm_schema())).await["id"].as_str().unwrap().to_string();
    let (open, done) = (new_id(), new_id());
    let items = json!([
        {"_type": "agent_instances/start", "idempotency_key": "min-start-1", "agent_instance_id": instance_id},
        span_create("min-create-open", &instance_id, &open, "active"),
        span_create("min-create-done", &instance_id, &done, "complete"),
        span_finish("min-finish-open", &open),
        span_finish("min-finish-again", &open)
    ]);
    let answer = bulk(&api, Some("return=minimal"), &items).await;
    assert_eq!(answer.applied.as_deref(), Some("return=minimal"));
    let outputs = answer.outputs();
    assert_eq!(outputs.len(), 5);
    for key in ["min-start-1", "min-create-open", "min-create-done", "min-finish-open"] {
        assert_eq!(outputs[key], success(), "{key}");
    }
    let failed = &outputs["min-finish-again"];
    assert_eq!((failed["status"].as_str(), failed["code"].as_str()), (Some("error"), Some("invalid_action")));
    assert!(failed["message"].as_str().is_some_and(|message| !message.is_empty()), "{failed}");

    // The work is done exactly as without the header.
    let (status, listed) = api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance_id}")).await;
    assert_eq!(status, 200, "{listed}");
    let spans = listed["summaries"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    assert!(spans.iter().all(|span| span["status"] == "complete"), "{listed}");
}

#[tokio::test]
async fn replays_answer_in_the_form_each_request_asks_for() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    let (open, done) = (new_id(), new_id());
    // An open span's answer is stored as a body, a terminal one as a span reference.
    let items = json!([
        span_create("replay-min-open", &instance_id, &open, "active"),
        span_create("replay-min-done", &instance_id, &done, "complete")
    ]);
    let minimal = bulk(&api, Some("return=minimal"), &items).await;
    assert!(minimal.outputs().values().all(|output| *output == success()), "{}", minimal.body);

    let full = bulk(&api, None, &items).await;
    assert_eq!(full.applied, None);
    for (key, id) in [("replay-min-open", &open), ("replay-min-done", &done)] {
        assert_eq!(full.outputs()[key]["status"], "success");
        assert_eq!(full.outputs()[key]["details"]["id"], id.as_str(), "{key}: the full output of the first run");
    }

    let again = bulk(&api, Some("return=minimal"), &items).await;
    assert_eq!(again.outputs(), minimal.outputs());
    assert_eq!(again.applied.as_deref(), Some("return=minimal"));

    // A key first used without the header replays minimal with it, and the stored full
    // output stays intact for later full replays.
    let third = json!([span_create("replay-full-first", &instance_id, &new_id(), "active")]);
    let first = bulk(&api, None, &third).await;
    assert!(first.outputs()["replay-full-first"]["details"].is_object());
    assert_eq!(bulk(&api, Some("return=minimal"), &third).await.outputs()["replay-full-first"], success());
    assert_eq!(bulk(&api, None, &third).await.outputs(), first.outputs());

    let (status, listed) = api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(listed["summaries"].as_array().unwrap().len(), 3, "replays wrote nothing");
}

#[tokio::test]
async fn minimal_outputs_keep_the_terminate_control() {
    let api = Api::start();
    let instance_id = api.register(Some(llm_schema())).await["id"].as_str().unwrap().to_string();
    let open = new_id();
    let before = json!([span_create("ctl-min-open", &instance_id, &open, "active")]);
    assert_eq!(bulk(&api, Some("return=minimal"), &before).await.outputs()["ctl-min-open"], success());
    api.server.terminate_instance(&instance_id, Some("operator stop")).unwrap();
    let items = json!([
        span_create("ctl-min-done", &instance_id, &new_id(), "complete"),
        span_create("ctl-min-active", &instance_id, &new_id(), "active"),
        span_finish("ctl-min-finish", &open)
    ]);
    let control = json!({"terminate": true, "reason": "operator stop"});
    let expected = json!({"status": "success", "control": control});
    let answer = bulk(&api, Some("return=minimal"), &items).await;
    for key in ["ctl-min-done", "ctl-min-active", "ctl-min-finish"] {
        assert_eq!(answer.outputs()[key], expected, "{key}");
    }
    // Replayed: from a span reference (terminal) and from a stored body (still active).
    let replay = bulk(&api, Some("return=minimal"), &items).await;
    assert_eq!(replay.outputs(), answer.outputs());
}

#[tokio::test]
async fn other_preferences_leave_the_full_outputs() {
    let api = Api::start();
    let instance_id = api.register_id().await;
    for (index, prefer) in
        ["return=representation", "respond-async", "return=representation, return=minimal"].into_iter().enumerate()
    {
        let key = format!("other-pref-{index}");
        let answer = bulk(&api, Some(prefer), &json!([span_create(&key, &instance_id, &new_id(), "active")])).await;
        assert_eq!(answer.applied, None, "{prefer}");
        assert!(answer.outputs()[&key]["details"]["id"].is_string(), "{prefer}: {}", answer.body);
    }
    let both = "respond-async; wait=10, RETURN=\"minimal\"";
    let answer = bulk(&api, Some(both), &json!([span_create("other-pref-x", &instance_id, &new_id(), "active")])).await;
    assert_eq!(answer.applied.as_deref(), Some("return=minimal"));
    assert_eq!(answer.outputs()["other-pref-x"], success());

    // A request refused as a whole is the usual 422, without the header.
    let refused = bulk(&api, Some("return=minimal"), &json!([])).await;
    assert_eq!((refused.status, refused.applied.as_deref()), (422, None));
    assert_eq!(refused.body["code"], "validation_error");
}
