//! Routing over HTTP. Two routers:
//! - [`peer_router`], served on the node-to-node mutual-TLS listener: `POST /v1/route/envelopes`
//!   (body: the envelope; `?to=` the recipients of this hop; answered 200 with the hop's signed
//!   status message and its code in `Signgate-Route-Status`, 01 or 02 with
//!   `Signgate-Route-Reason`), `POST /v1/route/statuses` (body: a signed status message) and
//!   `POST /v1/route/directory` (a signed directory update from the directory authority).
//!   The caller is identified by its verified client certificate's fingerprint; an unknown
//!   certificate answers 403 `ROUTE_PEER_UNKNOWN`.
//! - [`routes`], on the gateway API with bearer tokens: `GET /v1/route/status?document_id=`,
//!   `GET /v1/route/inbox` and `GET /v1/route/sent` (filters and a paging cursor:
//!   [`ListParams`]), `POST /v1/route/ack`, `POST /v1/route/send`, `GET /v1/route/outbox`
//!   (outbox and document counts by state, dead letters included), `POST /v1/route/retry`
//!   (a dead letter back to pending), `GET /v1/route/document?document_id=` (the envelope),
//!   `GET /v1/route/attachment?document_id=&n=` (attachment n, 0-based) and the agency's
//!   webhooks (`GET`/`POST /v1/route/webhooks`, `DELETE /v1/route/webhooks/{id}`). `send` also takes
//!   `multipart/form-data` (a JSON `header` and `attachment` parts) that the gateway builds
//!   into a signed envelope. Without `[routing]` they answer 404.
//!
//!   Each client acts for its agency (an edXML OrganId served by this node): it sees and acts
//!   on the documents that agency sent or receives — including those addressed to an agency
//!   merged into it (`owner_organ`) — another agency's answer 404 like missing ones
//!   (CONTRACTS §4), and it sends only envelopes whose sender is its agency (else 02).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{AppError, AppState, Caller};
use crate::routing::node::{ListKind, ListParams};
use crate::routing::tls::PeerCertificate;
use crate::routing::worker::{encode, HELD_HEADER, REASON_HEADER, STATUS_HEADER};
use crate::routing::{Node, Receipt, RoutingError};

impl From<RoutingError> for AppError {
    fn from(e: RoutingError) -> Self {
        match e {
            RoutingError::Store(s) => AppError::Internal(s.to_string()),
            other => AppError::Domain(crate::Error::Routing(other)),
        }
    }
}

/// The node-to-node endpoints (served over mutual TLS by [`crate::routing::tls::serve`]).
pub fn peer_router(node: Arc<Node>, max_body: usize) -> Router {
    Router::new()
        .route("/v1/route/envelopes", post(peer_envelope))
        .route("/v1/route/statuses", post(peer_status))
        .route("/v1/route/directory", post(peer_directory))
        .fallback(|| async { AppError::NotFound("route") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(node)
}

fn peer_of(node: &Node, cert: Option<Extension<PeerCertificate>>) -> Result<String, AppError> {
    let cert = cert
        .ok_or_else(|| AppError::from(RoutingError::PeerUnknown("no client certificate".into())))?;
    Ok(node.peer_for_certificate(&cert.0.fingerprint())?)
}

fn receipt_response(receipt: Receipt) -> Response {
    let code = receipt.code_text();
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml")],
        receipt.message.unwrap_or_default(),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(code) {
        headers.insert(STATUS_HEADER, v);
    }
    if let Some(reason) = &receipt.reason {
        if let Ok(v) = HeaderValue::from_str(&encode(reason)) {
            headers.insert(REASON_HEADER, v);
        }
    }
    if let Some(note) = &receipt.held {
        if let Ok(v) = HeaderValue::from_str(&encode(note)) {
            headers.insert(HELD_HEADER, v);
        }
    }
    response
}

async fn peer_envelope(
    State(node): State<Arc<Node>>,
    cert: Option<Extension<PeerCertificate>>,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Response, AppError> {
    let from = peer_of(&node, cert)?;
    let to: Vec<String> = query
        .into_iter()
        .filter(|(k, _)| k == "to")
        .map(|(_, v)| v)
        .collect();
    let receipt = node.receive(&from, body.to_vec(), Some(to)).await?;
    Ok(receipt_response(receipt))
}

async fn peer_status(
    State(node): State<Arc<Node>>,
    cert: Option<Extension<PeerCertificate>>,
    body: Bytes,
) -> Result<Response, AppError> {
    let from = peer_of(&node, cert)?;
    let stored = node.receive_status(&from, body.to_vec()).await?;
    Ok(Json(json!({"stored": stored})).into_response())
}

/// `POST /v1/route/directory`: a signed directory update from a peer; answers the version this
/// node is at and how many changes it applied.
async fn peer_directory(
    State(node): State<Arc<Node>>,
    cert: Option<Extension<PeerCertificate>>,
    body: Bytes,
) -> Result<Response, AppError> {
    let from = peer_of(&node, cert)?;
    let applied = node.receive_directory_update(&from, body.to_vec()).await?;
    Ok(Json(applied).into_response())
}

/// The operator endpoints, merged into [`super::router`]; the node comes as an extension.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/route/status", get(status))
        .route("/v1/route/inbox", get(inbox))
        .route("/v1/route/sent", get(sent))
        .route("/v1/route/ack", post(ack))
        .route("/v1/route/send", post(send))
        .route("/v1/route/document", get(document))
        .route("/v1/route/attachment", get(attachment))
        .route("/v1/route/outbox", get(outbox))
        .route("/v1/route/retry", post(retry))
        .route("/v1/route/webhooks", get(webhooks).post(subscribe))
        .route(
            "/v1/route/webhooks/{id}",
            axum::routing::delete(unsubscribe),
        )
}

/// Body of `POST /v1/route/webhooks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    /// Where the events are POSTed (`http://`).
    url: String,
    /// Event kinds, comma-separated, or `all` (the default).
    events: Option<String>,
}

/// `POST /v1/route/webhooks`: subscribes the caller's agency; 201 with the subscription and
/// its `secret`, shown this once.
async fn subscribe(
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
    Json(req): Json<SubscribeRequest>,
) -> Result<Response, AppError> {
    let node = configured(node)?;
    let row = crate::gateway::webhooks::subscribe(
        &node,
        &caller.0.agency,
        &req.url,
        req.events.as_deref(),
    )
    .await?;
    let mut shown = serde_json::to_value(&row).unwrap_or_default();
    shown["secret"] = row.secret.clone().into();
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// `GET /v1/route/webhooks`: the caller's agency's subscriptions (no secrets).
async fn webhooks(
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
) -> Result<Response, AppError> {
    let node = configured(node)?;
    let rows = crate::gateway::webhooks::subscriptions(&node, Some(&caller.0.agency)).await?;
    Ok(Json(json!({"webhooks": rows})).into_response())
}

/// `DELETE /v1/route/webhooks/{id}`: removes one of the caller's agency's subscriptions (404
/// for another agency's, as for a missing one).
async fn unsubscribe(
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    let node = configured(node)?;
    crate::gateway::webhooks::unsubscribe(&node, &id, Some(&caller.0.agency)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Outbox items and document rows by state, of the caller's agency's documents, and the
/// node's counters since start (totals only, no document).
async fn outbox(caller: Caller, node: Option<Extension<Arc<Node>>>) -> Result<Response, AppError> {
    let node = configured(node)?;
    let view = node.outbox_view(Some(&caller.0.agency)).await?;
    Ok(Json(view).into_response())
}

/// Body of `POST /v1/route/retry`.
#[derive(Debug, Deserialize)]
pub struct RetryRequest {
    document_id: String,
    /// Only the delivery carrying this recipient organ.
    to: Option<String>,
}

async fn retry(
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
    Json(req): Json<RetryRequest>,
) -> Result<Response, AppError> {
    let node = configured(node)?;
    let items = node
        .retry(&req.document_id, req.to.as_deref(), Some(&caller.0.agency))
        .await?;
    let requeued: Vec<_> = items
        .iter()
        .map(|i| json!({"kind": i.kind, "next_node": i.next_node, "recipients": i.recipients}))
        .collect();
    Ok(Json(json!({"document_id": req.document_id, "requeued": requeued})).into_response())
}

fn configured(node: Option<Extension<Arc<Node>>>) -> Result<Arc<Node>, AppError> {
    node.map(|Extension(n)| n).ok_or(AppError::NotFound(
        "routing (not configured on this gateway)",
    ))
}

/// Query of `GET /v1/route/status`.
#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    document_id: String,
}

async fn status(
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
    Query(q): Query<StatusQuery>,
) -> Result<Response, AppError> {
    let node = configured(node)?;
    let view = node
        .status_view_for(&q.document_id, Some(&caller.0.agency))
        .await?;
    Ok(Json(view).into_response())
}

/// `GET /v1/route/inbox?state=&sender=&from=&to=&q=&limit=&cursor=`: the documents the
/// caller's agency holds here, newest first, with their subject, sender name, number, type,
/// due date and attachments; `next_cursor` pages on.
async fn inbox(
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, AppError> {
    list(caller, node, params, ListKind::Inbox).await
}

/// `GET /v1/route/sent?state=&recipient=&from=&to=&q=&limit=&cursor=`: the documents the
/// caller's agency sent, one row per recipient, with the last status recorded here.
async fn sent(
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, AppError> {
    list(caller, node, params, ListKind::Sent).await
}

async fn list(
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
    params: Result<Query<ListParams>, QueryRejection>,
    kind: ListKind,
) -> Result<Response, AppError> {
    let Query(params) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let node = configured(node)?;
    let filter = params.filter(kind, vec![caller.0.agency.clone()])?;
    let (rows, next) = node.list(filter, params.cursor.as_deref()).await?;
    Ok(
        Json(json!({"node": node.config.node_id, "documents": rows, "next_cursor": next}))
            .into_response(),
    )
}

/// Body of `POST /v1/route/ack`.
#[derive(Debug, Deserialize)]
pub struct AckRequest {
    document_id: String,
    status: String,
    recipient: Option<String>,
    description: Option<String>,
}

async fn ack(
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
    Json(req): Json<AckRequest>,
) -> Result<Response, AppError> {
    let node = configured(node)?;
    let agency = &caller.0.agency;
    if req.recipient.as_ref().is_some_and(|r| r != agency) {
        return Err(RoutingError::NotFound(req.document_id).into());
    }
    let rows = node
        .acknowledge(&req.document_id, Some(agency), &req.status, req.description)
        .await?;
    Ok(Json(json!({"acknowledged": rows})).into_response())
}

/// `POST /v1/route/send`: a signed envelope as the body, or `multipart/form-data` with one
/// JSON `header` part (the document's metadata, [`crate::edxml::DocumentSpec`], plus an
/// optional `key`: a key name granted to the client; default its agency's one key) and
/// `attachment` parts (the signed PDF first), which the gateway builds into an envelope,
/// schema-checks and signs.
async fn send(
    State(state): State<AppState>,
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
    req: Request,
) -> Result<Response, AppError> {
    let node = configured(node)?;
    let limit = state.services().settings().max_body_bytes;
    let bytes = if is_multipart(req.headers()) {
        compose_multipart(&state, &caller, req).await?
    } else {
        Bytes::from_request(req, &state)
            .await
            .map_err(|e| AppError::from_body(e, limit))?
            .to_vec()
    };
    let receipt = node.send_as(&caller.0.agency, bytes).await?;
    let status = if receipt.code == crate::edxml::StatusCode::Received {
        StatusCode::ACCEPTED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((
        status,
        Json(json!({"document_id": receipt.document_id, "status": receipt.code_text(), "reason": receipt.reason, "held": receipt.held})),
    )
        .into_response())
}

fn is_multipart(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// Reads the `header` and `attachment` parts of a multipart send and composes the envelope.
async fn compose_multipart(
    state: &AppState,
    caller: &Caller,
    req: Request,
) -> Result<Vec<u8>, AppError> {
    use crate::edxml::{DocumentSpec, FileSpec};
    use crate::gateway::route::SigningKey;
    let limit = state.services().settings().max_body_bytes;
    let multipart_error = |e| AppError::from_multipart(e, limit);
    let mut multipart = axum::extract::Multipart::from_request(req, state)
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    let mut header_json: Option<serde_json::Value> = None;
    let mut files = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "header" => {
                if header_json.is_some() {
                    return Err(AppError::BadRequest("more than one header part".into()));
                }
                let bytes = field.bytes().await.map_err(multipart_error)?;
                header_json = Some(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| AppError::BadRequest(format!("header part: {e}")))?,
                );
            }
            "attachment" => {
                let name = attachment_name(field.file_name(), files.len());
                let declared = field.content_type().map(str::to_string).filter(|t| {
                    crate::gateway::route::media_type_ok(t) && t != "application/octet-stream"
                });
                let data = field.bytes().await.map_err(multipart_error)?.to_vec();
                files.push(FileSpec {
                    content_type: declared,
                    name,
                    data,
                    description: None,
                });
            }
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown multipart part '{other}' (expected header or attachment)"
                )))
            }
        }
    }
    let mut header_json =
        header_json.ok_or_else(|| AppError::BadRequest("no header part".into()))?;
    let key = match header_json.as_object_mut().and_then(|o| o.remove("key")) {
        None | Some(serde_json::Value::Null) => SigningKey::AgencyDefault,
        Some(serde_json::Value::String(name)) => SigningKey::Registered(name),
        Some(_) => {
            return Err(AppError::BadRequest(
                "header part: key must be a key name".into(),
            ))
        }
    };
    let spec: DocumentSpec = serde_json::from_value(header_json)
        .map_err(|e| AppError::BadRequest(format!("header part: {e}")))?;
    Ok(state
        .services()
        .compose_document(Some(&caller.0), None, key, spec, files)
        .await?)
}

/// The file name an uploaded part travels under: its last path segment, without control
/// characters (Vietnamese letters kept); `attachment-N` when none is left.
fn attachment_name(raw: Option<&str>, index: usize) -> String {
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let cleaned = cleaned.trim().trim_start_matches('.');
    if cleaned.is_empty() {
        format!("attachment-{}", index + 1)
    } else {
        cleaned.to_string()
    }
}

/// Query of `GET /v1/route/document`.
#[derive(Debug, Deserialize)]
pub struct DocumentQuery {
    document_id: String,
}

/// Query of `GET /v1/route/attachment`.
#[derive(Debug, Deserialize)]
pub struct AttachmentQuery {
    document_id: String,
    /// 0-based index in the envelope's order.
    n: usize,
}

/// `GET /v1/route/document?document_id=`: the envelope as this node holds it.
async fn document(
    State(state): State<AppState>,
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
    Query(q): Query<DocumentQuery>,
) -> Result<Response, AppError> {
    let node = configured(node)?;
    let file = state
        .services()
        .routed_envelope(&node, &q.document_id, Some(&caller.0.agency))
        .await?;
    Ok(file_response(file))
}

/// `GET /v1/route/attachment?document_id=&n=`: attachment `n`, decoded.
async fn attachment(
    State(state): State<AppState>,
    caller: Caller,
    node: Option<Extension<Arc<Node>>>,
    Query(q): Query<AttachmentQuery>,
) -> Result<Response, AppError> {
    let node = configured(node)?;
    let file = state
        .services()
        .routed_attachment(&node, &q.document_id, q.n, Some(&caller.0.agency))
        .await?;
    Ok(file_response(file))
}

/// A download: its media type (an attachment's own when it is a plain `type/subtype`, else
/// `application/octet-stream`), never sniffed, and `Content-Disposition: attachment` with an
/// ASCII `filename` and the exact name as RFC 8187 `filename*`.
fn file_response(file: crate::gateway::route::RoutedFile) -> Response {
    let content_type = file.served_type();
    let disposition = file.content_disposition();
    let mut response = (StatusCode::OK, file.bytes).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_are_safe() {
        let d = crate::gateway::route::content_disposition("../Công văn \"số 12\".pdf");
        assert!(
            d.starts_with("attachment; filename=\"_C_ng_v_n__s__12_.pdf\"; "),
            "{d}"
        );
        assert!(
            d.contains("filename*=UTF-8''..%2FC%C3%B4ng%20v%C4%83n%20%22s%E1%BB%91%2012%22.pdf"),
            "{d}"
        );
        assert_eq!(attachment_name(Some("C:\\tmp\\../a.pdf"), 0), "a.pdf");
        assert_eq!(attachment_name(Some("..."), 2), "attachment-3");
    }

    #[test]
    fn only_plain_media_types_pass() {
        assert!(crate::gateway::route::media_type_ok("application/pdf"));
        assert!(crate::gateway::route::media_type_ok(
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        ));
        assert!(!crate::gateway::route::media_type_ok(
            "text/html\r\nSet-Cookie: a=b"
        ));
        assert!(!crate::gateway::route::media_type_ok(
            "text/html; charset=utf-8"
        ));
        assert!(!crate::gateway::route::media_type_ok("pdf"));
    }
}
