//! RFC 3161 time-stamp tokens: signature time-stamps and PAdES document time-stamps.

use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_tsp::TstInfo;

use super::chain::{self, TrustList};
use super::signer::{self, hash_parts};
use crate::cms::parse_signed_data;
use crate::pki::oid;

/// What checking a time-stamp token found.
pub struct TimestampCheck {
    /// The TSA's genTime.
    pub gen_time: Option<OffsetDateTime>,
    /// The TSA certificate's subject.
    pub tsa: String,
    /// Imprint, token signature, TSA usage and TSA chain all valid.
    pub valid: bool,
    /// Why not valid.
    pub problems: Vec<String>,
    /// The trust list whose anchor ends the TSA's path.
    pub trust_list: Option<String>,
}

/// Checks `token` (DER ContentInfo) as a time-stamp over `stamped` (the bytes whose hash
/// the token's message imprint must carry), with the TSA chain validated at genTime.
pub fn check(token: &[u8], stamped: &[&[u8]], lists: &[TrustList]) -> TimestampCheck {
    let mut out = TimestampCheck {
        gen_time: None,
        tsa: String::new(),
        valid: false,
        problems: Vec::new(),
        trust_list: None,
    };
    let parsed = match parse_signed_data(token) {
        Ok(p) => p,
        Err(e) => {
            out.problems
                .push(format!("time-stamp token cannot be parsed: {e}"));
            return out;
        }
    };
    let encap = &parsed.signed_data.encap_content_info;
    let tst_bytes = match (&encap.econtent, encap.econtent_type == oid::TST_INFO) {
        (Some(any), true) => any
            .decode_as::<der::asn1::OctetString>()
            .ok()
            .map(|o| o.as_bytes().to_vec()),
        _ => None,
    };
    let Some(tst_bytes) = tst_bytes else {
        out.problems
            .push("time-stamp token does not encapsulate a TSTInfo".into());
        return out;
    };
    let Ok(tst) = TstInfo::from_der(&tst_bytes) else {
        out.problems.push("TSTInfo cannot be parsed".into());
        return out;
    };
    out.gen_time =
        OffsetDateTime::from_unix_timestamp(tst.gen_time.to_unix_duration().as_secs() as i64).ok();
    let signer = signer::check_signer(&parsed, 0, &|md| hash_parts(md, &[&tst_bytes]));
    if let Some(cert) = &signer.certificate {
        out.tsa = cert
            .subject_name()
            .entries()
            .filter_map(|e| e.data().to_string().ok())
            .collect::<Vec<_>>()
            .join(", ");
    }
    let imprint_md = signer::message_digest(&tst.message_imprint.hash_algorithm.oid);
    let imprint_ok = imprint_md
        .and_then(|md| hash_parts(md, stamped))
        .map(|h| h == tst.message_imprint.hashed_message.as_bytes())
        .unwrap_or(false);
    if !imprint_ok {
        out.problems
            .push("the time-stamp's message imprint does not match the signature".into());
    }
    if !(signer.hash_ok && signer.signature_ok) {
        out.problems
            .push("the time-stamp token's own signature is not valid".into());
    }
    match (&signer.certificate, out.gen_time) {
        (Some(cert), Some(at)) => {
            if let Err(e) = chain::check_tsa_usage(cert) {
                out.problems.push(e);
            }
            let outcome = chain::validate(cert, &signer.embedded, lists, at);
            out.trust_list = outcome.trust_list.clone();
            if let Some((_, why)) = outcome.failure {
                out.problems.push(format!("TSA certificate: {why}"));
            }
        }
        _ => out
            .problems
            .push("the TSA certificate is missing from the token".into()),
    }
    out.valid = out.problems.is_empty();
    let _ = tst.to_der();
    out
}
