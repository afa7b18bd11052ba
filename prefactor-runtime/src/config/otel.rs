//! `OtelExport`: where and how spans are also (or only) exported as OpenTelemetry spans, with
//! the GenAI semantic conventions' two switches (content capture, stability opt-in).

use std::fmt;
use std::time::Duration;

use opentelemetry_sdk::trace::SdkTracerProvider;

/// Exports every span and agent run as an OpenTelemetry span, next to (or instead of) the
/// Prefactor API: set it with [`ConfigBuilder::otel`](crate::ConfigBuilder::otel).
///
/// The spans follow the OpenTelemetry GenAI semantic conventions: an agent run is an
/// `invoke_agent` span, the root of its own trace; its spans are its children (parents kept),
/// named and typed by their [`GenAiOperation`] (from the schema name, see
/// [`GenAiOperation::from_schema_name`], or declared with [`OtelExport::operation`]), with the
/// `gen_ai.*` attributes the payloads have (model, usage, finish reasons, tool name...).
/// Message content is exported only when [`ContentCapture`] says so.
///
/// The export never touches the application's global tracer provider: by default it makes a
/// provider of its own (an OTLP/HTTP protobuf exporter behind the SDK's batch processor, on
/// its own thread), or it joins the one the application passes with
/// [`OtelExport::with_provider`] (then any exporter the application configured is used, gRPC
/// included). Spans are built on the Prefactor worker's thread, never on the agent's.
///
/// ```
/// use prefactor_runtime::{Config, ContentCapture, GenAiOperation, OtelExport};
///
/// let config = Config::builder()
///     .api_url("http://127.0.0.1:8080")
///     .api_token("token")
///     .otel(
///         OtelExport::otlp_http()
///             .endpoint("http://127.0.0.1:4318")
///             .service_name("support-bot")
///             .capture_content(ContentCapture::SpanOnly)
///             .operation("acme:complete", GenAiOperation::Chat),
///     )
///     .build()
///     .unwrap();
/// assert!(config.otel().is_some());
/// ```
#[derive(Clone, Debug)]
pub struct OtelExport {
    pub(crate) target: OtelTarget,
    pub(crate) only: bool,
    pub(crate) capture: Option<ContentCapture>,
    pub(crate) stability: Option<SemconvStability>,
    pub(crate) operations: Vec<(String, GenAiOperation)>,
    pub(crate) service_name: Option<String>,
}

/// Where the OTel spans go.
#[derive(Clone)]
pub(crate) enum OtelTarget {
    /// A provider of our own with an OTLP/HTTP exporter.
    OtlpHttp { endpoint: Option<String>, headers: Vec<(String, String)>, timeout: Option<Duration> },
    /// The application's provider (never shut down by us, only flushed).
    Provider(SdkTracerProvider),
}

impl fmt::Debug for OtelTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Header values are often credentials: names only.
            OtelTarget::OtlpHttp { endpoint, headers, timeout } => f
                .debug_struct("OtlpHttp")
                .field("endpoint", endpoint)
                .field("headers", &headers.iter().map(|(name, _)| name).collect::<Vec<_>>())
                .field("timeout", timeout)
                .finish(),
            OtelTarget::Provider(_) => f.write_str("Provider(application's)"),
        }
    }
}

impl OtelExport {
    /// Export through a tracer provider of its own, with an OTLP/HTTP (protobuf) exporter
    /// configured like any OTel SDK: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/traces`), `OTEL_EXPORTER_OTLP_HEADERS`,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, else `http://localhost:4318/v1/traces`; the batch
    /// processor honours `OTEL_BSP_*`. The methods below override the environment.
    ///
    /// ```
    /// let export = prefactor_runtime::OtelExport::otlp_http().endpoint("http://collector:4318");
    /// # let _ = export;
    /// ```
    #[must_use]
    pub fn otlp_http() -> OtelExport {
        OtelExport::new(OtelTarget::OtlpHttp { endpoint: None, headers: Vec::new(), timeout: None })
    }

    /// Export through the application's own provider (a clone of its handle): the spans go
    /// wherever its processors send them. It is flushed with the client, never shut down: it
    /// stays the application's. The global provider is neither read nor set. Build it with
    /// [`OtelIdGenerator`](crate::OtelIdGenerator) so that the spans of tool services join
    /// the agent's traces (propagation); the application's own spans still get random ids.
    ///
    /// ```
    /// use opentelemetry_sdk::trace::SdkTracerProvider;
    ///
    /// let provider = SdkTracerProvider::builder().with_id_generator(prefactor_runtime::OtelIdGenerator::default()).build();
    /// let export = prefactor_runtime::OtelExport::with_provider(provider.clone());
    /// # let _ = export;
    /// ```
    #[must_use]
    pub fn with_provider(provider: SdkTracerProvider) -> OtelExport {
        OtelExport::new(OtelTarget::Provider(provider))
    }

    fn new(target: OtelTarget) -> OtelExport {
        OtelExport { target, only: false, capture: None, stability: None, operations: Vec::new(), service_name: None }
    }

    /// The OTLP endpoint's base URL (`/v1/traces` is appended, as for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`); a URL already ending in `/v1/traces` is used as is.
    /// Ignored with [`OtelExport::with_provider`].
    ///
    /// ```
    /// let export = prefactor_runtime::OtelExport::otlp_http().endpoint("http://127.0.0.1:4318");
    /// # let _ = export;
    /// ```
    #[must_use]
    pub fn endpoint(mut self, base: impl Into<String>) -> OtelExport {
        if let OtelTarget::OtlpHttp { endpoint, .. } = &mut self.target {
            *endpoint = Some(base.into());
        }
        self
    }

    /// A header sent with every export request (e.g. a vendor's API key); these replace
    /// `OTEL_EXPORTER_OTLP_HEADERS`. Ignored with [`OtelExport::with_provider`].
    ///
    /// ```
    /// let export = prefactor_runtime::OtelExport::otlp_http().header("x-honeycomb-team", "key");
    /// # let _ = export;
    /// ```
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> OtelExport {
        if let OtelTarget::OtlpHttp { headers, .. } = &mut self.target {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// The timeout of one export request (default 10 s or `OTEL_EXPORTER_OTLP_TIMEOUT`).
    /// Ignored with [`OtelExport::with_provider`].
    ///
    /// ```
    /// let export = prefactor_runtime::OtelExport::otlp_http().timeout(std::time::Duration::from_secs(3));
    /// # let _ = export;
    /// ```
    #[must_use]
    pub fn timeout(mut self, value: Duration) -> OtelExport {
        if let OtelTarget::OtlpHttp { timeout, .. } = &mut self.target {
            *timeout = Some(value);
        }
        self
    }

    /// The `service.name` of the exported resource (default `OTEL_SERVICE_NAME`, else the
    /// SDK's `unknown_service`). Ignored with [`OtelExport::with_provider`]: the application's
    /// provider has its resource.
    ///
    /// ```
    /// let export = prefactor_runtime::OtelExport::otlp_http().service_name("support-bot");
    /// # let _ = export;
    /// ```
    #[must_use]
    pub fn service_name(mut self, name: impl Into<String>) -> OtelExport {
        self.service_name = Some(name.into());
        self
    }

    /// Export only as OTel spans: nothing goes to the Prefactor API (no token check, no
    /// termination poll), and the API URL and token may be left out of the configuration.
    ///
    /// ```
    /// use prefactor_runtime::{Config, OtelExport};
    ///
    /// let config = Config::builder().otel(OtelExport::otlp_http().only()).build().unwrap();
    /// assert!(config.otel().unwrap().is_only());
    /// ```
    #[must_use]
    pub fn only(mut self) -> OtelExport {
        self.only = true;
        self
    }

    /// Whether nothing goes to the Prefactor API.
    ///
    /// ```
    /// assert!(!prefactor_runtime::OtelExport::otlp_http().is_only());
    /// ```
    #[must_use]
    pub fn is_only(&self) -> bool {
        self.only
    }

    /// Which message content is exported, overriding
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` (see [`ContentCapture`]).
    ///
    /// ```
    /// use prefactor_runtime::{ContentCapture, OtelExport};
    /// let export = OtelExport::otlp_http().capture_content(ContentCapture::SpanAndEvent);
    /// # let _ = export;
    /// ```
    #[must_use]
    pub fn capture_content(mut self, capture: ContentCapture) -> OtelExport {
        self.capture = Some(capture);
        self
    }

    /// Which version of the GenAI conventions is emitted, overriding
    /// `OTEL_SEMCONV_STABILITY_OPT_IN` (see [`SemconvStability`]).
    ///
    /// ```
    /// use prefactor_runtime::{OtelExport, SemconvStability};
    /// let export = OtelExport::otlp_http().semconv(SemconvStability::LatestExperimental);
    /// # let _ = export;
    /// ```
    #[must_use]
    pub fn semconv(mut self, stability: SemconvStability) -> OtelExport {
        self.stability = Some(stability);
        self
    }

    /// Declares the GenAI operation of a span type, over the one its name implies
    /// ([`GenAiOperation::from_schema_name`]). The last declaration of a name wins.
    ///
    /// ```
    /// use prefactor_runtime::{GenAiOperation, OtelExport};
    /// let export = OtelExport::otlp_http().operation("acme:ask_model", GenAiOperation::Chat);
    /// # let _ = export;
    /// ```
    #[must_use]
    pub fn operation(mut self, schema_name: impl Into<String>, operation: GenAiOperation) -> OtelExport {
        self.operations.push((schema_name.into(), operation));
        self
    }
}

/// The operations of the OpenTelemetry GenAI semantic conventions (`gen_ai.operation.name`).
///
/// ```
/// use prefactor_runtime::GenAiOperation;
///
/// assert_eq!(GenAiOperation::Chat.as_str(), "chat");
/// assert_eq!("execute_tool".parse(), Ok(GenAiOperation::ExecuteTool));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GenAiOperation {
    /// A chat completion (`chat`).
    Chat,
    /// A text completion (`text_completion`).
    TextCompletion,
    /// A multimodal generation (`generate_content`).
    GenerateContent,
    /// An embeddings request (`embeddings`).
    Embeddings,
    /// A tool call (`execute_tool`).
    ExecuteTool,
    /// An agent run (`invoke_agent`): every agent instance, and nested agent spans.
    InvokeAgent,
    /// Creating an agent (`create_agent`).
    CreateAgent,
}

impl GenAiOperation {
    /// Every operation, in declaration order.
    pub const ALL: [GenAiOperation; 7] = [
        GenAiOperation::Chat,
        GenAiOperation::TextCompletion,
        GenAiOperation::GenerateContent,
        GenAiOperation::Embeddings,
        GenAiOperation::ExecuteTool,
        GenAiOperation::InvokeAgent,
        GenAiOperation::CreateAgent,
    ];

    /// The `gen_ai.operation.name` value.
    ///
    /// ```
    /// assert_eq!(prefactor_runtime::GenAiOperation::Embeddings.as_str(), "embeddings");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            GenAiOperation::Chat => "chat",
            GenAiOperation::TextCompletion => "text_completion",
            GenAiOperation::GenerateContent => "generate_content",
            GenAiOperation::Embeddings => "embeddings",
            GenAiOperation::ExecuteTool => "execute_tool",
            GenAiOperation::InvokeAgent => "invoke_agent",
            GenAiOperation::CreateAgent => "create_agent",
        }
    }

    /// The operation a span type's name implies, from the segment after its namespace
    /// (`agent:llm`, `langchain:tool`, `ai-sdk:tool:search`): `llm`, `llm_call`, `chat` →
    /// chat; `completion` → text completion; `tool`, `tool_call` → execute tool; `embedding`,
    /// `embeddings` → embeddings; `agent` → invoke agent. Other names have none (exported as
    /// plain internal spans named after the type).
    ///
    /// ```
    /// use prefactor_runtime::GenAiOperation;
    ///
    /// assert_eq!(GenAiOperation::from_schema_name("agent:llm"), Some(GenAiOperation::Chat));
    /// assert_eq!(GenAiOperation::from_schema_name("ai-sdk:tool:search"), Some(GenAiOperation::ExecuteTool));
    /// assert_eq!(GenAiOperation::from_schema_name("agent:embedding"), Some(GenAiOperation::Embeddings));
    /// assert_eq!(GenAiOperation::from_schema_name("agent:retrieval"), None);
    /// ```
    #[must_use]
    pub fn from_schema_name(schema_name: &str) -> Option<GenAiOperation> {
        let kind = schema_name.split(':').nth(1).unwrap_or(schema_name).to_ascii_lowercase();
        match kind.as_str() {
            "llm" | "llm_call" | "chat" | "chat_completion" => Some(GenAiOperation::Chat),
            "completion" | "text_completion" => Some(GenAiOperation::TextCompletion),
            "generate_content" => Some(GenAiOperation::GenerateContent),
            "tool" | "tool_call" | "function_call" => Some(GenAiOperation::ExecuteTool),
            "embedding" | "embeddings" => Some(GenAiOperation::Embeddings),
            "agent" | "invoke_agent" | "subagent" => Some(GenAiOperation::InvokeAgent),
            _ => None,
        }
    }
}

impl std::str::FromStr for GenAiOperation {
    type Err = String;

    fn from_str(text: &str) -> Result<GenAiOperation, String> {
        GenAiOperation::ALL
            .into_iter()
            .find(|operation| operation.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not a GenAI operation"))
    }
}

/// Which message content (prompts, completions, tool arguments and results, other payloads)
/// is exported: by default none, only metadata (model, usage, finish reasons, tool names).
///
/// When not set with [`OtelExport::capture_content`], read from
/// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` as the conventions say: with
/// `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` it takes `NO_CONTENT`,
/// `SPAN_ONLY`, `EVENT_ONLY`, `SPAN_AND_EVENT` (any case; anything else is `NO_CONTENT`, with a
/// warning); without the opt-in it is a boolean, `true` meaning [`ContentCapture::SpanOnly`].
///
/// ```
/// use prefactor_runtime::{ContentCapture, SemconvStability};
///
/// let latest = SemconvStability::LatestExperimental;
/// assert_eq!(ContentCapture::from_env_value(Some("span_and_event"), latest), ContentCapture::SpanAndEvent);
/// assert_eq!(ContentCapture::from_env_value(Some("true"), SemconvStability::Default), ContentCapture::SpanOnly);
/// assert_eq!(ContentCapture::from_env_value(None, latest), ContentCapture::NoContent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ContentCapture {
    /// No content (the default).
    #[default]
    NoContent,
    /// Content as span attributes.
    SpanOnly,
    /// Content as a span event (`gen_ai.client.inference.operation.details`).
    EventOnly,
    /// Both.
    SpanAndEvent,
}

impl ContentCapture {
    /// The capture an environment value means under `stability` (see the type's docs).
    #[must_use]
    pub fn from_env_value(value: Option<&str>, stability: SemconvStability) -> ContentCapture {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else { return ContentCapture::NoContent };
        let lower = value.to_ascii_lowercase();
        match stability {
            SemconvStability::LatestExperimental => match lower.as_str() {
                "no_content" => ContentCapture::NoContent,
                "span_only" => ContentCapture::SpanOnly,
                "event_only" => ContentCapture::EventOnly,
                "span_and_event" => ContentCapture::SpanAndEvent,
                _ => {
                    tracing::warn!(
                        value,
                        "prefactor: OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT is not NO_CONTENT, SPAN_ONLY, EVENT_ONLY or SPAN_AND_EVENT; no content is exported"
                    );
                    ContentCapture::NoContent
                }
            },
            SemconvStability::Default => {
                if lower == "true" {
                    ContentCapture::SpanOnly
                } else {
                    ContentCapture::NoContent
                }
            }
        }
    }

    pub(crate) fn on_span(self) -> bool {
        matches!(self, ContentCapture::SpanOnly | ContentCapture::SpanAndEvent)
    }

    pub(crate) fn as_event(self) -> bool {
        matches!(self, ContentCapture::EventOnly | ContentCapture::SpanAndEvent)
    }
}

/// The version of the GenAI conventions emitted. When not set with [`OtelExport::semconv`],
/// `OTEL_SEMCONV_STABILITY_OPT_IN` (a comma-separated list) containing
/// `gen_ai_latest_experimental` selects the latest.
///
/// * [`SemconvStability::Default`]: the provider as `gen_ai.system`, content as the
///   `gen_ai.prompt` / `gen_ai.completion` attributes (what most instrumentations emit
///   without the opt-in).
/// * [`SemconvStability::LatestExperimental`]: the provider as `gen_ai.provider.name`, content
///   as `gen_ai.input.messages`, `gen_ai.output.messages`, `gen_ai.system_instructions`,
///   `gen_ai.tool.call.arguments` / `gen_ai.tool.call.result`, on the span and/or in a
///   `gen_ai.client.inference.operation.details` event.
///
/// ```
/// use prefactor_runtime::SemconvStability;
///
/// assert_eq!(SemconvStability::from_env_value(Some("http, gen_ai_latest_experimental")), SemconvStability::LatestExperimental);
/// assert_eq!(SemconvStability::from_env_value(Some("http")), SemconvStability::Default);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SemconvStability {
    /// Without the opt-in.
    #[default]
    Default,
    /// `gen_ai_latest_experimental`.
    LatestExperimental,
}

impl SemconvStability {
    /// The stability an `OTEL_SEMCONV_STABILITY_OPT_IN` value selects.
    #[must_use]
    pub fn from_env_value(value: Option<&str>) -> SemconvStability {
        let latest = value.is_some_and(|v| v.split(',').any(|entry| entry.trim() == "gen_ai_latest_experimental"));
        if latest { SemconvStability::LatestExperimental } else { SemconvStability::Default }
    }
}
