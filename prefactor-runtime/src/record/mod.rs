//! The parts of a span as the queue carries them: ids, timestamps (and their clock), payloads,
//! schema names; and what is done to payloads before they leave the process: redaction,
//! scrubbing, size limits, `Secret` and `Sensitive` values.

pub(crate) mod clock;
pub(crate) mod ids;
pub(crate) mod payload;
pub(crate) mod redaction;
pub(crate) mod sample_decision;
pub(crate) mod schema_name;
pub(crate) mod scrub;
pub(crate) mod secret;
pub(crate) mod secret_prefilter;
pub(crate) mod sensitive;
pub(crate) mod timestamp;
pub(crate) mod truncate;
