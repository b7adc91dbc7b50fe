//! The one place where a failure becomes an HTTP status and a stable code, answered as
//! `{"error": {"code", "message", "request_id"}}` (CONTRACTS.md §4).
//!
//! Internal failures (database, bugs) reach the client as `INTERNAL` with a generic message;
//! the details go to the log under the same request id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use axum::http::{header, HeaderValue};

use crate::error::ErrorCode;
use crate::gateway::limits::Refused;
use crate::gateway::GatewayError;

tokio::task_local! {
    /// The id of the request being served (set by the request middleware).
    pub static REQUEST_ID: String;
}

/// The current request id, or `-` outside a request.
pub fn request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| "-".into())
}

/// Any failure of an API handler.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A library error: bad document, key problem, TSA down…
    #[error(transparent)]
    Domain(#[from] crate::Error),
    /// No bearer token, an unknown one, or a revoked client.
    #[error("missing, unknown or revoked bearer token")]
    Unauthorized,
    /// The resource does not exist, or belongs to another agency.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The key belongs to the caller's agency but is not granted to this client.
    #[error("this client is not granted key '{0}'")]
    ForbiddenKey(String),
    /// A malformed request (query, multipart, headers).
    #[error("{0}")]
    BadRequest(String),
    /// The body exceeds the configured limit.
    #[error("request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The batch document asked for is not signed (yet, or it failed).
    #[error("{0}")]
    NotSigned(String),
    /// The request took longer than the configured limit.
    #[error("the request took longer than {0} s")]
    Timeout(u64),
    /// The gateway is not ready (database unreachable, a key does not open).
    #[error("not ready: {0}")]
    NotReady(String),
    /// The `Idempotency-Key` was used by this client for a different request.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// The first request with this `Idempotency-Key` is still in flight.
    #[error("{0}")]
    IdempotencyInProgress(String),
    /// Anything else that is our fault.
    #[error("{0}")]
    Internal(String),
    /// Too many requests, or too many in flight, from this client or address.
    #[error(transparent)]
    RateLimited(#[from] Refused),
    /// The route exists, but not with this method (the answer carries `Allow`).
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// The request target (path and query) is longer than the limit.
    #[error("the request target exceeds the limit of {0} bytes")]
    UriTooLong(usize),
    /// The request body did not arrive within the body read timeout.
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    /// A request the HTTP layer refused before a handler ran (a path segment of the wrong
    /// type, a missing content type…), with the status it chose.
    #[error("{1}")]
    Rejected(StatusCode, String),
}

impl From<crate::blocking::WorkerFailed> for AppError {
    fn from(e: crate::blocking::WorkerFailed) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<GatewayError> for AppError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Domain(e) => AppError::Domain(e),
            GatewayError::Store(e) => AppError::Internal(e.to_string()),
            GatewayError::UnknownKey(_) => AppError::NotFound("key"),
            GatewayError::ForbiddenKey(name) => AppError::ForbiddenKey(name),
            GatewayError::UnknownClient(_) => AppError::NotFound("client"),
            GatewayError::NotFound(what) => AppError::NotFound(what),
            GatewayError::NotSigned(why) => AppError::NotSigned(why),
            GatewayError::Invalid(why) => AppError::BadRequest(why),
            e @ GatewayError::IdempotencyKeyReused => AppError::IdempotencyKeyReused(e.to_string()),
            e @ GatewayError::IdempotencyInProgress => {
                AppError::IdempotencyInProgress(e.to_string())
            }
            e @ (GatewayError::Config(_)
            | GatewayError::ConfigMissing(_)
            | GatewayError::ForeignKey(_)
            | GatewayError::MissingFile(_)
            | GatewayError::Checkpoint(_)) => AppError::BadRequest(e.to_string()),
            e @ (GatewayError::NoReceiptKey(_)
            | GatewayError::Listen { .. }
            | GatewayError::Worker(_)
            | GatewayError::Io(_)) => AppError::Internal(e.to_string()),
        }
    }
}

impl From<crate::code::UnknownName> for AppError {
    fn from(e: crate::code::UnknownName) -> Self {
        Self::BadRequest(e.to_string())
    }
}

/// Status and stable code of a library error code; no `_` arm, so a new code picks a status.
fn domain_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Usage => StatusCode::BAD_REQUEST,
        ErrorCode::InputMissing => StatusCode::BAD_REQUEST,
        ErrorCode::PdfMalformed
        | ErrorCode::PdfEncrypted
        | ErrorCode::PdfCertifiedNoChanges
        | ErrorCode::ImageInvalid
        | ErrorCode::PdfPageOutOfRange
        | ErrorCode::PdfNoSignatureToSeal
        | ErrorCode::NoSignature
        | ErrorCode::CmsMalformed
        | ErrorCode::XmlDtdForbidden
        | ErrorCode::XmlDuplicateId
        | ErrorCode::XmlMalformed
        | ErrorCode::XmlLimitExceeded
        | ErrorCode::XmlProfileMismatch
        | ErrorCode::XmlUnsupported
        | ErrorCode::EdxmlInvalid
        | ErrorCode::EdxmlLimitExceeded
        | ErrorCode::DirectoryInvalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::DirectoryNotFound => StatusCode::NOT_FOUND,
        ErrorCode::KeyAlgorithmMismatch => StatusCode::BAD_REQUEST,
        // The gateway's own key is unusable: the caller can do nothing about it.
        ErrorCode::KeyInvalid
        | ErrorCode::KeyPasswordWrong
        | ErrorCode::P12LegacyEncryption
        | ErrorCode::CertExpired
        | ErrorCode::CertNotYetValid
        | ErrorCode::CertNoSigningUsage
        | ErrorCode::KeyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::TsaUnavailable | ErrorCode::TsaBadResponse => StatusCode::BAD_GATEWAY,
        ErrorCode::RevocationUnavailable => StatusCode::BAD_GATEWAY,
        ErrorCode::OutputUnwritable | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::RoutePeerUnknown => StatusCode::FORBIDDEN,
        ErrorCode::RoutePeerUnavailable => StatusCode::BAD_GATEWAY,
        ErrorCode::ConflictingRedelivery => StatusCode::CONFLICT,
        ErrorCode::RouteNotFound => StatusCode::NOT_FOUND,
        ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::IdempotencyInProgress => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
    }
}

impl AppError {
    /// A failed multipart read: 413 above the body limit `limit`, else 400 with the reason.
    pub(crate) fn from_multipart(
        e: axum::extract::multipart::MultipartError,
        limit: usize,
    ) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge(limit)
        } else {
            AppError::BadRequest(e.body_text())
        }
    }

    /// A failed whole-body read: 413 above the body limit `limit`, else 400 with the reason.
    pub(crate) fn from_body(e: axum::extract::rejection::BytesRejection, limit: usize) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge(limit)
        } else {
            AppError::BadRequest(format!("cannot read the request body: {e}"))
        }
    }

    /// The HTTP status and the stable code.
    pub fn status_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Domain(e) => (domain_status(e.code()), e.code().as_str()),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            AppError::ForbiddenKey(_) => (StatusCode::FORBIDDEN, "FORBIDDEN_KEY"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "USAGE"),
            AppError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            AppError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "TIMEOUT"),
            AppError::NotSigned(_) => (StatusCode::CONFLICT, "NOT_SIGNED"),
            AppError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "NOT_READY"),
            AppError::IdempotencyKeyReused(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyReused.as_str(),
            ),
            AppError::IdempotencyInProgress(_) => (
                StatusCode::CONFLICT,
                ErrorCode::IdempotencyInProgress.as_str(),
            ),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
            AppError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited.as_str(),
            ),
            AppError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            AppError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "URI_TOO_LONG"),
            AppError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
            AppError::Rejected(status, _) => (*status, rejection_code(*status)),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
        let request_id = request_id();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(request_id = %request_id, error = %self, "internal error");
            "internal error; see the gateway log for this request id".to_string()
        } else {
            // Server file paths stay in the log (a key file, a trust folder, the spool).
            if self.to_string() != without_paths(&self.to_string()) {
                tracing::info!(request_id = %request_id, error = %self, "error answered without its paths");
            }
            without_paths(&self.to_string())
        };
        let body = serde_json::json!({
            "error": {"code": code, "message": message, "request_id": request_id}
        });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            AppError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"signgate\""),
                );
            }
            AppError::RateLimited(refused) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(refused.retry_after_secs()),
                );
            }
            _ => {}
        }
        response
    }
}

/// The stable code of an answer the HTTP layer chose the status of.
fn rejection_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::URI_TOO_LONG => "URI_TOO_LONG",
        StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        s if s.is_server_error() => "INTERNAL",
        _ => "USAGE",
    }
}

/// `message` with every absolute file path replaced by `[path]`: a word starting with `/`
/// (after an opening quote or bracket) that names at least two path components. URLs and
/// the API's `/v1/…` paths stay.
pub fn without_paths(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let start = word
            .find(|c: char| !matches!(c, '\'' | '"' | '(' | '[' | '`' | '<'))
            .unwrap_or(word.len());
        let (lead, rest) = word.split_at(start);
        let end = rest
            .char_indices()
            .rev()
            .find(|(_, c)| {
                !matches!(
                    c,
                    '\'' | '"' | ')' | ']' | '`' | '>' | ',' | ';' | ':' | '.'
                )
            })
            .map_or(0, |(i, c)| i + c.len_utf8());
        let (path, trail) = rest.split_at(end);
        let is_path = path.starts_with('/') && !path.starts_with("//") && path[1..].contains('/');
        // The API's own paths are no secret.
        if is_path && !path.starts_with("/v1/") {
            out.push_str(lead);
            out.push_str("[path]");
            out.push_str(trail);
        } else {
            out.push_str(word);
        }
    }
    out
}

/// Most bytes of a non-JSON error body kept as the message of its JSON form.
const REJECTION_TEXT: usize = 1024;

/// `response` unchanged unless it is an error answered by the HTTP layer rather than a
/// handler (empty or `text/plain`: a 405, a path segment of the wrong type, a body the
/// extractor refused): that becomes the JSON error shape, keeping `Allow` and `Retry-After`.
pub async fn json_shape(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, REJECTION_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed,
        StatusCode::NOT_FOUND => AppError::NotFound("route"),
        _ => AppError::Rejected(status, text),
    };
    let mut shaped = error.into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            shaped.headers_mut().insert(name, v.clone());
        }
    }
    shaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_pinned() {
        let table = [
            (AppError::Unauthorized, 401, "UNAUTHORIZED"),
            (AppError::NotFound("key"), 404, "NOT_FOUND"),
            (AppError::ForbiddenKey("k".into()), 403, "FORBIDDEN_KEY"),
            (AppError::PayloadTooLarge(1), 413, "PAYLOAD_TOO_LARGE"),
            (AppError::BadRequest("x".into()), 400, "USAGE"),
            (AppError::Internal("x".into()), 500, "INTERNAL"),
            (AppError::Timeout(1), 504, "TIMEOUT"),
            (AppError::NotSigned("x".into()), 409, "NOT_SIGNED"),
            (AppError::NotReady("x".into()), 503, "NOT_READY"),
            (AppError::MethodNotAllowed, 405, "METHOD_NOT_ALLOWED"),
            (AppError::UriTooLong(1), 414, "URI_TOO_LONG"),
            (AppError::BodyTimeout(1), 408, "REQUEST_TIMEOUT"),
            (
                AppError::RateLimited(Refused::Concurrency {
                    who: "client",
                    max: 1,
                }),
                429,
                "RATE_LIMITED",
            ),
            (
                AppError::Rejected(StatusCode::UNSUPPORTED_MEDIA_TYPE, "x".into()),
                415,
                "USAGE",
            ),
            (
                AppError::Rejected(StatusCode::PAYLOAD_TOO_LARGE, "x".into()),
                413,
                "PAYLOAD_TOO_LARGE",
            ),
            (
                AppError::Rejected(StatusCode::BAD_GATEWAY, "x".into()),
                502,
                "INTERNAL",
            ),
            (
                AppError::from(GatewayError::IdempotencyKeyReused),
                422,
                "IDEMPOTENCY_KEY_REUSED",
            ),
            (
                AppError::from(GatewayError::IdempotencyInProgress),
                409,
                "IDEMPOTENCY_IN_PROGRESS",
            ),
            (
                AppError::Domain(crate::Error::Usage("x".into())),
                400,
                "USAGE",
            ),
        ];
        for (err, status, code) in table {
            let (s, c) = err.status_code();
            assert_eq!((s.as_u16(), c), (status, code));
        }
    }

    #[test]
    fn paths_are_left_out_of_messages() {
        let cases = [
            (
                "key 'k' (/etc/signgate/keys/k.p12): cannot be opened",
                "key 'k' ([path]): cannot be opened",
            ),
            (
                "cannot read \"/var/lib/x/spool/in_1.part\", retry",
                "cannot read \"[path]\", retry",
            ),
            (
                "fetch http://127.0.0.1:8089/ocsp failed",
                "fetch http://127.0.0.1:8089/ocsp failed",
            ),
            ("use /v1/sign or a/b", "use /v1/sign or a/b"),
            (
                "part '\u{80}' or 'é/x' in /tmp/é",
                "part '\u{80}' or 'é/x' in [path]",
            ),
            ("in /tmp/é/x.pdf.", "in [path]."),
        ];
        for (given, expected) in cases {
            assert_eq!(without_paths(given), expected);
        }
    }
}
