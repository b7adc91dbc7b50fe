//! Whether a file carries an intact signature made with one given certificate: no trust
//! list, no revocation, no clock. The batch engine uses it on resume, for an output an
//! earlier run named but did not get to record in its journal (see [`crate::batch`]).

use std::ops::Range;

use openssl::x509::X509Ref;

use super::pdf;
use super::signer::{self, Parts};
use crate::xml::dsig::{self, IdIndex};
use crate::xml::{parse, Limits, Profile};

/// The PDF `signed` has a signature by `cert` whose byte ranges cover the whole file (so it
/// was the last one made), with its message digest and signature value intact.
pub fn pdf_signed_by(signed: &[u8], cert: &X509Ref) -> bool {
    let Ok(found) = pdf::signatures(signed) else {
        return false;
    };
    found.signatures.iter().any(|sig| {
        let [(a, b), (c, d)] = sig.ranges;
        sig.whole_file
            && sig.byte_range_problems.is_empty()
            && cms_over(&sig.contents, &[&signed[a..a + b], &signed[c..c + d]], cert)
    })
}

/// The detached CMS `signature` signs `content` with `cert`, intact.
pub fn cms_signed_by(signature: &[u8], content: &[u8], cert: &X509Ref) -> bool {
    cms_over(signature, &[content], cert)
}

/// The XML document `signed` has a `ds:Signature` by `cert` lying within the bytes
/// `within`, with every reference digest and the signature value intact. IDs are looked up
/// under `profile` (else the one the root element names).
pub fn xml_signed_by(
    signed: &[u8],
    cert: &X509Ref,
    within: Range<usize>,
    profile: Option<Profile>,
) -> bool {
    let Ok(parsed) = parse::parse(signed, &Limits::default()) else {
        return false;
    };
    let profile = profile.unwrap_or_else(|| Profile::detect(&parsed.doc));
    let Ok(ids) = IdIndex::build(&parsed.doc, profile.id_attributes()) else {
        return false;
    };
    dsig::find_signatures(&parsed.doc).into_iter().any(|sig| {
        let range = sig.range();
        let (start, end) = (range.start + parsed.offset, range.end + parsed.offset);
        start >= within.start && end <= within.end && {
            let check = dsig::check_signature(&parsed, &ids, sig);
            check.digests_ok()
                && check.signature_ok
                && check
                    .certificate
                    .is_some_and(|c| same_certificate(&c, cert))
        }
    })
}

/// The first SignerInfo of the SignedData `der` signs `parts` with `cert`, intact.
fn cms_over(der: &[u8], parts: &[&[u8]], cert: &X509Ref) -> bool {
    let Ok(parsed) = crate::cms::parse_signed_data(der) else {
        return false;
    };
    parsed.signer_infos.first().is_some_and(|info| {
        let facts = signer::check_signer(&parsed, info, &Parts(parts), &[]);
        facts.hash_ok
            && facts.signature_ok
            && facts
                .certificate
                .is_some_and(|c| same_certificate(&c, cert))
    })
}

fn same_certificate(a: &X509Ref, b: &X509Ref) -> bool {
    matches!((a.to_der(), b.to_der()), (Ok(a), Ok(b)) if a == b)
}
