#[prefactor::span(schema = "agent:llm")]
struct Prompt {
    text: String,
}

#[prefactor::agent]
const LIMIT: u32 = 3;

fn main() {
    let _ = Prompt { text: String::new() }.text;
    let _ = LIMIT;
}
