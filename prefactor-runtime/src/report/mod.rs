//! What came of it: the counters, the close report, the error type, unattached spans, and the
//! runs a capturing client recorded (with their text tree).

pub(crate) mod captured_run;
pub(crate) mod close_report;
pub(crate) mod error;
pub(crate) mod stats;
pub(crate) mod trace_tree;
pub(crate) mod unattached;
