//! PAdES signing of PDF files by incremental update (ETSI EN 319 142-1, ISO 32000-1 §12.8).
//!
//! This module owns the PDF side of a signature: it parses the input with `lopdf`, appends an
//! incremental-update section written here with exact byte offsets (signature dictionary,
//! merged field/widget, updated page and AcroForm, a cross-reference table or stream matching
//! the file, and a trailer with `/Prev`), reserves the `/Contents` hole, computes the digest
//! over the `/ByteRange` and finally patches the CMS blob in. The original bytes always stay
//! the byte-for-byte prefix of the output, so earlier signatures remain valid.
//!
//! It does no file I/O (bytes in, bytes out) and builds no CMS: the caller signs
//! [`PreparedPdf::digest`] with the `cms` module and hands the DER to [`PreparedPdf::finish`].
//! Drawing visible appearances is left to [`appearance`].

pub mod appearance;
mod font;
mod image;
mod incremental;
mod placement;
mod syntax;

use std::fmt;

use crate::error::ErrorCode;
use crate::pki::alg::DigestAlgorithm;

pub use appearance::Appearance;

/// Parses a rectangle `x,y,w,h` in points (as `--rect` and the API's `rect` give it); `None`
/// unless all four are finite numbers and the width and height are positive.
pub fn parse_rect(text: &str) -> Option<[f64; 4]> {
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    match parts[..] {
        [x, y, w, h] if w > 0.0 && h > 0.0 && [x, y, w, h].iter().all(|v| v.is_finite()) => {
            Some([x, y, w, h])
        }
        _ => None,
    }
}

/// The largest input accepted: bigger files are refused before parsing.
pub const MAX_INPUT_LEN: usize = 1 << 30;

/// Default number of bytes reserved for the CMS blob (the hex placeholder is twice as long).
pub const DEFAULT_CONTENTS_SIZE: usize = 16384;

/// Largest size one object or cross-reference stream may inflate to while a PDF is parsed:
/// bounds the memory a decompression bomb can take.
pub const MAX_DECOMPRESSED_STREAM: usize = 32 << 20;

/// Parses a whole PDF with signgate's limits (input size, stream inflation; lopdf itself
/// bounds nesting depth). Every module that reads a PDF goes through here.
pub fn parse_document(input: &[u8]) -> Result<lopdf::Document, lopdf::Error> {
    if input.len() > MAX_INPUT_LEN {
        return Err(lopdf::Error::Syntax(format!(
            "file is larger than {MAX_INPUT_LEN} bytes"
        )));
    }
    let options = lopdf::LoadOptions {
        max_decompressed_size: Some(MAX_DECOMPRESSED_STREAM),
        ..lopdf::LoadOptions::default()
    };
    lopdf::Document::load_mem_with_options(input, options)
}

/// Largest `/Contents` reservation accepted (bytes of DER).
pub const MAX_CONTENTS_SIZE: usize = 16 << 20;

/// Why a PDF cannot be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PdfError {
    /// The file cannot be parsed (truncated, not a PDF, broken cross-reference data).
    #[error("malformed PDF: {0}")]
    Malformed(String),
    /// The file is encrypted; signing encrypted PDFs is refused.
    #[error("the PDF is encrypted; signing encrypted PDFs is not supported")]
    Encrypted,
    /// A certification signature with DocMDP permission 1 forbids any change.
    #[error("the PDF carries a certification signature that forbids any change (DocMDP P=1)")]
    CertifiedNoChanges,
    /// The requested page does not exist.
    #[error("page {requested} is out of range: the PDF has {count} page(s)")]
    PageOutOfRange {
        /// The 1-based page asked for.
        requested: u32,
        /// How many pages the document has.
        count: u32,
    },
    /// A seal was placed over the previous signature, but the page has no signature widget.
    #[error("page {page} has no visible signature for the seal to overlap")]
    NoSignatureToSeal {
        /// The 1-based page searched.
        page: u32,
    },
    /// An option is unusable (bad rectangle, duplicate or invalid field name, ...).
    #[error("invalid signing option: {0}")]
    InvalidOption(String),
    /// An image for a visible signature cannot be used.
    #[error("invalid image: {0}")]
    ImageInvalid(String),
    /// The CMS blob is larger than the space reserved for `/Contents`.
    #[error("signature is {needed} bytes but only {available} bytes were reserved for /Contents")]
    SignatureTooLarge {
        /// Bytes of DER to embed.
        needed: usize,
        /// Bytes reserved.
        available: usize,
    },
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
            Self::Encrypted => ErrorCode::PdfEncrypted,
            Self::CertifiedNoChanges => ErrorCode::PdfCertifiedNoChanges,
            Self::PageOutOfRange { .. } => ErrorCode::PdfPageOutOfRange,
            Self::NoSignatureToSeal { .. } => ErrorCode::PdfNoSignatureToSeal,
            Self::InvalidOption(_) => ErrorCode::Usage,
            Self::ImageInvalid(_) => ErrorCode::ImageInvalid,
            Self::SignatureTooLarge { .. } => ErrorCode::Internal,
            Self::AppearanceInvalid(_) => ErrorCode::Usage,
            Self::Font(_) => ErrorCode::Internal,
        }
    }
}

/// What to sign and how the signature dictionary and field look.
pub struct PdfSignOptions {
    /// Name of the new signature field; `None` picks `Signature<N>`, unique in the document.
    pub field_name: Option<String>,
    /// `/Reason`.
    pub reason: Option<String>,
    /// `/Location`.
    pub location: Option<String>,
    /// `/Name` (the signer's name as claimed).
    pub name: Option<String>,
    /// `/ContactInfo`.
    pub contact_info: Option<String>,
    /// Claimed signing time, written as `/M` with the offset given.
    pub signing_time: time::OffsetDateTime,
    /// Bytes reserved for the CMS blob (the hex placeholder is twice as long).
    pub contents_size: usize,
    /// A visible widget, or `None` for an invisible signature on page 1.
    pub visible: Option<VisibleSignature>,
}

impl PdfSignOptions {
    /// Options for an invisible signature at `signing_time`, reserving [`DEFAULT_CONTENTS_SIZE`].
    pub fn new(signing_time: time::OffsetDateTime) -> Self {
        Self {
            field_name: None,
            reason: None,
            location: None,
            name: None,
            contact_info: None,
            signing_time,
            contents_size: DEFAULT_CONTENTS_SIZE,
            visible: None,
        }
    }
}

impl fmt::Debug for PdfSignOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdfSignOptions")
            .field("field_name", &self.field_name)
            .field("reason", &self.reason)
            .field("location", &self.location)
            .field("name", &self.name)
            .field("contact_info", &self.contact_info)
            .field("signing_time", &self.signing_time)
            .field("contents_size", &self.contents_size)
            .field(
                "visible",
                &self.visible.as_ref().map(|v| (&v.page, &v.placement)),
            )
            .finish()
    }
}

/// Where and how a visible signature is drawn.
#[derive(Debug, Clone)]
pub struct VisibleSignature {
    /// The page that gets the widget.
    pub page: PageSelector,
    /// Where on the page.
    pub placement: Placement,
    /// What the widget shows.
    pub appearance: Appearance,
}

/// A page of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSelector {
    /// A 1-based page number.
    Number(u32),
    /// The last page (CLI `--page -1`).
    Last,
}

/// Where a visible signature goes, in the page as displayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// A rectangle in PDF points from the bottom-left corner of the crop box, in the page as
    /// displayed (so /Rotate is taken into account).
    Rect {
        /// Left edge.
        x: f64,
        /// Bottom edge.
        y: f64,
        /// Width.
        w: f64,
        /// Height.
        h: f64,
    },
    /// A square of `diameter_pt` whose right edge lies one third into the most recent signature
    /// widget on the page and which is vertically centred on it (the red seal over the left
    /// third of the official's signature).
    SealOverPreviousSignature {
        /// Seal diameter in points.
        diameter_pt: f64,
    },
    /// A text stamp at the top right of the page as displayed, with 20 pt margins.
    TopRightStamp {
        /// Width.
        w: f64,
        /// Height.
        h: f64,
    },
}

/// A PDF with the signature's incremental update laid out and `/Contents` still zeroed.
pub struct PreparedPdf {
    bytes: Vec<u8>,
    byte_range: [usize; 4],
    field_name: String,
}

impl fmt::Debug for PreparedPdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedPdf")
            .field("len", &self.bytes.len())
            .field("byte_range", &self.byte_range)
            .field("field_name", &self.field_name)
            .finish()
    }
}

/// Lays out the signature's incremental update over `input`.
///
/// The result holds the whole output; sign [`PreparedPdf::digest`] and pass the CMS DER to
/// [`PreparedPdf::finish`].
pub fn prepare(input: &[u8], opts: &PdfSignOptions) -> Result<PreparedPdf, PdfError> {
    prepare_kind(input, opts, incremental::SignatureKind::Signature)
}

/// Lays out a PAdES document time-stamp (`/SubFilter /ETSI.RFC3161`, ETSI EN 319 142-1
/// §5.4.3): the caller time-stamps [`PreparedPdf::digest`] and passes the token to
/// [`PreparedPdf::finish`]. Only `contents_size` and `field_name` of `opts` matter.
pub fn prepare_document_timestamp(
    input: &[u8],
    opts: &PdfSignOptions,
) -> Result<PreparedPdf, PdfError> {
    prepare_kind(input, opts, incremental::SignatureKind::DocumentTimestamp)
}

/// Appends the Document Security Store with validation data (DER certificates, OCSP
/// responses and CRLs), so signatures can be validated later without the network.
pub fn append_dss(
    input: &[u8],
    certs: &[Vec<u8>],
    ocsps: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<Vec<u8>, PdfError> {
    incremental::append_dss(input, certs, ocsps, crls)
}

fn prepare_kind(
    input: &[u8],
    opts: &PdfSignOptions,
    kind: incremental::SignatureKind,
) -> Result<PreparedPdf, PdfError> {
    let laid_out = incremental::prepare(input, opts, kind)?;
    Ok(PreparedPdf {
        bytes: laid_out.bytes,
        byte_range: laid_out.byte_range,
        field_name: laid_out.field_name,
    })
}

impl PreparedPdf {
    /// The `/ByteRange` values `[0, a, b, c]`: everything but the `/Contents` hex string.
    pub fn byte_range(&self) -> [usize; 4] {
        self.byte_range
    }

    /// The name of the signature field that was added.
    pub fn field_name(&self) -> &str {
        &self.field_name
    }

    /// The message digest over the two byte ranges (what the CMS signs as detached content).
    pub fn digest(&self, alg: DigestAlgorithm) -> Vec<u8> {
        use sha2::Digest;
        let [_, a, b, c] = self.byte_range;
        let first = &self.bytes[..a];
        let second = &self.bytes[b..b + c];
        match alg {
            DigestAlgorithm::Sha256 => {
                let mut h = sha2::Sha256::new();
                h.update(first);
                h.update(second);
                h.finalize().to_vec()
            }
            DigestAlgorithm::Sha384 => {
                let mut h = sha2::Sha384::new();
                h.update(first);
                h.update(second);
                h.finalize().to_vec()
            }
            DigestAlgorithm::Sha512 => {
                let mut h = sha2::Sha512::new();
                h.update(first);
                h.update(second);
                h.finalize().to_vec()
            }
        }
    }

    /// Writes `cms_der` into `/Contents` and returns the signed file.
    pub fn finish(mut self, cms_der: &[u8]) -> Result<Vec<u8>, PdfError> {
        let [_, a, b, _] = self.byte_range;
        // The hole is `<` hex digits `>`.
        let available = (b - a - 2) / 2;
        if cms_der.len() > available {
            return Err(PdfError::SignatureTooLarge {
                needed: cms_der.len(),
                available,
            });
        }
        let hex = hex::encode_upper(cms_der);
        self.bytes[a + 1..a + 1 + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(self.bytes)
    }
}
