//! The stamp desk's batches and the verify page's signed PDF report, in the real browser
//! (the [`super::Browser`] of the parent module) and over plain HTTP: a batch of 20 PDFs run
//! from the page with live progress, its ZIP downloaded, unzipped by real tools and every entry
//! verified; the report PDF downloaded from the verify page passes `pdfsig` and `signgate
//! verify`, and `pdftotext` reads its verdict and its Vietnamese text, with identifiers masked.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{add_officer, csrf_of, http_login, write, Browser, PASSWORD};
use crate::batch_archive::{assert_signed_pdfs, unzip_checked};
use crate::common::*;

/// Texts of `pdf` by `pdftotext` (UTF-8), or `None` (a skip) without it.
fn pdftotext(pdf: &Path) -> Option<String> {
    let tool = require_tool("pdftotext")?;
    let out = run_ok(
        std::process::Command::new(tool)
            .args(["-enc", "UTF-8"])
            .arg(pdf)
            .arg("-"),
    );
    Some(stdout_str(&out))
}

/// Checks a downloaded report: a PDF with one intact signature by the gateway's key
/// (`signgate verify`, `pdfsig`), whose text says `verdict` and masks `identifiers`.
fn assert_report(pdf: &Path, verdict: &str, checked: &[u8], identifiers: &[String]) {
    let bytes = std::fs::read(pdf).expect("report");
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    let mut c = signgate(["verify", "--offline", "--trust"]);
    c.arg(repo_root().join("certs/demo/root-ca.pem")).arg(pdf);
    let out = run(&mut c);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify: {e}: {}", stderr_str(&out)));
    let sigs = report["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), 1, "{report}");
    assert_eq!(sigs[0]["intact"], true, "{report}");
    assert_eq!(sigs[0]["modification"], "none", "{report}");
    if require_tool("pdfsig").is_some() {
        let nss = NssDb::new(&repo_root().join("certs/demo/root-ca.pem"));
        let checked = pdfsig(&nss, pdf);
        assert_eq!(checked.signatures.len(), 1, "{}", checked.raw);
        assert!(checked.signatures[0].signature_valid(), "{}", checked.raw);
    }
    if let Some(text) = pdftotext(pdf) {
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("Báo cáo xác minh chữ ký số"), "{flat}");
        assert!(flat.contains(verdict), "{verdict} not in {flat}");
        assert!(flat.contains("Thời điểm ký"), "{flat}");
        // The report names the file it is about by its SHA-256.
        use sha2::Digest as _;
        let digest = hex::encode(sha2::Sha256::digest(checked));
        assert!(
            text.replace(char::is_whitespace, "").contains(&digest),
            "{flat}"
        );
        for id in identifiers {
            assert!(!flat.contains(id.as_str()), "{id} unmasked in the report");
            let tail: String = id
                .chars()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            assert!(
                flat.contains(&format!("•{tail}")),
                "{id} not shown masked: {flat}"
            );
        }
    }
}

/// The identifiers (tax codes, citizen IDs) the API's report finds in `pdf`'s signatures.
fn identifiers_of(gw: &DemoGateway, pdf: &[u8]) -> Vec<String> {
    let report = gw.post("v1/verify", pdf).json();
    report["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| {
            s["signer"]["identifiers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|i| i["value"].as_str().map(str::to_string))
        .filter(|v| v.chars().count() > 3)
        .collect()
}

/// The newest finished download in `dir` ending in `ext`, waiting up to 60 s.
fn downloaded(dir: &Path, ext: &str) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = std::fs::read_dir(dir)
            .expect("download folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == ext));
        if let Some(path) = found {
            return path;
        }
        assert!(
            Instant::now() < deadline,
            "no .{ext} download in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_batch_of_twenty_and_the_signed_report_in_a_real_browser() {
    let Some(b) = Browser::start() else { return };
    let gw = DemoGateway::start();
    add_officer(&gw);
    let dir = gw.dir.path();
    let downloads = tempdir();
    b.call(
        "POST",
        "/goog/cdp/execute",
        Some(json!({"cmd": "Page.setDownloadBehavior", "params": {
            "behavior": "allow", "downloadPath": downloads.path().to_str().expect("utf-8 path")
        }})),
    );

    // The verify page: the signed PDF report of a valid document, downloaded from the page.
    let sample = std::fs::read(sample_pdf()).expect("sample.pdf");
    let signed = gw.post("v1/sign?key=demo-agency", &sample);
    assert_eq!(signed.status, 200);
    let valid = write(dir, "Hồ sơ của công dân.pdf", &signed.body);
    b.goto(&gw.url("verify?lang=vi"));
    b.type_into("#document", valid.to_str().expect("path"));
    b.click("form[action='/verify'] button[type=submit]:not([formaction])");
    assert_eq!(
        b.attribute(".verdict.overall", "data-indication")
            .as_deref(),
        Some("TOTAL_PASSED")
    );
    b.click("#report-pdf");
    let report = downloaded(downloads.path(), "pdf");
    assert_report(
        &report,
        "Hợp lệ",
        &signed.body,
        &identifiers_of(&gw, &signed.body),
    );
    assert!(
        !gw.server.log().contains("công dân"),
        "the upload's name reached the log"
    );

    // Log in, open the batch page.
    b.goto(&gw.url("login?next=/desk/batch"));
    b.type_into("#username", "officer1");
    b.type_into("#password", PASSWORD);
    b.click("form[action='/login'] button[type=submit]");
    b.find("#batch-form");
    b.axe("batch form");
    b.screenshots("batch");

    // 20 PDFs, picked at once.
    const N: usize = 20;
    let inputs = tempdir();
    let paths: Vec<String> = (0..N)
        .map(|i| {
            let p = write(
                inputs.path(),
                &format!("quyet-dinh-{i:02}.pdf"),
                &signgate::batch::sample::pdf(i, 30_000),
            );
            p.to_str().expect("utf-8 path").to_string()
        })
        .collect();
    b.type_into("#documents", &paths.join("\n"));
    let picked = b.exec(
        "return document.getElementById('documents').files.length;",
        json!([]),
    );
    assert_eq!(picked, json!(N));
    b.click("#batch-sign");
    b.find("#batch[data-progress-url]");
    // Live progress: the page polls until the batch is finished, then shows the ZIP link.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut seen = Vec::new();
    loop {
        let state = b.exec(
            "const s = document.getElementById('batch');\
             return [s.dataset.finished, document.getElementById('batch-progress').value,\
                     document.getElementById('batch-status').textContent];",
            json!([]),
        );
        seen.push(state[1].clone());
        if state[0] == json!("true") {
            break;
        }
        assert!(Instant::now() < deadline, "batch never finished: {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = b.text("#batch-status");
    assert!(status.contains(&format!("Đã ký {N} trên {N}")), "{status}");
    assert_eq!(
        b.exec(
            "return document.querySelectorAll('td[data-state=\"signed\"]').length;",
            json!([])
        ),
        json!(N),
        "the table is brought up to date"
    );
    b.axe("batch progress");
    b.screenshots("batch-done");
    let url = b.url();
    let id = url.rsplit('/').next().expect("batch id").to_string();
    assert!(id.starts_with("bat_"), "{url}");

    // The ZIP, downloaded by the page's link.
    b.click("#batch-zip");
    let zip = downloaded(downloads.path(), "zip");
    let out = tempdir();
    let Some(entries) = unzip_checked(&zip, out.path()) else {
        return;
    };
    assert_eq!(entries.len(), N, "{entries:?}");
    assert!(entries
        .iter()
        .all(|e| e.ends_with(".pdf") && !e.contains('/')));
    assert_signed_pdfs(out.path(), &entries);
    // Every signature is in the audit chain under the officer's name.
    let audit = request(
        "GET",
        &gw.url("v1/audit?action=sign"),
        Some(&gw.token),
        None,
    )
    .json();
    let by_officer = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| {
            r["client"] == "officer:officer1" && r["record"]["subject"]["batch"] == id.as_str()
        })
        .count();
    assert_eq!(by_officer, N, "{audit}");
}

/// Plain HTTP: the report needs the page's CSRF token and a file, and another agency's
/// officer gets 404 for a batch of this agency.
#[test]
fn report_and_batch_refusals_over_plain_http() {
    let gw = DemoGateway::start();
    add_officer(&gw);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let page = agent.get(&gw.url("verify")).call().expect("verify page");
    let pre = page
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("sg_pre cookie")
        .to_string();
    let csrf = csrf_of(&page.into_string().expect("page"));
    let signed = gw.post(
        "v1/sign?key=demo-agency",
        &std::fs::read(sample_pdf()).expect("sample"),
    );
    let post_to = |path: &str, parts: &[(&str, Option<&str>, &[u8])]| {
        let (body, content_type) = multipart(parts);
        let r = match agent
            .post(&gw.url(path))
            .set("Content-Type", &content_type)
            .set("Cookie", &pre)
            .send_bytes(&body)
        {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("report: {e}"),
        };
        let status = r.status();
        let kind = r.header("content-type").map(str::to_string);
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut r.into_reader(), &mut bytes).expect("read");
        (status, kind, bytes)
    };
    let post = |parts: &[(&str, Option<&str>, &[u8])]| post_to("verify/report?lang=en", parts);
    let (status, _, _) = post(&[("document", Some("a.pdf"), signed.body.as_slice())]);
    assert_eq!(status, 403, "no CSRF token");
    let (status, _, _) = post(&[("csrf", None, csrf.as_bytes())]);
    assert_eq!(status, 400, "no file");
    let (status, kind, pdf) = post(&[
        ("csrf", None, csrf.as_bytes()),
        ("document", Some("a.pdf"), signed.body.as_slice()),
    ]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(kind.as_deref(), Some("application/pdf"));
    let tmp = tempdir();
    let path = write(tmp.path(), "report-en.pdf", &pdf);
    let bytes = std::fs::read(&path).expect("report");
    assert!(bytes.starts_with(b"%PDF-"));
    if let Some(text) = pdftotext(&path) {
        assert!(
            text.contains("Digital signature verification report"),
            "{text}"
        );
        assert!(text.contains("Valid"), "{text}");
    }

    // A citizen's signature: the report (Vietnamese) shows the citizen ID masked only.
    let tmp_dir = tmp.path();
    let pw = write(tmp_dir, "pw", b"demo");
    let citizen = tmp_dir.join("citizen.pdf");
    let mut sign = signgate(["sign", "--key"]);
    sign.arg(repo_root().join("certs/demo/citizen.p12"))
        .arg("--password-file")
        .arg(&pw)
        .arg("--in")
        .arg(sample_pdf())
        .arg("--out")
        .arg(&citizen);
    run_ok(&mut sign);
    let citizen_pdf = std::fs::read(&citizen).expect("citizen.pdf");
    let ids = identifiers_of(&gw, &citizen_pdf);
    assert_eq!(ids.len(), 1, "the citizen certificate carries its CCCD");
    let (status, _, pdf) = post_to(
        "verify/report?lang=vi",
        &[
            ("csrf", None, csrf.as_bytes()),
            ("document", Some("công dân.pdf"), citizen_pdf.as_slice()),
        ],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pdf));
    let report = write(tmp_dir, "report-vi.pdf", &pdf);
    assert_report(&report, "Hợp lệ", &citizen_pdf, &ids);

    // Batches: another agency's officer sees none of this agency's.
    let cookie = http_login(&gw, "officer1", PASSWORD).expect("session");
    let (_, form) = super::get_with(&gw, "desk/batch", &cookie);
    let csrf = csrf_of(&form);
    let doc = signgate::batch::sample::pdf(1, 10_000);
    let (body, content_type) = multipart(&[
        ("csrf", None, csrf.as_bytes()),
        ("key", None, &b"demo-agency"[..]),
        ("documents", Some("x.pdf"), doc.as_slice()),
    ]);
    let r = match agent
        .post(&gw.url("desk/batch"))
        .set("Content-Type", &content_type)
        .set("Cookie", &cookie)
        .send_bytes(&body)
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("batch: {e}"),
    };
    assert_eq!(r.status(), 303);
    let location = r.header("location").expect("location").to_string();
    // Without the token first: refused, nothing recorded.
    let (body, content_type) = multipart(&[
        ("key", None, &b"demo-agency"[..]),
        ("documents", Some("x.pdf"), doc.as_slice()),
    ]);
    let refused = match agent
        .post(&gw.url("desk/batch"))
        .set("Content-Type", &content_type)
        .set("Cookie", &cookie)
        .send_bytes(&body)
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("batch: {e}"),
    };
    assert_eq!(refused, 403);
    let pw = gw.dir.path().join("other.pw");
    std::fs::write(&pw, PASSWORD).expect("password file");
    run_ok(&mut demo_admin(
        gw.dir.path(),
        &[
            "user",
            "add",
            "--username",
            "stranger",
            "--agency",
            "other",
            "--name",
            "Người lạ",
            "--role",
            "officer",
            "--password-file",
            pw.to_str().expect("utf-8 path"),
        ],
    ));
    let other = http_login(&gw, "stranger", PASSWORD).expect("other session");
    for path in [
        location.trim_start_matches('/').to_string(),
        format!("{}/progress", location.trim_start_matches('/')),
        format!("{}/archive", location.trim_start_matches('/')),
    ] {
        let (status, _) = super::get_with(&gw, &path, &other);
        assert_eq!(status, 404, "{path}");
        let (status, _) = super::get_with(&gw, &path, &cookie);
        assert!(status == 200 || status == 409, "{path}: {status}");
    }
}
