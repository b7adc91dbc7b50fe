//! `signgate verify FILE... | --in DIR`: validation reports of PDF, CMS and XML signatures,
//! verified in parallel and printed in input order as JSON Lines or text (CONTRACTS.md §1).

use std::path::PathBuf;

use clap::Args;
use time::OffsetDateTime;

use super::CliError;
use crate::fsio;
use crate::verify::{self, Indication, Report, TrustList, ValidationContext};

/// Trust anchors, validation time and network limits, shared by `verify` and `extend`.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Trust anchors (PEM); repeatable; they form the unnamed list `default`.
    #[arg(long)]
    trust: Vec<PathBuf>,
    /// A named trust list NAME=PEM-or-folder; repeatable.
    #[arg(long)]
    trust_list: Vec<String>,
    /// Validation time, RFC 3339 (default: now).
    #[arg(long)]
    at: Option<String>,
    /// Seconds to wait for each OCSP responder, CRL server or TSA.
    #[arg(long, default_value_t = 10)]
    pub fetch_timeout: u64,
}

impl TrustArgs {
    /// The validation context: trust lists, time, and a fetcher unless `offline`.
    pub fn context(&self, offline: bool) -> Result<ValidationContext, CliError> {
        let mut lists = Vec::new();
        for path in &self.trust {
            lists.push(TrustList::load("default", path).map_err(CliError::usage)?);
        }
        for spec in &self.trust_list {
            let (name, path) = spec.split_once('=').ok_or_else(|| {
                CliError::usage(format!("--trust-list '{spec}' must be NAME=PATH"))
            })?;
            lists.push(TrustList::load(name, std::path::Path::new(path)).map_err(CliError::usage)?);
        }
        let at = match &self.at {
            Some(t) => OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| CliError::usage(format!("--at '{t}' is not RFC 3339: {e}")))?,
            None => OffsetDateTime::now_utc(),
        };
        let fetcher: Option<Box<dyn verify::Fetcher>> = if offline {
            None
        } else {
            let timeout = std::time::Duration::from_secs(self.fetch_timeout);
            Some(Box::new(verify::HttpFetcher::new(timeout)))
        };
        Ok(ValidationContext {
            at,
            trust_lists: lists,
            fetcher,
        })
    }
}

/// Arguments of `signgate verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Signed files: PDFs, CMS/PKCS#7 signatures (.p7s/.p7m) or signed XML (`-` is stdin).
    files: Vec<PathBuf>,
    /// Also verify every file of this folder (not recursive, in name order).
    #[arg(long = "in", value_name = "DIR")]
    input_dir: Option<PathBuf>,
    /// The signed content of a detached CMS signature (one input file only).
    #[arg(long)]
    content: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
    /// Open no network connection: use only the validation data embedded in the file.
    #[arg(long)]
    offline: bool,
    /// Smallest RSA key accepted in the certificate path.
    #[arg(long, default_value_t = 2048)]
    min_rsa_bits: u32,
    /// Do not fail a signature whose revocation status is unknown (it gets a note instead).
    #[arg(long)]
    allow_unknown_revocation: bool,
    /// Output format: JSON Lines (one report per file) or text blocks.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    format: String,
    /// Files verified at once (default: one per CPU core).
    #[arg(long)]
    jobs: Option<usize>,
}

/// What verifying one input gave.
enum Outcome {
    /// A validation report.
    Report(Box<Report>),
    /// No report: the file could not be read (`unreadable`) or verified.
    Failed {
        code: crate::error::ErrorCode,
        message: String,
        unreadable: bool,
    },
}

impl Outcome {
    /// The rank of this outcome in the exit-code order 1 > 2 > 3 > 0 (higher is worse);
    /// a file that is readable but cannot be verified counts as failed.
    fn rank(&self) -> u8 {
        match self {
            Self::Report(r) => match r.indication {
                Indication::TotalFailed => 3,
                Indication::Indeterminate => 2,
                Indication::TotalPassed => 0,
            },
            Self::Failed { code, .. } if *code == crate::error::ErrorCode::NoSignature => 1,
            Self::Failed {
                unreadable: true, ..
            } => 0,
            Self::Failed { .. } => 3,
        }
    }
}

/// The inputs in order: the files given, then the folder's files by name.
fn inputs(args: &VerifyArgs) -> Result<Vec<PathBuf>, CliError> {
    let mut inputs = args.files.clone();
    if let Some(dir) = &args.input_dir {
        let entries = std::fs::read_dir(dir).map_err(|e| CliError {
            code: crate::error::ErrorCode::InputMissing,
            message: format!("{}: {e}", dir.display()),
        })?;
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        inputs.extend(found);
    }
    if inputs.is_empty() {
        return Err(CliError::usage("give the files to verify, or --in DIR"));
    }
    if args.content.is_some() && inputs.len() > 1 {
        return Err(CliError::usage(
            "--content goes with exactly one signature file",
        ));
    }
    Ok(inputs)
}

pub fn run(args: VerifyArgs) -> Result<u8, CliError> {
    let ctx = args.trust.context(args.offline)?;
    let policy = verify::Policy {
        min_rsa_bits: args.min_rsa_bits,
        require_revocation: !args.allow_unknown_revocation,
    };
    let inputs = inputs(&args)?;
    let content = args.content.as_deref().map(fsio::read_input).transpose()?;
    if inputs.len() == 1 {
        // One file keeps the single-file contract: an error is the command's error.
        let name = inputs[0].display().to_string();
        let input = fsio::read_input(&inputs[0])?;
        let report = verify::document(&name, &input, content.as_deref(), &policy, &ctx)
            .map_err(crate::Error::from)?;
        print_report(&report, &args.format)?;
        return Ok(exit_code(&[Outcome::Report(Box::new(report))]));
    }
    let verify_one = |path: &PathBuf| -> Outcome {
        let name = path.display().to_string();
        let input = match fsio::read_input(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                return Outcome::Failed {
                    code: e.code(),
                    message: e.to_string(),
                    unreadable: true,
                }
            }
        };
        match verify::document(&name, &input, None, &policy, &ctx) {
            Ok(report) => Outcome::Report(Box::new(report)),
            Err(e) => Outcome::Failed {
                code: e.code(),
                message: e.to_string(),
                unreadable: false,
            },
        }
    };
    let workers = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut outcomes = Vec::with_capacity(inputs.len());
    let mut failure = None;
    crate::blocking::in_order_parallel(&inputs, workers, verify_one, |i, outcome| {
        if failure.is_none() {
            if let Err(e) = emit(&inputs[i], &outcome, &args.format) {
                failure = Some(e);
            }
        }
        outcomes.push(outcome);
    });
    if let Some(e) = failure {
        return Err(e);
    }
    eprintln!("{}", summary(&outcomes));
    Ok(exit_code(&outcomes))
}

fn print_report(report: &Report, format: &str) -> Result<(), CliError> {
    if format == "json" {
        let json = serde_json::to_string(report).map_err(|e| CliError {
            code: crate::error::ErrorCode::Internal,
            message: e.to_string(),
        })?;
        println!("{json}");
    } else {
        print!("{}", text_summary(report));
    }
    Ok(())
}

/// Prints one input's outcome: its report, or an error line (stdout keeps one line per
/// input in JSON mode; stderr gets the usual `signgate: CODE: message`).
fn emit(path: &std::path::Path, outcome: &Outcome, format: &str) -> Result<(), CliError> {
    match outcome {
        Outcome::Report(report) => print_report(report, format),
        Outcome::Failed { code, message, .. } => {
            eprintln!("signgate: {}: {message}", code.as_str());
            if format == "json" {
                let line = serde_json::json!({
                    "file": path.display().to_string(),
                    "error": { "code": code.as_str(), "message": message },
                });
                println!("{line}");
            } else {
                println!("{}: error {}: {message}\n", path.display(), code.as_str());
            }
            Ok(())
        }
    }
}

/// `N files: P passed, F failed, I indeterminate, S without signature, E errors`.
fn summary(outcomes: &[Outcome]) -> String {
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let verdict =
        |i: Indication| move |o: &Outcome| matches!(o, Outcome::Report(r) if r.indication == i);
    format!(
        "{} files: {} passed, {} failed, {} indeterminate, {} without signature, {} errors",
        outcomes.len(),
        count(&verdict(Indication::TotalPassed)),
        count(&verdict(Indication::TotalFailed)),
        count(&verdict(Indication::Indeterminate)),
        count(
            &|o| matches!(o, Outcome::Failed { code, .. } if *code == crate::error::ErrorCode::NoSignature)
        ),
        count(
            &|o| matches!(o, Outcome::Failed { code, .. } if *code != crate::error::ErrorCode::NoSignature)
        ),
    )
}

/// The worst outcome's exit code (1 > 2 > 3 > 0); 66 when no file could be read at all.
fn exit_code(outcomes: &[Outcome]) -> u8 {
    if !outcomes.is_empty()
        && outcomes.iter().all(|o| {
            matches!(
                o,
                Outcome::Failed {
                    unreadable: true,
                    ..
                }
            )
        })
    {
        return 66;
    }
    match outcomes.iter().map(Outcome::rank).max().unwrap_or(0) {
        3 => 1,
        2 => 2,
        1 => 3,
        _ => 0,
    }
}

/// A readable summary of the same report.
fn text_summary(report: &Report) -> String {
    let mut out = format!(
        "{} ({}): {}\n",
        report.file,
        report.format,
        verdict(report.indication, report.sub_indication)
    );
    for s in &report.signatures {
        out.push_str(&format!(
            "\n  {} [{:?}]: {}\n",
            s.id,
            s.kind,
            verdict(s.indication, s.sub_indication)
        ));
        if let Some(signer) = &s.signer {
            out.push_str(&format!(
                "    signer:    {}\n    issuer:    {}\n",
                signer.subject, signer.issuer
            ));
        }
        out.push_str(&format!(
            "    intact:    {}\n",
            if s.intact { "yes" } else { "NO" }
        ));
        if let Some(t) = &s.claimed_signing_time {
            out.push_str(&format!("    claimed:   {t}\n"));
        }
        if let Some(ts) = &s.timestamp {
            out.push_str(&format!(
                "    timestamp: {} by {} ({})\n",
                ts.gen_time,
                ts.tsa,
                if ts.valid { "valid" } else { "INVALID" }
            ));
        }
        for r in &s.revocation {
            out.push_str(&format!(
                "    status:    serial {} {} ({} {})\n",
                r.certificate, r.status, r.origin, r.source
            ));
        }
        out.push_str(&format!(
            "    trust:     {}\n",
            s.trust_list.as_deref().unwrap_or("none")
        ));
        out.push_str(&format!(
            "    coverage:  {}\n",
            if let Some(path) = &s.coverage.element_path {
                path.clone()
            } else if s.coverage.whole_file {
                "whole file".to_string()
            } else {
                format!("revision {}", s.coverage.revision.unwrap_or(0))
            }
        ));
        for note in &s.notes {
            out.push_str(&format!("    note:      {note}\n"));
        }
    }
    out
}

fn verdict(i: Indication, sub: Option<verify::SubIndication>) -> String {
    let i = serde_json::to_value(i)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    match sub
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| v.as_str().map(String::from))
    {
        Some(s) => format!("{i} / {s}"),
        None => i,
    }
}
