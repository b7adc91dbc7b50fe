//! Checks one CMS SignerInfo: the message digest, the signature value, the signer's
//! certificate and its algorithms. Knows nothing of PDF, trust or revocation.

use cms::cert::CertificateChoices;
use cms::signed_data::{SignerIdentifier, SignerInfo};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use openssl::x509::X509;
use time::OffsetDateTime;

use super::SignatureFacts;
use crate::cms::ParsedSignedData;
use crate::pki::alg::DigestAlgorithm;
use crate::pki::oid;

/// sha1WithRSAEncryption; only recognised to report it as weak.
const SHA1_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
/// md5WithRSAEncryption; only recognised to report it as weak.
const MD5_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.4");
/// ecdsa-with-SHA1; only recognised to report it as weak.
const ECDSA_WITH_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
/// id-sha1; only recognised to report it as weak.
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// id-md5; only recognised to report it as weak.
const MD5: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");

/// A digest algorithm OID as OpenSSL knows it, SHA-1 and MD5 included (to report them).
pub fn message_digest(oid: &ObjectIdentifier) -> Option<MessageDigest> {
    match *oid {
        o if o == oid::SHA256 => Some(MessageDigest::sha256()),
        o if o == oid::SHA384 => Some(MessageDigest::sha384()),
        o if o == oid::SHA512 => Some(MessageDigest::sha512()),
        o if o == SHA1 => Some(MessageDigest::sha1()),
        o if o == MD5 => Some(MessageDigest::md5()),
        _ => None,
    }
}

/// Hashes `parts` in order with `md` (SHA-2 through [`DigestAlgorithm::hasher`], which avoids
/// OpenSSL's per-call algorithm fetch; SHA-1/MD5 through EVP, only to report them as weak).
pub fn hash_parts(md: MessageDigest, parts: &[&[u8]]) -> Option<Vec<u8>> {
    use openssl::nid::Nid;
    let sha2 = match md.type_() {
        Nid::SHA256 => Some(DigestAlgorithm::Sha256),
        Nid::SHA384 => Some(DigestAlgorithm::Sha384),
        Nid::SHA512 => Some(DigestAlgorithm::Sha512),
        _ => None,
    };
    if let Some(alg) = sha2 {
        let mut hasher = alg.hasher();
        for p in parts {
            hasher.update(p);
        }
        return Some(hasher.finish());
    }
    let mut hasher = openssl::hash::Hasher::new(md).ok()?;
    for p in parts {
        hasher.update(p).ok()?;
    }
    hasher.finish().ok().map(|d| d.to_vec())
}

/// Checks signer `index` of `parsed` against the signed content's digest, computed by
/// `content_digest` with the signer's digest algorithm.
pub fn check_signer(
    parsed: &ParsedSignedData,
    index: usize,
    content_digest: &dyn Fn(MessageDigest) -> Option<Vec<u8>>,
) -> SignatureFacts {
    let mut check = SignatureFacts {
        hash_ok: false,
        signature_ok: false,
        certificate: None,
        embedded: embedded_certificates(parsed),
        claimed_time: None,
        weak: Vec::new(),
        timestamp_tokens: Vec::new(),
        format_errors: Vec::new(),
        signature_value: Vec::new(),
    };
    let Some(signer) = parsed.signed_data.signer_infos.0.get(index) else {
        check.format_errors.push("no SignerInfo".into());
        return check;
    };
    check.certificate = find_signer_certificate(signer, &check.embedded);
    check.signature_value = signer.signature.as_bytes().to_vec();
    check.timestamp_tokens = unsigned_values(signer, oid::ATTR_TIME_STAMP_TOKEN);
    let digest_oid = signer.digest_alg.oid;
    let Some(md) = message_digest(&digest_oid) else {
        check
            .format_errors
            .push(format!("unknown digest algorithm {digest_oid}"));
        return check;
    };
    if digest_oid == SHA1 || digest_oid == MD5 {
        check.weak.push(format!(
            "digest algorithm {}",
            if digest_oid == SHA1 { "SHA-1" } else { "MD5" }
        ));
    }
    let Some(content_hash) = content_digest(md) else {
        check
            .format_errors
            .push("signed content cannot be hashed".into());
        return check;
    };
    let to_verify: Vec<u8> = match (&signer.signed_attrs, parsed.raw_signed_attrs.get(index)) {
        (Some(attrs), Some(Some(raw))) => {
            let message_digest = attrs
                .iter()
                .find(|a| a.oid == oid::ATTR_MESSAGE_DIGEST)
                .and_then(|a| a.values.get(0))
                .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok());
            match message_digest {
                Some(d) => check.hash_ok = d.as_bytes() == content_hash.as_slice(),
                None => check
                    .format_errors
                    .push("no message-digest attribute".into()),
            }
            check.claimed_time = attrs
                .iter()
                .find(|a| a.oid == oid::ATTR_SIGNING_TIME)
                .and_then(|a| a.values.get(0))
                .and_then(|v| v.to_der().ok())
                .and_then(|der| x509_cert::time::Time::from_der(&der).ok())
                .and_then(|t| {
                    OffsetDateTime::from_unix_timestamp(t.to_unix_duration().as_secs() as i64).ok()
                });
            raw.clone()
        }
        _ => {
            // No signed attributes: the signature is over the content itself (RFC 5652 §5.4).
            check.hash_ok = true;
            check.format_errors.push("no signed attributes".into());
            Vec::new()
        }
    };
    let Some(cert) = &check.certificate else {
        return check;
    };
    let Ok(key) = cert.public_key() else {
        check
            .format_errors
            .push("signer certificate's public key cannot be read".into());
        return check;
    };
    let sig_oid = signer.signature_algorithm.oid;
    if [SHA1_WITH_RSA, MD5_WITH_RSA, ECDSA_WITH_SHA1].contains(&sig_oid) {
        check.weak.push(format!("signature algorithm {sig_oid}"));
    }
    if !to_verify.is_empty() {
        check.signature_ok =
            verify_signature(&key, signer, md, &to_verify, signer.signature.as_bytes())
                .unwrap_or(false);
    }
    check
}

/// Verifies `signature` over `data` with the algorithm the SignerInfo names.
fn verify_signature(
    key: &PKey<Public>,
    signer: &SignerInfo,
    md: MessageDigest,
    data: &[u8],
    signature: &[u8],
) -> Result<bool, openssl::error::ErrorStack> {
    let oid = signer.signature_algorithm.oid;
    let mut verifier = Verifier::new(md, key)?;
    if oid == oid::RSASSA_PSS {
        verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
        // Salt length is recovered from the signature (RSA_PSS_SALTLEN_AUTO).
        verifier.set_rsa_pss_saltlen(RsaPssSaltlen::custom(-2))?;
        verifier.set_rsa_mgf1_md(md)?;
    } else if key.id() == openssl::pkey::Id::RSA {
        verifier.set_rsa_padding(Padding::PKCS1)?;
    }
    verifier.verify_oneshot(signature, data)
}

fn embedded_certificates(parsed: &ParsedSignedData) -> Vec<X509> {
    let Some(set) = &parsed.signed_data.certificates else {
        return Vec::new();
    };
    set.0
        .iter()
        .filter_map(|c| match c {
            CertificateChoices::Certificate(cert) => cert.to_der().ok(),
            _ => None,
        })
        .filter_map(|der| crate::pki::certs::from_der(&der))
        .collect()
}

fn find_signer_certificate(signer: &SignerInfo, certs: &[X509]) -> Option<X509> {
    certs
        .iter()
        .find(|cert| {
            let Ok(der) = cert.to_der() else { return false };
            let Ok(parsed) = x509_cert::Certificate::from_der(&der) else {
                return false;
            };
            match &signer.sid {
                SignerIdentifier::IssuerAndSerialNumber(ias) => {
                    ias.issuer == parsed.tbs_certificate.issuer
                        && ias.serial_number == parsed.tbs_certificate.serial_number
                }
                SignerIdentifier::SubjectKeyIdentifier(ski) => cert
                    .subject_key_id()
                    .map(|id| id.as_slice() == ski.0.as_bytes())
                    .unwrap_or(false),
            }
        })
        .cloned()
}

fn unsigned_values(signer: &SignerInfo, oid: ObjectIdentifier) -> Vec<Vec<u8>> {
    signer
        .unsigned_attrs
        .iter()
        .flat_map(|attrs| attrs.iter())
        .filter(|a| a.oid == oid)
        .flat_map(|a| a.values.iter())
        .filter_map(|v| v.to_der().ok())
        .collect()
}
