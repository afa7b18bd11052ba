//! An agent run as the span benches measure it: the global client installed, its worker
//! delivering to a local server on 127.0.0.1, an agent instance started. Each bench includes
//! it with `#[path = "support/agent_run.rs"] mod agent_run;` and enters
//! `run.instance.context()` on the thread it measures.

use prefactor::{AgentInstanceHandle, Client, Config, CreateInstance, InitGuard};
use prefactor_server::{DbLocation, LocalServer, ServerConfig};

/// The server, the installed client and the started run; [`AgentRun::end`] closes them.
pub struct AgentRun {
    pub server: LocalServer,
    pub guard: InitGuard,
    pub instance: AgentInstanceHandle,
}

impl AgentRun {
    /// Starts the server (temporary database, no request log), installs the client, starts
    /// the run.
    pub fn start() -> AgentRun {
        let server = LocalServer::start(ServerConfig::default().with_db(DbLocation::Temp).with_record_capacity(0))
            .expect("local server starts");
        let config =
            Config::builder().api_url(server.base_url()).api_token(server.token()).build().expect("valid config");
        let guard = prefactor::init_blocking(config).expect("client initializes");
        let instance = guard.client().create_agent_instance(CreateInstance::default()).expect("instance created");
        instance.start();
        AgentRun { server, guard, instance }
    }

    /// The installed client.
    pub fn client(&self) -> &Client {
        self.guard.client()
    }

    /// Closes the client (flushing what is queued) and stops the server.
    pub fn end(self) {
        drop(self.guard);
        self.server.shutdown();
    }
}
