//! Every supported stream shape compiles without a single warning.
#![deny(warnings)]

use std::pin::Pin;
use std::task::{Context, Poll};

/// What a reply's chunks add up to.
#[derive(Default, serde::Serialize)]
pub struct Reply {
    text: String,
}

fn add(reply: &mut Reply, chunk: &String) {
    reply.text.push_str(chunk);
}

/// A stream of one item.
pub struct Once<T>(Option<T>);

impl<T: Unpin> futures_core::Stream for Once<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<T>> {
        Poll::Ready(self.0.take())
    }
}

#[prefactor::span(schema = "agent:llm", reduce = add)]
fn plain(prompt: &str) -> impl futures_core::Stream<Item = String> + use<> {
    Once(Some(prompt.to_owned()))
}

#[prefactor::span(schema = "agent:llm", reduce = add, err(Debug))]
fn fallible(prompt: String) -> impl futures_core::Stream<Item = Result<String, std::io::Error>> + Send {
    Once(Some(Ok(prompt)))
}

#[prefactor::span(schema = "agent:llm")]
fn boxed<'a>(prompt: &'a str) -> Pin<Box<dyn futures_core::Stream<Item = &'a str> + Send + 'a>> {
    Box::pin(Once(Some(prompt)))
}

struct Model;

impl Model {
    #[prefactor::span(schema = "agent:llm", skip(self))]
    fn method(&self, n: u32) -> impl futures_core::Stream<Item = Result<u32, String>> + '_ {
        let _ = self;
        Once(Some(Ok(n)))
    }
}

fn main() {
    let _ = (plain("a"), fallible("b".to_owned()), boxed("c"), Model.method(1));
}
