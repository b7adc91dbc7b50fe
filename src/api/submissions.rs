//! `POST /v1/submissions` and `GET /v1/submissions/{id}`: filings verified, stored and
//! receipted with a detached CAdES signature over the receipt's canonical JSON.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};

use super::verification::{indication_name, read_document, run_verification};
use super::{
    blocking, idempotency_key, now_rfc3339, random_id, sha256_hex, AppError, AppState, Caller,
};
use crate::store::Submission;

/// `POST /v1/submissions`: intake of a signed filing, answered with a signed receipt.
pub(super) async fn submit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, AppError> {
    let idempotency_key = idempotency_key(&headers)?;
    // The body is read first even for a replay: answering before it is consumed would reset
    // the connection under a client that is still sending.
    let (document, content) = read_document(&state, req).await?;
    if let Some(stored) = replay_of(&state, &caller.id, idempotency_key.as_deref()).await? {
        return Ok(stored);
    }
    let sha256 = sha256_hex(&document);
    let size = document.len() as i64;
    let stored_document = document.to_vec();
    let report = run_verification(&state, document, content).await?;
    let report_json = serde_json::to_string(&report)
        .map_err(|e| AppError::Internal(format!("report serialization: {e}")))?;
    let indication = indication_name(report.indication);
    let id = random_id("sub_");
    let received_at = now_rfc3339();
    let receipt = json!({
        "submission_id": id,
        "received_at": received_at,
        "sha256": sha256,
        "size": size,
        "client": caller.id,
        "indication": indication,
        "report_sha256": sha256_hex(report_json.as_bytes()),
    });
    let receipt_json = crate::store::audit::canonical_json(&receipt);
    let receipt_p7s = sign_detached(&state, receipt_json.clone().into_bytes()).await?;
    let response = json!({
        "submission_id": id,
        "receipt": receipt,
        "receipt_json": receipt_json,
        "receipt_p7s": base64::engine::general_purpose::STANDARD.encode(receipt_p7s),
    });
    let response_text = response.to_string();
    let inserted = state
        .store()
        .insert_submission(&Submission {
            id: id.clone(),
            client_id: caller.id.clone(),
            agency: caller.agency.clone(),
            idempotency_key: idempotency_key.clone(),
            received_at,
            sha256: sha256.clone(),
            size,
            indication: indication.clone(),
            report: report_json,
            document: stored_document,
            response: response_text.clone(),
        })
        .await?;
    if !inserted {
        // A concurrent retry with the same Idempotency-Key won: answer with its receipt.
        if let Some(stored) = replay_of(&state, &caller.id, idempotency_key.as_deref()).await? {
            return Ok(stored);
        }
        return Err(AppError::Internal("submission was not stored".into()));
    }
    let seq = state
        .audit(
            &caller,
            "submit",
            json!({"submission_id": id, "sha256": sha256, "indication": indication}),
        )
        .await?;
    let mut response = (StatusCode::CREATED, Json(response)).into_response();
    response
        .headers_mut()
        .insert("signgate-audit-id", HeaderValue::from(seq));
    Ok(response)
}

/// The stored answer to the submission `client_id` made with `idempotency_key`, if any.
async fn replay_of(
    state: &AppState,
    client_id: &str,
    idempotency_key: Option<&str>,
) -> Result<Option<Response>, AppError> {
    let Some(key) = idempotency_key else {
        return Ok(None);
    };
    let stored = state
        .store()
        .submission_by_idempotency_key(client_id, key)
        .await?;
    Ok(stored.as_deref().map(replay))
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

/// A detached CAdES signature (time-stamped when a TSA is configured) by the receipt key.
async fn sign_detached(state: &AppState, content: Vec<u8>) -> Result<Vec<u8>, AppError> {
    let name = state.settings().receipt_key.clone();
    let record = state
        .store()
        .key(&name)
        .await?
        .ok_or_else(|| AppError::Internal(format!("receipt key '{name}' is not registered")))?;
    let key = state.signing_key(&record).await?;
    let settings = state.settings().clone();
    blocking(move || crate::gateway::checkpoint::sign_detached(&*key, &content, &settings)).await
}

/// `GET /v1/submissions/{id}`: a submission of the caller's agency.
pub(super) async fn submission(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let s = state
        .store()
        .submission(&caller.agency, &id)
        .await?
        .ok_or(AppError::NotFound("submission"))?;
    let report: Value = serde_json::from_str(&s.report)
        .map_err(|e| AppError::Internal(format!("stored report: {e}")))?;
    Ok(Json(json!({
        "submission_id": s.id,
        "client": s.client_id,
        "received_at": s.received_at,
        "sha256": s.sha256,
        "size": s.size,
        "indication": s.indication,
        "report": report,
    }))
    .into_response())
}
