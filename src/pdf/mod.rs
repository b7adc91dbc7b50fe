//! PAdES signing of PDF files by incremental update (ETSI EN 319 142-1, ISO 32000-1 §12.8).
//!
//! This module owns the PDF side of a signature: it parses the input with `lopdf`, appends an
//! incremental-update section written here with exact byte offsets (signature dictionary,
//! merged field/widget, updated page and AcroForm, a cross-reference table or stream matching
//! the file, and a trailer with `/Prev`), reserves the `/Contents` hole, computes the digest
//! over the `/ByteRange` and finally patches the CMS blob in. The original bytes always stay
//! the byte-for-byte prefix of the output, so earlier signatures remain valid.
//!
//! It opens no files and builds no CMS: the caller signs [`PreparedPdf::digest`] with the
//! `cms` module and hands the DER to [`PreparedPdf::finish`]. Large files go through
//! [`prepare_file`] instead, which reads only the cross-reference data and the objects the
//! signature touches from a `Read + Seek` source ([`sparse`]) and streams the original bytes
//! through the digest into the output, so memory stays flat whatever the file's size.
//! Drawing visible appearances is left to [`appearance`].

pub mod appearance;
mod font;
mod image;
mod incremental;
mod placement;
mod sparse;
pub mod stamp;
mod syntax;
pub mod textdoc;

use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};

use crate::code::ErrorCode;
use crate::pki::alg::{DigestAlgorithm, Hasher};

pub use appearance::Appearance;
pub(crate) use syntax::parse_direct;

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

/// Most bytes the object streams of one PDF may inflate to in all while it is parsed: with
/// [`MAX_DECOMPRESSED_STREAM`] per stream alone, many object streams just under that limit
/// would each add their objects to memory. Real files' object streams hold only dictionaries
/// and arrays, a few MiB even for large documents.
pub const MAX_DECOMPRESSED_TOTAL: usize = 64 << 20;

thread_local! {
    /// The bytes left of the inflation budget of the parse running on this thread, and whether
    /// an object stream went over it. lopdf's object filter is a plain `fn`, so the budget
    /// lives here; lopdf loads on the calling thread (its `rayon` feature is off).
    static OBJSTM_BUDGET: std::cell::Cell<(usize, bool)> = const { std::cell::Cell::new((0, false)) };
}

/// lopdf's object filter during [`parse_document`]: inflates each object stream within what is
/// left of the budget before lopdf decodes it, and drops it (marking the budget exceeded) when
/// it does not fit. lopdf keeps its own copy of a top-level object and uses what the filter
/// returns only for the objects of an object stream, which are never streams.
fn budget_object_streams(
    id: lopdf::ObjectId,
    object: &mut lopdf::Object,
) -> Option<(lopdf::ObjectId, lopdf::Object)> {
    let lopdf::Object::Stream(stream) = object else {
        return Some((id, object.clone()));
    };
    if stream.dict.has_type(b"ObjStm") {
        let (left, _) = OBJSTM_BUDGET.get();
        let limit = left.min(MAX_DECOMPRESSED_STREAM);
        match stream.get_plain_content_with_limit(limit) {
            Ok(content) => OBJSTM_BUDGET.set((left - content.len().min(left), false)),
            Err(lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded {
                ..
            })) if limit < MAX_DECOMPRESSED_STREAM => {
                OBJSTM_BUDGET.set((0, true));
                return None;
            }
            // Over the per-stream limit or undecodable: lopdf says so as it decodes it again.
            Err(_) => {}
        }
    }
    Some((id, lopdf::Object::Null))
}

/// Whether the catalog of `doc` leads to a page tree root with `/Kids` (as lopdf checks before
/// rebuilding the cross-reference data of a damaged file).
fn page_tree_loaded(doc: &lopdf::Document) -> bool {
    doc.catalog()
        .and_then(|catalog| catalog.get(b"Pages"))
        .and_then(lopdf::Object::as_reference)
        .and_then(|root| doc.get_dictionary(root))
        .and_then(|root| root.get_deref(b"Kids", doc))
        .and_then(lopdf::Object::as_array)
        .is_ok()
}

/// Parses a whole PDF with signgate's limits: input size; stream inflation, each object or
/// cross-reference stream to [`MAX_DECOMPRESSED_STREAM`] (lopdf bounding the filters per
/// stream) and the object streams to [`MAX_DECOMPRESSED_TOTAL`] in all; lopdf itself bounds
/// nesting depth. Every module that reads a PDF goes through here.
pub fn parse_document(input: &[u8]) -> Result<lopdf::Document, lopdf::Error> {
    if input.len() > MAX_INPUT_LEN {
        return Err(lopdf::Error::Syntax(format!(
            "file is larger than {MAX_INPUT_LEN} bytes"
        )));
    }
    /// Restores the budget of an enclosing parse (none in practice) when this one ends.
    struct Budget((usize, bool));
    impl Drop for Budget {
        fn drop(&mut self) {
            OBJSTM_BUDGET.set(self.0);
        }
    }
    let _restore = Budget(OBJSTM_BUDGET.replace((MAX_DECOMPRESSED_TOTAL, false)));
    let load = |force_reconstruct: bool| {
        let options = lopdf::LoadOptions {
            max_decompressed_size: Some(MAX_DECOMPRESSED_STREAM),
            filter: Some(budget_object_streams),
            force_reconstruct,
            ..lopdf::LoadOptions::default()
        };
        let loaded = lopdf::Document::load_mem_with_options(input, options);
        if OBJSTM_BUDGET.get().1 {
            return Err(lopdf::Error::Syntax(format!(
                "the object streams inflate to more than {} MiB in all: possible decompression bomb",
                MAX_DECOMPRESSED_TOTAL >> 20
            )));
        }
        loaded.map_err(|e| match e {
            // lopdf prints every decompression failure as "couldn't decompress stream": keep
            // the reason (a stream over MAX_DECOMPRESSED_STREAM says "possible decompression
            // bomb").
            lopdf::Error::Decompress(why) => lopdf::Error::Syntax(format!("a stream: {why}")),
            other => other,
        })
    };
    let doc = load(false)?;
    // lopdf rebuilds the cross-reference data of a file whose page tree does not load only when
    // no filter is set; do it here, within what is left of the same budget.
    if page_tree_loaded(&doc)
        || doc.xref_recovery == Some(lopdf::xref::XrefRecovery::Reconstructed)
        || (doc.trailer.has(b"Encrypt") && doc.encryption_state.is_none())
    {
        return Ok(doc);
    }
    match load(true) {
        Ok(rebuilt)
            if rebuilt.xref_recovery == Some(lopdf::xref::XrefRecovery::Reconstructed)
                && page_tree_loaded(&rebuilt) =>
        {
            Ok(rebuilt)
        }
        Err(e) if OBJSTM_BUDGET.get().1 => Err(e),
        _ => Ok(doc),
    }
}

/// Size from which callers holding a file sign it with [`prepare_file`] rather than reading it
/// into memory: above this, a whole-file parse costs more memory than the bound promised for
/// large documents (64 MiB over the process baseline).
pub const STREAMING_THRESHOLD: u64 = 16 << 20;

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

/// [`prepare`] taking the input by value, so the update is appended to it without a copy
/// (the batch engine's path: it reads each file into a buffer it no longer needs).
pub fn prepare_owned(input: Vec<u8>, opts: &PdfSignOptions) -> Result<PreparedPdf, PdfError> {
    let laid_out = incremental::prepare(&input, opts, incremental::SignatureKind::Signature)?;
    let mut bytes = input;
    bytes.extend_from_slice(&laid_out.tail);
    Ok(PreparedPdf {
        bytes,
        byte_range: laid_out.byte_range,
        field_name: laid_out.field_name,
    })
}

fn prepare_kind(
    input: &[u8],
    opts: &PdfSignOptions,
    kind: incremental::SignatureKind,
) -> Result<PreparedPdf, PdfError> {
    let laid_out = incremental::prepare(input, opts, kind)?;
    let mut bytes = Vec::with_capacity(input.len() + laid_out.tail.len());
    bytes.extend_from_slice(input);
    bytes.extend_from_slice(&laid_out.tail);
    Ok(PreparedPdf {
        bytes,
        byte_range: laid_out.byte_range,
        field_name: laid_out.field_name,
    })
}

/// Writes `cms_der` as upper-case hex into the `/Contents` hole `<…>` that spans
/// `hole[0]..hole[1]` of `bytes`.
fn fill_contents(bytes: &mut [u8], hole: [usize; 2], cms_der: &[u8]) -> Result<(), PdfError> {
    let available = (hole[1] - hole[0] - 2) / 2;
    if cms_der.len() > available {
        return Err(PdfError::SignatureTooLarge {
            needed: cms_der.len(),
            available,
        });
    }
    const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digits = &mut bytes[hole[0] + 1..hole[0] + 1 + 2 * cms_der.len()];
    for (pair, byte) in digits.chunks_exact_mut(2).zip(cms_der) {
        pair[0] = UPPER_HEX[usize::from(byte >> 4)];
        pair[1] = UPPER_HEX[usize::from(byte & 0x0f)];
    }
    Ok(())
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
        let [_, a, b, c] = self.byte_range;
        let mut hasher = alg.hasher();
        hasher.update(&self.bytes[..a]);
        hasher.update(&self.bytes[b..b + c]);
        hasher.finish()
    }

    /// Writes `cms_der` into `/Contents` and returns the signed file.
    pub fn finish(mut self, cms_der: &[u8]) -> Result<Vec<u8>, PdfError> {
        let [_, a, b, _] = self.byte_range;
        fill_contents(&mut self.bytes, [a, b], cms_der)?;
        Ok(self.bytes)
    }

    /// Advances `output`, a hash of this file's first `hashed` bytes, to the start of the
    /// `/Contents` hole, and returns the byte-range digest (in `output`'s algorithm) from
    /// there. With [`Self::finish_hashed`], a caller that hashed the input as read gets the
    /// input digest, the signed digest and the output digest from one pass over the bytes.
    pub fn digest_continuing(&self, output: &mut Hasher, hashed: usize) -> Vec<u8> {
        let [_, a, b, c] = self.byte_range;
        output.update(&self.bytes[hashed.min(a)..a]);
        let mut ranges = output.clone();
        ranges.update(&self.bytes[b..b + c]);
        ranges.finish()
    }

    /// [`Self::finish`], also returning the digest of the whole signed file, continuing
    /// `output` as [`Self::digest_continuing`] left it.
    pub fn finish_hashed(
        mut self,
        cms_der: &[u8],
        mut output: Hasher,
    ) -> Result<(Vec<u8>, Vec<u8>), PdfError> {
        let [_, a, b, _] = self.byte_range;
        fill_contents(&mut self.bytes, [a, b], cms_der)?;
        output.update(&self.bytes[a..]);
        Ok((self.bytes, output.finish()))
    }
}

/// A PDF file with the signature's incremental update laid out but not held in memory: only
/// the update is. The original bytes stay in the source and are streamed to the output.
pub struct PreparedPdfFile {
    base_len: usize,
    tail: Vec<u8>,
    byte_range: [usize; 4],
    field_name: String,
}

impl fmt::Debug for PreparedPdfFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedPdfFile")
            .field("base_len", &self.base_len)
            .field("update_len", &self.tail.len())
            .field("byte_range", &self.byte_range)
            .field("field_name", &self.field_name)
            .finish()
    }
}

/// Lays out the signature's incremental update over the PDF in `source` without loading it:
/// reads the cross-reference data and the objects the signature touches by seeking.
///
/// Then [`PreparedPdfFile::copy_and_digest`] streams the original bytes into the output while
/// hashing them, and [`PreparedPdfFile::finish`] appends the update with the CMS DER.
pub fn prepare_file<R: Read + Seek>(
    source: &mut R,
    opts: &PdfSignOptions,
) -> Result<PreparedPdfFile, PdfError> {
    incremental::check_contents_size(opts)?;
    let (opened, base) = sparse::open(source, opts)?;
    let laid_out =
        incremental::prepare_opened(opened, base, opts, incremental::SignatureKind::Signature)?;
    Ok(PreparedPdfFile {
        base_len: laid_out.base_len,
        tail: laid_out.tail,
        byte_range: laid_out.byte_range,
        field_name: laid_out.field_name,
    })
}

/// Which side of [`PreparedPdfFile::copy_and_digest`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading the source failed, or it changed length since it was prepared.
    #[error("{0}")]
    Read(std::io::Error),
    /// Writing the output failed.
    #[error("{0}")]
    Write(std::io::Error),
}

/// Chunk size of the streamed copy.
const COPY_CHUNK: usize = 1 << 20;

impl PreparedPdfFile {
    /// The `/ByteRange` values `[0, a, b, c]`: everything but the `/Contents` hex string.
    pub fn byte_range(&self) -> [usize; 4] {
        self.byte_range
    }

    /// The name of the signature field that was added.
    pub fn field_name(&self) -> &str {
        &self.field_name
    }

    /// Copies the original bytes of `source` (from its start) to `out` and returns the message
    /// digest over the two byte ranges: one pass over the file. Fails if `source` no longer
    /// has the length it had when prepared.
    pub fn copy_and_digest<R: Read + Seek, W: Write + ?Sized>(
        &self,
        source: &mut R,
        out: &mut W,
        alg: DigestAlgorithm,
    ) -> Result<Vec<u8>, CopyError> {
        let changed = |what: &str| {
            CopyError::Read(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the input {what} while it was being signed"),
            ))
        };
        source.seek(SeekFrom::Start(0)).map_err(CopyError::Read)?;
        let mut hasher = alg.hasher();
        let mut buf = vec![0; COPY_CHUNK];
        let mut left = self.base_len;
        while left > 0 {
            let n = source
                .read(&mut buf[..left.min(COPY_CHUNK)])
                .map_err(CopyError::Read)?;
            if n == 0 {
                return Err(changed("became shorter"));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(CopyError::Write)?;
            left -= n;
        }
        if source.read(&mut buf[..1]).map_err(CopyError::Read)? != 0 {
            return Err(changed("grew"));
        }
        let [_, a, b, _] = self.byte_range;
        hasher.update(&self.tail[..a - self.base_len]);
        hasher.update(&self.tail[b - self.base_len..]);
        Ok(hasher.finish())
    }

    /// Writes `cms_der` into `/Contents` and returns the update to append after the original
    /// bytes that [`Self::copy_and_digest`] copied.
    pub fn finish(mut self, cms_der: &[u8]) -> Result<Vec<u8>, PdfError> {
        let [_, a, b, _] = self.byte_range;
        fill_contents(
            &mut self.tail,
            [a - self.base_len, b - self.base_len],
            cms_der,
        )?;
        Ok(self.tail)
    }
}
