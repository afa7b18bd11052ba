//! `cargo bench -p prefactor-protocol --bench trace_headers`: what propagation costs per call
//! in parsing and formatting: the caller formats `prefactor-context` and `traceparent`
//! (`inject`), the tool service parses both and checks a `tracestate` (`extract`). `Pfid::generate`
//! (one per span) runs in the same process for a yardstick.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use prefactor_protocol::{Pfid, PrefactorContext, TraceParent, valid_tracestate};

fn trace_headers(c: &mut Criterion) {
    let context = PrefactorContext { instance: Pfid::generate(7), span: Some(Pfid::generate(7)), sampled: true };
    c.bench_function("headers/inject_format", |b| {
        b.iter(|| {
            let context = black_box(&context);
            (context.to_string(), context.traceparent().to_string())
        })
    });
    let (prefactor, traceparent) = (context.to_string(), context.traceparent().to_string());
    let trace_state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    c.bench_function("headers/extract_parse", |b| {
        b.iter(|| {
            let prefactor = black_box(prefactor.as_str()).parse::<PrefactorContext>();
            let traceparent = black_box(traceparent.as_str()).parse::<TraceParent>();
            (prefactor, traceparent, valid_tracestate(black_box(trace_state)))
        })
    });
    c.bench_function("headers/yardstick_pfid_generate", |b| b.iter(|| Pfid::generate(black_box(7))));
}

criterion_group!(benches, trace_headers);
criterion_main!(benches);
