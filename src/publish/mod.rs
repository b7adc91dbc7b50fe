//! The PKI publication point (`signgate pki serve`): serves a CA folder's CRLs and CA
//! certificates and answers OCSP for the issuing CA, at the URLs the demo PKI's
//! certificates name (`{base}crl/…`, `{base}certs/…`, `{base}ocsp`).
//!
//! The CA database (`index.txt`) is read again for every OCSP request, so revocations made
//! while it runs are answered at once.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use openssl::x509::X509;
use time::OffsetDateTime;

pub mod ocsp;

use crate::keys::KeySource;
use ocsp::{CaDatabase, OcspResponder};

/// Largest OCSP request accepted.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// What the publication point serves from: a CA folder and the OCSP responder's key.
///
/// Its answers are plain functions, so a verifier in the same process can ask it directly
/// ([`Publication::get`], [`Publication::post`]) instead of going over the network.
pub struct Publication {
    dir: PathBuf,
    issuing_ca: X509,
    responder_key: Arc<dyn KeySource>,
}

/// Why the publication point cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The issuing CA certificate cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The issuing CA file is not a PEM certificate.
    #[error("{} is not a PEM certificate", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
    },
}

impl PublishError {
    /// INPUT_MISSING for an unreadable file, USAGE for a file that is not a certificate.
    pub fn code(&self) -> crate::code::ErrorCode {
        match self {
            Self::Read { .. } => crate::code::ErrorCode::InputMissing,
            Self::NotPem { .. } => crate::code::ErrorCode::Usage,
        }
    }
}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Publication {
    /// Opens the CA folder `dir` (holding `issuing-ca.pem`, `index.txt`, `*.crl` and CA
    /// `*.pem` files), signing OCSP responses with `responder_key`.
    pub fn open(dir: PathBuf, responder_key: Arc<dyn KeySource>) -> Result<Self, PublishError> {
        let ca_path = dir.join("issuing-ca.pem");
        let pem = std::fs::read(&ca_path).map_err(|source| PublishError::Read {
            path: ca_path.clone(),
            source,
        })?;
        let issuing_ca =
            X509::from_pem(&pem).map_err(|_| PublishError::NotPem { path: ca_path })?;
        Ok(Self {
            dir,
            issuing_ca,
            responder_key,
        })
    }

    /// The OCSP response (DER) to the DER `request`, answered at `now` from the CA database.
    pub fn ocsp(&self, request: &[u8], now: OffsetDateTime) -> Option<Vec<u8>> {
        let index = std::fs::read_to_string(self.dir.join("index.txt")).unwrap_or_default();
        let responder = OcspResponder::new(
            &self.issuing_ca,
            self.responder_key.clone(),
            CaDatabase::parse(&index),
        )
        .ok()?;
        Some(responder.respond(request, now))
    }

    /// The CRL `NAME.crl` (DER), if the folder has it.
    pub fn crl(&self, name: &str) -> Option<Vec<u8>> {
        let stem = name.strip_suffix(".crl").filter(|s| safe_name(s))?;
        std::fs::read(self.dir.join(format!("{stem}.crl"))).ok()
    }

    /// The CA certificate `NAME-ca.cer` as DER (AIA caIssuers); other certificates are not served.
    pub fn ca_certificate(&self, name: &str) -> Option<Vec<u8>> {
        let stem = name
            .strip_suffix(".cer")
            .filter(|s| safe_name(s) && s.ends_with("-ca"))?;
        let pem = std::fs::read(self.dir.join(format!("{stem}.pem"))).ok()?;
        X509::from_pem(&pem).ok().and_then(|c| c.to_der().ok())
    }

    /// Answers a GET of `path` (relative to the base URL: `crl/…`, `certs/…`, `ocsp/…`).
    pub fn get(&self, path: &str, now: OffsetDateTime) -> Option<Vec<u8>> {
        if let Some(name) = path.strip_prefix("crl/") {
            self.crl(name)
        } else if let Some(name) = path.strip_prefix("certs/") {
            self.ca_certificate(name)
        } else if let Some(request) = path.strip_prefix("ocsp/") {
            let der = base64::engine::general_purpose::STANDARD
                .decode(request.as_bytes())
                .ok()?;
            self.ocsp(&der, now)
        } else {
            None
        }
    }

    /// Answers a POST of `body` to `path` (relative to the base URL; only `ocsp`).
    pub fn post(&self, path: &str, body: &[u8], now: OffsetDateTime) -> Option<Vec<u8>> {
        (path == "ocsp").then(|| self.ocsp(body, now)).flatten()
    }

    /// The HTTP routes of this publication point.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/ocsp", post(ocsp_post))
            .route("/ocsp/{request}", get(ocsp_get))
            .route("/crl/{name}", get(crl))
            .route("/certs/{name}", get(certificate))
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(self)
    }
}

/// Builds the router for the CA folder `dir`, signing OCSP responses with `responder_key`
/// (see [`Publication::open`]).
pub fn router(dir: PathBuf, responder_key: Arc<dyn KeySource>) -> Result<Router, PublishError> {
    Ok(Arc::new(Publication::open(dir, responder_key)?).router())
}

async fn ocsp_post(State(p): State<Arc<Publication>>, body: Bytes) -> Response {
    answer(p, body.to_vec()).await
}

/// RFC 6960 Appendix A.1: GET with the base64 (URL-encoded) request in the path.
async fn ocsp_get(State(p): State<Arc<Publication>>, Path(request): Path<String>) -> Response {
    match base64::engine::general_purpose::STANDARD.decode(request.as_bytes()) {
        Ok(der) => answer(p, der).await,
        Err(_) => (StatusCode::BAD_REQUEST, "request is not base64").into_response(),
    }
}

async fn answer(p: Arc<Publication>, request: Vec<u8>) -> Response {
    let now = OffsetDateTime::now_utc();
    match tokio::task::spawn_blocking(move || p.ocsp(&request, now)).await {
        Ok(Some(der)) => ([(CONTENT_TYPE, "application/ocsp-response")], der).into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "responder failed").into_response(),
    }
}

async fn crl(State(p): State<Arc<Publication>>, Path(name): Path<String>) -> Response {
    match tokio::task::spawn_blocking(move || p.crl(&name)).await {
        Ok(Some(der)) => ([(CONTENT_TYPE, "application/pkix-crl")], der).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// CA certificates only (`*-ca.pem`), served as DER (`.cer`) for AIA caIssuers.
async fn certificate(State(p): State<Arc<Publication>>, Path(name): Path<String>) -> Response {
    match tokio::task::spawn_blocking(move || p.ca_certificate(&name)).await {
        Ok(Some(der)) => ([(CONTENT_TYPE, "application/pkix-cert")], der).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Names made of letters, digits and dashes only: no path traversal.
fn safe_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
