//! The token check (`GET /api/v1/ping`), run in the background from the moment the client is
//! initialized, so that starting never waits on the network.
//!
//! Until the API answers it, the worker holds every operation (they queue, bounded by
//! `queue_capacity`) instead of sending requests that cannot succeed: an unreachable API at
//! startup is a transient state, probed with backoff until it answers. A definite 401/403
//! latches the client (nothing is ever sent with that token); any other answer opens the way
//! (the operations' own answers then tell their story).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::delivery::retry::retry_delay;
use crate::delivery::shared::Shared;
use crate::delivery::token_state::TokenCheck;
use crate::delivery::transport::{Attempt, Transport};
use crate::report::error::Error;

/// The longest pause between two probes of an unreachable API: short enough that telemetry
/// held at startup flows within seconds of the API coming back, long enough to cost nothing.
const MAX_PROBE_DELAY: Duration = Duration::from_secs(5);

/// Probes `GET /ping` until the API answers (backoff from the config's retry delays, at most
/// [`MAX_PROBE_DELAY`] apart), records the outcome, and latches the client on a 401/403.
pub(crate) async fn run(transport: Arc<Transport>, shared: Arc<Shared>) {
    let mut attempt: u32 = 0;
    loop {
        match transport.get("token validation", "/ping").await {
            Attempt::Done(_) | Attempt::AlreadyDone => {
                if attempt > 0 {
                    tracing::info!(probes = attempt + 1, "prefactor: the API answered; sending queued telemetry");
                }
                shared.token_check.set(TokenCheck::Passed);
                return;
            }
            Attempt::Auth(error) => {
                shared.latch(error.clone());
                shared.token_check.set(TokenCheck::Failed(error));
                return;
            }
            Attempt::Permanent(error) => {
                tracing::warn!(error = %error, "prefactor: the token check failed; sending telemetry anyway");
                shared.token_check.set(TokenCheck::Failed(error));
                return;
            }
            Attempt::Transient { retry_after, error } => {
                probe_failed(&shared, attempt, retry_after, error).await;
                attempt = attempt.saturating_add(1);
            }
            // A ping changes nothing on the server: an unseen answer is just no answer yet.
            Attempt::Unseen(error) => {
                probe_failed(&shared, attempt, None, error).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Records a failed probe (warning on the first) and waits before the next one.
async fn probe_failed(shared: &Shared, attempt: u32, retry_after: Option<Duration>, error: Error) {
    if attempt == 0 {
        tracing::warn!(
            error = %error,
            "prefactor: the API is not reachable yet; telemetry is queued until it answers"
        );
    }
    let delay = retry_delay(&shared.config, attempt, retry_after).min(MAX_PROBE_DELAY);
    let failed_probes = attempt.saturating_add(1);
    shared.token_check.set(TokenCheck::Pending { failed_probes, last_error: Some(error) });
    tokio::time::sleep(delay).await;
}

/// Answers `reply` with the check's outcome once the API answered, or with
/// [`Error::ApiUnreachable`] at `deadline`.
pub(crate) async fn answer_when_known(
    shared: Arc<Shared>,
    waited: Duration,
    deadline: Instant,
    reply: oneshot::Sender<Result<(), Error>>,
) {
    let mut states = shared.token_check.subscribe();
    let answered = tokio::time::timeout_at(deadline, states.wait_for(TokenCheck::is_answered)).await;
    let outcome = match answered {
        Ok(Ok(state)) => outcome_of(&state),
        // The sender lives in `Shared`, which this task holds: it cannot be gone.
        Ok(Err(_)) | Err(_) => outcome_of(&shared.token_check.current()),
    };
    let outcome = outcome.unwrap_or_else(|last_error| Err(unreachable(waited, last_error)));
    let _ = reply.send(outcome);
}

/// The caller's answer for an answered check, or the last transient error while pending.
pub(crate) fn outcome_of(state: &TokenCheck) -> Result<Result<(), Error>, Option<Error>> {
    match state {
        TokenCheck::Passed => Ok(Ok(())),
        TokenCheck::Failed(error) => Ok(Err(error.clone())),
        TokenCheck::Pending { last_error, .. } => Err(last_error.clone()),
    }
}

pub(crate) fn unreachable(waited: Duration, last_error: Option<Error>) -> Error {
    Error::ApiUnreachable { waited, last_error: last_error.map(Box::new) }
}
