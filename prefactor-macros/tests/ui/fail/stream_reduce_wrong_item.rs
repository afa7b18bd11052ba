#[derive(Default, serde::Serialize)]
struct Total {
    sum: usize,
}

fn add_text(total: &mut Total, item: &String) {
    total.sum += item.len();
}

// The reducer takes `String` items; the stream yields `u32`.
#[prefactor::span(schema = "agent:llm", reduce = add_text)]
fn numbers() -> impl futures_core::Stream<Item = u32> {
    Numbers
}

struct Numbers;

impl futures_core::Stream for Numbers {
    type Item = u32;
    fn poll_next(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<u32>> {
        std::task::Poll::Ready(None)
    }
}

fn main() {}
