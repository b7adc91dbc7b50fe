//! Checks one CMS SignerInfo: the message digest, the signature value, the signer's
//! certificate and its algorithms. Knows nothing of PDF, trust or revocation.
//!
//! One rule for the signed attributes (RFC 5652 §5.4): the signature is verified over them
//! as received (the `[0]` tag replaced by SET), and only if that fails and their DER
//! re-encoding differs, over that DER (noted in the report). No other encoding is tried.

use const_oid::ObjectIdentifier;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;
use openssl::x509::X509;
use time::OffsetDateTime;

use super::SignatureFacts;
use crate::cms::ber::{self, Fields};
use crate::cms::parse::{AlgorithmId, SignerId, SignerInfo};
use crate::cms::ParsedSignedData;
use crate::pki::oid;

/// A digest algorithm as the verifier computes it (OpenSSL's, XOFs with their length).
#[derive(Clone, Copy)]
pub struct Digest {
    md: MessageDigest,
    /// Output length of an extendable-output function (SHAKE256 in Ed448 signatures).
    xof_len: Option<usize>,
    /// A name when the algorithm is too weak to rely on.
    weak: Option<&'static str>,
}

const fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(s)
}

/// The digest algorithm an OID names, SHA-1 and MD5 included (to report them as weak).
pub fn digest_for(id: &ObjectIdentifier) -> Option<Digest> {
    let (md, xof_len, weak) = match id.to_string().as_str() {
        "1.2.840.113549.2.5" => (MessageDigest::md5(), None, Some("MD5")),
        "1.3.14.3.2.26" => (MessageDigest::sha1(), None, Some("SHA-1")),
        "2.16.840.1.101.3.4.2.4" => (MessageDigest::sha224(), None, None),
        "2.16.840.1.101.3.4.2.1" => (MessageDigest::sha256(), None, None),
        "2.16.840.1.101.3.4.2.2" => (MessageDigest::sha384(), None, None),
        "2.16.840.1.101.3.4.2.3" => (MessageDigest::sha512(), None, None),
        "2.16.840.1.101.3.4.2.7" => (MessageDigest::sha3_224(), None, None),
        "2.16.840.1.101.3.4.2.8" => (MessageDigest::sha3_256(), None, None),
        "2.16.840.1.101.3.4.2.9" => (MessageDigest::sha3_384(), None, None),
        "2.16.840.1.101.3.4.2.10" => (MessageDigest::sha3_512(), None, None),
        // id-shake256 and id-shake256-len with 512 bits (RFC 8419 §2.3).
        "2.16.840.1.101.3.4.2.12" | "2.16.840.1.101.3.4.2.18" => {
            (MessageDigest::shake_256(), Some(64), None)
        }
        _ => return None,
    };
    Some(Digest { md, xof_len, weak })
}

/// Hashes `parts` in order with `digest`.
pub fn hash_parts(digest: Digest, parts: &[&[u8]]) -> Option<Vec<u8>> {
    use crate::pki::alg::DigestAlgorithm;
    use openssl::nid::Nid;
    // SHA-2 through the EVP-free path (see `DigestAlgorithm::hasher`).
    let sha2 = match digest.md.type_() {
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
    let mut hasher = openssl::hash::Hasher::new(digest.md).ok()?;
    for p in parts {
        hasher.update(p).ok()?;
    }
    match digest.xof_len {
        Some(len) => {
            let mut out = vec![0; len];
            hasher.finish_xof(&mut out).ok()?;
            Some(out)
        }
        None => hasher.finish().ok().map(|d| d.to_vec()),
    }
}

/// How a signature value is computed, from the signatureAlgorithm (and for the bare key
/// OIDs some signers put there, from the digest algorithm).
enum Scheme {
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(Digest),
    /// RSASSA-PSS with its parameters (RFC 4055 §3.1).
    RsaPss {
        hash: Digest,
        mgf1: Digest,
        salt: i32,
    },
    /// ECDSA with a DER `ECDSA-Sig-Value`.
    Ecdsa(Digest),
    /// ECDSA with the plain `r ‖ s` value (BSI TR-03111 `ecdsa-plain-*`).
    EcdsaPlain(Digest),
    /// DSA with a DER `Dss-Sig-Value`.
    Dsa(Digest),
    /// Ed25519 or Ed448 (RFC 8419), over the signed attributes themselves.
    EdDsa,
}

/// Why a SignerInfo's signature algorithm cannot be used (the report's "unsupported" text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    /// The algorithm implies a digest this build does not have.
    #[error("digest")]
    Digest,
    /// The signature algorithm is not one signgate verifies.
    #[error("signature algorithm {0} is not supported")]
    Algorithm(String),
    /// SHA-1, the RSASSA-PSS default hash, is unavailable.
    #[error("SHA-1")]
    PssDefaultHash,
    /// The RSASSA-PSS parameters cannot be read.
    #[error("RSASSA-PSS parameters: {0}")]
    PssParameters(ber::BerError),
    /// The PSS hash is not supported.
    #[error("PSS hash {0} not supported")]
    PssHash(String),
    /// The mask generation function is not MGF1.
    #[error("PSS mask generation {0} not supported")]
    PssMask(String),
    /// The MGF1 hash is not supported.
    #[error("MGF1 hash {0} not supported")]
    Mgf1Hash(String),
    /// The salt length is not a small non-negative integer.
    #[error("PSS salt length")]
    PssSalt,
    /// The trailer field is not 1 (RFC 4055 §3.1).
    #[error("PSS trailer field other than 1")]
    PssTrailer,
    /// A field RSASSA-PSS-params does not define.
    #[error("unknown RSASSA-PSS parameter")]
    PssUnknownField,
}

impl Scheme {
    fn from(alg: &AlgorithmId, digest: Digest) -> Result<Self, SchemeError> {
        let sha = |o: &str| digest_for(&oid(o)).ok_or(SchemeError::Digest);
        Ok(match alg.oid.to_string().as_str() {
            // rsaEncryption: PKCS#1 v1.5 with the SignerInfo's digest (RFC 3370 §3.2).
            "1.2.840.113549.1.1.1" => Self::RsaPkcs1(digest),
            "1.2.840.113549.1.1.4" => Self::RsaPkcs1(sha("1.2.840.113549.2.5")?),
            "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => Self::RsaPkcs1(sha("1.3.14.3.2.26")?),
            "1.2.840.113549.1.1.14" => Self::RsaPkcs1(sha("2.16.840.1.101.3.4.2.4")?),
            "1.2.840.113549.1.1.11" => Self::RsaPkcs1(sha("2.16.840.1.101.3.4.2.1")?),
            "1.2.840.113549.1.1.12" => Self::RsaPkcs1(sha("2.16.840.1.101.3.4.2.2")?),
            "1.2.840.113549.1.1.13" => Self::RsaPkcs1(sha("2.16.840.1.101.3.4.2.3")?),
            "2.16.840.1.101.3.4.3.13" => Self::RsaPkcs1(sha("2.16.840.1.101.3.4.2.7")?),
            "2.16.840.1.101.3.4.3.14" => Self::RsaPkcs1(sha("2.16.840.1.101.3.4.2.8")?),
            "2.16.840.1.101.3.4.3.15" => Self::RsaPkcs1(sha("2.16.840.1.101.3.4.2.9")?),
            "2.16.840.1.101.3.4.3.16" => Self::RsaPkcs1(sha("2.16.840.1.101.3.4.2.10")?),
            "1.2.840.113549.1.1.10" => pss_params(alg.params.as_deref())?,
            "1.2.840.10045.2.1" => Self::Ecdsa(digest),
            "1.2.840.10045.4.1" => Self::Ecdsa(sha("1.3.14.3.2.26")?),
            "1.2.840.10045.4.3.1" => Self::Ecdsa(sha("2.16.840.1.101.3.4.2.4")?),
            "1.2.840.10045.4.3.2" => Self::Ecdsa(sha("2.16.840.1.101.3.4.2.1")?),
            "1.2.840.10045.4.3.3" => Self::Ecdsa(sha("2.16.840.1.101.3.4.2.2")?),
            "1.2.840.10045.4.3.4" => Self::Ecdsa(sha("2.16.840.1.101.3.4.2.3")?),
            "2.16.840.1.101.3.4.3.9" => Self::Ecdsa(sha("2.16.840.1.101.3.4.2.7")?),
            "2.16.840.1.101.3.4.3.10" => Self::Ecdsa(sha("2.16.840.1.101.3.4.2.8")?),
            "2.16.840.1.101.3.4.3.11" => Self::Ecdsa(sha("2.16.840.1.101.3.4.2.9")?),
            "2.16.840.1.101.3.4.3.12" => Self::Ecdsa(sha("2.16.840.1.101.3.4.2.10")?),
            // BSI TR-03111 ecdsa-plain-SHA1/224/256/384/512 and -SHA3-224/256/384/512.
            "0.4.0.127.0.7.1.1.4.1.1" => Self::EcdsaPlain(sha("1.3.14.3.2.26")?),
            "0.4.0.127.0.7.1.1.4.1.2" => Self::EcdsaPlain(sha("2.16.840.1.101.3.4.2.4")?),
            "0.4.0.127.0.7.1.1.4.1.3" => Self::EcdsaPlain(sha("2.16.840.1.101.3.4.2.1")?),
            "0.4.0.127.0.7.1.1.4.1.4" => Self::EcdsaPlain(sha("2.16.840.1.101.3.4.2.2")?),
            "0.4.0.127.0.7.1.1.4.1.5" => Self::EcdsaPlain(sha("2.16.840.1.101.3.4.2.3")?),
            "0.4.0.127.0.7.1.1.4.1.8" => Self::EcdsaPlain(sha("2.16.840.1.101.3.4.2.7")?),
            "0.4.0.127.0.7.1.1.4.1.9" => Self::EcdsaPlain(sha("2.16.840.1.101.3.4.2.8")?),
            "0.4.0.127.0.7.1.1.4.1.10" => Self::EcdsaPlain(sha("2.16.840.1.101.3.4.2.9")?),
            "0.4.0.127.0.7.1.1.4.1.11" => Self::EcdsaPlain(sha("2.16.840.1.101.3.4.2.10")?),
            "1.2.840.10040.4.1" => Self::Dsa(digest),
            "1.2.840.10040.4.3" => Self::Dsa(sha("1.3.14.3.2.26")?),
            "2.16.840.1.101.3.4.3.1" => Self::Dsa(sha("2.16.840.1.101.3.4.2.4")?),
            "2.16.840.1.101.3.4.3.2" => Self::Dsa(sha("2.16.840.1.101.3.4.2.1")?),
            "1.3.101.112" | "1.3.101.113" => Self::EdDsa,
            other => return Err(SchemeError::Algorithm(other.to_string())),
        })
    }

    /// The digest the value is computed over (none for EdDSA, which signs the message).
    fn digest(&self) -> Option<Digest> {
        match self {
            Self::RsaPkcs1(d) | Self::Ecdsa(d) | Self::EcdsaPlain(d) | Self::Dsa(d) => Some(*d),
            Self::RsaPss { hash, .. } => Some(*hash),
            Self::EdDsa => None,
        }
    }

    /// Verifies `signature` over data whose `digest()` hash is `hash`.
    fn verify_prehashed(
        &self,
        key: &PKey<Public>,
        hash: &[u8],
        signature: &[u8],
    ) -> Result<bool, openssl::error::ErrorStack> {
        let mut ctx = PkeyCtx::new(key)?;
        ctx.verify_init()?;
        let value;
        let signature = match self {
            Self::RsaPkcs1(d) => {
                ctx.set_rsa_padding(Padding::PKCS1)?;
                ctx.set_signature_md(d.md_ref())?;
                signature
            }
            Self::RsaPss { hash, mgf1, salt } => {
                ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
                ctx.set_signature_md(hash.md_ref())?;
                ctx.set_rsa_mgf1_md(mgf1.md_ref())?;
                ctx.set_rsa_pss_saltlen(RsaPssSaltlen::custom(*salt))?;
                signature
            }
            Self::Ecdsa(d) | Self::Dsa(d) => {
                ctx.set_signature_md(d.md_ref())?;
                signature
            }
            Self::EcdsaPlain(d) => {
                ctx.set_signature_md(d.md_ref())?;
                let Some(der) = plain_to_der(signature) else {
                    return Ok(false);
                };
                value = der;
                &value
            }
            Self::EdDsa => return Ok(false),
        };
        Ok(ctx.verify(hash, signature).unwrap_or(false))
    }
}

impl Digest {
    fn md_ref(self) -> &'static openssl::md::MdRef {
        use openssl::md::Md;
        use openssl::nid::Nid;
        match self.md.type_() {
            Nid::MD5 => Md::md5(),
            Nid::SHA1 => Md::sha1(),
            Nid::SHA224 => Md::sha224(),
            Nid::SHA384 => Md::sha384(),
            Nid::SHA512 => Md::sha512(),
            Nid::SHA3_224 => Md::sha3_224(),
            Nid::SHA3_256 => Md::sha3_256(),
            Nid::SHA3_384 => Md::sha3_384(),
            Nid::SHA3_512 => Md::sha3_512(),
            _ => Md::sha256(),
        }
    }
}

/// RSASSA-PSS-params (RFC 4055 §3.1) with their SHA-1 / MGF1-SHA-1 / 20 defaults.
fn pss_params(params: Option<&[u8]>) -> Result<Scheme, SchemeError> {
    let sha1 = digest_for(&oid("1.3.14.3.2.26")).ok_or(SchemeError::PssDefaultHash)?;
    let (mut hash, mut mgf1, mut salt) = (sha1, sha1, 20i32);
    let bad = SchemeError::PssParameters;
    if let Some(params) = params {
        let seq = ber::read_one(params).map_err(bad)?;
        for field in seq.children().map_err(bad)? {
            let inner = Fields::of(&field)
                .and_then(|mut f| f.any("value"))
                .map_err(bad)?;
            match field.tag {
                0xA0 => {
                    let alg = crate::cms::parse::algorithm(&inner).map_err(bad)?;
                    hash = digest_for(&alg.oid)
                        .ok_or_else(|| SchemeError::PssHash(alg.oid.to_string()))?;
                }
                0xA1 => {
                    let alg = crate::cms::parse::algorithm(&inner).map_err(bad)?;
                    if alg.oid != oid::MGF1 {
                        return Err(SchemeError::PssMask(alg.oid.to_string()));
                    }
                    let mgf_hash = alg
                        .params
                        .as_deref()
                        .map(|p| {
                            ber::read_one(p)
                                .map_err(bad)
                                .and_then(|t| crate::cms::parse::algorithm(&t).map_err(bad))
                        })
                        .transpose()?;
                    mgf1 = match mgf_hash {
                        Some(a) => digest_for(&a.oid)
                            .ok_or_else(|| SchemeError::Mgf1Hash(a.oid.to_string()))?,
                        None => sha1,
                    };
                }
                0xA2 => {
                    salt = ber::small_uint(&inner)
                        .ok()
                        .and_then(|v| i32::try_from(v).ok())
                        .ok_or(SchemeError::PssSalt)?;
                }
                0xA3 => {
                    if ber::small_uint(&inner) != Ok(1) {
                        return Err(SchemeError::PssTrailer);
                    }
                }
                _ => return Err(SchemeError::PssUnknownField),
            }
        }
    }
    Ok(Scheme::RsaPss { hash, mgf1, salt })
}

/// `r ‖ s` (two equal halves) as a DER `ECDSA-Sig-Value`.
fn plain_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let sig = openssl::ecdsa::EcdsaSig::from_private_components(
        openssl::bn::BigNum::from_slice(r).ok()?,
        openssl::bn::BigNum::from_slice(s).ok()?,
    )
    .ok()?;
    sig.to_der().ok()
}

/// What the signed content is, for a SignerInfo to check its digest against.
pub trait SignedContent {
    /// The digest of the content with `digest`.
    fn digest(&self, digest: Digest) -> Option<Vec<u8>>;
    /// The content itself, when the caller has it in one piece (EdDSA without signed
    /// attributes signs the message, not a digest).
    fn bytes(&self) -> Option<Vec<u8>> {
        None
    }
}

/// Content given as byte slices in order (a PDF's byte ranges, a CMS eContent).
pub struct Parts<'a>(pub &'a [&'a [u8]]);

impl SignedContent for Parts<'_> {
    fn digest(&self, digest: Digest) -> Option<Vec<u8>> {
        hash_parts(digest, self.0)
    }
    fn bytes(&self) -> Option<Vec<u8>> {
        Some(self.0.concat())
    }
}

/// Checks `signer` (a SignerInfo of `parsed`, or a counter-signature in it) against the
/// signed content. `extra` are certificates from outside the SignedData where the signer's
/// may be (a PDF's DSS, trust anchors).
pub fn check_signer(
    parsed: &ParsedSignedData,
    signer: &SignerInfo,
    content: &dyn SignedContent,
    extra: &[X509],
) -> SignatureFacts {
    let mut check = SignatureFacts {
        hash_ok: false,
        signature_ok: false,
        certificate: None,
        embedded: embedded_certificates(parsed),
        claimed_time: None,
        weak: Vec::new(),
        timestamp_tokens: signer.unsigned_values(oid::ATTR_TIME_STAMP_TOKEN),
        format_errors: Vec::new(),
        notes: Vec::new(),
        unsupported: None,
        verified_with_bare_key: false,
        signature_value: signer.signature.clone(),
    };
    check.certificate = find_signer_certificate(&signer.sid, &check.embedded)
        .or_else(|| find_signer_certificate(&signer.sid, extra));
    let Some(digest) = digest_for(&signer.digest_alg.oid) else {
        check.unsupported = Some(format!(
            "digest algorithm {} is not supported",
            signer.digest_alg.oid
        ));
        return check;
    };
    if let Some(name) = digest.weak {
        check.weak.push(format!("digest algorithm {name}"));
    }
    let scheme = match Scheme::from(&signer.signature_alg, digest) {
        Ok(s) => s,
        Err(why) => {
            check.unsupported = Some(why.to_string());
            return check;
        }
    };
    if let Some(name) = scheme.digest().and_then(|d| d.weak) {
        if digest.weak.is_none() {
            check.weak.push(format!("signature digest {name}"));
        }
    }
    let key = check.certificate.as_ref().map(|c| c.public_key());
    // RFC 8419 §3: Ed25519 with SHA-512, Ed448 with SHAKE256 as the message digest.
    if matches!(scheme, Scheme::EdDsa) {
        let required = match key.as_ref().and_then(|k| k.as_ref().ok()).map(|k| k.id()) {
            Some(Id::ED25519) => Some(openssl::nid::Nid::SHA512),
            Some(Id::ED448) => Some(openssl::nid::Nid::SHAKE256),
            _ => None,
        };
        if required.is_some_and(|nid| nid != digest.md.type_()) {
            check.weak.push(format!(
                "digest algorithm {} with EdDSA (RFC 8419 requires another)",
                signer.digest_alg.oid
            ));
        }
    }
    match &signer.signed_attrs {
        Some(attrs) => {
            let Some(content_hash) = content.digest(digest) else {
                check.unsupported = Some("the signed content cannot be hashed".into());
                return check;
            };
            match attrs
                .value(oid::ATTR_MESSAGE_DIGEST)
                .and_then(|v| ber::read_one(v).ok())
                .and_then(|t| t.octets().ok().map(|o| o.into_owned()))
            {
                Some(d) => check.hash_ok = d == content_hash,
                None => check
                    .format_errors
                    .push("no message-digest attribute".into()),
            }
            if attrs.count(oid::ATTR_MESSAGE_DIGEST) > 1 || attrs.count(oid::ATTR_SIGNING_TIME) > 1
            {
                check
                    .format_errors
                    .push("a signed attribute that must be single occurs twice".into());
            }
            check.claimed_time = signing_time(signer);
            let Some(Ok(key)) = key else {
                return check;
            };
            let verify = |data: &[u8]| -> bool {
                match scheme.digest() {
                    Some(d) => hash_parts(d, &[data])
                        .map(|h| {
                            scheme
                                .verify_prehashed(&key, &h, &signer.signature)
                                .unwrap_or(false)
                        })
                        .unwrap_or(false),
                    None => verify_eddsa(&key, data, &signer.signature),
                }
            };
            check.signature_ok = verify(&attrs.as_received);
            if !check.signature_ok {
                if let Some(der) = attrs.der() {
                    if verify(&der) {
                        check.signature_ok = true;
                        check.notes.push(
                            "the signed attributes are not DER-encoded as received; the signature verifies over their DER re-encoding".into(),
                        );
                    }
                }
            }
        }
        None => {
            // No signed attributes: the signature is over the content itself (RFC 5652 §5.4).
            let Some(Ok(key)) = key else {
                return check;
            };
            let ok = match scheme.digest() {
                Some(d) => content
                    .digest(d)
                    .map(|h| {
                        scheme
                            .verify_prehashed(&key, &h, &signer.signature)
                            .unwrap_or(false)
                    })
                    .unwrap_or(false),
                None => match content.bytes() {
                    Some(data) => verify_eddsa(&key, &data, &signer.signature),
                    None => {
                        check.unsupported =
                            Some("EdDSA over content given only by its digest".into());
                        return check;
                    }
                },
            };
            // Without signed attributes the signature value is the only integrity check:
            // a mismatch cannot tell a changed content from a wrong value.
            check.hash_ok = ok;
            check.signature_ok = ok;
            check
                .notes
                .push("no signed attributes: the signature is over the content digest".into());
        }
    }
    check
}

fn verify_eddsa(key: &PKey<Public>, data: &[u8], signature: &[u8]) -> bool {
    openssl::sign::Verifier::new_without_digest(key)
        .and_then(|mut v| v.verify_oneshot(signature, data))
        .unwrap_or(false)
}

fn embedded_certificates(parsed: &ParsedSignedData) -> Vec<X509> {
    parsed
        .certificates
        .iter()
        .filter_map(|der| crate::pki::certs::from_der(der))
        .collect()
}

/// The certificate `sid` names among `certs`.
pub fn find_signer_certificate(sid: &SignerId, certs: &[X509]) -> Option<X509> {
    certs.iter().find(|cert| matches_sid(sid, cert)).cloned()
}

fn matches_sid(sid: &SignerId, cert: &X509) -> bool {
    match sid {
        SignerId::IssuerSerial { issuer, serial } => {
            let same_serial = cert
                .serial_number()
                .to_bn()
                .is_ok_and(|bn| signed_magnitude(serial) == (bn.is_negative(), bn.to_vec()));
            if !same_serial {
                return false;
            }
            let issued_by = cert.issuer_name();
            if issued_by.to_der().is_ok_and(|d| &d == issuer) {
                return true;
            }
            openssl::x509::X509Name::from_der(issuer)
                .ok()
                .and_then(|name| name.try_cmp(issued_by).ok())
                .is_some_and(|o| o == std::cmp::Ordering::Equal)
        }
        SignerId::SubjectKeyId(ski) => cert
            .subject_key_id()
            .is_some_and(|id| id.as_slice() == ski.as_slice()),
    }
}

/// An INTEGER's content octets (two's complement) as (negative, magnitude without leading
/// zeros): serial numbers of some issuers are negative.
fn signed_magnitude(content: &[u8]) -> (bool, Vec<u8>) {
    let negative = content.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude = content.to_vec();
    if negative {
        // Two's complement: invert and add one.
        for b in magnitude.iter_mut() {
            *b = !*b;
        }
        for b in magnitude.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    (negative, magnitude.split_off(skip))
}

/// The claimed signing time of a SignerInfo's signed attributes.
pub fn signing_time(signer: &SignerInfo) -> Option<OffsetDateTime> {
    signer
        .signed_attrs
        .as_ref()?
        .value(oid::ATTR_SIGNING_TIME)
        .and_then(|v| ber::read_one(v).ok())
        .and_then(|t| ber::time(&t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ecdsa_values_convert_to_der() {
        let der = plain_to_der(&[[0u8; 31].as_slice(), &[1], &[0x80; 32]].concat()).unwrap();
        let sig = openssl::ecdsa::EcdsaSig::from_der(&der).unwrap();
        assert_eq!(sig.r().to_vec(), [1]);
        assert_eq!(sig.s().to_vec(), [0x80; 32]);
        assert!(plain_to_der(&[1, 2, 3]).is_none());
    }

    #[test]
    fn negative_serials_compare_by_sign_and_magnitude() {
        assert_eq!(signed_magnitude(&[0x00, 0x80]), (false, vec![0x80]));
        assert_eq!(signed_magnitude(&[0xff, 0x7f]), (true, vec![0x81]));
        assert_eq!(signed_magnitude(&[0x80]), (true, vec![0x80]));
    }

    #[test]
    fn pss_defaults_are_sha1_and_20() {
        let Scheme::RsaPss { hash, mgf1, salt } = pss_params(None).unwrap() else {
            panic!("not PSS")
        };
        assert_eq!(hash.md.type_(), openssl::nid::Nid::SHA1);
        assert_eq!(mgf1.md.type_(), openssl::nid::Nid::SHA1);
        assert_eq!(salt, 20);
    }
}
