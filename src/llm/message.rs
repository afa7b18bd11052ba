//! Chat messages in the OpenTelemetry GenAI shape: a role and a list of typed parts, the
//! JSON the conventions record as `gen_ai.input.messages` (so the OTel export passes them on
//! as they are).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Payload;
use crate::llm::tool::ToolCall;

/// Who wrote a message.
///
/// ```
/// assert_eq!(serde_json::to_value(prefactor::llm::Role::Assistant).unwrap(), "assistant");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Payload)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// Instructions to the model (OpenAI `system`/`developer`, Anthropic's `system` field).
    System,
    /// The user's turn.
    User,
    /// The model's turn.
    Assistant,
    /// A tool's result sent back to the model.
    Tool,
}

/// One part of a message's content, tagged by `type` as in the GenAI conventions.
///
/// ```
/// use prefactor::llm::Part;
///
/// let part = Part::text("hello");
/// assert_eq!(serde_json::to_value(&part).unwrap(), serde_json::json!({"type": "text", "content": "hello"}));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Payload)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Part {
    /// Text.
    Text {
        /// The text.
        content: String,
    },
    /// The model's visible reasoning (when the provider returns it).
    Reasoning {
        /// The reasoning text.
        content: String,
    },
    /// A tool call the model asked for.
    ToolCall(ToolCall),
    /// The result of a tool call, sent back to the model.
    ToolCallResponse {
        /// The id of the call it answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The tool's result.
        response: Value,
    },
    /// Content referred to by URI (an image, a document).
    Uri {
        /// `image`, `audio`, `video` or another modality.
        modality: String,
        /// The URI.
        uri: String,
        /// Its media type, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
    },
}

impl Part {
    /// A text part.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Part::text("hi").as_text(), Some("hi"));
    /// ```
    #[must_use]
    pub fn text(content: impl Into<String>) -> Part {
        Part::Text { content: content.into() }
    }

    /// A tool result part answering the call `id`.
    ///
    /// ```
    /// let part = prefactor::llm::Part::tool_response("call_1", serde_json::json!({"temp_c": 21}));
    /// assert_eq!(serde_json::to_value(&part).unwrap()["type"], "tool_call_response");
    /// ```
    #[must_use]
    pub fn tool_response(id: impl Into<String>, response: Value) -> Part {
        Part::ToolCallResponse { id: Some(id.into()), response }
    }

    /// The text of a text part.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Part::text("hi").as_text(), Some("hi"));
    /// ```
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Part::Text { content } => Some(content),
            _ => None,
        }
    }
}

/// One message of a conversation.
///
/// ```
/// use prefactor::llm::{Message, Role};
///
/// let message = Message::user("What is the weather in Paris?");
/// assert_eq!(message.role, Role::User);
/// assert_eq!(message.text(), "What is the weather in Paris?");
/// assert_eq!(
///     serde_json::to_value(&message).unwrap(),
///     serde_json::json!({"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]})
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Payload)]
#[non_exhaustive]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its content.
    pub parts: Vec<Part>,
    /// The participant's name, when the provider takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// A message of `role` with `parts`.
    ///
    /// ```
    /// use prefactor::llm::{Message, Part, Role};
    /// let message = Message::new(Role::User, vec![Part::text("a"), Part::text("b")]);
    /// assert_eq!(message.text(), "ab");
    /// ```
    #[must_use]
    pub fn new(role: Role, parts: Vec<Part>) -> Message {
        Message { role, parts, name: None }
    }

    /// A system message of one text part.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Message::system("Be brief.").role, prefactor::llm::Role::System);
    /// ```
    #[must_use]
    pub fn system(text: impl Into<String>) -> Message {
        Message::new(Role::System, vec![Part::text(text)])
    }

    /// A user message of one text part.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Message::user("Hi").text(), "Hi");
    /// ```
    #[must_use]
    pub fn user(text: impl Into<String>) -> Message {
        Message::new(Role::User, vec![Part::text(text)])
    }

    /// An assistant message of one text part.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Message::assistant("Hello").role, prefactor::llm::Role::Assistant);
    /// ```
    #[must_use]
    pub fn assistant(text: impl Into<String>) -> Message {
        Message::new(Role::Assistant, vec![Part::text(text)])
    }

    /// A tool message carrying the result of the call `id`.
    ///
    /// ```
    /// let message = prefactor::llm::Message::tool("call_1", serde_json::json!("21 °C"));
    /// assert_eq!(message.role, prefactor::llm::Role::Tool);
    /// ```
    #[must_use]
    pub fn tool(id: impl Into<String>, response: Value) -> Message {
        Message::new(Role::Tool, vec![Part::tool_response(id, response)])
    }

    /// Sets the participant's name.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Message::user("Hi").name("ada").name.as_deref(), Some("ada"));
    /// ```
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Message {
        self.name = Some(name.into());
        self
    }

    /// The text parts, concatenated.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Message::assistant("Hello").text(), "Hello");
    /// ```
    #[must_use]
    pub fn text(&self) -> String {
        self.parts.iter().filter_map(Part::as_text).collect()
    }
}
