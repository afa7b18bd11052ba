//! A lenient Liquid render context built from JSON.
//!
//! The `liquid` crate errors on a variable the context does not have; the reference backend
//! (Solid, non-strict) renders it as empty. [`LaxValue`] gives the lenient behaviour: a
//! missing key of an object (the root included) or a missing array index reads as `nil`, and
//! a bare object or array renders as the empty string, as the API notes describe (A10.5).

use std::collections::BTreeMap;
use std::fmt;

use liquid::model::{ArrayView, DisplayCow, KStringCow, ScalarCow, State, Value as LiquidValue};
use liquid::{ObjectView, ValueView};
use serde_json::Value;

/// JSON converted for lenient rendering.
#[derive(Debug, Clone, PartialEq)]
pub enum LaxValue {
    /// JSON null, and every missing key.
    Nil,
    /// A string, number or boolean.
    Scalar(LiquidValue),
    /// A JSON array.
    Array(Vec<LaxValue>),
    /// A JSON object.
    Object(BTreeMap<String, LaxValue>),
}

static NIL: LaxValue = LaxValue::Nil;

impl LaxValue {
    /// Converts JSON.
    ///
    /// ```
    /// use prefactor_server::liquid_context::LaxValue;
    /// let context = LaxValue::from_json(&serde_json::json!({"a": 1}));
    /// let template = liquid::ParserBuilder::with_stdlib().build().unwrap().parse("{{ a }}{{ b }}").unwrap();
    /// assert_eq!(template.render(&context).unwrap(), "1");
    /// ```
    pub fn from_json(value: &Value) -> LaxValue {
        match value {
            Value::Null => LaxValue::Nil,
            Value::Bool(flag) => LaxValue::Scalar(LiquidValue::scalar(*flag)),
            Value::Number(number) => match number.as_i64() {
                Some(integer) => LaxValue::Scalar(LiquidValue::scalar(integer)),
                None => LaxValue::Scalar(LiquidValue::scalar(number.as_f64().unwrap_or(0.0))),
            },
            Value::String(text) => LaxValue::Scalar(LiquidValue::scalar(text.clone())),
            Value::Array(items) => LaxValue::Array(items.iter().map(LaxValue::from_json).collect()),
            Value::Object(map) => {
                LaxValue::Object(map.iter().map(|(key, value)| (key.clone(), LaxValue::from_json(value))).collect())
            }
        }
    }
}

struct Text(&'static str);

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl ValueView for LaxValue {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }

    fn render(&self) -> DisplayCow<'_> {
        match self {
            LaxValue::Scalar(value) => value.render(),
            _ => DisplayCow::Owned(Box::new(Text(""))),
        }
    }

    fn source(&self) -> DisplayCow<'_> {
        match self {
            LaxValue::Scalar(value) => value.source(),
            LaxValue::Nil => DisplayCow::Owned(Box::new(Text("nil"))),
            LaxValue::Array(_) => DisplayCow::Owned(Box::new(Text("[...]"))),
            LaxValue::Object(_) => DisplayCow::Owned(Box::new(Text("{...}"))),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            LaxValue::Nil => "nil",
            LaxValue::Scalar(value) => value.type_name(),
            LaxValue::Array(_) => "array",
            LaxValue::Object(_) => "object",
        }
    }

    fn query_state(&self, state: State) -> bool {
        let empty = match self {
            LaxValue::Scalar(value) => return value.query_state(state),
            LaxValue::Nil => return !matches!(state, State::Truthy),
            LaxValue::Array(items) => items.is_empty(),
            LaxValue::Object(map) => map.is_empty(),
        };
        match state {
            State::Truthy => true,
            State::DefaultValue | State::Empty | State::Blank => empty,
        }
    }

    fn to_kstr(&self) -> KStringCow<'_> {
        match self {
            LaxValue::Scalar(value) => value.to_kstr(),
            _ => KStringCow::from_static(""),
        }
    }

    fn to_value(&self) -> LiquidValue {
        match self {
            LaxValue::Nil => LiquidValue::Nil,
            LaxValue::Scalar(value) => value.clone(),
            LaxValue::Array(items) => LiquidValue::Array(items.iter().map(ValueView::to_value).collect()),
            LaxValue::Object(map) => {
                LiquidValue::Object(map.iter().map(|(key, value)| (key.clone().into(), value.to_value())).collect())
            }
        }
    }

    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        match self {
            LaxValue::Scalar(value) => value.as_scalar(),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&dyn ArrayView> {
        matches!(self, LaxValue::Array(_)).then_some(self as &dyn ArrayView)
    }

    fn as_object(&self) -> Option<&dyn ObjectView> {
        // Nil reads as an empty object whose every key is nil, so a path through a missing
        // variable (`{{ nope.deeper }}`) renders empty instead of failing the render.
        matches!(self, LaxValue::Object(_) | LaxValue::Nil).then_some(self as &dyn ObjectView)
    }

    fn is_nil(&self) -> bool {
        matches!(self, LaxValue::Nil)
    }
}

impl LaxValue {
    fn items(&self) -> &[LaxValue] {
        match self {
            LaxValue::Array(items) => items,
            _ => &[],
        }
    }

    fn entries(&self) -> Option<&BTreeMap<String, LaxValue>> {
        match self {
            LaxValue::Object(map) => Some(map),
            _ => None,
        }
    }

    fn position(&self, index: i64) -> Option<usize> {
        let len = self.items().len() as i64;
        let position = if index < 0 { len + index } else { index };
        (0..len).contains(&position).then_some(position as usize)
    }
}

impl ArrayView for LaxValue {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        self.items().len() as i64
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.items().iter().map(|item| item as &dyn ValueView))
    }

    fn contains_key(&self, index: i64) -> bool {
        self.position(index).is_some()
    }

    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        let item = self.position(index).map_or(&NIL, |at| &self.items()[at]);
        Some(item)
    }
}

impl ObjectView for LaxValue {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        self.entries().map_or(0, BTreeMap::len) as i64
    }

    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        Box::new(self.entries().into_iter().flat_map(|map| map.keys().map(|key| KStringCow::from_ref(key))))
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.entries().into_iter().flat_map(|map| map.values().map(|value| value as &dyn ValueView)))
    }

    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(
            self.entries()
                .into_iter()
                .flat_map(|map| map.iter().map(|(key, value)| (KStringCow::from_ref(key), value as &dyn ValueView))),
        )
    }

    /// Every key "exists" (missing ones read as nil): Liquid asks the globals object
    /// `contains_key` before looking a root variable up, and errors when it says no.
    fn contains_key(&self, _index: &str) -> bool {
        self.entries().is_some()
    }

    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        match self.entries().and_then(|map| map.get(index)) {
            Some(value) => Some(value),
            // `size` must stay unresolved so Liquid's built-in `.size` applies.
            None if index == "size" => None,
            None => Some(&NIL),
        }
    }
}
