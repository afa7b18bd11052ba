//! Token usage and cost totals of a run, from what its spans' payloads carry. A span counts
//! when its `result_payload` (or else its `payload`) has a `usage` object with any of
//! `input_tokens`, `output_tokens`, `total_tokens` (OpenAI's `prompt_tokens` /
//! `completion_tokens` too), and cost is read from `cost`, `total_cost` or `cost_usd`, at the
//! top level or inside `usage`: a number (US dollars), or an object `{"total", "currency"}`
//! (the Rust SDK's `prefactor::llm::Cost`) counted when its currency is `USD`, since the page
//! shows one dollar total.

use serde::Serialize;
use serde_json::Value;

/// Summed usage of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct UsageTotals {
    /// Input (prompt) tokens.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
    /// Total tokens (input + output when a span gives no total).
    pub total_tokens: u64,
    /// Summed cost, when any span carries one.
    pub cost: Option<f64>,
    /// How many spans carried usage or cost.
    pub spans_with_usage: u64,
}

impl UsageTotals {
    /// Adds one span's payloads.
    ///
    /// ```
    /// use prefactor_server::ui::usage::UsageTotals;
    /// let mut totals = UsageTotals::default();
    /// let result = serde_json::json!({"usage": {"input_tokens": 10, "output_tokens": 5}, "cost": 0.25});
    /// totals.add(&serde_json::json!({}), Some(&result));
    /// assert_eq!((totals.input_tokens, totals.total_tokens, totals.cost), (10, 15, Some(0.25)));
    /// ```
    pub fn add(&mut self, payload: &Value, result_payload: Option<&Value>) {
        let sources = [result_payload, Some(payload)];
        let Some(source) = sources.into_iter().flatten().find(|value| carries_usage(value)) else {
            return;
        };
        self.spans_with_usage = self.spans_with_usage.saturating_add(1);
        let usage = source.get("usage").filter(|u| u.is_object());
        let count = |names: &[&str]| -> u64 {
            names.iter().find_map(|name| usage.and_then(|u| u.get(*name)).and_then(Value::as_u64)).unwrap_or(0)
        };
        let input = count(&["input_tokens", "prompt_tokens"]);
        let output = count(&["output_tokens", "completion_tokens"]);
        let total = match count(&["total_tokens"]) {
            0 => input.saturating_add(output),
            total => total,
        };
        self.input_tokens = self.input_tokens.saturating_add(input);
        self.output_tokens = self.output_tokens.saturating_add(output);
        self.total_tokens = self.total_tokens.saturating_add(total);
        if let Some(cost) = cost_of(source) {
            self.cost = Some(self.cost.unwrap_or(0.0) + cost);
        }
    }
}

const COST_FIELDS: [&str; 3] = ["cost", "total_cost", "cost_usd"];

fn carries_usage(value: &Value) -> bool {
    value.get("usage").is_some_and(Value::is_object) || cost_of(value).is_some()
}

fn cost_of(value: &Value) -> Option<f64> {
    let direct = COST_FIELDS.iter().find_map(|name| value.get(*name).and_then(dollars));
    let nested = || {
        let usage = value.get("usage")?;
        COST_FIELDS.iter().find_map(|name| usage.get(*name).and_then(dollars))
    };
    direct.or_else(nested).filter(|cost| cost.is_finite())
}

/// A cost in US dollars: a number, or a `{"total", "currency": "USD"}` object (no currency:
/// dollars, as a bare number is).
fn dollars(cost: &Value) -> Option<f64> {
    match cost {
        Value::Object(cost) => {
            let usd = cost.get("currency").is_none_or(|currency| currency.as_str() == Some("USD"));
            cost.get("total").and_then(Value::as_f64).filter(|_| usd)
        }
        other => other.as_f64(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sums_usage_from_results_then_payloads_and_ignores_spans_without() {
        let mut totals = UsageTotals::default();
        totals.add(&json!({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}), None);
        totals.add(
            &json!({}),
            Some(&json!({"usage": {"input_tokens": 10, "output_tokens": 1, "total_tokens": 12, "cost": 0.5}})),
        );
        totals.add(&json!({"model": "x"}), Some(&json!({"text": "no usage"})));
        totals.add(&json!({}), Some(&json!({"usage": {"input_tokens": "many"}})));
        assert_eq!(totals.input_tokens, 13);
        assert_eq!(totals.output_tokens, 5);
        assert_eq!(totals.total_tokens, 19);
        assert_eq!(totals.cost, Some(0.5));
        assert_eq!(totals.spans_with_usage, 3);
    }

    #[test]
    fn cost_objects_count_in_dollars_only() {
        let mut totals = UsageTotals::default();
        let priced = |total: f64, currency: &str| json!({"usage": {"input_tokens": 1, "cost": {"total": total, "currency": currency, "priced_as": "m"}}});
        totals.add(&json!({}), Some(&priced(0.25, "USD")));
        totals.add(&json!({}), Some(&priced(7.0, "EUR")));
        totals.add(&json!({}), Some(&json!({"usage": {"cost": {"total": 0.5}}})));
        assert_eq!(totals.cost, Some(0.75));
        assert_eq!(totals.spans_with_usage, 3);
    }

    #[test]
    fn huge_counts_saturate() {
        let mut totals = UsageTotals::default();
        totals.add(&json!({"usage": {"input_tokens": u64::MAX}}), None);
        totals.add(&json!({"usage": {"input_tokens": u64::MAX}}), None);
        assert_eq!(totals.input_tokens, u64::MAX);
    }
}
