//! Parsing DER certificates into OpenSSL objects, with a bounded process-wide cache.
//!
//! OpenSSL 3 decodes a certificate through its provider framework (tens of microseconds and
//! several lock round trips); a gateway sees the same CA and signer certificates in document
//! after document, so decoded certificates are kept by their SHA-256 and shared (OpenSSL
//! `X509` values are reference counted and immutable once parsed).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use openssl::x509::X509;

/// Certificates kept before the cache is emptied and starts again.
const CAPACITY: usize = 4096;

fn cache() -> &'static Mutex<HashMap<[u8; 32], X509>> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], X509>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Parses one DER certificate, reusing an earlier parse of the same bytes.
pub fn from_der(der: &[u8]) -> Option<X509> {
    let key = openssl::sha::sha256(der);
    if let Some(hit) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Some(hit);
    }
    let cert = X509::from_der(der).ok()?;
    if let Ok(mut c) = cache().lock() {
        if c.len() >= CAPACITY {
            c.clear();
        }
        c.insert(key, cert.clone());
    }
    Some(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_give_the_same_certificate_and_junk_gives_none() {
        let pem = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/certs/demo/root-ca.pem"
        ))
        .unwrap();
        let der = X509::from_pem(&pem).unwrap().to_der().unwrap();
        let a = from_der(&der).unwrap();
        let b = from_der(&der).unwrap();
        assert_eq!(a.to_der().unwrap(), b.to_der().unwrap());
        assert!(from_der(b"not a certificate").is_none());
    }
}
