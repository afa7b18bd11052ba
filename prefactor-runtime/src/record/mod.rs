//! The parts of a span as the queue carries them: ids, timestamps (and their clock), payloads,
//! schema names.

pub(crate) mod clock;
pub(crate) mod ids;
pub(crate) mod payload;
pub(crate) mod schema_name;
pub(crate) mod timestamp;
