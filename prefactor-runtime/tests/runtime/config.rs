//! Config validation and `from_env`.

use std::time::Duration;

use prefactor_runtime::{Config, Delivery, Error, MAX_BULK_ITEMS, MAX_LINGER};

fn base() -> prefactor_runtime::ConfigBuilder {
    Config::builder().api_url("http://127.0.0.1:9").api_token("token")
}

fn field_of(err: Error) -> &'static str {
    match err {
        Error::InvalidConfig { field, .. } => field,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn defaults_follow_the_reference_clients() {
    let config = base().build().unwrap();
    assert_eq!(config.request_timeout(), Duration::from_secs(30));
    assert_eq!(config.connect_timeout(), Duration::from_secs(10));
    assert_eq!(config.initial_retry_delay(), Duration::from_secs(1));
    assert_eq!(config.max_retry_delay(), Duration::from_secs(30));
    assert_eq!(config.retry_multiplier(), 2.0);
    assert_eq!(config.termination_poll_interval(), Duration::from_secs(30));
    assert_eq!(config.queue_capacity(), 65_536);
    assert_eq!(config.api_url(), "http://127.0.0.1:9");
    assert!(config.sdk_header().starts_with("prefactor-rs@"));
}

#[test]
fn invalid_settings_name_the_field() {
    assert_eq!(field_of(Config::builder().api_token("t").build().unwrap_err()), "api_url");
    assert_eq!(field_of(base().api_url("ftp://x").build().unwrap_err()), "api_url");
    assert_eq!(field_of(base().api_url("not a url").build().unwrap_err()), "api_url");
    assert_eq!(field_of(base().api_token(" ").build().unwrap_err()), "api_token");
    assert_eq!(field_of(base().request_timeout(Duration::ZERO).build().unwrap_err()), "request_timeout");
    assert_eq!(field_of(base().connect_timeout(Duration::ZERO).build().unwrap_err()), "connect_timeout");
    assert_eq!(field_of(base().initial_retry_delay(Duration::ZERO).build().unwrap_err()), "initial_retry_delay");
    assert_eq!(
        field_of(
            base()
                .initial_retry_delay(Duration::from_secs(5))
                .max_retry_delay(Duration::from_secs(1))
                .build()
                .unwrap_err()
        ),
        "initial_retry_delay"
    );
    assert_eq!(field_of(base().retry_multiplier(0.5).build().unwrap_err()), "retry_multiplier");
    assert_eq!(field_of(base().retry_multiplier(f64::NAN).build().unwrap_err()), "retry_multiplier");
    assert_eq!(field_of(base().queue_capacity(0).build().unwrap_err()), "queue_capacity");
    assert_eq!(field_of(base().concurrency(0).build().unwrap_err()), "concurrency");
    assert_eq!(field_of(base().concurrency(1000).build().unwrap_err()), "concurrency");
    assert_eq!(
        field_of(base().termination_poll_interval(Duration::ZERO).build().unwrap_err()),
        "termination_poll_interval"
    );
    assert_eq!(field_of(base().agent_id("").build().unwrap_err()), "agent_id");
}

#[test]
fn trailing_slash_is_trimmed_and_header_entries_come_first() {
    let config = base().api_url("http://127.0.0.1:9/").sdk_header_entry("my-adapter@1.2.0").build().unwrap();
    assert_eq!(config.api_url(), "http://127.0.0.1:9");
    let header = config.sdk_header();
    assert!(header.starts_with("my-adapter@1.2.0 prefactor-rs@"), "{header}");
}

#[test]
fn the_token_never_appears_in_debug_output() {
    let config = base().api_token("very-secret-token").build().unwrap();
    assert!(!format!("{config:?}").contains("very-secret-token"));
    assert!(!format!("{:?}", base().api_token("very-secret-token")).contains("very-secret-token"));
    let client = prefactor_runtime::Client::new(config).unwrap();
    assert!(!format!("{client:?}").contains("very-secret-token"));
}

#[test]
fn from_env_reads_the_prefactor_variables() {
    // Through `from_env_with`: the process environment is shared by the parallel tests.
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |key: &str| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned())
    };
    let vars = &[
        ("PREFACTOR_API_URL", "http://127.0.0.1:7777"),
        ("PREFACTOR_API_TOKEN", "env-token"),
        ("PREFACTOR_AGENT_ID", "agent-1"),
        ("PREFACTOR_REQUEST_TIMEOUT", "2.5"),
        ("PREFACTOR_CONCURRENCY", "3"),
        // Retries have no count any more: ignored (with a warning), whatever its value.
        ("PREFACTOR_MAX_RETRIES", "many"),
    ];
    let config = Config::builder().from_env_with(env(vars)).unwrap().build().unwrap();
    assert_eq!(config.api_url(), "http://127.0.0.1:7777");
    assert_eq!(config.agent_id(), Some("agent-1"));
    assert_eq!(config.request_timeout(), Duration::from_millis(2500));
    assert_eq!(config.concurrency(), 3);
    let bad = &[("PREFACTOR_API_URL", "http://x"), ("PREFACTOR_API_TOKEN", "t"), ("PREFACTOR_CONCURRENCY", "many")];
    assert_eq!(field_of(Config::builder().from_env_with(env(bad)).unwrap_err()), "concurrency");
}

#[test]
fn delivery_settings_default_to_bulk_and_are_validated() {
    let config = base().build().unwrap();
    assert_eq!(config.delivery(), Delivery::Bulk);
    assert_eq!(config.bulk_max_items(), 500);
    assert_eq!(config.linger(), Duration::from_millis(2));
    let config = base().delivery(Delivery::PerRequest).bulk_max_items(MAX_BULK_ITEMS).linger(Duration::ZERO).build();
    let config = config.unwrap();
    assert_eq!(
        (config.delivery(), config.bulk_max_items(), config.linger()),
        (Delivery::PerRequest, 1000, Duration::ZERO)
    );
    assert_eq!(field_of(base().bulk_max_items(0).build().unwrap_err()), "bulk_max_items");
    assert_eq!(field_of(base().bulk_max_items(MAX_BULK_ITEMS + 1).build().unwrap_err()), "bulk_max_items");
    assert_eq!(field_of(base().linger(MAX_LINGER + Duration::from_millis(1)).build().unwrap_err()), "linger");

    let env = |delivery: &'static str| {
        move |key: &str| match key {
            "PREFACTOR_DELIVERY" => Some(delivery.to_owned()),
            "PREFACTOR_BULK_MAX_ITEMS" => Some("64".to_owned()),
            "PREFACTOR_LINGER" => Some("0.010".to_owned()),
            _ => None,
        }
    };
    let config = base().from_env_with(env("per-request")).unwrap().build().unwrap();
    assert_eq!((config.delivery(), config.bulk_max_items()), (Delivery::PerRequest, 64));
    assert_eq!(config.linger(), Duration::from_millis(10));
    assert_eq!(field_of(base().from_env_with(env("batched")).unwrap_err()), "delivery");
}

#[test]
fn an_empty_agent_id_variable_counts_as_unset() {
    let env = |key: &str| match key {
        "PREFACTOR_API_URL" => Some("http://127.0.0.1:9".to_owned()),
        "PREFACTOR_API_TOKEN" => Some("tok".to_owned()),
        "PREFACTOR_AGENT_ID" | "PREFACTOR_ENVIRONMENT_ID" => Some(" ".to_owned()),
        _ => None,
    };
    let config = Config::builder().from_env_with(env).unwrap().build().unwrap();
    assert_eq!((config.agent_id(), config.environment_id()), (None, None));
}
