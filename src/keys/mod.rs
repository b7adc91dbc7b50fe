//! Signing keys: where a private key lives and how it signs.
//!
//! A [`KeySource`] is loaded once and then signs messages or digests; it never hands out the key.
//! Keys live in PKCS#12 files ([`Pkcs12Key`]) or PKCS#11 tokens ([`Pkcs11Key`]); [`open`]
//! picks one from a `--key` value. This module knows nothing of CMS, PDF or XML.

mod pkcs11;
mod pkcs12;

pub use pkcs11::{Pkcs11Key, Pkcs11Options, Pkcs11Uri, DEFAULT_MODULE};
pub use pkcs12::Pkcs12Key;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::code::ErrorCode;
use crate::pki::alg::{KeyAlgorithm, SignatureScheme};
use openssl::x509::X509;

/// Why a key could not be loaded or used. Messages never contain a password or PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file cannot be read.
    #[error("cannot read key file {path}: {reason}")]
    Unreadable {
        /// The file that failed.
        path: String,
        /// The I/O error text.
        reason: String,
    },
    /// The file is not a PKCS#12 structure.
    #[error("{path} is not a PKCS#12 (.p12/.pfx) file")]
    NotPkcs12 {
        /// The file that failed.
        path: String,
    },
    /// The password does not open the file.
    #[error("wrong password for {path}")]
    WrongPassword {
        /// The file that failed.
        path: String,
    },
    /// The file uses RC2/3DES encryption and the OpenSSL legacy provider is unavailable.
    #[error("{path} uses legacy PKCS#12 encryption (RC2/3DES) and the OpenSSL legacy provider is not available; re-export it with AES-256 (openssl pkcs12 -export -keypbe AES-256-CBC -certpbe AES-256-CBC)")]
    LegacyEncryption {
        /// The file that failed.
        path: String,
    },
    /// The file opens but holds no private key or no certificate.
    #[error("{path} holds no {missing}")]
    Incomplete {
        /// The file that failed.
        path: String,
        /// "private key" or "certificate".
        missing: &'static str,
    },
    /// The key type is neither RSA nor EC, or the scheme does not fit it.
    #[error("{0}")]
    Unsupported(String),
    /// The private-key operation itself failed.
    #[error("signing with the private key failed: {0}")]
    SignFailed(String),
    /// The token, key or certificate named by a PKCS#11 URI does not exist.
    #[error("{what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The PKCS#11 module or token failed (not loadable, removed, locked PIN, device error).
    #[error("PKCS#11 token {uri}: {reason}")]
    Token {
        /// The key's URI (never with a PIN).
        uri: String,
        /// What failed.
        reason: String,
    },
}

impl KeyError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unreadable { .. } => ErrorCode::InputMissing,
            Self::NotPkcs12 { .. } | Self::Incomplete { .. } => ErrorCode::KeyInvalid,
            Self::WrongPassword { .. } => ErrorCode::KeyPasswordWrong,
            Self::LegacyEncryption { .. } => ErrorCode::P12LegacyEncryption,
            Self::Unsupported(_) => ErrorCode::KeyAlgorithmMismatch,
            Self::SignFailed(_) => ErrorCode::Internal,
            Self::NotFound { .. } => ErrorCode::KeyInvalid,
            Self::Token { .. } => ErrorCode::KeyUnavailable,
        }
    }
}

/// A private key with its certificate, able to sign.
///
/// Implementations are loaded once and shared across threads. Signers call
/// [`KeySource::sign_message`] with the to-be-signed bytes (CMS signed attributes, canonical
/// SignedInfo); its default hashes them and calls [`KeySource::sign_digest`], the raw
/// private-key operation. A key that cannot sign a bare digest (a token key needing a PIN per
/// signature) overrides `sign_message`.
pub trait KeySource: Send + Sync {
    /// The signer's certificate.
    fn certificate(&self) -> &X509;
    /// Intermediate certificates to embed (issuing CA first), without the root.
    fn chain(&self) -> &[X509];
    /// The key's algorithm and size.
    fn algorithm(&self) -> KeyAlgorithm;
    /// Signs `digest` (already hashed with `scheme.digest()`).
    ///
    /// RSA returns the raw signature; ECDSA returns a DER `ECDSA-Sig-Value`, as CMS carries it.
    /// A key that must hash on its side (a token key needing a PIN per signature) refuses.
    fn sign_digest(&self, scheme: SignatureScheme, digest: &[u8]) -> Result<Vec<u8>, KeyError>;

    /// Signs `message` (hashed here with `scheme.digest()`); same output as
    /// [`KeySource::sign_digest`]. The entry point for every signer.
    fn sign_message(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.sign_digest(scheme, &scheme.digest().digest(message))
    }

    /// How many signatures the key can compute at once (a token's session limit), or `None`
    /// when it sets no limit. The batch engine caps its key pool to it.
    fn max_concurrent_signatures(&self) -> Option<usize> {
        None
    }
}

/// Reads the key algorithm of an OpenSSL public key.
pub(crate) fn key_algorithm<T: openssl::pkey::HasPublic>(
    key: &openssl::pkey::PKeyRef<T>,
) -> Result<KeyAlgorithm, KeyError> {
    match key.id() {
        openssl::pkey::Id::RSA => Ok(KeyAlgorithm::Rsa { bits: key.bits() }),
        openssl::pkey::Id::EC => Ok(KeyAlgorithm::Ec { bits: key.bits() }),
        other => Err(KeyError::Unsupported(format!(
            "unsupported key type {other:?}: signgate signs with RSA or ECDSA keys"
        ))),
    }
}

/// What [`open`] needs besides the key's name: the secret and, for tokens, where to look.
#[derive(Default)]
pub struct OpenOptions {
    /// The PKCS#12 password or the token PIN.
    pub secret: Option<SecretString>,
    /// Token options (module, certificate and chain files).
    pub pkcs11: Pkcs11Options,
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("pkcs11", &self.pkcs11)
            .finish()
    }
}

/// Opens the key named by `spec`: a `pkcs11:` URI (RFC 7512) or a PKCS#12 file path.
pub fn open(spec: &str, opts: &OpenOptions) -> Result<Arc<dyn KeySource>, KeyError> {
    let secret = || {
        opts.secret
            .clone()
            .ok_or_else(|| KeyError::Unsupported("no password or PIN given for the key".into()))
    };
    if Pkcs11Uri::is_uri(spec) {
        let uri = Pkcs11Uri::parse(spec)?;
        return Ok(Arc::new(Pkcs11Key::open(&uri, secret()?, &opts.pkcs11)?));
    }
    let key = Pkcs12Key::open(std::path::Path::new(spec), secret()?.expose_secret())?;
    Ok(Arc::new(key))
}
