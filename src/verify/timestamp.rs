//! RFC 3161 time-stamp tokens: signature time-stamps and PAdES document time-stamps.
//!
//! A token's own verdict keeps integrity and trust apart: the message imprint and the
//! token's signature decide `intact` (HASH_FAILURE / SIG_CRYPTO_FAILURE when they fail); a
//! TSA that does not chain to an anchor, lacks the time-stamping usage, or whose certificate
//! cannot be found makes the time-stamp INDETERMINATE, never "not intact".

use openssl::x509::X509;
use time::OffsetDateTime;

use super::chain::{self, TrustList};
use super::report::{Indication, SubIndication};
use super::signer::{self, digest_for, hash_parts, Parts};
use crate::cms::ber::{self, Fields};
use crate::cms::parse::SignerInfo;
use crate::cms::{parse_signed_data, tst};
use crate::pki::oid;

/// id-aa-signingCertificate (RFC 2634 §5.4, ESSCertID with SHA-1).
const ATTR_SIGNING_CERTIFICATE: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");

/// What checking a time-stamp token found.
pub struct TimestampCheck {
    /// The TSA's genTime.
    pub gen_time: Option<OffsetDateTime>,
    /// The TSA certificate's subject.
    pub tsa: String,
    /// The TSA's certificate, when found.
    pub tsa_certificate: Option<X509>,
    /// The imprint matches and the token's signature verifies.
    pub intact: bool,
    /// The token's own verdict.
    pub indication: Indication,
    /// Why not passed.
    pub sub_indication: Option<SubIndication>,
    /// Explanations.
    pub problems: Vec<String>,
    /// The trust list whose anchor ends the TSA's path.
    pub trust_list: Option<String>,
    /// Certificates the token carries.
    pub embedded: Vec<X509>,
}

impl TimestampCheck {
    /// Passed: intact, TSA trusted and entitled.
    pub fn valid(&self) -> bool {
        self.indication == Indication::TotalPassed
    }

    fn fail(&mut self, indication: Indication, sub: SubIndication, why: String) {
        if self.indication != Indication::TotalFailed {
            self.indication = indication;
            self.sub_indication = Some(sub);
        }
        self.problems.push(why);
    }
}

/// Checks `token` (a ContentInfo, BER or DER) as a time-stamp over `stamped` (the bytes whose
/// hash the message imprint must carry), with the TSA's path validated at genTime. The TSA's
/// certificate may be in the token or among `extra` (DSS, the signature's certificates).
pub fn check(
    token: &[u8],
    stamped: &[&[u8]],
    lists: &[TrustList],
    extra: &[X509],
) -> TimestampCheck {
    let mut out = TimestampCheck {
        gen_time: None,
        tsa: String::new(),
        tsa_certificate: None,
        intact: false,
        indication: Indication::TotalPassed,
        sub_indication: None,
        problems: Vec::new(),
        trust_list: None,
        embedded: Vec::new(),
    };
    let parsed = match parse_signed_data(token) {
        Ok(p) => p,
        Err(e) => {
            out.fail(
                Indication::TotalFailed,
                SubIndication::FormatFailure,
                format!("time-stamp token cannot be parsed: {e}"),
            );
            return out;
        }
    };
    let tst_bytes = match (&parsed.econtent, parsed.econtent_type == oid::TST_INFO) {
        (Some(bytes), true) => bytes.clone(),
        _ => {
            out.fail(
                Indication::TotalFailed,
                SubIndication::FormatFailure,
                "time-stamp token does not encapsulate a TSTInfo".into(),
            );
            return out;
        }
    };
    let info = match tst::parse(&tst_bytes) {
        Ok(info) => info,
        Err(e) => {
            out.fail(
                Indication::TotalFailed,
                SubIndication::FormatFailure,
                format!("TSTInfo cannot be parsed: {e}"),
            );
            return out;
        }
    };
    out.gen_time = Some(info.gen_time);
    let Some(signer_info) = parsed.signer_infos.first() else {
        out.fail(
            Indication::TotalFailed,
            SubIndication::FormatFailure,
            "time-stamp token has no SignerInfo".into(),
        );
        return out;
    };
    let mut candidates = extra.to_vec();
    candidates.extend(lists.iter().flat_map(|l| l.anchors.iter().cloned()));
    let facts = signer::check_signer(&parsed, signer_info, &Parts(&[&tst_bytes]), &candidates);
    out.embedded = facts.embedded.clone();
    let certificate = facts.certificate.clone();
    if let Some(cert) = &certificate {
        out.tsa = cert
            .subject_name()
            .entries()
            .filter_map(|e| e.data().to_string().ok())
            .collect::<Vec<_>>()
            .join(", ");
    }
    let imprint_ok = digest_for(&info.imprint_algorithm.oid)
        .and_then(|d| hash_parts(d, stamped))
        .is_some_and(|h| h == info.imprint);
    if !imprint_ok {
        out.fail(
            Indication::TotalFailed,
            SubIndication::HashFailure,
            "the time-stamp's message imprint does not match what it stamps".into(),
        );
    }
    let Some(cert) = certificate else {
        out.fail(
            Indication::Indeterminate,
            SubIndication::NoSigningCertificateFound,
            "the TSA certificate is neither in the token nor given".into(),
        );
        return out;
    };
    if let Some(why) = facts.unsupported {
        out.fail(
            Indication::Indeterminate,
            SubIndication::CryptoConstraintsFailureNoPoe,
            format!("time-stamp token: {why}"),
        );
        return out;
    }
    if !facts.hash_ok {
        out.fail(
            Indication::TotalFailed,
            SubIndication::HashFailure,
            "the token's message digest does not match its TSTInfo".into(),
        );
    } else if !facts.signature_ok {
        out.fail(
            Indication::TotalFailed,
            SubIndication::SigCryptoFailure,
            "the time-stamp token's own signature is not valid".into(),
        );
    }
    out.intact = imprint_ok && facts.hash_ok && facts.signature_ok;
    out.tsa_certificate = Some(cert.clone());
    if !out.intact {
        return out;
    }
    if !ess_cert_id_matches(signer_info, &cert) {
        out.fail(
            Indication::Indeterminate,
            SubIndication::NoSigningCertificateFound,
            "the token's signing-certificate attribute does not name the certificate that signed it".into(),
        );
    }
    if let Err(e) = chain::check_tsa_usage(&cert) {
        out.fail(
            Indication::Indeterminate,
            SubIndication::ChainConstraintsFailure,
            e.to_string(),
        );
    }
    let mut untrusted = facts.embedded.clone();
    untrusted.extend(extra.iter().cloned());
    let outcome = chain::validate(&cert, &untrusted, lists, info.gen_time);
    out.trust_list = outcome.trust_list.clone();
    if let Some((sub, why)) = outcome.failure {
        out.fail(
            Indication::Indeterminate,
            sub,
            format!("TSA certificate: {why}"),
        );
    }
    if !facts.weak.is_empty() {
        out.fail(
            Indication::Indeterminate,
            SubIndication::CryptoConstraintsFailureNoPoe,
            format!("time-stamp token: weak {}", facts.weak.join(", ")),
        );
    }
    out
}

/// The (hash algorithm, certificate hash) pairs of the signing-certificate(-v2) attribute
/// (RFC 5035 ESSCertIDv2, absent hashAlgorithm = SHA-256; RFC 2634 ESSCertID = SHA-1).
fn ess_cert_ids(signer: &SignerInfo) -> Vec<(signer::Digest, Vec<u8>)> {
    let Some(attrs) = &signer.signed_attrs else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (attr, v2) in [
        (oid::ATTR_SIGNING_CERTIFICATE_V2, true),
        (ATTR_SIGNING_CERTIFICATE, false),
    ] {
        let Some(value) = attrs.value(attr) else {
            continue;
        };
        let ids = ber::read_one(value)
            .and_then(|v| Fields::of(&v)?.required(ber::SEQUENCE, "certs"))
            .and_then(|certs| certs.children());
        for id in ids.unwrap_or_default() {
            let Ok(fields) = id.children() else { continue };
            let (alg, hash) = match (v2, fields.first()) {
                (true, Some(first)) if first.tag == ber::SEQUENCE => (
                    crate::cms::parse::algorithm(first).ok().map(|a| a.oid),
                    fields.get(1),
                ),
                (true, first) => (Some(oid::SHA256), first),
                (false, first) => (
                    Some(const_oid::ObjectIdentifier::new_unwrap("1.3.14.3.2.26")),
                    first,
                ),
            };
            let digest = alg.as_ref().and_then(digest_for);
            let hash = hash.and_then(|h| h.octets().ok()).map(|h| h.into_owned());
            if let (Some(d), Some(h)) = (digest, hash) {
                out.push((d, h));
            }
        }
    }
    out
}

/// Whether the first ESSCertID names `cert` (true when the attribute is absent).
fn ess_cert_id_matches(signer: &SignerInfo, cert: &X509) -> bool {
    let ids = ess_cert_ids(signer);
    let Some((digest, hash)) = ids.first() else {
        return true;
    };
    cert.to_der()
        .ok()
        .and_then(|der| hash_parts(*digest, &[&der]))
        .is_some_and(|h| &h == hash)
}
