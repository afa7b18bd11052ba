//! The accept loop: how many connections the server holds open at once, and how long a
//! connection may take to send a request's headers.
//!
//! Why not `axum::serve`: it accepts every connection and sets no timer, so hyper never times
//! out a request head. A slowloris client (many connections, headers sent a byte at a time,
//! or none at all) then holds file descriptors and tasks without bound. Here a connection is
//! accepted only while fewer than [`ConnectionLimits::max_connections`] are open; the others
//! wait in the kernel's listen backlog and are accepted as soon as one closes. Each connection
//! must deliver a request's headers within [`ConnectionLimits::header_read_timeout`] of
//! starting to wait for them (hyper's `header_read_timeout`, measured from the first poll of
//! the head, so an idle keep-alive connection is closed after the same time), else it is
//! closed. Bodies have their own budget and timeout in [`crate::pipeline`].
//!
//! Only HTTP/1.1 is served: every client of this API uses it, and HTTP/2's streams would
//! need limits of their own.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long the loop pauses after a failed accept (e.g. out of file descriptors), so it does
/// not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The connection limits of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most (at least 1).
    pub max_connections: usize,
    /// Time to receive a request's headers (and longest keep-alive idle time).
    pub header_read_timeout: Duration,
    /// How long shutdown waits for open connections to finish their requests.
    pub grace_period: Duration,
}

/// Serves `app` on `listener` within `limits` until `stop` resolves; then stops accepting,
/// lets open connections finish their current request (idle ones close at once) for up to
/// the grace period, and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let mut stop = std::pin::pin!(stop);
    loop {
        // The slot first: while every slot is taken, nothing is accepted and new connections
        // queue in the backlog instead of costing a task and a buffer each.
        let slot = tokio::select! {
            _ = &mut stop => break,
            slot = open.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // Each answer is one write; with Nagle on, an answer written while the previous one
        // is unacknowledged waits for the ACK (up to the delayed-ACK timeout) on keep-alive
        // connections.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot disable Nagle on a connection");
        }
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.grace_period, graceful.shutdown()).await.is_err() {
        tracing::warn!("grace period over; closing remaining connections");
    }
}
