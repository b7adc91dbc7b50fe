//! `POST /v1/sign`: parse the query and the body, call [`crate::gateway::Services::sign`],
//! answer the signed bytes with their media type and audit id.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{spool, AppError, AppState, Caller};
use crate::gateway::signing::{self, Document, SignSpec, SignedOutput};
use crate::gateway::text;
use crate::pdf::PageSelector;
use crate::sign::{Format, Level};

/// Times a document's size that signing it in memory holds: the body, the parsed document, the
/// signed output and the allocator's slack (reserved from the body memory budget, `[limits]
/// body_memory_mib`). Measured: signing a 10.8 MB PDF in memory raised the peak RSS by about
/// 142 MiB (`abuse::concurrent_large_signings_and_batch_uploads_…`).
pub(super) const SIGN_COPIES: u64 = 14;

/// Body memory reserved for a PDF signed streaming from its spool file: the bound promised for
/// large documents (see [`crate::pdf::STREAMING_THRESHOLD`]).
pub(super) const STREAMING_SIGN_MEMORY: u64 = 64 << 20;

/// Query of `POST /v1/sign`.
#[derive(Debug, Deserialize)]
pub struct SignQuery {
    key: String,
    #[serde(default, deserialize_with = "text::format_choice")]
    format: Option<Format>,
    #[serde(default, deserialize_with = "text::optional")]
    profile: Option<crate::xml::Profile>,
    #[serde(default, deserialize_with = "text::optional")]
    level: Option<Level>,
    page: Option<i64>,
    rect: Option<String>,
    doc_number: Option<String>,
}

impl SignQuery {
    fn spec(self) -> Result<SignSpec, AppError> {
        let page = match self.page {
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
        let rect = self
            .rect
            .as_deref()
            .map(|text| {
                crate::pdf::parse_rect(text).ok_or_else(|| {
                    AppError::BadRequest(format!("rect '{text}' must be x,y,w,h in points"))
                })
            })
            .transpose()?;
        Ok(SignSpec {
            key: self.key,
            format: self.format,
            profile: self.profile,
            level: self.level.unwrap_or_default(),
            page,
            rect,
            doc_number: self.doc_number,
        })
    }
}

/// `POST /v1/sign`: the document as body, options as query; the signed bytes back. A body is
/// kept in memory up to `[limits] spool_threshold_kib` while it arrives and spooled to disk
/// beyond; a PDF of [`crate::pdf::STREAMING_THRESHOLD`] or more is signed by the streaming path
/// and its result streamed from disk, anything else is read back and signed in memory. Either
/// way the memory it takes is reserved from the body memory budget first, so concurrent large
/// bodies wait for memory instead of all being held at once.
pub(super) async fn sign(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<SignQuery>, axum::extract::rejection::QueryRejection>,
    input: Body,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let spec = q.spec()?;
    let settings = state.settings();
    let (document, len) = spool::receive_counted(
        input,
        settings.max_body_bytes,
        settings.limits.spool_threshold,
        &settings.spool_dir,
    )
    .await?;
    let streaming = len >= crate::pdf::STREAMING_THRESHOLD
        && signing::signs_streaming(&document, spec.format).await?;
    let need = if streaming {
        STREAMING_SIGN_MEMORY
    } else {
        len.saturating_mul(SIGN_COPIES)
    };
    let budget = state.limiter().reserve_memory(need).await;
    let document = if streaming {
        document
    } else {
        Document::Memory(spool::into_bytes(document).await?)
    };
    let signed = state.services().sign(&caller, spec, document).await?;
    drop(budget);
    let mut response = match signed.output {
        SignedOutput::Memory(bytes) => (StatusCode::OK, bytes).into_response(),
        SignedOutput::File(file, len) => {
            let mut r = (StatusCode::OK, spool::FileBody::body(file, len)).into_response();
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(signed.format.media_type()),
    );
    response
        .headers_mut()
        .insert("signgate-audit-id", HeaderValue::from(signed.audit_seq));
    Ok(response)
}
