//! Threads that carry the current agent run: [`spawn`] is `std::thread::spawn` with the
//! caller's [`Context`], so `#[prefactor::span]` functions called on the new
//! thread are recorded under the span that spawned it.

use std::thread::JoinHandle;

use crate::capture::context::Context;

/// `std::thread::spawn` that carries the current context into the new thread.
///
/// ```
/// let handle = prefactor_runtime::thread::spawn(|| {
///     // Spans opened here nest under the caller's current span (none in this example).
///     prefactor_runtime::Context::with_current(|cx| cx.span_id().is_none())
/// });
/// assert!(handle.join().unwrap());
/// ```
pub fn spawn<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let cx = Context::current();
    std::thread::spawn(move || cx.in_scope(f))
}

/// [`spawn`] with a [`std::thread::Builder`] (a name, a stack size); errors as
/// [`Builder::spawn`](std::thread::Builder::spawn) does.
///
/// ```
/// let builder = std::thread::Builder::new().name("tool-runner".into());
/// let handle = prefactor_runtime::thread::spawn_with(builder, || 40 + 2).unwrap();
/// assert_eq!(handle.join().unwrap(), 42);
/// ```
pub fn spawn_with<F, R>(builder: std::thread::Builder, f: F) -> std::io::Result<JoinHandle<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let cx = Context::current();
    builder.spawn(move || cx.in_scope(f))
}
