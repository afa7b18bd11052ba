//! `GET /api/v1/agent_spans`: pagination, sorting and Liquid summaries.

mod common;

use common::{Api, llm_schema};
use prefactor_protocol::{AgentSpan, ListResponse};
use serde_json::json;

async fn instance_with_spans(api: &Api, count: usize) -> (String, Vec<String>) {
    let instance_id = api.register(Some(llm_schema())).await["id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for index in 0..count {
        // Started in reverse order, so started_at order differs from creation order.
        let started = format!("2026-08-04T06:55:{:02}.000Z", 50 - index);
        let (status, created) = api
            .post(
                "/api/v1/agent_spans",
                json!({"details": {"agent_instance_id": instance_id, "schema_name": "agent:llm", "status": "active",
                                   "payload": {"model": format!("m{index}")}, "started_at": started}}),
            )
            .await;
        assert_eq!(status, 200, "{created}");
        ids.push(created["details"]["id"].as_str().unwrap().to_string());
    }
    (instance_id, ids)
}

#[tokio::test]
async fn default_order_is_started_at_ascending_with_full_envelope() {
    let api = Api::start();
    let (instance_id, ids) = instance_with_spans(&api, 3).await;
    let (status, body) = api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "success");
    assert_eq!(body["sorting"], json!({"field": "started_at", "direction": "asc"}));
    let list: ListResponse<AgentSpan> = serde_json::from_value(body.clone()).unwrap();
    let listed: Vec<&str> = list.summaries.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(listed, vec![ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    assert!(list.summaries.iter().all(|s| s.summary.is_none()), "summaries only on request");
    assert_eq!(
        body["pagination"],
        json!({"item_count": 3, "item_start": 1, "item_end": 3, "page_count": 1, "page_index": 1,
               "page_offset": 0, "page_size": 100, "next_page_offset": null, "previous_page_offset": null})
    );
}

#[tokio::test]
async fn pages_walk_through_all_spans() {
    let api = Api::start();
    let (instance_id, ids) = instance_with_spans(&api, 5).await;
    let mut seen = Vec::new();
    let mut offset = Some(0u64);
    let mut pages = 0;
    while let Some(current) = offset {
        pages += 1;
        assert!(pages <= 5, "bounded walk");
        let (_, body) = api
            .get(&format!("/api/v1/agent_spans?agent_instance_id={instance_id}&sorting=id&pagination[offset]={current}&pagination[page_size]=2"))
            .await;
        for span in body["summaries"].as_array().unwrap() {
            seen.push(span["id"].as_str().unwrap().to_string());
        }
        assert_eq!(body["pagination"]["page_index"], current / 2 + 1);
        assert_eq!(body["pagination"]["page_count"], 3);
        offset = body["pagination"]["next_page_offset"].as_u64();
    }
    assert_eq!(seen, ids, "sorting=id is creation order");
    let (_, last) = api
        .get(&format!(
            "/api/v1/agent_spans?agent_instance_id={instance_id}&pagination[offset]=4&pagination[page_size]=2"
        ))
        .await;
    assert_eq!(last["pagination"]["item_start"], 5);
    assert_eq!(last["pagination"]["item_end"], 5);
    assert_eq!(last["pagination"]["previous_page_offset"], 2);
    let (_, descending) = api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance_id}&sorting=-id")).await;
    assert_eq!(descending["summaries"][0]["id"], ids[4]);
    assert_eq!(descending["sorting"]["direction"], "desc");
}

#[tokio::test]
async fn include_summaries_renders_templates_with_result_winning() {
    let api = Api::start();
    let (instance_id, ids) = instance_with_spans(&api, 2).await;
    api.finish_span(&ids[0], json!({"result_payload": {"tokens": 42, "model": "from-result"}})).await;
    let (_, body) = api
        .get(&format!("/api/v1/agent_spans?agent_instance_id={instance_id}&include_summaries=true&sorting=id"))
        .await;
    assert_eq!(body["summaries"][0]["summary"], "from-result: 42 tokens");
    assert_eq!(body["summaries"][1]["summary"], "m1");
    assert_eq!(body["summaries"][1]["schema_title"], "LLM Call");
}

#[tokio::test]
async fn filters_and_missing_variables_render_leniently_and_bad_templates_give_no_summary() {
    let api = Api::start();
    let schema = json!({"external_identifier": "t", "span_type_schemas": [
        {"name": "a:filters", "params_schema": {"type": "object"}, "template": "{{ name | default: \"none\" }}/{{ text | truncate: 8 }}/{{ items | size }}"},
        {"name": "a:missing", "params_schema": {"type": "object"}, "template": "[{{ absent }}]{% if absent %}yes{% else %}no{% endif %}{{ inputs[\"ai.model.id\"] }}"},
        {"name": "a:broken", "params_schema": {"type": "object"}, "template": "{% if %}"}
    ]});
    let instance_id = api.register(Some(schema)).await["id"].as_str().unwrap().to_string();
    let (_, filters) =
        api.create_span(&instance_id, "a:filters", "active", json!({"text": "abcdefghijkl", "items": [1, 2, 3]})).await;
    assert_eq!(filters["details"]["summary"], "none/abcde.../3");
    let (_, missing) =
        api.create_span(&instance_id, "a:missing", "active", json!({"inputs": {"ai.model.id": "claude"}})).await;
    assert_eq!(missing["details"]["summary"], "[]noclaude");
    let (status, broken) = api.create_span(&instance_id, "a:broken", "active", json!({})).await;
    assert_eq!(status, 200);
    assert!(broken["details"]["summary"].is_null());
}

#[tokio::test]
async fn unknown_instance_is_404() {
    let api = Api::start();
    let (status, error) =
        api.get(&format!("/api/v1/agent_spans?agent_instance_id={}", prefactor_protocol::Pfid::generate(1))).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "not_found");
}
