//! The bounded hand-over from the agent's threads to the worker: the operations and the
//! multi-producer queue that carries them.

pub(crate) mod op_queue;
pub(crate) mod operation;
