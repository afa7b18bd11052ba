//! `for`, `tablerow` and `capture` blocks that draw from the render budget.
//!
//! They replace the stdlib blocks of the same names (same syntax and output) because the
//! stdlib ones cannot be bounded from outside: a range `(1..count)` is collected into a
//! vector before the first iteration (a payload `count` of 10^12 aborts the process on the
//! allocation), loops run without limit, and a capture grows a string without limit. Here a
//! range is refused before it is built when it is longer than the iterations left, every
//! iteration takes one from the budget, and a capture writes into a bounded buffer.

use std::collections::HashMap;
use std::io::Write;

use liquid_core::error::ResultLiquidReplaceExt;
use liquid_core::model::{KString, KStringRef, Object, Scalar, Value, ValueCow, ValueView};
use liquid_core::parser::{BlockElement, TryMatchToken};
use liquid_core::runtime::{Interrupt, InterruptRegister, StackFrame};
use liquid_core::{
    BlockReflection, Error, Expression, Language, ParseBlock, Renderable, Result, Runtime, TagBlock, TagTokenIter,
    Template,
};

use super::budget::{self, BoundedWriter};
use super::filters::value_size;

/// What a loop walks: an array (or object, as `[key, value]` pairs) or a counted range.
#[derive(Debug, Clone)]
enum Source {
    Array(Expression),
    Counted(Expression, Expression),
}

/// `limit:`, `offset:` and `reversed` of a loop.
#[derive(Debug, Clone, Default)]
struct Window {
    limit: Option<Expression>,
    offset: Option<Expression>,
    reversed: bool,
}

fn parse_source(arguments: &mut TagTokenIter<'_>) -> Result<(KString, Source)> {
    let name = arguments.expect_next("Identifier expected.")?.expect_identifier().into_result()?;
    let name = KString::from_ref(name);
    arguments.expect_next("\"in\" expected.")?.expect_str("in").into_result_custom_msg("\"in\" expected.")?;
    let range = arguments.expect_next("Array or range expected.")?;
    let source = match range.expect_value() {
        TryMatchToken::Matches(array) => Source::Array(array),
        TryMatchToken::Fails(range) => match range.expect_range() {
            TryMatchToken::Matches((start, stop)) => Source::Counted(start, stop),
            TryMatchToken::Fails(range) => return range.raise_error().into_err(),
        },
    };
    Ok((name, source))
}

fn parse_attribute(arguments: &mut TagTokenIter<'_>) -> Result<Expression> {
    arguments.expect_next("\":\" expected.")?.expect_str(":").into_result_custom_msg("\":\" expected.")?;
    arguments.expect_next("Value expected.")?.expect_value().into_result()
}

/// A whole number attribute; negative counts as 0.
fn count_attribute(attribute: &Option<Expression>, runtime: &dyn Runtime) -> Result<Option<u64>> {
    let Some(attribute) = attribute else {
        return Ok(None);
    };
    let value = attribute.evaluate(runtime)?;
    let number = value
        .as_scalar()
        .and_then(|scalar| scalar.to_integer())
        .ok_or_else(|| Error::with_msg(format!("expected a whole number, found {}", value.type_name())))?;
    Ok(Some(u64::try_from(number).unwrap_or(0)))
}

fn whole_number(expression: &Expression, runtime: &dyn Runtime, what: &str) -> Result<i64> {
    let value = expression.evaluate(runtime)?;
    value
        .as_scalar()
        .and_then(|scalar| scalar.to_integer())
        .ok_or_else(|| Error::with_msg(format!("range {what}: expected a whole number, found {}", value.type_name())))
}

/// The items a loop walks, windowed: a counted range stays a pair of numbers (it is never
/// built), an array is a list of its items.
enum Items<'r> {
    Counted { first: i128, length: usize, reversed: bool },
    Listed(Vec<ValueCow<'r>>),
}

impl<'r> Items<'r> {
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn len(&self) -> usize {
        match self {
            Items::Counted { length, .. } => *length,
            Items::Listed(items) => items.len(),
        }
    }

    /// Item `index` (0-based, `index < len()`).
    fn get(&self, index: usize) -> ValueCow<'_> {
        match self {
            Items::Counted { first, length, reversed } => {
                let step = if *reversed { length - 1 - index } else { index } as i128;
                // Both ends of the range are i64, so every item is one.
                let number = i64::try_from(first + step).unwrap_or_default();
                ValueCow::Owned(Value::scalar(number))
            }
            Items::Listed(items) => ValueCow::Borrowed(items[index].as_view()),
        }
    }
}

/// The items a loop iterates, windowed; a range longer than the iterations left is refused.
fn items<'r>(
    source: &'r Source,
    holder: &'r mut Option<ValueCow<'r>>,
    window: &Window,
    runtime: &'r dyn Runtime,
) -> Result<Items<'r>> {
    let limit = count_attribute(&window.limit, runtime)?;
    let offset = count_attribute(&window.offset, runtime)?.unwrap_or(0);
    match source {
        Source::Counted(start, stop) => {
            let start = i128::from(whole_number(start, runtime, "start")?);
            let stop = i128::from(whole_number(stop, runtime, "end")?);
            let length = (stop - start + 1).max(0);
            let first = start + i128::from(offset).min(length);
            let length = (length - (first - start)).min(limit.map_or(length, i128::from));
            let left = budget::iterations_left();
            if length > i128::from(left) {
                return Err(Error::with_msg(format!("range of {length} items is over the {left} iterations left")));
            }
            let length = usize::try_from(length).map_err(|_| Error::with_msg("range too long"))?;
            Ok(Items::Counted { first, length, reversed: window.reversed })
        }
        Source::Array(expression) => {
            let value: &'r ValueCow<'r> = holder.insert(expression.evaluate(runtime)?);
            let all = collection(value.as_view())?;
            let offset = usize::try_from(offset).unwrap_or(usize::MAX).min(all.len());
            let limit = limit.map_or(usize::MAX, |limit| usize::try_from(limit).unwrap_or(usize::MAX));
            let mut items: Vec<ValueCow<'r>> = all.into_iter().skip(offset).take(limit).collect();
            if window.reversed {
                items.reverse();
            }
            Ok(Items::Listed(items))
        }
    }
}

/// The items of an array, or an object's `[key, value]` pairs; nothing for nil.
fn collection(value: &dyn ValueView) -> Result<Vec<ValueCow<'_>>> {
    if let Some(array) = value.as_array() {
        Ok(array.values().map(ValueCow::Borrowed).collect())
    } else if let Some(object) = value.as_object() {
        budget::take_work(value_size(value, budget::work_left()))?;
        Ok(object
            .iter()
            .map(|(key, item)| Value::Array(vec![Value::scalar(key.into_owned()), item.to_value()]).into())
            .collect())
    } else if value.is_state() || value.is_nil() {
        Ok(Vec::new())
    } else {
        Err(Error::with_msg(format!("expected an array, found {}", value.type_name())))
    }
}

/// The `forloop` / `tablerow` object of item `index` of `length`.
fn loop_object(index: usize, length: usize) -> Object {
    let index = i64::try_from(index).unwrap_or(i64::MAX);
    let length = i64::try_from(length).unwrap_or(i64::MAX);
    let mut object = Object::new();
    object.insert("length".into(), Value::scalar(length));
    object.insert("index0".into(), Value::scalar(index));
    object.insert("index".into(), Value::scalar(index.saturating_add(1)));
    object.insert("rindex0".into(), Value::scalar(length.saturating_sub(index).saturating_sub(1)));
    object.insert("rindex".into(), Value::scalar(length.saturating_sub(index)));
    object.insert("first".into(), Value::scalar(index == 0));
    object.insert("last".into(), Value::scalar(index == length.saturating_sub(1)));
    object
}

/// The bounded `for` block.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BoundedFor;

impl BlockReflection for BoundedFor {
    fn start_tag(&self) -> &str {
        "for"
    }

    fn end_tag(&self) -> &str {
        "endfor"
    }

    fn description(&self) -> &str {
        "Iterates over an array or range, within the render budget."
    }
}

impl ParseBlock for BoundedFor {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let (var_name, source) = parse_source(&mut arguments)?;
        let mut window = Window::default();
        while let Some(token) = arguments.next() {
            match token.as_str() {
                "limit" => window.limit = Some(parse_attribute(&mut arguments)?),
                "offset" => window.offset = Some(parse_attribute(&mut arguments)?),
                "reversed" => window.reversed = true,
                _ => return token.raise_custom_error("\"limit\", \"offset\" or \"reversed\" expected.").into_err(),
            }
        }
        arguments.expect_nothing()?;
        let mut body = Vec::new();
        let mut otherwise = None;
        while let Some(element) = tokens.next()? {
            match element {
                BlockElement::Tag(mut tag) if tag.name() == "else" => {
                    tag.tokens().expect_nothing()?;
                    otherwise = Some(Template::new(tokens.parse_all(options)?));
                    break;
                }
                BlockElement::Tag(tag) => body.push(tag.parse(&mut tokens, options)?),
                element => body.push(element.parse(&mut tokens, options)?),
            }
        }
        tokens.assert_empty();
        Ok(Box::new(For { var_name, source, window, body: Template::new(body), otherwise }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct For {
    var_name: KString,
    source: Source,
    window: Window,
    body: Template,
    otherwise: Option<Template>,
}

impl Renderable for For {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let mut holder = None;
        let items = items(&self.source, &mut holder, &self.window, runtime)?;
        if items.is_empty() {
            if let Some(otherwise) = &self.otherwise {
                otherwise.render_to(writer, runtime)?;
            }
            return Ok(());
        }
        let parent = runtime.try_get(&[Scalar::new("forloop")]).map(|parent| parent.into_owned());
        let length = items.len();
        for index in 0..length {
            budget::take_iterations(1)?;
            let item = items.get(index);
            let mut forloop = loop_object(index, length);
            if let Some(parent) = &parent {
                forloop.insert("parentloop".into(), parent.clone());
            }
            let forloop = Value::Object(forloop);
            let mut root = HashMap::<KStringRef<'_>, &dyn ValueView>::new();
            root.insert("forloop".into(), &forloop);
            root.insert(self.var_name.as_ref(), item.as_view());
            let scope = StackFrame::new(runtime, &root);
            self.body.render_to(writer, &scope)?;
            if let Some(Interrupt::Break) = scope.registers().get_mut::<InterruptRegister>().reset() {
                break;
            }
        }
        Ok(())
    }
}

/// The bounded `tablerow` block.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BoundedTableRow;

impl BlockReflection for BoundedTableRow {
    fn start_tag(&self) -> &str {
        "tablerow"
    }

    fn end_tag(&self) -> &str {
        "endtablerow"
    }

    fn description(&self) -> &str {
        "Renders an HTML table row per item, within the render budget."
    }
}

impl ParseBlock for BoundedTableRow {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let (var_name, source) = parse_source(&mut arguments)?;
        let mut window = Window::default();
        let mut cols = None;
        while let Some(token) = arguments.next() {
            match token.as_str() {
                "cols" => cols = Some(parse_attribute(&mut arguments)?),
                "limit" => window.limit = Some(parse_attribute(&mut arguments)?),
                "offset" => window.offset = Some(parse_attribute(&mut arguments)?),
                _ => return token.raise_custom_error("\"cols\", \"limit\" or \"offset\" expected.").into_err(),
            }
        }
        arguments.expect_nothing()?;
        let body = Template::new(tokens.parse_all(options)?);
        tokens.assert_empty();
        Ok(Box::new(TableRow { var_name, source, window, cols, body }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct TableRow {
    var_name: KString,
    source: Source,
    window: Window,
    cols: Option<Expression>,
    body: Template,
}

impl Renderable for TableRow {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let mut holder = None;
        let items = items(&self.source, &mut holder, &self.window, runtime)?;
        let length = items.len();
        let cols = count_attribute(&self.cols, runtime)?
            .and_then(|cols| usize::try_from(cols).ok())
            .filter(|cols| *cols > 0)
            .unwrap_or(length.max(1));
        for index in 0..length {
            budget::take_iterations(1)?;
            let item = items.get(index);
            let (row, col) = (index / cols, index % cols);
            let mut tablerow = loop_object(index, length);
            let col_last = col + 1 == cols || index + 1 == length;
            tablerow.insert("col0".into(), Value::scalar(i64::try_from(col).unwrap_or(i64::MAX)));
            tablerow.insert("col".into(), Value::scalar(i64::try_from(col + 1).unwrap_or(i64::MAX)));
            tablerow.insert("col_first".into(), Value::scalar(col == 0));
            tablerow.insert("col_last".into(), Value::scalar(col_last));
            let tablerow = Value::Object(tablerow);
            let mut root = HashMap::<KStringRef<'_>, &dyn ValueView>::new();
            root.insert("tablerow".into(), &tablerow);
            root.insert(self.var_name.as_ref(), item.as_view());
            if col == 0 {
                write!(writer, "<tr class=\"row{}\">", row + 1).replace("Failed to render")?;
            }
            write!(writer, "<td class=\"col{}\">", col + 1).replace("Failed to render")?;
            let scope = StackFrame::new(runtime, &root);
            self.body.render_to(writer, &scope)?;
            write!(writer, "</td>").replace("Failed to render")?;
            if col_last {
                write!(writer, "</tr>").replace("Failed to render")?;
            }
        }
        Ok(())
    }
}

/// The bounded `capture` block: captures into a buffer no bigger than the bytes left.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BoundedCapture;

impl BlockReflection for BoundedCapture {
    fn start_tag(&self) -> &str {
        "capture"
    }

    fn end_tag(&self) -> &str {
        "endcapture"
    }

    fn description(&self) -> &str {
        "Captures its content into a variable, within the render budget."
    }
}

impl ParseBlock for BoundedCapture {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let id = arguments.expect_next("Identifier expected")?.expect_identifier().into_result()?;
        let id = KString::from_ref(id);
        arguments.expect_nothing()?;
        let body = Template::new(tokens.parse_all(options)?);
        tokens.assert_empty();
        Ok(Box::new(Capture { id, body }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct Capture {
    id: KString,
    body: Template,
}

impl Renderable for Capture {
    fn render_to(&self, _writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let mut captured = BoundedWriter::new(Vec::new(), budget::work_left());
        self.body.render_to(&mut captured, runtime)?;
        budget::take_work(captured.written())?;
        let text =
            String::from_utf8(captured.into_inner()).map_err(|_| Error::with_msg("capture produced invalid UTF-8"))?;
        runtime.set_global(self.id.clone(), Value::scalar(text));
        Ok(())
    }
}
