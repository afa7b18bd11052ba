// Shared by several examples, each of which uses only part of it.
#![allow(dead_code)]

//! Where an example sends its data: the Prefactor API named by `PREFACTOR_API_URL` /
//! `PREFACTOR_API_TOKEN`, or else the local server, started in-process on a SQLite file.

use std::path::PathBuf;

use prefactor::{Config, ConfigBuilder};
use prefactor_server::{DbLocation, LocalServer, ServerConfig};

use super::recorded_run::{FetchError, RecordedRun};

/// The API an example talks to, and the embedded server when there is one.
pub struct Backend {
    /// Base URL of the API.
    pub api_url: String,
    /// Bearer token.
    pub api_token: String,
    /// The in-process server, kept alive as long as the backend.
    pub server: Option<LocalServer>,
    /// The embedded server's database file.
    pub db_path: Option<PathBuf>,
}

impl Backend {
    /// The API from the environment, or an embedded server on `db_file` (in the system's temporary
    /// directory, recreated on each run).
    pub fn from_env_or_embedded(db_file: &str) -> Result<Backend, Box<dyn std::error::Error>> {
        if let (Ok(api_url), Ok(api_token)) = (std::env::var("PREFACTOR_API_URL"), std::env::var("PREFACTOR_API_TOKEN"))
        {
            return Ok(Backend { api_url, api_token, server: None, db_path: None });
        }
        // A test may run while the same example runs elsewhere on the machine (another checkout,
        // a `cargo run`): each test process gets its own file, removed again on drop.
        let db_file = if cfg!(test) { format!("{}-{db_file}", std::process::id()) } else { db_file.to_owned() };
        let db_path = std::env::temp_dir().join(db_file);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
        }
        let server = LocalServer::start(ServerConfig::default().with_db(DbLocation::Path(db_path.clone())))?;
        Ok(Backend {
            api_url: server.base_url().to_owned(),
            api_token: server.token().to_owned(),
            server: Some(server),
            db_path: Some(db_path),
        })
    }

    /// A client configuration for this backend: the environment's settings, pointed at it.
    pub fn config(&self) -> Result<ConfigBuilder, prefactor::Error> {
        Ok(Config::from_env()?.api_url(&self.api_url).api_token(&self.api_token))
    }

    /// Reads run `run_id` back with blocking HTTP (from async code: [`Backend::fetch_run_async`]).
    pub fn fetch_run(&self, run_id: &impl ToString) -> Result<RecordedRun, FetchError> {
        RecordedRun::fetch(&self.api_url, &self.api_token, &run_id.to_string())
    }

    /// Reads run `run_id` back without blocking the async runtime.
    pub async fn fetch_run_async(&self, run_id: &impl ToString) -> Result<RecordedRun, Box<dyn std::error::Error>> {
        let (url, token, id) = (self.api_url.clone(), self.api_token.clone(), run_id.to_string());
        let run = tokio::task::spawn_blocking(move || RecordedRun::fetch(&url, &token, &id)).await?;
        Ok(run.map_err(|error| error.to_string())?)
    }

    /// Prints the run as a tree, then where it is stored.
    pub fn print_trace(&self, run: &RecordedRun) {
        print!("{}", run.render());
        println!();
        println!("{}", self.location(&run.instance.id));
    }

    /// One line saying where run `run_id` went.
    pub fn location(&self, run_id: &str) -> String {
        match &self.db_path {
            Some(db) => format!("The run is stored in {}.", db.display()),
            None => format!("Sent to {}: open run {run_id} in Prefactor.", self.api_url),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(db) = self.db_path.as_ref().filter(|_| cfg!(test)) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
        }
    }
}
