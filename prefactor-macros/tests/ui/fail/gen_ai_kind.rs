#[prefactor::span(schema = "agent:a", kind = "chta")]
fn misspelled() {}

#[prefactor::span(schema = "agent:b", kind = "retrieval")]
fn not_an_operation() {}

#[prefactor::span(schema = "agent:c", kind = chat)]
fn not_a_string() {}

fn main() {}
