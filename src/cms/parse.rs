//! Reading CMS SignedData (RFC 5652 §5) for verification, from BER or DER, with the one
//! [`ber`](super::ber) reader that time-stamp tokens go through as well.
//!
//! Everything a signature covers is kept as received: the encapsulated content's octets
//! (segments of a constructed OCTET STRING joined, RFC 5652 §5.3: the digest covers the
//! value octets only), each SignerInfo's signed attributes (re-tagged `[0]` → SET, 0x31, the
//! encoding that was signed) and the certificates' bytes. The DER re-encoding of the signed
//! attributes is kept beside them only when it differs (see [`SignedAttributes`]).

use const_oid::ObjectIdentifier;

use super::ber::{self, BerError, Fields, Tlv};
use crate::pki::oid;

/// id-countersignature unsigned attribute (RFC 5652 §11.4).
pub const ATTR_COUNTER_SIGNATURE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.6");
/// id-ri-ocsp-response (RFC 5940 §2.2.1): an OCSP response among the `crls`.
const RI_OCSP_RESPONSE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.16.2");
/// Deepest chain of counter-signatures read (each is a SignerInfo inside an attribute).
const MAX_COUNTER_DEPTH: usize = 8;

/// Reading a CMS structure failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmsParseError {
    /// The bytes are not well-formed BER, or not the structure RFC 5652 defines.
    #[error(transparent)]
    Ber(#[from] BerError),
    /// The ContentInfo holds something other than SignedData.
    #[error("content type {0} is not signedData")]
    NotSignedData(ObjectIdentifier),
}

impl CmsParseError {
    /// The stable error code.
    pub fn code(&self) -> crate::code::ErrorCode {
        crate::code::ErrorCode::CmsMalformed
    }
}

/// An AlgorithmIdentifier: the OID and the parameters' encoding, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlgorithmId {
    /// The algorithm.
    pub oid: ObjectIdentifier,
    /// The parameters as received (absent or NULL are both `None`).
    pub params: Option<Vec<u8>>,
}

/// One attribute: its type and each value's encoding as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// attrType.
    pub oid: ObjectIdentifier,
    /// attrValues, each element's whole encoding.
    pub values: Vec<Vec<u8>>,
}

/// How a SignerInfo names its certificate (RFC 5652 §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerId {
    /// issuerAndSerialNumber: the issuer Name's encoding and the serial's content octets.
    IssuerSerial {
        /// The issuer Name (a SEQUENCE) as received.
        issuer: Vec<u8>,
        /// The serial number's INTEGER content octets.
        serial: Vec<u8>,
    },
    /// subjectKeyIdentifier.
    SubjectKeyId(Vec<u8>),
}

/// The signed attributes of one SignerInfo, in the encodings a signature may cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAttributes {
    /// The attributes.
    pub attributes: Vec<Attribute>,
    /// The encoding as received with the `[0]` tag replaced by SET (0x31): what OpenSSL and
    /// poppler verify, and what the signer should have signed (RFC 5652 §5.4).
    pub as_received: Vec<u8>,
}

impl SignedAttributes {
    /// The DER re-encoding (attributes sorted, definite lengths), only when it differs from
    /// `as_received`: some signers sign the DER form and store another order (what EU DSS
    /// verifies). Computed on demand: only a signature that fails over `as_received` needs it.
    pub fn der(&self) -> Option<Vec<u8>> {
        let der = ber::read_one(&self.as_received).ok()?.to_der().ok()?;
        (der != self.as_received).then_some(der)
    }

    /// The first value of attribute `oid`.
    pub fn value(&self, oid: ObjectIdentifier) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.first())
            .map(Vec::as_slice)
    }

    /// How many attributes of type `oid` there are.
    pub fn count(&self, oid: ObjectIdentifier) -> usize {
        self.attributes.iter().filter(|a| a.oid == oid).count()
    }
}

/// One SignerInfo (RFC 5652 §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerInfo {
    /// The signer's certificate reference.
    pub sid: SignerId,
    /// digestAlgorithm.
    pub digest_alg: AlgorithmId,
    /// signedAttrs, if present.
    pub signed_attrs: Option<SignedAttributes>,
    /// signatureAlgorithm.
    pub signature_alg: AlgorithmId,
    /// The signature value.
    pub signature: Vec<u8>,
    /// unsignedAttrs (time-stamps, counter-signatures, validation data).
    pub unsigned_attrs: Vec<Attribute>,
    /// Counter-signatures found in `unsigned_attrs`, parsed (RFC 5652 §11.4).
    pub counter_signatures: Vec<SignerInfo>,
}

impl SignerInfo {
    /// Every value of unsigned attribute `oid`, in order.
    pub fn unsigned_values(&self, oid: ObjectIdentifier) -> Vec<Vec<u8>> {
        self.unsigned_attrs
            .iter()
            .filter(|a| a.oid == oid)
            .flat_map(|a| a.values.iter().cloned())
            .collect()
    }
}

/// A parsed SignedData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignedData {
    /// eContentType.
    pub econtent_type: ObjectIdentifier,
    /// The encapsulated content's octets, when the signature is not detached.
    pub econtent: Option<Vec<u8>>,
    /// The certificates (only `Certificate` choices), each as received.
    pub certificates: Vec<Vec<u8>>,
    /// CRLs from the `crls` field.
    pub crls: Vec<Vec<u8>>,
    /// OCSP responses from the `crls` field (RFC 5940 `other` choice).
    pub ocsp: Vec<Vec<u8>>,
    /// The SignerInfos.
    pub signer_infos: Vec<SignerInfo>,
}

/// Parses a ContentInfo holding SignedData (RFC 5652 §3, §5.1), BER or DER; only zero
/// bytes (the padding of a PDF `/Contents`) may follow it.
pub fn parse_signed_data(input: &[u8]) -> Result<ParsedSignedData, CmsParseError> {
    let info = ber::read_one(input)?.expect(ber::SEQUENCE, "ContentInfo")?;
    let mut fields = Fields::of(&info)?;
    let content_type = ber::oid(&fields.required(ber::OID, "contentType")?)?;
    if content_type != oid::SIGNED_DATA {
        return Err(CmsParseError::NotSignedData(content_type));
    }
    let explicit = fields.required(0xA0, "content")?;
    let signed = Fields::of(&explicit)?.required(ber::SEQUENCE, "SignedData")?;
    signed_data(&signed)
}

fn signed_data(signed: &Tlv<'_>) -> Result<ParsedSignedData, CmsParseError> {
    let mut fields = Fields::of(signed)?;
    fields.required(ber::INTEGER, "version")?;
    fields.required(ber::SET, "digestAlgorithms")?;
    let encap = fields.required(ber::SEQUENCE, "encapContentInfo")?;
    let mut encap_fields = Fields::of(&encap)?;
    let econtent_type = ber::oid(&encap_fields.required(ber::OID, "eContentType")?)?;
    let econtent = match encap_fields.optional(0xA0) {
        Some(explicit) => {
            let inner = Fields::of(&explicit)?.any("eContent")?;
            Some(match inner.tag {
                0x04 | 0x24 => inner.octets()?.into_owned(),
                // PKCS#7 v1.5 content of another type: its content octets (RFC 5652 §5.3).
                _ => inner.value.to_vec(),
            })
        }
        None => None,
    };
    let mut certificates = Vec::new();
    if let Some(set) = fields.optional(0xA0) {
        for choice in set.children()? {
            // Other choices (attribute certificates, `other`) are not signer certificates.
            if choice.tag == ber::SEQUENCE {
                certificates.push(if choice.indefinite {
                    choice.to_definite()?
                } else {
                    choice.raw.to_vec()
                });
            }
        }
    }
    let (mut crls, mut ocsp) = (Vec::new(), Vec::new());
    if let Some(set) = fields.optional(0xA1) {
        for choice in set.children()? {
            match choice.tag {
                ber::SEQUENCE => crls.push(choice.to_definite()?),
                // other [1] IMPLICIT OtherRevocationInfoFormat { format OID, info ANY }.
                0xA1 => {
                    let mut other = Fields::of(&choice)?;
                    let format = ber::oid(&other.required(ber::OID, "otherRevInfoFormat")?)?;
                    let info = other.any("otherRevInfo")?;
                    if format == RI_OCSP_RESPONSE {
                        ocsp.push(info.to_definite()?);
                    }
                }
                _ => {}
            }
        }
    }
    let infos = fields.required(ber::SET, "signerInfos")?;
    let signer_infos = infos
        .children()?
        .iter()
        .map(|s| signer_info(s, 0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ParsedSignedData {
        econtent_type,
        econtent,
        certificates,
        crls,
        ocsp,
        signer_infos,
    })
}

/// Reads an AlgorithmIdentifier.
pub fn algorithm(tlv: &Tlv<'_>) -> Result<AlgorithmId, BerError> {
    let mut fields = Fields::of(&tlv.expect(ber::SEQUENCE, "AlgorithmIdentifier")?)?;
    let oid = ber::oid(&fields.required(ber::OID, "algorithm")?)?;
    let params = fields
        .rest()
        .first()
        .filter(|p| p.tag != 0x05)
        .map(|p| p.raw.to_vec());
    Ok(AlgorithmId { oid, params })
}

fn attributes(set: &Tlv<'_>) -> Result<Vec<Attribute>, BerError> {
    set.children()?
        .iter()
        .map(|a| {
            let mut fields = Fields::of(&a.expect(ber::SEQUENCE, "Attribute")?)?;
            let oid = ber::oid(&fields.required(ber::OID, "attrType")?)?;
            let values = fields
                .required(ber::SET, "attrValues")?
                .children()?
                .iter()
                .map(|v| v.raw.to_vec())
                .collect();
            Ok(Attribute { oid, values })
        })
        .collect()
}

/// Reads one SignerInfo (`depth` counts enclosing counter-signatures).
pub fn signer_info(tlv: &Tlv<'_>, depth: usize) -> Result<SignerInfo, CmsParseError> {
    if depth > MAX_COUNTER_DEPTH {
        return Err(BerError::TooDeep.into());
    }
    let mut fields = Fields::of(&tlv.expect(ber::SEQUENCE, "SignerInfo")?)?;
    fields.required(ber::INTEGER, "version")?;
    let sid = fields.any("sid")?;
    let sid = match sid.tag {
        ber::SEQUENCE => {
            let mut ias = Fields::of(&sid)?;
            let issuer = ias.required(ber::SEQUENCE, "issuer")?;
            let serial = ias.required(ber::INTEGER, "serialNumber")?;
            SignerId::IssuerSerial {
                issuer: issuer.to_definite()?,
                serial: serial.value.to_vec(),
            }
        }
        0x80 | 0xA0 => SignerId::SubjectKeyId(sid.octets()?.into_owned()),
        found => {
            return Err(BerError::Unexpected {
                expected: "SignerIdentifier",
                found,
                at: 0,
            }
            .into())
        }
    };
    let digest_alg = algorithm(&fields.any("digestAlgorithm")?)?;
    let signed_attrs = match fields.optional(0xA0) {
        Some(attrs) => {
            let mut as_received = attrs.raw.to_vec();
            as_received[0] = ber::SET;
            Some(SignedAttributes {
                attributes: attributes(&attrs)?,
                as_received,
            })
        }
        None => None,
    };
    let signature_alg = algorithm(&fields.any("signatureAlgorithm")?)?;
    let signature = fields.any("signature")?;
    if signature.tag & !0x20 != ber::OCTET_STRING {
        return Err(BerError::Unexpected {
            expected: "signature OCTET STRING",
            found: signature.tag,
            at: 0,
        }
        .into());
    }
    let signature = signature.octets()?.into_owned();
    let unsigned_attrs = match fields.optional(0xA1) {
        Some(attrs) => attributes(&attrs)?,
        None => Vec::new(),
    };
    let mut counter_signatures = Vec::new();
    for value in unsigned_attrs
        .iter()
        .filter(|a| a.oid == ATTR_COUNTER_SIGNATURE)
        .flat_map(|a| a.values.iter())
    {
        let tlv = ber::read_one(value)?;
        counter_signatures.push(signer_info(&tlv, depth + 1)?);
    }
    Ok(SignerInfo {
        sid,
        digest_alg,
        signed_attrs,
        signature_alg,
        signature,
        unsigned_attrs,
        counter_signatures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 0x30) as u8).collect();
            assert!(parse_signed_data(&junk).is_err());
        }
    }
}
