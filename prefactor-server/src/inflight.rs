//! The budget of request bodies in flight: the bytes of all bodies being read or handled at
//! once, across connections.
//!
//! Why: each body is bounded by the body limit, but a few hundred connections each sending a
//! body just under it would still buffer gigabytes. Every request takes its share (its
//! declared `Content-Length`, or the whole body limit when it declares none) before its body
//! is read and gives it back when its answer is ready; a request that cannot get its share
//! within [`BodyBudget::new`]'s wait is answered 503 with `Retry-After`, so memory stays
//! bounded and clients back off instead of piling up. One HTTP/1 connection handles one
//! request at a time, so a connection never holds more than one body.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes are counted in units of this many (a semaphore counts in `u32`).
const UNIT: usize = 1024;

/// The shared budget.
#[derive(Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
}

/// A request's share of the budget, returned when dropped.
pub struct BodyShare {
    _permit: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    /// A budget of `total_bytes` (at least one unit) for which a request waits up to `wait`.
    pub fn new(total_bytes: usize, wait: Duration) -> BodyBudget {
        let total_units =
            u32::try_from(total_bytes.div_ceil(UNIT)).unwrap_or(u32::MAX).clamp(1, Semaphore::MAX_PERMITS as u32);
        BodyBudget { permits: Arc::new(Semaphore::new(total_units as usize)), total_units, wait }
    }

    /// Takes the share of a body of `bytes` (capped at the whole budget); `None` when it
    /// was not free within the wait.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use prefactor_server::inflight::BodyBudget;
    /// let budget = BodyBudget::new(4096, Duration::from_millis(10));
    /// let first = budget.share(4096).await.expect("free");
    /// assert!(budget.share(1).await.is_none(), "all taken");
    /// drop(first);
    /// assert!(budget.share(1).await.is_some());
    /// # });
    /// ```
    pub async fn share(&self, bytes: usize) -> Option<BodyShare> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX).min(self.total_units);
        if units == 0 {
            return Some(BodyShare { _permit: None });
        }
        let acquire = self.permits.clone().acquire_many_owned(units);
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permit)) => Some(BodyShare { _permit: Some(permit) }),
            _ => None,
        }
    }
}
