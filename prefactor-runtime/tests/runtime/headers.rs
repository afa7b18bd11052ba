//! Every request carries Authorization and X-Prefactor-SDK.

use prefactor_runtime::{Client, CreateInstance, Delivery, FinishStatus};

use crate::common::{BOTH_MODES, config_for, flush, server};

#[tokio::test]
async fn every_request_carries_the_auth_and_sdk_headers() {
    for delivery in BOTH_MODES {
        every_request_carries_the_auth_and_sdk_headers_in(delivery).await;
    }
}

async fn every_request_carries_the_auth_and_sdk_headers_in(delivery: Delivery) {
    let server = server();
    let config = config_for(&server, delivery).sdk_header_entry("test-adapter@0.0.1");
    let client = Client::new(config.build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    instance.start();
    drop(instance.span("t:x").start());
    instance.finish(FinishStatus::Complete);
    flush(&client).await;

    let recorded = server.requests();
    let least = if delivery == Delivery::Bulk { 2 } else { 4 };
    assert!(recorded.len() >= least, "ping, then register, start, span, finish ({delivery}: {})", recorded.len());
    let expected_sdk = format!("test-adapter@0.0.1 prefactor-rs@{}", env!("CARGO_PKG_VERSION"));
    for request in &recorded {
        assert_eq!(request.header("authorization"), Some(format!("Bearer {}", server.token()).as_str()));
        assert_eq!(request.header("x-prefactor-sdk"), Some(expected_sdk.as_str()), "{}", request.path);
        if request.method == "POST" {
            assert_eq!(request.header("content-type"), Some("application/json"));
        }
    }
}
