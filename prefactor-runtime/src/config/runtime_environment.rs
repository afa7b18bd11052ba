//! `agent_version.runtime_environment` of the runs a client registers: the Prefactor SDK
//! packages (integrations first, this crate last, as in `X-Prefactor-SDK`), the agent
//! frameworks the user named, the OS and the compiler, as prefactor-core 0.5.3 sends them.

use prefactor_protocol::RuntimeEnvironment;

use super::Config;

/// The language runtime of this build, `rustc@VERSION` (the compiler's version, recorded at
/// build time by `build.rs`; `rustc` alone when it could not be read).
///
/// ```
/// assert!(prefactor_runtime::RUNTIME.starts_with("rustc"));
/// ```
pub const RUNTIME: &str = runtime();

const fn runtime() -> &'static str {
    const VERSIONED: &str = concat!("rustc@", env!("PREFACTOR_RUSTC_VERSION"));
    if env!("PREFACTOR_RUSTC_VERSION").is_empty() { "rustc" } else { VERSIONED }
}

impl Config {
    /// The `runtime_environment` sent with every register (in `agent_version`) unless the
    /// instance's [`AgentVersion`](crate::AgentVersion) sets its own.
    ///
    /// ```
    /// use prefactor_runtime::{Config, RUNTIME, SDK_HEADER_ENTRY};
    ///
    /// let config = Config::builder()
    ///     .api_url("http://127.0.0.1:8080")
    ///     .api_token("t")
    ///     .sdk_header_entry("my-adapter@1.2.0")
    ///     .build()
    ///     .unwrap();
    /// let environment = config.runtime_environment();
    /// assert_eq!(environment.prefactor_sdk, ["my-adapter@1.2.0", SDK_HEADER_ENTRY]);
    /// assert_eq!(environment.os.as_deref(), Some(std::env::consts::OS));
    /// assert_eq!(environment.runtime.as_deref(), Some(RUNTIME));
    /// assert!(environment.agent_sdk.is_empty());
    /// ```
    pub fn runtime_environment(&self) -> RuntimeEnvironment {
        RuntimeEnvironment {
            agent_sdk: self.agent_sdk_entries.clone(),
            os: Some(std::env::consts::OS.to_owned()),
            prefactor_sdk: self.sdk_entries().into_iter().map(str::to_owned).collect(),
            runtime: Some(RUNTIME.to_owned()),
        }
    }
}
