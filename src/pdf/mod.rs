//! PAdES signing of PDF files by incremental update.

use crate::error::ErrorCode;

/// Why a PDF cannot be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PdfError {
    /// The file cannot be parsed.
    #[error("malformed PDF: {0}")]
    Malformed(String),
}

impl PdfError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) => ErrorCode::PdfMalformed,
        }
    }
}
