//! With no client installed, annotated functions behave exactly like plain ones and the SDK
//! logs a single warning, however many calls are made.
#![deny(clippy::pedantic)]

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[prefactor::span(schema = "quiet:add")]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[prefactor::span(schema = "quiet:parse")]
fn parse(text: &str) -> Result<u8, std::num::ParseIntError> {
    text.parse()
}

#[prefactor::span(schema = "quiet:async")]
async fn double(n: u64) -> u64 {
    tokio::task::yield_now().await;
    n * 2
}

#[prefactor::agent]
fn agent(n: i64) -> i64 {
    assert!(prefactor::current_instance().is_none(), "no instance without a client");
    add(n, n)
}

#[test]
fn annotated_functions_run_unchanged_and_warn_once() {
    let output = Captured::default();
    let writer = output.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(subscriber, || {
        assert!(prefactor::__private::global_client().is_none());
        for i in 0..100 {
            assert_eq!(add(i, 1), i + 1);
        }
        assert_eq!(parse("7"), Ok(7));
        assert!(parse("x").is_err(), "errors are returned unchanged");
        assert_eq!(agent(2), 4);
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        assert_eq!(runtime.block_on(double(21)), 42);
    });
    let logs = String::from_utf8(output.0.lock().expect("not poisoned").clone()).expect("utf-8 logs");
    assert_eq!(logs.matches("no client installed").count(), 1, "exactly one warning:\n{logs}");
}
