//! `signgate directory import|list|show|resolve|merge|rename|dissolve`: the agency directory
//! in the gateway's database, thin over [`crate::directory`].

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::json;

use super::gateway::{open, runtime, StoreArgs};
use super::CliError;
use crate::directory::{committee_name, CertIdentityKind, Structure};

/// `signgate directory …`.
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Import a unit file (code,name,level,parent_code,type) and optionally agency identifiers.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// `2024` (province/district/commune) or `2025` (province/commune).
        #[arg(long)]
        structure: Structure,
        /// The GSO unit CSV (e.g. data/vn-admin/2024/units.csv).
        #[arg(long)]
        units: PathBuf,
        /// Agency identifiers: gso_code,organ_id_qcvn102,organ_id_d20.
        #[arg(long)]
        codes: Option<PathBuf>,
    },
    /// List units (JSON lines), optionally below one parent or at one level.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// `2024` or `2025`.
        #[arg(long)]
        structure: Structure,
        /// Only the children of this GSO code.
        #[arg(long)]
        parent: Option<String>,
        /// Only `province`, `district` or `commune`.
        #[arg(long)]
        level: Option<String>,
    },
    /// Show one unit and its recorded changes.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// `2024` or `2025`.
        #[arg(long)]
        structure: Structure,
        /// Its GSO code.
        code: String,
    },
    /// Where documents addressed to an agency identifier go now.
    Resolve {
        #[command(flatten)]
        store: StoreArgs,
        /// The agency identifier (either form).
        organ_id: String,
        /// Apply only the changes in force on this date (YYYY-MM-DD); default: all.
        #[arg(long)]
        on: Option<String>,
    },
    /// Merge units into another of the same level (documents to them are redirected).
    Merge {
        #[command(flatten)]
        store: StoreArgs,
        /// `2024` or `2025`.
        #[arg(long)]
        structure: Structure,
        /// GSO codes of the units merged away.
        #[arg(required = true)]
        old: Vec<String>,
        /// GSO code of the unit they merge into.
        #[arg(long)]
        into: String,
        /// Date it takes effect (YYYY-MM-DD).
        #[arg(long)]
        effective: String,
    },
    /// Rename a unit.
    Rename {
        #[command(flatten)]
        store: StoreArgs,
        /// `2024` or `2025`.
        #[arg(long)]
        structure: Structure,
        /// Its GSO code.
        code: String,
        /// The new short name (without the unit type).
        #[arg(long)]
        name: String,
        /// Date it takes effect (YYYY-MM-DD).
        #[arg(long)]
        effective: String,
    },
    /// Record, remove or list the certificate identities of an agency: an envelope "From" it
    /// must be signed with a certificate that matches one (subject organization, tax code
    /// `UID=MST:…`, or SHA-256 fingerprint), else it is refused with 02.
    Cert {
        #[command(flatten)]
        store: StoreArgs,
        /// `add`, `remove` or `list`.
        action: CertAction,
        /// The agency (edXML OrganId).
        #[arg(long)]
        organ: String,
        /// The subject organization (`O`) of its certificates.
        #[arg(long, conflicts_with_all = ["tax_code", "fingerprint"])]
        organization: Option<String>,
        /// The tax code in its certificates' subject (`UID=MST:…`).
        #[arg(long, conflicts_with = "fingerprint")]
        tax_code: Option<String>,
        /// The SHA-256 fingerprint of one certificate (hex; `:` ignored).
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// Dissolve a unit with no active units below it.
    Dissolve {
        #[command(flatten)]
        store: StoreArgs,
        /// `2024` or `2025`.
        #[arg(long)]
        structure: Structure,
        /// Its GSO code.
        code: String,
        /// Date it takes effect (YYYY-MM-DD).
        #[arg(long)]
        effective: String,
    },
}

/// What `directory cert` does.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CertAction {
    /// Record an identity.
    Add,
    /// Remove an identity.
    Remove,
    /// List the identities recorded for the agency.
    List,
}

/// `directory cert`: one identity from the flags (for add/remove).
fn cert_identity(
    organization: Option<String>,
    tax_code: Option<String>,
    fingerprint: Option<String>,
) -> Result<(CertIdentityKind, String), CliError> {
    match (organization, tax_code, fingerprint) {
        (Some(o), None, None) => Ok((CertIdentityKind::Organization, o)),
        (None, Some(t), None) => Ok((CertIdentityKind::TaxCode, t)),
        (None, None, Some(f)) => Ok((CertIdentityKind::Fingerprint, f)),
        _ => Err(CliError::usage(
            "give one of --organization, --tax-code or --fingerprint",
        )),
    }
}

fn read_text(path: &Path) -> Result<String, CliError> {
    let bytes = crate::fsio::read_input(path)?;
    String::from_utf8(bytes)
        .map_err(|_| CliError::usage(format!("{} is not UTF-8", path.display())))
}

fn date(text: &str) -> Result<time::Date, CliError> {
    time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| CliError::usage(format!("'{text}' is not a YYYY-MM-DD date")))
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(value).unwrap_or_default());
}

/// Runs a directory command.
pub fn run(cmd: DirectoryCommand) -> Result<u8, CliError> {
    runtime()?.block_on(async move {
        match cmd {
            DirectoryCommand::Import {
                store,
                structure,
                units,
                codes,
            } => {
                let units = read_text(&units)?;
                let codes = codes.as_deref().map(read_text).transpose()?;
                let db = open(&store.config(None)?).await?;
                let summary = db
                    .directory()
                    .import(structure, &units, codes.as_deref())
                    .await?;
                print_json(&json!({"structure": structure.as_str(), "imported": summary}));
                db.close().await;
            }
            DirectoryCommand::List {
                store,
                structure,
                parent,
                level,
            } => {
                let db = open(&store.config(None)?).await?;
                let dir = db.directory();
                for u in dir
                    .list(structure, parent.as_deref(), level.as_deref())
                    .await?
                {
                    print_json(&json!({"unit": u, "agency": committee_name(&u)}));
                }
                db.close().await;
            }
            DirectoryCommand::Show {
                store,
                structure,
                code,
            } => {
                let db = open(&store.config(None)?).await?;
                let dir = db.directory();
                let u = dir.unit(structure, &code).await?;
                let changes = dir.changes(structure, Some(&code)).await?;
                print_json(&json!({"unit": u, "agency": committee_name(&u), "changes": changes}));
                db.close().await;
            }
            DirectoryCommand::Resolve {
                store,
                organ_id,
                on,
            } => {
                let on = on.as_deref().map(date).transpose()?;
                let db = open(&store.config(None)?).await?;
                let r = db.directory().resolve_on(&organ_id, on).await?;
                print_json(&json!({
                    "organ_id": r.organ_id,
                    "redirected_from": r.redirected_from,
                    "agency": committee_name(&r.unit),
                    "unit": r.unit,
                }));
                db.close().await;
            }
            DirectoryCommand::Merge {
                store,
                structure,
                old,
                into,
                effective,
            } => {
                let effective = date(&effective)?;
                let db = open(&store.config(None)?).await?;
                db.directory()
                    .merge(structure, &old, &into, effective)
                    .await?;
                print_json(&json!({"merged": old, "into": into, "structure": structure.as_str()}));
                db.close().await;
            }
            DirectoryCommand::Rename {
                store,
                structure,
                code,
                name,
                effective,
            } => {
                let effective = date(&effective)?;
                let db = open(&store.config(None)?).await?;
                db.directory()
                    .rename(structure, &code, &name, effective)
                    .await?;
                print_json(&json!({"renamed": code, "name": name}));
                db.close().await;
            }
            DirectoryCommand::Cert {
                store,
                action,
                organ,
                organization,
                tax_code,
                fingerprint,
            } => {
                let db = open(&store.config(None)?).await?;
                let dir = db.directory();
                match action {
                    CertAction::List => {
                        for row in dir.certificate_identities(&organ).await? {
                            print_json(&row);
                        }
                    }
                    CertAction::Add => {
                        let (kind, value) = cert_identity(organization, tax_code, fingerprint)?;
                        dir.bind_certificate(&organ, kind, &value).await?;
                        print_json(&json!({"organ_id": organ, "added": kind.as_str()}));
                    }
                    CertAction::Remove => {
                        let (kind, value) = cert_identity(organization, tax_code, fingerprint)?;
                        dir.unbind_certificate(&organ, kind, &value).await?;
                        print_json(&json!({"organ_id": organ, "removed": kind.as_str()}));
                    }
                }
                db.close().await;
            }
            DirectoryCommand::Dissolve {
                store,
                structure,
                code,
                effective,
            } => {
                let effective = date(&effective)?;
                let db = open(&store.config(None)?).await?;
                db.directory().dissolve(structure, &code, effective).await?;
                print_json(&json!({"dissolved": code}));
                db.close().await;
            }
        }
        Ok(0)
    })
}
