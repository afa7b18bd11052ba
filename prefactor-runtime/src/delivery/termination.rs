//! Per-instance termination latch, fed by `control` on span responses and by the poll.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::lock::lock;

/// A termination callback: runs once, with the platform's reason.
pub(crate) type Callback = Box<dyn FnOnce(Option<&str>) + Send>;

/// Terminated state of one agent instance: `None` while running, `Some(reason)` once the
/// platform asked it to stop. The first signal wins; later ones are ignored.
pub(crate) struct Termination {
    state: watch::Sender<Option<Option<String>>>,
    /// Callbacks waiting for the signal, by subscription number. The state changes only under
    /// this lock, so a callback is either registered before the signal (and run by `mark`) or
    /// sees the signal when it subscribes (and runs at once): never neither.
    callbacks: Mutex<Callbacks>,
}

#[derive(Default)]
struct Callbacks {
    next: u64,
    waiting: Vec<(u64, Callback)>,
}

impl Default for Termination {
    fn default() -> Self {
        Termination { state: watch::Sender::new(None), callbacks: Mutex::default() }
    }
}

impl fmt::Debug for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Termination")
            .field("state", &*self.state.borrow())
            .field("callbacks", &lock(&self.callbacks).waiting.len())
            .finish()
    }
}

impl Termination {
    pub(crate) fn is_terminated(&self) -> bool {
        self.state.borrow().is_some()
    }

    pub(crate) fn reason(&self) -> Option<String> {
        self.state.borrow().clone().flatten()
    }

    /// Latches termination and runs the callbacks (on this thread, in subscription order);
    /// returns true for the first signal only.
    pub(crate) fn mark(&self, reason: Option<String>) -> bool {
        let waiting = {
            let mut callbacks = lock(&self.callbacks);
            let first = self.state.send_if_modified(|state| {
                if state.is_some() {
                    return false;
                }
                *state = Some(reason.clone());
                true
            });
            if !first {
                return false;
            }
            std::mem::take(&mut callbacks.waiting)
        };
        for (_, callback) in waiting {
            run_callback(callback, reason.as_deref());
        }
        true
    }

    /// Registers `callback`, or runs it at once when already terminated (then returns `None`).
    pub(crate) fn subscribe(&self, callback: Callback) -> Option<u64> {
        let mut callbacks = lock(&self.callbacks);
        if self.is_terminated() {
            drop(callbacks);
            run_callback(callback, self.reason().as_deref());
            return None;
        }
        let number = callbacks.next;
        callbacks.next += 1;
        callbacks.waiting.push((number, callback));
        Some(number)
    }

    /// Removes a callback not run yet; returns whether it was still waiting.
    pub(crate) fn unsubscribe(&self, number: u64) -> bool {
        let mut callbacks = lock(&self.callbacks);
        let before = callbacks.waiting.len();
        callbacks.waiting.retain(|(n, _)| *n != number);
        callbacks.waiting.len() != before
    }

    /// Resolves with the reason once terminated. `owner` keeps the sender alive.
    pub(crate) fn wait<T: Send + Sync + 'static>(
        &self,
        owner: Arc<T>,
    ) -> impl Future<Output = Option<String>> + Send + 'static {
        let mut receiver = self.state.subscribe();
        async move {
            let _owner = owner;
            let outcome = receiver.wait_for(Option::is_some).await.map(|state| state.clone().flatten());
            match outcome {
                Ok(reason) => reason,
                // Unreachable while `owner` holds the sender; stay pending rather than lie.
                Err(_) => std::future::pending().await,
            }
        }
    }
}

/// Runs a user callback; a panic in it is logged, never propagated into the worker.
fn run_callback(callback: Callback, reason: Option<&str>) {
    if catch_unwind(AssertUnwindSafe(|| callback(reason))).is_err() {
        tracing::error!("prefactor: a termination callback panicked (the panic was caught)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn callbacks_run_once_in_order_and_survive_a_panicking_one() {
        let termination = Termination::default();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let record = |tag: &'static str| {
            let calls = calls.clone();
            Box::new(move |reason: Option<&str>| lock(&calls).push(format!("{tag}:{}", reason.unwrap_or("-"))))
                as Callback
        };
        assert_eq!(termination.subscribe(record("a")), Some(0));
        termination.subscribe(Box::new(|_| panic!("a faulty callback")));
        let removed = termination.subscribe(record("removed")).unwrap();
        termination.subscribe(record("b"));
        assert!(termination.unsubscribe(removed));
        assert!(!termination.unsubscribe(removed), "only once");
        assert!(termination.mark(Some("budget".into())));
        assert!(!termination.mark(Some("again".into())));
        assert_eq!(*lock(&calls), ["a:budget", "b:budget"]);
        // After the signal a new callback runs at once, on the subscribing thread.
        assert_eq!(termination.subscribe(record("late")), None);
        assert_eq!(lock(&calls).last().map(String::as_str), Some("late:budget"));
    }

    #[test]
    fn a_callback_subscribed_while_another_thread_terminates_runs_exactly_once() {
        for _ in 0..200 {
            let termination = Arc::new(Termination::default());
            let runs = Arc::new(AtomicUsize::new(0));
            let marker = {
                let termination = termination.clone();
                std::thread::spawn(move || termination.mark(None))
            };
            let counted = runs.clone();
            termination.subscribe(Box::new(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            }));
            assert!(marker.join().unwrap());
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn the_first_signal_wins_and_wakes_waiters() {
        let owner = Arc::new(Termination::default());
        let waiter = owner.wait(owner.clone());
        assert!(!owner.is_terminated());
        assert!(owner.mark(Some("first".into())));
        assert!(!owner.mark(Some("second".into())), "a second signal is ignored");
        assert_eq!(owner.reason().as_deref(), Some("first"));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(runtime.block_on(waiter).as_deref(), Some("first"));
        // A waiter created after the fact resolves at once.
        assert_eq!(runtime.block_on(owner.wait(owner.clone())).as_deref(), Some("first"));
    }

    #[test]
    fn termination_without_a_reason() {
        let state = Termination::default();
        assert!(state.mark(None));
        assert!(state.is_terminated());
        assert_eq!(state.reason(), None);
    }
}
