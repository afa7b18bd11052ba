//! Span types and quality schemas: declared in code or by hand, merged, and turned into the
//! registration's schema document.

pub(crate) mod data_risk;
pub(crate) mod document;
pub(crate) mod registry;
pub(crate) mod span_type;
pub(crate) mod static_schema;
