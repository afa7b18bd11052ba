//! `OtelPipeline`: the tracer provider the export uses (its own, or the application's), its
//! tracer, and the conventions resolved from the configuration and the environment.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider};

use super::genai::Conventions;
use super::http_client::BlockingHttp;
use super::id_generator::OtelIdGenerator;
use crate::config::otel::{ContentCapture, GenAiOperation, OtelExport, OtelTarget, SemconvStability};
use crate::report::error::Error;
use crate::schema::static_schema::StaticSpanType;

/// The OTLP request timeout when neither the configuration nor the environment sets one (the
/// OTel SDKs' default).
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The batch processor's queue when `OTEL_BSP_MAX_QUEUE_SIZE` is not set. The SDK's default
/// (2,048) suits spans ended one by one; the worker ends them in bursts (up to 4,096 operations
/// per wake-up), which would overflow it and make the SDK drop spans silently. At a few hundred
/// bytes a span this holds a few MB at most.
const DEFAULT_QUEUE: usize = 16_384;

/// What the mirror needs to make OTel spans, and what the client flushes and shuts down.
pub(crate) struct OtelPipeline {
    provider: SdkTracerProvider,
    /// Made by us (shut down with the client) rather than the application's (only flushed).
    owned: bool,
    pub(crate) tracer: SdkTracer,
    pub(crate) conventions: Conventions,
    /// Declared operations by schema name (over the ones names imply).
    pub(crate) operations: HashMap<String, GenAiOperation>,
}

impl OtelPipeline {
    /// Builds the pipeline; `env` reads the environment (a parameter so tests need not set
    /// the process's). Never touches the global provider.
    pub(crate) fn new(export: &OtelExport, env: impl Fn(&str) -> Option<String>) -> Result<OtelPipeline, Error> {
        let stability = export
            .stability
            .unwrap_or_else(|| SemconvStability::from_env_value(env("OTEL_SEMCONV_STABILITY_OPT_IN").as_deref()));
        let capture = export.capture.unwrap_or_else(|| {
            ContentCapture::from_env_value(
                env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT").as_deref(),
                stability,
            )
        });
        let (provider, owned) = match &export.target {
            OtelTarget::Provider(provider) => (provider.clone(), false),
            OtelTarget::OtlpHttp { endpoint, headers, timeout } => {
                (own_provider(endpoint.as_deref(), headers, *timeout, export.service_name.as_deref(), &env)?, true)
            }
        };
        let scope = InstrumentationScope::builder("prefactor").with_version(env!("CARGO_PKG_VERSION")).build();
        let tracer = provider.tracer_with_scope(scope);
        let mut operations = declared_operations()?;
        operations.extend(export.operations.iter().cloned());
        Ok(OtelPipeline { provider, owned, tracer, conventions: Conventions { capture, stability }, operations })
    }

    /// Exports what the batch processor holds; blocks until exported or its timeout.
    pub(crate) fn flush(&self) -> Result<(), Error> {
        self.provider.force_flush().map_err(|e| otel_error(&e))
    }

    /// At close: our provider is shut down (exporting what it holds, within `timeout`); the
    /// application's is only flushed (it stays the application's).
    pub(crate) fn close(&self, timeout: Duration) -> Result<(), Error> {
        let result =
            if self.owned { self.provider.shutdown_with_timeout(timeout) } else { self.provider.force_flush() };
        result.map_err(|e| otel_error(&e))
    }
}

/// The operations span types declare with `#[span(kind = ...)]`; two declarations of one span
/// type that disagree are a conflict, as for its schemas.
fn declared_operations() -> Result<HashMap<String, GenAiOperation>, Error> {
    let mut declared: HashMap<String, (GenAiOperation, String)> = HashMap::new();
    let mut items: Vec<&StaticSpanType> = inventory::iter::<StaticSpanType>.into_iter().collect();
    items.sort_by_key(|s| (s.name, s.file, s.line, s.column));
    for item in items {
        // The macro accepts only the operations' names.
        let Some(operation) = item.gen_ai_operation.and_then(|name| name.parse::<GenAiOperation>().ok()) else {
            continue;
        };
        match declared.get(item.name) {
            Some((first, origin)) if *first != operation => {
                return Err(Error::SchemaConflict {
                    name: item.name.to_owned(),
                    first: origin.clone(),
                    second: item.location(),
                });
            }
            Some(_) => {}
            None => {
                declared.insert(item.name.to_owned(), (operation, item.location()));
            }
        }
    }
    Ok(declared.into_iter().map(|(name, (operation, _))| (name, operation)).collect())
}

fn otel_error(error: &impl std::fmt::Display) -> Error {
    Error::Http { operation: "otel export", status: None, code: None, message: error.to_string() }
}

fn own_provider(
    endpoint: Option<&str>,
    headers: &[(String, String)],
    timeout: Option<Duration>,
    service_name: Option<&str>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<SdkTracerProvider, Error> {
    let invalid = |reason: String| Error::InvalidConfig { field: "otel", reason };
    let timeout = timeout
        .or_else(|| {
            ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]
                .iter()
                .find_map(|name| env(name)?.trim().parse::<u64>().ok().map(Duration::from_millis))
        })
        .unwrap_or(DEFAULT_EXPORT_TIMEOUT);
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(BlockingHttp::new(timeout))
        .with_timeout(timeout);
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(traces_url(endpoint));
    }
    if !headers.is_empty() {
        builder = builder.with_headers(headers.iter().cloned().collect());
    }
    let exporter = builder.build().map_err(|e| invalid(e.to_string()))?;
    let mut resource = Resource::builder();
    if let Some(name) = service_name {
        resource = resource.with_service_name(name.to_owned());
    }
    // `BatchConfigBuilder::default()` reads the `OTEL_BSP_*` variables.
    let mut batch = BatchConfigBuilder::default();
    if env("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
        batch = batch.with_max_queue_size(DEFAULT_QUEUE);
    }
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch.build()).build();
    Ok(SdkTracerProvider::builder()
        .with_id_generator(OtelIdGenerator::default())
        .with_span_processor(processor)
        .with_resource(resource.build())
        .build())
}

/// `base` + `/v1/traces`, as `OTEL_EXPORTER_OTLP_ENDPOINT` is read; a URL already naming the
/// traces path is kept.
fn traces_url(base: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_base_like_the_environment_variable() {
        assert_eq!(traces_url("http://127.0.0.1:4318/"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
    }

    #[test]
    fn the_environment_sets_capture_and_stability_unless_configured() {
        let env = |name: &str| match name {
            "OTEL_SEMCONV_STABILITY_OPT_IN" => Some("gen_ai_latest_experimental".to_owned()),
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" => Some("EVENT_ONLY".to_owned()),
            _ => None,
        };
        let provider = SdkTracerProvider::builder().build();
        let pipeline = OtelPipeline::new(&OtelExport::with_provider(provider.clone()), env).unwrap();
        assert_eq!(
            pipeline.conventions,
            Conventions { capture: ContentCapture::EventOnly, stability: SemconvStability::LatestExperimental }
        );
        let configured = OtelExport::with_provider(provider).capture_content(ContentCapture::NoContent);
        let pipeline = OtelPipeline::new(&configured, env).unwrap();
        assert_eq!(pipeline.conventions.capture, ContentCapture::NoContent);
        assert!(!pipeline.owned);
    }
}
