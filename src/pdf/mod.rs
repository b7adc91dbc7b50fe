//! PAdES signing of PDF files by incremental update. (Placeholder API until the PDF core lands.)

pub mod appearance;

use crate::error::ErrorCode;
use crate::pki::alg::DigestAlgorithm;

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

/// Options of one PAdES signature.
pub struct PdfSignOptions {
    /// Field name.
    pub field_name: Option<String>,
    /// /Reason.
    pub reason: Option<String>,
    /// /Location.
    pub location: Option<String>,
    /// /Name.
    pub name: Option<String>,
    /// /ContactInfo.
    pub contact_info: Option<String>,
    /// /M.
    pub signing_time: time::OffsetDateTime,
    /// Bytes reserved for CMS.
    pub contents_size: usize,
    /// Visible signature.
    pub visible: Option<VisibleSignature>,
}
/// A visible signature.
#[derive(Clone)]
pub struct VisibleSignature {
    /// Page.
    pub page: PageSelector,
    /// Where.
    pub placement: Placement,
    /// What.
    pub appearance: appearance::Appearance,
}
/// Page.
#[derive(Clone, Copy)]
pub enum PageSelector {
    /// 1-based.
    Number(u32),
    /// Last.
    Last,
}
/// Where.
#[derive(Clone, Copy)]
pub enum Placement {
    /// Rect.
    Rect {
        /// x
        x: f64,
        /// y
        y: f64,
        /// w
        w: f64,
        /// h
        h: f64,
    },
    /// Seal.
    SealOverPreviousSignature {
        /// d
        diameter_pt: f64,
    },
    /// Stamp.
    TopRightStamp {
        /// w
        w: f64,
        /// h
        h: f64,
    },
}
/// Prepared.
pub struct PreparedPdf;
/// Prepare.
pub fn prepare(_input: &[u8], _opts: &PdfSignOptions) -> Result<PreparedPdf, PdfError> {
    Err(PdfError::Malformed("PDF signing not built yet".into()))
}
impl PreparedPdf {
    /// Range.
    pub fn byte_range(&self) -> [usize; 4] {
        [0; 4]
    }
    /// Digest.
    pub fn digest(&self, _alg: DigestAlgorithm) -> Vec<u8> {
        Vec::new()
    }
    /// Finish.
    pub fn finish(self, _cms_der: &[u8]) -> Result<Vec<u8>, PdfError> {
        Err(PdfError::Malformed("PDF signing not built yet".into()))
    }
}
