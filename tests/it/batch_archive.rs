//! `GET /v1/batches/{id}/archive` (issue 18, CONTRACTS §4) over real HTTP: the ZIP of a
//! batch's signed outputs is read by real tools (`unzip -t`, Python's `zipfile`), every entry
//! verifies with `signgate verify` and `pdfsig`, entry names are plain, another agency's batch
//! answers 404 and a batch still being signed answers 409.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// Polls batch `id` until it is no longer queued or running.
pub(crate) fn wait_for_batch(gw: &DemoGateway, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let status = request(
            "GET",
            &gw.url(&format!("v1/batches/{id}")),
            Some(&gw.token),
            None,
        );
        assert_eq!(status.status, 200);
        let v = status.json();
        if !matches!(v["state"].as_str(), Some("queued" | "running")) {
            return v;
        }
        assert!(Instant::now() < deadline, "batch never finished: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Unpacks `zip` into `dir` with Python's `zipfile` after its CRC check (`testzip`), and
/// checks it with `unzip -t` when `unzip` is there; returns the entry names.
pub(crate) fn unzip_checked(zip: &Path, dir: &Path) -> Option<Vec<String>> {
    let python = require_tool("python3")?;
    let script = "import sys, zipfile, json\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  bad = z.testzip()\n\
                  assert bad is None, 'bad CRC in ' + str(bad)\n\
                  z.extractall(sys.argv[2])\n\
                  print(json.dumps(z.namelist()))\n";
    let out = run_ok(Command::new(python).arg("-c").arg(script).arg(zip).arg(dir));
    let names: Vec<String> = serde_json::from_slice(&out.stdout).expect("names as JSON");
    if let Some(unzip) = require_tool("unzip") {
        let out = run_ok(Command::new(unzip).arg("-t").arg(zip));
        let text = stdout_str(&out);
        assert!(text.contains("No errors detected"), "{text}");
    }
    Some(names)
}

/// Every entry of an unpacked archive of signed PDFs verifies with `signgate verify` and, when
/// present, `pdfsig`.
pub(crate) fn assert_signed_pdfs(dir: &Path, names: &[String]) {
    let nss =
        require_tool("pdfsig").map(|_| NssDb::new(&repo_root().join("certs/demo/root-ca.pem")));
    for name in names {
        let path = dir.join(name);
        let mut c = signgate(["verify", "--offline", "--trust"]);
        c.arg(repo_root().join("certs/demo/root-ca.pem")).arg(&path);
        let out = run(&mut c);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("verify {name}: {e}: {}", stderr_str(&out)));
        let sigs = report["signatures"].as_array().expect("signatures");
        assert_eq!(sigs.len(), 1, "{name}: {report}");
        assert_eq!(sigs[0]["intact"], true, "{name}: {report}");
        if let Some(nss) = &nss {
            let report = pdfsig(nss, &path);
            assert_eq!(report.signatures.len(), 1, "{name}: {}", report.raw);
            assert!(report.signatures[0].signature_valid(), "{}", report.raw);
        }
    }
}

#[test]
fn a_batch_archive_unzips_and_every_entry_verifies() {
    let gw = DemoGateway::start();
    let stranger = {
        let out = run_ok(&mut demo_admin(
            gw.dir.path(),
            &["client", "add", "--agency", "other", "--name", "x"],
        ));
        let v: Value = serde_json::from_slice(&out.stdout).expect("client add prints JSON");
        v["token"].as_str().expect("token").to_string()
    };
    const N: usize = 5;
    let docs: Vec<Vec<u8>> = (0..N)
        .map(|i| signgate::batch::sample::pdf(i, 20_000))
        .collect();
    // Hostile and non-ASCII upload names become plain names inside the archive.
    let names = [
        "../../etc/passwd.pdf",
        "Quyết định 12.pdf",
        "a.pdf",
        "a.pdf",
        ".hidden.pdf",
    ];
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = names
        .iter()
        .zip(&docs)
        .map(|(n, d)| ("document", Some(*n), d.as_slice()))
        .collect();
    parts.push(("options", None, &br#"{"key": "demo-agency"}"#[..]));
    let (form, content_type) = multipart(&parts);
    let created = request_with(
        "POST",
        &gw.url("v1/batches"),
        Some(&gw.token),
        &[("Content-Type", &content_type)],
        Some(&form),
    );
    assert_eq!(
        created.status,
        202,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["id"].as_str().expect("id").to_string();
    let archive_url = gw.url(&format!("v1/batches/{id}/archive"));

    // Another agency's client: no such batch, whatever its state.
    let foreign = request("GET", &archive_url, Some(&stranger), None);
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.error_code(), "NOT_FOUND");

    let status = wait_for_batch(&gw, &id);
    assert_eq!(status["signed"], N as u64, "{status}");
    let zip = request("GET", &archive_url, Some(&gw.token), None);
    assert_eq!(zip.status, 200, "{}", String::from_utf8_lossy(&zip.body));
    assert_eq!(zip.content_type.as_deref(), Some("application/zip"));
    let dir = tempdir();
    let zip_path = dir.path().join("batch.zip");
    std::fs::write(&zip_path, &zip.body).expect("write zip");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("out dir");
    let Some(entries) = unzip_checked(&zip_path, &out) else {
        return;
    };
    assert_eq!(entries.len(), N, "{entries:?}");
    assert_eq!(
        entries,
        vec![
            "0000-passwd.pdf",
            "0001-Quy_t___nh_12.pdf",
            "0002-a.pdf",
            "0003-a.pdf",
            "0004-hidden.pdf"
        ]
    );
    // The bytes are the batch's outputs, as GET …/documents/{n} serves them.
    for (n, name) in entries.iter().enumerate() {
        let one = request(
            "GET",
            &gw.url(&format!("v1/batches/{id}/documents/{n}")),
            Some(&gw.token),
            None,
        );
        assert_eq!(one.status, 200);
        assert_eq!(
            std::fs::read(out.join(name)).expect("entry"),
            one.body,
            "{name}"
        );
    }
    assert_signed_pdfs(&out, &entries);
    // Without a token: the usual 401.
    let anonymous = request("GET", &archive_url, None, None);
    assert_eq!(anonymous.status, 401);
}
