//! What came of it: the counters, the close report, the error type, unattached spans.

pub(crate) mod close_report;
pub(crate) mod error;
pub(crate) mod stats;
pub(crate) mod unattached;
