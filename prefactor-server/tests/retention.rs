//! `--retain`: finished runs older than the retention are deleted with their spans in the
//! background, the counters follow, and newer or unfinished runs stay; new database files give
//! freed pages back (incremental auto-vacuum).

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::Api;
use prefactor_protocol::Pfid;
use prefactor_server::ServerConfig;
use serde_json::json;

/// A run id created `age` ago.
fn id_created_ago(age: Duration) -> String {
    let at = SystemTime::now() - age;
    let ms = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
    Pfid::generate_at(ms, 7).encode().as_str().to_string()
}

async fn run_with_spans(api: &Api, agent_id: &str, id: &str, spans: usize, finished_at: Option<&str>) {
    let register = json!({"id": id, "agent_id": agent_id, "agent_version": {"name": "retained"}});
    assert_eq!(api.post("/api/v1/agent_instance/register", register).await.0, 200);
    for _ in 0..spans {
        assert_eq!(api.create_span(id, "agent:x", "complete", json!({"k": "v"})).await.0, 200);
    }
    if let Some(at) = finished_at {
        let finish = json!({"status": "complete", "timestamp": at});
        assert_eq!(api.post(&format!("/api/v1/agent_instance/{id}/finish"), finish).await.0, 200);
    }
}

#[tokio::test]
async fn finished_runs_older_than_the_retention_are_deleted_with_their_spans() {
    let api = Api::start_with(ServerConfig::default().with_retain(Some(Duration::from_secs(24 * 3600))));
    let agent_id = Pfid::generate(7).encode().as_str().to_string();
    let month = Duration::from_secs(30 * 24 * 3600);
    let old_finished = id_created_ago(month);
    let old_unfinished = id_created_ago(month);
    let recent = id_created_ago(Duration::from_secs(60));
    run_with_spans(&api, &agent_id, &old_finished, 2_500, Some("2020-01-01T00:00:00Z")).await;
    run_with_spans(&api, &agent_id, &old_unfinished, 3, None).await;
    run_with_spans(&api, &agent_id, &recent, 3, Some("2020-01-01T00:00:00Z")).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = api.get(&format!("/api/v1/agent_instance/{old_finished}")).await;
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the old finished run was not deleted in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, agent) = api.get(&format!("/api/v1/agent/{agent_id}")).await;
    let counts = &agent["details"]["instance_counts"];
    assert_eq!((counts["total"].as_u64(), counts["complete"].as_u64()), (Some(2), Some(1)), "{counts}");
    let (_, spans) = api.get(&format!("/api/v1/agent_spans?agent_id={agent_id}")).await;
    assert_eq!(spans["pagination"]["item_count"], 6, "the spans of the runs kept, and only them");
    for kept in [&old_unfinished, &recent] {
        let (status, run) = api.get(&format!("/api/v1/agent_instance/{kept}")).await;
        assert_eq!(status, 200);
        assert_eq!(run["details"]["span_counts"]["total"], 3);
    }
    let conn = rusqlite::Connection::open(api.server.db_path().unwrap()).unwrap();
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM agent_spans WHERE agent_instance_id = ?1", [&old_finished], |row| row.get(0))
        .unwrap();
    assert_eq!(left, 0);
    let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |row| row.get(0)).unwrap();
    assert_eq!(auto_vacuum, 2, "new files are created with incremental auto-vacuum");
}

#[tokio::test]
async fn without_retention_nothing_is_deleted() {
    let api = Api::start();
    let agent_id = Pfid::generate(7).encode().as_str().to_string();
    let old = id_created_ago(Duration::from_secs(365 * 24 * 3600));
    run_with_spans(&api, &agent_id, &old, 2, Some("2020-01-01T00:00:00Z")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.get(&format!("/api/v1/agent_instance/{old}")).await.0, 200);
}

/// A key replayed after retention deleted what its request created or changed: 409 (the work
/// was done, as for a create of an id that exists; the SDKs count it as delivered), for the
/// register, a span create and the finish alike, never a 404 or a 500.
#[tokio::test]
async fn a_replayed_key_whose_run_retention_deleted_answers_409() {
    let api = Api::start_with(ServerConfig::default().with_retain(Some(Duration::from_secs(24 * 3600))));
    let agent_id = Pfid::generate(7).encode().as_str().to_string();
    let run = id_created_ago(Duration::from_secs(30 * 24 * 3600));
    let span = Pfid::generate(7).encode().as_str().to_string();
    let register = json!({"id": run, "agent_id": agent_id, "agent_version": {"name": "retained"},
        "idempotency_key": format!("register-{run}")});
    let create = json!({"details": {"id": span, "agent_instance_id": run, "schema_name": "agent:x",
        "status": "complete", "payload": {}}, "idempotency_key": format!("span-{span}")});
    let finish_path = format!("/api/v1/agent_instance/{run}/finish");
    let finish = json!({"status": "complete", "timestamp": "2020-01-01T00:00:00Z",
        "idempotency_key": format!("finish-{run}")});
    let requests = [
        ("/api/v1/agent_instance/register", register),
        ("/api/v1/agent_spans", create),
        (finish_path.as_str(), finish),
    ];
    for (path, body) in &requests {
        assert_eq!(api.post(path, body.clone()).await.0, 200, "{path}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.get(&format!("/api/v1/agent_instance/{run}")).await.0 != 404 {
        assert!(Instant::now() < deadline, "the run was not deleted in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (path, body) in &requests {
        let (status, answer) = api.post(path, body.clone()).await;
        assert_eq!((status, answer["code"].as_str()), (409, Some("conflict")), "{path}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains("--retain"), "{answer}");
    }
}
