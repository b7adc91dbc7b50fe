//! The HTTP gateway (CONTRACTS.md §4): routes, bearer-token or client-certificate auth, limits, metrics and the
//! error shape. Handlers are thin: signing and verification run in `spawn_blocking` through
//! [`crate::sign`] and [`crate::verify`]; persistence goes through [`crate::store`].
//!
//! Access control: a client sees its own agency only. A key, submission or audit record of
//! another agency answers 404 exactly as a missing one does; a key of the caller's agency
//! that was not granted to this client answers 403 `FORBIDDEN_KEY`.

pub mod batches;
pub mod error;
pub mod metrics;
pub mod route;
mod sign;
mod spool;
mod submissions;
mod verification;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::gateway::{Actor, GatewayError, HttpApp, Services};
use crate::keys::Pkcs12Key;
use crate::store::{Client, KeyRecord, Store};
use crate::tls::PeerCertificate;
pub use error::AppError;

/// The OpenAPI 3.1 description served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../schemas/openapi.json");

pub use crate::clock::now_rfc3339;
pub use crate::gateway::Settings;
pub use crate::ids::{new_token, random_id};
pub use crate::pki::alg::sha256_hex;

/// Shared state of the router: the gateway's services and the HTTP metrics.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    services: Services,
    metrics: metrics::Metrics,
}

impl AppState {
    /// State over `store` with `settings`; starts the audit writer, so it must be called
    /// inside the Tokio runtime that serves.
    pub fn new(store: Store, settings: Settings) -> Self {
        Self::over(Services::new(store, settings))
    }

    /// State over existing `services`.
    pub fn over(services: Services) -> Self {
        Self {
            inner: Arc::new(Inner {
                services,
                metrics: metrics::Metrics::default(),
            }),
        }
    }

    /// The services.
    pub fn services(&self) -> &Services {
        &self.inner.services
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.inner.services.store()
    }

    fn settings(&self) -> &Settings {
        self.inner.services.settings()
    }

    /// Opens (once, then cached) the PKCS#12 file of `record`, off the runtime.
    async fn signing_key(&self, record: &KeyRecord) -> Result<Arc<Pkcs12Key>, AppError> {
        Ok(self.inner.services.signing_key(record).await?)
    }

    /// The key `name` for `caller`: 404 when it is missing or another agency's, 403 when it
    /// is the caller's agency's but not granted to this client.
    async fn granted_key(&self, caller: &Client, name: &str) -> Result<KeyRecord, AppError> {
        Ok(self.inner.services.granted_key(caller, name).await?)
    }

    async fn audit(&self, caller: &Client, action: &str, subject: Value) -> Result<i64, AppError> {
        let actor = Actor {
            agency: caller.agency.clone(),
            client: caller.id.clone(),
        };
        Ok(self.inner.services.audit(&actor, action, subject).await?)
    }
}

/// Runs crypto off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::Error> + Send + 'static,
) -> Result<T, AppError> {
    Ok(crate::gateway::blocking(f).await?)
}

/// The HTTP adapter as the gateway starts it: the API router over `services` (with the
/// routing node's operator endpoints), after resuming the batches left unfinished.
pub async fn app(
    services: Services,
    node: Option<Arc<crate::routing::Node>>,
) -> Result<Router, GatewayError> {
    let state = AppState::over(services);
    let resumed = batches::resume(&state).await?;
    if resumed > 0 {
        tracing::warn!(resumed, "resuming unfinished batches");
    }
    let router = router(state);
    Ok(match node {
        Some(node) => router.layer(axum::Extension(node)),
        None => router,
    })
}

/// The adapters [`crate::gateway::Gateway::start`] serves: [`app`] and the peers' router.
pub fn http_app() -> HttpApp<
    fn(
        Services,
        Option<Arc<crate::routing::Node>>,
    )
        -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Router, GatewayError>> + Send>>,
> {
    HttpApp {
        api: |services, node| Box::pin(app(services, node)),
        peers: route::peer_router,
    }
}

/// The router: `/v1/*`, `/healthz`, `/metrics`.
pub fn router(state: AppState) -> Router {
    let limit = state.settings().max_body_bytes;
    Router::new()
        .route("/v1/sign", post(sign::sign))
        .route("/v1/verify", post(verification::verify_document))
        .route("/v1/submissions", post(submissions::submit))
        .route("/v1/submissions/{id}", get(submissions::submission))
        .route("/v1/batches", post(batches::create))
        .route("/v1/batches/{id}", get(batches::status))
        .route("/v1/batches/{id}/documents/{n}", get(batches::document))
        .route("/v1/audit", get(audit))
        .route("/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(route::routes())
        .fallback(|| async { AppError::NotFound("route") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Gives each request an id (for errors and logs) and counts it in the metrics.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let id = random_id("req_");
    let started = Instant::now();
    let limit = state.settings().max_body_bytes;
    let timeout = state.settings().request_timeout;
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let run = async move {
        // Refuse an announced oversize body at once instead of reading up to the limit.
        if announced.is_some_and(|n| n > limit as u64) {
            return AppError::PayloadTooLarge(limit).into_response();
        }
        match tokio::time::timeout(timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => AppError::Timeout(timeout.as_secs()).into_response(),
        }
    };
    let mut response = error::REQUEST_ID.scope(id.clone(), run).await;
    // Route, status and timing only: never documents, tokens or personal data.
    tracing::info!(request_id = %id, route = %route, status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64, "request");
    state
        .inner
        .metrics
        .request(&route, response.status().as_u16(), started.elapsed());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The authenticated caller: by `Authorization: Bearer` token, else by the verified TLS
/// client certificate registered with `signgate client add --cert`.
pub struct Caller(pub Client);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, AppError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let client = match (token, parts.extensions.get::<PeerCertificate>()) {
            (Some(token), _) => {
                let hash = sha256_hex(token.as_bytes());
                let client = state.store().client_by_token_hash(&hash).await?;
                client.filter(|c| bool::from(c.token_sha256.as_bytes().ct_eq(hash.as_bytes())))
            }
            // The TLS layer verified the chain to `[tls] client_ca`; the fingerprint names
            // the client.
            (None, Some(cert)) => {
                state
                    .store()
                    .client_by_cert_fingerprint(&cert.fingerprint())
                    .await?
            }
            (None, None) => None,
        };
        match client {
            Some(client) if !client.revoked => Ok(Caller(client)),
            _ => Err(AppError::Unauthorized),
        }
    }
}

fn body(result: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, AppError> {
    result.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge(limit)
        } else {
            AppError::BadRequest(format!("cannot read the request body: {e}"))
        }
    })
}

/// The `Idempotency-Key` header, if present and 1-200 visible characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .map(|k| Some(k.to_string()))
        .ok_or_else(|| {
            AppError::BadRequest("Idempotency-Key must be 1-200 visible characters".into())
        })
}

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    after: Option<i64>,
    action: Option<String>,
    limit: Option<i64>,
}

async fn audit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let records = state
        .store()
        .audit_for_agency(
            &caller.agency,
            q.after.unwrap_or(0),
            q.action.as_deref(),
            limit,
        )
        .await?;
    let records: Vec<Value> = records
        .into_iter()
        .map(|r| {
            json!({
                "seq": r.seq,
                "at": r.at,
                "client": r.client,
                "action": r.action,
                "hash": r.hash,
                "prev_hash": r.prev_hash,
                "record": serde_json::from_str::<Value>(&r.canonical).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({ "records": records })).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn healthz(State(state): State<AppState>) -> Result<Response, AppError> {
    state.store().audit_head().await?;
    Ok(Json(json!({"status": "ok"})).into_response())
}

/// Ready to serve: the database answers and every registered key opens; 503 with the error
/// shape otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.services().ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => AppError::NotReady(e.to_string()).into_response(),
    }
}

async fn metrics_text(
    State(state): State<AppState>,
    node: Option<axum::Extension<std::sync::Arc<crate::routing::Node>>>,
) -> Response {
    let mut text = state.inner.metrics.render();
    if let Some(axum::Extension(node)) = node {
        match node.store().route_outbox_states().await {
            Ok(states) => text.push_str(&metrics::render_route_outbox(&states)),
            Err(e) => tracing::warn!("metrics: routing outbox counts unavailable: {e}"),
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
