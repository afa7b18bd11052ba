//! Every stdlib filter, wrapped so that it draws from the render budget and cannot overflow.
//!
//! The wrapper checks the deadline before a filter runs, refuses a filter whose worst-case
//! result (for the filters that multiply their input: `replace`, `join`, escapes, `date`)
//! would not fit in the bytes left, and charges the size of every result. Integer arithmetic
//! (`plus`, `minus`, `times`, `divided_by`, `modulo`, `abs`) is done here with checked
//! operations: the stdlib versions overflow (`divided_by` of i64::MIN by -1 panics even in
//! release builds); an overflow is a render error, so the summary is null.

use std::fmt;

use liquid_core::model::{Value, ValueView};
use liquid_core::parser::{FilterArguments, FilterReflection, ParseFilter};
use liquid_core::{Error, Expression, Filter, Result, Runtime};

use super::budget;

/// Filters whose result may be many times the size of their input.
const MULTIPLYING: &[&str] = &["replace", "join", "newline_to_br", "escape", "escape_once", "url_encode", "date"];

/// Worst growth factor of an escaping filter (one byte becoming an entity like `&#39;`).
const ESCAPE_GROWTH: usize = 6;

/// A stdlib filter run within the budget (see the module doc).
#[derive(Clone)]
pub(super) struct Budgeted {
    inner: Box<dyn ParseFilter>,
}

impl Budgeted {
    /// Wraps `filter`.
    pub(super) fn new(filter: impl Into<Box<dyn ParseFilter>>) -> Self {
        Budgeted { inner: filter.into() }
    }
}

impl ParseFilter for Budgeted {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        let positional: Vec<Expression> = arguments.positional.collect();
        let keyword: Vec<(&str, Expression)> = arguments.keyword.collect();
        let keyword_values: Vec<Expression> = keyword.iter().map(|(_, value)| value.clone()).collect();
        let inner = self.inner.parse(FilterArguments {
            positional: Box::new(positional.clone().into_iter()),
            keyword: Box::new(keyword.into_iter()),
        })?;
        Ok(Box::new(BudgetedFilter {
            name: self.inner.reflection().name().to_string(),
            positional,
            keyword: keyword_values,
            inner,
        }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self.inner.reflection()
    }
}

#[derive(Debug)]
struct BudgetedFilter {
    name: String,
    positional: Vec<Expression>,
    keyword: Vec<Expression>,
    inner: Box<dyn Filter>,
}

impl fmt::Display for BudgetedFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl Filter for BudgetedFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        budget::check_time()?;
        if let Some(result) = self.checked_integer(input, runtime)? {
            return Ok(result);
        }
        if MULTIPLYING.contains(&self.name.as_str()) {
            self.check_worst_case(input, runtime)?;
        }
        let result = self.inner.evaluate(input, runtime)?;
        budget::take_work(value_size(&result, budget::work_left()))?;
        Ok(result)
    }
}

impl BudgetedFilter {
    /// The result of an integer math filter on integer operands (`None`: not one; the stdlib
    /// filter then handles floats and reports wrong operand types).
    fn checked_integer(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Option<Value>> {
        let name = self.name.as_str();
        if !matches!(name, "plus" | "minus" | "times" | "divided_by" | "modulo" | "abs") {
            return Ok(None);
        }
        let Some(left) = input.as_scalar().and_then(|scalar| scalar.to_integer()) else {
            return Ok(None);
        };
        if name == "abs" {
            return left.checked_abs().map(|value| Some(Value::scalar(value))).ok_or_else(|| overflow(name));
        }
        let Some(operand) = self.positional.first() else {
            return Ok(None);
        };
        let operand = operand.evaluate(runtime)?;
        let Some(right) = operand.as_scalar().and_then(|scalar| scalar.to_integer()) else {
            return Ok(None);
        };
        if right == 0 && matches!(name, "divided_by" | "modulo") {
            return Err(Error::with_msg(format!("{name}: can't divide by zero")));
        }
        let result = match name {
            "plus" => left.checked_add(right),
            "minus" => left.checked_sub(right),
            "times" => left.checked_mul(right),
            "divided_by" => left.checked_div(right),
            _ => left.checked_rem(right),
        };
        result.map(|value| Some(Value::scalar(value))).ok_or_else(|| overflow(name))
    }

    /// Refuses to run a multiplying filter whose worst-case result does not fit the budget.
    fn check_worst_case(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<()> {
        let left = budget::work_left();
        let mut largest_argument = ESCAPE_GROWTH;
        let mut arguments = 0usize;
        for expression in self.positional.iter().chain(&self.keyword) {
            let size = value_size(expression.evaluate(runtime)?.as_view(), left);
            largest_argument = largest_argument.max(size);
            arguments = arguments.saturating_add(size);
        }
        let worst = value_size(input, left)
            .saturating_add(1)
            .saturating_mul(largest_argument.saturating_add(1))
            .saturating_add(arguments);
        if worst > left {
            return Err(Error::with_msg(format!(
                "{}: its result could reach {worst} bytes, over the {left} bytes left to this render",
                self.name
            )));
        }
        Ok(())
    }
}

fn overflow(name: &str) -> Error {
    Error::with_msg(format!("{name}: integer overflow"))
}

/// The size a value is charged for: its text bytes plus 8 per item and key. Stops counting
/// once past `cap` (the caller only compares with it), so measuring is bounded too.
pub(super) fn value_size(value: &dyn ValueView, cap: usize) -> usize {
    let mut total = 0usize;
    add_size(value, cap, &mut total);
    total
}

fn add_size(value: &dyn ValueView, cap: usize, total: &mut usize) {
    if *total > cap {
        return;
    }
    if let Some(array) = value.as_array() {
        for item in array.values() {
            *total = total.saturating_add(8);
            add_size(item, cap, total);
            if *total > cap {
                return;
            }
        }
    } else if let Some(object) = value.as_object() {
        for (key, item) in object.iter() {
            *total = total.saturating_add(8 + key.len());
            add_size(item, cap, total);
            if *total > cap {
                return;
            }
        }
    } else if let Some(scalar) = value.as_scalar() {
        *total = total.saturating_add(scalar.to_kstr().len());
    } else {
        *total = total.saturating_add(1);
    }
}
