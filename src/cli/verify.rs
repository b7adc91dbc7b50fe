//! `signgate verify`: the validation report of a PDF or CMS signature, as JSON or text.

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
    /// Signed file: a PDF, or a CMS/PKCS#7 signature (.p7s/.p7m).
    file: PathBuf,
    /// The signed content of a detached CMS signature.
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
    /// Output format.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    format: String,
}

pub fn run(args: VerifyArgs) -> Result<u8, CliError> {
    let ctx = args.trust.context(args.offline)?;
    let policy = verify::Policy {
        min_rsa_bits: args.min_rsa_bits,
        require_revocation: !args.allow_unknown_revocation,
    };
    let input = fsio::read_input(&args.file)?;
    let content = args.content.as_deref().map(fsio::read_input).transpose()?;
    let name = args.file.display().to_string();
    let report = verify::document(&name, &input, content.as_deref(), &policy, &ctx)
        .map_err(crate::Error::from)?;
    if args.format == "json" {
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| CliError::usage(e.to_string()))?;
        println!("{json}");
    } else {
        print!("{}", text_summary(&report));
    }
    Ok(match report.indication {
        Indication::TotalPassed => 0,
        Indication::TotalFailed => 1,
        Indication::Indeterminate => 2,
    })
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
