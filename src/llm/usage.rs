//! Token usage of one model call, and what it cost.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::Payload;

/// Tokens used by one model call, in the OpenTelemetry GenAI sense: `input_tokens` counts
/// *every* input token, cached ones included, and `output_tokens` every output token,
/// reasoning included; the breakdowns say how many of those were cache reads, cache writes
/// and reasoning (each priced at its own rate by a [`PriceTable`](crate::llm::PriceTable)).
///
/// Serialized with `total_tokens` added, and the `cost` when known:
///
/// ```
/// use prefactor::llm::Usage;
///
/// let usage = Usage::new(1_200, 300).cache_read(1_000).reasoning(120);
/// let json = serde_json::to_value(&usage).unwrap();
/// assert_eq!(json["input_tokens"], 1_200);
/// assert_eq!(json["cache_read_input_tokens"], 1_000);
/// assert_eq!(json["reasoning_output_tokens"], 120);
/// assert_eq!(json["total_tokens"], 1_500);
/// ```
///
/// (Anthropic reports `input_tokens` *without* its cache reads and writes; add them up as
/// [`Usage::anthropic`] does.)
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// All input tokens, cache reads and writes included (OTel `gen_ai.usage.input_tokens`).
    #[serde(default)]
    pub input_tokens: u64,
    /// All output tokens, reasoning included (OTel `gen_ai.usage.output_tokens`).
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache (OTel
    /// `gen_ai.usage.cache_read.input_tokens`).
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the prompt cache (OTel
    /// `gen_ai.usage.cache_creation.input_tokens`).
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Output tokens spent reasoning (OTel `gen_ai.usage.reasoning.output_tokens`).
    #[serde(default)]
    pub reasoning_output_tokens: Option<u64>,
    /// What the call cost: set by you (a provider that reports it), or computed from the
    /// [price table](crate::llm::price_table) when a [`Response`](crate::llm::Response) with a
    /// known model is recorded.
    #[serde(default)]
    pub cost: Option<Cost>,
}

impl Usage {
    /// `input` and `output` tokens, no breakdown.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Usage::new(10, 5).total_tokens(), 15);
    /// ```
    #[must_use]
    pub fn new(input: u64, output: u64) -> Usage {
        Usage { input_tokens: input, output_tokens: output, ..Usage::default() }
    }

    /// From Anthropic's counts, whose `input_tokens` leaves out cache reads and writes.
    ///
    /// ```
    /// let usage = prefactor::llm::Usage::anthropic(50, 20, 1_000, 200);
    /// assert_eq!(usage.input_tokens, 1_250);
    /// assert_eq!(usage.cache_read_input_tokens, Some(1_000));
    /// ```
    #[must_use]
    pub fn anthropic(input: u64, output: u64, cache_read: u64, cache_creation: u64) -> Usage {
        Usage::new(input.saturating_add(cache_read).saturating_add(cache_creation), output)
            .cache_read(cache_read)
            .cache_creation(cache_creation)
    }

    /// Sets the cache reads (part of the input tokens).
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Usage::new(10, 1).cache_read(8).cache_read_input_tokens, Some(8));
    /// ```
    #[must_use]
    pub fn cache_read(mut self, tokens: u64) -> Usage {
        self.cache_read_input_tokens = Some(tokens);
        self
    }

    /// Sets the cache writes (part of the input tokens).
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Usage::new(10, 1).cache_creation(4).cache_creation_input_tokens, Some(4));
    /// ```
    #[must_use]
    pub fn cache_creation(mut self, tokens: u64) -> Usage {
        self.cache_creation_input_tokens = Some(tokens);
        self
    }

    /// Sets the reasoning tokens (part of the output tokens).
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Usage::new(10, 9).reasoning(6).reasoning_output_tokens, Some(6));
    /// ```
    #[must_use]
    pub fn reasoning(mut self, tokens: u64) -> Usage {
        self.reasoning_output_tokens = Some(tokens);
        self
    }

    /// Sets the cost (a provider that reports it; it then wins over the price table).
    ///
    /// ```
    /// use prefactor::llm::{Cost, Usage};
    /// let usage = Usage::new(10, 9).cost(Cost::new(0.002, "USD"));
    /// assert_eq!(usage.cost.unwrap().total, 0.002);
    /// ```
    #[must_use]
    pub fn cost(mut self, cost: Cost) -> Usage {
        self.cost = Some(cost);
        self
    }

    /// Input plus output tokens (saturating).
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Usage::new(u64::MAX, 1).total_tokens(), u64::MAX);
    /// ```
    #[must_use]
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

impl Serialize for Usage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        UsageWire::of(self, self.cost.as_ref().map(Cow::Borrowed)).serialize(serializer)
    }
}

impl schemars::JsonSchema for Usage {
    fn schema_name() -> Cow<'static, str> {
        <UsageWire<'static> as schemars::JsonSchema>::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <UsageWire<'static> as schemars::JsonSchema>::json_schema(generator)
    }
}

/// Token usage of a model call (all input and output tokens, with their cache and reasoning
/// breakdowns) and its cost.
#[derive(Serialize, Payload)]
#[payload(title = "Token usage")]
pub(crate) struct UsageWire<'a> {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<Cow<'a, Cost>>,
}

impl<'a> UsageWire<'a> {
    /// `usage` as sent, with `cost` (its own, or one computed for it).
    pub(crate) fn of(usage: &Usage, cost: Option<Cow<'a, Cost>>) -> UsageWire<'a> {
        UsageWire {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            total_tokens: usage.total_tokens(),
            cache_read_input_tokens: usage.cache_read_input_tokens,
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            reasoning_output_tokens: usage.reasoning_output_tokens,
            cost,
        }
    }
}

/// What a model call cost, in `currency`.
///
/// Computed by [`PriceTable::cost`](crate::llm::PriceTable::cost), which also fills the
/// input/output split, the price entry used and the date of its prices.
///
/// ```
/// use prefactor::llm::{Cost, ModelPrice, Usage};
///
/// let price = ModelPrice::per_million("my-model", 2.0, 8.0);
/// let cost: Cost = price.cost(&Usage::new(1_000_000, 500_000)).unwrap();
/// assert_eq!((cost.input, cost.output, cost.total), (Some(2.0), Some(4.0), 6.0));
/// assert_eq!(cost.currency, "USD");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Payload)]
#[non_exhaustive]
pub struct Cost {
    /// The whole cost.
    pub total: f64,
    /// ISO 4217 code (`USD` for the built-in prices).
    pub currency: Cow<'static, str>,
    /// The part for input tokens (cache reads and writes included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<f64>,
    /// The part for output tokens (reasoning included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<f64>,
    /// The price table entry used (`gpt-4o` for `gpt-4o-2024-08-06`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priced_as: Option<String>,
    /// When that entry's prices were taken (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices_as_of: Option<Cow<'static, str>>,
}

impl Cost {
    /// A total with no breakdown (e.g. as reported by a provider).
    ///
    /// ```
    /// assert_eq!(prefactor::llm::Cost::new(0.5, "EUR").currency, "EUR");
    /// ```
    #[must_use]
    pub fn new(total: f64, currency: impl Into<Cow<'static, str>>) -> Cost {
        Cost { total, currency: currency.into(), input: None, output: None, priced_as: None, prices_as_of: None }
    }
}
