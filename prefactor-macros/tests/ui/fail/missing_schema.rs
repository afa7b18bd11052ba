#[prefactor::span(title = "LLM call")]
fn call(prompt: String) -> String {
    prompt
}

#[prefactor::span]
fn bare() {}

fn main() {}
