//! Verifying a received package: the envelope signature through [`crate::verify`] (chain,
//! revocation, the `edxml` profile's coverage), each signed part's digest named when it fails,
//! and the PDF signatures inside attachments, recorded.

use super::package::text_of;
use super::{EdxmlError, Limits};
use crate::verify::{Indication, Policy, Report, ValidationContext, VerifyError};
use crate::xml::dsig::{self, IdIndex};
use crate::xml::Profile;

/// One attachment as checked.
#[derive(Debug, Clone)]
pub struct AttachmentVerdict {
    /// `AttachmentName`.
    pub name: String,
    /// `ContentId`.
    pub content_id: String,
    /// Its digest matches the envelope signature.
    pub intact: bool,
    /// The verdict on the PDF's own signatures; `None` when it is not a signed PDF.
    pub pdf: Option<Indication>,
}

/// The verdict on a package.
#[derive(Debug, Clone)]
pub struct PackageVerdict {
    /// The envelope signature passed (TOTAL_PASSED) and every signed part is intact.
    pub passed: bool,
    /// Why not, naming the part (`MessageHeader`, `attachment 'x.pdf'`, the signer's chain…).
    pub reason: Option<String>,
    /// The envelope signature's validation report.
    pub report: Report,
    /// Each attachment.
    pub attachments: Vec<AttachmentVerdict>,
    /// [`content_digest`](super::content_digest) of the package.
    pub content_digest: String,
}

/// Verifies the package signature and every part it covers (see the module doc). `Err` means
/// the package is not even readable as edXML (schema, limits, no signature); a readable package
/// with a bad signature or an altered part is `Ok` with `passed: false` and a reason.
pub fn verify(
    bytes: &[u8],
    policy: &Policy,
    ctx: &ValidationContext,
) -> Result<PackageVerdict, EdxmlError> {
    let limits = Limits::default();
    let parsed = crate::xml::parse::parse(bytes, &limits.xml())?;
    let package = super::package::read_parsed(&parsed, &limits)?;
    verify_parsed(&parsed, &package, policy, ctx)
}

/// What a routing hop needs from one parse of an envelope: the package, its verdict
/// ([`verify`]) and, when it passed, the bytes with `trace` appended ([`append_trace`](super::append_trace)).
#[derive(Debug)]
pub struct HopCheck {
    /// The package as read ([`parse`](super::parse) with default limits).
    pub package: super::Package,
    /// The verdict.
    pub verdict: PackageVerdict,
    /// The envelope with this hop's trace header (`None` when the verdict failed).
    pub stamped: Option<Vec<u8>>,
}

/// [`parse`](super::parse), [`verify`] and [`append_trace`](super::append_trace) of one
/// envelope over a single parse of it (a routing node does all three for each receipt).
pub fn verify_for_hop(
    bytes: &[u8],
    policy: &Policy,
    ctx: &ValidationContext,
    trace: &super::TraceHeader,
) -> Result<HopCheck, EdxmlError> {
    let limits = Limits::default();
    let parsed = super::package::parse_bounded(bytes, &limits)?;
    let package = super::package::read_parsed(&parsed, &limits)?;
    let verdict = verify_parsed(&parsed, &package, policy, ctx)?;
    let stamped = if verdict.passed {
        Some(super::trace::splice_trace(&parsed, bytes, trace)?)
    } else {
        None
    };
    Ok(HopCheck {
        package,
        verdict,
        stamped,
    })
}

fn verify_parsed(
    parsed: &crate::xml::parse::Parsed<'_>,
    package: &super::Package,
    policy: &Policy,
    ctx: &ValidationContext,
) -> Result<PackageVerdict, EdxmlError> {
    let content_digest = super::trace::digest_of(parsed)?;
    let report = crate::verify::xml_document("edXML", parsed, policy, ctx)?;
    // Which part broke is worked out only when a digest failed (the report says that much).
    let (altered, broken_ids) = if report.signatures.iter().all(|s| s.intact) {
        (Vec::new(), Vec::new())
    } else {
        altered_parts(parsed)?
    };
    let mut attachments = Vec::new();
    for a in &package.attachments {
        let pdf = if a.data.starts_with(b"%PDF-") {
            match crate::verify::document(&a.name, &a.data, None, policy, ctx) {
                Ok(r) => Some(r.indication),
                Err(VerifyError::NoSignature(_)) => None,
                Err(_) => Some(Indication::TotalFailed),
            }
        } else {
            None
        };
        attachments.push(AttachmentVerdict {
            name: a.name.clone(),
            content_id: a.content_id.clone(),
            intact: !broken_ids.contains(&a.content_id),
            pdf,
        });
    }
    let reason = if !altered.is_empty() {
        Some(altered.join("; "))
    } else if report.indication != Indication::TotalPassed {
        Some(describe(&report))
    } else {
        None
    };
    Ok(PackageVerdict {
        passed: reason.is_none(),
        reason,
        report,
        attachments,
        content_digest,
    })
}

/// The signed parts whose digest fails, named (`MessageHeader`, `attachment 'x.pdf'`), and the
/// ContentIds of the altered attachments.
fn altered_parts(
    parsed: &crate::xml::parse::Parsed<'_>,
) -> Result<(Vec<String>, Vec<String>), EdxmlError> {
    let ids = IdIndex::build(&parsed.doc, Profile::Edxml.id_attributes())?;
    let signature = super::trace::signature(parsed.doc.root_element())?;
    let check = dsig::check_signature(parsed, &ids, signature);
    let mut altered = Vec::new();
    let mut broken_ids = Vec::new();
    for r in check.references.iter().filter(|r| !r.digest_ok) {
        let target = r.target.and_then(|t| parsed.doc.get_node(t));
        let part = match target {
            Some(n) if n.tag_name().name() == "Attachment" => {
                broken_ids.push(text_of(n, "ContentId").unwrap_or_default());
                format!(
                    "attachment '{}'",
                    text_of(n, "AttachmentName").unwrap_or_else(|| r.uri.clone())
                )
            }
            Some(n) if r.inside_signature => format!("the signature's {}", n.tag_name().name()),
            Some(n) => n.tag_name().name().to_string(),
            None => format!("reference {}", r.uri),
        };
        altered.push(match &r.problem {
            Some(p) => format!("{part} cannot be checked: {p}"),
            None => format!("{part} was altered after signing (digest mismatch)"),
        });
    }
    Ok((altered, broken_ids))
}

/// `signature TOTAL_FAILED/HASH_FAILURE: notes…` for a report that did not pass.
pub(crate) fn describe(report: &Report) -> String {
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    };
    let notes: Vec<&str> = report
        .signatures
        .iter()
        .flat_map(|s| s.notes.iter().map(String::as_str))
        .collect();
    let mut out = format!(
        "signature {}",
        name(serde_json::to_value(report.indication))
    );
    if let Some(sub) = report.sub_indication {
        out.push('/');
        out.push_str(&name(serde_json::to_value(sub)));
    }
    if !notes.is_empty() {
        out.push_str(": ");
        out.push_str(&notes.join("; "));
    }
    out
}
