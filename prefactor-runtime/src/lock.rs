//! Locking a mutex whatever its poison state.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`. A panic while holding one of the runtime's short critical sections cannot
/// leave the data inconsistent, so a poisoned lock is still usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
