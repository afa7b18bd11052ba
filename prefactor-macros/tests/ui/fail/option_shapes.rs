#[prefactor::span(schema = 5, skip_ret = true, skip = prompt, err(Pretty), fields(a))]
fn call(prompt: String) -> String {
    prompt
}

fn main() {}
