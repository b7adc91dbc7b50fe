//! Keys held in PKCS#12 (.p12/.pfx) files, including legacy RC2/3DES exports.

use std::path::Path;
use std::sync::OnceLock;

use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::x509::X509;

use super::{key_algorithm, KeyError, KeySource};
use crate::pki::alg::{KeyAlgorithm, SignatureScheme};

/// A private key and certificate chain loaded from a PKCS#12 file.
pub struct Pkcs12Key {
    key: PKey<Private>,
    certificate: X509,
    chain: Vec<X509>,
    algorithm: KeyAlgorithm,
}

impl std::fmt::Debug for Pkcs12Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs12Key")
            .field("subject", &self.certificate.subject_name())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Pkcs12Key {
    /// Loads `path` with `password`.
    pub fn open(path: &Path, password: &str) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path)
            .map_err(|e| KeyError::Unreadable { path: shown.clone(), reason: e.to_string() })?;
        Self::from_der(&bytes, password, &shown)
    }

    /// Parses PKCS#12 bytes; `name` is used in error messages.
    pub fn from_der(bytes: &[u8], password: &str, name: &str) -> Result<Self, KeyError> {
        let p12 = Pkcs12::from_der(bytes).map_err(|_| KeyError::NotPkcs12 { path: name.into() })?;
        let parsed = match p12.parse2(password) {
            Ok(parsed) => parsed,
            Err(first) => {
                if is_mac_failure(&first) {
                    return Err(KeyError::WrongPassword { path: name.into() });
                }
                if !is_unsupported_algorithm(&first) {
                    return Err(KeyError::NotPkcs12 { path: name.into() });
                }
                // RC2/3DES needs the legacy provider; load it once and retry.
                if !load_legacy_provider() {
                    return Err(KeyError::LegacyEncryption { path: name.into() });
                }
                p12.parse2(password).map_err(|e| {
                    if is_unsupported_algorithm(&e) {
                        KeyError::LegacyEncryption { path: name.into() }
                    } else {
                        KeyError::NotPkcs12 { path: name.into() }
                    }
                })?
            }
        };
        let key = parsed
            .pkey
            .ok_or(KeyError::Incomplete { path: name.into(), missing: "private key" })?;
        let certificate = parsed
            .cert
            .ok_or(KeyError::Incomplete { path: name.into(), missing: "certificate" })?;
        let algorithm = key_algorithm(&key)?;
        let mut chain: Vec<X509> = parsed.ca.map(|s| s.into_iter().collect()).unwrap_or_default();
        // Drop self-signed roots: a signature carries the path up to, not including, the anchor.
        chain.retain(|c| c.issued(c) != openssl::x509::X509VerifyResult::OK);
        Ok(Self { key, certificate, chain, algorithm })
    }
}

impl KeySource for Pkcs12Key {
    fn certificate(&self) -> &X509 {
        &self.certificate
    }

    fn chain(&self) -> &[X509] {
        &self.chain
    }

    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn sign_digest(&self, scheme: SignatureScheme, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        sign_with_pkey(&self.key, self.algorithm, scheme, digest)
    }
}

/// Signs a digest with an in-memory OpenSSL key.
pub(crate) fn sign_with_pkey(
    key: &PKeyRef<Private>,
    algorithm: KeyAlgorithm,
    scheme: SignatureScheme,
    digest: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let mismatch = || {
        KeyError::Unsupported(format!("a {algorithm:?} key cannot make {scheme:?} signatures"))
    };
    match (algorithm, scheme) {
        (KeyAlgorithm::Rsa { .. }, SignatureScheme::Ecdsa(_))
        | (KeyAlgorithm::Ec { .. }, SignatureScheme::RsaPkcs1(_) | SignatureScheme::RsaPss(_)) => {
            return Err(mismatch())
        }
        _ => {}
    }
    if digest.len() != scheme.digest().len() {
        return Err(KeyError::SignFailed(format!(
            "digest is {} bytes, {:?} needs {}",
            digest.len(),
            scheme.digest(),
            scheme.digest().len()
        )));
    }
    let failed = |e: openssl::error::ErrorStack| KeyError::SignFailed(e.to_string());
    let mut ctx = PkeyCtx::new(key).map_err(failed)?;
    ctx.sign_init().map_err(failed)?;
    let md = scheme.digest().message_digest();
    match scheme {
        SignatureScheme::RsaPkcs1(_) => {
            ctx.set_rsa_padding(Padding::PKCS1).map_err(failed)?;
            ctx.set_signature_md(openssl::md::Md::from_nid(md.type_()).ok_or_else(|| {
                KeyError::SignFailed("digest unknown to OpenSSL".into())
            })?)
            .map_err(failed)?;
        }
        SignatureScheme::RsaPss(_) => {
            let md = openssl::md::Md::from_nid(md.type_())
                .ok_or_else(|| KeyError::SignFailed("digest unknown to OpenSSL".into()))?;
            ctx.set_rsa_padding(Padding::PKCS1_PSS).map_err(failed)?;
            ctx.set_signature_md(md).map_err(failed)?;
            ctx.set_rsa_mgf1_md(md).map_err(failed)?;
            ctx.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)
                .map_err(failed)?;
        }
        SignatureScheme::Ecdsa(_) => {}
    }
    let mut signature = Vec::new();
    ctx.sign_to_vec(digest, &mut signature).map_err(failed)?;
    Ok(signature)
}

fn error_text(e: &openssl::error::ErrorStack) -> String {
    e.errors()
        .iter()
        .map(|e| format!("{} {}", e.reason().unwrap_or(""), e.library().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(";")
        .to_ascii_lowercase()
}

fn is_mac_failure(e: &openssl::error::ErrorStack) -> bool {
    let text = error_text(e);
    text.contains("mac verify") || text.contains("mac_verify")
}

fn is_unsupported_algorithm(e: &openssl::error::ErrorStack) -> bool {
    let text = error_text(e);
    text.contains("unsupported") || text.contains("fetch") || text.contains("rc2")
}

/// Loads OpenSSL's legacy provider (next to the default one) once per process.
fn load_legacy_provider() -> bool {
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        let default = openssl::provider::Provider::try_load(None, "default", true);
        let legacy = openssl::provider::Provider::try_load(None, "legacy", true);
        match (default, legacy) {
            (Ok(d), Ok(l)) => {
                // Providers must stay loaded for the life of the process.
                std::mem::forget(d);
                std::mem::forget(l);
                true
            }
            _ => false,
        }
    })
}
