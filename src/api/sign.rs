//! `POST /v1/sign`: one document signed with a key of the caller's agency, off the runtime.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::{blocking, body, sha256_hex, AppError, AppState, Caller};
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

/// `POST /v1/sign`: the document as body, options as query; the signed bytes back.
pub(super) async fn sign(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<SignQuery>, axum::extract::rejection::QueryRejection>,
    input: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let input = body(input, state.inner.settings.max_body_bytes)?;
    let record = state.granted_key(&caller, &q.key).await?;
    let format = parse_format(q.format.as_deref())?;
    let level: Level = q
        .level
        .as_deref()
        .unwrap_or("b-b")
        .parse()
        .map_err(AppError::BadRequest)?;
    let xml_profile = q
        .profile
        .as_deref()
        .map(str::parse::<crate::xml::Profile>)
        .transpose()
        .map_err(AppError::BadRequest)?;
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
    let settings = state.inner.settings.clone();
    let seal_size_mm = record.seal_size_mm.unwrap_or(36.0);
    let doc_number = q.doc_number.clone();
    let input_hash = sha256_hex(&input);
    let signed = blocking(move || {
        let signing_time = OffsetDateTime::now_utc().to_offset(crate::sign::VIETNAM);
        let resolved = format.unwrap_or_else(|| Format::detect(&input));
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
        crate::sign::sign_document(&input, &*key, &request)
    })
    .await?;
    let format_name = match signed.format {
        Format::Pdf => "pdf",
        Format::Cms => "cms",
        Format::Xml => "xml",
    };
    state.inner.metrics.signature(format_name);
    let seq = state
        .audit(
            &caller,
            "sign",
            json!({
                "key": record.name,
                "format": format_name,
                "input_sha256": input_hash,
                "output_sha256": sha256_hex(&signed.bytes),
            }),
        )
        .await?;
    let content_type = match signed.format {
        Format::Pdf => "application/pdf",
        Format::Cms => "application/pkcs7-signature",
        Format::Xml => "application/xml",
    };
    let mut response = (StatusCode::OK, signed.bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert("signgate-audit-id", HeaderValue::from(seq));
    Ok(response)
}

/// `?format=` / `"format"`: none or `auto` detects it from the content.
pub(super) fn parse_format(text: Option<&str>) -> Result<Option<Format>, AppError> {
    match text {
        None | Some("") | Some("auto") => Ok(None),
        Some("pdf") => Ok(Some(Format::Pdf)),
        Some("cms") => Ok(Some(Format::Cms)),
        Some("xml") => Ok(Some(Format::Xml)),
        Some(other) => Err(AppError::BadRequest(format!(
            "format '{other}' is not pdf, cms or xml"
        ))),
    }
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
        let when = crate::sign::display_time(at);
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
