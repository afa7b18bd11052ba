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
