//! XML signatures: W3C canonicalization vectors, xmlsec1 interop both ways for every profile
//! and algorithm, RSA-PSS checked with Python `cryptography` + lxml, a tampered corpus
//! (amount change, moved signature, duplicated ID, wrapping, namespace and prefix tricks)
//! judged against xmlsec1, and hostile inputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

fn demo(name: &str) -> PathBuf {
    repo_root().join("certs/demo").join(name)
}

fn xml_data(name: &str) -> PathBuf {
    repo_root().join("tests/data/xml").join(name)
}

const EDXML_NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";

/// One profile with its sample, its xmlsec1 ID attributes, the template insertion point and
/// the element path the signature must report.
struct Case {
    profile: &'static str,
    file: &'static str,
    id_attrs: Vec<String>,
    /// (text in the sample, replacement with `{SIG}` where the template goes)
    splice: (&'static str, &'static str),
    /// References of an xmlsec1 template: (URI, transforms).
    refs: Vec<(&'static str, Vec<&'static str>)>,
    c14n: &'static str,
    element_path: &'static str,
}

const ENV: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const C14N_COMMENTS: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments";
const EXC: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

fn cases() -> Vec<Case> {
    vec![
        Case {
            profile: "tax",
            file: "tax.xml",
            id_attrs: vec!["http://kekhaithue.gdt.gov.vn/TKhaiThue:HSoKhaiThue".into()],
            splice: ("<CKyDTu></CKyDTu>", "<CKyDTu>{SIG}</CKyDTu>"),
            refs: vec![("#_NODE_TO_SIGN", vec![ENV, C14N_COMMENTS])],
            c14n: C14N_COMMENTS,
            element_path: "/HSoThueDTu/HSoKhaiThue",
        },
        Case {
            profile: "social-insurance",
            file: "social.xml",
            id_attrs: vec![],
            splice: ("<CKy_Dvi/>", "<CKy_Dvi>{SIG}</CKy_Dvi>"),
            refs: vec![("", vec![ENV, C14N])],
            c14n: C14N,
            element_path: "/Hoso",
        },
        Case {
            profile: "e-invoice",
            file: "einvoice.xml",
            id_attrs: vec!["DLHDon".into()],
            splice: ("<NBan></NBan>", "<NBan>{SIG}</NBan>"),
            refs: vec![("#data", vec![ENV, C14N])],
            c14n: C14N,
            element_path: "/HDon/DLHDon",
        },
        Case {
            profile: "edxml",
            file: "edxml.xml",
            id_attrs: ["MessageHeader", "edXMLBody", "Attachment"]
                .iter()
                .map(|n| format!("{EDXML_NS}:{n}"))
                .collect(),
            splice: ("</edXML:edXMLHeader>", "{SIG}</edXML:edXMLHeader>"),
            refs: vec![
                ("#MessageHeader", vec![EXC]),
                ("#Body", vec![EXC]),
                ("#att1", vec![EXC]),
            ],
            c14n: EXC,
            element_path: "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader, /edXML/edXMLEnvelope/edXMLBody, /edXML/AttachmentEncoded/Attachment",
        },
        Case {
            profile: "enveloped",
            file: "generic.xml",
            id_attrs: vec![],
            splice: ("</p:QuyetDinh>", "{SIG}</p:QuyetDinh>"),
            refs: vec![("", vec![ENV, C14N])],
            c14n: C14N,
            element_path: "/QuyetDinh",
        },
    ]
}

const DIGESTS: [(&str, &str); 3] = [
    ("sha256", "http://www.w3.org/2001/04/xmlenc#sha256"),
    ("sha384", "http://www.w3.org/2001/04/xmldsig-more#sha384"),
    ("sha512", "http://www.w3.org/2001/04/xmlenc#sha512"),
];

fn signgate_sign(input: &Path, key: &str, args: &[&str]) -> PathBuf {
    let out = scratch_path("xml-signed", "xml");
    let o = run(signgate(["sign", "--key"])
        .arg(demo(key))
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(&out)
        .args(args)
        .env("SIGNGATE_KEY_PASSWORD", "demo"));
    assert_exit(&o, 0, "signgate sign");
    out
}

fn xmlsec_verify(file: &Path, id_attrs: &[String]) -> Output {
    let mut cmd = Command::new("xmlsec1");
    cmd.arg("--verify")
        .arg("--trusted-pem")
        .arg(demo("root-ca.pem"))
        .arg("--untrusted-pem")
        .arg(demo("issuing-ca.pem"));
    for a in id_attrs {
        cmd.arg(format!("--id-attr:{}", id_attr_name(a))).arg(a);
    }
    run(cmd.arg(file))
}

/// `id` for the tax declaration, `Id` elsewhere.
fn id_attr_name(node: &str) -> &'static str {
    if node.ends_with(":HSoKhaiThue") {
        "id"
    } else {
        "Id"
    }
}

fn assert_report_matches_schema(report: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("schemas/validation-report.v1.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "report violates the schema: {errors:?}\n{report:#}"
    );
}

/// `signgate verify --offline` → (exit code, report); the report is schema-checked.
fn verify(file: &Path) -> (i32, Value) {
    let o = run(signgate(["verify", "--offline", "--trust"])
        .arg(demo("root-ca.pem"))
        .arg(file));
    let code = o.status.code().unwrap_or(-1);
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}), exit {code}: {}", stderr_str(&o)));
    assert_report_matches_schema(&report);
    (code, report)
}

/// Offline, an intact signature by a demo certificate ends INDETERMINATE/TRY_LATER: the
/// chain and usage passed, only revocation data is missing.
fn assert_intact_offline(report: &Value, what: &str) {
    let s = &report["signatures"][0];
    assert_eq!(report["format"], "xml");
    assert_eq!(s["intact"], true, "{what}: {report:#}");
    assert_eq!(s["sub_indication"], "TRY_LATER", "{what}: {report:#}");
}

// ---------------------------------------------------------------------------------------
// Canonicalization vectors
// ---------------------------------------------------------------------------------------

#[test]
fn c14n_w3c_vectors() {
    use signgate::xml::c14n::{self, Method, Subset};
    let dir = xml_data("c14n");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".input.xml") else {
            continue;
        };
        let input = std::fs::read(&path).unwrap();
        let parsed = signgate::xml::parse::parse(&input, &Default::default()).unwrap();
        let apex = if stem.starts_with("exc-2.2") {
            parsed
                .doc
                .descendants()
                .find(|n| n.has_tag_name(("http://example.net", "elem2")))
                .unwrap()
        } else {
            parsed.doc.root()
        };
        for (suffix, uris) in [
            ("c14n", vec![c14n::C14N10, c14n::C14N11]),
            (
                "c14n-comments",
                vec![c14n::C14N10_COMMENTS, c14n::C14N11_COMMENTS],
            ),
            ("exc-c14n", vec![c14n::EXC_C14N]),
        ] {
            let expected_path = dir.join(format!("{stem}.{suffix}.xml"));
            let Ok(expected) = std::fs::read_to_string(&expected_path) else {
                continue;
            };
            for uri in uris {
                let method = Method::from_uri(uri, Vec::new()).unwrap();
                let subset = Subset {
                    apex,
                    exclude: None,
                    comments: true,
                };
                let got = c14n::canonicalize(parsed.text, subset, &method).unwrap();
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    expected,
                    "{stem} with {uri}"
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 10, "only {ran} vector runs");
}

// ---------------------------------------------------------------------------------------
// signgate → xmlsec1
// ---------------------------------------------------------------------------------------

/// The output is the input with only the Signature element inserted (a self-closing
/// container is opened to hold it).
fn assert_only_signature_inserted(input: &[u8], output: &[u8], case: &Case) {
    let out = String::from_utf8(output.to_vec()).unwrap();
    let start = out.find("<Signature xmlns=").expect("signature start");
    let end = out.find("</Signature>").expect("signature end") + "</Signature>".len();
    let without = format!("{}{}", &out[..start], &out[end..]);
    let mut expected = String::from_utf8(input.to_vec()).unwrap();
    if case.splice.0.ends_with("/>") {
        let open = case.splice.1.replace("{SIG}", "");
        expected = expected.replace(case.splice.0, &open);
    }
    assert_eq!(
        without, expected,
        "{}: bytes other than the Signature changed",
        case.profile
    );
}

#[test]
fn signgate_signatures_verify_with_xmlsec1() {
    let Some(_) = require_tool("xmlsec1") else {
        return;
    };
    for case in cases() {
        let input = std::fs::read(xml_data(case.file)).unwrap();
        for key in ["agency-signer.p12", "agency-signer-ec.p12"] {
            for (digest, _) in DIGESTS {
                let signed = signgate_sign(
                    &xml_data(case.file),
                    key,
                    &[
                        "--format",
                        "xml",
                        "--profile",
                        case.profile,
                        "--digest",
                        digest,
                    ],
                );
                let what = format!("{} {key} {digest}", case.profile);
                let out = xmlsec_verify(&signed, &case.id_attrs);
                assert!(
                    out.status.success(),
                    "xmlsec1 rejects {what}: {}",
                    stderr_str(&out)
                );
                let (code, report) = verify(&signed);
                assert_eq!(code, 2, "{what}");
                assert_intact_offline(&report, &what);
                assert_eq!(
                    report["signatures"][0]["coverage"]["element_path"], case.element_path,
                    "{what}"
                );
                assert!(report["signatures"][0]["claimed_signing_time"].is_string());
                assert_only_signature_inserted(&input, &std::fs::read(&signed).unwrap(), &case);
            }
        }
    }
}

#[test]
fn profile_is_detected_from_the_root_element() {
    let Some(_) = require_tool("xmlsec1") else {
        return;
    };
    // --format xml without --profile: after a BOM and whitespace, the root element picks tax.
    let tax = std::fs::read_to_string(xml_data("tax.xml")).unwrap();
    let body = &tax[tax.find("?>").unwrap() + 2..];
    let mut input = b"\xEF\xBB\xBF".to_vec();
    input.extend(body.as_bytes());
    let path = scratch_path("bom-tax", "xml");
    std::fs::write(&path, &input).unwrap();
    let signed = signgate_sign(&path, "organization.p12", &["--format", "xml"]);
    let bytes = std::fs::read(&signed).unwrap();
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBF\n<HSoThueDTu"),
        "BOM and leading bytes kept"
    );
    let out = xmlsec_verify(&signed, &cases()[0].id_attrs);
    assert!(out.status.success(), "{}", stderr_str(&out));
    let (_, report) = verify(&signed);
    assert_intact_offline(&report, "detected tax");
    let ids = &report["signatures"][0]["signer"]["identifiers"];
    assert_eq!(ids[0]["type"], "MST", "{report:#}");
    // A profile that does not fit the document: its own code, exit 65, no output.
    let out_path = scratch_path("mismatch", "xml");
    let o = run(signgate(["sign", "--key"])
        .arg(demo("organization.p12"))
        .arg("--in")
        .arg(xml_data("tax.xml"))
        .arg("--out")
        .arg(&out_path)
        .args(["--profile", "e-invoice"])
        .env("SIGNGATE_KEY_PASSWORD", "demo"));
    assert_exit(&o, 65, "profile mismatch");
    assert!(
        stderr_str(&o).contains("XML_PROFILE_MISMATCH"),
        "{}",
        stderr_str(&o)
    );
    assert!(!out_path.exists());
}

// ---------------------------------------------------------------------------------------
// xmlsec1 → signgate
// ---------------------------------------------------------------------------------------

/// Extracts a PEM key and certificate from a demo PKCS#12 for xmlsec1.
fn pem_pair(p12: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{p12}.key.pem"));
    let cert = dir.join(format!("{p12}.cert.pem"));
    for (what, path) in [("-nocerts", &key), ("-clcerts", &cert)] {
        run_ok(
            Command::new("openssl")
                .args(["pkcs12", "-in"])
                .arg(demo(p12))
                .args(["-passin", "pass:demo", "-nodes", what, "-out"])
                .arg(path),
        );
    }
    (key, cert)
}

fn template(case: &Case, sig_alg: &str, digest_uri: &str) -> String {
    let mut refs = String::new();
    for (uri, transforms) in &case.refs {
        refs.push_str(&format!("<ds:Reference URI=\"{uri}\"><ds:Transforms>"));
        for t in transforms {
            refs.push_str(&format!("<ds:Transform Algorithm=\"{t}\"/>"));
        }
        refs.push_str(&format!(
            "</ds:Transforms><ds:DigestMethod Algorithm=\"{digest_uri}\"/><ds:DigestValue/></ds:Reference>"
        ));
    }
    refs.push_str(&format!(
        "<ds:Reference URI=\"#xs-time\"><ds:DigestMethod Algorithm=\"{digest_uri}\"/><ds:DigestValue/></ds:Reference>"
    ));
    format!(
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" Id=\"xs-sig\">\n<ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"{}\"/><ds:SignatureMethod Algorithm=\"{sig_alg}\"/>{refs}</ds:SignedInfo>\n<ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509SubjectName/><ds:X509Certificate/></ds:X509Data></ds:KeyInfo><ds:Object Id=\"xs-time\"><ds:SignatureProperties><ds:SignatureProperty Target=\"#xs-sig\"><SigningTime xmlns=\"urn:example:props\">2025-07-01T09:30:00+07:00</SigningTime></ds:SignatureProperty></ds:SignatureProperties></ds:Object></ds:Signature>",
        case.c14n
    )
}

#[test]
fn xmlsec1_signatures_verify_in_signgate() {
    if !require_tools(&["xmlsec1", "openssl"]) {
        return;
    }
    let dir = tempdir();
    for (p12, family) in [
        ("agency-signer.p12", "rsa"),
        ("agency-signer-ec.p12", "ecdsa"),
    ] {
        let (key, cert) = pem_pair(p12, dir.path());
        for case in cases() {
            for (digest, digest_uri) in DIGESTS {
                let alg = format!("http://www.w3.org/2001/04/xmldsig-more#{family}-{digest}");
                let sample = std::fs::read_to_string(xml_data(case.file)).unwrap();
                let tpl = sample.replacen(
                    case.splice.0,
                    &case
                        .splice
                        .1
                        .replace("{SIG}", &template(&case, &alg, digest_uri)),
                    1,
                );
                let tpl_path = dir
                    .path()
                    .join(format!("{}-{family}-{digest}.tpl.xml", case.profile));
                std::fs::write(&tpl_path, tpl).unwrap();
                let signed = dir
                    .path()
                    .join(format!("{}-{family}-{digest}.xml", case.profile));
                let mut cmd = Command::new("xmlsec1");
                cmd.arg("--sign").arg("--privkey-pem").arg(format!(
                    "{},{},{}",
                    key.display(),
                    cert.display(),
                    demo("issuing-ca.pem").display()
                ));
                for a in &case.id_attrs {
                    cmd.arg(format!("--id-attr:{}", id_attr_name(a))).arg(a);
                }
                cmd.arg("--output").arg(&signed).arg(&tpl_path);
                run_ok(&mut cmd);
                let what = format!("xmlsec1 {} {family} {digest}", case.profile);
                let (code, report) = verify(&signed);
                assert_eq!(code, 2, "{what}: {report:#}");
                assert_intact_offline(&report, &what);
                let s = &report["signatures"][0];
                assert_eq!(s["coverage"]["element_path"], case.element_path, "{what}");
                assert_eq!(s["claimed_signing_time"], "2025-07-01T02:30:00Z", "{what}");
                assert_eq!(s["id"], "xs-sig");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// RSA-PSS (xmlsec1 1.2.37 lacks it): round trip + an independent check in Python
// ---------------------------------------------------------------------------------------

/// Verifies RSASSA-PSS over a canonical SignedInfo given as a file (argv[2]) with the first
/// certificate of the signed document (argv[1]); hash from argv[3]. Python `cryptography` only.
const PSS_CHECK: &str = r##"
import base64, re, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
doc = open(sys.argv[1], encoding="utf-8").read()
octets = open(sys.argv[2], "rb").read()
h = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[sys.argv[3]]
value = base64.b64decode("".join(re.search(r"<SignatureValue>(.*?)</SignatureValue>", doc, re.S).group(1).split()))
der = base64.b64decode("".join(re.search(r"<X509Certificate>(.*?)</X509Certificate>", doc, re.S).group(1).split()))
key = x509.load_der_x509_certificate(der).public_key()
key.verify(value, octets, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
print("PSS OK")
"##;

/// The canonical SignedInfo as libxml2/xmlsec1 computes it. xmlsec1 1.2.37 has no PSS, so it
/// is shown a copy naming rsa-SHA-x instead (same length class of change: one attribute
/// value), and the PSS URI is put back into its canonical bytes.
fn xmlsec1_canonical_signed_info(signed: &Path, digest: &str, id_attrs: &[String]) -> Vec<u8> {
    let pss = format!("http://www.w3.org/2007/05/xmldsig-more#{digest}-rsa-MGF1");
    let pkcs1 = format!("http://www.w3.org/2001/04/xmldsig-more#rsa-{digest}");
    let copy = scratch_path("pss-as-pkcs1", "xml");
    std::fs::write(
        &copy,
        std::fs::read_to_string(signed)
            .unwrap()
            .replace(&pss, &pkcs1),
    )
    .unwrap();
    let mut cmd = Command::new("xmlsec1");
    cmd.args(["--verify", "--store-signatures", "--trusted-pem"])
        .arg(demo("root-ca.pem"))
        .arg("--untrusted-pem")
        .arg(demo("issuing-ca.pem"));
    for a in id_attrs {
        cmd.arg(format!("--id-attr:{}", id_attr_name(a))).arg(a);
    }
    let out = run(cmd.arg(&copy));
    let text = format!("{}{}", stdout_str(&out), stderr_str(&out));
    let start = text
        .find("== PreSigned data - start buffer:\n")
        .unwrap_or_else(|| panic!("xmlsec1 showed no PreSigned data: {text}"))
        + "== PreSigned data - start buffer:\n".len();
    let end = start
        + text[start..]
            .find("\n== PreSigned data - end buffer")
            .unwrap();
    text[start..end].replace(&pkcs1, &pss).into_bytes()
}

#[test]
fn rsa_pss_round_trip_and_independent_check() {
    let Some(_) = require_tool("xmlsec1") else {
        return;
    };
    let python = venv_dir().join("bin/python");
    if !require_file(&python, "the test venv (Python cryptography)") {
        return;
    }
    let script = scratch_path("pss-check", "py");
    std::fs::write(&script, PSS_CHECK).unwrap();
    let id_attrs = &cases()[0].id_attrs;
    for (digest, _) in DIGESTS {
        let signed = signgate_sign(
            &xml_data("tax.xml"),
            "organization.p12",
            &[
                "--format",
                "xml",
                "--rsa-padding",
                "pss",
                "--digest",
                digest,
            ],
        );
        let text = std::fs::read_to_string(&signed).unwrap();
        assert!(
            text.contains(&format!("xmldsig-more#{digest}-rsa-MGF1")),
            "RFC 9231 URI"
        );
        let (_, report) = verify(&signed);
        assert_intact_offline(&report, &format!("PSS {digest}"));
        let canonical = scratch_path("signed-info", "xml");
        std::fs::write(
            &canonical,
            xmlsec1_canonical_signed_info(&signed, digest, id_attrs),
        )
        .unwrap();
        let out = run(Command::new(&python)
            .arg(&script)
            .arg(&signed)
            .arg(&canonical)
            .arg(digest));
        assert!(
            out.status.success() && stdout_str(&out).contains("PSS OK"),
            "python rejects PSS {digest}: {}{}",
            stdout_str(&out),
            stderr_str(&out)
        );
        // The independent check can fail: a changed SignedInfo is caught.
        let mut bad = std::fs::read(&canonical).unwrap();
        let pos = bad.len() / 2;
        bad[pos] ^= 1;
        std::fs::write(&canonical, bad).unwrap();
        let out = run(Command::new(&python)
            .arg(&script)
            .arg(&signed)
            .arg(&canonical)
            .arg(digest));
        assert!(
            !out.status.success(),
            "python accepted a changed SignedInfo"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tampered corpus, judged against xmlsec1
// ---------------------------------------------------------------------------------------

struct Tamper {
    name: &'static str,
    edit: Box<dyn Fn(&str) -> String>,
    /// Expected (exit code, signature indication, sub-indication) or an error code (exit 65).
    expect: Result<(i32, &'static str, &'static str), &'static str>,
    /// Digests and signature still verify (what xmlsec1 must also say).
    crypto_ok: bool,
}

fn tampers() -> Vec<Tamper> {
    let sig_block = |s: &str| -> (usize, usize) {
        let a = s.find("<Signature xmlns=").unwrap();
        let b = s.find("</Signature>").unwrap() + "</Signature>".len();
        (a, b)
    };
    vec![
        Tamper {
            name: "changed amount",
            edit: Box::new(|s| s.replace("<ct23>125000000</ct23>", "<ct23>925000000</ct23>")),
            expect: Ok((1, "TOTAL_FAILED", "HASH_FAILURE")),
            crypto_ok: false,
        },
        Tamper {
            name: "comment injected into signed text",
            edit: Box::new(|s| {
                s.replace("<ct23>125000000</ct23>", "<ct23>125<!-- x -->000000</ct23>")
            }),
            expect: Ok((2, "INDETERMINATE", "TRY_LATER")),
            crypto_ok: true,
        },
        Tamper {
            name: "same namespace re-declared on the signed element",
            edit: Box::new(|s| {
                s.replace(
                    "<HSoKhaiThue id=",
                    "<HSoKhaiThue xmlns=\"http://kekhaithue.gdt.gov.vn/TKhaiThue\" id=",
                )
            }),
            expect: Ok((2, "INDETERMINATE", "TRY_LATER")),
            crypto_ok: true,
        },
        Tamper {
            name: "signed element moved to another namespace",
            edit: Box::new(|s| {
                s.replace("<HSoKhaiThue id=", "<HSoKhaiThue xmlns=\"urn:evil\" id=")
            }),
            expect: Ok((1, "TOTAL_FAILED", "HASH_FAILURE")),
            crypto_ok: false,
        },
        Tamper {
            name: "prefix added to the signed element (same URI)",
            edit: Box::new(|s| {
                s.replace(
                    "<HSoKhaiThue id=",
                    "<t:HSoKhaiThue xmlns:t=\"http://kekhaithue.gdt.gov.vn/TKhaiThue\" id=",
                )
                .replace("</HSoKhaiThue>", "</t:HSoKhaiThue>")
            }),
            expect: Ok((1, "TOTAL_FAILED", "HASH_FAILURE")),
            crypto_ok: false,
        },
        Tamper {
            name: "xml:space on an ancestor (inherited by inclusive C14N)",
            edit: Box::new(|s| {
                s.replacen("<HSoThueDTu ", "<HSoThueDTu xml:space=\"preserve\" ", 1)
            }),
            expect: Ok((1, "TOTAL_FAILED", "HASH_FAILURE")),
            crypto_ok: false,
        },
        Tamper {
            name: "signature moved out of CKyDTu",
            edit: Box::new(move |s| {
                let (a, b) = sig_block(s);
                let sig = s[a..b].to_string();
                let rest = format!("{}{}", &s[..a], &s[b..]);
                rest.replace("</HSoThueDTu>", &format!("{sig}</HSoThueDTu>"))
            }),
            expect: Ok((1, "TOTAL_FAILED", "FORMAT_FAILURE")),
            crypto_ok: true,
        },
        Tamper {
            name: "duplicated ID",
            edit: Box::new(|s| s.replace("<CKyDTu>", "<CKyDTu><Ghi id=\"_NODE_TO_SIGN\"/>")),
            expect: Err("XML_DUPLICATE_ID"),
            crypto_ok: false,
        },
        Tamper {
            name: "wrapping attack: original moved under a wrapper, forged declaration in place",
            edit: Box::new(|s| {
                let a = s.find("<HSoKhaiThue").unwrap();
                let b = s.find("</HSoKhaiThue>").unwrap() + "</HSoKhaiThue>".len();
                let original = &s[a..b];
                let forged = original
                    .replace("id=\"_NODE_TO_SIGN\"", "id=\"forged\"")
                    .replace("<ct23>125000000</ct23>", "<ct23>1</ct23>");
                format!(
                    "{}{forged}<Wrapper>{original}</Wrapper>{}",
                    &s[..a],
                    &s[b..]
                )
            }),
            expect: Ok((1, "TOTAL_FAILED", "FORMAT_FAILURE")),
            crypto_ok: true,
        },
    ]
}

#[test]
fn tampered_corpus_fails_like_xmlsec1() {
    let Some(_) = require_tool("xmlsec1") else {
        return;
    };
    let signed = signgate_sign(
        &xml_data("tax.xml"),
        "organization.p12",
        &["--profile", "tax"],
    );
    let original = std::fs::read_to_string(&signed).unwrap();
    let id_attrs = &cases()[0].id_attrs;
    for t in tampers() {
        let path = scratch_path("tampered", "xml");
        let text = (t.edit)(&original);
        assert_ne!(text, original, "{}: the edit changed nothing", t.name);
        std::fs::write(&path, &text).unwrap();
        let o = run(signgate(["verify", "--offline", "--trust"])
            .arg(demo("root-ca.pem"))
            .arg(&path));
        match t.expect {
            Ok((code, indication, sub)) => {
                assert_eq!(
                    o.status.code(),
                    Some(code),
                    "{}: {}",
                    t.name,
                    stdout_str(&o)
                );
                let report: Value = serde_json::from_slice(&o.stdout).unwrap();
                assert_report_matches_schema(&report);
                let s = &report["signatures"][0];
                assert_eq!(s["indication"], indication, "{}: {report:#}", t.name);
                assert_eq!(s["sub_indication"], sub, "{}: {report:#}", t.name);
                assert_eq!(s["intact"], t.crypto_ok, "{}", t.name);
                if t.name.starts_with("wrapping") {
                    assert_eq!(
                        s["coverage"]["element_path"], "/HSoThueDTu/Wrapper/HSoKhaiThue",
                        "the report says what is really covered"
                    );
                }
                // Differential: the cryptographic verdict equals xmlsec1's.
                let x = xmlsec_verify(&path, id_attrs);
                assert_eq!(
                    x.status.success(),
                    t.crypto_ok,
                    "{}: xmlsec1 disagrees: {}",
                    t.name,
                    stderr_str(&x)
                );
            }
            Err(code) => {
                assert_exit(&o, 65, t.name);
                assert!(
                    stderr_str(&o).contains(code),
                    "{}: {}",
                    t.name,
                    stderr_str(&o)
                );
            }
        }
    }
}

#[test]
fn bare_key_value_is_not_enough() {
    let signed = signgate_sign(
        &xml_data("generic.xml"),
        "agency-signer.p12",
        &["--format", "xml"],
    );
    let text = std::fs::read_to_string(&signed).unwrap();
    let a = text.find("<X509Data>").unwrap();
    let b = text.find("</X509Data>").unwrap() + "</X509Data>".len();
    let path = scratch_path("keyvalue", "xml");
    std::fs::write(
        &path,
        format!("{}<KeyName>x</KeyName>{}", &text[..a], &text[b..]),
    )
    .unwrap();
    let (code, report) = verify(&path);
    assert_eq!(code, 2);
    assert_eq!(
        report["signatures"][0]["sub_indication"],
        "NO_SIGNING_CERTIFICATE_FOUND"
    );
}

// ---------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------

#[test]
fn hostile_inputs_are_rejected_quickly_without_fetching() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let lol = {
        let mut d =
            String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
        for i in 1..10 {
            let prev = if i == 1 {
                "lol".to_string()
            } else {
                format!("lol{}", i - 1)
            };
            d.push_str(&format!(
                "<!ENTITY lol{i} \"{}\">\n",
                format!("&{prev};").repeat(10)
            ));
        }
        d.push_str("]>\n<lolz>&lol9;</lolz>");
        d
    };
    let quadratic = format!(
        "<!DOCTYPE r [<!ENTITY a \"{}\">]><r>{}</r>",
        "x".repeat(50_000),
        "&a;".repeat(50_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "XXE file entity",
            b"<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>".to_vec(),
            "XML_DTD_FORBIDDEN",
        ),
        (
            "XXE network entity",
            format!("<!DOCTYPE r [<!ENTITY x SYSTEM \"http://127.0.0.1:{port}/x\">]><r>&x;</r>").into_bytes(),
            "XML_DTD_FORBIDDEN",
        ),
        (
            "external DTD",
            format!("<!DOCTYPE r SYSTEM \"http://127.0.0.1:{port}/r.dtd\"><r/>").into_bytes(),
            "XML_DTD_FORBIDDEN",
        ),
        (
            "parameter entity",
            format!("<!DOCTYPE r [<!ENTITY % p SYSTEM \"http://127.0.0.1:{port}/p\"> %p;]><r/>").into_bytes(),
            "XML_DTD_FORBIDDEN",
        ),
        ("billion laughs", lol.into_bytes(), "XML_DTD_FORBIDDEN"),
        ("quadratic blow-up", quadratic.into_bytes(), "XML_DTD_FORBIDDEN"),
        (
            "deep nesting",
            format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000)).into_bytes(),
            "XML_LIMIT_EXCEEDED",
        ),
        (
            "huge attribute",
            format!("<a b=\"{}\"/>", "x".repeat(10_000_000)).into_bytes(),
            "XML_LIMIT_EXCEEDED",
        ),
        (
            "many attributes",
            format!("<a {}/>", (0..5000).map(|i| format!("a{i}=\"\" ")).collect::<String>()).into_bytes(),
            "XML_LIMIT_EXCEEDED",
        ),
        ("invalid UTF-8", b"<?xml version=\"1.0\"?><a>\xC3\x28</a>".to_vec(), "XML_MALFORMED"),
        (
            "UTF-16 declared",
            b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>".to_vec(),
            "XML_MALFORMED",
        ),
        ("not well-formed", b"<a><b></a>".to_vec(), "XML_MALFORMED"),
    ];
    for (name, bytes, code) in cases {
        let path = scratch_path("hostile", "xml");
        std::fs::write(&path, &bytes).unwrap();
        for sub in ["verify", "sign"] {
            let started = Instant::now();
            let mut cmd = signgate([sub]);
            if sub == "verify" {
                cmd.arg("--offline").arg(&path);
            } else {
                cmd.args(["--format", "xml", "--key"])
                    .arg(demo("agency-signer.p12"))
                    .arg("--in")
                    .arg(&path)
                    .arg("--out")
                    .arg(scratch_path("hostile-out", "xml"))
                    .env("SIGNGATE_KEY_PASSWORD", "demo");
            }
            let o = run(&mut cmd);
            let took = started.elapsed();
            assert_exit(&o, 65, &format!("{sub} {name}"));
            let err = stderr_str(&o);
            assert!(
                err.contains(code),
                "{sub} {name}: expected {code}, got {err}"
            );
            assert!(!err.contains("root:"), "{name}: file content leaked");
            assert!(took < Duration::from_secs(5), "{sub} {name} took {took:?}");
        }
    }
    assert!(
        listener.accept().is_err(),
        "something connected to the test listener: an entity was fetched"
    );
}

// ---------------------------------------------------------------------------------------
// Fields read from signed content use the complete text
// ---------------------------------------------------------------------------------------

/// A comment injected into signed text leaves the signature valid (comments are not digested
/// for `#id` references), so the tax code signgate reads from the declaration must be the
/// complete text, not the first text node. The demo organization certificate carries
/// `UID=MST:0100686209`; signgate notes a declared code that does not match it.
#[test]
fn declared_tax_code_is_read_as_complete_text() {
    const NOTE: &str = "tax profile: the declared tax code does not match the signer's certificate";
    let sample = std::fs::read_to_string(xml_data("tax.xml")).unwrap();
    let notes = |declared: &str, after_signing: Option<&str>| -> Vec<String> {
        let input = scratch_path("tax-mst", "xml");
        let text = sample.replace(
            "<mst>0100686209-199</mst>",
            &format!("<mst>{declared}</mst>"),
        );
        assert!(text.contains(&format!("<mst>{declared}</mst>")));
        std::fs::write(&input, text).unwrap();
        let signed = signgate_sign(&input, "organization.p12", &["--profile", "tax"]);
        if let Some(edited) = after_signing {
            let text = std::fs::read_to_string(&signed).unwrap();
            let text = text.replace(&format!("<mst>{declared}</mst>"), edited);
            assert!(text.contains(edited));
            std::fs::write(&signed, text).unwrap();
        }
        let (code, report) = verify(&signed);
        assert_eq!(code, 2, "{report:#}");
        assert_intact_offline(&report, declared);
        let notes: Vec<String> = report["signatures"][0]["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        for n in notes.iter().filter(|n| n.contains("declared tax code")) {
            assert_eq!(n, NOTE, "the note prints no tax code");
        }
        notes
    };
    let has_note = |n: &[String]| n.iter().any(|x| x == NOTE);

    assert!(!has_note(&notes("0100686209", None)), "same code");
    assert!(
        !has_note(&notes("0100686209-199", None)),
        "a branch of the enterprise"
    );
    assert!(has_note(&notes("0312345678", None)), "another enterprise");
    // Split by a comment after signing: still intact; read whole, the code matches.
    assert!(
        !has_note(&notes(
            "0100686209",
            Some("<mst>01006<!-- x -->86209</mst>")
        )),
        "a comment inside the code must not truncate it"
    );
    // The first text node alone would match; the complete text does not.
    assert!(
        has_note(&notes(
            "01006862099",
            Some("<mst>0100686209<!-- x -->9</mst>")
        )),
        "the text after the comment counts"
    );
    // CDATA and a character reference are the same text, too.
    assert!(!has_note(&notes(
        "0100686209",
        Some("<mst><![CDATA[01006]]>8620&#57;</mst>")
    )));
}
