//! XML signatures: the hardened parser, canonicalization, XML-DSig and the profiles of the
//! Vietnamese filings (tax, social insurance, e-invoice) and edXML envelopes.
//!
//! Owns parsing, C14N, building and checking `ds:Signature` cryptographically, and the
//! profile rules. Leaves trust, revocation and the report to the `verify` module (above this
//! one) and the private-key operation to [`keys`](crate::keys). No network, no file access.
//!
//! Signing splices the Signature into the input bytes: nothing else of the input changes
//! (no re-serialization, prefix, whitespace or encoding change).

pub mod c14n;
pub mod dsig;
pub mod filter2;
pub mod parse;
pub mod profile;

pub use parse::Limits;
pub use profile::Profile;

use time::OffsetDateTime;

use crate::code::ErrorCode;
use crate::keys::KeySource;
use crate::pki::alg::SignatureScheme;

/// Why an XML document cannot be parsed, signed or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The document has a DOCTYPE or an entity reference (DTDs are never processed).
    #[error("{0}")]
    DtdForbidden(String),
    /// An ID value occurs on more than one element.
    #[error("ID '{0}' occurs more than once: references to it are ambiguous")]
    DuplicateId(String),
    /// Not well-formed XML, not UTF-8, or not a structure signgate understands.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// A size, depth, attribute or node limit was exceeded.
    #[error("XML limit exceeded: {0}")]
    LimitExceeded(String),
    /// The document does not have the layout the profile signs.
    #[error("{0}")]
    ProfileMismatch(String),
    /// A feature signgate does not implement.
    #[error("unsupported XML feature: {0}")]
    Unsupported(String),
    /// A bug: the signature just built does not verify.
    #[error("internal XML signing error: {0}")]
    Internal(String),
    /// The private-key operation failed.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
}

impl XmlError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::DtdForbidden(_) => ErrorCode::XmlDtdForbidden,
            Self::DuplicateId(_) => ErrorCode::XmlDuplicateId,
            Self::Malformed(_) => ErrorCode::XmlMalformed,
            Self::LimitExceeded(_) => ErrorCode::XmlLimitExceeded,
            Self::ProfileMismatch(_) => ErrorCode::XmlProfileMismatch,
            Self::Unsupported(_) => ErrorCode::XmlUnsupported,
            Self::Internal(_) => ErrorCode::Internal,
            Self::Key(e) => e.code(),
        }
    }
}

/// The complete text of `element`: every text and CDATA node below it, concatenated in
/// document order. Comments and processing instructions split a text into several nodes
/// (`125<!-- x -->000` is two), and comments are not digested for `#id` references, so
/// reading only the first node would let a signed value be reported truncated. Every value
/// signgate reads from a document (DigestValue, SignatureValue, certificates, declared
/// fields) goes through here, as libxml2's `xmlNodeGetContent` does for xmlsec1.
pub fn signed_text(element: roxmltree::Node<'_, '_>) -> String {
    element
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// True when `input` looks like XML: `<` first after an optional BOM and whitespace.
pub fn looks_like_xml(input: &[u8]) -> bool {
    let body = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'<')
}

/// Signs `input` under `profile` with `key`; returns the input with one Signature inserted.
pub fn sign(
    input: &[u8],
    profile: Profile,
    key: &dyn KeySource,
    scheme: SignatureScheme,
    signing_time: OffsetDateTime,
) -> Result<Vec<u8>, XmlError> {
    let signer = dsig::Signer {
        certificate: key.certificate(),
        chain: key.chain(),
        algorithm: key.algorithm(),
        scheme,
        text: None,
    };
    let prepared = prepare(input, profile, &signer, signing_time)?;
    let raw = key.sign_message(scheme, prepared.signed_info())?;
    prepared.finish(&raw)
}

/// Parses `input`, plans its Signature under `profile` and computes every digest, up to the
/// bytes the key must sign ([`dsig::PreparedSignature::signed_info`]); for pipelines that run the
/// key operation elsewhere (the batch engine).
pub fn prepare(
    input: &[u8],
    profile: Profile,
    signer: &dsig::Signer<'_>,
    signing_time: OffsetDateTime,
) -> Result<dsig::PreparedSignature, XmlError> {
    let limits = Limits::default();
    let parsed = parse::parse(input, &limits)?;
    let ids = dsig::IdIndex::build(&parsed.doc, profile.id_attributes())?;
    let plan = profile.plan(&parsed, &ids)?;
    dsig::prepare(
        input,
        &plan,
        signer,
        signing_time,
        &limits,
        profile.id_attributes(),
    )
}
