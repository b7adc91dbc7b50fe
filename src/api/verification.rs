//! `POST /v1/verify`, and the reading of a document (raw or multipart) that submissions share.
//!
//! A body is kept in memory only up to `[limits] spool_threshold_kib` while it arrives and is
//! spooled to disk beyond; the verification then reserves its size from the gateway's body
//! memory budget (`[limits] body_memory_mib`) before reading it back, so concurrent large
//! bodies wait for memory instead of all being held at once.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{spool, AppError, AppState, Caller};
use crate::gateway::limits::BodyBudget;

/// Times a document's size that a verification holds in memory: the body, and the copies
/// the PDF parser makes (measured: a 24 MiB body raised the peak RSS by about 66 MiB).
pub(super) const VERIFY_COPIES: u64 = 3;

/// A document read for verification: the document, the content of a detached CMS signature,
/// and the body memory reserved for them (released when dropped).
pub(super) struct Received {
    /// The signed document (or detached signature).
    pub document: Bytes,
    /// The signed content of a detached signature.
    pub content: Option<Bytes>,
    /// The reservation in the body memory budget.
    pub budget: BodyBudget,
}

/// The document (and, for a detached CMS signature, its content) of a verify or submit body:
/// the raw body, or multipart parts `signature` + `content` (or `document`). `copies` is how
/// many times the service will hold the bytes in memory (reserved from the budget).
pub(super) async fn read_document(
    state: &AppState,
    req: Request,
    copies: u64,
) -> Result<Received, AppError> {
    let settings = state.settings();
    let limit = settings.max_body_bytes;
    let (parts, body) = req.into_parts();
    let (input, len) = spool::receive_counted(
        body,
        limit,
        settings.limits.spool_threshold,
        &settings.spool_dir,
    )
    .await?;
    let budget = state
        .limiter()
        .reserve_memory(len.saturating_mul(copies.max(1)))
        .await;
    let is_multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        return Ok(Received {
            document: spool::into_bytes(input).await?,
            content: None,
            budget,
        });
    }
    let req = Request::from_parts(parts, spool::into_body(input, len).await?);
    let mut multipart = axum::extract::Multipart::from_request(req, state)
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    let (mut document, mut content) = (None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| AppError::from_multipart(e, limit))?
    {
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
    Ok(Received {
        document,
        content,
        budget,
    })
}

/// `POST /v1/verify`: the validation report of the body (or of multipart `signature` + `content`).
pub(super) async fn verify_document(
    State(state): State<AppState>,
    Caller(caller): Caller,
    req: Request,
) -> Result<Response, AppError> {
    let received = read_document(&state, req, VERIFY_COPIES).await?;
    let verified = state
        .services()
        .verify(&caller, received.document, received.content)
        .await?;
    drop(received.budget);
    let mut response = Json(verified.report).into_response();
    response
        .headers_mut()
        .insert("signgate-audit-id", HeaderValue::from(verified.audit_seq));
    Ok(response)
}
