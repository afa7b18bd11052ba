//! [`LocalServer`]: the server on its own thread with its own tokio runtime, so it can be
//! started from sync code and from inside another runtime alike, and stopped cleanly.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tempfile::TempDir;

use crate::auth::{Tokens, generate_token};
use crate::config::{DbLocation, ServerConfig};
use crate::connections::{self, ConnectionLimits};
use crate::db;
use crate::db::maintenance::MaintenanceOptions;
use crate::error::ServerError;
use crate::faults::{FaultRule, Faults};
use crate::handlers::instances::terminate_in_tx;
use crate::inflight::BodyBudget;
use crate::recorder::{RecordedRequest, Recorder};
use crate::router;
use crate::state::{AppState, Options, Shared};
use crate::validation::SchemaCache;

/// How long a request waits for its share of the bodies-in-flight budget before a 503.
const BODY_SHARE_WAIT: Duration = Duration::from_secs(1);

/// How long shutdown waits for in-flight requests before dropping connections.
const GRACE_PERIOD: Duration = Duration::from_secs(5);

/// A running server. Dropping it shuts it down.
///
/// ```
/// use prefactor_server::{LocalServer, ServerConfig};
/// let server = LocalServer::start(ServerConfig::default())?;
/// assert!(server.base_url().starts_with("http://127.0.0.1:"));
/// assert!(!server.token().is_empty());
/// server.shutdown();
/// # Ok::<(), prefactor_server::ServerError>(())
/// ```
pub struct LocalServer {
    address: SocketAddr,
    base_url: String,
    token: String,
    db_path: Option<PathBuf>,
    state: Option<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    http_thread: Option<JoinHandle<()>>,
    writer_thread: Option<JoinHandle<()>>,
    temp_dir: Option<TempDir>,
}

impl LocalServer {
    /// Opens the database, binds the address and returns once connections are accepted.
    pub fn start(config: ServerConfig) -> Result<LocalServer, ServerError> {
        let (temp_dir, db_path) = match &config.db {
            DbLocation::Temp => {
                let dir = tempfile::Builder::new().prefix("prefactor-server-").tempdir()?;
                let path = dir.path().join("prefactor.db");
                (Some(dir), Some(path))
            }
            DbLocation::Memory => (None, None),
            DbLocation::Path(path) => (None, Some(path.clone())),
        };
        let upkeep = MaintenanceOptions { idempotency_window: config.idempotency_window, retain: config.retain };
        let database = db::open(db_path.as_deref(), upkeep)?;
        let listener =
            TcpListener::bind(config.listen).map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let mut tokens = config.tokens.clone();
        if tokens.is_empty() {
            tokens.push(generate_token());
        }
        let token = tokens[0].clone();
        let state = AppState::new(Shared {
            db: database.db,
            account: Arc::new(database.account),
            schemas: SchemaCache::new(config.schema_cache_entries, config.template_limits),
            tokens: Arc::new(Tokens::new(tokens)),
            faults: Faults::default(),
            recorder: Recorder::new(config.record_capacity, config.record_max_bytes),
            bodies: BodyBudget::new(config.max_bodies_in_flight_bytes, BODY_SHARE_WAIT),
            options: Arc::new(Options {
                strict_agents: config.strict_agents,
                validate_schemas: config.validate_schemas,
                max_body_bytes: config.max_body_bytes,
                body_read_timeout: config.body_read_timeout,
            }),
            sessions: Default::default(),
            stopping: Default::default(),
            page_keys: Default::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (ready, started) = mpsc::channel();
        let app = router::build(state.clone());
        let workers = config.worker_threads.max(1);
        let limits = ConnectionLimits {
            max_connections: config.max_connections,
            header_read_timeout: config.header_read_timeout,
            grace_period: GRACE_PERIOD,
        };
        let http_thread = std::thread::Builder::new()
            .name("prefactor-server".to_string())
            .spawn(move || serve(listener, app, workers, limits, ready, stopped))?;
        match started.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(ServerError::NotRunning("server thread exited during start".into())),
        }
        tracing::info!(%address, "prefactor server listening");
        Ok(LocalServer {
            address,
            base_url: format!("http://{address}"),
            token,
            db_path,
            state: Some(state),
            stop: Some(stop),
            http_thread: Some(http_thread),
            writer_thread: Some(database.writer_thread),
            temp_dir,
        })
    }

    /// `http://HOST:PORT` (no trailing slash); the API is under `/api/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The first accepted bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The SQLite file (None for an in-memory database).
    pub fn db_path(&self) -> Option<&Path> {
        self.db_path.as_deref()
    }

    /// Every request handled so far (except `/__admin`), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.as_ref().map(|state| state.recorder.snapshot()).unwrap_or_default()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        if let Some(state) = &self.state {
            state.recorder.clear();
        }
    }

    /// Adds a fault rule (see [`FaultRule`]).
    pub fn add_fault(&self, rule: FaultRule) {
        if let Some(state) = &self.state {
            state.faults.add(rule);
        }
    }

    /// Restarts the generator of probability fault rules from `seed` (repeatable soaks).
    pub fn seed_faults(&self, seed: u64) {
        if let Some(state) = &self.state {
            state.faults.seed(seed);
        }
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        if let Some(state) = &self.state {
            state.faults.clear();
        }
    }

    /// Terminates an instance, like `POST /api/v1/agent_instance/{id}/terminate`.
    pub fn terminate_instance(&self, id: &str, reason: Option<&str>) -> Result<(), ServerError> {
        let state = self.state.as_ref().ok_or_else(|| ServerError::NotRunning("server was shut down".into()))?;
        let account = state.account.clone();
        let id = id.to_string();
        let reason = reason.map(str::to_string);
        state
            .db
            .write_blocking(move |conn| terminate_in_tx(conn, &account, &id, reason).map(|_| ()))
            .map_err(ServerError::Rejected)
    }

    /// Stops accepting connections, lets in-flight requests finish (bounded), flushes the
    /// database and removes a temporary database. Dropping the server does the same.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(state) = &self.state {
            state.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.http_thread.take() {
            let _ = thread.join();
        }
        // Dropping the last database handle ends the writer after its current batch.
        self.state = None;
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
        self.temp_dir = None;
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn serve(
    listener: TcpListener,
    app: axum::Router,
    workers: usize,
    limits: ConnectionLimits,
    ready: mpsc::Sender<Result<(), ServerError>>,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("prefactor-server-worker")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(ServerError::Io(error)));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = ready.send(Err(ServerError::Io(error)));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        connections::serve(listener, app, limits, async move {
            let _ = stopped.await;
        })
        .await;
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}
