//! Public-key infrastructure: algorithms and OIDs, signing-certificate checks, RFC 3161
//! time-stamp requests, and the demo PKI generator. No HTTP server, no database.

pub mod alg;
pub mod certs;
pub mod demo;
pub mod oid;
pub mod tsp;

use openssl::x509::X509Ref;
use time::OffsetDateTime;

use crate::code::ErrorCode;

/// Why a certificate cannot be used to sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The certificate expired before the signing time.
    #[error("certificate '{subject}' expired on {not_after}")]
    Expired {
        /// Subject of the certificate.
        subject: String,
        /// End of its validity, RFC 3339.
        not_after: String,
    },
    /// The certificate is not valid yet at the signing time.
    #[error("certificate '{subject}' is not valid before {not_before}")]
    NotYetValid {
        /// Subject of the certificate.
        subject: String,
        /// Start of its validity, RFC 3339.
        not_before: String,
    },
    /// The certificate's key usage allows neither digitalSignature nor nonRepudiation.
    #[error("certificate '{subject}' allows neither digitalSignature nor nonRepudiation")]
    NoSigningUsage {
        /// Subject of the certificate.
        subject: String,
    },
    /// The certificate cannot be parsed.
    #[error("certificate cannot be parsed: {0}")]
    Malformed(String),
}

impl CertError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Expired { .. } => ErrorCode::CertExpired,
            Self::NotYetValid { .. } => ErrorCode::CertNotYetValid,
            Self::NoSigningUsage { .. } => ErrorCode::CertNoSigningUsage,
            Self::Malformed(_) => ErrorCode::KeyInvalid,
        }
    }
}

/// Checks that `cert` may make a document signature at `at`: inside its validity period and
/// with digitalSignature or nonRepudiation in its key usage (when the extension is present).
pub fn check_signing_certificate(cert: &X509Ref, at: OffsetDateTime) -> Result<(), CertError> {
    let der = cert
        .to_der()
        .map_err(|e| CertError::Malformed(e.to_string()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| CertError::Malformed(e.to_string()))?;
    let subject = parsed.subject().to_string();
    let validity = parsed.validity();
    let at_ts = at.unix_timestamp();
    if at_ts > validity.not_after.timestamp() {
        return Err(CertError::Expired {
            subject,
            not_after: rfc3339(validity.not_after.timestamp()),
        });
    }
    if at_ts < validity.not_before.timestamp() {
        return Err(CertError::NotYetValid {
            subject,
            not_before: rfc3339(validity.not_before.timestamp()),
        });
    }
    if let Ok(Some(ku)) = parsed.key_usage() {
        if !ku.value.digital_signature() && !ku.value.non_repudiation() {
            return Err(CertError::NoSigningUsage { subject });
        }
    }
    Ok(())
}

fn rfc3339(unix: i64) -> String {
    crate::clock::unix_rfc3339(unix).unwrap_or_else(|| unix.to_string())
}

/// The subject's commonName, for the PDF `/Name` and visible signature text.
pub fn subject_common_name(cert: &X509Ref) -> Option<String> {
    subject_entry(cert, openssl::nid::Nid::COMMONNAME)
}

/// The subject's organizationName (the agency of an agency or official certificate).
pub fn subject_organization(cert: &X509Ref) -> Option<String> {
    subject_entry(cert, openssl::nid::Nid::ORGANIZATIONNAME)
}

fn subject_entry(cert: &X509Ref, nid: openssl::nid::Nid) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(nid)
        .next()
        .and_then(|e| e.data().to_string().ok())
}
