//! The OpenTelemetry export (feature `otel`): the worker hands every operation it accepts to
//! the [`mirror::OtelMirror`], which turns agent runs and spans into OTel spans following the
//! GenAI conventions ([`genai`]) on the [`pipeline::OtelPipeline`]'s tracer; the SDK's batch
//! processor exports them from its own thread.

pub(crate) mod genai;
pub(crate) mod http_client;
pub(crate) mod id_generator;
pub(crate) mod mirror;
pub(crate) mod pipeline;
