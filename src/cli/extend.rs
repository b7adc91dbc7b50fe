//! `signgate extend`: add long-term validation data (B-LT) and a document time-stamp (B-LTA).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::verify::TrustArgs;
use super::CliError;
use crate::extend::{self, LtvLevel};
use crate::fsio;
use crate::sign::{HttpTimeStamper, TimeStamper};

/// Arguments of `signgate extend`.
#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// Signed PDF.
    #[arg(long = "in")]
    input: PathBuf,
    /// Output PDF.
    #[arg(long)]
    out: PathBuf,
    /// b-lt (validation data) or b-lta (plus a document time-stamp).
    #[arg(long)]
    level: LtvLevel,
    /// RFC 3161 time-stamp authority URL (required for b-lta).
    #[arg(long)]
    tsa: Option<String>,
    #[command(flatten)]
    trust: TrustArgs,
}

pub fn run(args: ExtendArgs) -> Result<u8, CliError> {
    if args.level == LtvLevel::BLta && args.tsa.is_none() {
        return Err(CliError::usage("--level b-lta needs --tsa URL"));
    }
    let ctx = args.trust.context(false)?;
    let input = fsio::read_input(&args.input)?;
    let timestamper = args
        .tsa
        .as_ref()
        .map(|url| HttpTimeStamper::new(url, Duration::from_secs(args.trust.fetch_timeout)));
    let extended = extend::extend(
        &input,
        args.level,
        &ctx,
        timestamper.as_ref().map(|t| t as &dyn TimeStamper),
    )?;
    fsio::write_output(&args.out, &extended)?;
    Ok(0)
}
