//! Running an HTTP service from the command line: bind, print the ready line, serve until
//! SIGINT/SIGTERM, then drain open requests (CONTRACTS.md §1). The gateway itself is started
//! by [`crate::gateway::Gateway::start`].

use std::io::Write;

use super::CliError;
use crate::error::ErrorCode;

/// Parses `--listen`.
pub fn listen_address(listen: &str) -> Result<std::net::SocketAddr, CliError> {
    listen
        .parse()
        .map_err(|_| CliError::usage(format!("--listen '{listen}' is not HOST:PORT")))
}

/// Serves `router` on `addr` (port 0 picks a free port) until SIGINT/SIGTERM, then drains.
/// The first line on stdout is exactly `listening on http://ADDR/`.
pub fn run(addr: std::net::SocketAddr, router: axum::Router, what: &str) -> Result<u8, CliError> {
    let internal = |message: String| CliError {
        code: ErrorCode::Internal,
        message,
    };
    super::gateway::runtime()?.block_on(async move {
        let (server, bound) = crate::gateway::BackgroundServer::bind(addr, router)
            .await
            .map_err(|e| internal(format!("{what}: {e}")))?;
        ready_line("http", bound);
        crate::gateway::termination().await;
        server.shutdown().await;
        Ok::<_, CliError>(())
    })?;
    Ok(0)
}

/// Prints the ready line `listening on SCHEME://ADDR/` as the first line on stdout.
pub fn ready_line(scheme: &str, bound: std::net::SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {scheme}://{bound}/");
    let _ = out.flush();
}
