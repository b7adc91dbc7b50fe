//! edXML packages and status messages: signed with a live demo PKI, verified by signgate and by
//! `xmlsec1 --verify` before and after three hops of trace headers; tampering with the header or
//! an attachment refused with a reason naming the part; the schema's verdicts checked against
//! `xmllint --schema` on a corpus; zipped attachments bounded (a zip bomb made by Python's
//! zipfile).

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::common::*;
use base64::Engine as _;
use signgate::edxml::{
    self, Attachment, Business, MessageHeader, Organ, Package, ResponseFor, SignerInfo, Status,
    StatusCode, StatusCodes, TraceHeader,
};
use signgate::keys::KeySource;
use signgate::verify::{HttpFetcher, Indication, Policy, TrustList, ValidationContext};
use time::macros::{date, datetime};

const NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn pki() -> &'static LivePki {
    static PKI: OnceLock<LivePki> = OnceLock::new();
    PKI.get_or_init(LivePki::start)
}

fn key(file: &str) -> Arc<dyn KeySource> {
    let opts = signgate::keys::OpenOptions {
        secret: Some("demo".to_string().into()),
        ..Default::default()
    };
    signgate::keys::open(pki().path(file).to_str().unwrap(), &opts).expect("open demo key")
}

fn ctx() -> ValidationContext {
    ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: vec![TrustList::load("default", &pki().root()).unwrap()],
        fetcher: Some(Box::new(HttpFetcher::new(Duration::from_secs(10)))),
    }
}

/// The sample PDF signed (PAdES) by the agency's signer, as an e-office system attaches it.
fn signed_pdf() -> Vec<u8> {
    let out = scratch_path("edxml-attachment", "pdf");
    let o = run(signgate(["sign", "--key"])
        .arg(pki().path("agency-signer.p12"))
        .arg("--in")
        .arg(sample_pdf())
        .arg("--out")
        .arg(&out)
        .env("SIGNGATE_KEY_PASSWORD", "demo"));
    assert_exit(&o, 0, "signgate sign (PDF attachment)");
    std::fs::read(&out).unwrap()
}

/// A package from a synthetic province to two synthetic districts (`TEST.*` ids are not real).
fn package(attachments: Vec<Attachment>) -> Package {
    Package {
        header: MessageHeader {
            from: Organ::new("TEST.00.00.H99", "UBND tỉnh Thử nghiệm"),
            to: vec![
                Organ::new("TEST.01.00.H99", "UBND huyện A"),
                Organ::new("TEST.02.00.H99", "UBND huyện B"),
            ],
            document_id: "TEST.00.00.H99,2025/07/01,123/UBND-VP".into(),
            code_number: "123".into(),
            code_notation: "UBND-VP".into(),
            promulgation_place: "Thử nghiệm".into(),
            promulgation_date: date!(2025 - 07 - 01),
            document_type: "18".into(),
            document_type_name: Some("Công văn".into()),
            subject: "Về việc thử nghiệm liên thông văn bản".into(),
            content: None,
            signer: SignerInfo {
                competence: Some("TM. UBND".into()),
                position: Some("Chủ tịch".into()),
                full_name: "Nguyễn Văn Mẫu".into(),
            },
            due_date: Some(date!(2025 - 07 - 15)),
            to_places: vec!["Như trên".into()],
            steering_type: None,
            response_for: None,
        },
        business: Business::default(),
        traces: vec![TraceHeader {
            organ_id: "TEST.00.00.H99".into(),
            timestamp: datetime!(2025-07-01 09:30:00 +7),
        }],
        attachments,
    }
}

fn pdf_attachment(data: Vec<u8>) -> Attachment {
    Attachment {
        content_id: "att1".into(),
        name: "congvan.pdf".into(),
        content_type: "application/pdf".into(),
        description: Some("Văn bản ký số".into()),
        data,
    }
}

fn xmlsec_verify(bytes: &[u8], id_nodes: &[&str]) -> Output {
    let file = scratch_path("edxml-xmlsec", "xml");
    std::fs::write(&file, bytes).unwrap();
    let mut cmd = Command::new("xmlsec1");
    cmd.arg("--verify")
        .arg("--trusted-pem")
        .arg(pki().root())
        .arg("--untrusted-pem")
        .arg(pki().path("issuing-ca.pem"));
    for n in id_nodes {
        cmd.arg("--id-attr:Id").arg(format!("{NS}:{n}"));
    }
    run(cmd.arg(&file))
}

const PACKAGE_IDS: [&str; 3] = ["MessageHeader", "edXMLBody", "Attachment"];

fn signed_package() -> (Vec<u8>, Vec<u8>) {
    let pdf = signed_pdf();
    let p = package(vec![pdf_attachment(pdf.clone())]);
    let bytes = p
        .build_signed(
            key("agency-signer.p12").as_ref(),
            time::OffsetDateTime::now_utc(),
        )
        .expect("build and sign");
    (bytes, pdf)
}

#[test]
fn signed_package_verifies_here_and_in_xmlsec1_after_three_hops() {
    if require_tool("xmlsec1").is_none() {
        return;
    }
    let (bytes, _) = signed_package();
    let verdict = edxml::verify(&bytes, &Policy::default(), &ctx()).unwrap();
    assert!(verdict.passed, "{:?}", verdict.reason);
    assert_eq!(verdict.report.indication, Indication::TotalPassed);
    assert_eq!(verdict.attachments.len(), 1);
    assert!(verdict.attachments[0].intact);
    assert_eq!(
        verdict.attachments[0].pdf,
        Some(Indication::TotalPassed),
        "the PDF's own signature is verified and recorded"
    );
    let o = xmlsec_verify(&bytes, &PACKAGE_IDS);
    assert_exit(&o, 0, "xmlsec1 --verify (origin)");
    let digest = edxml::content_digest(&bytes).unwrap();
    assert_eq!(digest, verdict.content_digest);

    let mut hop = bytes.clone();
    for (i, organ) in ["TEST.01.00.H99", "TEST.01.01.H99", "TEST.01.02.H99"]
        .iter()
        .enumerate()
    {
        let trace = TraceHeader {
            organ_id: organ.to_string(),
            timestamp: datetime!(2025-07-01 10:00:00 +7) + time::Duration::minutes(i as i64),
        };
        hop = edxml::append_trace(&hop, &trace).unwrap();
    }
    let parsed = edxml::parse(&hop, &Default::default()).unwrap();
    let organs: Vec<&str> = parsed.traces.iter().map(|t| t.organ_id.as_str()).collect();
    assert_eq!(
        organs,
        [
            "TEST.00.00.H99",
            "TEST.01.00.H99",
            "TEST.01.01.H99",
            "TEST.01.02.H99"
        ]
    );
    assert_eq!(parsed.attachments[0].name, "congvan.pdf");
    assert_eq!(
        edxml::content_digest(&hop).unwrap(),
        digest,
        "trace headers do not change the content digest"
    );
    let o = xmlsec_verify(&hop, &PACKAGE_IDS);
    assert_exit(&o, 0, "xmlsec1 --verify after three hops");
    let after = edxml::verify(&hop, &Policy::default(), &ctx()).unwrap();
    assert!(after.passed, "{:?}", after.reason);
}

#[test]
fn tampering_is_refused_naming_the_part() {
    if require_tool("xmlsec1").is_none() {
        return;
    }
    let (bytes, pdf) = signed_package();
    let text = String::from_utf8(bytes.clone()).unwrap();

    let header = text.replace(
        "Về việc thử nghiệm liên thông văn bản",
        "Về việc thử nghiệm liên thông văn bản (sửa)",
    );
    assert_ne!(header, text);
    let v = edxml::verify(header.as_bytes(), &Policy::default(), &ctx()).unwrap();
    assert!(!v.passed);
    let reason = v.reason.unwrap();
    assert!(reason.contains("MessageHeader was altered"), "{reason}");
    assert!(!xmlsec_verify(header.as_bytes(), &PACKAGE_IDS)
        .status
        .success());

    let mut altered = pdf.clone();
    let at = altered.len() / 2;
    altered[at] ^= 0x20;
    let attachment = text.replace(&B64.encode(&pdf), &B64.encode(&altered));
    assert_ne!(attachment, text);
    let v = edxml::verify(attachment.as_bytes(), &Policy::default(), &ctx()).unwrap();
    assert!(!v.passed);
    let reason = v.reason.unwrap();
    assert!(
        reason.contains("attachment 'congvan.pdf' was altered"),
        "{reason}"
    );
    assert!(!v.attachments[0].intact);
    assert!(!xmlsec_verify(attachment.as_bytes(), &PACKAGE_IDS)
        .status
        .success());
    assert!(!reason.contains("MessageHeader"), "{reason}");

    // An attachment slipped in beside the signed ones (the manifest is signed, so it cannot
    // list it) is refused before any signature check, naming it.
    let injected = text.replacen(
        "</AttachmentEncoded>",
        "<Attachment Id=\"x\"><ContentType>application/pdf</ContentType><ContentId>extra</ContentId><ContentTransferEncoded>JVBERi0=</ContentTransferEncoded><AttachmentName>extra.pdf</AttachmentName></Attachment></AttachmentEncoded>",
        1,
    );
    let e = edxml::verify(injected.as_bytes(), &Policy::default(), &ctx()).unwrap_err();
    assert_eq!(e.code().as_str(), "EDXML_INVALID");
    assert!(e.to_string().contains("'extra.pdf'"), "{e}");
}

fn status(code: StatusCode) -> Status {
    Status {
        response_for: ResponseFor {
            organ_id: "TEST.00.00.H99".into(),
            code: "123/UBND-VP".into(),
            promulgation_date: date!(2025 - 07 - 01),
            document_id: "TEST.00.00.H99,2025/07/01,123/UBND-VP".into(),
        },
        from: Organ::new("TEST.01.00.H99", "UBND huyện A"),
        code,
        description: Some("Từ chối: thiếu tệp đính kèm".into()),
        timestamp: time::OffsetDateTime::now_utc(),
        staff: None,
    }
}

#[test]
fn status_messages_are_signed_by_the_node() {
    if require_tool("xmlsec1").is_none() {
        return;
    }
    let codes = StatusCodes::default();
    let s = status(StatusCode::Rejected);
    // The node signs with a document-signing (seal) key; its TLS certificate (serverAuth +
    // clientAuth only) is refused for signatures, as for any document.
    let tls_only = s
        .build_signed(key("node-district.p12").as_ref(), &codes)
        .unwrap();
    let v = edxml::verify_status(&tls_only, &Policy::default(), &ctx()).unwrap();
    assert!(!v.passed);
    assert!(v.reason.unwrap().contains("extended key usage"));
    let bytes = s
        .build_signed(key("agency-signer-ec.p12").as_ref(), &codes)
        .unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("<StatusCode>02</StatusCode>"));
    let v = edxml::verify_status(&bytes, &Policy::default(), &ctx()).unwrap();
    assert!(v.passed, "{:?}", v.reason);
    assert_exit(&xmlsec_verify(&bytes, &[]), 0, "xmlsec1 --verify (status)");
    let back = edxml::parse_status(&bytes, &codes, &Default::default()).unwrap();
    assert_eq!(back.code, StatusCode::Rejected);
    assert_eq!(back.description, s.description);

    let forged = String::from_utf8(bytes)
        .unwrap()
        .replace("<StatusCode>02</StatusCode>", "<StatusCode>03</StatusCode>");
    let v = edxml::verify_status(forged.as_bytes(), &Policy::default(), &ctx()).unwrap();
    assert!(!v.passed);
    assert!(!xmlsec_verify(forged.as_bytes(), &[]).status.success());
}

/// Writes `xml` and asks xmllint whether it is valid against the gateway schema.
fn xmllint_valid(xml: &str, dir: &Path, i: usize) -> (bool, String) {
    let file = dir.join(format!("case-{i}.xml"));
    std::fs::write(&file, xml).unwrap();
    let o = run(Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(repo_root().join("schemas/edxml-qcvn102.xsd"))
        .arg(&file));
    (o.status.success(), stderr_str(&o))
}

#[test]
fn schema_verdicts_match_xmllint() {
    if require_tool("xmllint").is_none() {
        return;
    }
    let package_xml = package(vec![pdf_attachment(b"%PDF-1.4\n%synthetic\n".to_vec())]).to_xml();
    let status_xml = status(StatusCode::Received).to_xml(&StatusCodes::default());
    let signed = String::from_utf8(
        package(vec![pdf_attachment(b"%PDF-1.4\n%synthetic\n".to_vec())])
            .build_signed(
                key("agency-signer.p12").as_ref(),
                time::OffsetDateTime::now_utc(),
            )
            .unwrap(),
    )
    .unwrap();
    let p = |from: &str, to: &str| {
        assert!(
            package_xml.contains(from),
            "corpus edit not applicable: {from}"
        );
        package_xml.replacen(from, to, 1)
    };
    let s = |from: &str, to: &str| {
        assert!(
            status_xml.contains(from),
            "corpus edit not applicable: {from}"
        );
        status_xml.replacen(from, to, 1)
    };
    let doc_type = "<DocumentType><Type>18</Type><TypeName>Công văn</TypeName></DocumentType>";
    let from_el =
        "<From><OrganId>TEST.00.00.H99</OrganId><OrganName>UBND tỉnh Thử nghiệm</OrganName></From>";
    let cases: Vec<(&str, String, bool)> = vec![
        ("valid package", package_xml.clone(), true),
        ("valid signed package", signed.clone(), true),
        ("valid status", status_xml.clone(), true),
        ("dd/MM/yyyy dates", p("2025/07/15", "15/07/2025"), true),
        ("comment inside a date", p("<DueDate>2025/07/15", "<DueDate>2025/<!-- c -->07/15"), true),
        ("optional Content", p("<SignerInfo>", "<Content>Tóm tắt</Content><SignerInfo>"), true),
        ("OtherInfo", p("<DocumentId>", "<OtherInfo><Priority>1</Priority><Appendixes><Appendix>PL1</Appendix></Appendixes></OtherInfo><DocumentId>"), true),
        ("no attachments", {
            let start = package_xml.find("<AttachmentEncoded>").unwrap();
            let end = package_xml.find("</AttachmentEncoded>").unwrap() + "</AttachmentEncoded>".len();
            let without = format!("{}{}", &package_xml[..start], &package_xml[end..]);
            let rs = without.find("<edXML:Reference").unwrap();
            let re = without.find("</edXML:Reference>").unwrap() + "</edXML:Reference>".len();
            format!("{}{}", &without[..rs], &without[re..])
        }, true),
        ("missing Subject", p("<Subject>Về việc thử nghiệm liên thông văn bản</Subject>", ""), false),
        ("missing DocumentId", p("<DocumentId>TEST.00.00.H99,2025/07/01,123/UBND-VP</DocumentId>", ""), false),
        ("wrong order", p(doc_type, "").replacen("<SignerInfo>", &format!("{doc_type}<SignerInfo>"), 1), false),
        ("bad date", p("2025/07/15", "2025-07-15"), false),
        ("bad date digits", p("2025/07/15", "2025/7/15"), false),
        ("bad timestamp", p("2025/07/01 09:30:00", "2025/07/01T09:30:00"), false),
        ("unknown element", p("<Subject>", "<Foo>x</Foo><Subject>"), false),
        ("two From", p(from_el, &format!("{from_el}{from_el}")), false),
        ("no To", p("<To><OrganId>TEST.01.00.H99</OrganId><OrganName>UBND huyện A</OrganName></To>", "").replacen("<To><OrganId>TEST.02.00.H99</OrganId><OrganName>UBND huyện B</OrganName></To>", "", 1), false),
        ("empty OrganId", p("<OrganId>TEST.00.00.H99</OrganId>", "<OrganId></OrganId>"), false),
        ("unknown attribute", p("<edXML:MessageHeader Id=\"MessageHeader\">", "<edXML:MessageHeader Id=\"MessageHeader\" foo=\"1\">"), false),
        ("attribute on a simple element", p("<Subject>", "<Subject lang=\"vi\">"), false),
        ("text in a complex element", p("<SignerInfo>", "<SignerInfo>chữ"), false),
        ("element outside the namespace", p("<Subject>", "<Subject xmlns=\"\">"), false),
        ("BussinessDocType 7", p("<BussinessDocType>0</BussinessDocType>", "<BussinessDocType>7</BussinessDocType>"), false),
        ("attachment without ContentId", p("<ContentId>att1</ContentId><Description>", "<Description>"), false),
        ("AttachmentEncoded empty", {
            let start = package_xml.find("<AttachmentEncoded>").unwrap();
            let end = package_xml.find("</AttachmentEncoded>").unwrap();
            format!("{}<AttachmentEncoded>{}", &package_xml[..start], &package_xml[end..])
        }, false),
        ("two signatures", {
            let start = signed.find("<Signature ").unwrap();
            let end = signed.find("</Signature>").unwrap() + "</Signature>".len();
            let sig = &signed[start..end];
            signed.replacen(sig, &format!("{sig}{sig}"), 1)
        }, false),
        ("wrong root", package_xml.replace("<edXML xmlns=", "<edXMLX xmlns=").replace("</edXML>\n", "</edXMLX>\n"), false),
        ("status code of one digit", s("<StatusCode>01</StatusCode>", "<StatusCode>1</StatusCode>"), false),
        ("status code not digits", s("<StatusCode>01</StatusCode>", "<StatusCode>AB</StatusCode>"), false),
        ("status without Timestamp", {
            let start = status_xml.find("<Timestamp>").unwrap();
            let end = status_xml.find("</Timestamp>").unwrap() + "</Timestamp>".len();
            format!("{}{}", &status_xml[..start], &status_xml[end..])
        }, false),
        ("status with two From", s("</From>", "</From><From><OrganId>X</OrganId><OrganName>X</OrganName></From>"), false),
        ("status bad date", s("<PromulgationDate>2025/07/01", "<PromulgationDate>2025/07/1"), false),
    ];
    let dir = tempdir();
    let mut mismatches = Vec::new();
    for (i, (name, xml, expected)) in cases.iter().enumerate() {
        let (lint, lint_err) = xmllint_valid(xml, dir.path(), i);
        let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours = edxml::schema::validate(&doc);
        if lint != ours.is_ok() || lint != *expected {
            mismatches.push(format!(
                "{name}: expected {expected}, xmllint {lint} ({}), signgate {ours:?}",
                lint_err.trim()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert!(cases.iter().filter(|c| !c.2).count() >= 20);
}

#[test]
fn hostile_envelopes_are_refused_before_reading() {
    let xml = package(vec![]).to_xml();
    let dtd = xml.replacen(
        "<edXML xmlns=",
        "<!DOCTYPE edXML [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<edXML xmlns=",
        1,
    );
    let e = edxml::parse(dtd.as_bytes(), &Default::default()).unwrap_err();
    assert_eq!(e.code().as_str(), "XML_DTD_FORBIDDEN");
    let limits = edxml::Limits {
        max_envelope_bytes: 1024,
        ..Default::default()
    };
    let e = edxml::parse(xml.as_bytes(), &limits).unwrap_err();
    assert_eq!(e.code().as_str(), "EDXML_LIMIT_EXCEEDED");
}

/// A zip archive written by Python's zipfile: `entries` of (name, size, byte) deflated.
fn python_zip(entries: &[(&str, usize, u8)]) -> Vec<u8> {
    let out = scratch_path("edxml-zip", "zip");
    let spec: Vec<String> = entries
        .iter()
        .map(|(n, size, b)| format!("('{n}', {size}, {b})"))
        .collect();
    let script = format!(
        "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n    for n, size, b in [{}]:\n        z.writestr(n, bytes([b]) * size)\n",
        spec.join(", ")
    );
    let o = run(Command::new("python3").arg("-c").arg(script).arg(&out));
    assert_exit(&o, 0, "python3 zipfile");
    std::fs::read(&out).unwrap()
}

#[test]
fn zipped_attachments_are_bounded() {
    if require_tool("python3").is_none() {
        return;
    }
    let zip_attachment = |name: &str, content_type: &str, data: Vec<u8>| Attachment {
        content_id: name.replace('.', "-"),
        name: name.into(),
        content_type: content_type.into(),
        description: None,
        data,
    };
    // A modest archive: accepted.
    let ok = python_zip(&[("a.txt", 3000, b'a'), ("b.txt", 10, b'b')]);
    let p = package(vec![zip_attachment("hoso.zip", "application/zip", ok)]);
    edxml::parse(p.to_xml().as_bytes(), &Default::default()).expect("a small zip passes");
    // 200 MiB of zeros in ~200 KiB: refused by the ratio, without inflating it all to memory.
    let bomb = python_zip(&[("zeros.bin", 200 << 20, 0)]);
    assert!(
        bomb.len() < 1 << 20,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    for (name, ct) in [
        ("bom.zip", "application/zip"),
        ("bom.docx", "application/octet-stream"),
    ] {
        let p = package(vec![zip_attachment(name, ct, bomb.clone())]);
        let e = edxml::parse(p.to_xml().as_bytes(), &Default::default()).unwrap_err();
        assert_eq!(e.code().as_str(), "EDXML_LIMIT_EXCEEDED", "{e}");
        assert!(
            e.to_string().contains(&format!("attachment '{name}'")),
            "{e}"
        );
    }
    // Many entries: refused by count.
    let names: Vec<String> = (0..50).map(|i| format!("f{i}.txt")).collect();
    let many: Vec<(&str, usize, u8)> = names.iter().map(|n| (n.as_str(), 1, b'x')).collect();
    let limits = edxml::Limits {
        max_zip_entries: 20,
        ..Default::default()
    };
    let p = package(vec![zip_attachment(
        "many.zip",
        "application/zip",
        python_zip(&many),
    )]);
    let e = edxml::parse(p.to_xml().as_bytes(), &limits).unwrap_err();
    assert!(e.to_string().contains("entries"), "{e}");
}
