//! The HTTP gateway (CONTRACTS.md §4): routes, bearer-token auth, limits, metrics and the
//! error shape. Handlers are thin: signing and verification run in `spawn_blocking` through
//! [`crate::sign`] and [`crate::verify`]; persistence goes through [`crate::store`].
//!
//! Access control: a client sees its own agency only. A key, submission or audit record of
//! another agency answers 404 exactly as a missing one does; a key of the caller's agency
//! that was not granted to this client answers 403 `FORBIDDEN_KEY`.

pub mod audit_queue;
pub mod batches;
pub mod error;
pub mod metrics;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State,
};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::keys::{KeySource, Pkcs12Key};
use crate::pdf::appearance::Appearance;
use crate::pdf::{PageSelector, Placement, VisibleSignature};
use crate::pki::alg::{DigestAlgorithm, RsaPadding};
use crate::sign::{Format, HttpTimeStamper, Level, PdfDetails, SignRequest, TimeStamper};
use crate::store::{AuditEntry, Client, KeyRecord, Store, Submission};
use crate::verify::{self, TrustList, ValidationContext};
pub use error::AppError;

/// The OpenAPI 3.1 description served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../schemas/openapi.json");

/// Gateway settings, validated from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// RFC 3161 TSA for B-T signatures and receipt time-stamps.
    pub tsa_url: Option<String>,
    /// Key that signs submission receipts and audit checkpoints.
    pub receipt_key: String,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Trust anchors (PEM files or folders) for verification.
    pub trust: Vec<PathBuf>,
    /// Validate with embedded data only (no OCSP/CRL fetches).
    pub offline: bool,
    /// Key passwords by key name (from config or environment).
    pub key_passwords: HashMap<String, String>,
    /// Password for keys without their own (env `SIGNGATE_KEY_PASSWORD`, or `demo` in demo mode).
    pub default_key_password: Option<String>,
    /// Seconds to wait for a TSA, OCSP responder or CRL server.
    pub fetch_timeout: Duration,
    /// Longest time a request may take before it is answered `TIMEOUT` (504).
    pub request_timeout: Duration,
    /// Folder of the batches' inputs and outputs (`DATA/batches`).
    pub batch_dir: PathBuf,
}

impl Settings {
    /// The password of key `name`, if any is configured.
    pub fn key_password(&self, name: &str) -> Option<&str> {
        self.key_passwords
            .get(name)
            .or(self.default_key_password.as_ref())
            .map(String::as_str)
    }

    /// The validation context for a verification now.
    pub fn validation_context(&self) -> Result<ValidationContext, crate::Error> {
        let mut lists = Vec::new();
        for path in &self.trust {
            lists.push(TrustList::load("default", path).map_err(crate::Error::Usage)?);
        }
        let fetcher: Option<Box<dyn verify::Fetcher>> = if self.offline {
            None
        } else {
            Some(Box::new(verify::HttpFetcher::new(self.fetch_timeout)))
        };
        Ok(ValidationContext {
            at: OffsetDateTime::now_utc(),
            trust_lists: lists,
            fetcher,
        })
    }

    fn timestamper(&self) -> Option<HttpTimeStamper> {
        self.tsa_url
            .as_ref()
            .map(|url| HttpTimeStamper::new(url, self.fetch_timeout))
    }
}

/// Shared state of the router.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: Settings,
    keys: Mutex<HashMap<String, (String, Arc<Pkcs12Key>)>>,
    metrics: metrics::Metrics,
    audit_queue: audit_queue::AuditQueue,
    /// Held by the batch being signed: batches run one after another.
    batch_slot: Mutex<()>,
}

impl AppState {
    /// State over `store` with `settings`; starts the audit writer, so it must be called
    /// inside the Tokio runtime that serves.
    pub fn new(store: Store, settings: Settings) -> Self {
        Self {
            inner: Arc::new(Inner {
                audit_queue: audit_queue::AuditQueue::start(store.clone()),
                store,
                settings,
                keys: Mutex::new(HashMap::new()),
                metrics: metrics::Metrics::default(),
                batch_slot: Mutex::new(()),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Opens (once, then cached) the PKCS#12 file of `record`, off the runtime.
    async fn signing_key(&self, record: &KeyRecord) -> Result<Arc<Pkcs12Key>, AppError> {
        {
            let cache = self.inner.keys.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((path, key)) = cache.get(&record.name) {
                if *path == record.p12_path {
                    return Ok(key.clone());
                }
            }
        }
        let password = self
            .inner
            .settings
            .key_password(&record.name)
            .unwrap_or_default()
            .to_string();
        let path = record.p12_path.clone();
        let key = blocking(move || {
            Pkcs12Key::open(std::path::Path::new(&path), &password).map_err(crate::Error::from)
        })
        .await?;
        let key = Arc::new(key);
        self.inner
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.name.clone(), (record.p12_path.clone(), key.clone()));
        Ok(key)
    }

    /// The key `name` for `caller`: 404 when it is missing or another agency's, 403 when it
    /// is the caller's agency's but not granted to this client.
    async fn granted_key(&self, caller: &Client, name: &str) -> Result<KeyRecord, AppError> {
        let record = match self.inner.store.key(name).await? {
            Some(r) if r.agency == caller.agency => r,
            _ => return Err(AppError::NotFound("key")),
        };
        if !self.inner.store.is_granted(&caller.id, &record.name).await? {
            return Err(AppError::ForbiddenKey(record.name));
        }
        Ok(record)
    }

    async fn audit(&self, caller: &Client, action: &str, subject: Value) -> Result<i64, AppError> {
        let entry = AuditEntry {
            agency: caller.agency.clone(),
            client: caller.id.clone(),
            action: action.into(),
            subject,
        };
        Ok(self
            .inner
            .audit_queue
            .append(entry, now_rfc3339())
            .await?
            .seq)
    }
}

/// Now, RFC 3339 UTC to the second.
pub fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&Rfc3339).unwrap_or_default()
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A fresh random id with `prefix` (128 bits).
pub fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// A new bearer token (256 bits, shown once) and its SHA-256 hex for the database.
pub fn new_token() -> (String, String) {
    let raw: [u8; 32] = rand::random();
    let token = format!(
        "sg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let hash = sha256_hex(token.as_bytes());
    (token, hash)
}

/// Runs crypto off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::Error> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(format!("worker failed: {e}")))?
        .map_err(AppError::from)
}

/// The router: `/v1/*`, `/healthz`, `/metrics`.
pub fn router(state: AppState) -> Router {
    let limit = state.inner.settings.max_body_bytes;
    Router::new()
        .route("/v1/sign", post(sign))
        .route("/v1/verify", post(verify_document))
        .route("/v1/submissions", post(submit))
        .route("/v1/submissions/{id}", get(submission))
        .route("/v1/batches", post(batches::create))
        .route("/v1/batches/{id}", get(batches::status))
        .route("/v1/batches/{id}/documents/{n}", get(batches::document))
        .route("/v1/audit", get(audit))
        .route("/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
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
    let limit = state.inner.settings.max_body_bytes;
    let timeout = state.inner.settings.request_timeout;
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

/// The authenticated caller.
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
            .map(str::trim)
            .ok_or(AppError::Unauthorized)?;
        let hash = sha256_hex(token.as_bytes());
        let client = state
            .inner
            .store
            .client_by_token_hash(&hash)
            .await?
            .ok_or(AppError::Unauthorized)?;
        let same: bool = client.token_sha256.as_bytes().ct_eq(hash.as_bytes()).into();
        if !same || client.revoked {
            return Err(AppError::Unauthorized);
        }
        Ok(Caller(client))
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

/// Query of `POST /v1/sign`.
#[derive(Debug, Deserialize)]
pub struct SignQuery {
    key: String,
    format: Option<String>,
    profile: Option<String>,
    level: Option<String>,
    page: Option<i64>,
    rect: Option<String>,
    doc_number: Option<String>,
}

async fn sign(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<SignQuery>, axum::extract::rejection::QueryRejection>,
    input: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let input = body(input, state.inner.settings.max_body_bytes)?;
    let record = state.granted_key(&caller, &q.key).await?;
    let format = parse_format(q.format.as_deref())?;
    let level: Level = q
        .level
        .as_deref()
        .unwrap_or("b-b")
        .parse()
        .map_err(AppError::BadRequest)?;
    let xml_profile = q
        .profile
        .as_deref()
        .map(str::parse::<crate::xml::Profile>)
        .transpose()
        .map_err(AppError::BadRequest)?;
    let page = match q.page {
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
    let rect = q.rect.as_deref().map(parse_rect).transpose()?;
    let seal = match &record.seal_path {
        Some(path) => Some(
            tokio::fs::read(path)
                .await
                .map_err(|e| AppError::Internal(format!("seal image {path}: {e}")))?,
        ),
        None => None,
    };
    let key = state.signing_key(&record).await?;
    let settings = state.inner.settings.clone();
    let seal_size_mm = record.seal_size_mm.unwrap_or(36.0);
    let doc_number = q.doc_number.clone();
    let input_hash = sha256_hex(&input);
    let signed = blocking(move || {
        let signing_time = OffsetDateTime::now_utc().to_offset(crate::sign::VIETNAM);
        let resolved = format.unwrap_or_else(|| Format::detect(&input));
        let visible = if resolved == Format::Pdf {
            visible_signature(
                &*key,
                page,
                rect,
                seal,
                seal_size_mm,
                doc_number,
                signing_time,
            )
        } else {
            None
        };
        let timestamper = settings.timestamper();
        let request = SignRequest {
            format: Some(resolved),
            level,
            digest: DigestAlgorithm::Sha256,
            rsa_padding: RsaPadding::Pkcs1,
            signing_time,
            timestamper: timestamper.as_ref().map(|t| t as &dyn TimeStamper),
            pdf: PdfDetails {
                visible,
                ..PdfDetails::default()
            },
            xml_profile,
        };
        crate::sign::sign_document(&input, &*key, &request)
    })
    .await?;
    let format_name = match signed.format {
        Format::Pdf => "pdf",
        Format::Cms => "cms",
        Format::Xml => "xml",
    };
    state.inner.metrics.signature(format_name);
    let seq = state
        .audit(
            &caller,
            "sign",
            json!({
                "key": record.name,
                "format": format_name,
                "input_sha256": input_hash,
                "output_sha256": sha256_hex(&signed.bytes),
            }),
        )
        .await?;
    let content_type = match signed.format {
        Format::Pdf => "application/pdf",
        Format::Cms => "application/pkcs7-signature",
        Format::Xml => "application/xml",
    };
    let mut response = (StatusCode::OK, signed.bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert("signgate-audit-id", HeaderValue::from(seq));
    Ok(response)
}

/// `?format=` / `"format"`: none or `auto` detects it from the content.
fn parse_format(text: Option<&str>) -> Result<Option<Format>, AppError> {
    match text {
        None | Some("") | Some("auto") => Ok(None),
        Some("pdf") => Ok(Some(Format::Pdf)),
        Some("cms") => Ok(Some(Format::Cms)),
        Some("xml") => Ok(Some(Format::Xml)),
        Some(other) => Err(AppError::BadRequest(format!(
            "format '{other}' is not pdf, cms or xml"
        ))),
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

/// The visible part of an API signature: the attachment stamp when `doc_number` is given,
/// else the key's bound seal, else none.
fn visible_signature(
    key: &dyn KeySource,
    page: PageSelector,
    rect: Option<[f64; 4]>,
    seal: Option<Vec<u8>>,
    seal_size_mm: f64,
    doc_number: Option<String>,
    at: OffsetDateTime,
) -> Option<VisibleSignature> {
    let to_rect = |r: [f64; 4]| Placement::Rect {
        x: r[0],
        y: r[1],
        w: r[2],
        h: r[3],
    };
    if let Some(number) = doc_number {
        let cert = key.certificate();
        let agency = crate::pki::subject_organization(cert)
            .or_else(|| crate::pki::subject_common_name(cert))
            .unwrap_or_default();
        let when = crate::sign::display_time(at);
        let lines = vec![
            agency,
            format!("Số: {number}"),
            format!("Thời gian ký: {when}"),
        ];
        let (w, h) = Appearance::text_size(&lines);
        return Some(VisibleSignature {
            page: PageSelector::Number(1),
            placement: rect
                .map(to_rect)
                .unwrap_or(Placement::TopRightStamp { w, h }),
            appearance: Appearance::Text { lines },
        });
    }
    let image_png = seal?;
    let d = seal_size_mm * 72.0 / 25.4;
    Some(VisibleSignature {
        page,
        placement: to_rect(rect.unwrap_or([400.0, 90.0, d, d])),
        appearance: Appearance::Seal { image_png },
    })
}

fn parse_rect(text: &str) -> Result<[f64; 4], AppError> {
    crate::pdf::parse_rect(text)
        .ok_or_else(|| AppError::BadRequest(format!("rect '{text}' must be x,y,w,h in points")))
}

/// The document (and, for a detached CMS signature, its content) of a verify or submit body:
/// the raw body, or multipart parts `signature` + `content` (or `document`).
async fn read_document(state: &AppState, req: Request) -> Result<(Bytes, Option<Bytes>), AppError> {
    let limit = state.inner.settings.max_body_bytes;
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

async fn run_verification(
    state: &AppState,
    document: Bytes,
    content: Option<Bytes>,
) -> Result<verify::Report, AppError> {
    let ctx = state.inner.settings.validation_context()?;
    let report = blocking(move || {
        verify::document(
            "document",
            &document,
            content.as_deref(),
            &verify::Policy::default(),
            &ctx,
        )
        .map_err(crate::Error::from)
    })
    .await?;
    state
        .inner
        .metrics
        .verdict(&indication_name(report.indication));
    Ok(report)
}

fn indication_name(i: verify::Indication) -> String {
    serde_json::to_value(i)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

async fn verify_document(
    State(state): State<AppState>,
    Caller(caller): Caller,
    req: Request,
) -> Result<Response, AppError> {
    let (document, content) = read_document(&state, req).await?;
    let sha256 = sha256_hex(&document);
    let report = run_verification(&state, document, content).await?;
    let seq = state
        .audit(
            &caller,
            "verify",
            json!({"sha256": sha256, "indication": indication_name(report.indication)}),
        )
        .await?;
    let mut response = Json(report).into_response();
    response
        .headers_mut()
        .insert("signgate-audit-id", HeaderValue::from(seq));
    Ok(response)
}

async fn submit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, AppError> {
    let idempotency_key = idempotency_key(&headers)?;
    // The body is read first even for a replay: answering before it is consumed would reset
    // the connection under a client that is still sending.
    let (document, content) = read_document(&state, req).await?;
    if let Some(k) = &idempotency_key {
        if let Some(stored) = state
            .inner
            .store
            .submission_by_idempotency_key(&caller.id, k)
            .await?
        {
            return Ok(replay(&stored));
        }
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
        .inner
        .store
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
        if let Some(k) = &idempotency_key {
            if let Some(stored) = state
                .inner
                .store
                .submission_by_idempotency_key(&caller.id, k)
                .await?
            {
                return Ok(replay(&stored));
            }
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
    let name = state.inner.settings.receipt_key.clone();
    let record = state
        .inner
        .store
        .key(&name)
        .await?
        .ok_or_else(|| AppError::Internal(format!("receipt key '{name}' is not registered")))?;
    let key = state.signing_key(&record).await?;
    let settings = state.inner.settings.clone();
    blocking(move || sign_detached_blocking(&*key, &content, &settings)).await
}

/// Signs `content` detached with `key`, adding a signature time-stamp when a TSA is set.
pub fn sign_detached_blocking(
    key: &dyn KeySource,
    content: &[u8],
    settings: &Settings,
) -> Result<Vec<u8>, crate::Error> {
    let level = if settings.tsa_url.is_some() {
        Level::BT
    } else {
        Level::BB
    };
    let timestamper = settings.timestamper();
    let request = SignRequest {
        format: Some(Format::Cms),
        level,
        digest: DigestAlgorithm::Sha256,
        rsa_padding: RsaPadding::Pkcs1,
        signing_time: OffsetDateTime::now_utc(),
        timestamper: timestamper.as_ref().map(|t| t as &dyn TimeStamper),
        pdf: PdfDetails::default(),
        xml_profile: None,
    };
    Ok(crate::sign::sign_document(content, key, &request)?.bytes)
}

async fn submission(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let s = state
        .inner
        .store
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
        .inner
        .store
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
    state.inner.store.audit_head().await?;
    Ok(Json(json!({"status": "ok"})).into_response())
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.inner.metrics.render(),
    )
        .into_response()
}
