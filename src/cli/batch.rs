//! `signgate batch-sign`: many documents, one key, through [`crate::batch::Engine`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use time::OffsetDateTime;

use super::CliError;
use crate::batch::{BatchOptions, BatchSummary, DocOutcome, Engine};
use crate::error::ErrorCode;
use crate::sign::{Format, Level};

/// Arguments of `signgate batch-sign`.
#[derive(Debug, Args)]
pub struct BatchArgs {
    #[command(flatten)]
    key: super::KeyArgs,
    /// Folder of documents to sign (regular, non-hidden files, in name order).
    #[arg(long = "in", conflicts_with = "list", required_unless_present = "list")]
    input: Option<PathBuf>,
    /// File listing one document path per line (`-` for standard input).
    #[arg(long)]
    list: Option<PathBuf>,
    /// Output folder: OUT/<name> for PDFs and XML-DSig, OUT/<name>.p7s for CMS; holds the
    /// resume journal.
    #[arg(long)]
    out: PathBuf,
    /// Concurrent private-key operations (default: number of cores; lower it for USB tokens).
    #[arg(long)]
    jobs: Option<usize>,
    /// Container: pdf, cms, xml (XML-DSig), or auto (PAdES when the file starts with %PDF-,
    /// XML-DSig for XML; anything else is refused unless --format cms).
    #[arg(long, default_value = "auto", value_parser = ["auto", "pdf", "cms", "xml"])]
    format: String,
    /// XML signature profile: tax, social-insurance, e-invoice, edxml or enveloped; without
    /// it, `--format xml` picks the profile from each document's root element.
    #[arg(long, value_parser = ["tax", "social-insurance", "e-invoice", "edxml", "enveloped"])]
    profile: Option<String>,
    #[command(flatten)]
    signature: super::SignatureArgs,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    json: bool,
}

pub fn run(args: BatchArgs) -> Result<u8, CliError> {
    if args.signature.level == Level::BT && args.signature.tsa.is_none() {
        return Err(CliError::usage("--level b-t needs --tsa URL"));
    }
    if args.jobs == Some(0) {
        return Err(CliError::usage("--jobs must be 1 or more"));
    }
    let inputs = list_inputs(&args)?;
    let key = super::open_key(&args.key)?;
    let mut options = BatchOptions::new(OffsetDateTime::now_utc().to_offset(crate::clock::VIETNAM));
    options.format =
        Format::parse_choice(Some(&args.format)).map_err(|e| CliError::usage(e.to_string()))?;
    options.xml_profile = args
        .profile
        .as_deref()
        .map(str::parse::<crate::xml::Profile>)
        .transpose()
        .map_err(CliError::usage)?;
    if options.xml_profile.is_some() && matches!(options.format, Some(Format::Pdf | Format::Cms)) {
        return Err(CliError::usage("--profile applies to XML inputs only"));
    }
    options.level = args.signature.level;
    options.digest = args.signature.digest;
    options.rsa_padding = args.signature.rsa_padding;
    options.reason = args.signature.reason.clone();
    options.location = args.signature.location.clone();
    options.jobs = args.jobs.unwrap_or(0);
    let mut engine = Engine::new(key, options)?;
    if let Some(tsa) = args.signature.timestamper() {
        engine = engine.with_timestamper(Arc::new(tsa));
    }
    let total = inputs.len();
    let mut progress = Progress::new(total, std::io::stderr().is_terminal() && !args.json);
    let summary = engine.run(inputs.into_iter(), &args.out, &mut |o| progress.update(o))?;
    progress.finish();
    report(&summary, args.json);
    if let Some((code, message)) = &summary.aborted {
        eprintln!("signgate: {code}: batch stopped: {message}; re-run to resume");
        return Ok(code.exit_code());
    }
    Ok(if summary.failed.is_empty() { 0 } else { 3 })
}

/// Reads the inputs: the files of `--in DIR`, or the lines of `--list FILE|-`.
fn list_inputs(args: &BatchArgs) -> Result<Vec<PathBuf>, CliError> {
    let missing = |path: &std::path::Path, e: std::io::Error| CliError {
        code: ErrorCode::InputMissing,
        message: format!("cannot read {}: {e}", path.display()),
    };
    if let Some(dir) = &args.input {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| missing(dir, e))? {
            let entry = entry.map_err(|e| missing(dir, e))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                files.push(entry.path());
            }
        }
        files.sort();
        return Ok(files);
    }
    let list = args
        .list
        .as_ref()
        .ok_or_else(|| CliError::usage("give --in DIR or --list FILE"))?;
    let reader: Box<dyn BufRead> = if list.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(list).map_err(|e| missing(list, e))?,
        ))
    };
    let mut files = Vec::new();
    for line in reader.lines() {
        let line = line.map_err(|e| missing(list, e))?;
        let line = line.trim();
        if !line.is_empty() {
            files.push(PathBuf::from(line));
        }
    }
    Ok(files)
}

/// A one-line progress display on a terminal: documents, documents/s, ETA.
struct Progress {
    total: usize,
    done: usize,
    enabled: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(total: usize, enabled: bool) -> Self {
        let now = Instant::now();
        Self {
            total,
            done: 0,
            enabled,
            started: now,
            last: now,
        }
    }

    fn update(&mut self, _outcome: &DocOutcome) {
        self.done += 1;
        if !self.enabled || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        let eta = if rate > 0.0 {
            (self.total.saturating_sub(self.done)) as f64 / rate
        } else {
            0.0
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{}/{} documents  {:.0} docs/s  ETA {:.0}s   ",
            self.done, self.total, rate, eta
        );
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

fn report(summary: &BatchSummary, json: bool) {
    if json {
        let failed: Vec<_> = summary
            .failed
            .iter()
            .map(|f| {
                serde_json::json!({
                    "input": f.input.display().to_string(),
                    "code": f.code.as_str(),
                    "message": f.message,
                })
            })
            .collect();
        let mut value = serde_json::json!({
            "signed": summary.signed,
            "skipped": summary.skipped,
            "failed": failed,
            "elapsed_s": summary.elapsed.as_secs_f64(),
            "docs_per_s": summary.docs_per_s(),
        });
        if let Some((code, message)) = &summary.aborted {
            value["aborted"] = serde_json::json!({"code": code.as_str(), "message": message});
        }
        println!("{value}");
        return;
    }
    for f in &summary.failed {
        eprintln!("failed: {}: {}: {}", f.input.display(), f.code, f.message);
    }
    eprintln!(
        "signed {}, skipped {}, failed {} in {:.2}s ({:.1} docs/s)",
        summary.signed,
        summary.skipped,
        summary.failed.len(),
        summary.elapsed.as_secs_f64(),
        summary.docs_per_s()
    );
}
