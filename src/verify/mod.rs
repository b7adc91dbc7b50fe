//! Signature validation with an ETSI EN 319 102-1 style report.
//!
//! Drives [`cms`](crate::cms) parsing, the signer and time-stamp checks and path validation
//! against named trust lists; never signs. The caller supplies the validation time and the
//! trust lists in a [`ValidationContext`]: this module reads neither the clock nor the network.
//!
//! Not yet done (see the verification issue): revocation checking (OCSP/CRL), the analysis
//! of changes made to a PDF after a signature, XML signatures.

mod chain;
mod changes;
mod evidence;
mod pdf;
pub mod recheck;
pub mod report;
mod revision;
pub mod revocation;
mod signer;
mod timestamp;
mod xml;

pub use chain::TrustList;
pub use report::{Indication, Report, SignatureReport, SubIndication};
pub use revocation::{Fetcher, HttpFetcher};

use openssl::x509::X509;
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::code::ErrorCode;
use report::{ChainEntry, Coverage, Identifier, SignatureKind, Signer, TimestampReport};
use signer::Parts;

/// The file could not be verified at all (as opposed to a signature failing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The file has no signature.
    #[error("{0} has no signature")]
    NoSignature(String),
    /// The PDF cannot be parsed.
    #[error("{0}")]
    PdfMalformed(String),
    /// The PDF is encrypted and cannot be read without its password or key.
    #[error(
        "{0}: the PDF is encrypted and its signatures cannot be read without its password or key"
    )]
    PdfEncrypted(String),
    /// A detached CMS signature needs its content.
    #[error("{0} is a detached signature: give the signed file with --content")]
    ContentMissing(String),
    /// The XML cannot be parsed or is refused (DTD, duplicate ID, limits).
    #[error(transparent)]
    Xml(#[from] crate::xml::XmlError),
    /// The CMS structure cannot be parsed.
    #[error("{file} is not a CMS signature: {reason}")]
    CmsMalformed {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
}

impl VerifyError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NoSignature(_) => ErrorCode::NoSignature,
            Self::PdfMalformed(_) => ErrorCode::PdfMalformed,
            Self::PdfEncrypted(_) => ErrorCode::PdfEncrypted,
            Self::ContentMissing(_) => ErrorCode::Usage,
            Self::CmsMalformed { .. } => ErrorCode::CmsMalformed,
            Self::Xml(e) => e.code(),
        }
    }
}

/// What the caller supplies: the validation time, the trust anchors and the network.
pub struct ValidationContext {
    /// "Now" for the validation.
    pub at: OffsetDateTime,
    /// Named trust lists, tried in order.
    pub trust_lists: Vec<TrustList>,
    /// Fetches OCSP responses and CRLs; `None` validates offline with embedded data only.
    pub fetcher: Option<Box<dyn Fetcher>>,
}

/// The validation policy: the constraints a signature must meet beyond integrity and trust.
/// [`Policy::default`] is the policy the README describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Smallest RSA modulus accepted anywhere in the path; smaller gives
    /// CRYPTO_CONSTRAINTS_FAILURE_NO_POE (MD5 and SHA-1 are always refused).
    pub min_rsa_bits: u32,
    /// Whether an unknown revocation status makes a signature INDETERMINATE/TRY_LATER (`true`)
    /// or only adds a note (`false`, e.g. to triage before the status can be obtained).
    pub require_revocation: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_rsa_bits: 2048,
            require_revocation: true,
        }
    }
}

/// A policy with the context it applies in, as the checks below [`document`] take them.
pub(crate) struct Validation<'a> {
    policy: &'a Policy,
    ctx: &'a ValidationContext,
}

impl std::ops::Deref for Validation<'_> {
    type Target = ValidationContext;
    fn deref(&self) -> &ValidationContext {
        self.ctx
    }
}

/// Verifies every signature of `input` under `policy` (`name` is used in the report).
/// `detached` is the signed content of a detached CMS signature.
pub fn document(
    name: &str,
    input: &[u8],
    detached: Option<&[u8]>,
    policy: &Policy,
    ctx: &ValidationContext,
) -> Result<Report, VerifyError> {
    let ctx = &Validation { policy, ctx };
    if input.starts_with(b"%PDF-") {
        verify_pdf(name, input, ctx)
    } else if input.first() == Some(&0x30) || input.starts_with(b"-----BEGIN") {
        verify_cms(name, input, detached, ctx)
    } else if crate::xml::looks_like_xml(input) {
        xml::verify(name, input, detached, ctx)
    } else {
        Err(VerifyError::NoSignature(name.into()))
    }
}

/// [`document`] for an XML document the caller has already parsed (with
/// [`crate::xml::parse::parse`], under limits no looser than the defaults), so a caller that
/// needs the tree anyway (a routing node reading an edXML envelope) parses it once.
pub fn xml_document(
    name: &str,
    parsed: &crate::xml::parse::Parsed<'_>,
    policy: &Policy,
    ctx: &ValidationContext,
) -> Result<Report, VerifyError> {
    xml::verify_parsed(name, parsed, None, &Validation { policy, ctx })
}

/// The typed error of a PDF whose signatures cannot be listed.
fn pdf_read_error(name: &str, e: pdf::PdfReadError) -> VerifyError {
    match e {
        pdf::PdfReadError::Encrypted => VerifyError::PdfEncrypted(name.into()),
        other => VerifyError::PdfMalformed(other.to_string()),
    }
}

fn verify_pdf(name: &str, input: &[u8], ctx: &Validation<'_>) -> Result<Report, VerifyError> {
    let found = pdf::signatures(input).map_err(|e| pdf_read_error(name, e))?;
    if found.signatures.is_empty() {
        return Err(VerifyError::NoSignature(name.into()));
    }
    let revisions = pdf::Revisions::of(input, &found);
    let mut reports = Vec::new();
    for sig in &found.signatures {
        let coverage = Coverage {
            whole_file: sig.whole_file,
            revision: Some(sig.revision),
            element_path: None,
        };
        let [(a, b), (c, d)] = sig.ranges;
        let signed: Vec<&[u8]> = if sig.byte_range_problems.is_empty() {
            vec![&input[a..a + b], &input[c..c + d]]
        } else {
            Vec::new()
        };
        let kind = PdfSubFilter::of(&sig.sub_filter);
        let mut sig_reports = match kind {
            PdfSubFilter::DocTimeStamp => vec![document_timestamp(
                sig,
                &signed,
                ctx,
                coverage.clone(),
                &found.dss_certs,
            )],
            _ => match crate::cms::parse_signed_data(&sig.contents) {
                Ok(parsed) => {
                    let mut evidence = evidence::from_signed_data(&parsed);
                    evidence.extend(&found.dss);
                    pdf_signature(
                        sig,
                        kind,
                        &parsed,
                        &signed,
                        ctx,
                        &coverage,
                        &evidence,
                        &found.dss_certs,
                    )
                }
                Err(e) => vec![failed(
                    sig.field.clone(),
                    SubIndication::FormatFailure,
                    format!("/Contents is not CMS: {e}"),
                    ctx,
                    coverage.clone(),
                )],
            },
        };
        let report = &mut sig_reports[0];
        if let Some(m) = &sig.claimed_time {
            report.claimed_signing_time =
                pdf_date_to_rfc3339(m).or(report.claimed_signing_time.take());
        }
        if !sig.byte_range_problems.is_empty() {
            report.intact = false;
            report.indication = Indication::TotalFailed;
            report.sub_indication = Some(SubIndication::FormatFailure);
            report.notes.extend(sig.byte_range_problems.iter().cloned());
        }
        if kind == PdfSubFilter::Unsupported {
            report.intact = false;
            report.indication = Indication::TotalFailed;
            report.sub_indication = Some(SubIndication::FormatFailure);
            report
                .notes
                .push(format!("unsupported /SubFilter {}", sig.sub_filter));
        }
        if sig.whole_file {
            report.modification = Some("none");
        } else if found.undecrypted {
            report.notes.push(
                "the document is encrypted with a password or key that was not given: the signed bytes are checked, the changes made after signing cannot be read".into(),
            );
            if report.indication == Indication::TotalPassed {
                report.indication = Indication::Indeterminate;
                report.sub_indication = Some(SubIndication::FormatFailure);
            }
        } else if sig.byte_range_problems.is_empty() {
            let end = sig.ranges[1].0 + sig.ranges[1].1;
            let found_changes = revisions.modifications(end);
            report.modification = Some(found_changes.level);
            report.changes = found_changes.changes;
            if found_changes.level == "disallowed" && kind == PdfSubFilter::DocTimeStamp {
                // A document time-stamp proves that its revision existed; it restricts
                // nothing after it (the changes stay listed).
                report.modification = Some("permitted");
                report.notes.push(
                    "changes after a document time-stamp are not covered by it; they are listed, the time-stamp is not affected".into(),
                );
            } else if found_changes.level == "disallowed" {
                report.indication = Indication::TotalFailed;
                report.sub_indication = Some(SubIndication::FormatFailure);
                report.notes.push(
                    "the document was changed after signing in a way the signature does not allow"
                        .into(),
                );
            }
        }
        reports.extend(sig_reports);
    }
    check_timestamp_order(&mut reports);
    Ok(Report::new(name.into(), "pdf", reports))
}

/// How a PDF signature dictionary's /SubFilter says its /Contents is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PdfSubFilter {
    /// A detached CMS over the byte ranges: `ETSI.CAdES.detached`, `adbe.pkcs7.detached`
    /// (plain PKCS#7 allowed) and ICP-Brasil's `PBAD.PAdES`.
    Detached,
    /// `adbe.pkcs7.sha1`: the SignedData encapsulates the SHA-1 digest of the byte ranges.
    Sha1,
    /// `ETSI.RFC3161`: a document time-stamp.
    DocTimeStamp,
    /// Anything else (`adbe.x509.rsa_sha1`, unknown values).
    Unsupported,
}

impl PdfSubFilter {
    fn of(name: &str) -> Self {
        match name {
            "ETSI.CAdES.detached" | "adbe.pkcs7.detached" | "PBAD.PAdES" => Self::Detached,
            "adbe.pkcs7.sha1" => Self::Sha1,
            "ETSI.RFC3161" => Self::DocTimeStamp,
            _ => Self::Unsupported,
        }
    }
}

/// The reports of a PDF signature's CMS: its first SignerInfo, then its counter-signatures.
#[allow(clippy::too_many_arguments)]
fn pdf_signature(
    sig: &pdf::PdfSignature,
    kind: PdfSubFilter,
    parsed: &crate::cms::ParsedSignedData,
    signed: &[&[u8]],
    ctx: &Validation<'_>,
    coverage: &Coverage,
    evidence: &revocation::Evidence,
    dss_certs: &[X509],
) -> Vec<SignatureReport> {
    let Some(signer_info) = parsed.signer_infos.first() else {
        return vec![failed(
            sig.field.clone(),
            SubIndication::FormatFailure,
            "the CMS has no SignerInfo".into(),
            ctx,
            coverage.clone(),
        )];
    };
    let sha1_content;
    let content: &[&[u8]] = match (kind, &parsed.econtent) {
        (PdfSubFilter::Sha1, Some(econtent)) => {
            sha1_content = [econtent.as_slice()];
            &sha1_content
        }
        _ => signed,
    };
    let mut check = signer::check_signer(parsed, signer_info, &Parts(content), dss_certs);
    check.embedded.extend(dss_certs.iter().cloned());
    if kind == PdfSubFilter::Sha1 {
        let ranges_sha1 = openssl::sha::sha1(&signed.concat());
        let matches = parsed.econtent.as_deref() == Some(ranges_sha1.as_slice());
        check.hash_ok &= matches;
        if !matches {
            check.notes.push(
                "adbe.pkcs7.sha1: the encapsulated digest is not the SHA-1 of the byte ranges"
                    .into(),
            );
        }
        if !check.weak.iter().any(|w| w.contains("SHA-1")) {
            check
                .weak
                .push("adbe.pkcs7.sha1 (SHA-1 digest of the document)".into());
        }
    }
    let mut reports = vec![evaluate(
        sig.field.clone(),
        check,
        ctx,
        coverage.clone(),
        evidence,
        dss_certs,
    )];
    counter_signatures(
        parsed,
        signer_info,
        &sig.field,
        ctx,
        coverage,
        evidence,
        dss_certs,
        &mut reports,
    );
    reports
}

/// Reports every counter-signature of `parent_info` (recursively), each as a signature of
/// its own over its parent's signature value.
#[allow(clippy::too_many_arguments)]
fn counter_signatures(
    parsed: &crate::cms::ParsedSignedData,
    parent_info: &crate::cms::parse::SignerInfo,
    parent_id: &str,
    ctx: &Validation<'_>,
    coverage: &Coverage,
    evidence: &revocation::Evidence,
    extra: &[X509],
    out: &mut Vec<SignatureReport>,
) {
    for (k, counter) in parent_info.counter_signatures.iter().enumerate() {
        let id = format!("{parent_id}/counter-{}", k + 1);
        let value = [parent_info.signature.as_slice()];
        let check = signer::check_signer(parsed, counter, &Parts(&value), extra);
        let mut report = evaluate(id.clone(), check, ctx, coverage.clone(), evidence, extra);
        report.kind = SignatureKind::CounterSignature;
        report.parent = Some(parent_id.to_string());
        report.modification = Some("none");
        out.push(report);
        counter_signatures(parsed, counter, &id, ctx, coverage, evidence, extra, out);
    }
}

fn document_timestamp(
    sig: &pdf::PdfSignature,
    signed: &[&[u8]],
    ctx: &ValidationContext,
    coverage: Coverage,
    extra: &[X509],
) -> SignatureReport {
    let ts = timestamp::check(&sig.contents, signed, &ctx.trust_lists, extra);
    let mut report = failed(
        sig.field.clone(),
        SubIndication::HashFailure,
        String::new(),
        ctx,
        coverage,
    );
    report.notes.clear();
    report.kind = SignatureKind::DocumentTimestamp;
    report.intact = ts.intact;
    report.trust_list = ts.trust_list.clone();
    report.indication = ts.indication;
    report.sub_indication = ts.sub_indication;
    report.notes.extend(ts.problems.iter().cloned());
    if let Some(cert) = &ts.tsa_certificate {
        report.signer = Some(signer_of(cert));
    }
    if let Some(t) = ts.gen_time {
        report.best_signature_time = rfc3339(t);
    }
    report.timestamp = Some(timestamp_report(&ts));
    report
}

fn timestamp_report(ts: &timestamp::TimestampCheck) -> TimestampReport {
    TimestampReport {
        gen_time: ts.gen_time.map(rfc3339).unwrap_or_default(),
        tsa: ts.tsa.clone(),
        valid: ts.valid(),
        indication: ts.indication,
        sub_indication: ts.sub_indication,
    }
}

fn verify_cms(
    name: &str,
    input: &[u8],
    detached: Option<&[u8]>,
    ctx: &Validation<'_>,
) -> Result<Report, VerifyError> {
    let der = pem_or_der(input);
    let parsed = crate::cms::parse_signed_data(&der).map_err(|e| VerifyError::CmsMalformed {
        file: name.into(),
        reason: e.to_string(),
    })?;
    let content: &[u8] = match (&parsed.econtent, detached) {
        (Some(c), _) => c,
        (None, Some(d)) => d,
        (None, None) => return Err(VerifyError::ContentMissing(name.into())),
    };
    let evidence = evidence::from_signed_data(&parsed);
    if parsed.signer_infos.is_empty() {
        return Err(VerifyError::NoSignature(name.into()));
    }
    let coverage = Coverage {
        whole_file: true,
        revision: None,
        element_path: None,
    };
    let mut reports = Vec::new();
    for (i, signer_info) in parsed.signer_infos.iter().enumerate() {
        let check = signer::check_signer(&parsed, signer_info, &Parts(&[content]), &[]);
        let id = format!("signer-{}", i + 1);
        let mut r = evaluate(id.clone(), check, ctx, coverage.clone(), &evidence, &[]);
        r.modification = Some("none");
        reports.push(r);
        counter_signatures(
            &parsed,
            signer_info,
            &id,
            ctx,
            &coverage,
            &evidence,
            &[],
            &mut reports,
        );
    }
    Ok(Report::new(name.into(), "cms", reports))
}

/// Accepts PEM-armoured CMS (`-----BEGIN CMS-----`/`PKCS7`) as well as DER.
fn pem_or_der(input: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(input) else {
        return input.to_vec();
    };
    if !text.trim_start().starts_with("-----BEGIN") {
        return input.to_vec();
    }
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body.trim())
        .unwrap_or_else(|_| input.to_vec())
}

fn failed(
    id: String,
    sub: SubIndication,
    note: String,
    ctx: &ValidationContext,
    coverage: Coverage,
) -> SignatureReport {
    SignatureReport {
        id,
        kind: SignatureKind::Signature,
        parent: None,
        intact: false,
        indication: Indication::TotalFailed,
        sub_indication: Some(sub),
        signer: None,
        claimed_signing_time: None,
        best_signature_time: rfc3339(ctx.at),
        timestamp: None,
        trust_list: None,
        chain: Vec::new(),
        revocation: Vec::new(),
        coverage,
        modification: None,
        changes: Vec::new(),
        notes: if note.is_empty() {
            Vec::new()
        } else {
            vec![note]
        },
    }
}

/// What a format-specific check (CMS SignerInfo, XML-DSig Signature) found about one
/// signature: integrity, the signer's certificate, embedded certificates and claimed time.
/// [`evaluate`] turns it into a verdict the same way for every format.
pub(crate) struct SignatureFacts {
    /// The signed data's digest(s) match.
    pub hash_ok: bool,
    /// The signature value verifies with the signer certificate's key.
    pub signature_ok: bool,
    /// The signer's certificate, when found.
    pub certificate: Option<X509>,
    /// Every certificate carried with the signature.
    pub embedded: Vec<X509>,
    /// The claimed signing time (covered by the signature).
    pub claimed_time: Option<OffsetDateTime>,
    /// Weak algorithms used.
    pub weak: Vec<String>,
    /// Signature time-stamp tokens (ContentInfo, BER or DER) over `signature_value`.
    pub timestamp_tokens: Vec<Vec<u8>>,
    /// Structural problems.
    pub format_errors: Vec<String>,
    /// Facts worth telling that change no verdict.
    pub notes: Vec<String>,
    /// An algorithm the verifier does not implement: the value could not be checked, which
    /// the algorithm policy reports (never as a crypto failure).
    pub unsupported: Option<String>,
    /// No certificate, but `hash_ok`/`signature_ok` were checked with a key given bare
    /// (XML KeyValue): integrity is known, the signer is not.
    pub verified_with_bare_key: bool,
    /// The signature value (what a signature time-stamp imprints).
    pub signature_value: Vec<u8>,
}

/// Turns the checks of one signature into its verdict, in the order of ETSI EN 319 102-1 §5:
/// format and integrity, then time-stamp (best signature time), algorithms, path, usage.
/// `extra` are certificates from outside the signature (a PDF's DSS) for the time-stamps.
fn evaluate(
    id: String,
    check: SignatureFacts,
    ctx: &Validation<'_>,
    coverage: Coverage,
    evidence: &revocation::Evidence,
    extra: &[X509],
) -> SignatureReport {
    let mut report = failed(
        id,
        SubIndication::FormatFailure,
        String::new(),
        ctx,
        coverage,
    );
    report.claimed_signing_time = check.claimed_time.map(rfc3339);
    report.notes.extend(check.format_errors.iter().cloned());
    report.notes.extend(check.notes.iter().cloned());
    if let Some(why) = &check.unsupported {
        report.indication = Indication::Indeterminate;
        report.sub_indication = Some(SubIndication::CryptoConstraintsFailureNoPoe);
        report.signer = check.certificate.as_ref().map(signer_of);
        report
            .notes
            .push(format!("{why}: the signature value could not be checked"));
        return report;
    }
    let Some(cert) = check.certificate.clone() else {
        report.intact = check.verified_with_bare_key && check.hash_ok && check.signature_ok;
        if check.verified_with_bare_key && !check.hash_ok {
            report.sub_indication = Some(SubIndication::HashFailure);
        } else if check.verified_with_bare_key && !check.signature_ok {
            report.sub_indication = Some(SubIndication::SigCryptoFailure);
        } else {
            report.indication = Indication::Indeterminate;
            report.sub_indication = Some(SubIndication::NoSigningCertificateFound);
            report.notes.push(if check.verified_with_bare_key {
                "the signature verifies with the key in KeyInfo, but no certificate names the signer".into()
            } else {
                "the signer's certificate is not in the signature".into()
            });
        }
        return report;
    };
    report.signer = Some(signer_of(&cert));
    report.intact = check.hash_ok && check.signature_ok;
    if !check.hash_ok {
        report.sub_indication = Some(SubIndication::HashFailure);
        report
            .notes
            .push("the signed data's digest does not match: the document was changed".into());
        return report;
    }
    if !check.signature_ok {
        report.sub_indication = Some(SubIndication::SigCryptoFailure);
        report
            .notes
            .push("the signature value does not verify with the signer's key".into());
        return report;
    }
    if !check.format_errors.is_empty() {
        // Intact, but not the structure the format requires (e.g. two signing-time attributes).
        report.sub_indication = Some(SubIndication::FormatFailure);
        return report;
    }

    let mut best_time = ctx.at;
    let mut proven_at: Option<OffsetDateTime> = None;
    let mut stamp_altered = false;
    let mut stamp_extra = check.embedded.clone();
    stamp_extra.extend(extra.iter().cloned());
    let stamps: Vec<timestamp::TimestampCheck> = check
        .timestamp_tokens
        .iter()
        .map(|token| {
            timestamp::check(
                token,
                &[&check.signature_value],
                &ctx.trust_lists,
                &stamp_extra,
            )
        })
        .collect();
    for ts in &stamps {
        if ts.valid() {
            if let Some(t) = ts.gen_time {
                best_time = best_time.min(t);
                proven_at = Some(proven_at.map_or(t, |p| p.min(t)));
            }
        } else {
            stamp_altered |= ts.indication == Indication::TotalFailed;
            report.notes.extend(
                ts.problems
                    .iter()
                    .map(|p| format!("signature time-stamp: {p}")),
            );
        }
    }
    // Show an altered time-stamp first, else a valid one, else the first.
    let shown = stamps
        .iter()
        .find(|t| t.indication == Indication::TotalFailed)
        .or_else(|| stamps.iter().find(|t| t.valid()))
        .or_else(|| stamps.first());
    report.timestamp = shown.map(timestamp_report);
    report.best_signature_time = rfc3339(best_time);

    let mut untrusted = check.embedded.clone();
    untrusted.extend(extra.iter().cloned());
    let mut outcome = chain::validate(&cert, &untrusted, &ctx.trust_lists, best_time);
    if let (Some((SubIndication::NoCertificateChainFound, _)), Some(fetcher)) =
        (&outcome.failure, ctx.fetcher.as_deref())
    {
        // Missing intermediates: follow the AIA caIssuers URLs (RFC 5280 §4.2.2.1).
        let fetched = chain::fetch_issuers(&cert, fetcher);
        if !fetched.is_empty() {
            untrusted.extend(fetched);
            outcome = chain::validate(&cert, &untrusted, &ctx.trust_lists, best_time);
        }
    }
    report.trust_list = outcome.trust_list.clone();
    report.chain = outcome.chain.iter().map(chain_entry).collect();
    report.indication = Indication::Indeterminate;
    let mut weak = check.weak.clone();
    weak.extend(chain::weak_algorithms(
        &outcome.chain,
        ctx.policy.min_rsa_bits,
    ));
    if !weak.is_empty() {
        report.sub_indication = Some(SubIndication::CryptoConstraintsFailureNoPoe);
        report
            .notes
            .extend(weak.iter().map(|w| format!("weak algorithm: {w}")));
        return report;
    }
    if let Some((sub, why)) = outcome.failure {
        report.sub_indication = Some(sub);
        report.notes.push(why);
        return report;
    }
    if let Err(why) = chain::check_signer_usage(&cert) {
        report.sub_indication = Some(SubIndication::ChainConstraintsFailure);
        report.notes.push(why.to_string());
        return report;
    }
    if stamp_altered {
        // A signature time-stamp whose bytes do not verify is a failed signature attribute.
        report.sub_indication = Some(SubIndication::SigConstraintsFailure);
        return report;
    }
    if let Some((indication, sub)) =
        revocation_verdict(&outcome.chain, evidence, ctx, proven_at, &mut report)
    {
        report.indication = indication;
        report.sub_indication = Some(sub);
        return report;
    }
    report.indication = Indication::TotalPassed;
    report.sub_indication = None;
    report
}

/// Checks every certificate of the path below the anchor; returns the verdict if one fails.
///
/// A revocation after a time-stamp's genTime does not affect the signature; one before it
/// is REVOKED; without a time-stamp there is no proof of existence (REVOKED_NO_POE).
fn revocation_verdict(
    path: &[X509],
    evidence: &revocation::Evidence,
    ctx: &Validation<'_>,
    proven_at: Option<OffsetDateTime>,
    report: &mut SignatureReport,
) -> Option<(Indication, SubIndication)> {
    for i in 0..path.len().saturating_sub(1) {
        let (cert, above) = (&path[i], &path[i + 1..]);
        let subject = chain_entry(cert).subject;
        let checked = revocation::check(
            cert,
            &above[0],
            above,
            evidence,
            ctx.fetcher.as_deref(),
            ctx.at,
        );
        report.revocation.extend(checked.entry);
        let status = checked.status;
        match status {
            revocation::Status::Good => {}
            revocation::Status::Revoked(when) => {
                let when_text = rfc3339(when);
                match proven_at {
                    Some(t) if when > t => report.notes.push(format!(
                        "certificate {subject} was revoked on {when_text}, after the time-stamp"
                    )),
                    Some(_) => {
                        report.notes.push(format!(
                            "certificate {subject} was revoked on {when_text}, before the time-stamp"
                        ));
                        return Some((Indication::TotalFailed, SubIndication::Revoked));
                    }
                    None => {
                        report.notes.push(format!(
                            "certificate {subject} was revoked on {when_text}; no time-stamp proves the signature is older"
                        ));
                        return Some((Indication::Indeterminate, SubIndication::RevokedNoPoe));
                    }
                }
            }
            revocation::Status::Unknown(why) => {
                report
                    .notes
                    .push(format!("revocation status of {subject} unknown: {why}"));
                if ctx.policy.require_revocation {
                    return Some((Indication::Indeterminate, SubIndication::TryLater));
                }
            }
        }
    }
    None
}

fn signer_of(cert: &X509) -> Signer {
    Signer {
        subject: dn(cert.subject_name()),
        issuer: dn(cert.issuer_name()),
        serial: serial_hex(cert),
        identifiers: identifiers(cert),
    }
}

fn chain_entry(cert: &X509) -> ChainEntry {
    ChainEntry {
        subject: dn(cert.subject_name()),
        serial: serial_hex(cert),
        not_after: asn1_time_rfc3339(cert.not_after()),
    }
}

fn dn(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn serial_hex(cert: &X509) -> String {
    cert.serial_number()
        .to_bn()
        .and_then(|b| b.to_hex_str().map(|s| s.to_lowercase()))
        .unwrap_or_default()
}

/// Typed identifiers in the subject's UID attributes (`MST:…`, `CCCD:…`, `CMND:…`).
fn identifiers(cert: &X509) -> Vec<Identifier> {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::USERID)
        .filter_map(|e| e.data().to_string().ok())
        .filter_map(|v| {
            let (kind, value) = v.split_once(':')?;
            Some(Identifier {
                kind: kind.trim().to_string(),
                value: value.trim().to_string(),
            })
        })
        .collect()
}

fn asn1_time_rfc3339(t: &openssl::asn1::Asn1TimeRef) -> String {
    let Ok(epoch) = openssl::asn1::Asn1Time::from_unix(0) else {
        return String::new();
    };
    match epoch.diff(t) {
        Ok(d) => OffsetDateTime::from_unix_timestamp(d.days as i64 * 86_400 + d.secs as i64)
            .map(rfc3339)
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Converts a PDF date `D:YYYYMMDDHHmmSS+HH'mm'` to RFC 3339 UTC.
fn pdf_date_to_rfc3339(pdf: &str) -> Option<String> {
    let s = pdf.strip_prefix("D:").unwrap_or(pdf);
    let digits = |r: std::ops::Range<usize>| s.get(r).and_then(|v| v.parse::<u32>().ok());
    let year = digits(0..4)? as i32;
    let month = time::Month::try_from(digits(4..6).unwrap_or(1) as u8).ok()?;
    let date = time::Date::from_calendar_date(year, month, digits(6..8).unwrap_or(1) as u8).ok()?;
    let clock = time::Time::from_hms(
        digits(8..10).unwrap_or(0) as u8,
        digits(10..12).unwrap_or(0) as u8,
        digits(12..14).unwrap_or(0) as u8,
    )
    .ok()?;
    let offset = match s.get(14..15) {
        Some(sign @ ("+" | "-")) => {
            let h = digits(15..17).unwrap_or(0) as i8;
            let m = s
                .get(18..20)
                .and_then(|v| v.parse::<i8>().ok())
                .unwrap_or(0);
            let (h, m) = if sign == "-" { (-h, -m) } else { (h, m) };
            time::UtcOffset::from_hms(h, m, 0).ok()?
        }
        _ => time::UtcOffset::UTC,
    };
    Some(rfc3339(
        time::PrimitiveDateTime::new(date, clock).assume_offset(offset),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_dates_convert_to_utc() {
        assert_eq!(
            pdf_date_to_rfc3339("D:20250701093000+07'00'").as_deref(),
            Some("2025-07-01T02:30:00Z")
        );
        assert_eq!(
            pdf_date_to_rfc3339("D:20250701093000Z").as_deref(),
            Some("2025-07-01T09:30:00Z")
        );
        assert_eq!(pdf_date_to_rfc3339("garbage"), None);
    }
}

/// Certificates, OCSP responses and CRLs that validate every signature and time-stamp of a
/// PDF: what `extend` embeds in the DSS for long-term validation (PAdES B-LT).
#[derive(Debug, Default)]
pub struct ValidationData {
    /// DER certificates of every path (signers, intermediates, anchors, TSAs).
    pub certificates: Vec<Vec<u8>>,
    /// Evidence of the revocation status of each non-anchor certificate.
    pub evidence: revocation::Evidence,
    /// Certificates whose status could not be established, with the reason.
    pub missing: Vec<String>,
}

impl ValidationData {
    fn add_certificate(&mut self, cert: &X509) {
        if let Ok(der) = cert.to_der() {
            if !self.certificates.contains(&der) {
                self.certificates.push(der);
            }
        }
    }

    /// Adds the path of `cert` and the revocation evidence for each certificate below its anchor.
    fn add_path(
        &mut self,
        cert: &X509,
        untrusted: &[X509],
        embedded: &revocation::Evidence,
        ctx: &ValidationContext,
    ) {
        let outcome = chain::validate(cert, untrusted, &ctx.trust_lists, ctx.at);
        for c in &outcome.chain {
            self.add_certificate(c);
        }
        if let Some((_, why)) = &outcome.failure {
            // No revocation data is fetched for a path that does not reach a trust anchor.
            self.missing
                .push(format!("{}: {why}", chain_entry(cert).subject));
            return;
        }
        for i in 0..outcome.chain.len().saturating_sub(1) {
            let (c, above) = (&outcome.chain[i], &outcome.chain[i + 1..]);
            let checked = revocation::check(
                c,
                &above[0],
                above,
                embedded,
                ctx.fetcher.as_deref(),
                ctx.at,
            );
            match checked.status {
                revocation::Status::Unknown(why) => self
                    .missing
                    .push(format!("{}: {why}", chain_entry(c).subject)),
                _ => self.evidence.extend(&checked.evidence),
            }
        }
    }
}

/// Gathers the validation data for every signature and time-stamp of a PDF (fetching what is
/// not embedded through `ctx.fetcher`).
pub fn validation_data(
    input: &[u8],
    ctx: &ValidationContext,
) -> Result<ValidationData, VerifyError> {
    let found = pdf::signatures(input).map_err(|e| pdf_read_error("the PDF", e))?;
    if found.signatures.is_empty() {
        return Err(VerifyError::NoSignature("the PDF".into()));
    }
    let mut data = ValidationData::default();
    for sig in &found.signatures {
        let Ok(parsed) = crate::cms::parse_signed_data(&sig.contents) else {
            continue;
        };
        let mut embedded = evidence::from_signed_data(&parsed);
        embedded.extend(&found.dss);
        let mut tokens = Vec::new();
        if sig.sub_filter == "ETSI.RFC3161" {
            tokens.push(sig.contents.clone());
        } else {
            let (cert, untrusted) = signer_certificate(&parsed, &found.dss_certs);
            if let Some(cert) = &cert {
                data.add_path(cert, &untrusted, &embedded, ctx);
            }
            if let Some(first) = parsed.signer_infos.first() {
                tokens.extend(first.unsigned_values(crate::pki::oid::ATTR_TIME_STAMP_TOKEN));
            }
        }
        for token in tokens {
            let Ok(ts) = crate::cms::parse_signed_data(&token) else {
                continue;
            };
            let (cert, untrusted) = signer_certificate(&ts, &found.dss_certs);
            if let Some(cert) = &cert {
                data.add_path(cert, &untrusted, &embedded, ctx);
            }
        }
    }
    Ok(data)
}

/// The first signer's certificate of `parsed` (looked up in it and in `extra`), and the
/// certificates that may build its path.
fn signer_certificate(
    parsed: &crate::cms::ParsedSignedData,
    extra: &[X509],
) -> (Option<X509>, Vec<X509>) {
    let mut certs: Vec<X509> = parsed
        .certificates
        .iter()
        .filter_map(|d| crate::pki::certs::from_der(d))
        .collect();
    certs.extend(extra.iter().cloned());
    let cert = parsed
        .signer_infos
        .first()
        .and_then(|s| signer::find_signer_certificate(&s.sid, &certs));
    (cert, certs)
}

/// A document time-stamp protects the revisions before it, so its genTime must not precede
/// the signature time-stamps of the signatures it covers (ETSI EN 319 102-1 §5.6.2.4).
fn check_timestamp_order(reports: &mut [SignatureReport]) {
    let doc_stamps: Vec<(usize, String)> = reports
        .iter()
        .filter(|r| r.kind == SignatureKind::DocumentTimestamp)
        .filter_map(|r| {
            let ts = r.timestamp.as_ref().filter(|t| t.valid)?;
            Some((r.coverage.revision?, ts.gen_time.clone()))
        })
        .collect();
    for report in reports
        .iter_mut()
        .filter(|r| r.kind == SignatureKind::Signature)
    {
        let (Some(revision), Some(ts)) = (report.coverage.revision, report.timestamp.as_ref())
        else {
            continue;
        };
        if !ts.valid {
            continue;
        }
        // RFC 3339 UTC strings of one format compare in time order.
        let earlier = doc_stamps
            .iter()
            .find(|(r, gen)| *r > revision && gen.as_str() < ts.gen_time.as_str());
        if let Some((_, gen)) = earlier {
            report.notes.push(format!(
                "a document time-stamp of {gen} covers this signature but predates its signature time-stamp of {}",
                ts.gen_time
            ));
            if report.indication == Indication::TotalPassed {
                report.indication = Indication::Indeterminate;
                report.sub_indication = Some(SubIndication::TimestampOrderFailure);
            }
        }
    }
}
