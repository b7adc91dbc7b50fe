//! Bad input through the CLI: each case gives `signgate: CODE: ` on stderr, the exit code of
//! CONTRACTS.md §1, and leaves no output file (nor a temporary one) behind. Through HTTP
//! (issue 16 item 7): every error answer has the JSON error shape (405 with `Allow`, 414, a
//! bad path segment), 401 carries `WWW-Authenticate`, no message shows a server path, the
//! agency's audit view hides the global sequence, `schemas/openapi.json` passes
//! openapi-spec-validator, and schemathesis finds the real answers conforming to it.
//!
//! Bad certificates come from a demo PKI generated once per test binary
//! ([`signgate::pki::demo::DemoPki::issue_leaf`]); nothing here needs a live server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use crate::common::*;
use signgate::pki::demo::{DemoPki, LeafProfile, LeafSpec};

/// The generated PKI (no server: its URLs point at a port nobody serves).
struct Pki {
    pki: Mutex<DemoPki>,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let (tmp, pki) = generate_demo_pki(&format!("http://127.0.0.1:{}/", free_port()));
        Pki {
            pki: Mutex::new(pki),
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
        }
    })
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Issues `spec` into `DIR/FILE.p12`, once per name.
    fn leaf(&self, spec: LeafSpec, file: &str) -> PathBuf {
        let p12 = self.path(&format!("{file}.p12"));
        let mut pki = self.pki.lock().unwrap_or_else(|e| e.into_inner());
        if !p12.exists() {
            pki.issue_leaf(&spec, &p12)
                .unwrap_or_else(|e| panic!("issue {file}: {e}"));
        }
        p12
    }

    fn signer(&self) -> PathBuf {
        self.path("agency-signer.p12")
    }
}

/// An empty output folder; [`Case::assert_fails`] checks it stays empty.
struct Case {
    out_dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case { out_dir: tempdir() }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.out_dir.path().join(name)
    }

    /// `signgate sign --key KEY --in INPUT --out OUT EXTRA…` with password `password`.
    fn sign(&self, key: &Path, input: &Path, out: &Path, extra: &[&str], password: &str) -> Output {
        run(signgate(["sign", "--key"])
            .arg(key)
            .arg("--in")
            .arg(input)
            .arg("--out")
            .arg(out)
            .args(extra)
            .env("SIGNGATE_KEY_PASSWORD", password))
    }

    /// Asserts exit `exit`, stderr starting with `signgate: CODE: ` (one line), and an
    /// output folder with nothing in it.
    fn assert_fails(&self, out: &Output, code: &str, exit: i32) {
        assert_exit(out, exit, code);
        let stderr = stderr_str(out);
        assert!(
            stderr.starts_with(&format!("signgate: {code}: ")),
            "expected `signgate: {code}: …`, got: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let left: Vec<_> = std::fs::read_dir(self.out_dir.path())
            .expect("read output dir")
            .map(|e| e.map(|e| e.file_name()))
            .collect();
        assert!(left.is_empty(), "{code}: files left behind: {left:?}");
    }
}

/// Signs `input` with the demo signer into a fresh folder and expects `code`/`exit`.
fn sign_fails(input: &Path, extra: &[&str], code: &str, exit: i32) {
    let case = Case::new();
    let out = case.sign(
        &pki().signer(),
        input,
        &case.out("signed.pdf"),
        extra,
        "demo",
    );
    case.assert_fails(&out, code, exit);
}

#[test]
fn truncated_pdf_is_malformed() {
    sign_fails(&corpus("truncated.pdf"), &[], "PDF_MALFORMED", 65);
}

#[test]
fn not_a_pdf_with_format_pdf_is_malformed() {
    sign_fails(
        &corpus("not-a-pdf.txt"),
        &["--format", "pdf"],
        "PDF_MALFORMED",
        65,
    );
}

#[test]
fn encrypted_pdf_is_refused() {
    sign_fails(&corpus("encrypted.pdf"), &[], "PDF_ENCRYPTED", 65);
}

#[test]
fn certified_no_changes_pdf_is_refused() {
    sign_fails(
        &corpus("certified-p1.pdf"),
        &[],
        "PDF_CERTIFIED_NO_CHANGES",
        65,
    );
}

#[test]
fn wrong_password_is_reported_without_the_password() {
    let case = Case::new();
    let secret = "Wr0ng-Secret-4711";
    let out = case.sign(
        &pki().signer(),
        &corpus("simple.pdf"),
        &case.out("signed.pdf"),
        &[],
        secret,
    );
    case.assert_fails(&out, "KEY_PASSWORD_WRONG", 77);
    assert!(!stderr_str(&out).contains(secret), "{}", stderr_str(&out));
    assert!(!stdout_str(&out).contains(secret));
    // The same through --password-file.
    let pw_dir = tempdir();
    let pw = pw_dir.path().join("pw.txt");
    std::fs::write(&pw, format!("{secret}\n")).unwrap();
    let out = run(signgate(["sign", "--key"])
        .arg(pki().signer())
        .arg("--in")
        .arg(corpus("simple.pdf"))
        .arg("--out")
        .arg(case.out("signed.pdf"))
        .arg("--password-file")
        .arg(&pw)
        .env_remove("SIGNGATE_KEY_PASSWORD"));
    case.assert_fails(&out, "KEY_PASSWORD_WRONG", 77);
    assert!(!stderr_str(&out).contains(secret), "{}", stderr_str(&out));
}

#[test]
fn legacy_rc2_3des_p12_signs() {
    let Some(_) = require_tool("openssl") else {
        return;
    };
    let work = tempdir();
    let legacy = legacy_p12(&pki().signer(), work.path(), "legacy");
    let text = run_ok(
        Command::new("openssl")
            .args([
                "pkcs12",
                "-info",
                "-noout",
                "-legacy",
                "-passin",
                "pass:demo",
                "-in",
            ])
            .arg(&legacy),
    );
    let info = stderr_str(&text) + &stdout_str(&text);
    assert!(
        info.contains("RC2") || info.contains("3DES") || info.contains("des-ede3"),
        "not a legacy p12: {info}"
    );
    // CMS: checked by openssl.
    let content = work.path().join("doc.txt");
    std::fs::write(&content, "Tờ trình số 12/TTr-UBND\n").unwrap();
    let p7s = work.path().join("doc.p7s");
    run_ok(
        signgate(["sign", "--key"])
            .arg(&legacy)
            .arg("--in")
            .arg(&content)
            .arg("--out")
            .arg(&p7s)
            .env("SIGNGATE_KEY_PASSWORD", "demo"),
    );
    let verdict = openssl_cms_verify_output(&p7s, &content, &pki().path("root-ca.pem"));
    assert!(verdict.status.success(), "{}", stderr_str(&verdict));
    // PDF: intact and chained by signgate verify (offline: revocation cannot be known here).
    let pdf = work.path().join("signed.pdf");
    run_ok(
        signgate(["sign", "--key"])
            .arg(&legacy)
            .arg("--in")
            .arg(corpus("simple.pdf"))
            .arg("--out")
            .arg(&pdf)
            .env("SIGNGATE_KEY_PASSWORD", "demo"),
    );
    let root = pki().path("root-ca.pem");
    let (code, report, _) = verify_json(&[
        pdf.as_os_str(),
        "--trust".as_ref(),
        root.as_os_str(),
        "--offline".as_ref(),
    ]);
    assert_eq!(report["signatures"][0]["intact"], true, "{report:#}");
    assert_eq!(
        report["signatures"][0]["trust_list"], "default",
        "{report:#}"
    );
    assert_eq!(code, Some(2), "{report:#}");
    assert_eq!(report["sub_indication"], "TRY_LATER", "{report:#}");
}

#[test]
fn expired_certificate_is_refused() {
    let p12 = pki().leaf(LeafSpec::new("Expired Signer").expired(), "expired");
    let case = Case::new();
    let out = case.sign(&p12, &corpus("simple.pdf"), &case.out("o.pdf"), &[], "demo");
    case.assert_fails(&out, "CERT_EXPIRED", 77);
}

#[test]
fn not_yet_valid_certificate_is_refused() {
    let p12 = pki().leaf(LeafSpec::new("Future Signer").not_yet_valid(), "future");
    let case = Case::new();
    let out = case.sign(&p12, &corpus("simple.pdf"), &case.out("o.pdf"), &[], "demo");
    case.assert_fails(&out, "CERT_NOT_YET_VALID", 77);
}

#[test]
fn certificate_without_signing_usage_is_refused() {
    let p12 = pki().leaf(
        LeafSpec::new("Encipherment Only").with_profile(LeafProfile::NoSigningUsage),
        "no-usage",
    );
    let case = Case::new();
    for (input, name) in [
        (corpus("simple.pdf"), "o.pdf"),
        (corpus("not-a-pdf.txt"), "o.p7s"),
    ] {
        let out = case.sign(&p12, &input, &case.out(name), &[], "demo");
        case.assert_fails(&out, "CERT_NO_SIGNING_USAGE", 77);
    }
}

#[test]
fn unreachable_tsa_is_unavailable() {
    let port = free_port(); // bound then released: nothing listens there
    let url = format!("http://127.0.0.1:{port}/");
    sign_fails(
        &corpus("simple.pdf"),
        &["--level", "b-t", "--tsa", &url, "--tsa-timeout", "3"],
        "TSA_UNAVAILABLE",
        69,
    );
    let case = Case::new();
    let out = case.sign(
        &pki().signer(),
        &corpus("not-a-pdf.txt"),
        &case.out("o.p7s"),
        &["--level", "b-t", "--tsa", &url, "--tsa-timeout", "3"],
        "demo",
    );
    case.assert_fails(&out, "TSA_UNAVAILABLE", 69);
}

#[test]
fn b_t_without_tsa_is_usage() {
    sign_fails(&corpus("simple.pdf"), &["--level", "b-t"], "USAGE", 64);
}

#[test]
fn missing_input_is_66() {
    let case = Case::new();
    let missing = case.out("nope").join("missing.pdf");
    let out = case.sign(&pki().signer(), &missing, &case.out("o.pdf"), &[], "demo");
    case.assert_fails(&out, "INPUT_MISSING", 66);
    // A missing key file is missing input too.
    let out = case.sign(
        &case.out("no-key.p12"),
        &corpus("simple.pdf"),
        &case.out("o.pdf"),
        &[],
        "demo",
    );
    case.assert_fails(&out, "INPUT_MISSING", 66);
}

#[test]
fn output_into_missing_folder_is_73() {
    let case = Case::new();
    let target = case.out("no-such-folder").join("signed.pdf");
    let out = case.sign(&pki().signer(), &corpus("simple.pdf"), &target, &[], "demo");
    case.assert_fails(&out, "OUTPUT_UNWRITABLE", 73);
    assert!(!case.out("no-such-folder").exists());
}

#[test]
fn page_out_of_range_is_refused() {
    let image = data_dir().join("images/signature.png");
    sign_fails(
        &corpus("simple.pdf"),
        &["--signature-image", image.to_str().unwrap(), "--page", "99"],
        "PDF_PAGE_OUT_OF_RANGE",
        65,
    );
}

#[test]
fn seal_without_previous_signature_is_refused() {
    let seal = repo_root().join("assets/seal.png");
    sign_fails(
        &corpus("simple.pdf"),
        &["--stamp", seal.to_str().unwrap()],
        "PDF_NO_SIGNATURE_TO_SEAL",
        65,
    );
}

#[test]
fn broken_png_is_image_invalid() {
    let work = tempdir();
    let good = std::fs::read(data_dir().join("images/signature.png")).unwrap();
    // A real PNG cut in the middle of its image data, and a PNG signature followed by junk.
    let cut = work.path().join("cut.png");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    let junk = work.path().join("junk.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(b"this is not a PNG chunk stream at all");
    std::fs::write(&junk, bytes).unwrap();
    for png in [&cut, &junk] {
        sign_fails(
            &corpus("simple.pdf"),
            &["--signature-image", png.to_str().unwrap()],
            "IMAGE_INVALID",
            65,
        );
        sign_fails(
            &corpus("simple.pdf"),
            &[
                "--stamp",
                png.to_str().unwrap(),
                "--rect",
                "100,100,100,100",
            ],
            "IMAGE_INVALID",
            65,
        );
    }
}

/// `method url` with a token and extra headers: status, headers (lowercase names) and body.
fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut req = ureq::request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let response = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let names = response.headers_names();
    let headers = names
        .iter()
        .filter_map(|n| Some((n.to_lowercase(), response.header(n)?.to_string())))
        .collect();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body).expect("body");
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The error code of a JSON error answer, after checking its shape and content type.
fn json_error(status: u16, headers: &[(String, String)], body: &[u8]) -> String {
    assert_eq!(
        header(headers, "content-type"),
        Some("application/json"),
        "{status}: {}",
        String::from_utf8_lossy(body)
    );
    let v: serde_json::Value = serde_json::from_slice(body).expect("JSON");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v["error"]["request_id"].is_string(), "{v}");
    v["error"]["code"].as_str().expect("code").to_string()
}

#[test]
fn http_errors_have_the_json_shape() {
    let gw = DemoGateway::start();
    let token = gw.token.as_str();

    // 405 with Allow.
    let (status, headers, body) = http("DELETE", &gw.url("v1/sign"), Some(token), &[]);
    assert_eq!(status, 405);
    assert_eq!(json_error(status, &headers, &body), "METHOD_NOT_ALLOWED");
    assert!(
        header(&headers, "allow").is_some_and(|a| a.contains("POST")),
        "{headers:?}"
    );

    // A path segment of the wrong type.
    let (status, headers, body) = http(
        "GET",
        &gw.url("v1/batches/x/documents/notanumber"),
        Some(token),
        &[],
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_error(status, &headers, &body), "USAGE");

    // 414.
    let long = format!("v1/audit?action={}", "a".repeat(10_000));
    let (status, headers, body) = http("GET", &gw.url(&long), Some(token), &[]);
    assert_eq!(status, 414);
    assert_eq!(json_error(status, &headers, &body), "URI_TOO_LONG");

    // Beyond hyper's own 64 KiB limit, and an unparsable request: hyper answers, in the shape.
    for request in [
        format!(
            "GET /v1/audit?action={} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(70_000)
        ),
        "GET /v1/audit HTTP/1.1\r\nHost x\r\n\r\n".to_string(),
    ] {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", gw.server.port)).expect("connect");
        std::io::Write::write_all(&mut tcp, request.as_bytes()).expect("send");
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut tcp, &mut answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(head.starts_with("HTTP/1.1 4"), "{answer}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        let expected = if request.len() > 65_536 {
            "URI_TOO_LONG"
        } else {
            "USAGE"
        };
        assert_eq!(v["error"]["code"], expected, "{v}");
    }

    // 401 says how to authenticate, with and without a token.
    for t in [None, Some("sg_wrong")] {
        let (status, headers, body) = http("GET", &gw.url("v1/audit"), t, &[]);
        assert_eq!(status, 401);
        assert_eq!(json_error(status, &headers, &body), "UNAUTHORIZED");
        assert!(
            header(&headers, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")),
            "{headers:?}"
        );
    }

    // A key file gone missing: the error names the key, not where it lives on the server.
    let data = gw.dir.path().join("data");
    std::fs::remove_file(data.join("demo/agency-signer.p12")).expect("remove the demo key");
    let pdf = std::fs::read(sample_pdf()).expect("sample");
    let signed = gw.post("v1/sign?key=demo-agency", &pdf);
    assert!(signed.status >= 400, "signed without its key file");
    let message = signed.error_message();
    let shown = std::fs::canonicalize(&data).expect("data dir");
    for dir in [data.display().to_string(), shown.display().to_string()] {
        assert!(!message.contains(&dir), "server path in: {message}");
    }
    assert!(
        !message.contains("agency-signer.p12"),
        "server path in: {message}"
    );
}

#[test]
fn the_audit_view_numbers_an_agencys_own_records() {
    let gw = DemoGateway::start();
    // Another agency's activity between two of this agency's requests.
    let other = run_ok(&mut demo_admin(
        gw.dir.path(),
        &["client", "add", "--agency", "other", "--name", "o"],
    ));
    let other: serde_json::Value = serde_json::from_slice(&other.stdout).expect("JSON");
    let other = other["token"].as_str().expect("token").to_string();
    let pdf = std::fs::read(sample_pdf()).expect("sample");
    let first = gw.post("v1/sign?key=demo-agency", &pdf);
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    for _ in 0..5 {
        let r = request(
            "POST",
            &gw.url("v1/verify"),
            Some(&other),
            Some(&first.body),
        );
        assert_eq!(r.status, 200);
    }
    let second = gw.post("v1/verify", &first.body);
    let ids: Vec<i64> = [&first, &second]
        .iter()
        .map(|r| {
            r.audit_id
                .as_deref()
                .and_then(|s| s.parse().ok())
                .expect("audit id")
        })
        .collect();
    assert_eq!(
        ids[1],
        ids[0] + 1,
        "the other agency's 5 records show in {ids:?}"
    );

    let page = request("GET", &gw.url("v1/audit?limit=1000"), Some(&gw.token), None).json();
    let records = page["records"].as_array().expect("records");
    let seqs: Vec<i64> = records
        .iter()
        .map(|r| r["seq"].as_i64().expect("seq"))
        .collect();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "the agency's records are numbered 1, 2, …");
    for r in records {
        assert!(r["record"].get("seq").is_none(), "global seq shown: {r}");
        assert!(r.get("prev_hash").is_none(), "chain link shown: {r}");
        assert_eq!(r["hash"].as_str().map(str::len), Some(64), "{r}");
    }
    assert!(records
        .iter()
        .any(|r| r["seq"] == ids[1] && r["action"] == "verify"));
    // Paging continues from the agency's own numbers.
    let after = request(
        "GET",
        &gw.url(&format!("v1/audit?after={}", ids[0])),
        Some(&gw.token),
        None,
    )
    .json();
    assert_eq!(after["records"][0]["seq"], ids[1]);
    // The chain itself is intact.
    let verified = run(&mut demo_admin(gw.dir.path(), &["audit", "verify"]));
    assert!(verified.status.success(), "{}", stderr_str(&verified));
}

#[test]
fn the_api_document_is_a_valid_openapi_description() {
    let Some(validator) = require_tool("openapi-spec-validator") else {
        return;
    };
    let out = run(Command::new(validator).arg(repo_root().join("schemas/openapi.json")));
    assert!(
        out.status.success(),
        "{}{}",
        stdout_str(&out),
        stderr_str(&out)
    );
    // The document the gateway serves is that file.
    let doc: serde_json::Value = serde_json::from_str(signgate::api::OPENAPI).expect("JSON");
    let batch_download = &doc["paths"]["/v1/batches/{id}/documents/{n}"]["get"]["responses"]["200"];
    for media in [
        "application/pdf",
        "application/pkcs7-signature",
        "application/xml",
    ] {
        assert!(batch_download["content"].get(media).is_some(), "{media}");
    }
    let archive = &doc["paths"]["/v1/batches/{id}/archive"]["get"]["responses"]["200"];
    assert!(archive["content"].get("application/zip").is_some());
    for (path, method) in [
        ("/v1/verify", "post"),
        ("/v1/submissions", "post"),
        ("/v1/audit", "get"),
        ("/v1/batches/{id}/documents/{n}", "get"),
        ("/v1/batches/{id}/archive", "get"),
    ] {
        let responses = &doc["paths"][path][method]["responses"];
        for code in ["400", "401", "429"] {
            assert!(responses.get(code).is_some(), "{method} {path}: no {code}");
        }
    }
}

#[test]
fn schemathesis_finds_the_answers_conforming_to_the_api_document() {
    let Some(st) = require_tool("st") else {
        return;
    };
    let gw = DemoGateway::start();
    let report = gw.dir.path().join("st-report");
    let out = run(Command::new(st)
        .args(["run", "--url"])
        .arg(gw.server.url.trim_end_matches('/'))
        .arg(repo_root().join("schemas/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {}", gw.token)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "8",
            "--phases",
            "examples,fuzzing",
            "--seed",
            "16",
            "--workers",
            "1",
            "--max-time",
            "90",
            "--request-timeout",
            "20",
            "--exclude-path-regex",
            "^/v1/route/",
            "--suppress-health-check",
            "all",
            "--report-dir",
        ])
        .arg(&report)
        .env("NO_COLOR", "1"));
    let text = format!("{}{}", stdout_str(&out), stderr_str(&out));
    assert!(out.status.success(), "{text}");
}
