#[prefactor::span(schema = "agent:llm", skip(promt, prompt, prompt, self))]
fn call(prompt: String, model: String) -> String {
    format!("{prompt}{model}")
}

#[prefactor::span(schema = "agent:llm", skip_all, skip(prompt))]
fn both(prompt: String) -> String {
    prompt
}

fn main() {}
