//! `signgate tsa …`

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;

use super::CliError;
use crate::error::ErrorCode;
use crate::keys::Pkcs12Key;
use crate::tsa::TimeStampAuthority;

/// Time-stamp authority subcommands.
#[derive(Debug, Subcommand)]
pub enum TsaCommand {
    /// Serve RFC 3161 time-stamps over HTTP (POST application/timestamp-query).
    Serve {
        /// The TSA's PKCS#12 key (certificate with a critical timeStamping EKU).
        #[arg(long)]
        key: PathBuf,
        /// File holding the key password (else SIGNGATE_KEY_PASSWORD).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:3161")]
        listen: String,
        /// TSA policy OID put in every token.
        #[arg(long, default_value = "1.3.6.1.4.1.99999.1.1")]
        policy: String,
    },
}

/// Runs a `tsa` subcommand.
pub fn run(cmd: TsaCommand) -> Result<u8, CliError> {
    match cmd {
        TsaCommand::Serve {
            key,
            password_file,
            listen,
            policy,
        } => {
            let policy: const_oid::ObjectIdentifier = policy
                .parse()
                .map_err(|_| CliError::usage(format!("--policy '{policy}' is not an OID")))?;
            let addr: std::net::SocketAddr = listen
                .parse()
                .map_err(|_| CliError::usage(format!("--listen '{listen}' is not HOST:PORT")))?;
            let password = super::key_password(password_file.as_deref())?;
            let key = Pkcs12Key::open(&key, &password)?;
            drop(password);
            let tsa = TimeStampAuthority::new(Arc::new(key), policy).map_err(|e| CliError {
                code: e.code(),
                message: e.to_string(),
            })?;
            let runtime = tokio::runtime::Runtime::new().map_err(|e| CliError {
                code: ErrorCode::Internal,
                message: format!("cannot start the async runtime: {e}"),
            })?;
            runtime.block_on(serve(addr, Arc::new(tsa)))?;
            Ok(0)
        }
    }
}

async fn serve(addr: std::net::SocketAddr, tsa: Arc<TimeStampAuthority>) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError {
            code: ErrorCode::Internal,
            message: format!("cannot listen on {addr}: {e}"),
        })?;
    let bound = listener.local_addr().map_err(|e| CliError {
        code: ErrorCode::Internal,
        message: format!("cannot read the bound address: {e}"),
    })?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{bound}/");
        let _ = out.flush();
    }
    crate::tsa::serve(listener, tsa, shutdown_signal())
        .await
        .map_err(|e| CliError {
            code: ErrorCode::Internal,
            message: format!("time-stamp server failed: {e}"),
        })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
