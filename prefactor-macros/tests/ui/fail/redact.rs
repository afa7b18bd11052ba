#[prefactor::span(schema = "agent:llm", redact(api_kye, "mesages[*].content", "messages[*.content", "messages..role", "[0]", api_key, api_key))]
fn call(messages: Vec<String>, api_key: String) -> usize {
    messages.len() + api_key.len()
}

#[prefactor::span(schema = "agent:llm", skip(token), redact(token), fields(model = "m"))]
fn skipped(token: String, prompt: String) -> usize {
    token.len() + prompt.len()
}

#[prefactor::span(schema = "agent:llm", fields(model = "m"), redact("model.name"))]
fn field(prompt: String) -> usize {
    prompt.len()
}

#[prefactor::span(schema = "agent:llm", redact = "prompt")]
fn shape(prompt: String) -> usize {
    prompt.len()
}

#[prefactor::span(schema = "agent:llm", redact(prompt[0]))]
fn not_a_path(prompt: Vec<String>) -> usize {
    prompt.len()
}

fn main() {}
