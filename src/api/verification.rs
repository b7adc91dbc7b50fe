//! `POST /v1/verify`, and the document reading and verification that submissions share.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{blocking, body, sha256_hex, AppError, AppState, Caller};
use crate::verify;

/// The document (and, for a detached CMS signature, its content) of a verify or submit body:
/// the raw body, or multipart parts `signature` + `content` (or `document`).
pub(super) async fn read_document(
    state: &AppState,
    req: Request,
) -> Result<(Bytes, Option<Bytes>), AppError> {
    let limit = state.settings().max_body_bytes;
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        let bytes = body(Bytes::from_request(req, state).await, limit)?;
        return Ok((bytes, None));
    }
    let mut multipart = axum::extract::Multipart::from_request(req, state)
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    let (mut document, mut content) = (None, None);
    while let Some(field) = multipart.next_field().await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge(limit)
        } else {
            AppError::BadRequest(e.body_text())
        }
    })? {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        match name.as_str() {
            "signature" | "document" => document = Some(bytes),
            "content" => content = Some(bytes),
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown multipart part '{other}' (expected signature, content or document)"
                )))
            }
        }
    }
    let document = document.ok_or_else(|| {
        AppError::BadRequest("multipart body has no 'signature' or 'document' part".into())
    })?;
    Ok((document, content))
}

pub(super) async fn run_verification(
    state: &AppState,
    document: Bytes,
    content: Option<Bytes>,
) -> Result<verify::Report, AppError> {
    let ctx = state.settings().validation_context()?;
    let report = blocking(move || {
        verify::document(
            "document",
            &document,
            content.as_deref(),
            &verify::Policy::default(),
            &ctx,
        )
        .map_err(crate::Error::from)
    })
    .await?;
    state
        .inner
        .metrics
        .verdict(&indication_name(report.indication));
    Ok(report)
}

pub(super) fn indication_name(i: verify::Indication) -> String {
    serde_json::to_value(i)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// `POST /v1/verify`: the validation report of the body (or of multipart `signature` + `content`).
pub(super) async fn verify_document(
    State(state): State<AppState>,
    Caller(caller): Caller,
    req: Request,
) -> Result<Response, AppError> {
    let (document, content) = read_document(&state, req).await?;
    let sha256 = sha256_hex(&document);
    let report = run_verification(&state, document, content).await?;
    let seq = state
        .audit(
            &caller,
            "verify",
            json!({"sha256": sha256, "indication": indication_name(report.indication)}),
        )
        .await?;
    let mut response = Json(report).into_response();
    response
        .headers_mut()
        .insert("signgate-audit-id", HeaderValue::from(seq));
    Ok(response)
}
