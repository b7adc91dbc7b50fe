//! PAdES signing of PDF files by incremental update.

use crate::error::ErrorCode;

pub mod appearance;
mod font;
mod image;

/// Why a PDF cannot be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PdfError {
    /// The file cannot be parsed.
    #[error("malformed PDF: {0}")]
    Malformed(String),
    /// An image given for a visible signature cannot be used (not a PNG, truncated, too large).
    #[error("invalid signature image: {0}")]
    ImageInvalid(String),
    /// A visible-signature appearance cannot be built from the given box or text.
    #[error("invalid signature appearance: {0}")]
    AppearanceInvalid(String),
    /// The embedded font could not be subset (a bug, not an input problem).
    #[error("font embedding failed: {0}")]
    Font(String),
}

impl PdfError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) => ErrorCode::PdfMalformed,
            Self::ImageInvalid(_) => ErrorCode::ImageInvalid,
            Self::AppearanceInvalid(_) => ErrorCode::Usage,
            Self::Font(_) => ErrorCode::Internal,
        }
    }
}
