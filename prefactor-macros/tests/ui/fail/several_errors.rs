#[prefactor::span(schema = "agent", titel = "Call", skip(nope))]
fn call(prompt: String) -> String {
    prompt
}

fn main() {
    // The function is still usable as written: no follow-on errors here.
    let _ = call(String::new());
}
