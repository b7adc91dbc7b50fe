//! The one place where a failure becomes an HTTP status and a stable code, answered as
//! `{"error": {"code", "message", "request_id"}}` (CONTRACTS.md §4).
//!
//! Internal failures (database, bugs) reach the client as `INTERNAL` with a generic message;
//! the details go to the log under the same request id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ErrorCode;
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
    }
}

impl AppError {
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
            self.to_string()
        };
        let body = serde_json::json!({
            "error": {"code": code, "message": message, "request_id": request_id}
        });
        (status, axum::Json(body)).into_response()
    }
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
}
