//! The built-in price list: standard-tier list prices in US dollars per million tokens, as
//! published by each provider in the month given with each group. Prices change; check them
//! against your invoices and override with `prefactor::llm::add_price`.

use std::borrow::Cow;

use crate::llm::price_table::ModelPrice;

/// One built-in entry: name, input, output, cache read and cache write prices.
pub(crate) struct BuiltinPrice {
    name: &'static str,
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_creation: Option<f64>,
    as_of: &'static str,
}

impl BuiltinPrice {
    pub(crate) fn price(&self) -> ModelPrice {
        let mut price = ModelPrice::per_million(self.name, self.input, self.output).as_of(Cow::Borrowed(self.as_of));
        if let Some(cache_read) = self.cache_read {
            price = price.cache_read_per_million(cache_read);
        }
        if let Some(cache_creation) = self.cache_creation {
            price = price.cache_creation_per_million(cache_creation);
        }
        price
    }
}

/// OpenAI's pricing page, standard tier (cached input at its own price; no cache writes).
const OPENAI_AS_OF: &str = "2025-08";
/// Anthropic's pricing page: cache reads at 0.1×, five-minute cache writes at 1.25× the input
/// price; prompts up to 200k tokens.
const ANTHROPIC_AS_OF: &str = "2025-11";
/// Google's Gemini API pricing page, paid tier, prompts up to 200k (1.5: 128k) tokens.
const GOOGLE_AS_OF: &str = "2025-08";
/// The newer Anthropic models as priced in the Prefactor open dashboard's table
/// (prefactordev/prefactor-open-dashboard `src/lib/cost.ts`, July 2026): input and output only.
const DASHBOARD_AS_OF: &str = "2026-07";

const fn openai(name: &'static str, input: f64, cached: Option<f64>, output: f64) -> BuiltinPrice {
    BuiltinPrice { name, input, output, cache_read: cached, cache_creation: None, as_of: OPENAI_AS_OF }
}

const fn anthropic(name: &'static str, input: f64, output: f64) -> BuiltinPrice {
    BuiltinPrice {
        name,
        input,
        output,
        cache_read: Some(input * 0.1),
        cache_creation: Some(input * 1.25),
        as_of: ANTHROPIC_AS_OF,
    }
}

const fn google(name: &'static str, input: f64, cached: Option<f64>, output: f64) -> BuiltinPrice {
    BuiltinPrice { name, input, output, cache_read: cached, cache_creation: None, as_of: GOOGLE_AS_OF }
}

const fn dashboard(name: &'static str, input: f64, output: f64) -> BuiltinPrice {
    BuiltinPrice { name, input, output, cache_read: None, cache_creation: None, as_of: DASHBOARD_AS_OF }
}

pub(crate) const BUILTIN_PRICES: &[BuiltinPrice] = &[
    openai("gpt-5", 1.25, Some(0.125), 10.0),
    openai("gpt-5-mini", 0.25, Some(0.025), 2.0),
    openai("gpt-5-nano", 0.05, Some(0.005), 0.40),
    openai("gpt-4.1", 2.0, Some(0.50), 8.0),
    openai("gpt-4.1-mini", 0.40, Some(0.10), 1.60),
    openai("gpt-4.1-nano", 0.10, Some(0.025), 0.40),
    openai("gpt-4o", 2.50, Some(1.25), 10.0),
    openai("gpt-4o-2024-05-13", 5.0, None, 15.0),
    openai("gpt-4o-mini", 0.15, Some(0.075), 0.60),
    openai("o1", 15.0, Some(7.50), 60.0),
    openai("o1-mini", 1.10, Some(0.55), 4.40),
    openai("o3", 2.0, Some(0.50), 8.0),
    openai("o3-mini", 1.10, Some(0.55), 4.40),
    openai("o4-mini", 1.10, Some(0.275), 4.40),
    openai("gpt-4-turbo", 10.0, None, 30.0),
    openai("gpt-3.5-turbo", 0.50, None, 1.50),
    openai("text-embedding-3-small", 0.02, None, 0.0),
    openai("text-embedding-3-large", 0.13, None, 0.0),
    anthropic("claude-opus-4-5", 5.0, 25.0),
    anthropic("claude-opus-4-1", 15.0, 75.0),
    anthropic("claude-opus-4", 15.0, 75.0),
    anthropic("claude-sonnet-4-5", 3.0, 15.0),
    anthropic("claude-sonnet-4", 3.0, 15.0),
    anthropic("claude-3-7-sonnet", 3.0, 15.0),
    anthropic("claude-3-5-sonnet", 3.0, 15.0),
    anthropic("claude-haiku-4-5", 1.0, 5.0),
    anthropic("claude-3-5-haiku", 0.80, 4.0),
    anthropic("claude-3-haiku", 0.25, 1.25),
    anthropic("claude-3-opus", 15.0, 75.0),
    dashboard("claude-sonnet-4-6", 3.0, 15.0),
    dashboard("claude-sonnet-5", 3.0, 15.0),
    dashboard("claude-opus-4-8", 5.0, 25.0),
    dashboard("claude-opus-5", 5.0, 25.0),
    google("gemini-2.5-pro", 1.25, Some(0.31), 10.0),
    google("gemini-2.5-flash", 0.30, Some(0.075), 2.50),
    google("gemini-2.5-flash-lite", 0.10, Some(0.025), 0.40),
    google("gemini-2.0-flash", 0.10, Some(0.025), 0.40),
    google("gemini-2.0-flash-lite", 0.075, None, 0.30),
    google("gemini-1.5-pro", 1.25, None, 5.0),
    google("gemini-1.5-flash", 0.075, None, 0.30),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::PriceTable;

    #[test]
    fn every_builtin_price_is_valid_and_has_a_unique_name() {
        let mut table = PriceTable::new();
        for entry in BUILTIN_PRICES {
            table.insert(entry.price()).unwrap_or_else(|e| panic!("{}: {e}", entry.name));
        }
        assert_eq!(table.len(), BUILTIN_PRICES.len(), "two entries share a name");
    }

    #[test]
    fn anthropic_cache_prices_follow_the_published_ratios() {
        let table = PriceTable::builtin();
        let sonnet = table.get("claude-sonnet-4-5-20250929").unwrap();
        assert!((sonnet.cache_read() - 0.30).abs() < 1e-12);
        assert!((sonnet.cache_creation() - 3.75).abs() < 1e-12);
    }

    #[test]
    fn a_dated_entry_wins_over_its_family() {
        let table = PriceTable::builtin();
        assert_eq!(table.get("gpt-4o-2024-05-13").unwrap().input(), 5.0);
        assert_eq!(table.get("gpt-4o-2024-11-20").unwrap().input(), 2.50);
    }
}
