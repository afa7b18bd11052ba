//! Termination through the control signal and through the poll.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prefactor_runtime::{Client, CreateInstance, FinishStatus};

use crate::common::{BOTH_MODES, client_for, config, flush, server};

#[tokio::test]
async fn the_control_signal_of_a_span_response_terminates_the_instance() {
    for delivery in BOTH_MODES {
        let server = server();
        let client = client_for(&server, delivery).await;
        let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
        let waiter = tokio::spawn(instance.terminated());
        flush(&client).await;
        assert!(!instance.is_terminated());
        server.terminate_instance(&instance.id().to_string(), Some("policy breach")).unwrap();
        drop(instance.span("t:x").start());
        flush(&client).await;
        assert!(instance.is_terminated());
        assert_eq!(instance.termination_reason().as_deref(), Some("policy breach"));
        let reason = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("woken").unwrap();
        assert_eq!(reason.as_deref(), Some("policy breach"));
        // Finishing a terminated instance answers 409, which is done, not a failure.
        instance.finish(FinishStatus::Complete);
        flush(&client).await;
        assert_eq!(client.stats().failed, 0);
    }
}

#[tokio::test]
async fn the_poll_terminates_a_started_instance() {
    let server = server();
    let client =
        Client::new(config(&server).termination_poll_interval(Duration::from_millis(50)).build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    instance.start();
    flush(&client).await;
    server.terminate_instance(&instance.id().to_string(), None).unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), instance.terminated()).await.expect("poll noticed");
    assert_eq!(reason, None);
    assert!(instance.is_terminated());
    let polls =
        server.requests().iter().filter(|r| r.method == "GET" && r.path.starts_with("/api/v1/agent_instance/")).count();
    assert!(polls >= 1);
}

#[tokio::test]
async fn instances_not_started_or_finished_are_not_polled() {
    let server = server();
    let client =
        Client::new(config(&server).termination_poll_interval(Duration::from_millis(20)).build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let registered = client.create_agent_instance(CreateInstance::default()).unwrap();
    let finished = client.create_agent_instance(CreateInstance::default()).unwrap();
    finished.start();
    finished.finish(FinishStatus::Complete);
    flush(&client).await;
    server.clear_requests();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let polled = server.requests().iter().filter(|r| r.method == "GET").count();
    assert_eq!(polled, 0, "only started, unfinished instances are polled");
    assert!(!registered.is_terminated());
}

#[tokio::test]
async fn termination_callbacks_get_the_reason_once_in_order() {
    let server = server();
    let client =
        Client::new(config(&server).termination_poll_interval(Duration::from_millis(50)).build().unwrap()).unwrap();
    client.initialize().await.unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    instance.start();
    let (called, notified) = (Arc::new(Mutex::new(Vec::new())), Arc::new(tokio::sync::Notify::new()));
    let record = |tag: &'static str| {
        let (called, notified) = (called.clone(), notified.clone());
        move |reason: Option<&str>| {
            called.lock().unwrap().push(format!("{tag}: {}", reason.unwrap_or("-")));
            notified.notify_one();
        }
    };
    instance.on_terminated(record("first"));
    let removed = instance.on_terminated(record("removed"));
    instance.on_terminated(record("second"));
    assert!(removed.unsubscribe());
    flush(&client).await;
    server.terminate_instance(&instance.id().to_string(), Some("over budget")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while called.lock().unwrap().len() < 2 {
        tokio::time::timeout_at(deadline, notified.notified()).await.expect("the callbacks ran");
    }
    assert_eq!(*called.lock().unwrap(), ["first: over budget", "second: over budget"]);
    // Registered after the signal: runs at once, here.
    let late = instance.on_terminated(record("late"));
    assert_eq!(called.lock().unwrap().last().map(String::as_str), Some("late: over budget"));
    assert!(!late.unsubscribe(), "it already ran");
}
