//! The crate-wide error type and the stable error codes shared by the CLI and the HTTP API.
//!
//! Each domain module owns a typed error; [`Error`] wraps them. [`Error::code`] is the one
//! place where an error becomes a stable code (`PDF_ENCRYPTED`, …) and a process exit code.

pub use crate::code::ErrorCode;

/// Any failure of the signgate library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Loading or using a signing key failed.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// The signing certificate cannot be used.
    #[error(transparent)]
    Cert(#[from] crate::pki::CertError),
    /// Building a CMS structure failed.
    #[error(transparent)]
    Cms(#[from] crate::cms::CmsError),
    /// The PDF cannot be signed.
    #[error(transparent)]
    Pdf(#[from] crate::pdf::PdfError),
    /// Obtaining a time-stamp failed.
    #[error(transparent)]
    Tsp(#[from] crate::pki::tsp::TspError),
    /// An input or output file failed.
    #[error(transparent)]
    Io(#[from] crate::fsio::IoError),
    /// The file cannot be verified.
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    /// Validation data could not be gathered (a certificate's status is unknown).
    #[error("validation data incomplete: {0}")]
    Validation(String),
    /// The XML cannot be parsed, signed or verified.
    #[error(transparent)]
    Xml(#[from] crate::xml::XmlError),
    /// The request itself is inconsistent (e.g. B-T without a TSA).
    #[error("{0}")]
    Usage(String),
    /// An edXML package or status message is refused.
    #[error(transparent)]
    Edxml(#[from] crate::edxml::EdxmlError),
    /// The agency directory refused an operation.
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
    /// Routing between gateway nodes failed.
    #[error(transparent)]
    Routing(#[from] crate::routing::RoutingError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Generating or changing the demo PKI failed.
    #[error(transparent)]
    Pki(#[from] crate::pki::demo::PkiError),
    /// The time-stamp server cannot be set up.
    #[error(transparent)]
    Tsa(#[from] crate::tsa::TsaError),
    /// The publication point cannot start.
    #[error(transparent)]
    Publish(#[from] crate::publish::PublishError),
    /// A setting names no known format, profile, level, digest….
    #[error(transparent)]
    Name(#[from] crate::code::UnknownName),
    /// A background worker did not finish.
    #[error(transparent)]
    Worker(#[from] crate::blocking::WorkerFailed),
}

impl Error {
    /// The stable code for this error; no `_` arm, so each new variant picks a code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Key(e) => e.code(),
            Error::Cert(e) => e.code(),
            Error::Cms(e) => e.code(),
            Error::Pdf(e) => e.code(),
            Error::Tsp(e) => e.code(),
            Error::Io(e) => e.code(),
            Error::Verify(e) => e.code(),
            Error::Validation(_) => ErrorCode::RevocationUnavailable,
            Error::Xml(e) => e.code(),
            Error::Usage(_) => ErrorCode::Usage,
            Error::Edxml(e) => e.code(),
            Error::Directory(e) => e.code(),
            Error::Routing(e) => e.code(),
            Error::Worker(e) => e.code(),
            Error::Name(e) => e.code(),
            Error::Store(e) => e.code(),
            Error::Pki(e) => e.code(),
            Error::Tsa(e) => e.code(),
            Error::Publish(e) => e.code(),
        }
    }
}
