//! `OtelMirror`: the worker's copy of each run and span as OTel spans. An agent run is an
//! `invoke_agent` span, the root of a trace of its own; a span opens as an OTel span when its
//! create is accepted (its parent's OTel span, or the run's, as parent) and ends when its
//! finish is. Runs on the worker's thread: the agent's thread only queued the operation.
//!
//! Ids are derived from the Prefactor ones (`id_generator.rs`): the trace id from the
//! instance, a span's id from its span id. A span whose parent or run this process never saw
//! (a tool service's span joining a caller's run, see `docs/propagation.md`) gets its parent
//! from the same derivation, so it lands in the caller's trace under the caller's span.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::Span;
use prefactor_protocol::{FinishStatus, RegisterInstanceRequest};
use serde_json::Value;

use super::genai::{self, DETAILS_EVENT};
use super::id_generator::build_pinned;
use super::pipeline::OtelPipeline;
use crate::config::otel::GenAiOperation;
use crate::queue::operation::{Op, SpanCreate, SpanEnd};
use crate::record::ids::{InstanceId, SpanId};
use crate::record::payload::Payload;
use crate::record::timestamp::Timestamp;

/// Most spans open at once in the mirror; past it new spans are not exported (counted and
/// warned about once) so a leak of unfinished spans cannot grow the worker's memory for ever.
const MAX_OPEN_SPANS: usize = 1 << 17;

/// Most contexts of ended spans kept (for children created after their parent ended: a task
/// spawned in a span that outlives it) until their run finishes; past it, such late children
/// name their parent by its derived id (right unless the application's provider lacks
/// `OtelIdGenerator`).
const MAX_ENDED: usize = 1 << 16;

/// An agent run being mirrored.
struct Run {
    name: Option<String>,
    agent_id: Option<String>,
    version: Option<String>,
    /// Its `invoke_agent` span, started by the run's start or its first span.
    span: Option<Span>,
    /// Its spans in `OtelMirror::ended`, forgotten when it finishes.
    ended: Vec<SpanId>,
}

/// A span being mirrored.
struct Open {
    span: Span,
    context: SpanContext,
    instance: InstanceId,
    operation: Option<GenAiOperation>,
    /// The payload, kept for the content attributes only when content is captured.
    payload: Option<Value>,
}

pub(crate) struct OtelMirror {
    pipeline: Arc<OtelPipeline>,
    runs: HashMap<InstanceId, Run>,
    open: HashMap<SpanId, Open>,
    /// Contexts of spans that ended while their run goes on (see `MAX_ENDED`).
    ended: HashMap<SpanId, SpanContext>,
    /// Spans not exported because `MAX_OPEN_SPANS` were open.
    skipped: u64,
    /// A span did not get its derived id (a provider without `OtelIdGenerator`): warned once.
    warned_ids: bool,
}

impl OtelMirror {
    pub(crate) fn new(pipeline: Arc<OtelPipeline>) -> OtelMirror {
        OtelMirror {
            pipeline,
            runs: HashMap::new(),
            open: HashMap::new(),
            ended: HashMap::new(),
            skipped: 0,
            warned_ids: false,
        }
    }

    /// Mirrors one operation the worker accepted.
    pub(crate) fn observe(&mut self, op: &Op) {
        match op {
            Op::Register { instance, request, .. } => self.register(*instance, request),
            Op::Start { instance, at } => {
                self.run_span(*instance, *at);
            }
            Op::Finish { instance, status, at } => self.finish_run(*instance, *status, *at),
            Op::Quality { instance, name, payload, .. } => self.quality(*instance, name, payload.as_ref()),
            Op::CreateSpan(create) => {
                self.create(create);
                if let Some(end) = &create.end {
                    self.finish(create.id, end);
                }
            }
            Op::FinishSpan(finish) => self.finish(finish.id, &finish.end),
        }
    }

    /// At close: what is still open ends now, marked unfinished, so its children are not
    /// orphans in the backend.
    pub(crate) fn end_all(&mut self) {
        let now = Timestamp::now().to_system_time();
        for (_, mut open) in self.open.drain() {
            open.span.set_attribute(KeyValue::new("prefactor.span.status", "unfinished"));
            open.span.end_with_timestamp(now);
        }
        self.ended.clear();
        for (_, run) in self.runs.drain() {
            if let Some(mut span) = run.span {
                span.set_attribute(KeyValue::new("prefactor.instance.status", "unfinished"));
                span.end_with_timestamp(now);
            }
        }
        if self.skipped > 0 {
            tracing::warn!(skipped = self.skipped, "prefactor: spans not exported to OTel (too many open at once)");
        }
    }

    /// Blocks until the pipeline exported or gave up (see `OtelPipeline::close`).
    pub(crate) fn close(&mut self, timeout: Duration) {
        self.end_all();
        if let Err(err) = self.pipeline.close(timeout) {
            tracing::warn!(error = %err, "prefactor: OTel export at close failed");
        }
    }

    pub(crate) fn pipeline(&self) -> &Arc<OtelPipeline> {
        &self.pipeline
    }

    fn register(&mut self, instance: InstanceId, request: &RegisterInstanceRequest) {
        let version = &request.agent_version;
        self.runs.insert(
            instance,
            Run {
                name: version.name.clone().or_else(|| request.agent_id.clone()),
                agent_id: request.agent_id.clone(),
                version: version.external_identifier.clone(),
                span: None,
                ended: Vec::new(),
            },
        );
    }

    /// The context of a run's `invoke_agent` span, starting it at `at` if not yet started.
    fn run_span(&mut self, instance: InstanceId, at: Timestamp) -> Option<SpanContext> {
        let run = self.runs.get_mut(&instance)?;
        if let Some(span) = &run.span {
            return Some(span.span_context().clone());
        }
        let operation = GenAiOperation::InvokeAgent;
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", operation.as_str()),
            KeyValue::new("prefactor.instance.id", instance.to_string()),
        ];
        if let Some(name) = &run.name {
            attributes.push(KeyValue::new("gen_ai.agent.name", name.clone()));
        }
        if let Some(id) = &run.agent_id {
            attributes.push(KeyValue::new("gen_ai.agent.id", id.clone()));
        }
        if let Some(version) = &run.version {
            attributes.push(KeyValue::new("prefactor.agent.version", version.clone()));
        }
        let name = match &run.name {
            Some(agent) => format!("{} {agent}", operation.as_str()),
            None => operation.as_str().to_owned(),
        };
        // A root: each run is its own trace (an empty parent context, never the thread's).
        let builder = SpanBuilder::from_name(name)
            .with_kind(genai::span_kind(Some(operation)))
            .with_start_time(at.to_system_time())
            .with_attributes(attributes);
        let (trace, id) = (trace_id(instance), run_span_id(instance));
        let tracer = &self.pipeline.tracer;
        let span = build_pinned(trace, id, || tracer.build_with_context(builder, &Context::new()));
        let context = span.span_context().clone();
        run.span = Some(span);
        self.check_derived(&context, id);
        Some(context)
    }

    fn finish_run(&mut self, instance: InstanceId, status: FinishStatus, at: Timestamp) {
        self.run_span(instance, at);
        let Some(run) = self.runs.remove(&instance) else { return };
        for id in &run.ended {
            self.ended.remove(id);
        }
        let Some(mut span) = run.span else { return };
        span.set_attribute(KeyValue::new("prefactor.instance.status", status.as_str()));
        if status == FinishStatus::Failed {
            span.set_attribute(KeyValue::new("error.type", "_OTHER"));
            span.set_status(Status::error("agent run failed"));
        }
        span.end_with_timestamp(at.to_system_time());
    }

    fn quality(&mut self, instance: InstanceId, name: &str, payload: Option<&Payload>) {
        let capture = self.pipeline.conventions.capture.on_span();
        let Some(span) = self.runs.get_mut(&instance).and_then(|run| run.span.as_mut()) else { return };
        let mut attributes = vec![KeyValue::new("prefactor.quality.name", name.to_owned())];
        if let Some(payload) = payload.filter(|_| capture) {
            attributes.push(KeyValue::new("prefactor.quality.payload", payload.as_json().to_owned()));
        }
        span.add_event("prefactor.quality", attributes);
    }

    fn create(&mut self, create: &SpanCreate) {
        if self.open.len() >= MAX_OPEN_SPANS {
            if self.skipped == 0 {
                tracing::warn!(
                    limit = MAX_OPEN_SPANS,
                    "prefactor: too many spans open at once; the newest are not exported to OTel"
                );
            }
            self.skipped += 1;
            return;
        }
        let parent_context = create.parent.and_then(|parent| match self.open.get(&parent) {
            Some(open) => Some(open.context.clone()),
            None => self.ended.get(&parent).cloned(),
        });
        // A parent this process never saw (the caller's span, for a tool service's span), or
        // a run it never saw: the ids their own process gave them, derived the same way.
        let parent = match (parent_context, create.parent) {
            (Some(context), _) => context,
            (None, Some(parent)) => derived_context(create.instance, span_id(parent)),
            (None, None) => self
                .run_span(create.instance, create.started_at)
                .unwrap_or_else(|| derived_context(create.instance, run_span_id(create.instance))),
        };
        let schema: &str = &create.schema;
        let operation =
            self.pipeline.operations.get(schema).copied().or_else(|| GenAiOperation::from_schema_name(schema));
        let payload = create.payload.as_ref().map(Payload::to_value).unwrap_or(Value::Null);
        let mut attributes = vec![
            KeyValue::new("prefactor.span.id", create.id.to_string()),
            KeyValue::new("prefactor.instance.id", create.instance.to_string()),
            KeyValue::new("prefactor.schema_name", schema.to_owned()),
        ];
        genai::request_attributes(operation, schema, &payload, self.pipeline.conventions, &mut attributes);
        let parent_context = Context::new().with_remote_span_context(parent);
        let builder = SpanBuilder::from_name(genai::span_name(operation, schema, &payload))
            .with_kind(genai::span_kind(operation))
            .with_start_time(create.started_at.to_system_time())
            .with_attributes(attributes);
        let (trace, id) = (trace_id(create.instance), span_id(create.id));
        let tracer = &self.pipeline.tracer;
        let span = build_pinned(trace, id, || tracer.build_with_context(builder, &parent_context));
        let context = span.span_context().clone();
        self.check_derived(&context, id);
        let captured = self.pipeline.conventions.capture;
        let keep = (captured.on_span() || captured.as_event()) && !payload.is_null();
        self.open.insert(
            create.id,
            Open { span, context, instance: create.instance, operation, payload: keep.then_some(payload) },
        );
    }

    /// Warns once when a span did not get its derived id: the application's provider was
    /// built without `OtelIdGenerator`, so spans of other processes cannot name it as parent.
    fn check_derived(&mut self, context: &SpanContext, expected: opentelemetry::trace::SpanId) {
        if context.is_valid() && context.span_id() != expected && !std::mem::replace(&mut self.warned_ids, true) {
            tracing::warn!(
                "prefactor: the OTel tracer provider does not use `OtelIdGenerator`, so spans of tool services \
                 (propagation) cannot join this agent's traces; build it with \
                 `.with_id_generator(prefactor::OtelIdGenerator::default())`"
            );
        }
    }

    fn finish(&mut self, id: SpanId, end: &SpanEnd) {
        let Some(mut open) = self.open.remove(&id) else { return };
        let result = end.result.as_ref().map(Payload::to_value);
        let mut attributes = vec![KeyValue::new("prefactor.span.status", end.status.as_str())];
        if let Some(result) = &result {
            genai::response_attributes(open.operation, result, &mut attributes);
        }
        let conventions = self.pipeline.conventions;
        let (content, event) = genai::content(open.operation, open.payload.as_ref(), result.as_ref(), conventions);
        attributes.extend(content);
        if end.status == FinishStatus::Failed {
            attributes.push(KeyValue::new("error.type", genai::error_type(result.as_ref())));
            open.span.set_status(Status::error(genai::error_message(result.as_ref())));
        }
        open.span.set_attributes(attributes);
        if !event.is_empty() {
            open.span.add_event_with_timestamp(DETAILS_EVENT, end.at.to_system_time(), event);
        }
        open.span.end_with_timestamp(end.at.to_system_time());
        if self.ended.len() < MAX_ENDED
            && let Some(run) = self.runs.get_mut(&open.instance)
        {
            run.ended.push(id);
            self.ended.insert(id, open.context);
        }
    }
}

/// The OTel trace id of `instance`'s run.
fn trace_id(instance: InstanceId) -> TraceId {
    TraceId::from_bytes(prefactor_protocol::otel_trace_id(&instance.pfid()))
}

/// The OTel span id of the span `span`.
fn span_id(span: SpanId) -> opentelemetry::trace::SpanId {
    opentelemetry::trace::SpanId::from_bytes(prefactor_protocol::otel_span_id(&span.pfid()))
}

/// The OTel span id of `instance`'s `invoke_agent` span.
fn run_span_id(instance: InstanceId) -> opentelemetry::trace::SpanId {
    opentelemetry::trace::SpanId::from_bytes(prefactor_protocol::otel_run_span_id(&instance.pfid()))
}

/// The context of a span of `instance`'s run made in another process (or no longer held).
fn derived_context(instance: InstanceId, span: opentelemetry::trace::SpanId) -> SpanContext {
    SpanContext::new(trace_id(instance), span, TraceFlags::SAMPLED, true, TraceState::NONE)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
    use prefactor_protocol::AgentVersionSpec;

    use super::*;
    use crate::config::otel::OtelExport;
    use crate::delivery::otel::id_generator::OtelIdGenerator;
    use crate::queue::operation::SpanFinish;
    use crate::record::schema_name::SchemaName;

    #[derive(Debug, Default, Clone)]
    struct Ended(Arc<Mutex<Vec<SpanData>>>);

    impl SpanProcessor for Ended {
        fn on_start(&self, _: &mut Span, _: &Context) {}
        fn on_end(&self, span: SpanData) {
            self.0.lock().unwrap().push(span);
        }
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
    }

    fn create(instance: InstanceId, id: SpanId, parent: Option<SpanId>, at: u64) -> Op {
        Op::CreateSpan(SpanCreate {
            instance,
            id,
            parent,
            schema: SchemaName::new("agent:step"),
            payload: None,
            started_at: Timestamp::from_micros(at),
            end: None,
            weight: 1,
        })
    }

    fn finish(instance: InstanceId, id: SpanId, at: u64) -> Op {
        let end = SpanEnd { status: FinishStatus::Complete, result: None, at: Timestamp::from_micros(at) };
        Op::FinishSpan(SpanFinish { instance: Some(instance), id, end })
    }

    #[test]
    fn a_child_created_after_its_parent_ended_keeps_that_parent() {
        let ended = Ended::default();
        let mut mirror = mirror(&ended);
        let instance = InstanceId::generate(0);
        let (parent, child) = (SpanId::generate(0), SpanId::generate(0));
        let request = RegisterInstanceRequest {
            agent_version: AgentVersionSpec { name: Some("late".into()), ..AgentVersionSpec::default() },
            ..RegisterInstanceRequest::default()
        };
        mirror.observe(&Op::Register { instance, request: Box::new(request), schema: None, held: false });
        mirror.observe(&Op::Start { instance, at: Timestamp::from_micros(1_000) });
        mirror.observe(&create(instance, parent, None, 2_000));
        mirror.observe(&finish(instance, parent, 3_000));
        mirror.observe(&create(instance, child, Some(parent), 4_000));
        mirror.observe(&finish(instance, child, 5_000));
        mirror.observe(&Op::Finish { instance, status: FinishStatus::Complete, at: Timestamp::from_micros(6_000) });
        assert!(mirror.ended.is_empty(), "forgotten with the run");

        let spans = ended.0.lock().unwrap();
        let root = spans.iter().find(|s| s.name == "invoke_agent late").unwrap();
        let steps: Vec<&SpanData> = spans.iter().filter(|s| s.name == "agent:step").collect();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].parent_span_id, root.span_context.span_id());
        assert_eq!(steps[1].parent_span_id, steps[0].span_context.span_id());
        assert_eq!(root.end_time, std::time::UNIX_EPOCH + Duration::from_micros(6_000));
        assert_eq!(root.span_context.trace_id(), trace_id(instance), "derived from the instance");
        assert_eq!(root.span_context.span_id(), run_span_id(instance));
        assert_eq!(steps[1].span_context.span_id(), span_id(child), "derived from the span");
        assert!(!mirror.warned_ids);
    }

    fn mirror(ended: &Ended) -> OtelMirror {
        let provider = SdkTracerProvider::builder()
            .with_id_generator(OtelIdGenerator::default())
            .with_span_processor(ended.clone())
            .build();
        let pipeline = OtelPipeline::new(&OtelExport::with_provider(provider), |_| None).unwrap();
        OtelMirror::new(Arc::new(pipeline))
    }

    /// A tool service's span: its run and its parent live in the calling agent's process.
    #[test]
    fn a_span_of_a_run_seen_elsewhere_joins_that_runs_trace_under_its_parent() {
        let ended = Ended::default();
        let mut mirror = mirror(&ended);
        let (instance, caller_span) = (InstanceId::generate(0), SpanId::generate(0));
        let (tool, step, root_level) = (SpanId::generate(1), SpanId::generate(1), SpanId::generate(1));
        mirror.observe(&create(instance, tool, Some(caller_span), 1_000));
        mirror.observe(&create(instance, step, Some(tool), 2_000));
        mirror.observe(&finish(instance, step, 3_000));
        mirror.observe(&finish(instance, tool, 4_000));
        mirror.observe(&create(instance, root_level, None, 5_000));
        mirror.observe(&finish(instance, root_level, 6_000));

        let spans = ended.0.lock().unwrap();
        assert_eq!(spans.len(), 3, "no invoke_agent span here: the run is the caller's");
        let by_id = |id: SpanId| spans.iter().find(|s| s.span_context.span_id() == span_id(id)).unwrap();
        assert!(spans.iter().all(|s| s.span_context.trace_id() == trace_id(instance)));
        assert_eq!(by_id(tool).parent_span_id, span_id(caller_span));
        assert!(by_id(tool).parent_span_is_remote);
        assert_eq!(by_id(step).parent_span_id, span_id(tool));
        assert_eq!(by_id(root_level).parent_span_id, run_span_id(instance), "under the caller's invoke_agent");
    }

    #[test]
    fn a_provider_without_the_id_generator_still_exports_and_is_warned_about() {
        let ended = Ended::default();
        let provider = SdkTracerProvider::builder().with_span_processor(ended.clone()).build();
        let pipeline = OtelPipeline::new(&OtelExport::with_provider(provider), |_| None).unwrap();
        let mut mirror = OtelMirror::new(Arc::new(pipeline));
        let (instance, parent, child) = (InstanceId::generate(0), SpanId::generate(0), SpanId::generate(0));
        mirror.observe(&create(instance, parent, None, 1_000));
        mirror.observe(&create(instance, child, Some(parent), 2_000));
        mirror.observe(&finish(instance, child, 3_000));
        mirror.observe(&finish(instance, parent, 4_000));
        assert!(mirror.warned_ids);
        let spans = ended.0.lock().unwrap();
        assert_eq!(spans[0].parent_span_id, spans[1].span_context.span_id(), "local parents are still kept");
    }
}
