//! Two different schemas declared under one span type name make client start-up fail with an
//! error naming both source locations (identical declarations merge: see `span_capture`).
#![deny(clippy::pedantic)]

use prefactor::{Client, Config, Error};
use prefactor_server::{LocalServer, ServerConfig};

#[prefactor::span(schema = "clash:search")]
fn search_text(query: &str) -> usize {
    query.len()
}

#[prefactor::span(schema = "clash:search")]
fn search_id(id: u64) -> usize {
    usize::try_from(id).unwrap_or(0)
}

#[test]
fn conflicting_schemas_fail_initialization_naming_both_locations() {
    assert_eq!(search_text("ab") + search_id(1), 3, "the functions themselves work");
    let server = LocalServer::start(ServerConfig::default()).expect("the local server starts");
    let config = Config::builder().api_url(server.base_url()).api_token(server.token()).build().expect("config");
    let client = Client::new(config).expect("client");
    let error = client.initialize_blocking().expect_err("the conflict is a start-up error");
    let Error::SchemaConflict { name, first, second } = &error else { panic!("unexpected error: {error}") };
    assert_eq!(name, "clash:search");
    let locations = [first.as_str(), second.as_str()];
    for line in [9, 14] {
        let prefix = format!("tests/schema_conflict.rs:{line}:");
        assert!(locations.iter().any(|location| location.starts_with(&prefix)), "{prefix} in {locations:?}");
    }
    assert!(error.to_string().contains("tests/schema_conflict.rs:9"), "the message names the locations: {error}");
}
