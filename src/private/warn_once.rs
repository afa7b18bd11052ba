//! Warnings logged at most once per process (e.g. "no client installed").

use std::sync::atomic::{AtomicBool, Ordering};

/// A flag that lets exactly one caller through.
pub(crate) struct Once(AtomicBool);

impl Once {
    pub(crate) const fn new() -> Once {
        Once(AtomicBool::new(false))
    }

    /// `true` the first time only. The relaxed load keeps the already-warned path to one
    /// uncontended atomic read.
    #[inline]
    pub(crate) fn first(&self) -> bool {
        !self.0.load(Ordering::Relaxed) && !self.0.swap(true, Ordering::Relaxed)
    }
}
