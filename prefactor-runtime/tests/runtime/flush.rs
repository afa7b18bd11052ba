//! `flush` waits for exactly the operations queued before it, however they settle: not fewer
//! when later operations are delivered first, not more when later ones are slow.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use prefactor_runtime::{AgentInstanceHandle, Client, CreateInstance, Error, FinishStatus};
use prefactor_server::{FaultRule, LocalServer};

use crate::common::{config, requests};

async fn client(server: &LocalServer) -> Client {
    let client = Client::new(config(server).concurrency(4).build().expect("valid config")).expect("client");
    client.initialize().await.expect("initialize");
    client
}

type Flush<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// Calls `flush` (its request reaches the worker on the first poll) without waiting for it.
async fn call_flush(client: &Client, timeout: Duration) -> Flush<'_> {
    let mut flush: Flush<'_> = Box::pin(client.flush(timeout));
    let first = std::future::poll_fn(|cx| Poll::Ready(flush.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "operations are still in flight, the flush cannot be answered yet");
    flush
}

/// Several agents on their own threads, each with an instance and `spans` spans.
fn busy_agents(client: &Client, agents: usize, spans: usize) -> Vec<AgentInstanceHandle> {
    let threads: Vec<_> = (0..agents)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || {
                let instance = client.create_agent_instance(CreateInstance::default()).expect("instance");
                instance.start();
                for _ in 0..spans {
                    drop(instance.span("t:work").start());
                }
                instance
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().expect("agent thread")).collect()
}

fn start_path(instance: &AgentInstanceHandle) -> String {
    format!("/api/v1/agent_instance/{}/start", instance.id())
}

/// The bug this guards against: flush answered by count, so operations queued after it (and
/// delivered at once) stood in for a slow earlier one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_waits_for_a_slow_earlier_operation_while_later_ones_settle_first() {
    let server = crate::common::server();
    let client = client(&server).await;
    let slow = client.create_agent_instance(CreateInstance::default()).expect("instance");
    server.add_fault(FaultRule::delay(&start_path(&slow), 1500));
    slow.start();
    let earlier = busy_agents(&client, 3, 10);
    let flush = call_flush(&client, Duration::from_secs(20)).await;
    // Other agents keep working after the flush call; their operations settle long before
    // the slow start.
    let later = busy_agents(&client, 3, 20);
    flush.await.expect("flush within 20 s");
    let stored = requests(&server, "POST", &start_path(&slow));
    assert!(
        stored.iter().any(|r| r.status == 200),
        "flush returned before the slow start was stored ({} start requests answered, stats {:?})",
        stored.len(),
        client.stats()
    );
    for instance in &earlier {
        assert!(requests(&server, "POST", &start_path(instance)).iter().any(|r| r.status == 200));
    }
    for instance in earlier.iter().chain(&later).chain([&slow]) {
        instance.finish(FinishStatus::Complete);
    }
    let report = client.close().await.expect("everything delivered");
    assert_eq!(report.delivered, report.stats.enqueued);
}

/// A flush in a busy process is not held up by what other threads queue after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_does_not_wait_for_operations_queued_after_it() {
    let server = crate::common::server();
    let client = client(&server).await;
    let earlier = client.create_agent_instance(CreateInstance::default()).expect("instance");
    server.add_fault(FaultRule::delay(&start_path(&earlier), 500));
    earlier.start();
    let flush = call_flush(&client, Duration::from_millis(2500)).await;
    // Give the worker time to take the flush request before anything else is queued (what is
    // queued before it takes the request counts as queued before the flush).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let later = client.create_agent_instance(CreateInstance::default()).expect("instance");
    server.add_fault(FaultRule::delay(&start_path(&later), 4000));
    later.start();
    busy_agents(&client, 2, 20);
    flush.await.expect("the flush waits only for the earlier operations");
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert!(requests(&server, "POST", &start_path(&earlier)).iter().any(|r| r.status == 200));
    assert!(requests(&server, "POST", &start_path(&later)).is_empty(), "the later start is still in flight");
    let _ = client.shutdown(Duration::from_millis(100)).await;
}
