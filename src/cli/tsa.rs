//! `signgate tsa …`

use std::path::PathBuf;

use clap::Subcommand;

use super::CliError;

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

pub fn run(cmd: TsaCommand) -> Result<u8, CliError> {
    match cmd {
        TsaCommand::Serve { .. } => Err(CliError::usage("tsa serve is not built yet")),
    }
}
