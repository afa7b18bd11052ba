//! A client's life: `initialize` starts the worker; `check_connection` and `flush` wait on
//! it; `close` and `shutdown` stop it and report.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::Client;
use super::blocking::block_on;
use super::enqueue::{Drain, WorkerLink};
use crate::delivery::token_check;
use crate::delivery::transport::Transport;
use crate::delivery::worker::{self, Command, Worker};
use crate::lock::lock;
use crate::queue::op_queue::OpQueue;
use crate::report::close_report::CloseReport;
use crate::report::error::Error;
use crate::schema::registry::SchemaRegistry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lifecycle {
    New,
    Initializing,
    Ready,
    Closed,
}

impl Client {
    /// Merges the explicit and the statically declared schemas and starts the worker; returns
    /// at once, whatever the network does. The token is checked (`GET /api/v1/ping`) in the
    /// background: operations queue until the API answers it, however long it is unreachable,
    /// and a 401/403 stops all sending (logged once, counted, reported by `close`). Programs
    /// that should rather stop when the API is not there call
    /// [`check_connection`](Client::check_connection) next.
    ///
    /// Errors only for what no network can fix: conflicting schema declarations
    /// ([`Error::SchemaConflict`]), a second call ([`Error::AlreadyInitialized`]), a closed
    /// client. After a failure the client can be initialized again.
    pub async fn initialize(&self) -> Result<(), Error> {
        {
            let mut lifecycle = lock(&self.inner.lifecycle);
            match *lifecycle {
                Lifecycle::New => *lifecycle = Lifecycle::Initializing,
                Lifecycle::Closed => return Err(Error::Closed),
                Lifecycle::Initializing | Lifecycle::Ready => return Err(Error::AlreadyInitialized),
            }
        }
        let result = self.start_worker().await;
        *lock(&self.inner.lifecycle) = if result.is_ok() { Lifecycle::Ready } else { Lifecycle::New };
        if let Err(err) = &result {
            tracing::warn!(error = %err, "prefactor: initialization failed");
        }
        result
    }

    /// [`initialize`](Client::initialize) for synchronous programs (blocks this thread).
    pub fn initialize_blocking(&self) -> Result<(), Error> {
        block_on(self.initialize())
    }

    async fn start_worker(&self) -> Result<(), Error> {
        let config = &self.inner.shared.config;
        let mut registry = config.schema_registry().cloned().unwrap_or_default();
        registry.merge(&SchemaRegistry::from_static()?)?;
        let transport = Transport::new(config)?;
        let ops = Arc::new(OpQueue::default());
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        #[allow(unused_mut)]
        let mut worker = Worker::new(self.inner.shared.clone(), transport, ops.clone(), commands_rx);
        #[cfg(feature = "otel")]
        if let Some(export) = config.otel() {
            use crate::delivery::otel::{mirror::OtelMirror, pipeline::OtelPipeline};
            let pipeline = OtelPipeline::new(export, |name| std::env::var(name).ok())?;
            worker.otel = Some(OtelMirror::new(Arc::new(pipeline)));
        }
        // The worker starts the token check; nothing here waits for it.
        worker::spawn(worker)?;
        tracing::debug!(schemas = registry.len(), "prefactor: client initialized");
        let _ = self.inner.registry.set(registry);
        let _ = self.inner.link.set(WorkerLink { ops, drain: Drain::Worker(commands_tx) });
        Ok(())
    }

    pub(super) fn ready_link(&self) -> Result<&WorkerLink, Error> {
        if self.inner.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.inner.link.get().ok_or(Error::NotInitialized)
    }

    /// Waits until the API answered the background token check, for at most `timeout`: `Ok`
    /// when it accepted the token, [`Error::Auth`] when it rejected it (the client no longer
    /// sends anything), [`Error::ApiUnreachable`] when it did not answer in time (telemetry
    /// stays queued and goes out once it does), another error when it answered with one.
    ///
    /// For programs that should fail fast (a CLI, a smoke test, a deployment check). An agent
    /// need not call it: it runs and records the same whether the API is up, down or slow.
    /// `Duration::ZERO` reads the current state without waiting.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn run() -> Result<(), prefactor_runtime::Error> {
    /// let guard = prefactor_runtime::init(prefactor_runtime::Config::from_env()?.build()?).await?;
    /// // Stop now, with a clear error, when the token is wrong or the API is not there.
    /// guard.client().check_connection(Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn check_connection(&self, timeout: Duration) -> Result<(), Error> {
        let link = self.ready_link()?;
        let Drain::Worker(commands) = &link.drain else {
            // A capture answers for the server: always there, every token accepted.
            return Ok(());
        };
        let last_error = match token_check::outcome_of(&self.inner.shared.token_check.current()) {
            Ok(answered) => return answered,
            Err(last_error) => last_error,
        };
        if timeout.is_zero() {
            return Err(token_check::unreachable(timeout, last_error));
        }
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        let command = Command::CheckConnection { waited: timeout, deadline, reply };
        commands.send(command).map_err(|_| Error::WorkerGone)?;
        answer.await.map_err(|_| Error::WorkerGone)?
    }

    /// [`check_connection`](Client::check_connection) for synchronous programs.
    pub fn check_connection_blocking(&self, timeout: Duration) -> Result<(), Error> {
        block_on(self.check_connection(timeout))
    }

    /// Waits until every operation queued before this call is delivered or has failed, or the
    /// timeout passes ([`Error::Timeout`]). Operations queued after the call (by other threads,
    /// say) do not delay it.
    pub async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let link = self.ready_link()?;
        let commands = match &link.drain {
            Drain::Worker(commands) => commands,
            Drain::Recorder(recorder) => {
                recorder.drain();
                return Ok(());
            }
        };
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        // Sent after this thread's pushes, so the worker (which drains the queue on receiving
        // it) sees every one of them; operations settle out of order, so it answers by epoch,
        // not by count (see `flush_epochs`).
        commands.send(Command::Flush { deadline, reply }).map_err(|_| Error::WorkerGone)?;
        answer.await.map_err(|_| Error::WorkerGone)??;
        #[cfg(feature = "otel")]
        if self.inner.shared.config.otel().is_some() {
            // Everything flushed above was accepted by the worker, so its OTel spans are in the
            // batch processor now.
            let (reply, answer) = oneshot::channel();
            commands.send(Command::OtelFlush { deadline, reply }).map_err(|_| Error::WorkerGone)?;
            answer.await.map_err(|_| Error::WorkerGone)??;
        }
        Ok(())
    }

    /// [`flush`](Client::flush) for synchronous programs.
    pub fn flush_blocking(&self, timeout: Duration) -> Result<(), Error> {
        block_on(self.flush(timeout))
    }

    /// Delivers everything queued (up to the config's `close_timeout`), stops the worker and
    /// reports. `Ok` when nothing was lost; otherwise [`Error::TelemetryLost`] with the
    /// report (failures, drops, an auth failure, what was still queued at the deadline).
    /// Closing a client that was never initialized is a no-op; closing twice is
    /// [`Error::Closed`].
    pub async fn close(&self) -> Result<CloseReport, Error> {
        self.shutdown(self.inner.shared.config.close_timeout()).await
    }

    /// [`close`](Client::close) for synchronous programs.
    pub fn close_blocking(&self) -> Result<CloseReport, Error> {
        block_on(self.close())
    }

    /// [`close`](Client::close) with an explicit deadline; returns within `timeout` (plus the
    /// time to cancel requests in flight).
    pub async fn shutdown(&self, timeout: Duration) -> Result<CloseReport, Error> {
        {
            let mut lifecycle = lock(&self.inner.lifecycle);
            match *lifecycle {
                Lifecycle::Closed => return Err(Error::Closed),
                Lifecycle::New | Lifecycle::Initializing => {
                    *lifecycle = Lifecycle::Closed;
                    self.inner.shared.closed.store(true, Ordering::Release);
                    return Ok(self.inner.shared.report(self.enqueued(), 0, false));
                }
                Lifecycle::Ready => *lifecycle = Lifecycle::Closed,
            }
        }
        self.inner.shared.closed.store(true, Ordering::Release);
        let report = match self.inner.link.get().map(|link| &link.drain) {
            Some(Drain::Worker(commands)) => {
                let (reply, answer) = oneshot::channel();
                let deadline = Instant::now() + timeout;
                match commands.send(Command::Shutdown { deadline, reply }) {
                    Ok(()) => answer.await.ok(),
                    Err(_) => None,
                }
            }
            Some(Drain::Recorder(recorder)) => {
                recorder.close();
                let settled = self.inner.shared.counters.settled.load(Ordering::Acquire);
                Some(self.inner.shared.report(self.enqueued(), settled, false))
            }
            None => None,
        };
        let report = report.unwrap_or_else(|| self.inner.shared.report(self.enqueued(), 0, false));
        if report.is_clean() {
            Ok(report)
        } else {
            tracing::warn!(%report, "prefactor: client closed with telemetry lost");
            Err(Error::TelemetryLost(Box::new(report)))
        }
    }

    /// [`shutdown`](Client::shutdown) for synchronous programs.
    pub fn shutdown_blocking(&self, timeout: Duration) -> Result<CloseReport, Error> {
        block_on(self.shutdown(timeout))
    }

    /// Whether [`initialize`](Client::initialize) succeeded and the client is not closed.
    pub fn is_initialized(&self) -> bool {
        *lock(&self.inner.lifecycle) == Lifecycle::Ready
    }

    /// Whether the client was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.closed.load(Ordering::Acquire)
    }
}
