//! Envelopes built for the user, documents downloaded, and the demo network (issue 15, items
//! 2, 3 and 7):
//! - every sample edXML file in the repository passes `xmllint --schema`;
//! - the README's walk-through (the `sh` blocks between its markers) runs as written against
//!   `signgate route demo` on free ports;
//! - over HTTP: a multipart send built by the gateway, downloads with their media types and
//!   safe names, another agency's documents answering 404, and the three-level variant.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// Files tracked by git under the repository (samples only: no build output).
fn tracked_files() -> Vec<PathBuf> {
    let root = repo_root();
    let o = run(Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&root));
    assert_exit(&o, 0, "git ls-files");
    o.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
        .collect()
}

/// Every `.xml`/`.edxml` file in the QCVN 102 namespace (envelopes and status messages) is
/// valid under `schemas/edxml-qcvn102.xsd` according to libxml2.
#[test]
fn every_sample_envelope_passes_xmllint() {
    let Some(xmllint) = require_tool("xmllint") else {
        return;
    };
    let samples: Vec<PathBuf> = tracked_files()
        .into_iter()
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("xml") | Some("edxml")
            )
        })
        .filter(|p| {
            std::fs::read(p).is_ok_and(|b| {
                b.windows(39)
                    .any(|w| w == b"http://www.mic.gov.vn/TBT/QCVN_102_2016")
            })
        })
        .collect();
    assert!(
        samples.len() >= 2,
        "expected the edXML samples (tests/data/xml/edxml.xml, the fuzz seed), found {samples:?}"
    );
    let schema = repo_root().join("schemas/edxml-qcvn102.xsd");
    for sample in &samples {
        let o = run(Command::new(&xmllint)
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(sample));
        assert_exit(&o, 0, &format!("xmllint --schema on {}", sample.display()));
    }
}

/// The `sh` code blocks of README.md between `<!-- walkthrough:begin -->` and `<!-- walkthrough:end -->`.
fn walkthrough_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let start = readme
        .find("<!-- walkthrough:begin -->")
        .expect("walk-through begin marker");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("walk-through end marker");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme[start..end].lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap_or_default()),
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// A scratch folder that looks like the repository's root for the walk-through (its
/// `tests/`, `schemas/` and `examples/` linked), with `signgate` first on PATH.
fn walkthrough_folder() -> (tempfile::TempDir, String) {
    let tmp = tempdir();
    for d in ["tests", "schemas", "examples"] {
        std::os::unix::fs::symlink(repo_root().join(d), tmp.path().join(d)).expect("symlink");
    }
    let bin = signgate_bin();
    let path = format!(
        "{}:{}",
        bin.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (tmp, path)
}

/// The README walk-through, its own code blocks run in order by bash: demo network up, a
/// document built from a PDF and metadata, sent province → commune (CLI and HTTP multipart),
/// envelope and attachment downloaded byte-identical, acknowledged, statuses 01 then 03 back
/// at the province, and a document commune → province.
#[test]
fn readme_walkthrough_runs_as_written() {
    if !require_tools(&["bash", "curl", "xmllint"]) {
        return;
    }
    let blocks = walkthrough_blocks();
    assert!(blocks.len() >= 4, "walk-through blocks: {blocks:?}");
    let (tmp, path) = walkthrough_folder();
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    for (i, b) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '### block {}'\n{b}", i + 1));
    }
    script.push_str("wait\necho '### walk-through done'\n");
    let file = tmp.path().join("walkthrough.sh");
    std::fs::write(&file, &script).unwrap();
    let o = run(Command::new("timeout")
        .arg("600")
        .arg("bash")
        .arg(&file)
        .current_dir(tmp.path())
        .env("PATH", &path)
        .env("SIGNGATE_DEMO_PORT_BASE", "0")
        .env_remove("SIGNGATE_DATABASE_URL")
        .env_remove("SIGNGATE_KEY_PASSWORD"));
    assert_exit(&o, 0, "README walk-through");
    let out = stdout_str(&o);
    assert!(out.contains("attachment byte-identical"), "{out}");
    assert!(out.contains("### walk-through done"), "{out}");
    let sent = std::fs::read(tmp.path().join("congvan.pdf")).unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("received.pdf")).unwrap(),
        sent
    );
    // the downloaded envelope is the one built from the metadata, with the hops' trace
    let envelope = std::fs::read_to_string(tmp.path().join("received.edxml")).unwrap();
    assert!(
        envelope.contains("<CodeNumber>12</CodeNumber>"),
        "{envelope}"
    );
    assert!(envelope.contains("<FullName>Nguyễn Văn Mẫu</FullName>"));
    // one trace header per hop: the province node (sender), then commune A
    let hops: Vec<&str> = envelope
        .split("<TraceHeader><OrganId>")
        .skip(1)
        .filter_map(|t| t.split('<').next())
        .collect();
    assert_eq!(hops, ["DEMO.H01", "DEMO.H01.00004"], "{envelope}");
    // statuses at the province: 01 (received) before 03 (accepted)
    let status = out
        .find("\"code\": \"01\"")
        .zip(out.rfind("\"code\": \"03\""));
    assert!(matches!(status, Some((a, b)) if a < b), "{out}");
}

/// `signgate route demo` started in the background on free ports; killed when dropped.
struct DemoNet {
    child: KillOnDrop,
    env: std::collections::HashMap<String, String>,
    dir: PathBuf,
}

impl DemoNet {
    fn start(tmp: &Path, structure: &str) -> DemoNet {
        let dir = tmp.join(format!("net-{structure}"));
        let mut cmd = signgate(["route", "demo", "--structure", structure, "--dir"]);
        cmd.arg(&dir)
            .env("SIGNGATE_DEMO_PORT_BASE", "0")
            .env_remove("SIGNGATE_KEY_PASSWORD")
            .env_remove("SIGNGATE_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn route demo");
        let stdout = child.stdout.take().expect("stdout");
        let child = KillOnDrop(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("demo network ready") => break,
                Ok(_) => {}
                Err(e) => panic!("route demo did not become ready: {e}"),
            }
        }
        assert!(dir.join("ready").is_file());
        let env_text = std::fs::read_to_string(dir.join("env")).expect("env file");
        let mut env = std::collections::HashMap::new();
        for line in env_text.lines().filter(|l| l.starts_with("export ")) {
            for pair in line["export ".len()..].split(' ') {
                if let Some((k, v)) = pair.split_once('=') {
                    env.insert(k.to_string(), v.trim_matches('\'').to_string());
                }
            }
        }
        DemoNet { child, env, dir }
    }

    fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("{name} in env"))
    }
}

/// `GET url` with a bearer token: status, headers of interest and body.
fn get(url: &str, token: &str) -> (u16, Option<String>, Option<String>, Vec<u8>) {
    let resp = match ureq::get(url)
        .set("Authorization", &format!("Bearer {token}"))
        .call()
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let status = resp.status();
    let ct = resp.header("content-type").map(String::from);
    let cd = resp.header("content-disposition").map(String::from);
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    (status, ct, cd, body)
}

fn query(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Over HTTP: a multipart send (two attachments, one named in Vietnamese) that the gateway
/// builds and signs; downloads at the commune with the attachment's media type and a safe
/// name; the sender may download too; the other commune and a bad index answer 404; and the
/// three-level variant delivers through the district.
#[test]
fn multipart_send_and_downloads_over_http() {
    let tmp = tempdir();
    let net = DemoNet::start(tmp.path(), "2025");
    let (province, token_p) = (net.var("PROVINCE_URL"), net.var("PROVINCE_TOKEN"));
    let (commune, token_a) = (net.var("COMMUNE_A_URL"), net.var("COMMUNE_A_TOKEN"));
    let (commune_b, token_b) = (net.var("COMMUNE_B_URL"), net.var("COMMUNE_B_TOKEN"));
    let pdf = std::fs::read(sample_pdf()).unwrap();
    let appendix = "Phụ lục 1: danh sách (dữ liệu thử nghiệm)\n".as_bytes();
    let header = serde_json::json!({
        "to": [net.var("COMMUNE_A_ORGAN")], "number": "77", "notation": "UBND-VP", "type": "18",
        "subject": "Về việc tải xuống", "date": "2025/07/03", "place": "Hà Nội",
        "signer": "Nguyễn Văn Mẫu", "due_date": "10/07/2025",
    })
    .to_string();
    let (body, ct) = multipart(&[
        ("header", None, header.as_bytes()),
        ("attachment", Some("congvan.pdf"), &pdf),
        ("attachment", Some("Phụ lục 1.txt"), appendix),
    ]);
    let resp = ureq::post(&format!("{province}/v1/route/send"))
        .set("Authorization", &format!("Bearer {token_p}"))
        .set("Content-Type", &ct)
        .send_bytes(&body);
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("send: {e}"),
    };
    let status = resp.status();
    let v: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
    assert_eq!(status, 202, "{v}");
    let doc = "DEMO.H01,2025/07/03,77/UBND-VP";
    assert_eq!(v["document_id"], doc, "{v}");
    let q = query(doc);
    wait_for("delivery to commune A", || {
        get(
            &format!("{commune}/v1/route/document?document_id={q}"),
            token_a,
        )
        .0 == 200
    });
    let (s, ct, cd, envelope) = get(
        &format!("{commune}/v1/route/document?document_id={q}"),
        token_a,
    );
    assert_eq!((s, ct.as_deref()), (200, Some("application/xml")));
    assert!(cd.unwrap_or_default().starts_with("attachment; filename="));
    let text = String::from_utf8(envelope).unwrap();
    assert!(text.contains("<DueDate>2025/07/10</DueDate>"), "{text}");
    assert!(
        text.contains("<OrganName>UBND Phường Ba Đình</OrganName>"),
        "{text}"
    );
    let (s, ct, _, got) = get(
        &format!("{commune}/v1/route/attachment?document_id={q}&n=0"),
        token_a,
    );
    assert_eq!((s, ct.as_deref()), (200, Some("application/pdf")));
    assert_eq!(got, pdf);
    let (s, ct, cd, got) = get(
        &format!("{commune}/v1/route/attachment?document_id={q}&n=1"),
        token_a,
    );
    assert_eq!((s, ct.as_deref()), (200, Some("text/plain")));
    assert_eq!(got, appendix);
    let cd = cd.unwrap_or_default();
    assert!(cd.contains("filename=\"Ph__l_c_1.txt\""), "{cd}");
    assert!(
        cd.contains("filename*=UTF-8''Ph%E1%BB%A5%20l%E1%BB%A5c%201.txt"),
        "{cd}"
    );
    // the sender sees its document at its own node; nobody else does
    let (s, _, _, got) = get(
        &format!("{province}/v1/route/attachment?document_id={q}&n=0"),
        token_p,
    );
    assert_eq!((s, got == pdf), (200, true));
    // another agency's client at commune A's own node (commune B's token is unknown there: 401)
    let o = run(signgate(["client", "add", "--name", "other", "--agency"])
        .arg(net.var("COMMUNE_B_ORGAN"))
        .arg("--config")
        .arg(net.var("COMMUNE_A_CONFIG"))
        .env("SIGNGATE_KEY_PASSWORD", "demo"));
    assert_exit(&o, 0, "client add");
    let other: Value = serde_json::from_str(&stdout_str(&o)).unwrap();
    let other = other["token"].as_str().unwrap().to_string();
    for (url, token) in [(commune_b, token_b), (commune, other.as_str())] {
        let (s, _, _, body) = get(&format!("{url}/v1/route/document?document_id={q}"), token);
        assert_eq!(s, 404, "{}", String::from_utf8_lossy(&body));
        let (s, _, _, _) = get(
            &format!("{url}/v1/route/attachment?document_id={q}&n=0"),
            token,
        );
        assert_eq!(s, 404);
    }
    let (s, _, _, _) = get(
        &format!("{commune}/v1/route/attachment?document_id={q}&n=2"),
        token_a,
    );
    assert_eq!(s, 404);
    // a header naming another sender is refused; no header part is a bad request
    let forged = header.replace("\"to\"", "\"from\":\"DEMO.H01.00008\",\"to\"");
    let (body, ct) = multipart(&[
        ("header", None, forged.as_bytes()),
        ("attachment", Some("a.pdf"), &pdf),
    ]);
    let r = ureq::post(&format!("{province}/v1/route/send"))
        .set("Authorization", &format!("Bearer {token_p}"))
        .set("Content-Type", &ct)
        .send_bytes(&body);
    assert!(matches!(r, Err(ureq::Error::Status(400 | 422, _))), "{r:?}");
    let (body, ct) = multipart(&[("attachment", Some("a.pdf"), &pdf)]);
    let r = ureq::post(&format!("{province}/v1/route/send"))
        .set("Authorization", &format!("Bearer {token_p}"))
        .set("Content-Type", &ct)
        .send_bytes(&body);
    assert!(matches!(r, Err(ureq::Error::Status(400, _))), "{r:?}");
    // the CLI download is the same file
    let out = tmp.path().join("cli.txt");
    let o = run(signgate(["route", "attachment", "--config"])
        .arg(net.var("COMMUNE_A_CONFIG"))
        .args(["--document-id", doc, "--n", "1", "--out"])
        .arg(&out)
        .env("SIGNGATE_KEY_PASSWORD", "demo"));
    assert_exit(&o, 0, "route attachment");
    assert_eq!(std::fs::read(&out).unwrap(), appendix);
    let _ = (&net.child, &net.dir);
    drop(net);

    // three levels: province → district → commune
    let net = DemoNet::start(tmp.path(), "2024");
    let commune_organ = net.var("COMMUNE_ORGAN").to_string();
    let o = run(signgate(["route", "send", "--config"])
        .arg(net.var("PROVINCE_CONFIG"))
        .arg("--meta")
        .arg(net.dir.join("document.toml"))
        .arg("--pdf")
        .arg(sample_pdf())
        .env("SIGNGATE_KEY_PASSWORD", "demo"));
    assert_exit(&o, 0, "route send (2024)");
    let q = query("DEMO.H01,2025/07/01,12/UBND-VP");
    let (commune, token) = (net.var("COMMUNE_URL"), net.var("COMMUNE_TOKEN"));
    wait_for("delivery through the district", || {
        get(
            &format!("{commune}/v1/route/attachment?document_id={q}&n=0"),
            token,
        )
        .0 == 200
    });
    let (_, _, _, got) = get(
        &format!("{commune}/v1/route/attachment?document_id={q}&n=0"),
        token,
    );
    assert_eq!(got, pdf);
    let (_, _, _, envelope) = get(
        &format!("{commune}/v1/route/document?document_id={q}"),
        token,
    );
    let text = String::from_utf8(envelope).unwrap();
    assert!(
        text.contains(&format!("<OrganId>{commune_organ}</OrganId>")),
        "{text}"
    );
    assert!(
        text.contains("<OrganId>DEMO.H01.001</OrganId>"),
        "trace through the district: {text}"
    );
}

/// The OpenAPI description lists the download endpoints and the multipart form of send.
#[test]
fn openapi_describes_sending_and_downloads() {
    let text = std::fs::read_to_string(repo_root().join("schemas/openapi.json")).unwrap();
    let api: Value = serde_json::from_str(&text).unwrap();
    for path in ["/v1/route/document", "/v1/route/attachment"] {
        let params = &api["paths"][path]["get"]["parameters"];
        assert!(
            params
                .as_array()
                .is_some_and(|p| p.iter().any(|q| q["name"] == "document_id")),
            "{path}"
        );
    }
    assert!(
        api["paths"]["/v1/route/send"]["post"]["requestBody"]["content"]["multipart/form-data"]
            .is_object()
    );
}

/// `signgate edxml build|inspect|verify` offline: a PDF and metadata flags become a signed,
/// schema-valid envelope; inspect lists the attachment with its digest and extracts it
/// byte-identical; verify passes the intact envelope (exit 0 or, offline with no revocation
/// data, 2) and fails a tampered one (exit 1) naming the part; a missing field is refused.
#[test]
fn edxml_build_inspect_verify_offline() {
    let tmp = tempdir();
    let demo = repo_root().join("certs/demo");
    let env = tmp.path().join("env.edxml");
    let pdf = std::fs::read(sample_pdf()).unwrap();
    let build = |out: &Path, subject: &str| {
        let mut cmd = signgate([
            "edxml",
            "build",
            "--from",
            "DEMO.H01",
            "--to",
            "DEMO.H01.00004",
        ]);
        cmd.args(["--number", "9", "--notation", "UBND-VP", "--type", "18"])
            .args([
                "--subject",
                subject,
                "--date",
                "2025-07-01",
                "--place",
                "Hà Nội",
            ])
            .args(["--signer", "Nguyễn Văn Mẫu", "--pdf"])
            .arg(sample_pdf())
            .arg("--key")
            .arg(demo.join("agency-signer.p12"))
            .arg("--out")
            .arg(out)
            .env("SIGNGATE_KEY_PASSWORD", "demo");
        run(&mut cmd)
    };
    assert_exit(&build(&env, "Về việc kiểm tra"), 0, "edxml build");
    let o = build(&tmp.path().join("bad.edxml"), "");
    assert_exit(&o, 65, "edxml build without a subject");
    assert!(
        stderr_str(&o).contains("subject is missing"),
        "{}",
        stderr_str(&o)
    );
    assert!(!tmp.path().join("bad.edxml").exists());

    let o = run(signgate(["edxml", "inspect"]).arg(&env));
    assert_exit(&o, 0, "edxml inspect");
    let v: Value = serde_json::from_str(&stdout_str(&o)).unwrap();
    assert_eq!(v["document_id"], "DEMO.H01,2025/07/01,9/UBND-VP");
    assert_eq!(v["signed"], true);
    assert_eq!(v["attachments"][0]["content_type"], "application/pdf");
    assert_eq!(v["attachments"][0]["size"], pdf.len());
    let out = tmp.path().join("out.pdf");
    let o = run(signgate(["edxml", "inspect", "--attachment", "0", "--out"])
        .arg(&out)
        .arg(&env));
    assert_exit(&o, 0, "edxml inspect --attachment");
    assert_eq!(std::fs::read(&out).unwrap(), pdf);

    let verify = |file: &Path| {
        run(signgate(["edxml", "verify", "--offline", "--trust"])
            .arg(demo.join("root-ca.pem"))
            .arg(file))
    };
    let o = verify(&env);
    assert!(
        matches!(o.status.code(), Some(0) | Some(2)),
        "intact envelope: {}\n{}",
        stdout_str(&o),
        stderr_str(&o)
    );
    let text = std::fs::read_to_string(&env).unwrap();
    let tampered = tmp.path().join("tampered.edxml");
    std::fs::write(&tampered, text.replace("Về việc kiểm tra", "Về việc khác")).unwrap();
    let o = verify(&tampered);
    assert_exit(&o, 1, "tampered envelope");
    let v: Value = serde_json::from_str(&stdout_str(&o)).unwrap();
    assert_eq!(v["passed"], false);
    assert!(
        v["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("MessageHeader"),
        "{v}"
    );
}
