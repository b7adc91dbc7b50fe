//! `POST /v1/sign`: one document signed with a key of the caller's agency, off the runtime.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::{blocking, sha256_hex, spool, AppError, AppState, Caller};
use crate::keys::KeySource;
use crate::pdf::appearance::Appearance;
use crate::pdf::{PageSelector, Placement, VisibleSignature};
use crate::pki::alg::{DigestAlgorithm, RsaPadding};
use crate::sign::{Format, Level, PdfDetails, SignRequest, TimeStamper};

/// Query of `POST /v1/sign`.
#[derive(Debug, Deserialize)]
pub struct SignQuery {
    key: String,
    format: Option<String>,
    profile: Option<String>,
    level: Option<String>,
    page: Option<i64>,
    rect: Option<String>,
    doc_number: Option<String>,
}

/// `POST /v1/sign`: the document as body, options as query; the signed bytes back. A body
/// above [`crate::pdf::STREAMING_THRESHOLD`] is spooled to disk; a PDF that large is signed
/// by the streaming path and its result streamed from disk, so memory stays flat.
pub(super) async fn sign(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<SignQuery>, axum::extract::rejection::QueryRejection>,
    input: Body,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let settings = state.inner.settings.clone();
    let input = spool::receive(
        input,
        settings.max_body_bytes,
        crate::pdf::STREAMING_THRESHOLD,
        &settings.spool_dir,
    )
    .await?;
    let record = state.granted_key(&caller, &q.key).await?;
    let format = parse_format(q.format.as_deref())?;
    let level: Level = q
        .level
        .as_deref()
        .unwrap_or("b-b")
        .parse()
        .map_err(AppError::from)?;
    let xml_profile = q
        .profile
        .as_deref()
        .map(str::parse::<crate::xml::Profile>)
        .transpose()
        .map_err(AppError::from)?;
    let page = match q.page {
        None | Some(-1) => PageSelector::Last,
        Some(n) if n >= 1 => PageSelector::Number(
            u32::try_from(n).map_err(|_| AppError::BadRequest("page is too large".into()))?,
        ),
        Some(_) => {
            return Err(AppError::BadRequest(
                "page must be 1 or more, or -1 for the last page".into(),
            ))
        }
    };
    let rect = q.rect.as_deref().map(parse_rect).transpose()?;
    let seal = match &record.seal_path {
        Some(path) => Some(
            tokio::fs::read(path)
                .await
                .map_err(|e| AppError::Internal(format!("seal image {path}: {e}")))?,
        ),
        None => None,
    };
    let key = state.signing_key(&record).await?;
    let seal_size_mm = record.seal_size_mm.unwrap_or(36.0);
    let doc_number = q.doc_number.clone();
    let (input, input_hash) = match input {
        spool::Input::Memory(bytes) => {
            let hash = sha256_hex(&bytes);
            (Source::Memory(bytes), hash)
        }
        spool::Input::File { path, sha256 } => {
            let head = read_head(&path).await?;
            let resolved = format.unwrap_or_else(|| Format::detect(&head));
            if resolved == Format::Pdf {
                (Source::File(path), sha256)
            } else {
                // Only PDFs sign streaming; other formats are bounded by max_body_mib.
                let bytes = tokio::fs::read(&path)
                    .await
                    .map_err(|e| AppError::Internal(format!("reading the spooled body: {e}")))?;
                (Source::Memory(Bytes::from(bytes)), sha256)
            }
        }
    };
    let spool_dir = settings.spool_dir.clone();
    let (resolved, output, output_hash) = blocking(move || {
        let signing_time = OffsetDateTime::now_utc().to_offset(crate::clock::VIETNAM);
        let resolved = match &input {
            Source::Memory(bytes) => format.unwrap_or_else(|| Format::detect(bytes)),
            Source::File(_) => Format::Pdf,
        };
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
            xml_profile,
        };
        match input {
            Source::Memory(bytes) => {
                let signed = crate::sign::sign_document(&bytes, &*key, &request)?;
                let hash = sha256_hex(&signed.bytes);
                Ok((signed.format, Output::Memory(signed.bytes), hash))
            }
            Source::File(path) => {
                let out = spool_dir.join(format!("{}.pdf", super::random_id("out_")));
                crate::sign::sign_pdf_path(&path, &out, &*key, &request)?;
                let (file, len, hash) = open_output(&out)?;
                Ok((Format::Pdf, Output::File(file, len), hash))
            }
        }
    })
    .await?;
    let format_name = resolved.name();
    state.inner.metrics.signature(format_name);
    let seq = state
        .audit(
            &caller,
            "sign",
            json!({
                "key": record.name,
                "format": format_name,
                "input_sha256": input_hash,
                "output_sha256": output_hash,
            }),
        )
        .await?;
    let content_type = resolved.media_type();
    let mut response = match output {
        Output::Memory(bytes) => (StatusCode::OK, bytes).into_response(),
        Output::File(file, len) => {
            let mut r = (StatusCode::OK, spool::FileBody::body(file, len)).into_response();
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert("signgate-audit-id", HeaderValue::from(seq));
    Ok(response)
}

/// The document to sign: in memory, or a spooled PDF signed streaming.
enum Source {
    Memory(Bytes),
    File(tempfile::TempPath),
}

/// The signed document: in memory, or an open (already unlinked) file and its length.
enum Output {
    Memory(Vec<u8>),
    File(std::fs::File, u64),
}

/// The first KiB of a spooled body (enough to tell its format).
async fn read_head(path: &std::path::Path) -> Result<Vec<u8>, AppError> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::with_capacity(1024);
    tokio::fs::File::open(path)
        .await
        .map_err(|e| AppError::Internal(format!("reading the spooled body: {e}")))?
        .take(1024)
        .read_to_end(&mut head)
        .await
        .map_err(|e| AppError::Internal(format!("reading the spooled body: {e}")))?;
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

/// `?format=` / `"format"`: none or `auto` detects it from the content.
pub(super) fn parse_format(text: Option<&str>) -> Result<Option<Format>, AppError> {
    Ok(Format::parse_choice(text)?)
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

fn parse_rect(text: &str) -> Result<[f64; 4], AppError> {
    crate::pdf::parse_rect(text)
        .ok_or_else(|| AppError::BadRequest(format!("rect '{text}' must be x,y,w,h in points")))
}
