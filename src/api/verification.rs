//! `POST /v1/verify`, and the reading of a document (raw or multipart) that submissions share.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{body, AppError, AppState, Caller};

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

/// `POST /v1/verify`: the validation report of the body (or of multipart `signature` + `content`).
pub(super) async fn verify_document(
    State(state): State<AppState>,
    Caller(caller): Caller,
    req: Request,
) -> Result<Response, AppError> {
    let (document, content) = read_document(&state, req).await?;
    let verified = state.services().verify(&caller, document, content).await?;
    let mut response = Json(verified.report).into_response();
    response
        .headers_mut()
        .insert("signgate-audit-id", HeaderValue::from(verified.audit_seq));
    Ok(response)
}
