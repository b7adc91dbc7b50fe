//! `signgate sign`

use std::path::PathBuf;

use clap::Args;

use super::CliError;

/// Arguments of `signgate sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// PKCS#12 key file.
    #[arg(long)]
    pub key: PathBuf,
    /// File holding the key password (else SIGNGATE_KEY_PASSWORD).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Input document (`-` for stdin).
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Output file (`-` for stdout).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: SignArgs) -> Result<u8, CliError> {
    let _ = args;
    Err(CliError::usage("sign is not built yet"))
}
