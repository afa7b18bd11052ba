#[prefactor::span(schema = "agent:llm", title = "One", title = "Two", schema = "agent:other")]
fn call(prompt: String) -> String {
    prompt
}

fn main() {}
