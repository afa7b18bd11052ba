//! What a model answered: its text, tool calls, finish reason, token usage and cost, and how
//! long the first token took.

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Payload;
use crate::llm::finish_reason::unified_finish_reason;
use crate::llm::price_table::price_table;
use crate::llm::tool::ToolCall;
use crate::llm::usage::{Cost, Usage, UsageWire};

/// An LLM response, the result of an `agent:llm` span.
///
/// Field names follow the OpenTelemetry GenAI attributes (`gen_ai.response.model`,
/// `gen_ai.response.id`, `gen_ai.response.finish_reasons`, `gen_ai.usage.*`). When recorded
/// (serialized), it also carries:
/// * `usage.cost`, computed from the process's [price table](crate::llm::price_table) for
///   `model` when the usage has no cost of its own (a lookup and a few multiplications, about
///   0.7 µs, on the thread that records the span);
/// * `ai.finishReason` = `{"unified", "raw"}`, where the Prefactor dashboard reads finish
///   reasons (`result_payload.ai.finishReason`, the Vercel AI SDK's shape).
///
/// ```
/// use prefactor::llm::{Response, Usage};
///
/// let response = Response::text("Paris.")
///     .model("gpt-4o-mini-2024-07-18")
///     .finish_reason("stop")
///     .usage(Usage::new(1_000, 200));
/// let json = serde_json::to_value(&response).unwrap();
/// assert_eq!(json["content"], "Paris.");
/// assert_eq!(json["finish_reason"], "stop");
/// assert_eq!(json["ai"]["finishReason"]["unified"], "stop");
/// assert_eq!(json["usage"]["total_tokens"], 1_200);
/// // Priced as `gpt-4o-mini` (built-in prices): 1000 × $0.15/M + 200 × $0.60/M.
/// assert_eq!(json["usage"]["cost"]["priced_as"], "gpt-4o-mini");
/// assert!((json["usage"]["cost"]["total"].as_f64().unwrap() - 0.00027).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[non_exhaustive]
pub struct Response {
    /// The provider's id of the response.
    #[serde(default)]
    pub id: Option<String>,
    /// The model that answered (often a dated version of the one asked for); the key to its
    /// price.
    #[serde(default)]
    pub model: Option<String>,
    /// The text of the answer.
    #[serde(default)]
    pub content: String,
    /// The tool calls the model asked for.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// Why the model stopped, as the provider says it (`stop`, `length`, `tool_calls`,
    /// `end_turn`, ...).
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Token usage (and cost).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Milliseconds from the request to the first token (streamed responses).
    #[serde(default)]
    pub time_to_first_token_ms: Option<f64>,
}

impl Response {
    /// A response whose answer is `content`.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Response::text("hi").content, "hi");
    /// ```
    #[must_use]
    pub fn text(content: impl Into<String>) -> Response {
        Response { content: content.into(), ..Response::default() }
    }

    /// Sets the provider's response id.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Response::text("").id("r1").id.as_deref(), Some("r1"));
    /// ```
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Response {
        self.id = Some(id.into());
        self
    }

    /// Sets the model that answered.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Response::text("").model("gpt-4o").model.as_deref(), Some("gpt-4o"));
    /// ```
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Response {
        self.model = Some(model.into());
        self
    }

    /// Adds a tool call.
    ///
    /// ```
    /// use prefactor::llm::{Response, ToolCall};
    /// let response = Response::default().tool_call(ToolCall::new("search", serde_json::json!({"q": "x"})));
    /// assert_eq!(response.tool_calls.len(), 1);
    /// ```
    #[must_use]
    pub fn tool_call(mut self, call: ToolCall) -> Response {
        self.tool_calls.push(call);
        self
    }

    /// Sets the finish reason, as the provider gave it.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Response::text("").finish_reason("end_turn").finish_reason.as_deref(), Some("end_turn"));
    /// ```
    #[must_use]
    pub fn finish_reason(mut self, reason: impl Into<String>) -> Response {
        self.finish_reason = Some(reason.into());
        self
    }

    /// Sets the token usage.
    ///
    /// ```
    /// let response = prefactor::llm::Response::text("").usage(prefactor::llm::Usage::new(3, 4));
    /// assert_eq!(response.usage.unwrap().output_tokens, 4);
    /// ```
    #[must_use]
    pub fn usage(mut self, usage: Usage) -> Response {
        self.usage = Some(usage);
        self
    }

    /// Sets the time to the first token.
    ///
    /// ```
    /// use std::time::Duration;
    /// let response = prefactor::llm::Response::text("").time_to_first_token(Duration::from_micros(61_500));
    /// assert_eq!(response.time_to_first_token_ms, Some(61.5));
    /// ```
    #[must_use]
    pub fn time_to_first_token(mut self, elapsed: Duration) -> Response {
        self.time_to_first_token_ms = Some(elapsed.as_secs_f64() * 1000.0);
        self
    }

    /// Appends streamed text (to fold a stream's deltas into one response).
    ///
    /// ```
    /// let mut response = prefactor::llm::Response::default();
    /// response.push_text("Hel");
    /// response.push_text("lo");
    /// assert_eq!(response.content, "Hello");
    /// ```
    pub fn push_text(&mut self, delta: &str) {
        self.content.push_str(delta);
    }

    /// The cost: the usage's own, else computed from the [price table](crate::llm::price_table)
    /// for [`model`](Response::model); `None` without usage or a priced model.
    ///
    /// ```
    /// use prefactor::llm::{Response, Usage};
    /// let response = Response::text("").model("claude-sonnet-4-5-20250929").usage(Usage::new(1_000_000, 0));
    /// assert_eq!(response.cost().unwrap().total, 3.0);
    /// assert!(Response::text("").model("unknown-model").usage(Usage::new(5, 5)).cost().is_none());
    /// ```
    #[must_use]
    pub fn cost(&self) -> Option<Cost> {
        self.priced_cost().map(Cow::into_owned)
    }

    fn priced_cost(&self) -> Option<Cow<'_, Cost>> {
        let usage = self.usage.as_ref()?;
        if let Some(cost) = &usage.cost {
            return Some(Cow::Borrowed(cost));
        }
        price_table().cost(self.model.as_deref()?, usage).map(Cow::Owned)
    }
}

impl Serialize for Response {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let finish_reason = self.finish_reason.as_deref();
        ResponseWire {
            id: self.id.as_deref(),
            model: self.model.as_deref(),
            content: &self.content,
            tool_calls: &self.tool_calls,
            finish_reason,
            usage: self.usage.as_ref().map(|usage| UsageWire::of(usage, self.priced_cost())),
            time_to_first_token_ms: self.time_to_first_token_ms,
            ai: finish_reason.map(|raw| AiSdkFields {
                finish_reason: UnifiedFinishReason { unified: unified_finish_reason(raw), raw },
            }),
        }
        .serialize(serializer)
    }
}

impl schemars::JsonSchema for Response {
    fn schema_name() -> Cow<'static, str> {
        <ResponseWire<'static> as schemars::JsonSchema>::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <ResponseWire<'static> as schemars::JsonSchema>::json_schema(generator)
    }
}

/// An LLM response: the answer's text and tool calls, why the model stopped, token usage and
/// cost, and the time to the first token.
#[derive(Serialize, Payload)]
#[payload(title = "LLM response")]
struct ResponseWire<'a> {
    /// The provider's id of the response.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    /// The model that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    /// The text of the answer.
    content: &'a str,
    /// The tool calls the model asked for.
    #[serde(skip_serializing_if = "<[ToolCall]>::is_empty")]
    tool_calls: &'a [ToolCall],
    /// Why the model stopped, as the provider says it.
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'a str>,
    /// Token usage and cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageWire<'a>>,
    /// Milliseconds from the request to the first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    time_to_first_token_ms: Option<f64>,
    /// The finish reason where the Prefactor dashboard reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    ai: Option<AiSdkFields<'a>>,
}

/// The Vercel AI SDK's `ai.*` result fields that the Prefactor dashboard reads.
#[derive(Serialize, Payload)]
struct AiSdkFields<'a> {
    #[serde(rename = "finishReason")]
    finish_reason: UnifiedFinishReason<'a>,
}

/// A finish reason in one vocabulary for every provider (`unified`) and as given (`raw`).
#[derive(Serialize, Payload)]
struct UnifiedFinishReason<'a> {
    unified: &'static str,
    raw: &'a str,
}

impl Response {
    /// The result payload of an `agent:llm` span made with the explicit API (priced as when
    /// `#[span]` records it).
    ///
    /// # Errors
    /// [`Error::Serialize`](crate::Error::Serialize) if a tool call's JSON cannot be
    /// serialized (never for values built from JSON text).
    ///
    /// ```
    /// use prefactor::llm::{Response, Usage};
    /// let result = Response::text("hi").model("gpt-4o").usage(Usage::new(10, 2)).to_payload()?;
    /// assert_eq!(result.to_value()["usage"]["cost"]["currency"], "USD");
    /// # Ok::<(), prefactor::Error>(())
    /// ```
    pub fn to_payload(&self) -> Result<crate::Payload, crate::Error> {
        crate::Payload::from_serialize(self)
    }
}
