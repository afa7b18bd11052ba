//! `prefactor-server`: see `prefactor_server::cli::Cli` for flags. stdout carries only the
//! generated-token line (when no token was given) and `listening on http://HOST:PORT`; logs
//! go to stderr.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use prefactor_server::LocalServer;
use prefactor_server::auth::generate_token;
use prefactor_server::cli::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let mut config = Cli::parse().into_config();
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
    let _ = stdout.flush();
    drop(stdout);
    wait_for_signal();
    tracing::info!("shutting down");
    server.shutdown();
    ExitCode::SUCCESS
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers");
            return;
        }
    };
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut terminate) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = terminate.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    });
}
