//! CMS SignedData (RFC 5652) and CAdES signed attributes (ETSI EN 319 122-1), built by signgate.
//!
//! OpenSSL's CMS API always adds signing-time and cannot sign through an HSM, so the
//! structures are assembled here with the RustCrypto `cms` types and signed through a
//! [`KeySource`]. This module knows no PDF or XML: it takes a content digest and returns DER.
//! For verification it reads SignedData and time-stamp tokens from BER ([`ber`], [`parse`],
//! [`tst`]), as other signers emit them.

mod attributes;
pub mod ber;
mod builder;
pub mod parse;
pub mod tst;

pub use attributes::{EssCertIdV2, SigningCertificateV2};
pub use builder::{PendingSignature, SignedDataBuilder, SignerTemplate};
pub use parse::{parse_signed_data, CmsParseError, ParsedSignedData};

/// Building a CMS structure failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    /// A value could not be DER-encoded or decoded.
    #[error("DER encoding failed: {0}")]
    Der(#[from] der::Error),
    /// A certificate could not be converted.
    #[error("certificate cannot be used in CMS: {0}")]
    Certificate(String),
    /// The private key failed to sign.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// The message digest does not match the digest algorithm.
    #[error("message digest is {got} bytes, expected {expected}")]
    DigestLength {
        /// Bytes given.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
}

impl CmsError {
    /// The stable error code: a key failure keeps its own (a removed token is
    /// `KEY_UNAVAILABLE`, which stops a batch), the rest are internal.
    pub fn code(&self) -> crate::code::ErrorCode {
        match self {
            Self::Key(e) => e.code(),
            Self::Der(_) | Self::Certificate(_) | Self::DigestLength { .. } => {
                crate::code::ErrorCode::Internal
            }
        }
    }
}
