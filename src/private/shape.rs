//! Finds out whether a value serializes to a JSON object without serializing it: a serializer
//! that stops at the first call and reports which shape it was asked to produce.

use serde::ser::{Impossible, Serialize, Serializer};
use std::fmt;

/// The top-level JSON shape of a serialized value (the probe's "error" type stops serde early).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Object,
    Other,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Shape {}

impl serde::ser::Error for Shape {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Shape::Other
    }
}

/// `true` when `serde_json` would write `value` as a JSON object.
pub(crate) fn serializes_to_object<T: Serialize + ?Sized>(value: &T) -> bool {
    matches!(value.serialize(ShapeProbe), Err(Shape::Object))
}

struct ShapeProbe;

macro_rules! other {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<(), Shape> { Err(Shape::Other) })*
    };
}

impl Serializer for ShapeProbe {
    type Ok = ();
    type Error = Shape;
    type SerializeSeq = Impossible<(), Shape>;
    type SerializeTuple = Impossible<(), Shape>;
    type SerializeTupleStruct = Impossible<(), Shape>;
    type SerializeTupleVariant = Impossible<(), Shape>;
    type SerializeMap = Impossible<(), Shape>;
    type SerializeStruct = Impossible<(), Shape>;
    type SerializeStructVariant = Impossible<(), Shape>;

    other! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32); serialize_i64(i64);
        serialize_i128(i128); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32); serialize_u64(u64);
        serialize_u128(u128); serialize_f32(f32); serialize_f64(f64); serialize_char(char); serialize_str(&str);
        serialize_bytes(&[u8]); serialize_none(); serialize_unit(); serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Shape> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Shape> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Shape> {
        Err(Shape::Object)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Shape> {
        Err(Shape::Other)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Shape> {
        Err(Shape::Other)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Shape> {
        Err(Shape::Other)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Shape> {
        Err(Shape::Object)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Shape> {
        Err(Shape::Object)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Shape> {
        Err(Shape::Object)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Shape> {
        Err(Shape::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::serializes_to_object;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Point {
        x: i32,
    }

    #[derive(serde::Serialize)]
    enum Choice {
        Unit,
        Wrapped(u8),
    }

    #[test]
    fn agrees_with_serde_json_on_every_shape() {
        let cases: Vec<(bool, serde_json::Value)> = vec![
            (serializes_to_object(&Point { x: 1 }), json!(Point { x: 1 })),
            (serializes_to_object(&Some(Point { x: 1 })), json!(Some(Point { x: 1 }))),
            (serializes_to_object(&None::<Point>), json!(None::<Point>)),
            (serializes_to_object(&BTreeMap::from([("a", 1)])), json!(BTreeMap::from([("a", 1)]))),
            (serializes_to_object(&Choice::Unit), json!(Choice::Unit)),
            (serializes_to_object(&Choice::Wrapped(1)), json!(Choice::Wrapped(1))),
            (serializes_to_object("text"), json!("text")),
            (serializes_to_object(&[1, 2]), json!([1, 2])),
            (serializes_to_object(&json!({"k": 1})), json!({"k": 1})),
        ];
        for (probe, value) in cases {
            assert_eq!(probe, value.is_object(), "{value}");
        }
    }
}
