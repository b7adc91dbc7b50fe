//! `signgate tsa …`

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;

use super::CliError;
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
            let addr = super::server::listen_address(&listen)?;
            let password = super::key_password(password_file.as_deref())?;
            let key = Pkcs12Key::open(&key, &password)?;
            drop(password);
            let tsa = TimeStampAuthority::new(Arc::new(key), policy)?;
            super::server::run(addr, crate::tsa::router(Arc::new(tsa)), "time-stamp server")
        }
    }
}
