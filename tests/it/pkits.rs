//! NIST PKITS (Public Key Interoperability Test Suite, 2011 data) through signgate's path and
//! CRL validation: every signed S/MIME message of the suite is verified with
//! `signgate::verify::document` (detached CMS plus its signed MIME part), offline, with the
//! default initial inputs: the one trust anchor `TrustAnchorRootCertificate`, the certificates
//! and CRLs the message carries (PKITS puts each test's path and CRLs there), a validation time
//! inside every certificate's validity, any policy acceptable.
//!
//! The expected outcome comes from the file names: a test named `Valid…`/`Invalid…` (or, for a
//! test named without either, its end-entity certificate file `Valid…EE.crt`/`Invalid…EE.crt`)
//! must end TOTAL_PASSED, respectively not TOTAL_PASSED for a path or revocation reason (a
//! rejection for a format, digest or signature-value reason would hide a bug and counts as a
//! failure). Tests named with neither (the 4.8 and 4.12 policy tests whose outcome depends on
//! the initial policy set and explicit-policy inputs) are listed as not run.
//!
//! The data is the `x509/PKITS_data` folder of the `cryptography-vectors` PyPI package,
//! pinned in tests/requirements.txt and installed by ./tests/run into the test venv. The test
//! prints a per-section table and fails unless the failing tests are exactly those in
//! tests/data/pkits-known-failures.tsv (so a regression and a fix both show).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use signgate::verify::report::{Indication, SubIndication};
use signgate::verify::{document, Policy, TrustList, ValidationContext};

use crate::common;

/// PKITS section number and title by test-name stem (the name less `Valid`/`Invalid` and
/// `TestN`), from the PKITS document's table of contents.
const SECTIONS: &[(&str, &str)] = &[
    ("Signatures", "4.1"),
    ("CASignature", "4.1"),
    ("EESignature", "4.1"),
    ("DSASignatures", "4.1"),
    ("DSAParameterInheritance", "4.1"),
    ("DSASignature", "4.1"),
    ("CAnotBeforeDate", "4.2"),
    ("EEnotBeforeDate", "4.2"),
    ("pre2000UTCnotBeforeDate", "4.2"),
    ("GeneralizedTimenotBeforeDate", "4.2"),
    ("CAnotAfterDate", "4.2"),
    ("EEnotAfterDate", "4.2"),
    ("pre2000UTCEEnotAfterDate", "4.2"),
    ("GeneralizedTimenotAfterDate", "4.2"),
    ("NameChainingEE", "4.3"),
    ("NameChainingOrder", "4.3"),
    ("NameChainingWhitespace", "4.3"),
    ("NameChainingCapitalization", "4.3"),
    ("NameChainingUIDs", "4.3"),
    ("RFC3280MandatoryAttributeTypes", "4.3"),
    ("RFC3280OptionalAttributeTypes", "4.3"),
    ("UTF8StringEncodedNames", "4.3"),
    ("RolloverfromPrintableStringtoUTF8String", "4.3"),
    ("UTF8StringCaseInsensitiveMatch", "4.3"),
    ("MissingCRL", "4.4"),
    ("RevokedCA", "4.4"),
    ("RevokedEE", "4.4"),
    ("BadCRLSignature", "4.4"),
    ("BadCRLIssuerName", "4.4"),
    ("WrongCRL", "4.4"),
    ("TwoCRLs", "4.4"),
    ("UnknownCRLEntryExtension", "4.4"),
    ("UnknownCRLExtension", "4.4"),
    ("OldCRLnextUpdate", "4.4"),
    ("pre2000CRLnextUpdate", "4.4"),
    ("GeneralizedTimeCRLnextUpdate", "4.4"),
    ("NegativeSerialNumber", "4.4"),
    ("LongSerialNumber", "4.4"),
    ("SeparateCertificateandCRLKeys", "4.4"),
    ("BasicSelfIssuedOldWithNew", "4.5"),
    ("BasicSelfIssuedNewWithOld", "4.5"),
    ("BasicSelfIssuedCRLSigningKey", "4.5"),
    ("MissingbasicConstraints", "4.6"),
    ("cAFalse", "4.6"),
    ("basicConstraintsNotCritical", "4.6"),
    ("pathLenConstraint", "4.6"),
    ("SelfIssuedpathLenConstraint", "4.6"),
    ("keyUsageCriticalkeyCertSignFalse", "4.7"),
    ("keyUsageNotCriticalkeyCertSignFalse", "4.7"),
    ("keyUsageNotCritical", "4.7"),
    ("keyUsageCriticalcRLSignFalse", "4.7"),
    ("keyUsageNotCriticalcRLSignFalse", "4.7"),
    ("AllCertificatesSamePolicy", "4.8"),
    ("AllCertificatesNoPolicies", "4.8"),
    ("DifferentPolicies", "4.8"),
    ("OverlappingPolicies", "4.8"),
    ("AllCertificatesSamePolicies", "4.8"),
    ("AllCertificatesAnyPolicy", "4.8"),
    ("AnyPolicy", "4.8"),
    ("UserNoticeQualifier", "4.8"),
    ("CPSPointerQualifier", "4.8"),
    ("RequireExplicitPolicy", "4.9"),
    ("SelfIssuedrequireExplicitPolicy", "4.9"),
    ("PolicyMapping", "4.10"),
    ("MappingFromanyPolicy", "4.10"),
    ("MappingToanyPolicy", "4.10"),
    ("inhibitPolicyMapping", "4.11"),
    ("SelfIssuedinhibitPolicyMapping", "4.11"),
    ("inhibitAnyPolicy", "4.12"),
    ("SelfIssuedinhibitAnyPolicy", "4.12"),
    ("DNnameConstraints", "4.13"),
    ("SelfIssuedDNnameConstraints", "4.13"),
    ("RFC822nameConstraints", "4.13"),
    ("DNandRFC822nameConstraints", "4.13"),
    ("DNSnameConstraints", "4.13"),
    ("URInameConstraints", "4.13"),
    ("distributionPoint", "4.14"),
    ("NoissuingDistributionPoint", "4.14"),
    ("onlyContainsUserCertsCRL", "4.14"),
    ("onlyContainsCACertsCRL", "4.14"),
    ("onlyContainsAttributeCerts", "4.14"),
    ("onlySomeReasons", "4.14"),
    ("IDPwithindirectCRL", "4.14"),
    ("cRLIssuer", "4.14"),
    ("deltaCRLIndicatorNoBase", "4.15"),
    ("deltaCRL", "4.15"),
    ("UnknownNotCriticalCertificateExtension", "4.16"),
    ("UnknownCriticalCertificateExtension", "4.16"),
];

/// The outcome PKITS expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Valid,
    Invalid,
}

/// One PKITS test: its name (the S/MIME file's, less `Signed` and `.eml`), section number
/// and number within the section, and the expected outcome (`None`: not run).
struct Case {
    name: String,
    section: &'static str,
    number: u32,
    expected: Option<Expected>,
}

/// What one run gave.
enum Outcome {
    Pass,
    Fail(String),
    NotRun,
}

fn expected_from_name(name: &str) -> Option<Expected> {
    if name.starts_with("Valid") {
        Some(Expected::Valid)
    } else if name.starts_with("Invalid") {
        Some(Expected::Invalid)
    } else {
        None
    }
}

fn case(name: &str, certs: &Path) -> Case {
    let number_at = name.rfind("Test").expect("PKITS test names end in TestN");
    let number = name[number_at + 4..]
        .parse()
        .expect("PKITS test names end in TestN");
    let stem = &name[..number_at];
    let stem = stem
        .strip_prefix("Invalid")
        .or_else(|| stem.strip_prefix("Valid"))
        .unwrap_or(stem);
    let section = SECTIONS
        .iter()
        .find(|(s, _)| *s == stem)
        .map(|(_, section)| *section)
        .unwrap_or_else(|| panic!("PKITS test {name}: stem {stem} has no section"));
    // A test named without Valid/Invalid takes its end-entity certificate file's prefix, when
    // that file is named after the test (e.g. InvalidMissingCRLTest1EE.crt for MissingCRLTest1).
    let expected = expected_from_name(name).or_else(|| {
        ["Valid", "Invalid"]
            .iter()
            .map(|p| format!("{p}{name}EE.crt"))
            .find(|f| certs.join(f).is_file())
            .and_then(|f| expected_from_name(&f))
    });
    Case {
        name: name.to_string(),
        section,
        number,
        expected,
    }
}

/// Splits a PKITS multipart/signed message into the signed MIME part (CRLF line ends, as it
/// was signed) and the DER of its application/pkcs7-signature part.
fn split_smime(eml: &str) -> (Vec<u8>, Vec<u8>) {
    use base64::Engine;
    let boundary = eml
        .split("boundary=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("multipart/signed boundary");
    let delimiter = format!("--{boundary}");
    let parts: Vec<&str> = eml.split(delimiter.as_str()).collect();
    assert!(parts.len() >= 4, "two parts and a close delimiter");
    let crlf = |s: &str| s.replace("\r\n", "\n").replace('\n', "\r\n");
    // The part starts after the delimiter's line end and ends before the next delimiter's
    // preceding line end (RFC 2046 §5.1.1).
    let signed = crlf(parts[1]);
    let signed = signed
        .strip_prefix("\r\n")
        .and_then(|s| s.strip_suffix("\r\n"))
        .expect("part framing");
    let sig_part = crlf(parts[2]);
    let body = sig_part
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .expect("signature part body");
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 signature part");
    (signed.as_bytes().to_vec(), der)
}

/// The `x509/PKITS_data` folder of the cryptography-vectors package in the test venv.
fn pkits_dir() -> Option<PathBuf> {
    let python = common::venv_dir().join("bin/python");
    let found = std::process::Command::new(&python)
        .args([
            "-c",
            "import cryptography_vectors, os; print(os.path.dirname(cryptography_vectors.__file__))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("x509/PKITS_data")
        });
    let dir = found.unwrap_or_else(|| common::venv_dir().join("cryptography_vectors-missing"));
    common::require_file(
        &dir.join("smime"),
        "PKITS data of the cryptography-vectors package (tests/requirements.txt)",
    )
    .then_some(dir)
}

/// The known failures: test name → reason, from tests/data/pkits-known-failures.tsv.
fn known_failures() -> BTreeMap<String, String> {
    let path = common::repo_root().join("tests/data/pkits-known-failures.tsv");
    let text = std::fs::read_to_string(&path).expect("tests/data/pkits-known-failures.tsv");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, reason) = l.split_once('\t').expect("name<TAB>reason");
            assert!(
                !reason.trim().is_empty(),
                "{name}: a known failure needs its reason"
            );
            (name.to_string(), reason.to_string())
        })
        .collect()
}

/// Runs one test through `verify::document`.
fn run(case: &Case, smime: &Path, ctx: &ValidationContext) -> Outcome {
    let Some(expected) = case.expected else {
        return Outcome::NotRun;
    };
    let eml = std::fs::read_to_string(smime.join(format!("Signed{}.eml", case.name)))
        .expect("PKITS message");
    let (content, der) = split_smime(&eml);
    let report = match document(&case.name, &der, Some(&content), &Policy::default(), ctx) {
        Ok(r) => r,
        Err(e) => return Outcome::Fail(format!("not verified at all: {e}")),
    };
    let sig = &report.signatures[0];
    let why = || {
        format!(
            "{:?} {:?}: {}",
            sig.indication,
            sig.sub_indication,
            sig.notes.join("; ")
        )
    };
    match (expected, sig.indication) {
        (Expected::Valid, Indication::TotalPassed) => Outcome::Pass,
        (Expected::Valid, _) => Outcome::Fail(format!("expected valid, got {}", why())),
        (Expected::Invalid, Indication::TotalPassed) => {
            Outcome::Fail("expected invalid, got TotalPassed".into())
        }
        (Expected::Invalid, _) => match sig.sub_indication {
            Some(
                SubIndication::FormatFailure
                | SubIndication::HashFailure
                | SubIndication::SigCryptoFailure,
            ) => Outcome::Fail(format!(
                "rejected for a reason that is not the path's: {}",
                why()
            )),
            _ => Outcome::Pass,
        },
    }
}

#[test]
fn pkits_path_validation_conformance() {
    let Some(dir) = pkits_dir() else { return };
    let (certs, smime) = (dir.join("certs"), dir.join("smime"));
    let anchor = TrustList::load("pkits", &certs.join("TrustAnchorRootCertificate.crt"))
        .expect("PKITS trust anchor");
    // Every PKITS certificate is valid from 2010-01-01 to 2030-12-31 except the ones whose
    // dates the 4.2 tests are about.
    let ctx = ValidationContext {
        at: time::macros::datetime!(2020-06-01 12:00 UTC),
        trust_lists: vec![anchor],
        fetcher: None,
    };
    let mut names: Vec<String> = std::fs::read_dir(&smime)
        .expect("smime folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| Some(f.strip_prefix("Signed")?.strip_suffix(".eml")?.to_string()))
        .collect();
    names.sort();
    assert!(
        names.len() >= 200,
        "only {} PKITS messages found",
        names.len()
    );
    let mut cases: Vec<Case> = names.iter().map(|n| case(n, &certs)).collect();
    let section_key =
        |s: &str| -> Vec<u32> { s.split('.').filter_map(|p| p.parse().ok()).collect() };
    cases.sort_by(|a, b| {
        (section_key(a.section), a.number).cmp(&(section_key(b.section), b.number))
    });

    // section → (run, passed, not run)
    let mut table: BTreeMap<Vec<u32>, (&str, u32, u32, u32)> = BTreeMap::new();
    let mut failing: BTreeMap<String, String> = BTreeMap::new();
    let mut not_run = Vec::new();
    for case in &cases {
        let row = table
            .entry(section_key(case.section))
            .or_insert((case.section, 0, 0, 0));
        match run(case, &smime, &ctx) {
            Outcome::Pass => {
                row.1 += 1;
                row.2 += 1;
            }
            Outcome::Fail(why) => {
                row.1 += 1;
                failing.insert(case.name.clone(), why);
            }
            Outcome::NotRun => {
                row.3 += 1;
                not_run.push(format!("{}.{} {}", case.section, case.number, case.name));
            }
        }
    }

    println!("PKITS section   run  passed  not run");
    let (mut run_total, mut pass_total, mut not_run_total) = (0, 0, 0);
    for (section, run, passed, skipped) in table.values() {
        println!("{section:<14} {run:>4} {passed:>7} {skipped:>8}");
        run_total += run;
        pass_total += passed;
        not_run_total += skipped;
    }
    println!(
        "{:<14} {run_total:>4} {pass_total:>7} {not_run_total:>8}",
        "total"
    );
    println!("not run (the outcome depends on the initial policy inputs):");
    for n in &not_run {
        println!("  {n}");
    }
    println!("failing:");
    for (name, why) in &failing {
        println!("  {name}: {why}");
    }

    let known = known_failures();
    let failing_names: BTreeSet<&String> = failing.keys().collect();
    let known_names: BTreeSet<&String> = known.keys().collect();
    let new: Vec<_> = failing_names.difference(&known_names).collect();
    let fixed: Vec<_> = known_names.difference(&failing_names).collect();
    assert!(
        new.is_empty() && fixed.is_empty(),
        "PKITS: {pass_total} of {run_total} pass; failing but not in \
         tests/data/pkits-known-failures.tsv: {new:?}; listed there but passing now (remove them): {fixed:?}"
    );
    assert_eq!(pass_total as usize, run_total as usize - known.len());
}
