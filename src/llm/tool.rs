//! Tools offered to a model and the calls it makes to them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Payload;

/// The kind of a tool; only functions exist today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Payload)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolKind {
    /// A function the model calls with JSON arguments.
    #[default]
    Function,
}

/// A tool offered to the model (OTel `gen_ai.tool.definitions`).
///
/// ```
/// use prefactor::llm::Tool;
/// use serde_json::json;
///
/// let tool = Tool::function("get_weather")
///     .description("Current weather of a city")
///     .parameters(json!({"type": "object", "properties": {"city": {"type": "string"}}}));
/// assert_eq!(serde_json::to_value(&tool).unwrap()["type"], "function");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Payload)]
#[non_exhaustive]
pub struct Tool {
    /// What kind of tool it is.
    #[serde(rename = "type", default)]
    pub kind: ToolKind,
    /// Its name.
    pub name: String,
    /// What it does, as told to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

impl Tool {
    /// A function tool named `name`.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Tool::function("search").name, "search");
    /// ```
    #[must_use]
    pub fn function(name: impl Into<String>) -> Tool {
        Tool { kind: ToolKind::Function, name: name.into(), description: None, parameters: None }
    }

    /// Sets the description.
    ///
    /// ```
    /// let tool = prefactor::llm::Tool::function("search").description("Web search");
    /// assert_eq!(tool.description.as_deref(), Some("Web search"));
    /// ```
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Tool {
        self.description = Some(description.into());
        self
    }

    /// Sets the JSON Schema of the arguments.
    ///
    /// ```
    /// let tool = prefactor::llm::Tool::function("search").parameters(serde_json::json!({"type": "object"}));
    /// assert!(tool.parameters.is_some());
    /// ```
    #[must_use]
    pub fn parameters(mut self, schema: Value) -> Tool {
        self.parameters = Some(schema);
        self
    }
}

/// A call to a tool, asked for by the model.
///
/// ```
/// use prefactor::llm::ToolCall;
/// use serde_json::json;
///
/// let call = ToolCall::new("get_weather", json!({"city": "Paris"})).id("call_1");
/// assert_eq!(
///     serde_json::to_value(&call).unwrap(),
///     json!({"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}})
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Payload)]
#[non_exhaustive]
pub struct ToolCall {
    /// The call's id, which the tool's result refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool's name.
    pub name: String,
    /// The arguments: a JSON value, or the model's text when it is not valid JSON.
    pub arguments: Value,
}

impl ToolCall {
    /// A call of `name` with `arguments`.
    ///
    /// ```
    /// let call = prefactor::llm::ToolCall::new("search", serde_json::json!({"q": "rust"}));
    /// assert_eq!(call.arguments["q"], "rust");
    /// ```
    #[must_use]
    pub fn new(name: impl Into<String>, arguments: Value) -> ToolCall {
        ToolCall { id: None, name: name.into(), arguments }
    }

    /// A call whose arguments are the JSON text a model produced: parsed when valid, kept as a
    /// string otherwise (models do emit broken JSON).
    ///
    /// ```
    /// use prefactor::llm::ToolCall;
    /// assert_eq!(ToolCall::from_json_text("f", r#"{"a":1}"#).arguments["a"], 1);
    /// assert_eq!(ToolCall::from_json_text("f", "{oops").arguments, "{oops");
    /// ```
    #[must_use]
    pub fn from_json_text(name: impl Into<String>, arguments: &str) -> ToolCall {
        let arguments = serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()));
        ToolCall::new(name, arguments)
    }

    /// Sets the call's id.
    ///
    /// ```
    /// let call = prefactor::llm::ToolCall::new("f", serde_json::json!({})).id("call_9");
    /// assert_eq!(call.id.as_deref(), Some("call_9"));
    /// ```
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> ToolCall {
        self.id = Some(id.into());
        self
    }
}
