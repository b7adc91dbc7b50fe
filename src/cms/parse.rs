//! Reading CMS SignedData for verification, keeping the exact DER of each SignerInfo's
//! signed attributes (the signature covers those bytes, and a re-encoding could differ).

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::{Decode, Encode};

use super::CmsError;
use crate::pki::oid;

/// A parsed SignedData plus, per SignerInfo, the signed attributes as the signer encoded them.
#[derive(Debug, Clone)]
pub struct ParsedSignedData {
    /// The decoded structure.
    pub signed_data: SignedData,
    /// Raw signed attributes per SignerInfo (same order), re-tagged as `SET` (0x31) as signed.
    pub raw_signed_attrs: Vec<Option<Vec<u8>>>,
}

/// Parses a DER ContentInfo holding SignedData (RFC 5652 §3, §5.1).
pub fn parse_signed_data(der: &[u8]) -> Result<ParsedSignedData, CmsError> {
    let info = ContentInfo::from_der(trim_trailing_zeros(der))?;
    if info.content_type != oid::SIGNED_DATA {
        return Err(CmsError::Certificate(format!(
            "content type {} is not signedData",
            info.content_type
        )));
    }
    let content = info.content.to_der()?;
    let signed_data = info.content.decode_as::<SignedData>()?;
    let raw_signed_attrs = raw_signer_attrs(&content)?;
    if raw_signed_attrs.len() != signed_data.signer_infos.0.len() {
        return Err(CmsError::Der(
            der::ErrorKind::Length { tag: der::Tag::Set }.into(),
        ));
    }
    Ok(ParsedSignedData {
        signed_data,
        raw_signed_attrs,
    })
}

/// PDF /Contents holes are zero-padded after the DER; accept the padding.
fn trim_trailing_zeros(der: &[u8]) -> &[u8] {
    match tlv(der) {
        Some((_, _, total)) if total <= der.len() => &der[..total],
        _ => der,
    }
}

/// Reads one DER TLV: (tag, value range start..end, total length).
pub(crate) fn tlv(input: &[u8]) -> Option<(u8, std::ops::Range<usize>, usize)> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    (end <= input.len()).then_some((tag, header..end, end))
}

/// Iterates the TLVs inside a constructed value.
pub(crate) fn children(mut value: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !value.is_empty() {
        let (tag, _, total) = tlv(value)?;
        out.push((tag, &value[..total]));
        value = &value[total..];
    }
    Some(out)
}

/// Finds each SignerInfo's `[0] IMPLICIT SignedAttributes` in the SignedData encoding.
fn raw_signer_attrs(signed_data_der: &[u8]) -> Result<Vec<Option<Vec<u8>>>, CmsError> {
    let malformed = || CmsError::Der(der::ErrorKind::Failed.into());
    let (_, body, _) = tlv(signed_data_der).ok_or_else(malformed)?;
    let fields = children(&signed_data_der[body]).ok_or_else(malformed)?;
    // signerInfos is the last field: a SET (0x31) of SignerInfo SEQUENCEs.
    let (tag, signer_infos) = *fields.last().ok_or_else(malformed)?;
    if tag != 0x31 {
        return Err(malformed());
    }
    let (_, inner, _) = tlv(signer_infos).ok_or_else(malformed)?;
    let mut result = Vec::new();
    for (_, signer_info) in children(&signer_infos[inner]).ok_or_else(malformed)? {
        let (_, body, _) = tlv(signer_info).ok_or_else(malformed)?;
        let parts = children(&signer_info[body]).ok_or_else(malformed)?;
        // version, sid, digestAlgorithm, then [0] signedAttrs if present.
        let attrs = parts
            .get(3)
            .filter(|(tag, _)| *tag == 0xA0)
            .map(|(_, raw)| {
                let mut bytes = raw.to_vec();
                bytes[0] = 0x31;
                bytes
            });
        result.push(attrs);
    }
    Ok(result)
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
