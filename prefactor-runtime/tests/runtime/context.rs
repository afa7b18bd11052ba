//! Parent detection: across `.await`, nested, 1,000 concurrent tasks, spawn, sync scopes.

use std::collections::HashMap;
use std::time::Duration;

use prefactor_runtime::{Context, CreateInstance, FutureExt, SpanId};
use serde_json::Value;

use crate::common::{BOTH_MODES, client_for, flush, server, span_by_id, spans_of};

fn parent_of(spans: &[Value], id: SpanId) -> Option<String> {
    span_by_id(spans, &id.to_string())["parent_span_id"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn parents_follow_the_context_across_await_and_nesting() {
    for delivery in BOTH_MODES {
        let server = server();
        let client = client_for(&server, delivery).await;
        let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
        let root = instance.span("t:root").start();
        let root_id = root.id();
        let (child_id, grandchild_id, after_id) = {
            let instance = instance.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let child = instance.span("t:child").start();
                let child_id = child.id();
                let grandchild_id = {
                    let instance = instance.clone();
                    async move {
                        tokio::task::yield_now().await;
                        let grandchild = instance.span("t:grandchild").start();
                        tokio::task::yield_now().await;
                        grandchild.id()
                    }
                    .in_context(child.context())
                    .await
                };
                child.complete();
                // Back in the root's scope after the nested future.
                let after = instance.span("t:after").start();
                (child_id, grandchild_id, after.id())
            }
            .in_context(root.context())
            .await
        };
        let outside = instance.span("t:outside").start().id();
        root.complete();
        flush(&client).await;

        let spans = spans_of(&server, instance.id()).await;
        assert_eq!(parent_of(&spans, root_id), None);
        assert_eq!(parent_of(&spans, child_id), Some(root_id.to_string()));
        assert_eq!(parent_of(&spans, grandchild_id), Some(child_id.to_string()));
        assert_eq!(parent_of(&spans, after_id), Some(root_id.to_string()));
        assert_eq!(parent_of(&spans, outside), None, "the context does not leak out of the future");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_tasks_each_keep_their_own_tree() {
    for delivery in BOTH_MODES {
        let server = server();
        let client = client_for(&server, delivery).await;
        let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
        let batch = instance.span("t:batch").start();
        let batch_id = batch.id();
        let mut tasks = Vec::new();
        for i in 0..1000u32 {
            let instance = instance.clone();
            let task = async move {
                let root = instance.span("t:task").start();
                let root_id = root.id();
                let ids = async {
                    tokio::time::sleep(Duration::from_millis(u64::from(i % 7))).await;
                    let child = instance.span("t:child").start();
                    let leaf_id = async {
                        tokio::task::yield_now().await;
                        let leaf = instance.span("t:leaf").start();
                        tokio::time::sleep(Duration::from_millis(u64::from(i % 3))).await;
                        leaf.id()
                    }
                    .in_context(child.context())
                    .await;
                    (child.id(), leaf_id)
                }
                .in_context(root.context())
                .await;
                (root_id, ids.0, ids.1)
            };
            tasks.push(prefactor_runtime::spawn(task.in_context(batch.context())));
        }
        let mut expected: HashMap<SpanId, SpanId> = HashMap::new();
        for task in tasks {
            let (root, child, leaf) = task.await.unwrap();
            expected.insert(root, batch_id);
            expected.insert(child, root);
            expected.insert(leaf, child);
        }
        batch.complete();
        flush(&client).await;

        let spans = spans_of(&server, instance.id()).await;
        assert_eq!(spans.len(), 3001);
        let parents: HashMap<String, Option<String>> = spans
            .iter()
            .map(|s| (s["id"].as_str().unwrap().to_owned(), s["parent_span_id"].as_str().map(str::to_owned)))
            .collect();
        for (span, parent) in &expected {
            assert_eq!(parents[&span.to_string()], Some(parent.to_string()), "parent of {span}");
        }
        assert_eq!(parents[&batch_id.to_string()], None);
        assert_eq!(client.stats().failed, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_carries_the_current_context_and_plain_tokio_spawn_does_not() {
    for delivery in BOTH_MODES {
        let server = server();
        let client = client_for(&server, delivery).await;
        let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
        let root = instance.span("t:root").start();
        let root_id = root.id();
        let (carried, plain) = {
            let instance = instance.clone();
            async move {
                let a = instance.clone();
                let carried = prefactor_runtime::spawn(async move { a.span("t:carried").start().id() });
                let b = instance.clone();
                let plain = tokio::spawn(async move { b.span("t:plain").start().id() });
                (carried.await.unwrap(), plain.await.unwrap())
            }
            .in_context(root.context())
            .await
        };
        root.complete();
        flush(&client).await;
        let spans = spans_of(&server, instance.id()).await;
        assert_eq!(parent_of(&spans, carried), Some(root_id.to_string()));
        assert_eq!(parent_of(&spans, plain), None);
    }
}

#[tokio::test]
async fn enter_scopes_the_parent_in_synchronous_code() {
    for delivery in BOTH_MODES {
        let server = server();
        let client = client_for(&server, delivery).await;
        let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
        let outer = instance.span("t:outer").start();
        let (inner_id, leaf_id, sibling_id) = {
            let _in_outer = outer.enter();
            let inner = instance.span("t:inner").start();
            let leaf_id = {
                let _in_inner = inner.enter();
                assert_eq!(Context::current().span_id(), Some(inner.id()));
                instance.span("t:leaf").start().id()
            };
            assert_eq!(Context::current().span_id(), Some(outer.id()));
            (inner.id(), leaf_id, instance.span("t:sibling").start().id())
        };
        assert_eq!(Context::current().span_id(), None);
        let outer_id = outer.id();
        drop(outer);
        flush(&client).await;
        let spans = spans_of(&server, instance.id()).await;
        assert_eq!(parent_of(&spans, inner_id), Some(outer_id.to_string()));
        assert_eq!(parent_of(&spans, leaf_id), Some(inner_id.to_string()));
        assert_eq!(parent_of(&spans, sibling_id), Some(outer_id.to_string()));
    }
}

#[tokio::test]
async fn a_span_of_another_instance_is_not_used_as_parent() {
    for delivery in BOTH_MODES {
        let server = server();
        let client = client_for(&server, delivery).await;
        let first = client.create_agent_instance(CreateInstance::default()).unwrap();
        let second = client.create_agent_instance(CreateInstance::default()).unwrap();
        let span = first.span("t:first").start();
        let other = {
            let _entered = span.enter();
            second.span("t:second").start().id()
        };
        drop(span);
        flush(&client).await;
        assert_eq!(parent_of(&spans_of(&server, second.id()).await, other), None);
    }
}
