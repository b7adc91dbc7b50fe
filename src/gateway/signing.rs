//! Signing one document for a client: the key granted to it, the one format rule, the
//! visible seal or attachment stamp, the signature off the runtime (streaming for a large
//! spooled PDF), and its `sign` audit record.

use axum::body::Bytes;
use serde_json::json;
use time::OffsetDateTime;

use super::{blocking, Actor, GatewayError, Services};
use crate::keys::KeySource;
use crate::pdf::stamp::Stamp;
use crate::pdf::{PageSelector, VisibleSignature};
use crate::pki::alg::{sha256_hex, DigestAlgorithm, RsaPadding};
use crate::sign::{Format, FormatHints, Level, PdfDetails, SignRequest, TimeStamper};
use crate::store::Client;

/// What the client asked for (`POST /v1/sign?…`), typed.
#[derive(Debug, Clone)]
pub struct SignSpec {
    /// The key's name.
    pub key: String,
    /// Explicit format; none chooses by [`crate::sign::select_format`] (no output name: over
    /// HTTP only an explicit `cms` selects CMS).
    pub format: Option<Format>,
    /// XML-DSig profile for an XML document.
    pub profile: Option<crate::xml::Profile>,
    /// Baseline level.
    pub level: Level,
    /// Page of the seal.
    pub page: PageSelector,
    /// Rectangle of the seal or stamp, points.
    pub rect: Option<[f64; 4]>,
    /// Document number: signs with the attachment stamp instead of the seal.
    pub doc_number: Option<String>,
}

/// The visible mark an officer picks at the stamp desk (Decree 30/2020); over the API the mark
/// follows [`SignSpec`] (the attachment stamp with a document number, else the key's seal).
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// The official's signature with this handwritten signature image (PNG), in the rectangle.
    OfficialSignature {
        /// The handwritten signature, PNG.
        image_png: Vec<u8>,
    },
    /// The key's seal, centred where the rectangle says.
    Seal,
    /// The key's seal over the left third of the most recent signature on the page (the
    /// official's); the rectangle is not used.
    SealOverSignature,
    /// The attachment stamp (with [`SignSpec::doc_number`] when given).
    Attachment,
    /// The electronic copy stamp (with [`SignSpec::doc_number`] when given).
    Copy,
}

impl Mark {
    /// Its name in the audit record and on the desk's form.
    pub fn name(&self) -> &'static str {
        match self {
            Self::OfficialSignature { .. } => "signature",
            Self::Seal => "seal",
            Self::SealOverSignature => "seal-over-signature",
            Self::Attachment => "attachment",
            Self::Copy => "copy",
        }
    }

    fn needs_seal(&self) -> bool {
        matches!(self, Self::Seal | Self::SealOverSignature)
    }
}

/// A received document: in memory, or spooled to a temporary file (deleted when dropped).
pub enum Document {
    /// In memory.
    Memory(Bytes),
    /// In a temporary file, with its SHA-256 (hex).
    File {
        /// The temporary file.
        path: tempfile::TempPath,
        /// Its SHA-256, hex.
        sha256: String,
    },
}

/// The signed document: in memory, or an open (already unlinked) file and its length.
pub enum SignedOutput {
    /// In memory.
    Memory(Vec<u8>),
    /// An open file and its length.
    File(std::fs::File, u64),
}

/// A signature made for a client.
pub struct Signed {
    /// The format chosen.
    pub format: Format,
    /// The signed bytes.
    pub output: SignedOutput,
    /// Sequence number of its `sign` audit record.
    pub audit_seq: i64,
}

/// The document to sign: in memory, or a spooled PDF signed streaming.
enum Source {
    Memory(Bytes),
    File(tempfile::TempPath),
}

impl Services {
    /// Signs `document` for `caller` as `spec` says, and records it.
    pub async fn sign(
        &self,
        caller: &Client,
        spec: SignSpec,
        document: Document,
    ) -> Result<Signed, GatewayError> {
        let record = self.granted_key(caller, &spec.key).await?;
        self.sign_as(&Actor::of(caller), record, spec, document)
            .await
    }

    /// Signs `document` with the key of `record` (already checked for `actor`) as `spec`
    /// says, and records it under `actor`.
    pub(crate) async fn sign_as(
        &self,
        actor: &Actor,
        record: crate::store::KeyRecord,
        spec: SignSpec,
        document: Document,
    ) -> Result<Signed, GatewayError> {
        self.sign_marked(actor, record, spec, None, document).await
    }

    /// [`Services::sign_as`] with the visible mark `mark` instead of the one [`SignSpec`]
    /// implies; a seal needs the key's bound seal image.
    pub(crate) async fn sign_marked(
        &self,
        actor: &Actor,
        record: crate::store::KeyRecord,
        spec: SignSpec,
        mark: Option<Mark>,
        document: Document,
    ) -> Result<Signed, GatewayError> {
        if mark.as_ref().is_some_and(Mark::needs_seal) && record.seal_path.is_none() {
            return Err(GatewayError::Invalid(format!(
                "key {} has no seal image bound",
                record.name
            )));
        }
        let mark_name = mark.as_ref().map(Mark::name);
        let settings = self.settings().clone();
        let resolved = resolve_format(&document, spec.format).await?;
        if spec.profile.is_some() && resolved != Format::Xml {
            return Err(GatewayError::Invalid(
                "profile applies to XML documents only".into(),
            ));
        }
        let seal = match &record.seal_path {
            Some(path) => Some(
                tokio::fs::read(path)
                    .await
                    .map_err(|e| GatewayError::Io(format!("seal image {path}: {e}")))?,
            ),
            None => None,
        };
        let key = self.signing_key(&record).await?;
        let seal_size_mm = record.seal_size_mm.unwrap_or(36.0);
        let (input, input_hash) = match document {
            Document::Memory(bytes) => {
                let hash = sha256_hex(&bytes);
                (Source::Memory(bytes), hash)
            }
            Document::File { path, sha256 } => {
                if resolved == Format::Pdf {
                    (Source::File(path), sha256)
                } else {
                    // Only PDFs sign streaming; other formats are bounded by max_body_mib.
                    let bytes = tokio::fs::read(&path)
                        .await
                        .map_err(|e| GatewayError::Io(format!("reading the spooled body: {e}")))?;
                    (Source::Memory(Bytes::from(bytes)), sha256)
                }
            }
        };
        let spool_dir = settings.spool_dir.clone();
        let SignSpec {
            level,
            page,
            rect,
            doc_number,
            profile,
            ..
        } = spec;
        let (output, output_hash) = blocking(move || {
            let signing_time = OffsetDateTime::now_utc().to_offset(crate::clock::VIETNAM);
            let visible = if resolved == Format::Pdf {
                visible_signature(
                    &*key,
                    page,
                    rect,
                    seal,
                    seal_size_mm,
                    doc_number,
                    mark,
                    signing_time,
                )
            } else {
                None
            };
            let timestamper = settings.timestamper();
            let request = SignRequest {
                format: Some(resolved),
                level,
                digest: DigestAlgorithm::Sha256,
                rsa_padding: RsaPadding::Pkcs1,
                signing_time,
                timestamper: timestamper.as_ref().map(|t| t as &dyn TimeStamper),
                pdf: PdfDetails {
                    visible,
                    ..PdfDetails::default()
                },
                xml_profile: profile,
            };
            match input {
                Source::Memory(bytes) => {
                    let signed = crate::sign::sign_document(&bytes, &*key, &request)?;
                    let hash = sha256_hex(&signed.bytes);
                    Ok((SignedOutput::Memory(signed.bytes), hash))
                }
                Source::File(path) => {
                    let out = spool_dir.join(format!("{}.pdf", crate::ids::random_id("out_")));
                    crate::sign::sign_pdf_path(&path, &out, &*key, &request)?;
                    let (file, len, hash) = open_output(&out)?;
                    Ok((SignedOutput::File(file, len), hash))
                }
            }
        })
        .await?;
        self.metrics().signature(resolved.name());
        let mut subject = json!({
            "key": record.name,
            "format": resolved.name(),
            "input_sha256": input_hash,
            "output_sha256": output_hash,
        });
        if let Some(name) = mark_name {
            subject["stamp"] = json!(name);
        }
        let audit_seq = self.audit(actor, "sign", subject).await?;
        Ok(Signed {
            format: resolved,
            output,
            audit_seq,
        })
    }
}

/// The first KiB of a spooled body (enough to tell its format).
/// The format `document` is signed in ([`crate::sign::select_format`] on its first bytes).
async fn resolve_format(
    document: &Document,
    explicit: Option<Format>,
) -> Result<Format, GatewayError> {
    let head = match document {
        Document::Memory(bytes) => bytes.slice(..bytes.len().min(1024)).to_vec(),
        Document::File { path, .. } => read_head(path).await?,
    };
    let hints = FormatHints {
        explicit,
        ..Default::default()
    };
    Ok(crate::sign::select_format(&head, &hints).map_err(crate::Error::from)?)
}

/// Whether [`Services::sign`] signs `document` streaming from its file (a spooled PDF) rather
/// than in memory, so the caller can reserve the memory it will take.
pub async fn signs_streaming(
    document: &Document,
    explicit: Option<Format>,
) -> Result<bool, GatewayError> {
    Ok(matches!(document, Document::File { .. })
        && resolve_format(document, explicit).await? == Format::Pdf)
}

async fn read_head(path: &std::path::Path) -> Result<Vec<u8>, GatewayError> {
    use tokio::io::AsyncReadExt;
    let fail = |e: std::io::Error| GatewayError::Io(format!("reading the spooled body: {e}"));
    let mut head = Vec::with_capacity(1024);
    tokio::fs::File::open(path)
        .await
        .map_err(fail)?
        .take(1024)
        .read_to_end(&mut head)
        .await
        .map_err(fail)?;
    Ok(head)
}

/// Opens the signed file at `path`, hashes it, rewinds, and unlinks the name (the open handle
/// keeps the data until the response is sent); returns the handle, length and SHA-256 hex.
fn open_output(path: &std::path::Path) -> Result<(std::fs::File, u64, String), crate::Error> {
    use std::io::Seek;
    let fail = |e: std::io::Error| {
        crate::Error::from(crate::fsio::IoError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let _ = std::fs::remove_file(path);
    let mut hash = DigestAlgorithm::Sha256.hasher();
    let len = std::io::copy(&mut file, &mut hash).map_err(fail)?;
    file.rewind().map_err(fail)?;
    Ok((file, len, hex::encode(hash.finish())))
}

/// The visible part of a signature: `mark` when given; else (the API) the attachment stamp
/// when `doc_number` is given, else the key's bound seal at `rect` (default bottom right),
/// else none.
#[allow(clippy::too_many_arguments)]
fn visible_signature(
    key: &dyn KeySource,
    page: PageSelector,
    rect: Option<[f64; 4]>,
    seal: Option<Vec<u8>>,
    seal_size_mm: f64,
    doc_number: Option<String>,
    mark: Option<Mark>,
    at: OffsetDateTime,
) -> Option<VisibleSignature> {
    let diameter_pt = seal_size_mm * 72.0 / 25.4;
    let (stamp, rect) = match mark {
        None => match (doc_number, seal) {
            (Some(number), _) => (
                Stamp::Attachment {
                    doc_number: Some(number),
                },
                rect,
            ),
            (None, Some(image_png)) => (
                Stamp::Seal {
                    image_png,
                    diameter_pt,
                },
                Some(rect.unwrap_or([400.0, 90.0, diameter_pt, diameter_pt])),
            ),
            (None, None) => return None,
        },
        Some(Mark::OfficialSignature { image_png }) => {
            (Stamp::OfficialSignature { image_png }, rect)
        }
        Some(Mark::Seal) => (
            Stamp::Seal {
                image_png: seal?,
                diameter_pt,
            },
            rect,
        ),
        Some(Mark::SealOverSignature) => (
            Stamp::Seal {
                image_png: seal?,
                diameter_pt,
            },
            None,
        ),
        Some(Mark::Attachment) => (Stamp::Attachment { doc_number }, rect),
        Some(Mark::Copy) => (Stamp::Copy { doc_number }, rect),
    };
    Some(stamp.visible(key.certificate(), page, rect, at))
}
