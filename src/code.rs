//! The stable error codes shared by the CLI and the HTTP API (CONTRACTS.md §1, §4).
//!
//! The bottom of the crate: every domain error maps to an [`ErrorCode`], so domain modules
//! depend on this table only, never on the crate-wide [`crate::Error`] that wraps them.

use std::fmt;

/// A stable, machine-readable error code (CONTRACTS.md §1, §4).
///
/// The string form never changes once released; scripts and other systems match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The command line or request was malformed.
    Usage,
    /// An input file does not exist or cannot be read.
    InputMissing,
    /// The output file cannot be created.
    OutputUnwritable,
    /// The PDF cannot be parsed (truncated, not a PDF, broken cross-reference).
    PdfMalformed,
    /// The PDF is encrypted; signing it is refused.
    PdfEncrypted,
    /// A certification signature (DocMDP P=1) forbids any change.
    PdfCertifiedNoChanges,
    /// An image given for a visible signature cannot be used.
    ImageInvalid,
    /// The requested page does not exist in the PDF.
    PdfPageOutOfRange,
    /// A seal was asked to overlap a previous signature, but the page has none.
    PdfNoSignatureToSeal,
    /// The key file is not a readable PKCS#12 file.
    KeyInvalid,
    /// The key password is wrong.
    KeyPasswordWrong,
    /// The PKCS#12 file uses legacy encryption (RC2/3DES) that this build cannot read.
    P12LegacyEncryption,
    /// The key's algorithm does not fit the requested signature scheme.
    KeyAlgorithmMismatch,
    /// The PKCS#11 module or token cannot be used (not loadable, removed, PIN locked).
    KeyUnavailable,
    /// The signing certificate has expired.
    CertExpired,
    /// The signing certificate is not yet valid.
    CertNotYetValid,
    /// The signing certificate allows neither digitalSignature nor nonRepudiation.
    CertNoSigningUsage,
    /// The time-stamp authority could not be reached.
    TsaUnavailable,
    /// The time-stamp authority answered, but not with a usable token.
    TsaBadResponse,
    /// The file holds no signature to verify.
    NoSignature,
    /// The CMS signature cannot be parsed.
    CmsMalformed,
    /// The revocation status of a certificate could not be obtained.
    RevocationUnavailable,
    /// The XML has a DOCTYPE or entity declarations (refused, never processed).
    XmlDtdForbidden,
    /// An XML ID value occurs more than once.
    XmlDuplicateId,
    /// The XML is not well-formed or not UTF-8.
    XmlMalformed,
    /// The XML exceeds a size, depth, attribute or node limit.
    XmlLimitExceeded,
    /// The XML does not have the layout the signature profile expects.
    XmlProfileMismatch,
    /// The XML uses a feature signgate does not implement.
    XmlUnsupported,
    /// A bug or an environment failure.
    Internal,
    /// An edXML package or status message does not follow the gateway's schema or rules.
    EdxmlInvalid,
    /// An edXML package exceeds a size or count limit (attachments, zip contents).
    EdxmlLimitExceeded,
    /// The agency directory has no such unit or agency.
    DirectoryNotFound,
    /// A directory input (CSV, change) is invalid or conflicts with the directory.
    DirectoryInvalid,
    /// Routing: the calling or called node is not a configured peer.
    RoutePeerUnknown,
    /// Routing: a peer node could not be reached.
    RoutePeerUnavailable,
    /// Routing: the same idempotency key arrived with different content (CONTRACTS §5).
    ConflictingRedelivery,
    /// Routing: no such document at this node.
    RouteNotFound,
    /// An `Idempotency-Key` reused by the same client for a different request (HTTP 422).
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still in flight (HTTP 409).
    IdempotencyInProgress,
    /// Too many requests, or too many in flight, from one client or address: retry later.
    RateLimited,
}

impl ErrorCode {
    /// The stable string form, e.g. `PDF_ENCRYPTED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Usage => "USAGE",
            Self::InputMissing => "INPUT_MISSING",
            Self::OutputUnwritable => "OUTPUT_UNWRITABLE",
            Self::PdfMalformed => "PDF_MALFORMED",
            Self::PdfEncrypted => "PDF_ENCRYPTED",
            Self::PdfCertifiedNoChanges => "PDF_CERTIFIED_NO_CHANGES",
            Self::ImageInvalid => "IMAGE_INVALID",
            Self::PdfPageOutOfRange => "PDF_PAGE_OUT_OF_RANGE",
            Self::PdfNoSignatureToSeal => "PDF_NO_SIGNATURE_TO_SEAL",
            Self::KeyInvalid => "KEY_INVALID",
            Self::KeyPasswordWrong => "KEY_PASSWORD_WRONG",
            Self::P12LegacyEncryption => "P12_LEGACY_ENCRYPTION",
            Self::KeyAlgorithmMismatch => "KEY_ALGORITHM_MISMATCH",
            Self::KeyUnavailable => "KEY_UNAVAILABLE",
            Self::CertExpired => "CERT_EXPIRED",
            Self::CertNotYetValid => "CERT_NOT_YET_VALID",
            Self::CertNoSigningUsage => "CERT_NO_SIGNING_USAGE",
            Self::TsaUnavailable => "TSA_UNAVAILABLE",
            Self::TsaBadResponse => "TSA_BAD_RESPONSE",
            Self::NoSignature => "NO_SIGNATURE",
            Self::CmsMalformed => "CMS_MALFORMED",
            Self::RevocationUnavailable => "REVOCATION_UNAVAILABLE",
            Self::XmlDtdForbidden => "XML_DTD_FORBIDDEN",
            Self::XmlDuplicateId => "XML_DUPLICATE_ID",
            Self::XmlMalformed => "XML_MALFORMED",
            Self::XmlLimitExceeded => "XML_LIMIT_EXCEEDED",
            Self::XmlProfileMismatch => "XML_PROFILE_MISMATCH",
            Self::XmlUnsupported => "XML_UNSUPPORTED",
            Self::Internal => "INTERNAL",
            Self::EdxmlInvalid => "EDXML_INVALID",
            Self::EdxmlLimitExceeded => "EDXML_LIMIT_EXCEEDED",
            Self::DirectoryNotFound => "DIRECTORY_NOT_FOUND",
            Self::DirectoryInvalid => "DIRECTORY_INVALID",
            Self::RoutePeerUnknown => "ROUTE_PEER_UNKNOWN",
            Self::RoutePeerUnavailable => "ROUTE_PEER_UNAVAILABLE",
            Self::ConflictingRedelivery => "CONFLICTING_REDELIVERY",
            Self::RouteNotFound => "ROUTE_NOT_FOUND",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::IdempotencyInProgress => "IDEMPOTENCY_IN_PROGRESS",
            Self::RateLimited => "RATE_LIMITED",
        }
    }

    /// The process exit code for this error (CONTRACTS.md §1, sysexits.h values).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Usage | Self::KeyAlgorithmMismatch => 64,
            Self::PdfMalformed
            | Self::PdfEncrypted
            | Self::PdfCertifiedNoChanges
            | Self::ImageInvalid
            | Self::CmsMalformed
            | Self::PdfPageOutOfRange
            | Self::PdfNoSignatureToSeal
            | Self::XmlDtdForbidden
            | Self::XmlDuplicateId
            | Self::XmlMalformed
            | Self::XmlLimitExceeded
            | Self::XmlProfileMismatch
            | Self::XmlUnsupported
            | Self::EdxmlInvalid
            | Self::EdxmlLimitExceeded
            | Self::DirectoryInvalid => 65,
            Self::NoSignature => 3,
            Self::InputMissing | Self::DirectoryNotFound | Self::RouteNotFound => 66,
            Self::RoutePeerUnknown | Self::ConflictingRedelivery => 65,
            Self::IdempotencyKeyReused => 65,
            Self::IdempotencyInProgress => 75,
            Self::RoutePeerUnavailable => 69,
            Self::TsaUnavailable | Self::TsaBadResponse | Self::RevocationUnavailable => 69,
            Self::Internal => 70,
            Self::RateLimited => 75,
            Self::OutputUnwritable => 73,
            Self::KeyInvalid
            | Self::KeyPasswordWrong
            | Self::KeyUnavailable
            | Self::P12LegacyEncryption
            | Self::CertExpired
            | Self::CertNotYetValid
            | Self::CertNoSigningUsage => 77,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is none of the names a setting accepts (a format, profile, digest, level…):
/// the one error of every `FromStr` over a fixed set of names. Always [`ErrorCode::Usage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} '{given}' (expected {expected})")]
pub struct UnknownName {
    /// What was being named, e.g. `profile`.
    pub kind: &'static str,
    /// The name given.
    pub given: String,
    /// The accepted names, for the message.
    pub expected: &'static str,
}

impl UnknownName {
    /// `given` is not a `kind`; `expected` lists the accepted names.
    pub fn new(kind: &'static str, given: &str, expected: &'static str) -> Self {
        Self {
            kind,
            given: given.to_string(),
            expected,
        }
    }

    /// Always [`ErrorCode::Usage`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let table = [
            (ErrorCode::PdfEncrypted, "PDF_ENCRYPTED", 65),
            (ErrorCode::PdfMalformed, "PDF_MALFORMED", 65),
            (ErrorCode::KeyPasswordWrong, "KEY_PASSWORD_WRONG", 77),
            (ErrorCode::P12LegacyEncryption, "P12_LEGACY_ENCRYPTION", 77),
            (ErrorCode::CertExpired, "CERT_EXPIRED", 77),
            (ErrorCode::CertNoSigningUsage, "CERT_NO_SIGNING_USAGE", 77),
            (ErrorCode::TsaUnavailable, "TSA_UNAVAILABLE", 69),
            (ErrorCode::OutputUnwritable, "OUTPUT_UNWRITABLE", 73),
            (ErrorCode::InputMissing, "INPUT_MISSING", 66),
            (ErrorCode::KeyUnavailable, "KEY_UNAVAILABLE", 77),
            (ErrorCode::Usage, "USAGE", 64),
            (ErrorCode::PdfPageOutOfRange, "PDF_PAGE_OUT_OF_RANGE", 65),
            (
                ErrorCode::PdfNoSignatureToSeal,
                "PDF_NO_SIGNATURE_TO_SEAL",
                65,
            ),
            (ErrorCode::XmlDtdForbidden, "XML_DTD_FORBIDDEN", 65),
            (ErrorCode::XmlDuplicateId, "XML_DUPLICATE_ID", 65),
            (ErrorCode::XmlMalformed, "XML_MALFORMED", 65),
            (ErrorCode::XmlLimitExceeded, "XML_LIMIT_EXCEEDED", 65),
            (ErrorCode::XmlProfileMismatch, "XML_PROFILE_MISMATCH", 65),
            (ErrorCode::XmlUnsupported, "XML_UNSUPPORTED", 65),
            (ErrorCode::EdxmlInvalid, "EDXML_INVALID", 65),
            (ErrorCode::EdxmlLimitExceeded, "EDXML_LIMIT_EXCEEDED", 65),
            (ErrorCode::DirectoryNotFound, "DIRECTORY_NOT_FOUND", 66),
            (ErrorCode::DirectoryInvalid, "DIRECTORY_INVALID", 65),
            (ErrorCode::RoutePeerUnknown, "ROUTE_PEER_UNKNOWN", 65),
            (
                ErrorCode::RoutePeerUnavailable,
                "ROUTE_PEER_UNAVAILABLE",
                69,
            ),
            (
                ErrorCode::ConflictingRedelivery,
                "CONFLICTING_REDELIVERY",
                65,
            ),
            (ErrorCode::RouteNotFound, "ROUTE_NOT_FOUND", 66),
            (
                ErrorCode::IdempotencyKeyReused,
                "IDEMPOTENCY_KEY_REUSED",
                65,
            ),
            (
                ErrorCode::IdempotencyInProgress,
                "IDEMPOTENCY_IN_PROGRESS",
                75,
            ),
            (ErrorCode::RateLimited, "RATE_LIMITED", 75),
        ];
        for (code, text, exit) in table {
            assert_eq!(code.as_str(), text);
            assert_eq!(code.exit_code(), exit, "{text}");
        }
    }
}
