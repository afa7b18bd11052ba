//! What is asked of a model: the model, its sampling parameters, the conversation and the
//! tools offered.

use serde::{Deserialize, Serialize};

use crate::Payload;
use crate::llm::message::Message;
use crate::llm::tool::Tool;

/// An LLM request, the payload of an `agent:llm` span.
///
/// Field names are the OpenTelemetry GenAI attribute names without their `gen_ai.request.`
/// prefix (`model`, `temperature`, `max_tokens`, `top_p`, ...), so the OTel export maps them
/// one to one; `messages` are in the conventions' message shape. Recorded under an argument
/// named `inputs`, the model is where the Prefactor dashboard looks for it
/// (`payload.inputs.model`).
///
/// ```
/// use prefactor::llm::{Message, Request};
///
/// let request = Request::new("gpt-4o-mini")
///     .provider("openai")
///     .message(Message::system("Answer in one word."))
///     .message(Message::user("Capital of France?"))
///     .temperature(0.0)
///     .max_tokens(16);
/// let json = serde_json::to_value(&request).unwrap();
/// assert_eq!(json["model"], "gpt-4o-mini");
/// assert_eq!(json["max_tokens"], 16);
/// assert_eq!(json["messages"][1]["parts"][0]["content"], "Capital of France?");
/// assert!(json.get("top_p").is_none(), "unset parameters are left out");
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, Payload)]
#[non_exhaustive]
pub struct Request {
    /// The model asked for (e.g. `gpt-4o`, `claude-sonnet-4-5`).
    pub model: String,
    /// Who serves it (`openai`, `anthropic`, `gcp.gemini`, `ollama`...), the OTel
    /// `gen_ai.provider.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The most tokens the model may produce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Nucleus sampling mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Sequences that stop the generation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// The conversation sent.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// The tools offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Whether the response is streamed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

impl Request {
    /// A request to `model` with no messages yet.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Request::new("gpt-4o").model, "gpt-4o");
    /// ```
    #[must_use]
    pub fn new(model: impl Into<String>) -> Request {
        Request { model: model.into(), ..Request::default() }
    }

    /// Sets the provider.
    ///
    /// ```
    /// let request = prefactor::llm::Request::new("m").provider("ollama");
    /// assert_eq!(request.provider.as_deref(), Some("ollama"));
    /// ```
    #[must_use]
    pub fn provider(mut self, provider: impl Into<String>) -> Request {
        self.provider = Some(provider.into());
        self
    }

    /// Appends a message.
    ///
    /// ```
    /// let request = prefactor::llm::Request::new("m").message(prefactor::llm::Message::user("hi"));
    /// assert_eq!(request.messages.len(), 1);
    /// ```
    #[must_use]
    pub fn message(mut self, message: Message) -> Request {
        self.messages.push(message);
        self
    }

    /// Appends messages.
    ///
    /// ```
    /// use prefactor::llm::{Message, Request};
    /// let request = Request::new("m").messages([Message::system("s"), Message::user("u")]);
    /// assert_eq!(request.messages.len(), 2);
    /// ```
    #[must_use]
    pub fn messages(mut self, messages: impl IntoIterator<Item = Message>) -> Request {
        self.messages.extend(messages);
        self
    }

    /// Offers a tool.
    ///
    /// ```
    /// let request = prefactor::llm::Request::new("m").tool(prefactor::llm::Tool::function("search"));
    /// assert_eq!(request.tools[0].name, "search");
    /// ```
    #[must_use]
    pub fn tool(mut self, tool: Tool) -> Request {
        self.tools.push(tool);
        self
    }

    /// Sets the temperature.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Request::new("m").temperature(0.5).temperature, Some(0.5));
    /// ```
    #[must_use]
    pub fn temperature(mut self, temperature: f64) -> Request {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the output token limit.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Request::new("m").max_tokens(64).max_tokens, Some(64));
    /// ```
    #[must_use]
    pub fn max_tokens(mut self, max_tokens: u64) -> Request {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets top-p.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Request::new("m").top_p(0.9).top_p, Some(0.9));
    /// ```
    #[must_use]
    pub fn top_p(mut self, top_p: f64) -> Request {
        self.top_p = Some(top_p);
        self
    }

    /// Adds a stop sequence.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Request::new("m").stop_sequence("END").stop_sequences, ["END"]);
    /// ```
    #[must_use]
    pub fn stop_sequence(mut self, stop: impl Into<String>) -> Request {
        self.stop_sequences.push(stop.into());
        self
    }

    /// Sets the seed.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Request::new("m").seed(7).seed, Some(7));
    /// ```
    #[must_use]
    pub fn seed(mut self, seed: i64) -> Request {
        self.seed = Some(seed);
        self
    }

    /// Marks the request as streamed.
    ///
    /// ```
    /// assert!(prefactor::llm::Request::new("m").streamed().stream);
    /// ```
    #[must_use]
    pub fn streamed(mut self) -> Request {
        self.stream = true;
        self
    }
}

impl Request {
    /// The payload of an `agent:llm` span made with the explicit API: `{"inputs": request}`,
    /// as `#[span]` records an argument named `inputs` (and where the Prefactor dashboard
    /// reads the model).
    ///
    /// # Errors
    /// [`Error::Serialize`](crate::Error::Serialize) if a tool's JSON cannot be serialized
    /// (never for values built from JSON text).
    ///
    /// ```
    /// let payload = prefactor::llm::Request::new("gpt-4o").to_payload()?;
    /// assert_eq!(payload.to_value()["inputs"]["model"], "gpt-4o");
    /// # Ok::<(), prefactor::Error>(())
    /// ```
    pub fn to_payload(&self) -> Result<crate::Payload, crate::Error> {
        #[derive(Serialize)]
        struct Inputs<'a> {
            inputs: &'a Request,
        }
        crate::Payload::from_serialize(&Inputs { inputs: self })
    }
}
