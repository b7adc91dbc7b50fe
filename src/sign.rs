//! The signing use case: one document, one key, one signature.
//!
//! Ties together [`keys`](crate::keys) (the private-key operation), [`cms`](crate::cms)
//! (the CAdES SignedData), [`pdf`](crate::pdf) (the PAdES incremental update) and an
//! RFC 3161 [`TimeStamper`]. The CLI, the HTTP API and the batch engine all call
//! [`sign_document`] (or [`sign_pdf_path`] for large PDF files); none of them builds
//! signatures by itself.

use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;

use crate::cms::{PendingSignature, SignedDataBuilder};
use crate::code::UnknownName;
use crate::error::Error;
use crate::fsio::IoError;
use crate::keys::KeySource;
use crate::pdf::{self, PdfSignOptions, VisibleSignature};
use crate::pki::alg::{DigestAlgorithm, RsaPadding, SignatureScheme};
use crate::pki::tsp::TspError;

/// The container a document is signed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PAdES: a signature inside the PDF (incremental update).
    Pdf,
    /// CAdES detached: a separate `.p7s` file over the document's bytes.
    Cms,
    /// XML-DSig: a `ds:Signature` spliced into the XML under a [`crate::xml::Profile`].
    Xml,
}

impl Format {
    /// The name used on the command line, in `format=` and in audit entries.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Cms => "cms",
            Self::Xml => "xml",
        }
    }

    /// The media type of a document signed in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Cms => "application/pkcs7-signature",
            Self::Xml => "application/xml",
        }
    }

    /// A requested format: none, empty or `auto` is `None` (decided from the content).
    pub fn parse_choice(text: Option<&str>) -> Result<Option<Self>, UnknownName> {
        match text {
            None | Some("") | Some("auto") => Ok(None),
            Some(name) => name.parse().map(Some),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        [Self::Pdf, Self::Cms, Self::Xml]
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownName::new("format", s, "pdf, cms or xml"))
    }
}

/// What besides the content may choose a document's format (CONTRACTS.md §1).
#[derive(Debug, Clone, Copy, Default)]
pub struct FormatHints<'a> {
    /// `--format` / `format=`: always wins.
    pub explicit: Option<Format>,
    /// The input's file name (a file, a multipart part): one named `*.pdf` must be a PDF.
    pub input_name: Option<&'a str>,
    /// The output's file name, on the command line only: `*.p7s` / `*.p7m` selects CMS.
    /// Over HTTP there is none, so there only `format=cms` selects CMS.
    pub output_name: Option<&'a str>,
}

/// Why no format could be chosen for a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Nothing to sign.
    #[error("the input is empty: there is nothing to sign")]
    Empty,
    /// Named (or asked to be signed as) a PDF, but the content does not start with `%PDF-`.
    #[error("{0} is not a PDF (it does not start with %PDF-)")]
    NotPdf(String),
    /// Neither a PDF nor XML, and nothing asked for CMS.
    #[error("cannot choose a format: the content is neither a PDF (%PDF-) nor XML; ask for a detached CMS signature with format cms{0}")]
    Undecided(&'static str),
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        match e {
            FormatError::NotPdf(_) => Error::Pdf(crate::pdf::PdfError::Malformed(e.to_string())),
            FormatError::Empty | FormatError::Undecided(_) => Error::Usage(e.to_string()),
        }
    }
}

/// The one rule that chooses the format of a document to sign (CONTRACTS.md §1), used by
/// `sign`, `batch-sign`, `POST /v1/sign` and `POST /v1/batches`; `head` is the document or
/// its first KiB:
/// 1. an empty input is always refused;
/// 2. an explicit format wins (`pdf` over a non-PDF is `PDF_MALFORMED`);
/// 3. on the command line an output named `*.p7s` / `*.p7m` selects CMS;
/// 4. `%PDF-` selects PAdES; an input named `*.pdf` that is not a PDF is `PDF_MALFORMED`;
/// 5. XML selects XML-DSig (the profile given, or the one its root element names);
/// 6. anything else is refused, naming the rule.
pub fn select_format(head: &[u8], hints: &FormatHints<'_>) -> Result<Format, FormatError> {
    let named = |name: Option<&str>, exts: &[&str]| {
        name.is_some_and(|n| {
            let n = n.to_ascii_lowercase();
            exts.iter().any(|e| n.ends_with(e))
        })
    };
    let is_pdf = head.starts_with(b"%PDF-");
    if head.is_empty() {
        return Err(FormatError::Empty);
    }
    if let Some(format) = hints.explicit {
        if format == Format::Pdf && !is_pdf {
            return Err(FormatError::NotPdf(
                hints.input_name.unwrap_or("the input").to_string(),
            ));
        }
        return Ok(format);
    }
    if named(hints.output_name, &[".p7s", ".p7m"]) {
        return Ok(Format::Cms);
    }
    if is_pdf {
        return Ok(Format::Pdf);
    }
    if named(hints.input_name, &[".pdf"]) {
        return Err(FormatError::NotPdf(
            hints.input_name.unwrap_or_default().to_string(),
        ));
    }
    if crate::xml::looks_like_xml(head) {
        return Ok(Format::Xml);
    }
    Err(FormatError::Undecided(if hints.output_name.is_some() {
        " (--format cms) or an output named *.p7s"
    } else {
        " (format=cms)"
    }))
}

/// A format name that is none of `pdf`, `cms`, `xml` (or `auto`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("format '{0}' is not pdf, cms or xml")]
pub struct UnknownFormat(pub String);

/// The baseline level of the signature (ETSI EN 319 142-1 / 319 122-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    /// B-B: signature only.
    #[default]
    BB,
    /// B-T: plus an RFC 3161 signature time-stamp over the signature value.
    BT,
}

impl Level {
    /// The name used on the command line and in options (`b-b`, `b-t`).
    pub fn name(self) -> &'static str {
        match self {
            Self::BB => "b-b",
            Self::BT => "b-t",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s.to_ascii_lowercase().as_str() {
            "b-b" | "bb" => Ok(Self::BB),
            "b-t" | "bt" => Ok(Self::BT),
            _ => Err(UnknownName::new("level", s, "b-b or b-t")),
        }
    }
}

/// Something that returns an RFC 3161 time-stamp token (DER ContentInfo) for a message imprint.
pub trait TimeStamper: Send + Sync {
    /// Requests a token over `imprint`, the `digest` hash of the time-stamped data.
    fn timestamp(&self, digest: DigestAlgorithm, imprint: &[u8]) -> Result<Vec<u8>, TspError>;
}

/// A time-stamp authority reached over HTTP (RFC 3161 §3.4).
#[derive(Debug, Clone)]
pub struct HttpTimeStamper {
    url: String,
    timeout: Duration,
}

impl HttpTimeStamper {
    /// A TSA at `url`, each request bounded by `timeout`.
    pub fn new(url: impl Into<String>, timeout: Duration) -> Self {
        Self {
            url: url.into(),
            timeout,
        }
    }
}

impl TimeStamper for HttpTimeStamper {
    fn timestamp(&self, digest: DigestAlgorithm, imprint: &[u8]) -> Result<Vec<u8>, TspError> {
        crate::pki::tsp::request_token(&self.url, digest, imprint, self.timeout)
    }
}

/// PDF-specific options of a PAdES signature.
#[derive(Default)]
pub struct PdfDetails {
    /// /Reason.
    pub reason: Option<String>,
    /// /Location.
    pub location: Option<String>,
    /// /ContactInfo.
    pub contact_info: Option<String>,
    /// A visible signature, seal or stamp; `None` signs invisibly.
    pub visible: Option<VisibleSignature>,
}

/// Everything about one signature except the document and the key.
pub struct SignRequest<'a> {
    /// Container; `None` picks it from the content ([`select_format`]).
    pub format: Option<Format>,
    /// Baseline level; B-T needs `timestamper`.
    pub level: Level,
    /// Digest algorithm.
    pub digest: DigestAlgorithm,
    /// Padding for RSA keys (ignored for ECDSA).
    pub rsa_padding: RsaPadding,
    /// The claimed signing time (PAdES `/M`, CAdES signing-time); the library never reads the clock.
    pub signing_time: OffsetDateTime,
    /// Where B-T gets its time-stamps.
    pub timestamper: Option<&'a dyn TimeStamper>,
    /// PDF options.
    pub pdf: PdfDetails,
    /// XML signature profile; `None` picks it from the root element.
    pub xml_profile: Option<crate::xml::Profile>,
}

/// The result of signing: the output bytes and what kind they are.
#[derive(Debug)]
pub struct Signed {
    /// The container used.
    pub format: Format,
    /// The signed PDF, or the detached `.p7s` (DER) for CMS.
    pub bytes: Vec<u8>,
}

/// Bytes reserved in the PDF for the CMS blob, by level: certificates plus, for B-T, a token.
pub(crate) fn pdf_contents_size(level: Level) -> usize {
    match level {
        Level::BB => 16 * 1024,
        Level::BT => 32 * 1024,
    }
}

/// Signs `input` with `key` as `request` says.
///
/// Checks the signing certificate first (validity at the signing time, key usage), so an
/// expired or unsuitable certificate never produces output.
pub fn sign_document(
    input: &[u8],
    key: &dyn KeySource,
    request: &SignRequest<'_>,
) -> Result<Signed, Error> {
    check_request(key, request)?;
    let scheme = SignatureScheme::for_key(key.algorithm(), request.digest, request.rsa_padding);
    let format = match request.format {
        Some(format) => format,
        None => select_format(input, &FormatHints::default())?,
    };
    let bytes = match format {
        Format::Cms => {
            let builder = SignedDataBuilder::new(key, scheme, request.digest.digest(input))
                .with_signing_time(request.signing_time);
            finish_cms(builder, request)?.to_der()?
        }
        Format::Pdf => sign_pdf(input, key, scheme, request)?,
        Format::Xml => {
            if request.level != Level::BB {
                return Err(Error::Usage(
                    "XML signatures are B-B only for now (no XAdES time-stamp)".into(),
                ));
            }
            let profile = match request.xml_profile {
                Some(p) => p,
                None => crate::xml::parse::parse(input, &crate::xml::Limits::default())
                    .map(|p| crate::xml::Profile::detect(&p.doc))?,
            };
            crate::xml::sign(input, profile, key, scheme, request.signing_time)?
        }
    };
    Ok(Signed { format, bytes })
}

/// Signs the PDF file at `input` into `output` (`-` for standard output) as
/// [`sign_document`] does, without reading it into memory: only the cross-reference data and
/// the objects the signature touches are read, and the original bytes stream through the
/// digest into the output, so large files sign in flat memory (see
/// [`pdf::STREAMING_THRESHOLD`]).
pub fn sign_pdf_path(
    input: &Path,
    output: &Path,
    key: &dyn KeySource,
    request: &SignRequest<'_>,
) -> Result<(), Error> {
    check_request(key, request)?;
    let scheme = SignatureScheme::for_key(key.algorithm(), request.digest, request.rsa_padding);
    let read_fail = |e: std::io::Error| IoError::Read {
        path: input.to_path_buf(),
        reason: e.to_string(),
    };
    let write_fail = |e: std::io::Error| IoError::Write {
        path: output.to_path_buf(),
        reason: e.to_string(),
    };
    let mut source = std::fs::File::open(input).map_err(read_fail)?;
    let prepared = pdf::prepare_file(&mut source, &pdf_options(key, request))?;
    crate::fsio::write_output_with(output, |out| -> Result<(), Error> {
        let digest = prepared
            .copy_and_digest(&mut source, out, request.digest)
            .map_err(|e| match e {
                pdf::CopyError::Read(e) => read_fail(e),
                pdf::CopyError::Write(e) => write_fail(e),
            })?;
        let builder = SignedDataBuilder::new(key, scheme, digest);
        let cms = finish_cms(builder, request)?.to_der()?;
        out.write_all(&prepared.finish(&cms)?).map_err(write_fail)?;
        Ok(())
    })
}

/// Refuses B-T without a time-stamper and certificates unusable at the signing time.
fn check_request(key: &dyn KeySource, request: &SignRequest<'_>) -> Result<(), Error> {
    if request.level == Level::BT && request.timestamper.is_none() {
        return Err(Error::Usage(
            "level b-t needs a time-stamp authority (--tsa URL)".into(),
        ));
    }
    crate::pki::check_signing_certificate(key.certificate(), request.signing_time)?;
    Ok(())
}

/// The PAdES options `request` asks for, signed by `key`'s holder.
fn pdf_options(key: &dyn KeySource, request: &SignRequest<'_>) -> PdfSignOptions {
    PdfSignOptions {
        field_name: None,
        reason: request.pdf.reason.clone(),
        location: request.pdf.location.clone(),
        name: crate::pki::subject_common_name(key.certificate()),
        contact_info: request.pdf.contact_info.clone(),
        signing_time: request.signing_time,
        contents_size: pdf_contents_size(request.level),
        visible: request.pdf.visible.clone(),
    }
}

fn sign_pdf(
    input: &[u8],
    key: &dyn KeySource,
    scheme: SignatureScheme,
    request: &SignRequest<'_>,
) -> Result<Vec<u8>, Error> {
    let prepared = pdf::prepare(input, &pdf_options(key, request))?;
    // PAdES forbids the signing-time attribute: the claimed time is the dictionary's /M.
    let builder = SignedDataBuilder::new(key, scheme, prepared.digest(request.digest));
    let cms = finish_cms(builder, request)?.to_der()?;
    Ok(prepared.finish(&cms)?)
}

/// Signs, and for B-T adds the signature time-stamp over the signature value.
fn finish_cms(
    builder: SignedDataBuilder<'_>,
    request: &SignRequest<'_>,
) -> Result<PendingSignature, Error> {
    let mut pending = builder.sign()?;
    if request.level == Level::BT {
        let tsa = request
            .timestamper
            .ok_or_else(|| Error::Usage("level b-t needs a time-stamp authority".into()))?;
        let digest = pending.digest_algorithm();
        let token = tsa.timestamp(digest, &digest.digest(pending.signature_value()))?;
        pending.add_timestamp_token(&token)?;
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints<'a>(
        explicit: Option<Format>,
        input: Option<&'a str>,
        output: Option<&'a str>,
    ) -> FormatHints<'a> {
        FormatHints {
            explicit,
            input_name: input,
            output_name: output,
        }
    }

    #[test]
    fn one_rule_chooses_the_format() {
        let pdf = b"%PDF-1.7\n...";
        let xml = b"\xEF\xBB\xBF  <HSoThueDTu/>";
        let random = b"\x00\x01binary";
        let none = FormatHints::default();
        assert_eq!(select_format(pdf, &none), Ok(Format::Pdf));
        assert_eq!(select_format(xml, &none), Ok(Format::Xml));
        // Random content: refused naming the rule, over HTTP and on the command line.
        let http = select_format(random, &hints(None, None, None)).unwrap_err();
        assert!(http.to_string().contains("format=cms"), "{http}");
        let cli = select_format(random, &hints(None, Some("a.bin"), Some("a.sig"))).unwrap_err();
        assert!(cli.to_string().contains("*.p7s"), "{cli}");
        // Explicit CMS, or (command line) an output named *.p7s/*.p7m.
        assert_eq!(
            select_format(random, &hints(Some(Format::Cms), None, None)),
            Ok(Format::Cms)
        );
        assert_eq!(
            select_format(random, &hints(None, None, Some("x.P7S"))),
            Ok(Format::Cms)
        );
        assert_eq!(
            select_format(xml, &hints(None, None, Some("x.p7m"))),
            Ok(Format::Cms)
        );
        // A file named *.pdf that is not a PDF is malformed, also with format=pdf.
        assert!(matches!(
            select_format(random, &hints(None, Some("decision.PDF"), None)),
            Err(FormatError::NotPdf(_))
        ));
        assert!(matches!(
            select_format(xml, &hints(Some(Format::Pdf), None, None)),
            Err(FormatError::NotPdf(_))
        ));
        assert_eq!(
            Error::from(FormatError::NotPdf("a.pdf".into())).code(),
            crate::ErrorCode::PdfMalformed
        );
        // An empty input is always refused, whatever asks for it.
        for h in [none, hints(Some(Format::Cms), None, Some("x.p7s"))] {
            assert_eq!(select_format(b"", &h), Err(FormatError::Empty));
        }
    }
}
