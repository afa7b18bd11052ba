//! The cost of redaction on the worker thread, per payload: what `Worker::accept` does to every
//! payload before it is scheduled, spooled or sent (`delivery/payload_policy.rs`). The agent's
//! thread pays none of it; this is the worker's CPU per span payload.
//!
//! A typical LLM call payload (about 4 KB: model parameters, a system prompt and a six-turn
//! chat, two tool definitions), with:
//! * `scrub_off`: scrubbing turned off, no redaction, under the size limit (nothing to do);
//! * `scrub_on`: the default scrubbing, nothing secret in the payload (only the text checks
//!   of `SecretPrefilter`: SIMD scans, no parse);
//! * `scrub_on_secret`: the same with an API key in one message (parsed, walked, written again);
//! * `redact_path`: `messages[*].content` redacted, default scrubbing on;
//! * `truncate_1mib`: a 1 MiB document cut to the default 256 KiB limit.
//!
//! Each iteration clones the payload (one allocation and copy of its text) and applies the
//! policy to the clone; `clone_only` is that clone alone, to subtract.

use std::hint::black_box;
use std::sync::LazyLock;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use prefactor_runtime::{Config, Payload, Redaction, apply_to_payload};
use serde_json::{Value, json};

static MESSAGES: LazyLock<Redaction> = LazyLock::new(|| Redaction::new(["messages[*].content"]).expect("valid"));

fn config(scrub: bool) -> Config {
    Config::builder().api_url("http://127.0.0.1:9").api_token("t").scrub_secrets(scrub).build().expect("valid config")
}

/// About 4 KB of a chat completion request.
fn llm_payload(secret: bool) -> Value {
    let turn = "Summarise the quarterly report: revenue grew 12 % while costs fell 3 %; the board asked \
                for a forecast of the next two quarters, with the assumptions spelled out.\nKeep it short.";
    let mut messages =
        vec![json!({"role": "system", "content": "You are a careful financial analyst. Answer in English."})];
    for index in 0..6 {
        let role = if index % 2 == 0 { "user" } else { "assistant" };
        messages.push(json!({"role": role, "content": format!("{turn} (turn {index})")}));
    }
    if secret {
        messages[3]["content"] = json!("use the key sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c for the API");
    }
    json!({
        "model": "gpt-4o-2024-08-06",
        "temperature": 0.2,
        "max_tokens": 1024,
        "top_p": 1.0,
        "stream": false,
        "messages": messages,
        "tools": [
            {"type": "function", "function": {"name": "lookup_report", "description": "Finds a report by quarter",
             "parameters": {"type": "object", "properties": {"quarter": {"type": "string"}}, "required": ["quarter"]}}},
            {"type": "function", "function": {"name": "forecast", "description": "Projects revenue and costs",
             "parameters": {"type": "object", "properties": {"quarters": {"type": "integer"}}}}}
        ],
        "usage": {"input_tokens": 812, "output_tokens": 190, "cached_tokens": 0}
    })
}

fn bench(c: &mut Criterion) {
    let on = config(true);
    let off = config(false);
    let clean = Payload::from(llm_payload(false));
    let secret = Payload::from(llm_payload(true));
    let redacted = Payload::from(llm_payload(false)).with_redaction(&MESSAGES);
    let huge = Payload::from(json!({"model": "m", "document": "lorem ipsum dolor ".repeat(1 << 16)}));
    eprintln!("typical payload: {} bytes; huge: {} bytes", clean.as_json().len(), huge.as_json().len());
    // The cases do what their names say.
    assert_eq!(apply_to_payload(&on, &mut clean.clone()), (0, 0));
    assert_eq!(apply_to_payload(&on, &mut secret.clone()), (1, 0));
    assert_eq!(apply_to_payload(&on, &mut huge.clone()), (0, 1));

    let mut group = c.benchmark_group("redaction");
    let cases: [(&str, &Config, &Payload); 5] = [
        ("scrub_off", &off, &clean),
        ("scrub_on", &on, &clean),
        ("scrub_on_secret", &on, &secret),
        ("redact_path", &on, &redacted),
        ("truncate_1mib", &on, &huge),
    ];
    group.bench_function("clone_only", |b| b.iter_batched(|| clean.clone(), black_box, BatchSize::SmallInput));
    for (name, config, payload) in cases {
        group.bench_function(name, |b| {
            b.iter_batched(
                || payload.clone(),
                |mut payload| {
                    black_box(apply_to_payload(config, &mut payload));
                    payload
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
