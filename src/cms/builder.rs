//! `SignedDataBuilder`: one signer, external message digest, chosen signed attributes.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos, UnsignedAttributes,
};
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec, UtcTime};
use std::sync::Arc;

use der::{Any, Decode, Encode};
use time::OffsetDateTime;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::time::Time;
use x509_cert::Certificate;

use super::attributes::{EssCertIdV2, IssuerSerial, SigningCertificateV2};
use super::CmsError;
use crate::keys::KeySource;
use crate::pki::alg::{DigestAlgorithm, SignatureScheme};
use crate::pki::oid;

/// Builds a CMS SignedData with one SignerInfo over an externally computed content digest.
///
/// PAdES uses it detached without signing-time; `.p7s` output adds signing-time; the TSA
/// encapsulates a `TSTInfo`. Every variant carries content-type, message-digest and
/// signing-certificate-v2 (CAdES baseline, ETSI EN 319 122-1 §5.2).
pub struct SignedDataBuilder<'a> {
    key: &'a dyn KeySource,
    scheme: SignatureScheme,
    content_type: ObjectIdentifier,
    encapsulated: Option<Vec<u8>>,
    message_digest: Vec<u8>,
    signing_time: Option<OffsetDateTime>,
    extra_signed: Vec<Attribute>,
    include_chain: bool,
    template: Option<&'a SignerTemplate>,
}

/// The parts of a SignerInfo that depend only on the key and the digest: the certificates in
/// RustCrypto form and the signing-certificate-v2 attribute. Parsed once per key and reused
/// by every signature of a batch ([`SignedDataBuilder::with_template`]).
#[derive(Debug, Clone)]
pub struct SignerTemplate {
    digest: DigestAlgorithm,
    signer_cert: Certificate,
    /// The SignedData's `certificates [0] IMPLICIT CertificateSet` field, DER-encoded once (in
    /// DER SET OF order): each signature copies these bytes instead of cloning and
    /// re-encoding the certificates.
    certificates_der: Arc<[u8]>,
    signing_certificate: Attribute,
}

impl SignerTemplate {
    /// Converts `key`'s certificate (and its chain when `include_chain`) once.
    pub fn new(
        key: &dyn KeySource,
        digest: DigestAlgorithm,
        include_chain: bool,
    ) -> Result<Self, CmsError> {
        let signer_cert = to_rust_cert(key.certificate())?;
        let mut certificates = vec![CertificateChoices::Certificate(signer_cert.clone())];
        if include_chain {
            for c in key.chain() {
                certificates.push(CertificateChoices::Certificate(to_rust_cert(c)?));
            }
        }
        let signing_certificate = attribute(
            oid::ATTR_SIGNING_CERTIFICATE_V2,
            &signing_certificate_v2(&signer_cert, digest)?,
        )?;
        Ok(Self {
            digest,
            signer_cert,
            certificates_der: certificate_set_der(&CertificateSet(SetOfVec::try_from(
                certificates,
            )?))?
            .into(),
            signing_certificate,
        })
    }
}

impl<'a> SignedDataBuilder<'a> {
    /// Starts a detached `id-data` signature over content whose digest is `message_digest`.
    pub fn new(key: &'a dyn KeySource, scheme: SignatureScheme, message_digest: Vec<u8>) -> Self {
        Self {
            key,
            scheme,
            content_type: oid::DATA,
            encapsulated: None,
            message_digest,
            signing_time: None,
            extra_signed: Vec::new(),
            include_chain: true,
            template: None,
        }
    }

    /// Uses certificates already converted by [`SignerTemplate::new`] (which then also decides
    /// whether the chain is embedded); its digest must be the scheme's.
    pub fn with_template(mut self, template: &'a SignerTemplate) -> Self {
        self.template = Some(template);
        self
    }

    /// Encapsulates `content` of type `content_type` (e.g. a TSTInfo) instead of detaching it.
    /// The digest is computed here.
    pub fn with_encapsulated(mut self, content_type: ObjectIdentifier, content: Vec<u8>) -> Self {
        self.message_digest = self.scheme.digest().digest(&content);
        self.content_type = content_type;
        self.encapsulated = Some(content);
        self
    }

    /// Adds the signing-time signed attribute (not for PAdES, which forbids it).
    pub fn with_signing_time(mut self, at: OffsetDateTime) -> Self {
        self.signing_time = Some(at);
        self
    }

    /// Adds another signed attribute.
    pub fn with_signed_attribute(mut self, attribute: Attribute) -> Self {
        self.extra_signed.push(attribute);
        self
    }

    /// Whether to embed the intermediate certificates (default yes).
    pub fn with_chain(mut self, include: bool) -> Self {
        self.include_chain = include;
        self
    }

    /// Signs and returns the signature, which may still take unsigned attributes.
    pub fn sign(self) -> Result<PendingSignature, CmsError> {
        let owned;
        let template = match self.template {
            Some(t) if t.digest == self.scheme.digest() => t,
            _ => {
                owned = SignerTemplate::new(self.key, self.scheme.digest(), self.include_chain)?;
                &owned
            }
        };
        let signed_attrs = self.signed_attributes(template)?;
        // The signature covers the DER of the SET OF, tagged as SET (RFC 5652 §5.4).
        let signature = self
            .key
            .sign_message(self.scheme, &signed_attrs.to_der()?)?;
        self.assemble(template, signed_attrs, signature)
    }

    /// An upper bound of the DER length of [`Self::sign`]'s result before any unsigned
    /// attribute, without a key operation: the signature is stood in for by its maximum
    /// length for the certificate's key. Sizes a PDF's `/Contents` hole exactly.
    pub fn encoded_len_bound(self) -> Result<usize, CmsError> {
        let max_signature = self
            .key
            .certificate()
            .public_key()
            .map(|k| k.size())
            .map_err(|e| CmsError::Certificate(e.to_string()))?;
        let template = SignerTemplate::new(self.key, self.scheme.digest(), self.include_chain)?;
        let signed_attrs = self.signed_attributes(&template)?;
        let pending = self.assemble(&template, signed_attrs, vec![0xff; max_signature])?;
        pending.to_der().map(|der| der.len())
    }

    fn signed_attributes(&self, template: &SignerTemplate) -> Result<SignedAttributes, CmsError> {
        let digest_alg = self.scheme.digest();
        if self.message_digest.len() != digest_alg.output_len() {
            return Err(CmsError::DigestLength {
                got: self.message_digest.len(),
                expected: digest_alg.output_len(),
            });
        }
        let mut attrs = vec![
            attribute(oid::ATTR_CONTENT_TYPE, &self.content_type)?,
            attribute(
                oid::ATTR_MESSAGE_DIGEST,
                &OctetString::new(self.message_digest.clone())?,
            )?,
            template.signing_certificate.clone(),
        ];
        if let Some(at) = self.signing_time {
            attrs.push(attribute(oid::ATTR_SIGNING_TIME, &cms_time(at)?)?);
        }
        attrs.extend(self.extra_signed.iter().cloned());
        Ok(SetOfVec::try_from(attrs)?)
    }

    fn assemble(
        self,
        template: &SignerTemplate,
        signed_attrs: SignedAttributes,
        signature: Vec<u8>,
    ) -> Result<PendingSignature, CmsError> {
        let digest_alg = self.scheme.digest();
        let signer_cert = &template.signer_cert;
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: signer_cert.tbs_certificate.issuer.clone(),
                serial_number: signer_cert.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: digest_alg.identifier(),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: self.scheme.identifier(),
            signature: OctetString::new(signature)?,
            unsigned_attrs: None,
        };
        let econtent = match self.encapsulated {
            Some(content) => Some(Any::encode_from(&OctetString::new(content)?)?),
            None => None,
        };
        let version = if self.content_type == oid::DATA {
            CmsVersion::V1
        } else {
            CmsVersion::V3
        };
        let signed_data = SignedData {
            version,
            digest_algorithms: SetOfVec::try_from(vec![digest_alg.identifier()])?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: self.content_type,
                econtent,
            },
            // Spliced in by `PendingSignature::to_der` from the template's encoding.
            certificates: None,
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
        };
        Ok(PendingSignature {
            signed_data,
            certificates_der: template.certificates_der.clone(),
        })
    }
}

/// A finished signature that may still receive unsigned attributes (e.g. a time-stamp token).
#[derive(Debug, Clone)]
pub struct PendingSignature {
    /// Everything but the certificates (`certificates` is none).
    signed_data: SignedData,
    /// The DER of the `certificates` field ([`SignerTemplate`]).
    certificates_der: Arc<[u8]>,
}

impl PendingSignature {
    fn signer(&self) -> &SignerInfo {
        self.signed_data
            .signer_infos
            .0
            .get(0)
            .expect("builder makes exactly one SignerInfo")
    }

    /// The SignerInfo's signature value: what an RFC 3161 signature time-stamp imprints.
    pub fn signature_value(&self) -> &[u8] {
        self.signer().signature.as_bytes()
    }

    /// The digest algorithm of the signer.
    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        DigestAlgorithm::from_oid(&self.signer().digest_alg.oid).unwrap_or_default()
    }

    /// Adds an unsigned attribute to the signer.
    pub fn add_unsigned_attribute(&mut self, attr: Attribute) -> Result<(), CmsError> {
        let mut signer = self.signer().clone();
        let mut unsigned = signer
            .unsigned_attrs
            .take()
            .map(|s| s.into_vec())
            .unwrap_or_default();
        unsigned.push(attr);
        signer.unsigned_attrs = Some(UnsignedAttributes::try_from(unsigned)?);
        self.signed_data.signer_infos = SignerInfos(SetOfVec::try_from(vec![signer])?);
        Ok(())
    }

    /// Adds an RFC 3161 time-stamp token (a DER ContentInfo) as the signature time-stamp
    /// (id-aa-timeStampToken, RFC 3161 Appendix A).
    pub fn add_timestamp_token(&mut self, token_der: &[u8]) -> Result<(), CmsError> {
        let token = ContentInfo::from_der(token_der)?;
        self.add_unsigned_attribute(attribute(oid::ATTR_TIME_STAMP_TOKEN, &token)?)
    }

    /// The DER `ContentInfo` wrapping the SignedData. The SignedData's fields are encoded
    /// in their ASN.1 order (RFC 5652 §5.1) with the certificates copied from their encoding
    /// made once per key; the result is the DER of the whole structure.
    pub fn to_der(&self) -> Result<Vec<u8>, CmsError> {
        let sd = &self.signed_data;
        let mut body = Vec::with_capacity(self.certificates_der.len() + 1024);
        sd.version.encode_to_vec(&mut body)?;
        sd.digest_algorithms.encode_to_vec(&mut body)?;
        sd.encap_content_info.encode_to_vec(&mut body)?;
        body.extend_from_slice(&self.certificates_der);
        sd.signer_infos.encode_to_vec(&mut body)?;
        let signed_data = der_tlv(0x30, &body)?;
        // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
        let mut info = oid::SIGNED_DATA.to_der()?;
        info.extend_from_slice(&der_tlv(0xa0, &signed_data)?);
        der_tlv(0x30, &info)
    }
}

/// The DER of `certificates` as SignedData's `certificates [0] IMPLICIT` field.
fn certificate_set_der(certificates: &CertificateSet) -> Result<Vec<u8>, CmsError> {
    let mut content = Vec::new();
    for c in certificates.0.iter() {
        c.encode_to_vec(&mut content)?;
    }
    der_tlv(0xa0, &content)
}

/// One DER element: the one-byte `tag`, the definite length, `content`.
fn der_tlv(tag: u8, content: &[u8]) -> Result<Vec<u8>, CmsError> {
    let length = der::Length::try_from(content.len())?;
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    length.encode_to_vec(&mut out)?;
    out.extend_from_slice(content);
    Ok(out)
}

/// Makes a single-valued attribute.
pub(crate) fn attribute(oid: ObjectIdentifier, value: &impl Encode) -> Result<Attribute, CmsError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![Any::from_der(&value.to_der()?)?])?,
    })
}

/// Converts an OpenSSL certificate to the RustCrypto type through DER.
pub(crate) fn to_rust_cert(cert: &openssl::x509::X509Ref) -> Result<Certificate, CmsError> {
    let der = cert
        .to_der()
        .map_err(|e| CmsError::Certificate(e.to_string()))?;
    Certificate::from_der(&der).map_err(|e| CmsError::Certificate(e.to_string()))
}

/// CMS `Time`: UTCTime through 2049, GeneralizedTime after (RFC 5652 §11.3).
fn cms_time(at: OffsetDateTime) -> Result<Time, CmsError> {
    let secs = u64::try_from(at.unix_timestamp())
        .map_err(|_| CmsError::Der(der::ErrorKind::DateTime.into()))?;
    let duration = std::time::Duration::from_secs(secs);
    Ok(match UtcTime::from_unix_duration(duration) {
        Ok(t) => Time::UtcTime(t),
        Err(_) => Time::GeneralTime(der::asn1::GeneralizedTime::from_unix_duration(duration)?),
    })
}

fn signing_certificate_v2(
    cert: &Certificate,
    digest: DigestAlgorithm,
) -> Result<SigningCertificateV2, CmsError> {
    let der = cert.to_der()?;
    Ok(SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            hash_algorithm: (digest != DigestAlgorithm::Sha256).then(|| digest.identifier()),
            cert_hash: OctetString::new(digest.digest(&der))?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(
                    cert.tbs_certificate.issuer.clone(),
                )],
                serial_number: cert.tbs_certificate.serial_number.clone(),
            }),
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Pkcs12Key;

    fn demo_key(file: &str) -> Pkcs12Key {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("certs/demo")
            .join(file);
        Pkcs12Key::open(&path, "demo").expect("demo key opens")
    }

    /// The bound sizes PDF `/Contents` holes: a real signature must never exceed it, and for
    /// RSA (fixed-length signatures) it is exact. The template gives the same bytes as the
    /// builder converting the certificates itself.
    #[test]
    fn encoded_len_bound_holds_and_template_matches() {
        for (file, exact) in [("agency-signer.p12", true), ("agency-signer-ec.p12", false)] {
            let key = demo_key(file);
            let scheme = SignatureScheme::for_key(
                key.algorithm(),
                DigestAlgorithm::Sha256,
                crate::pki::alg::RsaPadding::Pkcs1,
            );
            let digest = vec![7; 32];
            let bound = SignedDataBuilder::new(&key, scheme, digest.clone())
                .encoded_len_bound()
                .unwrap();
            let template = SignerTemplate::new(&key, DigestAlgorithm::Sha256, true).unwrap();
            for _ in 0..20 {
                let plain = SignedDataBuilder::new(&key, scheme, digest.clone())
                    .sign()
                    .unwrap()
                    .to_der()
                    .unwrap();
                let templated = SignedDataBuilder::new(&key, scheme, digest.clone())
                    .with_template(&template)
                    .sign()
                    .unwrap()
                    .to_der()
                    .unwrap();
                assert!(plain.len() <= bound, "{file}: {} > {bound}", plain.len());
                if exact {
                    assert_eq!(plain.len(), bound, "{file}");
                    // PKCS#1 v1.5 is deterministic: the same input signs to the same bytes.
                    assert_eq!(plain, templated, "{file}");
                } else {
                    assert!(
                        templated.len() <= bound,
                        "{file}: {} > {bound}",
                        templated.len()
                    );
                }
            }
        }
    }

    /// `to_der` splices the certificates' encoding made once per key; the bytes must be the
    /// der crate's encoding of the whole ContentInfo with the certificates in place, with
    /// and without the chain, and with an unsigned attribute large enough for long lengths.
    #[test]
    fn spliced_encoding_is_the_whole_structures_der() {
        let key = demo_key("agency-signer.p12");
        let scheme = SignatureScheme::for_key(
            key.algorithm(),
            DigestAlgorithm::Sha256,
            crate::pki::alg::RsaPadding::Pkcs1,
        );
        for chain in [true, false] {
            let mut pending = SignedDataBuilder::new(&key, scheme, vec![9; 32])
                .with_chain(chain)
                .sign()
                .unwrap();
            for round in 0..2 {
                let mut certificates = vec![CertificateChoices::Certificate(
                    to_rust_cert(key.certificate()).unwrap(),
                )];
                if chain {
                    for c in key.chain() {
                        certificates
                            .push(CertificateChoices::Certificate(to_rust_cert(c).unwrap()));
                    }
                }
                let mut whole = pending.signed_data.clone();
                whole.certificates =
                    Some(CertificateSet(SetOfVec::try_from(certificates).unwrap()));
                let expected = ContentInfo {
                    content_type: oid::SIGNED_DATA,
                    content: Any::encode_from(&whole).unwrap(),
                }
                .to_der()
                .unwrap();
                assert_eq!(
                    pending.to_der().unwrap(),
                    expected,
                    "chain {chain}, round {round}"
                );
                let big = OctetString::new(vec![0x5a; 70_000 + round]).unwrap();
                pending
                    .add_unsigned_attribute(attribute(oid::ATTR_TIME_STAMP_TOKEN, &big).unwrap())
                    .unwrap();
            }
        }
    }
}
