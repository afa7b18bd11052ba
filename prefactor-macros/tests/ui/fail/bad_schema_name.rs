#[prefactor::span(schema = "LLM")]
fn no_namespace() {}

#[prefactor::span(schema = "agent:Call Model")]
fn bad_characters() {}

#[prefactor::span(schema = "agent:")]
fn empty_segment() {}

fn main() {}
