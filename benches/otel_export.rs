//! Cost per span of the OTel export (feature `otel`), three ways, in one run:
//! 1. `prefactor_only`: a span (model + prompt payload, completion result with usage) through
//!    the explicit API, delivered to the local server;
//! 2. `prefactor_and_otlp`: the same, with `OtelExport::otlp_http()` also exporting it as an
//!    OTel span (GenAI conventions) to an OTLP/HTTP receiver on 127.0.0.1 (dual delivery);
//! 3. `otel_sdk_batch`: the OpenTelemetry Rust SDK on its own: a `chat` span with the same
//!    `gen_ai.*` attributes, ended on the calling thread into the SDK's batch processor,
//!    exported with OTLP/HTTP to the same receiver.
//!
//! Two figures per variant:
//! * criterion: the calling thread's CPU per span (what the agent pays), in chunks of `CHUNK`
//!   spans with an untimed flush between chunks, so every measured span is delivered;
//! * a summary printed at the end: the CPU per span of every thread of the SDK side over
//!   `SUMMARY_SPANS` spans: the calling thread, Prefactor's worker, the batch processor and the
//!   HTTP client's thread (from `/proc/self/task/*/schedstat`); the local server and the
//!   receiver are left out. This is where dual delivery's work shows: on the worker.
//!
//! Every variant checks that the receiver got every span and nothing was dropped.
//!
//! Run: `cargo bench --bench otel_export --features otel`.

#[path = "support/thread_cpu.rs"]
mod thread_cpu;

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry::{KeyValue, Value as OtelValue};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use prefactor::{
    AgentInstanceHandle, Client, Config, CreateInstance, FinishSpan, OtelExport, Payload, SchemaRegistry, SpanType,
};
use prefactor_server::{DbLocation, LocalServer, ServerConfig};
use prost::Message;
use serde::Serialize;
use thread_cpu::thread_cpu_time;

/// Spans per timed chunk (then an untimed flush of both deliveries).
const CHUNK: u64 = 1_024;
/// Spans of the whole-SDK CPU summary.
const SUMMARY_SPANS: u64 = 16 * CHUNK;
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// The batch processor's queue in both OTel variants (what `OtelExport` uses by default).
const BSP_QUEUE: usize = 16_384;

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    prompt: &'a str,
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u32,
    output_tokens: u32,
}

#[derive(Serialize)]
struct Completion<'a> {
    text: &'a str,
    usage: Usage,
    finish_reason: &'a str,
}

/// An OTLP/HTTP receiver that decodes each request and counts its spans.
struct Receiver {
    url: String,
    spans: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let spans = Arc::new(AtomicU64::new(0));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let counter = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let counter = counter.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("a protobuf export");
                    let count: usize =
                        request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
                    counter.fetch_add(count as u64, Ordering::Relaxed);
                    ExportTraceServiceResponse::default().encode_to_vec()
                }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, spans, _runtime: runtime }
    }
}

/// The OTel SDK variant's HTTP client: reqwest's blocking client, as `OtelExport` uses
/// (made on the batch processor's thread).
#[derive(Debug, Default)]
struct BlockingHttp(std::sync::OnceLock<reqwest::blocking::Client>);

impl HttpClient for BlockingHttp {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let client = self.0.get_or_init(reqwest::blocking::Client::new);
            let (parts, body) = request.into_parts();
            let response = client.post(parts.uri.to_string()).headers(parts.headers).body(body.to_vec()).send()?;
            let status = response.status();
            Ok(Response::builder().status(status).body(response.bytes()?)?)
        })
    }
}

/// What one variant records per span, and how it flushes.
trait Variant {
    fn record(&self, i: u64);
    fn flush(&self);
}

struct PrefactorVariant {
    client: Client,
    instance: AgentInstanceHandle,
}

impl Variant for PrefactorVariant {
    fn record(&self, i: u64) {
        let request = ChatRequest { model: "gpt-4o", prompt: "weather in Paris" };
        let span = self.instance.span("bench:chat").payload(Payload::from_serialize(&request).unwrap()).start();
        let completion = Completion {
            text: "sunny",
            usage: Usage { input_tokens: 12, output_tokens: black_box(i as u32 & 63) },
            finish_reason: "stop",
        };
        span.finish(FinishSpan::complete().result(Payload::from_serialize(&completion).unwrap()));
    }

    fn flush(&self) {
        self.client.flush_blocking(FLUSH_TIMEOUT).expect("delivered");
    }
}

struct SdkVariant {
    provider: SdkTracerProvider,
    tracer: opentelemetry_sdk::trace::SdkTracer,
}

impl Variant for SdkVariant {
    fn record(&self, i: u64) {
        let mut span = self
            .tracer
            .span_builder("chat gpt-4o")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.request.model", "gpt-4o"),
            ])
            .start(&self.tracer);
        span.set_attributes([
            KeyValue::new("gen_ai.usage.input_tokens", 12),
            KeyValue::new("gen_ai.usage.output_tokens", black_box(i as i64 & 63)),
            KeyValue::new(
                "gen_ai.response.finish_reasons",
                OtelValue::Array(opentelemetry::Array::String(vec!["stop".into()])),
            ),
        ]);
        span.end();
    }

    fn flush(&self) {
        self.provider.force_flush().expect("exported");
    }
}

fn prefactor_variant(server: &LocalServer, export: Option<OtelExport>) -> PrefactorVariant {
    let mut registry = SchemaRegistry::new();
    registry.register_type(SpanType::new("bench:chat", serde_json::json!({"type": "object"}))).unwrap();
    let mut config = Config::builder().api_url(server.base_url()).api_token(server.token()).schema_registry(registry);
    if let Some(export) = export {
        config = config.otel(export);
    }
    let client = Client::new(config.build().unwrap()).unwrap();
    client.initialize_blocking().unwrap();
    let instance = client.create_agent_instance(CreateInstance::default()).unwrap();
    instance.start();
    PrefactorVariant { client, instance }
}

fn sdk_variant(receiver: &Receiver) -> SdkVariant {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(BlockingHttp::default())
        .with_endpoint(format!("{}/v1/traces", receiver.url))
        .build()
        .unwrap();
    let batch = BatchConfigBuilder::default().with_max_queue_size(BSP_QUEUE).build();
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
    let provider = SdkTracerProvider::builder().with_span_processor(processor).build();
    let tracer = provider.tracer("bench");
    SdkVariant { provider, tracer }
}

/// CPU nanoseconds so far of this process's threads by role: Prefactor's worker, the batch
/// processor, reqwest's blocking-client thread. Other threads (server, receiver) are not SDK.
fn background_cpu() -> HashMap<&'static str, u64> {
    let mut totals = HashMap::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let role = match comm.trim() {
            name if name.starts_with("prefactor-worke") => "worker",
            name if name.starts_with("OpenTelemetry") => "batch_processor",
            name if name.starts_with("reqwest-interna") => "http_client",
            _ => continue,
        };
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        let ns: u64 = stat.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
        *totals.entry(role).or_insert(0) += ns;
    }
    totals
}

/// Records `spans` spans in chunks (flush after each) and prints the CPU per span by thread.
fn summary(name: &str, variant: &dyn Variant, spans: u64) {
    let before = background_cpu();
    let mut caller = Duration::ZERO;
    let mut done = 0;
    while done < spans {
        let start = thread_cpu_time();
        for i in 0..CHUNK {
            variant.record(i);
        }
        caller += thread_cpu_time() - start;
        variant.flush();
        done += CHUNK;
    }
    // The flush answered once the export request was answered; the exporter's threads may
    // still be finishing their bookkeeping.
    std::thread::sleep(Duration::from_millis(200));
    let after = background_cpu();
    let per_span = |ns: u64| ns as f64 / spans as f64;
    let mut line = format!("{name}: caller {:.0} ns", per_span(caller.as_nanos() as u64));
    let mut total = caller.as_nanos() as u64;
    for role in ["worker", "batch_processor", "http_client"] {
        let used = after.get(role).copied().unwrap_or(0).saturating_sub(before.get(role).copied().unwrap_or(0));
        total += used;
        line += &format!(", {role} {:.0} ns", per_span(used));
    }
    eprintln!("summary per span ({spans} spans) {line}; SDK total {:.0} ns", per_span(total));
}

fn bench_variant(c: &mut Criterion, name: &str, variant: &dyn Variant) {
    // Untimed warm-up: connections, lazy statics, first allocations.
    for i in 0..CHUNK {
        variant.record(i);
    }
    variant.flush();
    let mut group = c.benchmark_group("otel_export");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let since_flush = std::cell::Cell::new(0u64);
    group.bench_function(format!("{name}/thread_cpu"), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                if since_flush.get() >= CHUNK {
                    variant.flush();
                    since_flush.set(0);
                }
                let batch = (CHUNK - since_flush.get()).min(iters - done);
                let start = thread_cpu_time();
                for i in 0..batch {
                    variant.record(i);
                }
                timed += thread_cpu_time() - start;
                since_flush.set(since_flush.get() + batch);
                done += batch;
            }
            timed
        })
    });
    group.finish();
    variant.flush();
}

fn otel_export(c: &mut Criterion) {
    let server = LocalServer::start(ServerConfig::default().with_db(DbLocation::Temp).with_record_capacity(0))
        .expect("local server starts");
    let receiver = Receiver::start();
    let export = || {
        OtelExport::otlp_http()
            .endpoint(&receiver.url)
            .service_name("bench")
            .capture_content(prefactor::ContentCapture::NoContent)
    };

    let only = prefactor_variant(&server, None);
    let dual = prefactor_variant(&server, Some(export()));
    let sdk = sdk_variant(&receiver);

    bench_variant(c, "prefactor_only", &only);
    let received = receiver.spans.load(Ordering::Relaxed);
    assert_eq!(received, 0, "nothing exported without the export");
    bench_variant(c, "prefactor_and_otlp", &dual);
    let dual_exported = receiver.spans.load(Ordering::Relaxed);
    bench_variant(c, "otel_sdk_batch", &sdk);
    let sdk_exported = receiver.spans.load(Ordering::Relaxed) - dual_exported;
    assert!(dual_exported > 0 && sdk_exported > 0, "both OTel variants exported");

    // Interleaved summary runs: each variant twice, in turns, on the same machine state.
    for round in 0..2 {
        eprintln!(
            "summary round {round}, load: {}",
            std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
        );
        summary("prefactor_only", &only, SUMMARY_SPANS);
        let before = receiver.spans.load(Ordering::Relaxed);
        summary("prefactor_and_otlp", &dual, SUMMARY_SPANS);
        assert_eq!(receiver.spans.load(Ordering::Relaxed) - before, SUMMARY_SPANS, "every dual span exported");
        let before = receiver.spans.load(Ordering::Relaxed);
        summary("otel_sdk_batch", &sdk, SUMMARY_SPANS);
        assert_eq!(receiver.spans.load(Ordering::Relaxed) - before, SUMMARY_SPANS, "every SDK span exported");
    }

    for (name, variant) in [("prefactor_only", &only), ("prefactor_and_otlp", &dual)] {
        let stats = variant.client.stats();
        assert_eq!((stats.dropped, stats.failed), (0, 0), "{name}: {stats:?}");
        variant.client.close_blocking().expect("closed clean");
    }
    let _ = sdk.provider.shutdown();
    server.shutdown();
}

criterion_group!(benches, otel_export);
criterion_main!(benches);
