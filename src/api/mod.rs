//! The HTTP adapter (CONTRACTS.md §4): routes, bearer-token or client-certificate auth, limits,
//! metrics and the error shape. Handlers parse the request, call a [`crate::gateway`] service
//! and render its answer; the signing, verification, storage and audit are the gateway's.
//!
//! Access control: a client sees its own agency only. A key, submission or audit record of
//! another agency answers 404 exactly as a missing one does; a key of the caller's agency
//! that was not granted to this client answers 403 `FORBIDDEN_KEY`.

pub mod batches;
pub mod error;
pub mod route;
mod sign;
mod spool;
mod submissions;
mod verification;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::gateway::access::{AgencyRecord, AuditPage, Credential};
use crate::gateway::limits::{Admitted, Limiter};
use crate::gateway::Client;
use crate::gateway::{GatewayError, HttpApp, Services, Settings};
use crate::ids::random_id;
use crate::tls::{BodyTimedOut, PeerCertificate, RemoteAddr};
pub use error::AppError;

/// The OpenAPI 3.1 description served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../schemas/openapi.json");

/// Shared state of the router: the gateway's services.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    services: Services,
    limiter: Limiter,
}

impl AppState {
    /// State over existing `services`, enforcing their `[limits]`.
    pub fn over(services: Services) -> Self {
        let limiter = Limiter::new(&services.settings().limits);
        Self {
            inner: Arc::new(Inner { services, limiter }),
        }
    }

    /// The rate, concurrency and body memory limits.
    fn limiter(&self) -> &Limiter {
        &self.inner.limiter
    }

    /// The services.
    pub fn services(&self) -> &Services {
        &self.inner.services
    }

    fn settings(&self) -> &Settings {
        self.inner.services.settings()
    }
}

/// The HTTP adapter as the gateway starts it: the API router over `services` (with the
/// routing node's operator endpoints), after resuming the batches left unfinished.
pub async fn app(
    services: Services,
    node: Option<Arc<crate::routing::Node>>,
) -> Result<Router, GatewayError> {
    let router = router(AppState::over(services));
    Ok(match node {
        Some(node) => router.layer(axum::Extension(node)),
        None => router,
    })
}

/// How [`http_app`] builds the API: [`app`], boxed.
pub type BuildApi = fn(
    Services,
    Option<Arc<crate::routing::Node>>,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Router, GatewayError>> + Send>,
>;

/// The adapters [`crate::gateway::Gateway::start`] serves: [`app`] with the web console
/// ([`crate::console::router`]) on the same port, and the peers' router.
pub fn http_app() -> HttpApp<BuildApi> {
    HttpApp {
        api: |services, node| {
            Box::pin(async move {
                let console = crate::console::router(services.clone());
                // The routing desk reaches the node as the API's routes do.
                let console = match &node {
                    Some(n) => console.layer(axum::Extension(n.clone())),
                    None => console,
                };
                Ok(app(services, node).await?.merge(console))
            })
        },
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
        .route("/v1/batches/{id}/archive", get(batches::archive))
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
    let body_timeout = state.settings().limits.body_read_timeout;
    let served = state.clone();
    let run = async move {
        let state = served;
        // Refuse an announced oversize body at once instead of reading up to the limit.
        if announced.is_some_and(|n| n > limit as u64) {
            return AppError::PayloadTooLarge(limit).into_response();
        }
        let mut req = req;
        let _admitted = match admit(&state, &mut req).await {
            Ok(admitted) => admitted,
            Err(e) => return refuse(req, e).await,
        };
        let body_timed_out = req.extensions().get::<BodyTimedOut>().cloned();
        let caller = req.extensions().get::<Authenticated>().cloned();
        let mut response = match tokio::time::timeout(timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => AppError::Timeout(timeout.as_secs()).into_response(),
        };
        if let Some(Authenticated(Some(client))) = caller {
            agency_audit_id(&state, &client, &mut response).await;
        }
        if body_timed_out.is_some_and(|t| t.is_set()) {
            // The client is still sending (slowly): answer and close the connection.
            let mut response = AppError::BodyTimeout(body_timeout.as_secs()).into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        error::json_shape(response).await
    };
    let mut response = error::REQUEST_ID.scope(id.clone(), run).await;
    // Route, status and timing only: never documents, tokens or personal data.
    tracing::info!(request_id = %id, route = %route, status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64, "request");
    state
        .services()
        .metrics()
        .request(&route, response.status().as_u16(), started.elapsed());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Longest request target (path and query) answered; longer ones are 414 `URI_TOO_LONG`.
const MAX_URI_BYTES: usize = 8 * 1024;

/// Paths served to anyone, however busy: probes and metrics.
const UNLIMITED_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// The client a request authenticated as (`None`: no or a bad credential), found once by
/// [`admit`] for the limits and reused by [`Caller`].
#[derive(Clone)]
struct Authenticated(Option<Client>);

/// Admits a request under the limits: its target's length, its remote address's rate and
/// in-flight count, and, when it authenticates, its client's. The guard counts it in flight.
async fn admit(state: &AppState, req: &mut Request) -> Result<Admitted, AppError> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(AppError::UriTooLong(MAX_URI_BYTES));
    }
    let mut admitted = Admitted::default();
    if UNLIMITED_PATHS.contains(&req.uri().path()) {
        return Ok(admitted);
    }
    let limiter = state.limiter();
    if let Some(RemoteAddr(remote)) = req.extensions().get::<RemoteAddr>() {
        limiter.admit_address(&remote.ip().to_string(), &mut admitted)?;
    }
    let client = authenticate(state, req.headers(), req.extensions()).await?;
    if let Some(client) = &client {
        limiter.admit_client(&client.id, &mut admitted)?;
    }
    req.extensions_mut().insert(Authenticated(client));
    Ok(admitted)
}

/// The client that the request's bearer token, else its verified TLS client certificate,
/// names; `None` without a credential or with an unknown or revoked one.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<Option<Client>, AppError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let fingerprint = extensions
        .get::<PeerCertificate>()
        .map(PeerCertificate::fingerprint);
    // The TLS layer verified a client certificate's chain to `[tls] client_ca`; its
    // fingerprint names the client when no token is given.
    let credential = match (token, &fingerprint) {
        (Some(token), _) => Credential::Token(token),
        (None, Some(fingerprint)) => Credential::Certificate(fingerprint),
        (None, None) => return Ok(None),
    };
    Ok(state.services().authenticate(credential).await?)
}

/// Most bytes of a refused request's body read (and dropped) before the answer.
const DRAIN_REFUSED: u64 = 1 << 20;

/// Answers a request refused before its handler with `error`. Its body is read and dropped
/// first (up to [`DRAIN_REFUSED`] bytes, for at most a second), so that a client still
/// sending it gets the answer rather than a reset connection; a longer or slower body closes
/// the connection after the answer.
async fn refuse(req: Request, error: AppError) -> Response {
    let mut body = req.into_body();
    let drain = async {
        let mut read: u64 = 0;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > DRAIN_REFUSED {
                return false;
            }
        }
        true
    };
    let drained = tokio::time::timeout(std::time::Duration::from_secs(1), drain)
        .await
        .unwrap_or(false);
    let mut response = error.into_response();
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Replaces the chain's global sequence number in `Signgate-Audit-Id` by the caller's
/// agency's own number of that record (as `GET /v1/audit` shows it).
async fn agency_audit_id(state: &AppState, client: &Client, response: &mut Response) {
    let Some(seq) = response
        .headers()
        .get(AUDIT_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return;
    };
    match state.services().audit_number(client, seq).await {
        Ok(number) => {
            response
                .headers_mut()
                .insert(AUDIT_ID, HeaderValue::from(number));
        }
        Err(e) => {
            tracing::warn!(error = %e, "audit id not renumbered; left out");
            response.headers_mut().remove(AUDIT_ID);
        }
    }
}

/// The header naming a request's audit record.
const AUDIT_ID: &str = "signgate-audit-id";

/// The authenticated caller: by `Authorization: Bearer` token, else by the verified TLS
/// client certificate registered with `signgate client add --cert`.
pub struct Caller(pub Client);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, AppError> {
        let client = match parts.extensions.get::<Authenticated>() {
            Some(Authenticated(client)) => client.clone(),
            None => authenticate(state, &parts.headers, &parts.extensions).await?,
        };
        client.map(Caller).ok_or(AppError::Unauthorized)
    }
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
    let page = AuditPage {
        after: q.after.unwrap_or(0),
        action: q.action.as_deref(),
        limit: q.limit.unwrap_or(100),
    };
    let records = state.services().audit_records(&caller, page).await?;
    let records: Vec<Value> = records
        .into_iter()
        .map(|AgencyRecord { number, record: r }| {
            // The chain's global sequence number (and the link to the record before, which
            // may be another agency's) stay out of the agency's view; its hash stays in.
            let mut fields = serde_json::from_str::<Value>(&r.canonical).unwrap_or(Value::Null);
            if let Some(fields) = fields.as_object_mut() {
                fields.remove("seq");
            }
            json!({
                "seq": number,
                "at": r.at,
                "client": r.client,
                "action": r.action,
                "hash": r.hash,
                "record": fields,
            })
        })
        .collect();
    Ok(Json(json!({ "records": records })).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn healthz(State(state): State<AppState>) -> Result<Response, AppError> {
    state.services().alive().await?;
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
    let mut text = state.services().metrics().render();
    if let Some(axum::Extension(node)) = node {
        match state.services().outbox_states(&node).await {
            Ok(states) => text.push_str(&crate::gateway::metrics::render_route_outbox(&states)),
            Err(e) => tracing::warn!("metrics: routing outbox counts unavailable: {e}"),
        }
        text.push_str(&node.counters.render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
