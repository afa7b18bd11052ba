//! Every request carries Authorization and X-Prefactor-SDK.

use prefactor_runtime::{Client, CreateInstance, FinishStatus};

use crate::common::{config, flush, server};

#[tokio::test]
async fn every_request_carries_the_auth_and_sdk_headers() {
    let server = server();
    let client = Client::new(config(&server).sdk_header_entry("test-adapter@0.0.1").build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    instance.start();
    drop(instance.span("t:x", None, None));
    instance.finish(FinishStatus::Complete);
    flush(&client).await;

    let recorded = server.requests();
    assert!(recorded.len() >= 4, "ping, register, start, span, finish");
    let expected_sdk = format!("test-adapter@0.0.1 prefactor-rs@{}", env!("CARGO_PKG_VERSION"));
    for request in &recorded {
        assert_eq!(request.header("authorization"), Some(format!("Bearer {}", server.token()).as_str()));
        assert_eq!(request.header("x-prefactor-sdk"), Some(expected_sdk.as_str()), "{}", request.path);
        if request.method == "POST" {
            assert_eq!(request.header("content-type"), Some("application/json"));
        }
    }
}
