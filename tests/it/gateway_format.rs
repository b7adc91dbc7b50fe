//! Format selection, one rule everywhere (CONTRACTS §1, issue 13 item 6): the content decides
//! (`%PDF-` → PAdES, XML → XML-DSig) or an explicit format; on the command line an output named
//! `*.p7s`/`*.p7m` selects CMS, over HTTP only `format=cms` does; a file named `*.pdf` that is
//! not a PDF is `PDF_MALFORMED`; an empty input is always refused.

use std::path::{Path, PathBuf};

use crate::common::*;

const RANDOM: &[u8] = b"\x8f\x00\x13 not a document \xff\xfe";

fn xml() -> Vec<u8> {
    std::fs::read(data_dir().join("xml/tax.xml")).expect("tax.xml")
}

/// `signgate sign` with the demo agency key, from `dir`.
fn cli_sign(dir: &Path, input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    run(signgate(["sign", "--key"])
        .arg(repo_root().join("certs/demo/agency-signer.p12"))
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra)
        .current_dir(dir)
        .env("SIGNGATE_KEY_PASSWORD", "demo"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write input");
    path
}

#[test]
fn command_line_follows_the_rule() {
    let tmp = tempdir();
    let dir = tmp.path();
    let random = write(dir, "notes.bin", RANDOM);
    // Random content, nothing asking for CMS: refused, naming the rule, no output.
    let out = dir.join("notes.sig");
    let o = cli_sign(dir, &random, &out, &[]);
    assert_exit(&o, 64, "random content without a format");
    assert!(
        stderr_str(&o).contains("--format cms"),
        "{}",
        stderr_str(&o)
    );
    assert!(!out.exists());
    // An output named *.p7s, or --format cms: a detached CMS signature.
    for (out, extra) in [
        ("notes.p7s", &[][..]),
        ("notes.p7m", &[][..]),
        ("notes.out", &["--format", "cms"][..]),
    ] {
        let out = dir.join(out);
        assert_exit(
            &cli_sign(dir, &random, &out, extra),
            0,
            "CMS by output name or flag",
        );
        let o = run(signgate(["verify", "--offline", "--trust"])
            .arg(repo_root().join("certs/demo/root-ca.pem"))
            .arg("--content")
            .arg(&random)
            .arg(&out));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report");
        assert_eq!(report["format"], "cms", "{report}");
        assert_eq!(report["signatures"][0]["intact"], true, "{report}");
    }
    // A file named *.pdf that is not a PDF: PDF_MALFORMED, and no out.pdf.
    let fake = write(dir, "decision.pdf", RANDOM);
    let out = dir.join("out.pdf");
    let o = cli_sign(dir, &fake, &out, &[]);
    assert_exit(&o, 65, "a .pdf that is not a PDF");
    assert!(
        stderr_str(&o).contains("PDF_MALFORMED"),
        "{}",
        stderr_str(&o)
    );
    assert!(!out.exists());
    // --format pdf over non-PDF content: PDF_MALFORMED too.
    let o = cli_sign(dir, &random, &out, &["--format", "pdf"]);
    assert_exit(&o, 65, "--format pdf over random bytes");
    // An empty input is always refused, even with an output named *.p7s.
    let empty = write(dir, "empty.txt", b"");
    let o = cli_sign(dir, &empty, &dir.join("empty.p7s"), &[]);
    assert_exit(&o, 64, "empty input");
    assert!(stderr_str(&o).contains("empty"), "{}", stderr_str(&o));
    // XML content: XML-DSig in its root element's profile.
    let filing = write(dir, "filing.xml", &xml());
    let out = dir.join("filing-signed.xml");
    assert_exit(&cli_sign(dir, &filing, &out, &[]), 0, "XML");
    let signed = std::fs::read_to_string(&out).expect("signed XML");
    assert!(
        signed.contains("Signature") && signed.contains("SignatureValue"),
        "{signed}"
    );
}

#[test]
fn batch_sign_follows_the_rule() {
    let tmp = tempdir();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::copy(sample_pdf(), input.join("good.pdf")).expect("copy");
    write(&input, "fake.pdf", RANDOM);
    write(&input, "notes.bin", RANDOM);
    write(&input, "filing.xml", &xml());
    let o = run(signgate(["batch-sign", "--key"])
        .arg(repo_root().join("certs/demo/agency-signer.p12"))
        .arg("--in")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .arg("--json")
        .env("SIGNGATE_KEY_PASSWORD", "demo"));
    assert_exit(&o, 3, "batch with refused inputs");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("summary");
    assert_eq!(summary["signed"], 2, "{summary}");
    let codes: std::collections::HashMap<String, String> = summary["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .map(|f| {
            let name = Path::new(f["input"].as_str().unwrap()).file_name().unwrap();
            (
                name.to_string_lossy().into_owned(),
                f["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        codes.get("fake.pdf").map(String::as_str),
        Some("PDF_MALFORMED"),
        "{summary}"
    );
    assert_eq!(
        codes.get("notes.bin").map(String::as_str),
        Some("USAGE"),
        "{summary}"
    );
    assert!(std::fs::read(out.join("good.pdf"))
        .expect("good.pdf")
        .starts_with(b"%PDF-"));
    assert!(std::fs::read_to_string(out.join("filing.xml"))
        .expect("filing.xml")
        .contains("SignatureValue"));
}

#[test]
fn http_follows_the_rule_and_batch_downloads_carry_their_media_type() {
    let gw = DemoGateway::start();
    // Empty and random bodies: 400 naming the rule, nothing signed with the agency's key.
    let empty = gw.post("v1/sign?key=demo-agency", b"");
    assert_eq!(
        empty.status,
        400,
        "{}",
        String::from_utf8_lossy(&empty.body)
    );
    assert_eq!(empty.error_code(), "USAGE");
    assert!(
        empty.error_message().contains("empty"),
        "{}",
        empty.error_message()
    );
    let random = gw.post("v1/sign?key=demo-agency", RANDOM);
    assert_eq!(random.status, 400);
    assert!(
        random.error_message().contains("format=cms"),
        "{}",
        random.error_message()
    );
    // Only format=cms selects CMS over HTTP.
    let cms = gw.post("v1/sign?key=demo-agency&format=cms", RANDOM);
    assert_eq!(cms.status, 200, "{}", String::from_utf8_lossy(&cms.body));
    assert_eq!(
        cms.content_type.as_deref(),
        Some("application/pkcs7-signature")
    );
    let empty_cms = gw.post("v1/sign?key=demo-agency&format=cms", b"");
    assert_eq!(empty_cms.status, 400);
    // format=pdf over something else: PDF_MALFORMED.
    let fake = gw.post("v1/sign?key=demo-agency&format=pdf", RANDOM);
    assert_eq!(fake.error_code(), "PDF_MALFORMED");
    // XML: XML-DSig, served as XML.
    let signed = gw.post("v1/sign?key=demo-agency", &xml());
    assert_eq!(
        signed.status,
        200,
        "{}",
        String::from_utf8_lossy(&signed.body)
    );
    assert_eq!(signed.content_type.as_deref(), Some("application/xml"));

    // A batch: the XML-DSig output is served as application/xml, the PAdES one as PDF; a
    // part named *.pdf that is not a PDF fails alone with PDF_MALFORMED.
    let pdf = std::fs::read(sample_pdf()).expect("sample.pdf");
    let xml = xml();
    let (form, content_type) = multipart(&[
        ("document", Some("filing.xml"), &xml),
        ("document", Some("decision.pdf"), &pdf),
        ("document", Some("fake.pdf"), RANDOM),
        ("options", None, br#"{"key": "demo-agency"}"#),
    ]);
    let created = request_with(
        "POST",
        &gw.url("v1/batches"),
        Some(&gw.token),
        &[("Content-Type", content_type.as_str())],
        Some(&form),
    );
    assert_eq!(
        created.status,
        202,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["id"].as_str().expect("id").to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        let s = request(
            "GET",
            &gw.url(&format!("v1/batches/{id}")),
            Some(&gw.token),
            None,
        )
        .json();
        if s["state"] == "done" {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "batch did not finish: {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status["documents"][2]["state"], "failed", "{status}");
    assert!(status.to_string().contains("PDF_MALFORMED"), "{status}");
    let get = |n: usize| {
        request(
            "GET",
            &gw.url(&format!("v1/batches/{id}/documents/{n}")),
            Some(&gw.token),
            None,
        )
    };
    let xml_out = get(0);
    assert_eq!(xml_out.status, 200);
    assert_eq!(xml_out.content_type.as_deref(), Some("application/xml"));
    assert!(String::from_utf8_lossy(&xml_out.body).contains("SignatureValue"));
    let pdf_out = get(1);
    assert_eq!(pdf_out.content_type.as_deref(), Some("application/pdf"));
    assert!(pdf_out.body.starts_with(b"%PDF-"));
}
