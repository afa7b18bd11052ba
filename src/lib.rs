//! Observe and control AI agents with [Prefactor](https://prefactorai.com): annotate functions,
//! get typed, schema-checked spans shipped to the Prefactor API without blocking your agent.
//!
//! * [`macro@agent`] runs a function as an *agent instance* (registered, started, finished as
//!   `complete`, `failed` or `cancelled`).
//! * [`macro@span`] records a call as a *span* of the current instance: the arguments become
//!   the payload, the return value the result payload, and `Err`/panic/drop the status.
//! * [`macro@Payload`] gives a type a documented JSON schema.
//!
//! Every span's schemas are derived from the Rust types at compile time and registered with the
//! client when it starts, so the platform validates what your agent sends.
//!
//! ```no_run
//! use prefactor::{Config, agent, span};
//!
//! #[span(schema = "agent:llm", title = "LLM call", template = "{{ prompt }}")]
//! fn complete(prompt: &str, temperature: f32) -> String {
//!     format!("echo: {prompt} at {temperature}")
//! }
//!
//! #[agent(name = "echo-bot")]
//! fn run(question: &str) -> String {
//!     complete(question, 0.2)
//! }
//!
//! fn main() -> Result<(), prefactor::Error> {
//!     let config = Config::from_env()?.build()?;
//!     // Returns at once, API up or down; flushes and closes on drop.
//!     let _guard = prefactor::init_blocking(config)?;
//!     println!("{}", run("hello"));
//!     Ok(())
//! }
//! ```
//!
//! Without an installed client, annotated functions simply run (one atomic load of extra
//! work) and a single warning is logged.

pub use prefactor_macros::{Payload, agent, span};
pub use prefactor_runtime::*;
pub use schemars;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
