//! Streaming spans (`#[span]` on a function returning a stream, `prefactor::stream` and
//! `try_stream`), read back from a capture: complete at the end, failed at the first `Err`
//! item or a panicking poll, cancelled when dropped early; item count, time to first item,
//! the reduced result; the span's context while the stream is polled, wherever it is polled.
#![deny(clippy::pedantic)]

use futures_util::stream::{self, BoxStream, StreamExt as _};
use prefactor::testing::{Capture, CapturedRun, TreeOptions};
use prefactor::{AgentStatus, agent, span};
use serde::Serialize;
use serde_json::json;
use std::pin::Pin;
use std::time::Duration;

/// A chunk of a model's streamed reply.
#[derive(Debug, Clone)]
struct Chunk {
    text: &'static str,
    output_tokens: u32,
}

/// What the span keeps of the chunks.
#[derive(Default, Serialize)]
struct Reply {
    text: String,
    usage: Usage,
}

#[derive(Default, Serialize)]
struct Usage {
    output_tokens: u32,
}

fn add_chunk(reply: &mut Reply, chunk: &Chunk) {
    reply.text.push_str(chunk.text);
    reply.usage.output_tokens += chunk.output_tokens;
}

#[span(schema = "stream:tokenize")]
fn tokenize(text: &'static str) -> usize {
    text.len()
}

const CHUNKS: [Chunk; 3] = [
    Chunk { text: "Hel", output_tokens: 1 },
    Chunk { text: "lo", output_tokens: 1 },
    Chunk { text: "!", output_tokens: 1 },
];

/// Each chunk comes after a pause and is tokenized while the stream is polled (a child span).
#[span(schema = "stream:llm", reduce = add_chunk)]
fn chat(prompt: &str, pause_ms: u64) -> impl futures_core::Stream<Item = Chunk> + Send + use<> {
    let _ = prompt;
    stream::iter(CHUNKS).then(move |chunk| async move {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        tokenize(chunk.text);
        chunk
    })
}

#[derive(Debug)]
struct RateLimited;

impl std::fmt::Display for RateLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rate limited")
    }
}

#[span(schema = "stream:fallible", reduce = add_chunk)]
fn fallible(fail_at: usize) -> Pin<Box<dyn futures_core::Stream<Item = Result<Chunk, RateLimited>> + Send>> {
    Box::pin(stream::iter(
        CHUNKS.into_iter().enumerate().map(move |(at, chunk)| if at == fail_at { Err(RateLimited) } else { Ok(chunk) }),
    ))
}

#[span(schema = "stream:debug_errors", err(Debug))]
fn debug_errors() -> BoxStream<'static, Result<u8, RateLimited>> {
    stream::iter([Ok(1), Err(RateLimited)]).boxed()
}

#[span(schema = "stream:numbers")]
fn numbers(count: u8) -> impl futures_core::Stream<Item = u8> {
    stream::iter(0..count)
}

#[span(schema = "stream:panics")]
fn panics_on_second() -> impl futures_core::Stream<Item = u8> {
    stream::iter([1u8, 2]).map(|n| if n == 2 { panic!("boom at {n}") } else { n })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn only_run(capture: &Capture) -> CapturedRun {
    let runs = capture.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    runs.into_iter().next().expect("one run")
}

#[test]
fn a_stream_span_stays_open_until_the_end_and_records_count_ttft_and_the_reduced_result() {
    #[agent(name = "streamer")]
    async fn streamer() -> String {
        let mut reply = String::new();
        let mut chunks = std::pin::pin!(chat("hi", 20));
        while let Some(chunk) = chunks.next().await {
            reply.push_str(chunk.text);
        }
        reply
    }
    let capture = Capture::new().expect("a capture");
    let reply = runtime().block_on(capture.run_async(streamer()));
    assert_eq!(reply, "Hello!");

    let run = only_run(&capture);
    let llm = run.span("stream:llm").expect("the stream span");
    assert_eq!((llm.status, &llm.payload), (AgentStatus::Complete, &json!({"prompt": "hi", "pause_ms": 20})));
    assert_eq!(llm.result_at("/text"), Some(&json!("Hello!")));
    assert_eq!(llm.result_at("/usage/output_tokens"), Some(&json!(3)));
    assert_eq!(llm.result_at("/stream/items"), Some(&json!(3)));
    let ttft = llm.result_at("/stream/time_to_first_item_ms").and_then(serde_json::Value::as_f64).expect("a TTFT");
    let total = llm.duration().expect("ended");
    assert!(ttft >= 20.0, "the first chunk came after a 20 ms pause: {ttft} ms");
    assert!(total >= Duration::from_millis(60), "open until the last of 3 chunks 20 ms apart: {total:?}");
    assert!(ttft < total.as_secs_f64() * 1000.0);
    // Spans opened while the stream is polled are its children.
    let tokenized: Vec<_> = run.spans_of("stream:tokenize").collect();
    assert_eq!(tokenized.len(), 3);
    assert!(tokenized.iter().all(|span| span.parent == Some(llm.id)), "{run:#?}");
    insta::assert_snapshot!("streamed_reply", run.tree());
}

#[test]
fn the_stream_keeps_its_span_as_context_wherever_it_is_polled() {
    #[agent(name = "hands-off")]
    async fn hands_off() -> usize {
        let chunks = chat("elsewhere", 1);
        // Polled on a plain tokio task, which carries no context of its own.
        tokio::spawn(async move { chunks.count().await }).await.expect("the task ran")
    }
    let capture = Capture::new().expect("a capture");
    assert_eq!(runtime().block_on(capture.run_async(hands_off())), 3);
    let run = only_run(&capture);
    let llm = run.span("stream:llm").expect("the stream span");
    assert_eq!(llm.status, AgentStatus::Complete);
    assert!(run.spans_of("stream:tokenize").all(|span| span.parent == Some(llm.id)), "{run:#?}");
}

#[test]
fn an_err_item_fails_the_span_with_the_error_and_what_came_before() {
    #[agent(name = "failing")]
    fn failing() -> Vec<String> {
        futures_executor::block_on(fallible(1).map(|item| format!("{item:?}")).collect())
    }
    let capture = Capture::new().expect("a capture");
    let seen = capture.run(failing);
    assert_eq!(seen.len(), 3, "every item still reaches the caller: {seen:?}");
    let run = only_run(&capture);
    let span = run.span("stream:fallible").expect("the stream span");
    assert_eq!(span.status, AgentStatus::Failed);
    assert_eq!(span.result_at("/error/message"), Some(&json!("rate limited")));
    assert_eq!(span.result_at("/error/type"), Some(&json!("streaming_spans::RateLimited")));
    assert_eq!((span.result_at("/stream/items"), span.result_at("/text")), (Some(&json!(2)), Some(&json!("Hel"))));
    insta::assert_snapshot!("failed_stream", run.tree());

    let capture = Capture::new().expect("a capture");
    capture.run(|| {
        #[agent(name = "debug")]
        fn debug() -> usize {
            futures_executor::block_on(debug_errors().count())
        }
        debug()
    });
    let run = only_run(&capture);
    let span = run.span("stream:debug_errors").expect("the stream span");
    assert_eq!((span.status, span.result_at("/error/message")), (AgentStatus::Failed, Some(&json!("RateLimited"))));
}

#[test]
fn a_stream_dropped_early_is_cancelled_and_one_never_polled_has_no_items() {
    #[agent(name = "impatient")]
    fn impatient() -> Vec<u8> {
        let first_two = futures_executor::block_on(numbers(10).take(2).collect());
        drop(numbers(3));
        first_two
    }
    let capture = Capture::new().expect("a capture");
    assert_eq!(capture.run(impatient), [0, 1]);
    let run = only_run(&capture);
    let spans: Vec<_> = run.spans_of("stream:numbers").collect();
    assert_eq!(spans.len(), 2);
    assert_eq!((spans[0].status, spans[0].result_at("/stream/items")), (AgentStatus::Cancelled, Some(&json!(2))));
    assert_eq!((spans[1].status, spans[1].result_at("/stream/items")), (AgentStatus::Cancelled, Some(&json!(0))));
    assert_eq!(spans[1].result_at("/stream/time_to_first_item_ms"), None);
    assert_eq!(
        run.tree_with(&TreeOptions::default().payloads(false)),
        "run impatient [complete]\n\
         ├─ stream:numbers [cancelled] -> {\"stream\":{\"items\":2,\"time_to_first_item_ms\":\"<time_to_first_item_ms>\"}}\n\
         └─ stream:numbers [cancelled] -> {\"stream\":{\"items\":0}}\n"
    );
}

#[test]
fn a_panicking_poll_fails_the_span() {
    let capture = Capture::new().expect("a capture");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        capture.run(|| {
            #[agent(name = "panicky")]
            fn panicky() -> Vec<u8> {
                futures_executor::block_on(panics_on_second().collect())
            }
            panicky()
        })
    }));
    assert!(outcome.is_err());
    let run = only_run(&capture);
    let span = run.span("stream:panics").expect("the stream span");
    assert_eq!((span.status, span.result_at("/stream/items")), (AgentStatus::Failed, Some(&json!(1))));
    assert_eq!(run.status, AgentStatus::Failed);
}

#[test]
fn streams_made_elsewhere_are_recorded_with_prefactor_stream_and_try_stream() {
    #[agent(name = "wrapper")]
    fn wrapper() -> (u32, usize) {
        let sum = futures_executor::block_on(
            prefactor::stream("stream:external", stream::iter([1u32, 2, 3]))
                .reduce(|total: &mut u32, n: &u32| *total += n)
                .fold(0, |sum, n| async move { sum + n }),
        );
        let items = stream::iter([Ok::<u8, String>(1), Ok(2)]);
        let count = futures_executor::block_on(prefactor::try_stream("stream:external_try", items).count());
        (sum, count)
    }
    let capture = Capture::new().expect("a capture");
    assert_eq!(capture.run(wrapper), (6, 2));
    let run = only_run(&capture);
    let external = run.span("stream:external").expect("the wrapped stream");
    assert_eq!((external.status, external.result_at("/output")), (AgentStatus::Complete, Some(&json!(6))));
    let external_try = run.span("stream:external_try").expect("the wrapped fallible stream");
    assert_eq!(
        (external_try.status, external_try.result_at("/stream/items")),
        (AgentStatus::Complete, Some(&json!(2)))
    );

    // Outside any run the stream is passed through untouched, and counted as unattached.
    let outside = capture.run(|| {
        futures_executor::block_on(prefactor::stream("stream:outside", stream::iter([7u8])).collect::<Vec<_>>())
    });
    assert_eq!(outside, [7]);
    assert_eq!(capture.client().stats().unattached, 1);
    assert_eq!(capture.runs().len(), 1);
}

#[test]
fn without_a_client_the_stream_is_the_same_stream() {
    let items: Vec<Chunk> = runtime().block_on(chat("no client", 0).collect::<Vec<_>>());
    assert_eq!(items.len(), 3);
    let failing: Vec<_> = futures_executor::block_on(fallible(0).collect::<Vec<_>>());
    assert!(failing[0].is_err() && failing[1].is_ok());
}
