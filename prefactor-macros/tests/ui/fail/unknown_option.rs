#[prefactor::span(schema = "agent:llm", skp(prompt))]
fn call(prompt: String) -> String {
    prompt
}

fn main() {}
