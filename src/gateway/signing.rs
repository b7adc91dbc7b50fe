//! Signing one document for a client: the key granted to it, the one format rule, the
//! visible seal or attachment stamp, the signature off the runtime (streaming for a large
//! spooled PDF), and its `sign` audit record.

use axum::body::Bytes;
use serde_json::json;
use time::OffsetDateTime;

use super::{blocking, Actor, GatewayError, Services};
use crate::keys::KeySource;
use crate::pdf::appearance::Appearance;
use crate::pdf::{PageSelector, Placement, VisibleSignature};
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
        let audit_seq = self
            .audit(
                actor,
                "sign",
                json!({
                    "key": record.name,
                    "format": resolved.name(),
                    "input_sha256": input_hash,
                    "output_sha256": output_hash,
                }),
            )
            .await?;
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

/// The visible part of an API signature: the attachment stamp when `doc_number` is given,
/// else the key's bound seal, else none.
fn visible_signature(
    key: &dyn KeySource,
    page: PageSelector,
    rect: Option<[f64; 4]>,
    seal: Option<Vec<u8>>,
    seal_size_mm: f64,
    doc_number: Option<String>,
    at: OffsetDateTime,
) -> Option<VisibleSignature> {
    let to_rect = |r: [f64; 4]| Placement::Rect {
        x: r[0],
        y: r[1],
        w: r[2],
        h: r[3],
    };
    if let Some(number) = doc_number {
        let cert = key.certificate();
        let agency = crate::pki::subject_organization(cert)
            .or_else(|| crate::pki::subject_common_name(cert))
            .unwrap_or_default();
        let when = crate::clock::display_time(at);
        let lines = vec![
            agency,
            format!("Số: {number}"),
            format!("Thời gian ký: {when}"),
        ];
        let (w, h) = Appearance::text_size(&lines);
        return Some(VisibleSignature {
            page: PageSelector::Number(1),
            placement: rect
                .map(to_rect)
                .unwrap_or(Placement::TopRightStamp { w, h }),
            appearance: Appearance::Text { lines },
        });
    }
    let image_png = seal?;
    let d = seal_size_mm * 72.0 / 25.4;
    Some(VisibleSignature {
        page,
        placement: to_rect(rect.unwrap_or([400.0, 90.0, d, d])),
        appearance: Appearance::Seal { image_png },
    })
}
