//! XML-DSig signatures into the validation report: [`crate::xml`] checks the cryptography and
//! the profile; trust, usage and revocation go through the same [`evaluate`](super::evaluate)
//! as PDF and CMS signatures.

use super::report::{Coverage, Indication, Report, SubIndication};
use super::{evaluate, revocation, SignatureFacts, Validation, VerifyError};
use crate::xml::dsig::{self, IdIndex};
use crate::xml::{parse, Limits, Profile};

/// Verifies every `ds:Signature` of an XML document under the profile its root implies.
pub(super) fn verify(
    name: &str,
    input: &[u8],
    detached: Option<&[u8]>,
    ctx: &Validation<'_>,
) -> Result<Report, VerifyError> {
    let parsed = parse::parse(input, &Limits::default())?;
    verify_parsed(name, &parsed, detached, ctx)
}

/// [`verify`] of a document the caller has already parsed.
/// `detached` is the content of references to anything outside the document.
pub(super) fn verify_parsed(
    name: &str,
    parsed: &parse::Parsed<'_>,
    detached: Option<&[u8]>,
    ctx: &Validation<'_>,
) -> Result<Report, VerifyError> {
    let profile = Profile::detect(&parsed.doc);
    let (ids, ambiguous) = IdIndex::build_tolerant(&parsed.doc, profile.id_attributes());
    let signatures = dsig::find_signatures(&parsed.doc);
    // An ID that occurs twice is refused only where a signature refers to it.
    for sig in &signatures {
        let targets = sig
            .descendants()
            .filter(|n| n.has_tag_name((dsig::DSIG_NS, "Reference")))
            .filter_map(|r| r.attribute("URI")?.strip_prefix('#'));
        for target in targets {
            if ambiguous.iter().any(|a| a == target) {
                return Err(crate::xml::XmlError::DuplicateId(target.to_string()).into());
            }
        }
    }
    if signatures.is_empty() {
        return Err(VerifyError::NoSignature(name.into()));
    }
    let anchors: Vec<openssl::x509::X509> = ctx
        .trust_lists
        .iter()
        .flat_map(|l| l.anchors.iter().cloned())
        .collect();
    let mut reports = Vec::new();
    for (i, sig) in signatures.into_iter().enumerate() {
        let check = dsig::check_signature_with(parsed, &ids, sig, &anchors, detached);
        let (whole_file, element_path, verdict) = profile.check(parsed, sig, &check);
        let coverage = Coverage {
            whole_file,
            revision: None,
            element_path,
        };
        let unprocessable = check.references.iter().any(|r| r.problem.is_some());
        let has_format_errors = !check.format_errors.is_empty();
        let facts = SignatureFacts {
            hash_ok: check.digests_ok(),
            signature_ok: check.signature_ok,
            certificate: check.certificate.clone(),
            embedded: check.embedded.clone(),
            claimed_time: check.claimed_time,
            weak: check.weak.clone(),
            timestamp_tokens: Vec::new(),
            format_errors: check.format_errors.clone(),
            notes: Vec::new(),
            // A digest mismatch is reported as such even when the value cannot be checked.
            unsupported: check.unsupported.clone().filter(|_| check.digests_ok()),
            verified_with_bare_key: check.key_only,
            signature_value: check.signature_value.clone(),
        };
        let id = check
            .id
            .clone()
            .unwrap_or_else(|| format!("signature-{}", i + 1));
        let mut report = evaluate(
            id,
            facts,
            ctx,
            coverage,
            &revocation::Evidence::default(),
            &[],
        );
        let format_failure = |r: &mut super::SignatureReport, note: Option<String>| {
            r.indication = Indication::TotalFailed;
            r.sub_indication = Some(SubIndication::FormatFailure);
            r.notes.extend(note);
        };
        if unprocessable {
            report.intact = false;
            format_failure(&mut report, None);
        } else if has_format_errors && report.indication == Indication::TotalPassed {
            format_failure(&mut report, None);
        }
        let verdict_ok = verdict.is_ok();
        if let Err(why) = verdict {
            if report.sub_indication != Some(SubIndication::HashFailure)
                && report.sub_indication != Some(SubIndication::SigCryptoFailure)
            {
                format_failure(
                    &mut report,
                    Some(format!("{} profile: {why}", profile.name())),
                );
            } else {
                report
                    .notes
                    .push(format!("{} profile: {why}", profile.name()));
            }
        }
        if verdict_ok && report.intact {
            declared_tax_code_note(&mut report, profile, &parsed.doc);
        }
        reports.push(report);
    }
    Ok(Report::new(name.into(), "xml", reports))
}

/// Compares the tax code the signed document declares with the signer certificate's `MST:`
/// identifier; a mismatch is noted. Neither code is printed: tax codes are personal data.
/// Only called when the signature is intact and covers what the profile signs, so the
/// declared code is signed content.
fn declared_tax_code_note(
    report: &mut super::SignatureReport,
    profile: Profile,
    doc: &roxmltree::Document<'_>,
) {
    let Some(declared) = profile.declared_tax_code(doc) else {
        return;
    };
    let Some(signer) = &report.signer else {
        return;
    };
    let certified: Vec<&str> = signer
        .identifiers
        .iter()
        .filter(|i| i.kind.eq_ignore_ascii_case("MST"))
        .map(|i| i.value.as_str())
        .collect();
    if !certified.is_empty()
        && !certified
            .iter()
            .any(|c| crate::xml::profile::tax_code_matches(&declared, c))
    {
        report.notes.push(format!(
            "{} profile: the declared tax code does not match the signer's certificate",
            profile.name()
        ));
    }
}
