//! Span and quality summaries: Liquid templates (the `liquid` crate) rendered server-side,
//! within limits.
//!
//! Render context = the span's `payload` merged with its `result_payload` (result wins on a
//! key collision), as in the reference backend. Templates are parsed once per schema version;
//! a template that does not parse, or fails to render, yields no summary instead of an error,
//! because a summary is decoration and must never make an ingestion request fail. A path
//! through a missing variable (`{{ nope.deeper }}`) renders empty, as in the reference
//! backend.
//!
//! Templates come from clients and render payloads that come from end users, so both are
//! hostile input. At register a template over [`TemplateLimits::max_template_bytes`] or
//! nesting blocks deeper than [`TemplateLimits::max_nesting`] is refused ([`check_shape`]).
//! A render has a budget (loop iterations, intermediate bytes, output bytes, wall-clock time;
//! see the `budget` module); over it the summary is `null` (never truncated) and the span is stored as
//! usual. The stdlib `for`, `tablerow` and `capture` blocks are replaced by bounded versions
//! and every filter is wrapped (the `filters` module); a panic inside `liquid` is caught and also
//! gives a `null` summary.

mod budget;
mod filters;
mod limits;
mod loops;

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::{Map, Value};

use crate::liquid_context::LaxValue;
pub use limits::{
    DEFAULT_MAX_ITERATIONS, DEFAULT_MAX_NESTING, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_RENDER_TIME,
    DEFAULT_MAX_TEMPLATE_BYTES, DEFAULT_MAX_WORK_BYTES, TemplateLimits, check_shape,
};

/// A parsed template, ready to render.
pub struct SummaryTemplate {
    template: liquid::Template,
    limits: TemplateLimits,
}

impl std::fmt::Debug for SummaryTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SummaryTemplate")
    }
}

/// Why a template was not parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Over the size or nesting limit.
    #[error("{0}")]
    OverLimit(String),
    /// Not valid Liquid.
    #[error("not valid Liquid: {0}")]
    Syntax(String),
}

impl SummaryTemplate {
    /// Parses `source` after checking its shape against `limits`.
    ///
    /// ```
    /// use prefactor_server::template::{SummaryTemplate, TemplateLimits};
    /// use serde_json::json;
    /// let limits = TemplateLimits::default();
    /// let template = SummaryTemplate::parse("{{ model }}: {{ tokens }} tokens", &limits).unwrap();
    /// let summary = template.render(&json!({"model": "m1"}), Some(&json!({"tokens": 42})));
    /// assert_eq!(summary.as_deref(), Some("m1: 42 tokens"));
    /// assert!(SummaryTemplate::parse("{% if %}", &limits).is_err());
    /// ```
    pub fn parse(source: &str, limits: &TemplateLimits) -> Result<SummaryTemplate, TemplateError> {
        check_shape(source, limits).map_err(TemplateError::OverLimit)?;
        // liquid's parser panics on some input (an integer literal past i64, found by the
        // template fuzz target); that is a template it cannot parse, not a server bug.
        let parsed = catch_unwind(AssertUnwindSafe(|| parser().parse(source)))
            .map_err(|_| TemplateError::Syntax("the Liquid parser could not read it".to_string()))?;
        let template = parsed.map_err(|error| TemplateError::Syntax(error.to_string()))?;
        Ok(SummaryTemplate { template, limits: *limits })
    }

    /// Renders with `payload` merged with `result` (result wins); `None` on a render error
    /// or when the render is over its budget.
    ///
    /// ```
    /// use prefactor_server::template::{SummaryTemplate, TemplateLimits};
    /// use serde_json::json;
    /// let template = SummaryTemplate::parse("{% for i in (1..n) %}*{% endfor %}", &TemplateLimits::default()).unwrap();
    /// assert_eq!(template.render(&json!({"n": 3}), None).as_deref(), Some("***"));
    /// assert_eq!(template.render(&json!({"n": 1_000_000_000_000i64}), None), None);
    /// ```
    pub fn render(&self, payload: &Value, result: Option<&Value>) -> Option<String> {
        let context = LaxValue::from_json(&Value::Object(merged_context(payload, result)));
        let (rendered, exceeded) = budget::run(&self.limits, || {
            let mut output = budget::BoundedWriter::new(Vec::new(), self.limits.max_output_bytes);
            let rendered = catch_unwind(AssertUnwindSafe(|| self.template.render_to(&mut output, &context)));
            (rendered, output.into_inner())
        });
        match rendered {
            (Ok(Ok(())), bytes) => String::from_utf8(bytes).ok(),
            (Ok(Err(error)), _) => {
                match exceeded {
                    Some(reason) => tracing::debug!(%reason, "summary template over its budget; summary is null"),
                    None => tracing::debug!(%error, "summary template failed to render; summary is null"),
                }
                None
            }
            (Err(_), _) => {
                tracing::warn!("summary template panicked inside liquid; summary is null");
                None
            }
        }
    }
}

/// The stdlib of Liquid with the unbounded blocks replaced and every filter budgeted.
fn parser() -> liquid::Parser {
    use liquid_lib::stdlib;
    use loops::{BoundedCapture, BoundedFor, BoundedTableRow};
    let builder = liquid::ParserBuilder::new()
        .tag(stdlib::AssignTag)
        .tag(stdlib::BreakTag)
        .tag(stdlib::ContinueTag)
        .tag(stdlib::CycleTag)
        .tag(stdlib::IncrementTag)
        .tag(stdlib::DecrementTag)
        .block(stdlib::RawBlock)
        .block(stdlib::IfBlock)
        .block(stdlib::UnlessBlock)
        .block(stdlib::IfChangedBlock)
        .block(BoundedFor)
        .block(BoundedTableRow)
        .block(stdlib::CommentBlock)
        .block(BoundedCapture)
        .block(stdlib::CaseBlock);
    let filters: Vec<Box<dyn liquid_core::ParseFilter>> = vec![
        Box::new(stdlib::Abs),
        Box::new(stdlib::Append),
        Box::new(stdlib::AtLeast),
        Box::new(stdlib::AtMost),
        Box::new(stdlib::Capitalize),
        Box::new(stdlib::Ceil),
        Box::new(stdlib::Compact),
        Box::new(stdlib::Concat),
        Box::new(stdlib::Date),
        Box::new(stdlib::Default),
        Box::new(stdlib::DividedBy),
        Box::new(stdlib::Downcase),
        Box::new(stdlib::Escape),
        Box::new(stdlib::EscapeOnce),
        Box::new(stdlib::First),
        Box::new(stdlib::Floor),
        Box::new(stdlib::Join),
        Box::new(stdlib::Last),
        Box::new(stdlib::Lstrip),
        Box::new(stdlib::Map),
        Box::new(stdlib::Minus),
        Box::new(stdlib::Modulo),
        Box::new(stdlib::NewlineToBr),
        Box::new(stdlib::Plus),
        Box::new(stdlib::Prepend),
        Box::new(stdlib::Remove),
        Box::new(stdlib::RemoveFirst),
        Box::new(stdlib::Replace),
        Box::new(stdlib::ReplaceFirst),
        Box::new(stdlib::Reverse),
        Box::new(stdlib::Round),
        Box::new(stdlib::Rstrip),
        Box::new(stdlib::Size),
        Box::new(stdlib::Slice),
        Box::new(stdlib::Sort),
        Box::new(stdlib::SortNatural),
        Box::new(stdlib::Split),
        Box::new(stdlib::Strip),
        Box::new(stdlib::StripHtml),
        Box::new(stdlib::StripNewlines),
        Box::new(stdlib::Times),
        Box::new(stdlib::Truncate),
        Box::new(stdlib::TruncateWords),
        Box::new(stdlib::Uniq),
        Box::new(stdlib::Upcase),
        Box::new(stdlib::UrlDecode),
        Box::new(stdlib::UrlEncode),
        Box::new(stdlib::Where),
    ];
    let builder = filters.into_iter().fold(builder, |builder, filter| builder.filter(filters::Budgeted::new(filter)));
    // Only registered blocks, tags and filters above; building cannot fail.
    builder.build().unwrap_or_else(|_| liquid::Parser::new())
}

fn merged_context(payload: &Value, result: Option<&Value>) -> Map<String, Value> {
    let mut context = match payload {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    if let Some(Value::Object(result)) = result {
        for (key, value) in result {
            context.insert(key.clone(), value.clone());
        }
    }
    context
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::*;

    fn render(source: &str, payload: Value) -> Option<String> {
        SummaryTemplate::parse(source, &TemplateLimits::default()).expect("parses").render(&payload, None)
    }

    #[test]
    fn a_range_sized_by_the_payload_is_refused_before_it_is_built() {
        let started = Instant::now();
        assert_eq!(render("{% for i in (1..count) %}*{% endfor %}", json!({"count": 1_000_000_000_000i64})), None);
        assert_eq!(render("{% for i in (a..b) %}*{% endfor %}", json!({"a": i64::MIN, "b": i64::MAX})), None);
        assert_eq!(
            render("{% tablerow i in (1..count) %}*{% endtablerow %}", json!({"count": 1_000_000_000i64})),
            None
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(render("{% for i in (1..3) reversed %}{{ i }}{% endfor %}", json!({})).as_deref(), Some("321"));
        let windowed = "{% for i in (1..1000000000000) offset: 2 limit: 3 %}{{ i }}{% endfor %}";
        assert_eq!(render(windowed, json!({})).as_deref(), Some("345"), "the window applies before the budget");
    }

    #[test]
    fn nested_loops_share_one_iteration_budget() {
        let nested = "{% for a in (1..1000) %}{% for b in (1..1000) %}x{% endfor %}{% endfor %}";
        assert_eq!(render(nested, json!({})), None);
        let small =
            "{% for a in (1..3) %}{% for b in xs %}{{ forloop.parentloop.index }}{{ b }} {% endfor %}{% endfor %}";
        assert_eq!(render(small, json!({"xs": ["a", "b"]})).as_deref(), Some("1a 1b 2a 2b 3a 3b "));
    }

    #[test]
    fn doubling_a_string_stops_at_the_work_budget() {
        let doubling =
            "{% assign s = 'xxxxxxxxxx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s }}";
        assert_eq!(render(doubling, json!({})), None);
        let capture = "{% capture s %}ab{% endcapture %}{% for i in (1..40) %}{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}";
        assert_eq!(render(capture, json!({})), None);
        let replace = "{{ text | replace: '', text }}";
        assert_eq!(render(replace, json!({"text": "y".repeat(100_000)})), None);
    }

    #[test]
    fn output_is_capped() {
        let limits = TemplateLimits { max_output_bytes: 10, ..TemplateLimits::default() };
        let template = SummaryTemplate::parse("{{ a }}", &limits).unwrap();
        assert_eq!(template.render(&json!({"a": "0123456789"}), None).as_deref(), Some("0123456789"));
        assert_eq!(template.render(&json!({"a": "0123456789!"}), None), None);
    }

    #[test]
    fn a_render_stops_at_its_deadline() {
        let limits = TemplateLimits {
            max_iterations: u64::MAX,
            max_render_time: Duration::from_millis(20),
            ..TemplateLimits::default()
        };
        let template = SummaryTemplate::parse(
            "{% for a in (1..100000000) %}{% for b in (1..100000000) %}{% endfor %}{% endfor %}",
            &limits,
        )
        .unwrap();
        let started = Instant::now();
        assert_eq!(template.render(&json!({}), None), None);
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }

    #[test]
    fn integer_filters_never_overflow() {
        let min = json!({"n": i64::MIN, "m": i64::MAX});
        assert_eq!(render("{{ n | divided_by: -1 }}", min.clone()), None);
        assert_eq!(render("{{ n | modulo: -1 }}", min.clone()), None);
        assert_eq!(render("{{ n | abs }}", min.clone()), None);
        assert_eq!(render("{{ m | plus: 1 }}", min.clone()), None);
        assert_eq!(render("{{ n | minus: 1 }}", min.clone()), None);
        assert_eq!(render("{{ m | times: 2 }}", min.clone()), None);
        assert_eq!(render("{{ 7 | divided_by: 0 }}", min.clone()), None);
        assert_eq!(
            render(
                "{{ 7 | divided_by: 2 }} {{ 7 | modulo: 3 }} {{ -3 | abs }} {{ 2 | times: 3 | plus: 1 | minus: 2 }}",
                min.clone()
            )
            .as_deref(),
            Some("3 1 3 5")
        );
        assert_eq!(render("{{ 7.0 | divided_by: 2 }}", min).as_deref(), Some("3.5"));
    }

    #[test]
    fn a_path_through_a_missing_variable_renders_empty() {
        assert_eq!(render("[{{ nope.deeper }}|{{ nope.a.b.c }}|{{ x }}]", json!({"x": 1})).as_deref(), Some("[||1]"));
        assert_eq!(render("{% if nope.deeper %}yes{% else %}no{% endif %}", json!({})).as_deref(), Some("no"));
    }

    #[test]
    fn a_template_the_liquid_parser_panics_on_is_a_syntax_error() {
        // Found by the template fuzz target: liquid's grammar takes the literal as an integer
        // and its parser then fails to fit it in an i64 (a panic inside liquid).
        for source in ["{{ 99999999999999999999 }}", "{% for i in 111111111111111111111111(1..2) %}{{ i }}{% endfor %}"]
        {
            let error = SummaryTemplate::parse(source, &TemplateLimits::default()).unwrap_err();
            assert!(matches!(error, TemplateError::Syntax(_)), "{source}: {error}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = format!("{}x{}", "{% if a %}".repeat(3000), "{% endif %}".repeat(3000));
        let error = SummaryTemplate::parse(&deep, &TemplateLimits::default()).unwrap_err();
        assert!(matches!(error, TemplateError::OverLimit(_)), "{error}");
    }
}
