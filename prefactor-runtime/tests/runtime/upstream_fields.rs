//! What prefactor-core 0.5.3 sends with a register and this SDK sends too (issue 17):
//! `agent_version.runtime_environment` and an instance's `external_identifier`, over real
//! HTTP in both delivery modes, as the server stores them.

use prefactor_runtime::{Client, CreateInstance, Delivery, Error, InstanceId, RUNTIME, SDK_HEADER_ENTRY};
use prefactor_server::{DbLocation, LocalServer, ServerConfig};
use serde_json::{Value, json};

use crate::common::{BOTH_MODES, config_for, flush, instance_details, requests};

/// A server on a SQLite file in a temporary directory (the test reads what it stored), and
/// an initialized client with an SDK entry and an agent SDK entry.
async fn setup(delivery: Delivery) -> (tempfile::TempDir, LocalServer, Client) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server =
        LocalServer::start(ServerConfig { db: DbLocation::Path(dir.path().join("api.db")), ..ServerConfig::default() })
            .expect("the local server starts");
    let config = config_for(&server, delivery)
        .sdk_header_entry("test-adapter@0.0.1")
        .agent_sdk_entry("test-framework@2.0.0")
        .build()
        .expect("valid config");
    let client = Client::new(config).expect("client");
    client.initialize().await.expect("initialize");
    (dir, server, client)
}

/// The stored `runtime_environment` of an instance.
fn stored_environment(dir: &std::path::Path, id: InstanceId) -> Value {
    let conn = rusqlite::Connection::open_with_flags(dir.join("api.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the database opens");
    let text: String = conn
        .query_row("SELECT runtime_environment FROM agent_instances WHERE id = ?1", [id.to_string()], |row| row.get(0))
        .expect("the instance has a runtime environment");
    serde_json::from_str(&text).expect("JSON")
}

#[tokio::test]
async fn every_register_carries_the_runtime_environment_and_the_external_identifier_when_set() {
    for delivery in BOTH_MODES {
        let (dir, server, client) = setup(delivery).await;
        let tagged = client.create_agent_instance(CreateInstance::default().external_identifier("job-42")).unwrap();
        let plain = client.create_agent_instance(CreateInstance::default()).unwrap();
        flush(&client).await;

        let expected = json!({
            "agent_sdk": ["test-framework@2.0.0"],
            "os": std::env::consts::OS,
            "prefactor_sdk": ["test-adapter@0.0.1", SDK_HEADER_ENTRY],
            "runtime": RUNTIME,
        });
        for id in [tagged.id(), plain.id()] {
            assert_eq!(stored_environment(dir.path(), id), expected, "{delivery}");
        }
        assert_eq!(instance_details(&server, tagged.id()).await["external_identifier"], "job-42", "{delivery}");
        assert!(instance_details(&server, plain.id()).await["external_identifier"].is_null(), "{delivery}");
        if delivery == Delivery::PerRequest {
            // Runs are sent in parallel: find each register by its instance id.
            let registers = requests(&server, "POST", "/api/v1/agent_instance/register");
            let body_of = |id: InstanceId| {
                registers
                    .iter()
                    .filter_map(|request| request.body.as_ref())
                    .find(|body| body["id"] == id.to_string())
                    .expect("the register of the instance")
            };
            let tagged_body = body_of(tagged.id());
            assert_eq!(tagged_body["agent_version"]["runtime_environment"], expected, "where prefactor-core puts it");
            assert_eq!(tagged_body["external_identifier"], "job-42");
            assert!(body_of(plain.id()).get("external_identifier").is_none(), "unset: not sent");
        }
        client.close().await.expect("nothing lost");
    }
}

#[test]
fn the_runtime_is_the_compiler_that_built_the_sdk() {
    let version = RUNTIME.strip_prefix("rustc@").expect("rustc@VERSION");
    let parts: Vec<&str> = version.split(['.', '-']).collect();
    assert!(parts.len() >= 3 && parts[..3].iter().all(|part| part.parse::<u32>().is_ok()), "{RUNTIME}");
}

/// A second run of an agent with a taken `external_identifier` is refused (422, not a 409 the
/// SDK would read as "already registered"): the run is reported failed with the server's
/// reason, never taken for delivered.
#[tokio::test]
async fn a_taken_external_identifier_fails_the_run_with_the_servers_reason() {
    for delivery in BOTH_MODES {
        // `_dir` holds the database until the end of the loop body.
        let (_dir, server, client) = setup(delivery).await;
        let first = client.create_agent_instance(CreateInstance::default().external_identifier("ticket-7")).unwrap();
        first.start();
        flush(&client).await;
        let second = client.create_agent_instance(CreateInstance::default().external_identifier("ticket-7")).unwrap();
        second.start();
        let _ = client.flush(std::time::Duration::from_secs(20)).await;
        let Err(Error::TelemetryLost(report)) = client.close().await else {
            panic!("{delivery}: the refusal is a loss")
        };
        assert!(report.failed >= 1, "{delivery}: {report:?}");
        let reasons = format!("{:?}", report.failure_reasons);
        assert!(reasons.contains("external_identifier") && reasons.contains("ticket-7"), "{delivery}: {reasons}");
        assert_eq!(instance_details(&server, first.id()).await["status"], "active", "{delivery}");
    }
}
