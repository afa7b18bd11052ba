//! Keyset pagination behind `pagination[offset]`: the page after one just read starts at that
//! page's last key, and a write in between makes the next page walk again, so every page is
//! exactly the page at its offset.

mod common;

use common::Api;
use serde_json::{Value, json};

fn ids(page: &Value) -> Vec<String> {
    page["summaries"].as_array().unwrap().iter().map(|row| row["id"].as_str().unwrap().to_string()).collect()
}

async fn page(api: &Api, list: &str, offset: u64, direction: &str) -> Vec<String> {
    let (status, body) = api
        .get(&format!(
            "{list}&pagination[page_size]=100&pagination[offset]={offset}&sorting[field]=id&sorting[direction]={direction}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    ids(&body)
}

/// Every id of `list`, newest first, read oldest first so that no page follows a newest-first one.
async fn all_newest_first(api: &Api, list: &str) -> Vec<String> {
    let mut all = Vec::new();
    for offset in (0..1_000).step_by(100) {
        let rows = page(api, list, offset, "asc").await;
        if rows.is_empty() {
            break;
        }
        all.extend(rows);
    }
    all.reverse();
    all
}

#[tokio::test]
async fn pages_read_one_after_another_are_the_pages_at_their_offsets_also_after_a_write() {
    let api = Api::start();
    let instance = api.register_id().await;
    let (_, run) = api.get(&format!("/api/v1/agent_instance/{instance}")).await;
    let agent = run["details"]["agent_id"].as_str().unwrap().to_string();
    for _ in 0..250 {
        assert_eq!(api.create_span(&instance, "agent:x", "complete", json!({})).await.0, 200);
    }
    for list in
        [format!("/api/v1/agent_spans?agent_id={agent}"), format!("/api/v1/agent_spans?agent_instance_id={instance}")]
    {
        let expected = all_newest_first(&api, &list).await;
        let mut read = Vec::new();
        for offset in [0, 100, 200] {
            read.extend(page(&api, &list, offset, "desc").await);
        }
        assert_eq!(read, expected, "{list}: pages read in order");

        // Pages 1 and 2 again (page 3's key is remembered), then new spans at the head: page 3
        // is now the one at offset 200 of the new order, not the one after the old key.
        page(&api, &list, 0, "desc").await;
        page(&api, &list, 100, "desc").await;
        for _ in 0..5 {
            assert_eq!(api.create_span(&instance, "agent:x", "complete", json!({})).await.0, 200);
        }
        let third = page(&api, &list, 200, "desc").await;
        let expected = all_newest_first(&api, &list).await;
        assert_eq!(third, expected[200..].to_vec(), "{list}: page 3 after a write");
    }

    // The runs of an agent page the same way.
    for _ in 0..205 {
        let (status, _) = api
            .post("/api/v1/agent_instance/register", json!({"agent_id": agent, "agent_version": {"name": "A"}}))
            .await;
        assert_eq!(status, 200);
    }
    let list = format!("/api/v1/agent_instance?agent_id={agent}");
    let expected = all_newest_first(&api, &list).await;
    let mut read = Vec::new();
    for offset in [0, 100, 200] {
        read.extend(page(&api, &list, offset, "desc").await);
    }
    assert_eq!(read, expected);
}
