//! `POST /v1/submissions` and `GET /v1/submissions/{id}`: filings verified, stored and
//! receipted with a detached CAdES signature over the receipt's canonical JSON.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::verification::read_document;
use super::{idempotency_key, AppError, AppState, Caller};
use crate::gateway::intake::Submitted;

/// `POST /v1/submissions`: intake of a signed filing, answered with a signed receipt.
pub(super) async fn submit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, AppError> {
    let key = idempotency_key(&headers)?;
    let query = req.uri().query().unwrap_or_default().to_string();
    // Claimed before the body is read, so a slow upload holds its key.
    let claim = state.services().claim_idempotency_key(&caller, key).await;
    // The body is read first even for a replay or a refusal: answering before it is consumed
    // would reset the connection under a client that is still sending.
    // One more copy than a verification: the service keeps the document for storage.
    let received = read_document(&state, req, super::verification::VERIFY_COPIES + 1).await?;
    let submitted = state
        .services()
        .submit(&caller, claim?, &query, received.document, received.content)
        .await?;
    drop(received.budget);
    match submitted {
        Submitted::Replayed(stored) => Ok(replay(&stored)),
        Submitted::Created {
            response,
            audit_seq,
        } => {
            let mut response = (StatusCode::CREATED, Json(response)).into_response();
            response
                .headers_mut()
                .insert("signgate-audit-id", HeaderValue::from(audit_seq));
            Ok(response)
        }
    }
}

fn replay(stored: &str) -> Response {
    let mut response = (StatusCode::OK, stored.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// `GET /v1/submissions/{id}`: a submission of the caller's agency.
pub(super) async fn submission(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    Ok(Json(state.services().submission(&caller, &id).await?).into_response())
}
