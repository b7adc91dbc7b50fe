//! `SignedDataBuilder`: one signer, external message digest, chosen signed attributes.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos, UnsignedAttributes,
};
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec, UtcTime};
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
        }
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
        let digest_alg = self.scheme.digest();
        if self.message_digest.len() != digest_alg.output_len() {
            return Err(CmsError::DigestLength {
                got: self.message_digest.len(),
                expected: digest_alg.output_len(),
            });
        }
        let signer_cert = to_rust_cert(self.key.certificate())?;
        let mut attrs = vec![
            attribute(oid::ATTR_CONTENT_TYPE, &self.content_type)?,
            attribute(
                oid::ATTR_MESSAGE_DIGEST,
                &OctetString::new(self.message_digest.clone())?,
            )?,
            attribute(
                oid::ATTR_SIGNING_CERTIFICATE_V2,
                &signing_certificate_v2(&signer_cert, digest_alg)?,
            )?,
        ];
        if let Some(at) = self.signing_time {
            attrs.push(attribute(oid::ATTR_SIGNING_TIME, &cms_time(at)?)?);
        }
        attrs.extend(self.extra_signed);
        let signed_attrs: SignedAttributes = SetOfVec::try_from(attrs)?;
        // The signature covers the DER of the SET OF, tagged as SET (RFC 5652 §5.4).
        let to_sign = signed_attrs.to_der()?;
        let signature = self.key.sign_message(self.scheme, &to_sign)?;

        let mut certificates = vec![CertificateChoices::Certificate(signer_cert.clone())];
        if self.include_chain {
            for c in self.key.chain() {
                certificates.push(CertificateChoices::Certificate(to_rust_cert(c)?));
            }
        }
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
            certificates: Some(CertificateSet(SetOfVec::try_from(certificates)?)),
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
        };
        Ok(PendingSignature { signed_data })
    }
}

/// A finished signature that may still receive unsigned attributes (e.g. a time-stamp token).
#[derive(Debug, Clone)]
pub struct PendingSignature {
    signed_data: SignedData,
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

    /// The DER `ContentInfo` wrapping the SignedData.
    pub fn to_der(&self) -> Result<Vec<u8>, CmsError> {
        let info = ContentInfo {
            content_type: oid::SIGNED_DATA,
            content: Any::encode_from(&self.signed_data)?,
        };
        Ok(info.to_der()?)
    }
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
