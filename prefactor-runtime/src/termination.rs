//! Per-instance termination latch, fed by `control` on span responses and by the poll.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

/// Terminated state of one agent instance: `None` while running, `Some(reason)` once the
/// platform asked it to stop. The first signal wins; later ones are ignored.
#[derive(Debug)]
pub(crate) struct Termination {
    state: watch::Sender<Option<Option<String>>>,
}

impl Default for Termination {
    fn default() -> Self {
        Termination { state: watch::Sender::new(None) }
    }
}

impl Termination {
    pub(crate) fn is_terminated(&self) -> bool {
        self.state.borrow().is_some()
    }

    pub(crate) fn reason(&self) -> Option<String> {
        self.state.borrow().clone().flatten()
    }

    /// Latches termination; returns true for the first signal only.
    pub(crate) fn mark(&self, reason: Option<String>) -> bool {
        self.state.send_if_modified(|state| {
            if state.is_some() {
                return false;
            }
            *state = Some(reason);
            true
        })
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

#[cfg(test)]
mod tests {
    use super::*;

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
