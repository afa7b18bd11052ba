//! What pricing an LLM response costs the thread that records it: `Response` serialized
//! (as `#[span]` records a result) with its cost computed from the process's price table
//! (`priced`), against the same response whose usage already carries a cost (`cost_given`:
//! no lookup, no arithmetic); and the bare lookup and arithmetic (`table_cost`) for a dated
//! model name, the common case (`gpt-4o-2024-08-06` → `gpt-4o`).
//!
//! Run: `cargo bench --bench llm_cost`. Results in `BENCHMARKS.md`, history in
//! `docs/benchmarks-journal.md`.

use criterion::{Criterion, criterion_group, criterion_main};
use prefactor::llm::{Cost, PriceTable, Response, ToolCall, Usage, price_table};
use std::hint::black_box;

fn response(usage: Usage) -> Response {
    Response::text("It is 21 °C and sunny in Lisbon: a good evening for a walk by the river.")
        .id("chatcmpl-AbC123")
        .model("gpt-4o-2024-08-06")
        .tool_call(ToolCall::from_json_text("get_weather", r#"{"city":"Lisbon"}"#).id("call_1"))
        .finish_reason("stop")
        .usage(usage)
}

fn bench(c: &mut Criterion) {
    let usage = Usage::new(1_450, 40).cache_read(1_024);
    let priced = response(usage.clone());
    let given = response(usage.clone().cost(Cost::new(0.002_745, "USD")));
    let mut buffer = Vec::with_capacity(1024);
    let mut group = c.benchmark_group("llm_cost");
    group.bench_function("priced", |b| {
        b.iter(|| {
            buffer.clear();
            serde_json::to_writer(&mut buffer, black_box(&priced)).expect("serializable");
            black_box(buffer.len())
        });
    });
    group.bench_function("cost_given", |b| {
        b.iter(|| {
            buffer.clear();
            serde_json::to_writer(&mut buffer, black_box(&given)).expect("serializable");
            black_box(buffer.len())
        });
    });
    let table: std::sync::Arc<PriceTable> = price_table();
    group.bench_function("table_cost", |b| {
        b.iter(|| black_box(table.cost(black_box("gpt-4o-2024-08-06"), black_box(&usage))));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
