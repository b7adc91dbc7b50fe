//! Asynchronous batch signing over HTTP: `POST /v1/batches`, `GET /v1/batches/{id}` and
//! `GET /v1/batches/{id}/documents/{n}`.
//!
//! The upload is streamed into `DATA/batches/<id>/in/NNNN-name`; the batch and one row per
//! document go to the store; then [`crate::batch::Engine`] signs into `…/out` on a blocking
//! thread, one batch at a time. Each signed document gets one `sign` audit record, keyed by
//! `(batch, index)` so that it is written once even when a restart sees the document again.
//!
//! Restart safety: on start-up [`resume`] runs every unfinished batch whose folder is in this
//! gateway's data folder again. The engine's journal skips outputs that were signed and
//! journaled before the crash (their bytes stay as they were); for those the audit record is
//! inserted if absent and the document row is brought up to date.

mod runner;

use std::path::{Path, PathBuf};

use axum::extract::{FromRequest, Multipart, Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;

use super::sign::parse_format;
use super::{idempotency_key, now_rfc3339, random_id, AppError};
use super::{AppState, Caller};
use crate::batch::BatchOptions;
use crate::sign::{Format, Level};
use crate::store::BatchRecord;
pub use runner::resume;
use runner::spawn;

/// The `options` part of `POST /v1/batches`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    key: String,
    format: Option<String>,
    /// XML-DSig profile for XML documents (tax, social-insurance, e-invoice, edxml, enveloped).
    profile: Option<String>,
    level: Option<String>,
    reason: Option<String>,
    location: Option<String>,
}

/// The options as stored with the batch: what a resumed run needs to sign as the first did.
#[derive(Debug, Serialize, Deserialize)]
struct StoredOptions {
    format: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    level: String,
    reason: Option<String>,
    location: Option<String>,
    signing_time: String,
}

impl StoredOptions {
    fn batch_options(&self) -> Result<BatchOptions, String> {
        let signing_time = OffsetDateTime::parse(&self.signing_time, &Rfc3339)
            .map_err(|e| format!("stored signing time: {e}"))?;
        let mut options = BatchOptions::new(signing_time);
        options.format = parse_format(self.format.as_deref()).map_err(|e| e.to_string())?;
        options.xml_profile = parse_profile(self.profile.as_deref()).map_err(|e| e.to_string())?;
        options.level = self.level.parse().map_err(|e| format!("{e}"))?;
        options.reason = self.reason.clone();
        options.location = self.location.clone();
        Ok(options)
    }
}

/// `"profile"`: the XML-DSig layout of XML documents; none leaves every non-PDF as CMS.
fn parse_profile(text: Option<&str>) -> Result<Option<crate::xml::Profile>, AppError> {
    text.filter(|t| !t.is_empty())
        .map(str::parse)
        .transpose()
        .map_err(AppError::from)
}

/// `in/NNNN-name`, `out/NNNN-name…`: the index prefix keeps equal upload names apart.
fn stored_name(index: i64, name: &str) -> String {
    format!("{index:04}-{name}")
}

/// The last path segment of an uploaded file name, reduced to `[A-Za-z0-9._-]`.
fn safe_name(raw: Option<&str>) -> String {
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        "document".into()
    } else {
        cleaned.into()
    }
}

impl AppState {
    fn batch_dir(&self, id: &str) -> PathBuf {
        self.inner.settings.batch_dir.join(id)
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> AppError {
    AppError::Internal(format!("{what} {}: {e}", path.display()))
}

/// What the multipart upload held.
struct Upload {
    names: Vec<String>,
    request: Option<BatchRequest>,
}

/// Streams the `document` parts into `dir/in` and reads the `options` part.
async fn receive(state: &AppState, req: Request, dir: &Path) -> Result<Upload, AppError> {
    let limit = state.inner.settings.max_body_bytes;
    let multipart_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge(limit)
        } else {
            AppError::BadRequest(e.body_text())
        }
    };
    let mut multipart = Multipart::from_request(req, state)
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    let in_dir = dir.join("in");
    tokio::fs::create_dir_all(&in_dir)
        .await
        .map_err(|e| io_error("cannot create", &in_dir, e))?;
    let mut upload = Upload {
        names: Vec::new(),
        request: None,
    };
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "document" => {
                let name = safe_name(field.file_name());
                let path = in_dir.join(stored_name(upload.names.len() as i64, &name));
                let mut file = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| io_error("cannot create", &path, e))?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    file.write_all(&chunk)
                        .await
                        .map_err(|e| io_error("cannot write", &path, e))?;
                }
                // Durable before the batch is acknowledged: a restart must find every input.
                file.sync_all()
                    .await
                    .map_err(|e| io_error("cannot write", &path, e))?;
                upload.names.push(name);
            }
            "options" => {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                let request = serde_json::from_slice(&bytes)
                    .map_err(|e| AppError::BadRequest(format!("options part: {e}")))?;
                upload.request = Some(request);
            }
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown multipart part '{other}' (expected document or options)"
                )))
            }
        }
    }
    // The new directory entries too: `in/*`, `<id>/in` and `batches/<id>`.
    for folder in [in_dir.as_path(), dir, dir.parent().unwrap_or(dir)] {
        let handle = tokio::fs::File::open(folder)
            .await
            .map_err(|e| io_error("cannot open", folder, e))?;
        handle
            .sync_all()
            .await
            .map_err(|e| io_error("cannot sync", folder, e))?;
    }
    Ok(upload)
}

/// `POST /v1/batches`.
pub(super) async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, AppError> {
    let idempotency_key = idempotency_key(&headers)?;
    let id = random_id("bat_");
    let dir = state.batch_dir(&id);
    let result = accept(&state, &caller, idempotency_key, &id, &dir, req).await;
    if !matches!(result, Ok((_, true))) {
        // Refused, failed or replayed: nothing of this upload is kept.
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    let (answer_id, created) = result?;
    if created {
        spawn(state.clone(), answer_id.clone());
    }
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({"id": answer_id, "state": "queued"})),
    )
        .into_response();
    if !created {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Receives and records a batch; returns its id and whether it is new (false: a replay).
async fn accept(
    state: &AppState,
    caller: &crate::store::Client,
    idempotency_key: Option<String>,
    id: &str,
    dir: &Path,
    req: Request,
) -> Result<(String, bool), AppError> {
    // The body is read first even for a replay (see `submit`).
    let upload = receive(state, req, dir).await?;
    let store = state.store();
    if let Some(k) = &idempotency_key {
        if let Some(existing) = store.batch_by_idempotency_key(&caller.id, k).await? {
            return Ok((existing, false));
        }
    }
    let request = upload
        .request
        .ok_or_else(|| AppError::BadRequest("multipart body has no 'options' part".into()))?;
    if upload.names.is_empty() {
        return Err(AppError::BadRequest(
            "multipart body has no 'document' part".into(),
        ));
    }
    let record = state.granted_key(caller, &request.key).await?;
    let format = parse_format(request.format.as_deref())?;
    let profile = parse_profile(request.profile.as_deref())?;
    if profile.is_some() && matches!(format, Some(Format::Pdf | Format::Cms)) {
        return Err(AppError::BadRequest(
            "profile applies to XML documents only".into(),
        ));
    }
    let level: Level = request
        .level
        .as_deref()
        .unwrap_or("b-b")
        .parse()
        .map_err(AppError::from)?;
    if level == Level::BT && state.inner.settings.tsa_url.is_none() {
        return Err(AppError::BadRequest(
            "level b-t needs a time-stamp authority, and this gateway has no tsa_url".into(),
        ));
    }
    let options = StoredOptions {
        format: request.format.filter(|f| !f.is_empty() && f != "auto"),
        profile: request.profile,
        level: request.level.unwrap_or_else(|| "b-b".into()),
        reason: request.reason,
        location: request.location,
        signing_time: now_rfc3339(),
    };
    let batch = BatchRecord {
        id: id.to_string(),
        client_id: caller.id.clone(),
        agency: caller.agency.clone(),
        idempotency_key: idempotency_key.clone(),
        key_name: record.name.clone(),
        options: serde_json::to_string(&options)
            .map_err(|e| AppError::Internal(format!("batch options: {e}")))?,
        state: "queued".into(),
        total: upload.names.len() as i64,
        created_at: now_rfc3339(),
        finished_at: None,
        error: None,
    };
    if !store.insert_batch(&batch, &upload.names).await? {
        // A concurrent retry with the same Idempotency-Key won.
        let k = idempotency_key.unwrap_or_default();
        let existing = store
            .batch_by_idempotency_key(&caller.id, &k)
            .await?
            .ok_or_else(|| AppError::Internal("batch was not stored".into()))?;
        return Ok((existing, false));
    }
    state
        .audit(
            caller,
            "batch.submit",
            json!({"batch": id, "key": record.name, "documents": batch.total}),
        )
        .await?;
    state.inner.metrics.batch_queued(1);
    Ok((id.to_string(), true))
}

/// The caller's agency's batch `id`, else 404.
async fn own_batch(
    state: &AppState,
    caller: &crate::store::Client,
    id: &str,
) -> Result<BatchRecord, AppError> {
    match state.store().batch(id).await? {
        Some(b) if b.agency == caller.agency => Ok(b),
        _ => Err(AppError::NotFound("batch")),
    }
}

/// `GET /v1/batches/{id}`.
pub(super) async fn status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, AppError> {
    let batch = own_batch(&state, &caller, &id).await?;
    let docs = state.store().batch_documents(&id).await?;
    let count = |s: &str| docs.iter().filter(|d| d.state == s).count();
    let documents: Vec<Value> = docs
        .iter()
        .map(|d| {
            json!({
                "index": d.index,
                "name": d.name,
                "state": d.state,
                "output_sha256": d.output_sha256,
                "audit_id": d.audit_seq,
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

/// `GET /v1/batches/{id}/documents/{n}`: the signed bytes of input `n` (0-based).
pub(super) async fn document(
    State(state): State<AppState>,
    Caller(caller): Caller,
    UrlPath((id, n)): UrlPath<(String, i64)>,
) -> Result<Response, AppError> {
    own_batch(&state, &caller, &id).await?;
    let doc = state
        .store()
        .batch_document(&id, n)
        .await?
        .ok_or(AppError::NotFound("document"))?;
    let output = match (doc.state.as_str(), &doc.output) {
        ("signed", Some(output)) => output.clone(),
        ("failed", _) => {
            return Err(AppError::NotSigned(format!(
                "document {n} failed: {} {}",
                doc.code.unwrap_or_default(),
                doc.message.unwrap_or_default()
            )))
        }
        _ => {
            return Err(AppError::NotSigned(format!(
                "document {n} is not signed yet"
            )))
        }
    };
    let path = state.batch_dir(&id).join("out").join(&output);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| io_error("cannot read", &path, e))?;
    let content_type = if output.ends_with(".p7s") {
        "application/pkcs7-signature"
    } else {
        "application/pdf"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
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
        assert_eq!(stored_name(7, "a.pdf"), "0007-a.pdf");
    }
}
