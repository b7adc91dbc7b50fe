//! Running an HTTP service from the command line: bind, print the ready line, serve until
//! SIGINT/SIGTERM, then drain open requests (CONTRACTS.md §1).

use std::io::Write;

use super::CliError;
use crate::error::ErrorCode;

/// Parses `--listen`.
pub fn listen_address(listen: &str) -> Result<std::net::SocketAddr, CliError> {
    listen
        .parse()
        .map_err(|_| CliError::usage(format!("--listen '{listen}' is not HOST:PORT")))
}

/// Serves `router` on `addr` (port 0 picks a free port) until a shutdown signal.
/// The first line on stdout is exactly `listening on http://ADDR/`.
pub fn run(addr: std::net::SocketAddr, router: axum::Router, what: &str) -> Result<u8, CliError> {
    run_with(addr, what, async move { Ok(router) })
}

/// [`run`] with a router built inside the runtime (e.g. over a database pool), before binding.
pub fn run_with<F>(addr: std::net::SocketAddr, what: &str, setup: F) -> Result<u8, CliError>
where
    F: std::future::Future<Output = Result<axum::Router, CliError>>,
{
    run_tls_with(addr, what, None, setup)
}

/// [`run_with`], over HTTPS when `tls` is given (client certificates reach the handlers as
/// [`crate::tls::PeerCertificate`]); the ready line then says `https://`. On a shutdown
/// signal the TLS listener stops accepting; requests in progress are not awaited.
pub fn run_tls_with<F>(
    addr: std::net::SocketAddr,
    what: &str,
    tls: Option<std::sync::Arc<openssl::ssl::SslAcceptor>>,
    setup: F,
) -> Result<u8, CliError>
where
    F: std::future::Future<Output = Result<axum::Router, CliError>>,
{
    let internal = |message: String| CliError {
        code: ErrorCode::Internal,
        message,
    };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let router = setup.await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| internal(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| internal(format!("cannot read the bound address: {e}")))?;
        {
            let mut out = std::io::stdout().lock();
            let scheme = if tls.is_some() { "https" } else { "http" };
            let _ = writeln!(out, "listening on {scheme}://{bound}/");
            let _ = out.flush();
        }
        if let Some(acceptor) = tls {
            crate::tls::serve(listener, acceptor, router, shutdown_signal()).await;
            return Ok(());
        }
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| internal(format!("{what} failed: {e}")))
    })?;
    Ok(0)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
