#[prefactor::span(schema = "agent:tool")]
fn show(value: impl std::fmt::Display) -> String {
    value.to_string()
}

#[prefactor::span(schema = "agent:tool")]
fn generic<T: Clone>(value: T) -> usize {
    let _ = value.clone();
    1
}

fn main() {}
