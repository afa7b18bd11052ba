//! Model prices per million tokens, the table a call's cost is computed from, and the
//! process-wide table responses are priced with.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use crate::Error;
use crate::llm::builtin_prices::BUILTIN_PRICES;
use crate::llm::model_name::{candidates, normalized};
use crate::llm::usage::{Cost, Usage};

const TOKENS_PER_PRICE_UNIT: f64 = 1_000_000.0;

/// The prices of one model, per million tokens.
///
/// Input tokens read from or written to the prompt cache, and output tokens spent reasoning,
/// are charged at their own prices when set, else at the input or output price.
///
/// ```
/// use prefactor::llm::{ModelPrice, Usage};
///
/// // A self-hosted model: what its GPU hours cost you, per million tokens, in euros.
/// let price = ModelPrice::per_million("llama-3.1-70b-instruct", 0.20, 0.20).currency("EUR").as_of("2026-12-01");
/// let cost = price.cost(&Usage::new(2_000_000, 1_000_000)).unwrap();
/// assert!((cost.total - 0.60).abs() < 1e-12);
/// assert_eq!(cost.currency, "EUR");
///
/// // Cache reads at a tenth of the input price, reasoning at the output price.
/// let price = ModelPrice::per_million("m", 3.0, 15.0).cache_read_per_million(0.30);
/// let cost = price.cost(&Usage::new(1_000_000, 1_000_000).cache_read(800_000).reasoning(500_000)).unwrap();
/// assert!((cost.input.unwrap() - (0.2 * 3.0 + 0.8 * 0.30)).abs() < 1e-12);
/// assert!((cost.output.unwrap() - 15.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    name: String,
    currency: Cow<'static, str>,
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_creation: Option<f64>,
    reasoning: Option<f64>,
    as_of: Option<Cow<'static, str>>,
}

impl ModelPrice {
    /// `name` at `input` and `output` per million tokens, in US dollars.
    ///
    /// The name matches the model as reported and its dated or revised versions
    /// (`gpt-4o` matches `gpt-4o-2024-08-06`), unless a more specific entry exists.
    ///
    /// ```
    /// let price = prefactor::llm::ModelPrice::per_million("my-model", 1.0, 2.0);
    /// assert_eq!(price.name(), "my-model");
    /// ```
    #[must_use]
    pub fn per_million(name: impl Into<String>, input: f64, output: f64) -> ModelPrice {
        ModelPrice {
            name: name.into(),
            currency: Cow::Borrowed("USD"),
            input,
            output,
            cache_read: None,
            cache_creation: None,
            reasoning: None,
            as_of: None,
        }
    }

    /// The price of input tokens read from the prompt cache.
    ///
    /// ```
    /// let price = prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).cache_read_per_million(0.1);
    /// assert_eq!(price.cache_read(), 0.1);
    /// ```
    #[must_use]
    pub fn cache_read_per_million(mut self, price: f64) -> ModelPrice {
        self.cache_read = Some(price);
        self
    }

    /// The price of input tokens written to the prompt cache.
    ///
    /// ```
    /// let price = prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).cache_creation_per_million(1.25);
    /// assert_eq!(price.cache_creation(), 1.25);
    /// ```
    #[must_use]
    pub fn cache_creation_per_million(mut self, price: f64) -> ModelPrice {
        self.cache_creation = Some(price);
        self
    }

    /// The price of reasoning output tokens.
    ///
    /// ```
    /// let price = prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).reasoning_per_million(3.0);
    /// assert_eq!(price.reasoning(), 3.0);
    /// ```
    #[must_use]
    pub fn reasoning_per_million(mut self, price: f64) -> ModelPrice {
        self.reasoning = Some(price);
        self
    }

    /// The currency of these prices (ISO 4217), `USD` by default.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).currency("EUR").currency_code(), "EUR");
    /// ```
    #[must_use]
    pub fn currency(mut self, code: impl Into<Cow<'static, str>>) -> ModelPrice {
        self.currency = code.into();
        self
    }

    /// When the prices were taken (`YYYY-MM-DD`), recorded with every cost.
    ///
    /// ```
    /// let price = prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).as_of("2026-12-01");
    /// assert_eq!(price.prices_as_of(), Some("2026-12-01"));
    /// ```
    #[must_use]
    pub fn as_of(mut self, date: impl Into<Cow<'static, str>>) -> ModelPrice {
        self.as_of = Some(date.into());
        self
    }

    /// The model name.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).name(), "m");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The input price per million tokens.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).input(), 1.0);
    /// ```
    #[must_use]
    pub fn input(&self) -> f64 {
        self.input
    }

    /// The output price per million tokens.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).output(), 2.0);
    /// ```
    #[must_use]
    pub fn output(&self) -> f64 {
        self.output
    }

    /// The cache-read price per million tokens (the input price when not set).
    ///
    /// ```
    /// assert_eq!(prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).cache_read(), 1.0);
    /// ```
    #[must_use]
    pub fn cache_read(&self) -> f64 {
        self.cache_read.unwrap_or(self.input)
    }

    /// The cache-write price per million tokens (the input price when not set).
    ///
    /// ```
    /// assert_eq!(prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).cache_creation(), 1.0);
    /// ```
    #[must_use]
    pub fn cache_creation(&self) -> f64 {
        self.cache_creation.unwrap_or(self.input)
    }

    /// The reasoning price per million tokens (the output price when not set).
    ///
    /// ```
    /// assert_eq!(prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).reasoning(), 2.0);
    /// ```
    #[must_use]
    pub fn reasoning(&self) -> f64 {
        self.reasoning.unwrap_or(self.output)
    }

    /// The currency code.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).currency_code(), "USD");
    /// ```
    #[must_use]
    pub fn currency_code(&self) -> &str {
        &self.currency
    }

    /// When the prices were taken.
    ///
    /// ```
    /// assert_eq!(prefactor::llm::ModelPrice::per_million("m", 1.0, 2.0).prices_as_of(), None);
    /// ```
    #[must_use]
    pub fn prices_as_of(&self) -> Option<&str> {
        self.as_of.as_deref()
    }

    /// What `usage` costs at these prices; `None` when the arithmetic does not give a finite
    /// amount (prices so large the product overflows). Token counts that contradict each other
    /// (more cache reads than input tokens) are clamped, never wrap.
    ///
    /// ```
    /// use prefactor::llm::{ModelPrice, Usage};
    /// let price = ModelPrice::per_million("m", 1.0, 2.0);
    /// assert_eq!(price.cost(&Usage::new(500_000, 250_000)).unwrap().total, 1.0);
    /// assert!(ModelPrice::per_million("m", f64::MAX, 0.0).cost(&Usage::new(u64::MAX, 0)).is_none());
    /// ```
    #[must_use]
    pub fn cost(&self, usage: &Usage) -> Option<Cost> {
        let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
        let cache_creation = usage.cache_creation_input_tokens.unwrap_or(0);
        let fresh_input = usage.input_tokens.saturating_sub(cache_read).saturating_sub(cache_creation);
        let reasoning = usage.reasoning_output_tokens.unwrap_or(0);
        let text_output = usage.output_tokens.saturating_sub(reasoning);
        let input = priced(fresh_input, self.input)
            + priced(cache_read, self.cache_read())
            + priced(cache_creation, self.cache_creation());
        let output = priced(text_output, self.output) + priced(reasoning, self.reasoning());
        let total = input + output;
        if !total.is_finite() {
            tracing::debug!(model = %self.name, "cost not recorded: the product of tokens and prices is not finite");
            return None;
        }
        Some(Cost {
            total,
            currency: self.currency.clone(),
            input: Some(input),
            output: Some(output),
            priced_as: Some(self.name.clone()),
            prices_as_of: self.as_of.clone(),
        })
    }

    /// Checks what [`PriceTable::insert`] requires.
    fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidPrice { model: self.name.clone(), reason };
        if normalized(&self.name).is_empty() {
            return Err(invalid("the model name is empty".to_owned()));
        }
        if self.currency.trim().is_empty() {
            return Err(invalid("the currency is empty".to_owned()));
        }
        let prices = [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cache read", self.cache_read),
            ("cache creation", self.cache_creation),
            ("reasoning", self.reasoning),
        ];
        for (which, price) in prices {
            if let Some(price) = price.filter(|price| !price.is_finite() || *price < 0.0) {
                return Err(invalid(format!("the {which} price {price} is not a finite, non-negative number")));
            }
        }
        Ok(())
    }
}

/// `tokens` at `price_per_million`.
fn priced(tokens: u64, price_per_million: f64) -> f64 {
    if tokens == 0 {
        // 0 × a price is 0 even for the largest price; skips the float work for absent kinds.
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)] // beyond 2^53 tokens, a relative error of 1e-16 is fine
    let tokens = tokens as f64;
    tokens / TOKENS_PER_PRICE_UNIT * price_per_million
}

/// Model prices by name, with the matching of reported model names to entries
/// (see [`PriceTable::get`]).
///
/// ```
/// use prefactor::llm::{ModelPrice, PriceTable, Usage};
///
/// let mut table = PriceTable::builtin();
/// table.insert(ModelPrice::per_million("my-finetune", 4.0, 12.0))?;
/// assert_eq!(table.get("my-finetune-2026-11-30").unwrap().name(), "my-finetune");
/// assert_eq!(table.get("gpt-4o-2024-08-06").unwrap().name(), "gpt-4o");
/// let cost = table.cost("my-finetune", &Usage::new(1_000_000, 0)).unwrap();
/// assert_eq!(cost.total, 4.0);
/// # Ok::<(), prefactor::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    /// By normalized name.
    entries: HashMap<String, ModelPrice>,
}

impl PriceTable {
    /// An empty table.
    ///
    /// ```
    /// assert!(prefactor::llm::PriceTable::new().is_empty());
    /// ```
    #[must_use]
    pub fn new() -> PriceTable {
        PriceTable::default()
    }

    /// The built-in list prices of common OpenAI, Anthropic and Google models (each entry's
    /// [`prices_as_of`](ModelPrice::prices_as_of) says when it was taken).
    ///
    /// ```
    /// let table = prefactor::llm::PriceTable::builtin();
    /// let price = table.get("claude-3-5-haiku-20241022").unwrap();
    /// assert_eq!((price.input(), price.output()), (0.80, 4.0));
    /// assert!(price.prices_as_of().is_some());
    /// ```
    #[must_use]
    pub fn builtin() -> PriceTable {
        let mut table = PriceTable::new();
        for price in BUILTIN_PRICES.iter().map(|entry| entry.price()) {
            table.entries.insert(normalized(price.name()), price);
        }
        table
    }

    /// Adds `price`, replacing an entry of the same name.
    ///
    /// # Errors
    /// [`Error::InvalidPrice`] for an empty name or currency, or a negative or non-finite price.
    ///
    /// ```
    /// use prefactor::llm::{ModelPrice, PriceTable};
    /// let mut table = PriceTable::new();
    /// assert!(table.insert(ModelPrice::per_million("m", -1.0, 2.0)).is_err());
    /// assert!(table.insert(ModelPrice::per_million("m", f64::NAN, 2.0)).is_err());
    /// assert!(table.insert(ModelPrice::per_million("m", 0.0, 0.0)).is_ok());
    /// ```
    pub fn insert(&mut self, price: ModelPrice) -> Result<(), Error> {
        price.validate()?;
        self.entries.insert(normalized(price.name()), price);
        Ok(())
    }

    /// `self` with `price` added (see [`insert`](PriceTable::insert)).
    ///
    /// # Errors
    /// As [`insert`](PriceTable::insert).
    ///
    /// ```
    /// use prefactor::llm::{ModelPrice, PriceTable};
    /// let table = PriceTable::new().with(ModelPrice::per_million("m", 1.0, 1.0))?;
    /// assert_eq!(table.len(), 1);
    /// # Ok::<(), prefactor::Error>(())
    /// ```
    pub fn with(mut self, price: ModelPrice) -> Result<PriceTable, Error> {
        self.insert(price)?;
        Ok(self)
    }

    /// The entry for `model` as a provider reports it: the entry of that exact name (case and
    /// a router or cloud prefix aside), else of the name without its version suffixes, one at
    /// a time (`gpt-4o-2024-08-06` → `gpt-4o`, `gemini-2.5-pro-preview-05-06` →
    /// `gemini-2.5-pro-preview` → `gemini-2.5-pro`). A family name is never cut into another
    /// (`gpt-4o-mini` is not `gpt-4o`).
    ///
    /// ```
    /// let table = prefactor::llm::PriceTable::builtin();
    /// assert_eq!(table.get("openai/GPT-4o-mini").unwrap().name(), "gpt-4o-mini");
    /// assert!(table.get("gpt-4o-mini-tts-unknown").is_none());
    /// ```
    #[must_use]
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        let name = normalized(model);
        candidates(&name).find_map(|candidate| self.entries.get(candidate))
    }

    /// What `usage` of `model` costs; `None` for an unknown model (or a non-finite amount).
    ///
    /// ```
    /// use prefactor::llm::{PriceTable, Usage};
    /// let cost = PriceTable::builtin().cost("gpt-4o-2024-08-06", &Usage::new(1_000_000, 100_000)).unwrap();
    /// assert_eq!(cost.total, 3.5); // $2.50 + $10 × 0.1
    /// assert_eq!(cost.priced_as.as_deref(), Some("gpt-4o"));
    /// ```
    #[must_use]
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<Cost> {
        self.get(model)?.cost(usage)
    }

    /// The number of entries.
    ///
    /// ```
    /// assert!(prefactor::llm::PriceTable::builtin().len() > 20);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    ///
    /// ```
    /// assert!(!prefactor::llm::PriceTable::builtin().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, in no particular order.
    ///
    /// ```
    /// assert!(prefactor::llm::PriceTable::builtin().iter().any(|p| p.name() == "gpt-4o"));
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &ModelPrice> {
        self.entries.values()
    }
}

/// The process's price table, which [`Response`](crate::llm::Response)s are priced with when
/// recorded: [`PriceTable::builtin`] until replaced by [`set_price_table`] or extended by
/// [`add_price`].
fn global() -> &'static RwLock<Arc<PriceTable>> {
    static TABLE: OnceLock<RwLock<Arc<PriceTable>>> = OnceLock::new();
    TABLE.get_or_init(|| RwLock::new(Arc::new(PriceTable::builtin())))
}

/// The process's price table (built-in prices plus yours), which recorded
/// [`Response`](crate::llm::Response)s are priced with.
///
/// ```
/// let table = prefactor::llm::price_table();
/// assert!(table.get("gpt-4o").is_some());
/// ```
#[must_use]
pub fn price_table() -> Arc<PriceTable> {
    // A writer that panicked left a whole table behind (tables are replaced, not edited).
    Arc::clone(&global().read().unwrap_or_else(PoisonError::into_inner))
}

/// Replaces the process's price table (e.g. with your negotiated prices only).
///
/// ```
/// use prefactor::llm::{ModelPrice, PriceTable, price_table, set_price_table};
///
/// set_price_table(PriceTable::builtin().with(ModelPrice::per_million("house-model", 0.0, 0.0))?);
/// assert!(price_table().get("house-model").is_some());
/// # Ok::<(), prefactor::Error>(())
/// ```
pub fn set_price_table(table: PriceTable) {
    *global().write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
}

/// Adds a price to (or replaces one in) the process's price table: your custom,
/// fine-tuned or self-hosted models.
///
/// # Errors
/// [`Error::InvalidPrice`] as for [`PriceTable::insert`]; the table is then unchanged.
///
/// ```
/// use prefactor::llm::{ModelPrice, Response, Usage, add_price};
///
/// add_price(ModelPrice::per_million("acme-llm", 1.0, 3.0).cache_read_per_million(0.1))?;
/// let response = Response::text("ok").model("acme-llm-2026-10-01").usage(Usage::new(1_000_000, 0));
/// assert_eq!(response.cost().unwrap().total, 1.0);
/// # Ok::<(), prefactor::Error>(())
/// ```
pub fn add_price(price: ModelPrice) -> Result<(), Error> {
    price.validate()?;
    let mut table = global().write().unwrap_or_else(PoisonError::into_inner);
    let mut updated = PriceTable::clone(&table);
    updated.entries.insert(normalized(price.name()), price);
    *table = Arc::new(updated);
    Ok(())
}
