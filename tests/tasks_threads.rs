//! Work that leaves the run's task or thread keeps its run with the helpers: `prefactor::spawn`,
//! `prefactor::spawn_blocking`, `prefactor::thread::spawn`, `Context::in_scope` (thread pools)
//! and `StreamExt::in_current_context`. Each child span is stored under the run's instance with
//! the span that spawned it as parent (read back from the server).

mod common;

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use common::{current_instance_id, finished_spans_of, span};
use futures_core::Stream;
use prefactor::{Context, InstanceId, StreamExt};

#[prefactor::span(schema = "tt:sync_child")]
fn sync_child(how: &str) -> String {
    format!("ran in {how}")
}

#[prefactor::span(schema = "tt:async_child")]
async fn async_child(how: &str) -> String {
    format!("ran in {how}")
}

/// A stream that calls a `#[span]` function to make each item.
struct Steps(u8);

impl Stream for Steps {
    type Item = String;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<Option<String>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 -= 1;
        Poll::Ready(Some(sync_child("a stream")))
    }
}

/// Spawns every kind of work and returns the id of the span that spawned it.
#[prefactor::span(schema = "tt:parent")]
async fn parent() -> String {
    prefactor::spawn(async_child("prefactor::spawn")).await.expect("task");
    prefactor::spawn_blocking(|| sync_child("prefactor::spawn_blocking")).await.expect("blocking task");
    prefactor::thread::spawn(|| sync_child("prefactor::thread::spawn")).join().expect("thread");
    let cx = Context::current();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let cx = &cx;
            scope.spawn(move || cx.in_scope(|| sync_child("a pool job")));
        }
    });
    let mut steps = Box::pin(Steps(2).in_current_context());
    // Polled by a plain `tokio::spawn`ed task: the stream carries the run itself.
    tokio::spawn(async move { while std::future::poll_fn(|task| steps.as_mut().poll_next(task)).await.is_some() {} })
        .await
        .expect("stream task");
    Context::with_current(|cx| cx.span_id()).expect("inside the span").to_string()
}

#[prefactor::agent(name = "tasks-and-threads")]
async fn agent() -> (InstanceId, String) {
    (current_instance_id(), parent().await)
}

#[test]
fn every_helper_records_its_spans_under_the_span_that_spawned_the_work() {
    let _ = common::harness();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (instance, parent_id) = runtime.block_on(agent());
    let spans = finished_spans_of(instance, 8);
    assert_eq!(spans.len(), 8, "{spans:#?}");
    assert_eq!(span(&spans, "tt:parent")["id"], parent_id);
    let children: Vec<_> = spans.iter().filter(|s| s["schema_name"] != "tt:parent").collect();
    for child in &children {
        assert_eq!(child["parent_span_id"], parent_id, "{child:#}");
        assert_eq!(child["agent_instance_id"], instance.to_string(), "{child:#}");
    }
    let mut ran_in: Vec<String> =
        children.iter().map(|s| s["result_payload"]["output"].as_str().unwrap_or_default().to_owned()).collect();
    ran_in.sort();
    let expected = [
        "ran in a pool job",
        "ran in a pool job",
        "ran in a stream",
        "ran in a stream",
        "ran in prefactor::spawn",
        "ran in prefactor::spawn_blocking",
        "ran in prefactor::thread::spawn",
    ];
    assert_eq!(ran_in, expected);
    assert_eq!(common::harness().guard.client().stats().unattached, 0);
}
