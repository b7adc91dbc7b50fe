//! `signgate pki …`

use std::path::PathBuf;

use clap::Subcommand;

use super::CliError;

/// PKI subcommands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Generate the demo PKI (test keys only, password `demo`).
    Demo {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Base URL for CRL distribution points and AIA (OCSP, caIssuers).
        #[arg(long, default_value = "http://127.0.0.1:8089/")]
        base_url: String,
    },
}

pub fn run(cmd: PkiCommand) -> Result<u8, CliError> {
    match cmd {
        PkiCommand::Demo { out, base_url } => {
            let _ = (out, base_url);
            Err(CliError::usage("pki demo is not built yet"))
        }
    }
}
