//! Validation data embedded in signatures and documents: certificates, OCSP responses and
//! CRLs from the CMS `crls` field, Adobe's revocation-info-archival signed attribute and
//! the PDF Document Security Store (ETSI EN 319 142-1 §5.4).

use cms::revocation::RevocationInfoChoice;
use const_oid::ObjectIdentifier;
use der::Encode;
use lopdf::{Document, Object};
use openssl::x509::X509;

use super::revocation::Evidence;
use crate::cms::parse::{children, tlv};
use crate::cms::ParsedSignedData;

/// adbe-revocationInfoArchival (Adobe PDF reference, 1.2.840.113583.1.1.8).
const ADBE_REVOCATION_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113583.1.1.8");
/// id-aa-ets-revocationValues (ETSI EN 319 122-1 §5.5.2, RFC 5126 §6.3.4).
const ETS_REVOCATION_VALUES: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.24");
/// id-ri-ocsp-response (RFC 5940 §2.2.1).
const RI_OCSP_RESPONSE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.16.2");

/// Revocation data carried by a SignedData and its first signer's signed attributes.
pub fn from_signed_data(parsed: &ParsedSignedData) -> Evidence {
    let mut evidence = Evidence::default();
    if let Some(crls) = &parsed.signed_data.crls {
        for choice in crls.0.iter() {
            match choice {
                RevocationInfoChoice::Crl(crl) => evidence.crls.extend(crl.to_der().ok()),
                RevocationInfoChoice::Other(other)
                    if other.other_format.oid == RI_OCSP_RESPONSE =>
                {
                    evidence.ocsp.extend(other.other.to_der().ok())
                }
                RevocationInfoChoice::Other(_) => {}
            }
        }
    }
    let adbe = parsed
        .signed_data
        .signer_infos
        .0
        .get(0)
        .and_then(|s| s.signed_attrs.as_ref())
        .and_then(|attrs| attrs.iter().find(|a| a.oid == ADBE_REVOCATION_INFO))
        .and_then(|a| a.values.get(0))
        .and_then(|v| v.to_der().ok());
    if let Some(der) = adbe {
        read_revocation_sequence(&der, false, &mut evidence);
    }
    // CAdES-X-L / B-LT revocation values: the same layout, but ocspVals are BasicOCSPResponses.
    let values = parsed
        .signed_data
        .signer_infos
        .0
        .get(0)
        .and_then(|s| s.unsigned_attrs.as_ref())
        .and_then(|attrs| attrs.iter().find(|a| a.oid == ETS_REVOCATION_VALUES))
        .and_then(|a| a.values.get(0))
        .and_then(|v| v.to_der().ok());
    if let Some(der) = values {
        read_revocation_sequence(&der, true, &mut evidence);
    }
    evidence
}

/// Wraps a BasicOCSPResponse as a successful OCSPResponse (RFC 6960 §4.2.1).
fn wrap_basic_response(basic: &[u8]) -> Option<Vec<u8>> {
    use der::Decode;
    let basic = x509_ocsp::BasicOcspResponse::from_der(basic).ok()?;
    x509_ocsp::OcspResponse::successful(basic)
        .ok()?
        .to_der()
        .ok()
}

/// RevocationInfoArchival ::= SEQUENCE { crl [0] EXPLICIT SEQUENCE OF CRL OPTIONAL,
/// ocsp [1] EXPLICIT SEQUENCE OF OCSPResponse OPTIONAL, otherRevInfo [2] ... OPTIONAL }, and
/// RevocationValues, whose `[1]` holds BasicOCSPResponses (`basic_ocsp`).
fn read_revocation_sequence(der: &[u8], basic_ocsp: bool, evidence: &mut Evidence) {
    let Some((_, body, _)) = tlv(der) else { return };
    let Some(fields) = children(&der[body]) else {
        return;
    };
    for (tag, field) in fields {
        let Some((_, inner, _)) = tlv(field) else {
            continue;
        };
        let Some(seq) = children(&field[inner]).and_then(|c| c.first().map(|(_, s)| *s)) else {
            continue;
        };
        let Some((_, items, _)) = tlv(seq) else {
            continue;
        };
        let Some(items) = children(&seq[items]) else {
            continue;
        };
        for (_, item) in items {
            match tag {
                0xA0 => evidence.crls.push(item.to_vec()),
                0xA1 if basic_ocsp => evidence.ocsp.extend(wrap_basic_response(item)),
                0xA1 => evidence.ocsp.push(item.to_vec()),
                _ => {}
            }
        }
    }
}

/// The DSS of a PDF: its OCSP responses and CRLs, and its certificates (as intermediates).
pub fn from_dss(doc: &Document) -> (Evidence, Vec<X509>) {
    let mut evidence = Evidence::default();
    let mut certs = Vec::new();
    let Ok(catalog) = doc.catalog() else {
        return (evidence, certs);
    };
    let Some(Object::Dictionary(dss)) = catalog.get(b"DSS").ok().and_then(|d| deref(doc, d)) else {
        return (evidence, certs);
    };
    let streams = |key: &[u8]| -> Vec<Vec<u8>> {
        match dss.get(key).ok().and_then(|a| deref(doc, a)) {
            Some(Object::Array(items)) => items
                .iter()
                .filter_map(|i| match deref(doc, i) {
                    Some(Object::Stream(s)) => s
                        .decompressed_content()
                        .ok()
                        .or_else(|| Some(s.content.clone())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    evidence.ocsp = streams(b"OCSPs");
    evidence.crls = streams(b"CRLs");
    certs.extend(
        streams(b"Certs")
            .iter()
            .filter_map(|d| X509::from_der(d).ok()),
    );
    (evidence, certs)
}

fn deref<'a>(doc: &'a Document, obj: &'a Object) -> Option<&'a Object> {
    match obj {
        Object::Reference(id) => doc.get_object(*id).ok(),
        other => Some(other),
    }
}
