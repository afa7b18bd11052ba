#[derive(Debug)]
pub struct Oops;

struct Failing;

impl futures_core::Stream for Failing {
    type Item = Result<u8, Oops>;
    fn poll_next(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(Some(Err(Oops)))
    }
}

// The first `Err` item fails the span with its `Display` text: `Oops` has none.
#[prefactor::span(schema = "agent:llm")]
fn failing() -> impl futures_core::Stream<Item = Result<u8, Oops>> {
    Failing
}

fn main() {}
