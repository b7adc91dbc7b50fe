//! edXML packages (QCVN 102:2016): building, signing, parsing, tracing and verifying official
//! documents as agencies exchange them, and the status messages that acknowledge them.
//!
//! [`build`] turns a document's metadata and files into a package.
//!
//! Owns the envelope's data model ([`Package`], [`Status`]), its XML form and the gateway's
//! schema (`schemas/edxml-qcvn102.xsd`, checked by [`schema`]), the limits on hostile input
//! ([`Limits`], zipped attachments included) and the trace list that grows at each hop.
//! Signing and signature checks are [`crate::xml`]'s (profile `edxml` for packages,
//! `enveloped` for status messages); trust and revocation are [`crate::verify`]'s. Routing
//! (who gets a package, retries, state) is not here.
//!
//! Facts and their confidence: `shared/data/vn-edoc-standards.md` §a. Where the standard is
//! unconfirmed (element order, the update status codes 15/16), the choice is signgate's and
//! the README says so.

pub mod build;
mod dates;
mod package;
pub mod schema;
mod status;
mod trace;
mod verify;
pub mod zip;

pub use build::{media_type, DocumentSpec, FileSpec, OrganSpec};
pub use dates::{format_date, format_timestamp, parse_date, parse_timestamp};
pub use package::parse;
pub use status::{
    parse_status, parse_verified_status, verify_status, Status, StatusCode, StatusCodes,
    StatusVerdict,
};
pub use trace::{append_trace, content_digest};
pub use verify::{verify, verify_for_hop, AttachmentVerdict, HopCheck, PackageVerdict};

use crate::code::ErrorCode;

/// The QCVN 102:2016 namespace.
pub const NS: &str = crate::xml::profile::EDXML_NS;

/// Why a package or status message cannot be built, parsed or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdxmlError {
    /// The XML itself is refused (not well-formed, DTD, duplicate ID, parser limits).
    #[error(transparent)]
    Xml(#[from] crate::xml::XmlError),
    /// The document does not follow the gateway's edXML schema or its rules.
    #[error("edXML: {0}")]
    Invalid(String),
    /// The document departs from the gateway's edXML schema.
    #[error("edXML: {0}")]
    Schema(#[from] schema::SchemaViolation),
    /// The envelope's SignedInfo cannot be canonicalized (for the trace digest).
    #[error("edXML: {0}")]
    SignedInfo(#[from] crate::xml::dsig::SignedInfoProblem),
    /// A size or count limit on the package or an attachment was exceeded.
    #[error("edXML limit exceeded: {0}")]
    LimitExceeded(String),
    /// A zipped attachment is refused: over a limit (EDXML_LIMIT_EXCEEDED) or unreadable
    /// (EDXML_INVALID).
    #[error("attachment '{attachment}': {why}")]
    Zip {
        /// The attachment's name.
        attachment: String,
        /// Why it is refused.
        #[source]
        why: zip::ZipRefusal,
    },
    /// The signing certificate may not sign (expired, not yet valid, no signing usage).
    #[error(transparent)]
    Cert(#[from] crate::pki::CertError),
    /// The signature could not be checked at all.
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
}

impl EdxmlError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Xml(e) => e.code(),
            Self::Invalid(_) | Self::Schema(_) | Self::SignedInfo(_) => ErrorCode::EdxmlInvalid,
            Self::LimitExceeded(_) => ErrorCode::EdxmlLimitExceeded,
            Self::Cert(e) => e.code(),
            Self::Zip { why, .. } => why.code(),
            Self::Verify(e) => e.code(),
        }
    }

    pub(crate) fn invalid(why: impl Into<String>) -> Self {
        Self::Invalid(why.into())
    }
}

/// Caps on what one inbound package may cost, in the spirit of webpki's `Budget`. The defaults
/// fit an official document with a few scanned PDFs; a gateway may lower them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest envelope, in bytes (attachments are inside it, base64).
    pub max_envelope_bytes: usize,
    /// Most attachments.
    pub max_attachments: usize,
    /// Largest decoded attachment, in bytes.
    pub max_attachment_bytes: usize,
    /// Largest sum of decoded attachments, in bytes.
    pub max_total_attachment_bytes: usize,
    /// Most entries in a zipped attachment.
    pub max_zip_entries: usize,
    /// Largest sum of decompressed entry sizes in a zipped attachment, in bytes.
    pub max_zip_uncompressed_bytes: u64,
    /// Largest ratio of decompressed to compressed size of a zipped attachment.
    pub max_zip_ratio: u64,
    /// Most recipients (`To`) and trace headers, each.
    pub max_list: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_envelope_bytes: 48 * 1024 * 1024,
            max_attachments: 64,
            max_attachment_bytes: 32 * 1024 * 1024,
            max_total_attachment_bytes: 34 * 1024 * 1024,
            max_zip_entries: 1_000,
            max_zip_uncompressed_bytes: 256 * 1024 * 1024,
            max_zip_ratio: 100,
            max_list: 1_000,
        }
    }
}

impl Limits {
    /// The XML parser's limits for an envelope of this size.
    pub(crate) fn xml(&self) -> crate::xml::Limits {
        crate::xml::Limits {
            max_bytes: self.max_envelope_bytes,
            ..crate::xml::Limits::default()
        }
    }
}

/// An agency as edXML names it (`From`, `To`): its e-identifier and contact details.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Organ {
    /// The agency's e-identifier (QCVN 102 dotted form or Decision 20/2020 form; opaque).
    pub organ_id: String,
    /// The agency's name.
    pub organ_name: String,
    /// The office in charge within the agency.
    pub organization_in_charge: Option<String>,
    /// Postal address.
    pub organ_add: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Telephone number.
    pub telephone: Option<String>,
    /// Fax number.
    pub fax: Option<String>,
    /// Web site.
    pub website: Option<String>,
}

impl Organ {
    /// An agency with only its identifier and name.
    pub fn new(organ_id: impl Into<String>, organ_name: impl Into<String>) -> Self {
        Self {
            organ_id: organ_id.into(),
            organ_name: organ_name.into(),
            ..Self::default()
        }
    }
}

/// `BussinessDocType` (sic, the standard's spelling): what the package does to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BusinessDocType {
    /// 0: a new document.
    New = 0,
    /// 1: recalls (thu hồi) an earlier document.
    Revoke = 1,
    /// 2: updates an earlier document.
    Update = 2,
    /// 3: replaces an earlier document.
    Replace = 3,
}

impl BusinessDocType {
    /// The numeric code as written in `BussinessDocType`.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type for a number, `None` for anything but 0–3.
    pub fn from_number(n: u8) -> Option<Self> {
        [Self::New, Self::Revoke, Self::Update, Self::Replace]
            .into_iter()
            .find(|t| t.code() == n)
    }

    /// The type for a code, `None` for anything but 0–3.
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "0" => Self::New,
            "1" => Self::Revoke,
            "2" => Self::Update,
            "3" => Self::Replace,
            _ => return None,
        })
    }
}

/// The document a reply or status refers to (`ResponseFor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFor {
    /// The agency that issued it.
    pub organ_id: String,
    /// Its number and notation, e.g. `123/UBND-VP`.
    pub code: String,
    /// Its promulgation date.
    pub promulgation_date: time::Date,
    /// Its DocumentId.
    pub document_id: String,
}

/// Who signed the document on paper (`SignerInfo`); not the digital signer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignerInfo {
    /// Signing competence (e.g. `TM. UBND`, `KT. CHỦ TỊCH`).
    pub competence: Option<String>,
    /// Position (e.g. `Chủ tịch`).
    pub position: Option<String>,
    /// Full name.
    pub full_name: String,
}

/// `MessageHeader`: who sends what to whom. Covered by the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    /// The sending agency.
    pub from: Organ,
    /// The recipients (at least one).
    pub to: Vec<Organ>,
    /// The document's identifier, in practice `{senderOrganId},{yyyy/MM/dd},{number}/{notation}`.
    pub document_id: String,
    /// Document number (`Code/CodeNumber`).
    pub code_number: String,
    /// Document notation (`Code/CodeNotation`).
    pub code_notation: String,
    /// Place of promulgation.
    pub promulgation_place: String,
    /// Date of promulgation.
    pub promulgation_date: time::Date,
    /// `DocumentType/Type` (numeric code; the official table is unconfirmed, kept opaque).
    pub document_type: String,
    /// `DocumentType/TypeName`, e.g. `Công văn`.
    pub document_type_name: Option<String>,
    /// Subject (trích yếu).
    pub subject: String,
    /// Content summary.
    pub content: Option<String>,
    /// The paper signer.
    pub signer: SignerInfo,
    /// Deadline for processing.
    pub due_date: Option<time::Date>,
    /// Places the document is addressed to (nơi nhận) as text.
    pub to_places: Vec<String>,
    /// Steering type.
    pub steering_type: Option<String>,
    /// The document this one answers.
    pub response_for: Option<ResponseFor>,
}

impl MessageHeader {
    /// The `ResponseFor` that refers to this document (for a reply or a status message):
    /// the sender, `number/notation`, the promulgation date and the DocumentId.
    pub fn response_for(&self) -> ResponseFor {
        ResponseFor {
            organ_id: self.from.organ_id.clone(),
            code: format!("{}/{}", self.code_number, self.code_notation),
            promulgation_date: self.promulgation_date,
            document_id: self.document_id.clone(),
        }
    }
}

/// One hop's trace (`TraceHeader`): which agency's node passed the package on, and when.
/// Outside the signature; one is added at each hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    /// The agency (or node) of the hop.
    pub organ_id: String,
    /// When, written `yyyy/MM/dd HH:mm:ss` in Vietnam time (+07:00).
    pub timestamp: time::OffsetDateTime,
}

/// `Bussiness`: the package's purpose. It sits in `TraceHeaderList` as the standard places it,
/// so it is **not** covered by the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Business {
    /// New, revoke, update or replace.
    pub doc_type: BusinessDocType,
    /// Why (for revoke/update/replace).
    pub reason: Option<String>,
    /// The DocumentId of the document it revokes, updates or replaces.
    pub document_id: Option<String>,
}

impl Default for Business {
    fn default() -> Self {
        Self {
            doc_type: BusinessDocType::New,
            reason: None,
            document_id: None,
        }
    }
}

/// A file carried beside the envelope, linked from the manifest by `cid:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The content id (manifest `cid:` target).
    pub content_id: String,
    /// The file name.
    pub name: String,
    /// MIME type.
    pub content_type: String,
    /// Description.
    pub description: Option<String>,
    /// The decoded bytes.
    pub data: Vec<u8>,
}

/// A whole edXML package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The signed header.
    pub header: MessageHeader,
    /// Its purpose (unsigned, in the trace list).
    pub business: Business,
    /// The hops so far.
    pub traces: Vec<TraceHeader>,
    /// The files.
    pub attachments: Vec<Attachment>,
}
