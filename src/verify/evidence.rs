//! Validation data embedded in signatures and documents: certificates, OCSP responses and
//! CRLs from the CMS `crls` field, Adobe's revocation-info-archival signed attribute and
//! the PDF Document Security Store (ETSI EN 319 142-1 §5.4).

use const_oid::ObjectIdentifier;
use der::Encode;
use lopdf::{Document, Object};
use openssl::x509::X509;

use super::revocation::Evidence;
use crate::cms::ber;
use crate::cms::ParsedSignedData;

/// adbe-revocationInfoArchival (Adobe PDF reference, 1.2.840.113583.1.1.8).
const ADBE_REVOCATION_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113583.1.1.8");
/// id-aa-ets-revocationValues (ETSI EN 319 122-1 §5.5.2, RFC 5126 §6.3.4).
const ETS_REVOCATION_VALUES: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.24");

/// Revocation data carried by a SignedData and its first signer's attributes.
pub fn from_signed_data(parsed: &ParsedSignedData) -> Evidence {
    let mut evidence = Evidence {
        crls: parsed.crls.clone(),
        ocsp: parsed.ocsp.clone(),
    };
    let Some(signer) = parsed.signer_infos.first() else {
        return evidence;
    };
    let adbe = signer
        .signed_attrs
        .as_ref()
        .and_then(|attrs| attrs.value(ADBE_REVOCATION_INFO));
    if let Some(der) = adbe {
        read_revocation_sequence(der, false, &mut evidence);
    }
    // CAdES-X-L / B-LT revocation values: the same layout, but ocspVals are BasicOCSPResponses.
    for der in signer.unsigned_values(ETS_REVOCATION_VALUES) {
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
    let Ok(fields) = ber::read_one(der).and_then(|seq| seq.children()) else {
        return;
    };
    for field in fields {
        let Ok(items) = field.children().and_then(|inner| {
            inner
                .first()
                .map(|s| s.children())
                .unwrap_or(Ok(Vec::new()))
        }) else {
            continue;
        };
        for item in items {
            let Ok(item) = item.to_definite() else {
                continue;
            };
            match field.tag {
                0xA0 => evidence.crls.push(item),
                0xA1 if basic_ocsp => evidence.ocsp.extend(wrap_basic_response(&item)),
                0xA1 => evidence.ocsp.push(item),
                _ => {}
            }
        }
    }
}

/// Most bytes the streams of one DSS may inflate to in all (a DSS stream over what is left is
/// not used).
pub const DSS_INFLATE_BUDGET: usize = crate::pdf::MAX_DECOMPRESSED_STREAM;

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
    // Every DSS stream inflates within what is left of one budget for the whole DSS: a small
    // file cannot make the verifier hold more than DSS_INFLATE_BUDGET bytes of evidence.
    let mut left = DSS_INFLATE_BUDGET;
    let mut streams = |key: &[u8]| -> Vec<Vec<u8>> {
        match dss.get(key).ok().and_then(|a| deref(doc, a)) {
            Some(Object::Array(items)) => items
                .iter()
                .filter_map(|i| match deref(doc, i) {
                    Some(Object::Stream(s)) => {
                        let bytes = if s.dict.has(b"Filter") {
                            s.decompressed_content_with_limit(left).ok()?
                        } else {
                            s.content.clone()
                        };
                        left = left.checked_sub(bytes.len())?;
                        Some(bytes)
                    }
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
            .filter_map(|d| crate::pki::certs::from_der(d)),
    );
    (evidence, certs)
}

fn deref<'a>(doc: &'a Document, obj: &'a Object) -> Option<&'a Object> {
    match obj {
        Object::Reference(id) => doc.get_object(*id).ok(),
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::{dictionary, Stream};
    use std::io::Write;

    fn deflated(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn dss_streams_inflate_within_one_budget() {
        let mut doc = Document::with_version("1.7");
        let small = doc.add_object(Stream::new(
            dictionary! { "Filter" => "FlateDecode" },
            deflated(b"crl bytes"),
        ));
        // 40 MiB of zeros in ~40 KiB: over the budget, so left out rather than inflated.
        let bomb = doc.add_object(Stream::new(
            dictionary! { "Filter" => "FlateDecode" },
            deflated(&vec![0u8; 40 << 20]),
        ));
        let dss = doc.add_object(dictionary! {
            "CRLs" => vec![small.into(), bomb.into()],
        });
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "DSS" => dss });
        doc.trailer.set("Root", catalog);
        let (evidence, _) = from_dss(&doc);
        assert_eq!(evidence.crls, vec![b"crl bytes".to_vec()]);
    }
}
