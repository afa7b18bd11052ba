//! `redact(...)` on sync and async functions, with whole arguments and paths of every step kind.
#![deny(warnings)]

#[derive(serde::Serialize)]
struct Message {
    role: String,
    content: String,
}

#[prefactor::span(schema = "agent:llm", redact(api_key, "messages[*].content", "headers[\"x-api-key\"]", "history[0]"))]
fn call(
    messages: &[Message],
    headers: &std::collections::BTreeMap<String, String>,
    history: Vec<String>,
    api_key: &str,
) -> usize {
    messages.len() + headers.len() + history.len() + api_key.len()
}

#[prefactor::span(schema = "agent:llm", redact(r#type))]
async fn raw_name(r#type: String) -> usize {
    r#type.len()
}

fn main() {
    let messages = [Message { role: "user".into(), content: "hi".into() }];
    let _ = call(&messages, &Default::default(), vec![], "k");
    let _ = raw_name(String::new());
    let _ = &messages[0].role;
}
