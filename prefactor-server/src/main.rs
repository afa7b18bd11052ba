//! `prefactor-server`: see `prefactor_server::cli::Cli` for flags. stdout carries only the
//! generated-token line (when no token was given), `listening on http://HOST:PORT` and the
//! trace UI's address; logs go to stderr.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use prefactor_server::LocalServer;
use prefactor_server::auth::generate_token;
use prefactor_server::cli::Cli;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: the HTTP side allocates small buffers on one thread and
/// frees them on another for every request, the pattern glibc's arenas handle worst and
/// mimalloc's thread-local pages handle well (the measurements: `docs/benchmarks-journal.md`,
/// "Server throughput").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let mut config = Cli::parse().into_config();
    // Signal handlers go in before anything is printed: a supervisor that sends SIGTERM right
    // after reading the `listening on` line must get a clean shutdown, not the default kill.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot create the signal runtime");
            return ExitCode::FAILURE;
        }
    };
    let shutdown_signal = match runtime.block_on(async { ShutdownSignal::install() }) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if config.tokens.is_empty() {
        let token = generate_token();
        let _ = writeln!(stdout, "generated token: {token}");
        config.tokens.push(token);
    }
    let server = match LocalServer::start(config) {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let _ = writeln!(stdout, "listening on {}", server.base_url());
    let _ = writeln!(stdout, "trace UI: {}/ (log in with the server's token)", server.base_url());
    let _ = stdout.flush();
    drop(stdout);
    runtime.block_on(shutdown_signal.wait());
    tracing::info!("shutting down");
    server.shutdown();
    ExitCode::SUCCESS
}

/// SIGINT or SIGTERM (Ctrl-C only on non-Unix).
struct ShutdownSignal {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    #[cfg(unix)]
    fn install() -> std::io::Result<ShutdownSignal> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignal { terminate: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
    }

    #[cfg(not(unix))]
    fn install() -> std::io::Result<ShutdownSignal> {
        Ok(ShutdownSignal {})
    }

    #[cfg(unix)]
    async fn wait(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }

    #[cfg(not(unix))]
    async fn wait(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
