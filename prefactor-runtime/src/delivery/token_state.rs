//! `TokenCheckState`: where the background token check stands, shared by the client (for
//! `check_connection` and the close report) and the worker (which holds operations until the
//! API answered).

use tokio::sync::watch;

use crate::report::error::Error;

/// Where the token check stands.
#[derive(Debug, Clone)]
pub(crate) enum TokenCheck {
    /// No answer yet: how many probes failed, and the last failure.
    Pending { failed_probes: u32, last_error: Option<Error> },
    /// The API accepted the token.
    Passed,
    /// The API answered with an error: a 401/403 (the client is latched), or another
    /// permanent error (the client sends anyway).
    Failed(Error),
}

impl TokenCheck {
    pub(crate) fn is_answered(&self) -> bool {
        !matches!(self, TokenCheck::Pending { .. })
    }
}

/// The token check's state, shared by the client (readers) and the probe loop (writer).
#[derive(Debug)]
pub(crate) struct TokenCheckState(watch::Sender<TokenCheck>);

impl Default for TokenCheckState {
    fn default() -> Self {
        TokenCheckState(watch::Sender::new(TokenCheck::Pending { failed_probes: 0, last_error: None }))
    }
}

impl TokenCheckState {
    /// The state now.
    pub(crate) fn current(&self) -> TokenCheck {
        self.0.borrow().clone()
    }

    /// What a probe found while the API has not answered (for the close report).
    pub(crate) fn unanswered_error(&self) -> Option<Error> {
        match &*self.0.borrow() {
            TokenCheck::Pending { last_error, .. } => last_error.clone(),
            _ => None,
        }
    }

    /// Probes that failed while the API has not answered (0 once it answered).
    pub(crate) fn failed_probes(&self) -> u32 {
        match &*self.0.borrow() {
            TokenCheck::Pending { failed_probes, .. } => *failed_probes,
            _ => 0,
        }
    }

    /// A receiver woken by every change of the state (each failed probe, the answer).
    pub(crate) fn subscribe(&self) -> watch::Receiver<TokenCheck> {
        self.0.subscribe()
    }

    pub(crate) fn set(&self, state: TokenCheck) {
        self.0.send_replace(state);
    }
}
