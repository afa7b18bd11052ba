use std::pin::Pin;

#[derive(Default, serde::Serialize)]
struct Total {
    sum: u32,
}

fn add(total: &mut Total, item: &u32) {
    total.sum += item;
}

// `reduce` on a function that returns no stream.
#[prefactor::span(schema = "agent:tool", reduce = add)]
fn not_a_stream() -> u32 {
    1
}

// On an `async fn` the span covers the future, not a stream it returns.
#[prefactor::span(schema = "agent:tool", reduce = add)]
async fn async_stream() -> Vec<u32> {
    Vec::new()
}

// `skip_ret` and `reduce` contradict each other.
#[prefactor::span(schema = "agent:llm", skip_ret, reduce = add)]
fn both() -> Pin<Box<dyn futures_core::Stream<Item = u32>>> {
    unimplemented!()
}

// `reduce` needs a path, not a closure.
#[prefactor::span(schema = "agent:llm", reduce = |total: &mut Total, n: &u32| total.sum += n)]
fn closure() -> Pin<Box<dyn futures_core::Stream<Item = u32>>> {
    unimplemented!()
}

fn main() {}
