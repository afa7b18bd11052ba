//! Warnings logged at most once per process (e.g. "no client installed").

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first annotated call made without an installed client (spans and agents alike).
static NO_CLIENT: Once = Once::new();

/// Logs the "no client installed" warning once per process. The already-warned check is
/// inlined (one relaxed load); only the first call reaches the cold logging path.
#[inline]
pub(crate) fn warn_no_client(function: &'static str) {
    if !NO_CLIENT.done() {
        log_no_client(function);
    }
}

#[cold]
#[inline(never)]
fn log_no_client(function: &'static str) {
    if NO_CLIENT.first() {
        tracing::warn!(
            function,
            "prefactor: no client installed (call `prefactor::init` first); annotated functions run unrecorded"
        );
    }
}

/// A flag that lets exactly one caller through.
pub(crate) struct Once(AtomicBool);

impl Once {
    pub(crate) const fn new() -> Once {
        Once(AtomicBool::new(false))
    }

    /// Whether some caller already went through.
    #[inline]
    pub(crate) fn done(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `true` the first time only. The relaxed load keeps the already-warned path to one
    /// uncontended atomic read.
    #[inline]
    pub(crate) fn first(&self) -> bool {
        !self.0.load(Ordering::Relaxed) && !self.0.swap(true, Ordering::Relaxed)
    }
}
