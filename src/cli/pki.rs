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

/// Runs a `pki` subcommand.
pub fn run(cmd: PkiCommand) -> Result<u8, CliError> {
    match cmd {
        PkiCommand::Demo { out, base_url } => {
            let opts = crate::pki::demo::DemoOptions::with_base_url(base_url);
            crate::pki::demo::generate(&out, &opts).map_err(|e| CliError {
                code: e.code(),
                message: e.to_string(),
            })?;
            println!(
                "demo PKI written to {} (test keys only, password 'demo')",
                out.display()
            );
            Ok(0)
        }
    }
}
