//! `signgate edxml build|inspect|verify`: QCVN 102:2016 envelopes offline. The document
//! metadata flags ([`DocumentArgs`]) are shared with `signgate route send`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::verify::TrustArgs;
use super::{CliError, KeyArgs};
use crate::edxml::{self, DocumentSpec, FileSpec, OrganSpec};
use crate::verify::Indication;

/// A document's metadata (flags over an optional JSON/TOML file) and its files.
#[derive(Debug, Args)]
pub struct DocumentArgs {
    /// Metadata file, JSON or TOML (fields: from, to, number, notation, type, type_name,
    /// subject, content, date, place, signer, position, competence, due_date, steering_type,
    /// to_places, document_id); the flags below override it.
    #[arg(long, value_name = "FILE")]
    meta: Option<PathBuf>,
    /// The main document (a signed PDF); it becomes the first attachment.
    #[arg(long, value_name = "FILE")]
    pdf: Option<PathBuf>,
    /// Another attachment (repeatable; appendices, annexes).
    #[arg(long = "attach", value_name = "FILE")]
    attach: Vec<PathBuf>,
    /// The sending agency's OrganId.
    #[arg(long)]
    from: Option<String>,
    /// A recipient's OrganId (repeatable).
    #[arg(long)]
    to: Vec<String>,
    /// Document number (CodeNumber).
    #[arg(long)]
    number: Option<String>,
    /// Notation (CodeNotation), e.g. UBND-VP.
    #[arg(long)]
    notation: Option<String>,
    /// Document type code (DocumentType/Type), e.g. 18.
    #[arg(long = "type")]
    document_type: Option<String>,
    /// Document type name, e.g. "Công văn".
    #[arg(long)]
    type_name: Option<String>,
    /// Subject (trích yếu).
    #[arg(long)]
    subject: Option<String>,
    /// Content summary.
    #[arg(long)]
    content: Option<String>,
    /// Promulgation date (yyyy/MM/dd, dd/MM/yyyy or yyyy-MM-dd).
    #[arg(long)]
    date: Option<String>,
    /// Place of promulgation.
    #[arg(long)]
    place: Option<String>,
    /// The signer's full name.
    #[arg(long)]
    signer: Option<String>,
    /// The signer's position, e.g. "Chủ tịch".
    #[arg(long)]
    position: Option<String>,
    /// Signing competence, e.g. "TM. UBND".
    #[arg(long)]
    competence: Option<String>,
    /// Deadline for processing.
    #[arg(long)]
    due_date: Option<String>,
    /// Steering type.
    #[arg(long)]
    steering_type: Option<String>,
    /// A place it is addressed to, as text (repeatable).
    #[arg(long = "to-place")]
    to_places: Vec<String>,
    /// DocumentId (default: {sender},{yyyy/MM/dd},{number}/{notation}).
    #[arg(long)]
    document_id: Option<String>,
}

impl DocumentArgs {
    /// True when a document is described here (a PDF or another attachment).
    pub fn given(&self) -> bool {
        self.pdf.is_some() || !self.attach.is_empty()
    }

    /// The metadata: the file, then the flags over it.
    pub fn spec(&self) -> Result<DocumentSpec, CliError> {
        let base = match &self.meta {
            Some(path) => {
                let bytes = crate::fsio::read_input(path)?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    CliError::usage(format!("{}: metadata is not UTF-8", path.display()))
                })?;
                DocumentSpec::from_text(&text).map_err(crate::Error::from)?
            }
            None => DocumentSpec::default(),
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Ok(base.overlay(DocumentSpec {
            from: self.from.clone().map(OrganSpec::Id),
            to: self.to.iter().cloned().map(OrganSpec::Id).collect(),
            number: text(&self.number),
            notation: text(&self.notation),
            document_type: text(&self.document_type),
            type_name: self.type_name.clone(),
            subject: text(&self.subject),
            content: self.content.clone(),
            date: text(&self.date),
            place: text(&self.place),
            signer: text(&self.signer),
            position: self.position.clone(),
            competence: self.competence.clone(),
            due_date: self.due_date.clone(),
            steering_type: self.steering_type.clone(),
            to_places: self.to_places.clone(),
            document_id: self.document_id.clone(),
        }))
    }

    /// The files, the PDF first, named by their file names.
    pub fn files(&self) -> Result<Vec<FileSpec>, CliError> {
        let mut files = Vec::new();
        for path in self.pdf.iter().chain(self.attach.iter()) {
            let data = crate::fsio::read_input(path)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "document".into());
            files.push(FileSpec {
                name,
                data,
                content_type: None,
                description: None,
            });
        }
        Ok(files)
    }
}

/// `signgate edxml …`.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
pub enum EdxmlCommand {
    /// Build a QCVN 102 envelope from a PDF (+ attachments) and metadata, schema-check it
    /// and sign it (agency names are the OrganIds unless the metadata names them).
    Build {
        #[command(flatten)]
        document: DocumentArgs,
        #[command(flatten)]
        key: KeyArgs,
        /// Output envelope (`-` is stdout).
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },
    /// Print an envelope's header, trace and attachments as JSON (schema-checked, signature
    /// not verified); with --attachment N --out FILE, write attachment N (0-based) instead.
    Inspect {
        /// The envelope (`-` is stdin).
        file: PathBuf,
        /// Extract this attachment (0-based).
        #[arg(long, requires = "out")]
        attachment: Option<usize>,
        /// Where the extracted attachment goes (`-` is stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify an envelope's signature and every part it covers; exit 0 passed, 1 failed,
    /// 2 indeterminate.
    Verify {
        /// The envelope (`-` is stdin).
        file: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        /// Open no network connection (no OCSP/CRL fetch).
        #[arg(long)]
        offline: bool,
    },
}

/// Runs `signgate edxml …`.
pub fn run(cmd: EdxmlCommand) -> Result<u8, CliError> {
    match cmd {
        EdxmlCommand::Build { document, key, out } => {
            let spec = document.spec()?;
            let files = document.files()?;
            let key = super::open_key(&key)?;
            let from = spec
                .from
                .as_ref()
                .map(|f| f.organ_id().to_string())
                .ok_or_else(|| CliError::usage("no sending agency: give --from or from"))?;
            let now = time::OffsetDateTime::now_utc();
            let package = spec
                .package(&from, files, now, &|_| None)
                .map_err(crate::Error::from)?;
            let bytes = package
                .build_signed(key.as_ref(), now)
                .map_err(crate::Error::from)?;
            crate::fsio::write_output(&out, &bytes)?;
            if out.as_os_str() != "-" {
                eprintln!(
                    "{}: {} ({} attachment(s), {} bytes)",
                    out.display(),
                    package.header.document_id,
                    package.attachments.len(),
                    bytes.len()
                );
            }
            Ok(0)
        }
        EdxmlCommand::Inspect {
            file,
            attachment,
            out,
        } => {
            let bytes = crate::fsio::read_input(&file)?;
            let package =
                edxml::parse(&bytes, &edxml::Limits::default()).map_err(crate::Error::from)?;
            if let (Some(n), Some(out)) = (attachment, out) {
                let a = package.attachments.get(n).ok_or_else(|| {
                    CliError::usage(format!(
                        "attachment {n}: the envelope has {}",
                        package.attachments.len()
                    ))
                })?;
                crate::fsio::write_output(&out, &a.data)?;
                return Ok(0);
            }
            println!("{:#}", summary(&package, &bytes));
            Ok(0)
        }
        EdxmlCommand::Verify {
            file,
            trust,
            offline,
        } => {
            let bytes = crate::fsio::read_input(&file)?;
            let ctx = trust.context(offline)?;
            let verdict = edxml::verify(&bytes, &crate::verify::Policy::default(), &ctx)
                .map_err(crate::Error::from)?;
            let indication = verdict.report.indication;
            println!(
                "{:#}",
                json!({
                    "file": file.display().to_string(),
                    "passed": verdict.passed,
                    "reason": verdict.reason,
                    "indication": indication,
                    "content_digest": verdict.content_digest,
                    "attachments": verdict.attachments.iter().map(|a| json!({
                        "name": a.name, "content_id": a.content_id, "intact": a.intact, "pdf": a.pdf,
                    })).collect::<Vec<_>>(),
                    "report": verdict.report,
                })
            );
            Ok(match (verdict.passed, indication) {
                (true, _) => 0,
                (false, Indication::Indeterminate) => 2,
                (false, _) => 1,
            })
        }
    }
}

/// The JSON summary `edxml inspect` prints.
fn summary(p: &edxml::Package, bytes: &[u8]) -> serde_json::Value {
    let h = &p.header;
    let organ = |o: &edxml::Organ| json!({"organ_id": o.organ_id, "organ_name": o.organ_name});
    let signed = memchr_signature(bytes);
    json!({
        "document_id": h.document_id,
        "from": organ(&h.from),
        "to": h.to.iter().map(organ).collect::<Vec<_>>(),
        "number": h.code_number,
        "notation": h.code_notation,
        "type": h.document_type,
        "type_name": h.document_type_name,
        "subject": h.subject,
        "content": h.content,
        "date": edxml::format_date(h.promulgation_date),
        "place": h.promulgation_place,
        "signer": h.signer.full_name,
        "position": h.signer.position,
        "competence": h.signer.competence,
        "due_date": h.due_date.map(edxml::format_date),
        "steering_type": h.steering_type,
        "to_places": h.to_places,
        "business_doc_type": p.business.doc_type.code(),
        "trace": p.traces.iter().map(|t| json!({
            "organ_id": t.organ_id, "timestamp": edxml::format_timestamp(t.timestamp),
        })).collect::<Vec<_>>(),
        "attachments": p.attachments.iter().enumerate().map(|(n, a)| json!({
            "n": n, "name": a.name, "content_type": a.content_type, "content_id": a.content_id,
            "size": a.data.len(), "sha256": hex::encode(openssl::sha::sha256(&a.data)),
        })).collect::<Vec<_>>(),
        "signed": signed,
    })
}

/// Whether the envelope carries an XML-DSig `SignatureValue` (not checked here).
fn memchr_signature(bytes: &[u8]) -> bool {
    bytes.windows(14).any(|w| w == b"SignatureValue")
}
