//! initialize: token validation, twice, bad token, close semantics.

use prefactor_runtime::{Client, Error};

use crate::common::{config, requests, server};

#[tokio::test]
async fn initialize_pings_once_and_a_second_call_is_an_error() {
    let server = server();
    let client = Client::new(config(&server).build().unwrap()).unwrap();
    assert!(!client.is_initialized());
    client.initialize().await.unwrap();
    assert!(client.is_initialized());
    assert!(matches!(client.initialize().await, Err(Error::AlreadyInitialized)));
    assert_eq!(requests(&server, "GET", "/api/v1/ping").len(), 1);
    let report = client.close().await.unwrap();
    assert!(report.is_clean());
    assert!(matches!(client.close().await, Err(Error::Closed)));
    assert!(matches!(client.initialize().await, Err(Error::Closed)));
}

#[tokio::test]
async fn a_rejected_token_is_an_auth_error_and_initialize_can_be_retried() {
    let server = server();
    let client = Client::new(config(&server).api_token("wrong-token").build().unwrap()).unwrap();
    match client.initialize().await {
        Err(Error::Auth { status: 401, .. }) => {}
        other => panic!("expected an auth error, got {other:?}"),
    }
    assert!(!client.is_initialized());
    assert_eq!(requests(&server, "GET", "/api/v1/ping").len(), 1, "auth failures are not retried");
    // Still uninitialized: a second attempt is allowed (and fails the same way).
    assert!(matches!(client.initialize().await, Err(Error::Auth { .. })));
}

#[tokio::test]
async fn an_unreachable_server_fails_after_the_retries() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = prefactor_runtime::Config::builder()
        .api_url(format!("http://127.0.0.1:{port}"))
        .api_token("t")
        .max_retries(1)
        .initial_retry_delay(std::time::Duration::from_millis(5))
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    match client.initialize().await {
        Err(Error::Http { status: None, .. }) => {}
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn flush_and_close_before_initialize() {
    let server = server();
    let client = Client::new(config(&server).build().unwrap()).unwrap();
    assert!(matches!(client.flush(std::time::Duration::from_secs(1)).await, Err(Error::NotInitialized)));
    assert!(client.close().await.unwrap().is_clean(), "closing an uninitialized client is a no-op");
}
