//! The process-wide client (the only test of this binary that installs one).

use std::time::Duration;

use prefactor_runtime::{CreateInstance, Error, check_terminated, current_instance, global_client, init_blocking};

use crate::common::{config, requests, server};

#[test]
fn init_install_and_the_current_instance() {
    let server = server();
    assert!(global_client().is_none());
    let guard =
        init_blocking(config(&server).termination_poll_interval(Duration::from_millis(50)).build().unwrap()).unwrap();
    let client = global_client().expect("installed");
    assert!(client.is_initialized());
    // One process-wide client at a time.
    assert!(matches!(init_blocking(config(&server).build().unwrap()), Err(Error::AlreadyInitialized)));

    assert!(current_instance().is_none());
    assert!(check_terminated().is_ok());
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    instance.start();
    {
        let _entered = instance.context().enter();
        assert_eq!(current_instance().map(|i| i.id()), Some(instance.id()));
        guard.client().flush_blocking(Duration::from_secs(10)).unwrap();
        server.terminate_instance(&instance.id().to_string(), Some("ops")).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while check_terminated().is_ok() {
            assert!(std::time::Instant::now() < deadline, "termination not noticed");
            std::thread::sleep(Duration::from_millis(10));
        }
        let err = check_terminated().unwrap_err();
        assert_eq!(err.reason.as_deref(), Some("ops"));
        assert_eq!(err.to_string(), "agent instance terminated by the platform: ops");
    }
    drop(instance.span("t:last").start());
    // Dropping the guard flushes, closes and uninstalls.
    drop(guard);
    assert!(global_client().is_none());
    let span_requests = requests(&server, "POST", "/api/v1/agent_spans");
    assert!(!span_requests.is_empty() && span_requests.iter().all(|r| r.status == 200), "the last span was delivered");

    // A new client can be installed afterwards.
    let again = init_blocking(config(&server).build().unwrap()).unwrap();
    assert!(global_client().is_some());
    drop(again);
    assert!(global_client().is_none());
}
