//! `POST /v1/batches`, `GET /v1/batches/{id}` and `GET /v1/batches/{id}/documents/{n}`: the
//! upload is streamed into the new batch's `in/` folder here; recording, signing, resuming and
//! the audit records are the gateway's ([`crate::gateway::batches`]).

use std::path::Path;

use axum::extract::{FromRequest, Multipart, Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::{idempotency_key, AppError, AppState, Caller};
use crate::gateway::batches::{BatchSpec, NewBatch};
use crate::gateway::idempotency::{Operation, RequestDigest};
use crate::pki::alg::{sha256_hex, DigestAlgorithm};

/// The last path segment of an uploaded file name, reduced to `[A-Za-z0-9._-]`.
fn safe_name(raw: Option<&str>) -> String {
    crate::batch::zip::safe_file_name(raw.unwrap_or_default(), 120)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> AppError {
    AppError::Internal(format!("{what} {}: {e}", path.display()))
}

/// What the multipart upload held.
struct Upload {
    names: Vec<String>,
    spec: Option<BatchSpec>,
    /// The request's fingerprint, for its `Idempotency-Key`.
    fingerprint: String,
}

/// Largest `options` part (JSON signing options: a few hundred bytes in practice).
const MAX_OPTIONS_BYTES: usize = 64 << 10;

/// Body memory an upload holds while it is received: its `options` part and the chunks of a
/// document part on their way to disk (reserved from `[limits] body_memory_mib`).
const UPLOAD_MEMORY: u64 = (MAX_OPTIONS_BYTES as u64) + (1 << 20);

/// Streams the `document` parts into `dir/in` and reads the `options` part, within its
/// reservation in the body memory budget.
async fn receive(state: &AppState, req: Request, batch: &NewBatch) -> Result<Upload, AppError> {
    let _budget = state.limiter().reserve_memory(UPLOAD_MEMORY).await;
    let mut digest = RequestDigest::new(Operation::Batch, req.uri().query().unwrap_or_default());
    let limit = state.settings().max_body_bytes;
    let multipart_error = |e| AppError::from_multipart(e, limit);
    let mut multipart = Multipart::from_request(req, state)
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    let mut names = Vec::new();
    let mut spec = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "document" => {
                let name = safe_name(field.file_name());
                let (mut file, path) = batch.input_file(names.len(), &name).await?;
                let mut hash = DigestAlgorithm::Sha256.hasher();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    hash.update(&chunk);
                    file.write_all(&chunk)
                        .await
                        .map_err(|e| io_error("cannot write", &path, e))?;
                }
                // Durable before the batch is acknowledged: a restart must find every input.
                file.sync_all()
                    .await
                    .map_err(|e| io_error("cannot write", &path, e))?;
                digest.part("document", Some(&name), &hex::encode(hash.finish()));
                names.push(name);
            }
            "options" => {
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if bytes.len() + chunk.len() > MAX_OPTIONS_BYTES {
                        return Err(AppError::BadRequest(format!(
                            "options part is larger than {} KiB",
                            MAX_OPTIONS_BYTES >> 10
                        )));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                digest.part("options", None, &sha256_hex(&bytes));
                spec = Some(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| AppError::BadRequest(format!("options part: {e}")))?,
                );
            }
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown multipart part '{other}' (expected document or options)"
                )))
            }
        }
    }
    batch.sync_inputs().await?;
    Ok(Upload {
        names,
        spec,
        fingerprint: digest.finish(),
    })
}

/// `POST /v1/batches`.
pub(super) async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, AppError> {
    let key = idempotency_key(&headers)?;
    // Claimed before the body is read, so a slow upload holds its key.
    let claim = state.services().claim_idempotency_key(&caller, key).await;
    let batch = state.services().new_batch();
    // The body is read first even for a replay or a refusal (see `submit`).
    let upload = match receive(&state, req, &batch).await {
        Ok(upload) => upload,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&batch.dir).await;
            return Err(e);
        }
    };
    let claim = match claim {
        Ok(claim) => claim,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&batch.dir).await;
            return Err(e.into());
        }
    };
    let (id, created) = state
        .services()
        .submit_batch(
            &caller,
            claim,
            &upload.fingerprint,
            batch,
            upload.names,
            upload.spec,
        )
        .await?;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "state": "queued"})),
    )
        .into_response();
    if !created {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /v1/batches/{id}`.
pub(super) async fn status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, AppError> {
    let view = state.services().batch_status(&caller, &id).await?;
    let (batch, docs) = (view.batch, view.documents);
    // Audit ids in the agency's own numbering, as `GET /v1/audit` shows them.
    let seqs: Vec<i64> = docs.iter().filter_map(|d| d.audit_seq).collect();
    let numbers = state.services().audit_numbers(&caller, &seqs).await?;
    let count = |s: &str| docs.iter().filter(|d| d.state == s).count();
    let documents: Vec<Value> = docs
        .iter()
        .map(|d| {
            json!({
                "index": d.index,
                "name": d.name,
                "state": d.state,
                "output_sha256": d.output_sha256,
                "audit_id": d.audit_seq.and_then(|seq| numbers.get(&seq)),
                "code": d.code,
                "message": d.message,
            })
        })
        .collect();
    Ok(Json(json!({
        "id": batch.id,
        "state": batch.state,
        "key": batch.key_name,
        "created_at": batch.created_at,
        "finished_at": batch.finished_at,
        "error": batch.error,
        "total": batch.total,
        "signed": count("signed"),
        "failed": count("failed"),
        "pending": count("pending"),
        "documents": documents,
    }))
    .into_response())
}

/// `GET /v1/batches/{id}/documents/{n}`: the signed bytes of input `n` (0-based), with the
/// media type of their format.
pub(super) async fn document(
    State(state): State<AppState>,
    Caller(caller): Caller,
    UrlPath((id, n)): UrlPath<(String, i64)>,
) -> Result<Response, AppError> {
    let (bytes, format) = state.services().batch_output(&caller, &id, n).await?;
    Ok(([(header::CONTENT_TYPE, format.media_type())], bytes).into_response())
}

/// `GET /v1/batches/{id}/archive`: the ZIP of the batch's signed outputs, streamed.
pub(super) async fn archive(
    State(state): State<AppState>,
    Caller(caller): Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, AppError> {
    let archive = state.services().batch_archive(&caller, &id).await?;
    Ok(archive.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_are_reduced_to_a_safe_last_segment() {
        assert_eq!(safe_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(
            safe_name(Some("C:\\docs\\Quyết định 12.pdf")),
            "Quy_t___nh_12.pdf"
        );
        assert_eq!(safe_name(Some("..")), "document");
        assert_eq!(safe_name(None), "document");
        assert_eq!(
            crate::gateway::batches::stored_name(7, "a.pdf"),
            "0007-a.pdf"
        );
    }
}
