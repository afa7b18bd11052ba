#[derive(serde::Serialize, prefactor::Payload)]
#[payload(title = "Query", summary = "no such option")]
struct Query {
    text: String,
}

fn main() {}
