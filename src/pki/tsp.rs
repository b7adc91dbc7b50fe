//! RFC 3161 time-stamp client: build a request, send it over HTTP, check the answer.

use crate::error::ErrorCode;

/// Obtaining a time-stamp token failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TspError {
    /// The TSA could not be reached.
    #[error("time-stamp authority {url} unreachable: {reason}")]
    Unavailable {
        /// The TSA's URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The TSA answered with something other than a granted, matching token.
    #[error("time-stamp authority {url} gave an unusable answer: {reason}")]
    BadResponse {
        /// The TSA's URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl TspError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unavailable { .. } => ErrorCode::TsaUnavailable,
            Self::BadResponse { .. } => ErrorCode::TsaBadResponse,
        }
    }
}

/// Placeholder until the RFC 3161 client lands.
pub fn request_token(
    url: &str,
    _digest: crate::pki::alg::DigestAlgorithm,
    _imprint: &[u8],
    _timeout: std::time::Duration,
) -> Result<Vec<u8>, TspError> {
    Err(TspError::Unavailable {
        url: url.into(),
        reason: "client not built yet".into(),
    })
}
