//! The process-wide client used by `#[prefactor::agent]` / `#[prefactor::span]`.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockWriteGuard};
use std::time::Duration;

use crate::capture::client::Client;
use crate::capture::context::Context;
use crate::capture::instance::AgentInstanceHandle;
use crate::config::Config;
use crate::report::close_report::CloseReport;
use crate::report::error::Error;

/// The installed client. Installed clients are leaked on purpose: `global_client` hands out
/// `&'static Client`, so a replaced client must stay valid. One small allocation per `install`
/// is the price.
static INSTALLED: RwLock<Option<&'static Client>> = RwLock::new(None);
/// Bumped (under `INSTALLED`'s write lock) by every install and uninstall.
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The installed client as this thread last read it, with the generation it read: the
    /// macros' hot path is one load of `GENERATION`, not a lock shared by every thread.
    static SEEN: Cell<(u64, Option<&'static Client>)> = const { Cell::new((0, None)) };
}

/// Default bound of the flush done when an [`InitGuard`] is dropped.
pub const DEFAULT_DROP_TIMEOUT: Duration = Duration::from_secs(10);

fn installed() -> RwLockWriteGuard<'static, Option<&'static Client>> {
    // Nothing panics while it is held: never poisoned in a way that matters.
    INSTALLED.write().unwrap_or_else(PoisonError::into_inner)
}

fn read_installed() -> Option<&'static Client> {
    *INSTALLED.read().unwrap_or_else(PoisonError::into_inner)
}

/// Installs the process-wide client. Fails with [`Error::AlreadyInitialized`] when one is
/// installed.
pub fn set_global_client(client: Client) -> Result<(), Error> {
    let mut slot = installed();
    if slot.is_some() {
        return Err(Error::AlreadyInitialized);
    }
    *slot = Some(Box::leak(Box::new(client)));
    GENERATION.fetch_add(1, Ordering::Release);
    Ok(())
}

/// The process-wide client, if installed (one atomic load while it does not change).
///
/// ```
/// // Nothing installed in this doc test.
/// assert!(prefactor_runtime::global_client().is_none());
/// ```
#[inline]
pub fn global_client() -> Option<&'static Client> {
    let generation = GENERATION.load(Ordering::Acquire);
    SEEN.try_with(|seen| match seen.get() {
        (known, client) if known == generation => client,
        _ => {
            let client = read_installed();
            seen.set((generation, client));
            client
        }
    })
    .unwrap_or_else(|_| read_installed())
}

/// Removes `client` if it is the installed one (its allocation stays leaked, see `INSTALLED`).
fn uninstall(client: &Client) {
    let mut slot = installed();
    if slot.is_some_and(|installed| installed.same_as(client)) {
        *slot = None;
        GENERATION.fetch_add(1, Ordering::Release);
    }
}

/// Creates a client, initializes it and installs it as the process-wide client. Returns at
/// once whatever the network does (see [`Client::initialize`]): an agent started while the API
/// is down runs normally, and its telemetry is queued until the API answers. It fails only for
/// what no retry can fix (an invalid configuration, conflicting schemas, a client already
/// installed). To stop early when the API is not there, call
/// [`Client::check_connection`] on [`InitGuard::client`].
///
/// ```no_run
/// # async fn run() -> Result<(), prefactor_runtime::Error> {
/// let config = prefactor_runtime::Config::from_env()?.build()?;
/// let guard = prefactor_runtime::init(config).await?;
/// // ... the agent runs; `#[agent]` and `#[span]` find the installed client ...
/// guard.close().await?;
/// # Ok(())
/// # }
/// ```
pub async fn init(config: Config) -> Result<InitGuard, Error> {
    refuse_second_client()?;
    let client = Client::new(config)?;
    client.initialize().await?;
    install(client)
}

/// [`init`] for synchronous programs (returns at once as well).
pub fn init_blocking(config: Config) -> Result<InitGuard, Error> {
    refuse_second_client()?;
    let client = Client::new(config)?;
    client.initialize_blocking()?;
    install(client)
}

/// Fails before a client (and its worker thread) is made for nothing; `set_global_client`
/// still settles a race between two `init` calls.
fn refuse_second_client() -> Result<(), Error> {
    match global_client() {
        Some(_) => Err(Error::AlreadyInitialized),
        None => Ok(()),
    }
}

/// Installs an already initialized client as the process-wide client.
fn install(client: Client) -> Result<InitGuard, Error> {
    if !client.is_initialized() {
        return Err(Error::NotInitialized);
    }
    set_global_client(client.clone())?;
    Ok(InitGuard { client })
}

/// Keeps the process-wide client alive. Dropping it flushes (bounded by
/// [`DEFAULT_DROP_TIMEOUT`]), closes and uninstalls the client; call
/// [`close`](InitGuard::close) to see the report instead.
#[must_use = "dropping the guard closes the client"]
pub struct InitGuard {
    client: Client,
}

impl InitGuard {
    /// The installed client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Closes and uninstalls the client, returning the close report.
    pub async fn close(self) -> Result<CloseReport, Error> {
        let result = self.client.close().await;
        uninstall(&self.client);
        result
    }
}

impl Drop for InitGuard {
    fn drop(&mut self) {
        if !self.client.is_closed()
            && let Err(err) = self.client.shutdown_blocking(DEFAULT_DROP_TIMEOUT)
        {
            tracing::warn!(error = %err, "prefactor: closing the global client");
        }
        uninstall(&self.client);
    }
}

impl fmt::Debug for InitGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitGuard").field("client", &self.client).finish()
    }
}

/// The agent instance of the current context.
pub fn current_instance() -> Option<AgentInstanceHandle> {
    Context::with_current(|cx| cx.instance().cloned())
}

/// Resolves with the reason once the current instance is terminated; pending forever outside
/// an instance. The instance is captured when this is called.
pub fn terminated() -> impl Future<Output = Option<String>> + Send + 'static {
    let instance = current_instance();
    async move {
        match instance {
            Some(instance) => instance.terminated().await,
            None => std::future::pending().await,
        }
    }
}

/// `Err(Terminated)` when the platform terminated the current instance; use with `?` at the
/// top of agent steps.
///
/// ```
/// assert!(prefactor_runtime::check_terminated().is_ok()); // no current instance
/// ```
pub fn check_terminated() -> Result<(), Terminated> {
    match current_instance() {
        Some(instance) if instance.is_terminated() => Err(Terminated { reason: instance.termination_reason() }),
        _ => Ok(()),
    }
}

/// The platform terminated the agent instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent instance terminated by the platform{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
pub struct Terminated {
    /// The reason given by the platform.
    pub reason: Option<String>,
}
