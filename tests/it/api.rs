//! The HTTP gateway end to end: the real `signgate serve` binary, a real HTTP client, the
//! admin commands on the same database, and the audit chain checked by `signgate audit
//! verify` after tampering with the database directly.
//!
//! Runs on SQLite and on PostgreSQL (`DATABASE_URL`; each run in a fresh database
//! `sg_test_<pid>_<n>`, dropped at the end; without a server the PostgreSQL runs skip locally
//! and fail under `CI=true`).

use crate::common;

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::SigngateServer;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// A database for one run: the URL the gateway uses and how to clean it up.
struct Backend {
    dir: tempfile::TempDir,
    url: String,
    /// The PostgreSQL database, dropped with the backend.
    _postgres: Option<common::PgDatabase>,
}

impl Backend {
    fn sqlite() -> Self {
        let dir = common::tempdir();
        let url = format!("sqlite://{}", dir.path().join("signgate.db").display());
        Backend {
            dir,
            url,
            _postgres: None,
        }
    }

    /// A fresh PostgreSQL database (`None`: no server outside CI, see `common::require_database`).
    fn postgres() -> Option<Self> {
        let db = common::PgDatabase::create("sg_test")?;
        Some(Backend {
            dir: common::tempdir(),
            url: db.url.clone(),
            _postgres: Some(db),
        })
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }

    /// `signgate ARGS --data DIR` with this database.
    fn admin(&self, args: &[&str]) -> Output {
        let mut cmd = common::signgate(args);
        cmd.arg("--data")
            .arg(self.data())
            .env("SIGNGATE_DATABASE_URL", &self.url)
            .current_dir(common::repo_root());
        common::run(&mut cmd)
    }

    fn serve(&self) -> SigngateServer {
        SigngateServer::start(
            &[
                OsStr::new("serve"),
                OsStr::new("--listen"),
                OsStr::new("127.0.0.1:0"),
                OsStr::new("--data"),
                self.data().as_os_str(),
            ],
            &[("SIGNGATE_DATABASE_URL", self.url.as_str())],
        )
    }

    /// Runs SQL statements directly on the gateway's database (the "attacker").
    fn sql(&self, statements: &[&str]) {
        let url = self.url.clone();
        let statements: Vec<String> = statements.iter().map(|s| s.to_string()).collect();
        common::block_on(async move {
            if url.starts_with("postgres") {
                let pool = sqlx::PgPool::connect(&url).await.expect("connect");
                for s in &statements {
                    sqlx::query(s).execute(&pool).await.expect(s);
                }
                pool.close().await;
            } else {
                let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
                for s in &statements {
                    sqlx::query(s).execute(&pool).await.expect(s);
                }
                pool.close().await;
            }
        });
    }

    fn audit_canonical(&self, seq: i64) -> String {
        let url = self.url.clone();
        let sql = format!("SELECT canonical FROM audit WHERE seq = {seq}");
        common::block_on(async move {
            if url.starts_with("postgres") {
                let pool = sqlx::PgPool::connect(&url).await.expect("connect");
                let r = sqlx::query(&sql).fetch_one(&pool).await.expect("select");
                r.get::<String, _>(0)
            } else {
                let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
                let r = sqlx::query(&sql).fetch_one(&pool).await.expect("select");
                r.get::<String, _>(0)
            }
        })
    }
}

use crate::common::request_with as request;

fn token_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "client add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("client add prints JSON");
    v["token"].as_str().expect("token").to_string()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn audit_verify(b: &Backend, checkpoint: Option<&Path>) -> (i32, String) {
    let mut args = vec!["audit", "verify"];
    let cp;
    if let Some(p) = checkpoint {
        cp = p.display().to_string();
        args.extend(["--checkpoint", cp.as_str()]);
    }
    let out = b.admin(&args);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The demo gateway answers its demo PKI's OCSP/CRL in-process: no server on 127.0.0.1:8089.
fn gateway_suite(b: &Backend) {
    let server = b.serve();
    let url = server.url.clone();
    let at = |path: &str| format!("{url}{path}");

    // Clients: two of agency "demo" (one granted the demo key, one not), one of "other".
    let portal = token_of(&b.admin(&[
        "client",
        "add",
        "--agency",
        "demo",
        "--name",
        "portal",
        "--key",
        "demo-agency",
    ]));
    let ungranted = token_of(&b.admin(&["client", "add", "--agency", "demo", "--name", "viewer"]));
    let key_add = b.admin(&[
        "key",
        "add",
        "--name",
        "other-key",
        "--agency",
        "other",
        "--p12",
        "certs/demo/organization.p12",
    ]);
    assert!(
        key_add.status.success(),
        "{}",
        String::from_utf8_lossy(&key_add.stderr)
    );
    let other = token_of(&b.admin(&[
        "client",
        "add",
        "--agency",
        "other",
        "--name",
        "other portal",
        "--key",
        "other-key",
    ]));

    // Sign.
    let pdf = std::fs::read(common::sample_pdf()).expect("sample.pdf");
    let signed = request(
        "POST",
        &at("v1/sign?key=demo-agency"),
        Some(&portal),
        &[],
        Some(&pdf),
    );
    assert_eq!(
        signed.status,
        200,
        "{}",
        String::from_utf8_lossy(&signed.body)
    );
    assert!(signed.body.starts_with(b"%PDF-"));
    assert!(signed.body.len() > pdf.len());
    let sign_audit: i64 = signed
        .audit_id
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("Signgate-Audit-Id");

    // Verify.
    let report = request(
        "POST",
        &at("v1/verify"),
        Some(&portal),
        &[],
        Some(&signed.body),
    );
    assert_eq!(report.status, 200);
    let report = report.json();
    assert_eq!(report["indication"], "TOTAL_PASSED", "{report:#}");
    assert_eq!(report["signatures"][0]["intact"], true);

    // Submit, with an idempotency key; the receipt verifies with openssl over its exact bytes.
    let submitted = request(
        "POST",
        &at("v1/submissions"),
        Some(&portal),
        &[("Idempotency-Key", "filing-1")],
        Some(&signed.body),
    );
    assert_eq!(
        submitted.status,
        201,
        "{}",
        String::from_utf8_lossy(&submitted.body)
    );
    let sub = submitted.json();
    let receipt = &sub["receipt"];
    assert_eq!(receipt["sha256"], sha256_hex(&signed.body));
    assert_eq!(receipt["size"], signed.body.len());
    assert_eq!(receipt["indication"], "TOTAL_PASSED");
    let receipt_json = sub["receipt_json"].as_str().expect("receipt_json");
    assert_eq!(
        serde_json::from_str::<Value>(receipt_json).expect("receipt parses"),
        *receipt
    );
    let p7s = base64::engine::general_purpose::STANDARD
        .decode(sub["receipt_p7s"].as_str().expect("receipt_p7s"))
        .expect("base64");
    if common::require_tool("openssl").is_some() {
        let dir = common::tempdir();
        let (rj, rp) = (
            dir.path().join("receipt.json"),
            dir.path().join("receipt.p7s"),
        );
        std::fs::write(&rj, receipt_json).expect("write");
        std::fs::write(&rp, &p7s).expect("write");
        let root = common::repo_root().join("certs/demo/root-ca.pem");
        let mut cmd = std::process::Command::new("openssl");
        cmd.args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
        ])
        .arg("-in")
        .arg(&rp)
        .arg("-content")
        .arg(&rj)
        .arg("-CAfile")
        .arg(&root)
        .args(["-out", "/dev/null"]);
        let out = common::run(&mut cmd);
        assert!(
            out.status.success(),
            "openssl cms -verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A changed receipt does not verify.
        std::fs::write(&rj, receipt_json.replace("TOTAL_PASSED", "TOTAL_FAILED")).expect("write");
        assert!(!common::run(&mut cmd).status.success());
    }
    let id = sub["submission_id"].as_str().expect("id").to_string();
    let again = request(
        "POST",
        &at("v1/submissions"),
        Some(&portal),
        &[("Idempotency-Key", "filing-1")],
        Some(&signed.body),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["submission_id"], id.as_str());

    // A parseable but tampered document is stored and receipted with its verdict.
    let mut tampered = signed.body.clone();
    let pos = tampered
        .windows(8)
        .position(|w| w == b"/MediaBox")
        .unwrap_or(200);
    tampered[pos + 3] ^= 0x01;
    let failed = request(
        "POST",
        &at("v1/submissions"),
        Some(&portal),
        &[],
        Some(&tampered),
    );
    assert_eq!(
        failed.status,
        201,
        "{}",
        String::from_utf8_lossy(&failed.body)
    );
    assert_ne!(failed.json()["receipt"]["indication"], "TOTAL_PASSED");
    // Unparseable input is refused with its code.
    let refused = request(
        "POST",
        &at("v1/submissions"),
        Some(&portal),
        &[],
        Some(b"hello"),
    );
    assert_eq!(refused.status, 422);
    assert_eq!(refused.error_code(), "NO_SIGNATURE");

    // The submission is visible to its agency only.
    let own = request(
        "GET",
        &at(&format!("v1/submissions/{id}")),
        Some(&portal),
        &[],
        None,
    );
    assert_eq!(own.status, 200);
    let foreign = request(
        "GET",
        &at(&format!("v1/submissions/{id}")),
        Some(&other),
        &[],
        None,
    );
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.error_code(), "NOT_FOUND");

    // Another agency's key is 404; an ungranted key of one's own agency is 403.
    let cross = request(
        "POST",
        &at("v1/sign?key=demo-agency"),
        Some(&other),
        &[],
        Some(&pdf),
    );
    assert_eq!(cross.status, 404);
    assert_eq!(cross.error_code(), "NOT_FOUND");
    let forbidden = request(
        "POST",
        &at("v1/sign?key=demo-agency"),
        Some(&ungranted),
        &[],
        Some(&pdf),
    );
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.error_code(), "FORBIDDEN_KEY");
    let missing = request(
        "POST",
        &at("v1/sign?key=nope"),
        Some(&portal),
        &[],
        Some(&pdf),
    );
    assert_eq!(missing.status, 404);

    // Bad or missing token.
    for token in [Some("sg_not-a-token"), None] {
        let r = request("GET", &at("v1/audit"), token, &[], None);
        assert_eq!(r.status, 401);
        assert_eq!(r.error_code(), "UNAUTHORIZED");
    }

    // Audit: each agency sees its own records only.
    let own = request("GET", &at("v1/audit?limit=1000"), Some(&portal), &[], None).json();
    let records = own["records"].as_array().expect("records");
    let actions: Vec<&str> = records
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for a in ["sign", "verify", "submit", "client.add"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert!(records
        .iter()
        .any(|r| r["seq"] == sign_audit && r["action"] == "sign"));
    assert!(records.iter().all(|r| r["record"]["agency"] == "demo"));
    let theirs = request("GET", &at("v1/audit?limit=1000"), Some(&other), &[], None).json();
    let theirs = theirs["records"].as_array().expect("records");
    assert!(!theirs.is_empty());
    assert!(
        theirs.iter().all(|r| r["record"]["agency"] == "other"),
        "{theirs:?}"
    );

    // Health, metrics, OpenAPI.
    assert_eq!(request("GET", &at("healthz"), None, &[], None).status, 200);
    let metrics =
        String::from_utf8(request("GET", &at("metrics"), None, &[], None).body).expect("utf-8");
    assert!(
        metrics.contains("signgate_signatures_total{format=\"pdf\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("signgate_http_requests_total{route=\"/v1/sign\",status=\"200\"} 1"));
    assert!(metrics.contains("signgate_verdicts_total{indication=\"TOTAL_PASSED\"}"));
    let openapi = request("GET", &at("v1/openapi.json"), None, &[], None).json();
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(openapi["paths"]["/v1/sign"].is_object());
    for path in [
        "/v1/batches",
        "/v1/batches/{id}",
        "/v1/batches/{id}/documents/{n}",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} missing");
    }

    // Detached CMS: sign as cms, verify as multipart `signature` + `content`.
    let p7s = request(
        "POST",
        &at("v1/sign?key=demo-agency&format=cms"),
        Some(&portal),
        &[],
        Some(b"to khai thue 2025"),
    );
    assert_eq!(p7s.status, 200, "{}", String::from_utf8_lossy(&p7s.body));
    let boundary = "sgboundary7e3f";
    let mut form = Vec::new();
    for (name, bytes) in [
        ("signature", &p7s.body[..]),
        ("content", &b"to khai thue 2025"[..]),
    ] {
        form.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        form.extend_from_slice(bytes);
        form.extend_from_slice(b"\r\n");
    }
    form.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let detached = request(
        "POST",
        &at("v1/verify"),
        Some(&portal),
        &[("Content-Type", &content_type)],
        Some(&form),
    );
    assert_eq!(
        detached.status,
        200,
        "{}",
        String::from_utf8_lossy(&detached.body)
    );
    assert_eq!(detached.json()["signatures"][0]["intact"], true);

    // Concurrent requests all land in one unforked chain (checked by `audit verify` below).
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (url, token, doc) = (at("v1/verify"), portal.clone(), signed.body.clone());
            std::thread::spawn(move || {
                (0..3)
                    .map(|_| request("POST", &url, Some(&token), &[], Some(&doc)).status)
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().expect("thread").iter().all(|s| *s == 200));
    }

    // Body limit: errors keep the contract shape.
    let bad_query = request(
        "POST",
        &at("v1/sign?key=demo-agency&level=zz"),
        Some(&portal),
        &[],
        Some(&pdf),
    );
    assert_eq!(bad_query.status, 400);
    assert_eq!(bad_query.error_code(), "USAGE");
    server.stop();

    // The chain verifies, and a signed checkpoint of its head is written.
    let (code, text) = audit_verify(b, None);
    assert_eq!(code, 0, "{text}");
    let cp = b.data().join("checkpoint.json");
    let out = b.admin(&[
        "audit",
        "checkpoint",
        "--out",
        cp.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, text) = audit_verify(b, Some(&cp));
    assert_eq!(code, 0, "{text}");
    let head: Value = serde_json::from_str(
        serde_json::from_slice::<Value>(&std::fs::read(&cp).expect("read")).expect("json")
            ["checkpoint"]
            .as_str()
            .expect("checkpoint"),
    )
    .expect("json");
    let head_seq = head["seq"].as_i64().expect("seq");
    assert!(head_seq >= 26, "{head}");

    // A modified record.
    let original = b.audit_canonical(3);
    let modified = original.replacen("\"at\":\"", "\"at\":\"1", 1);
    assert_ne!(original, modified);
    b.sql(&[&format!(
        "UPDATE audit SET canonical = '{}' WHERE seq = 3",
        modified.replace('\'', "''")
    )]);
    let (code, text) = audit_verify(b, None);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("record 3 was modified"), "{text}");
    b.sql(&[&format!(
        "UPDATE audit SET canonical = '{}' WHERE seq = 3",
        original.replace('\'', "''")
    )]);
    assert_eq!(audit_verify(b, None).0, 0);

    // A deleted middle record.
    b.sql(&[
        "CREATE TABLE audit_saved AS SELECT * FROM audit",
        "DELETE FROM audit WHERE seq = 4",
    ]);
    let (code, text) = audit_verify(b, None);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("record 4 missing"), "{text}");
    b.sql(&["INSERT INTO audit SELECT * FROM audit_saved WHERE seq = 4"]);
    assert_eq!(audit_verify(b, None).0, 0);

    // A truncated tail, with the head moved back to match: only the checkpoint shows it.
    b.sql(&[
        &format!("DELETE FROM audit WHERE seq > {}", head_seq - 2),
        &format!(
            "UPDATE audit_head SET seq = {s}, hash = (SELECT hash FROM audit WHERE seq = {s}) WHERE id = 1",
            s = head_seq - 2
        ),
    ]);
    let (code, text) = audit_verify(b, None);
    assert_eq!(
        code, 0,
        "without a checkpoint a clean truncation is invisible: {text}"
    );
    let (code, text) = audit_verify(b, Some(&cp));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("truncated tail"), "{text}");

    // A forged checkpoint (seq changed, signature kept) is refused.
    let mut file: Value = serde_json::from_slice(&std::fs::read(&cp).expect("read")).expect("json");
    let forged = file["checkpoint"].as_str().expect("checkpoint").replace(
        &format!("\"seq\":{head_seq}"),
        &format!("\"seq\":{}", head_seq - 2),
    );
    file["checkpoint"] = Value::String(forged);
    let forged_path: PathBuf = b.data().join("forged.json");
    std::fs::write(&forged_path, file.to_string()).expect("write");
    let (code, text) = audit_verify(b, Some(&forged_path));
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("does not verify"), "{text}");
}

#[test]
fn gateway_round_trips_on_sqlite() {
    let b = Backend::sqlite();
    gateway_suite(&b);
}

#[test]
fn gateway_round_trips_on_postgres() {
    let Some(b) = Backend::postgres() else {
        return;
    };
    gateway_suite(&b);
}

#[test]
fn demo_mode_prints_a_token_once_and_revoked_clients_are_refused() {
    let b = Backend::sqlite();
    let token = token_of(&b.admin(&["client", "add", "--agency", "demo", "--name", "x"]));
    let list = b.admin(&["client", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        !listed.contains(&token),
        "client list must never show tokens"
    );
    let id = listed
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["name"] == "x")
        .and_then(|v| v["id"].as_str().map(String::from))
        .expect("client listed");
    let server = b.serve();
    let url = format!("{}v1/audit", server.url);
    assert_eq!(request("GET", &url, Some(&token), &[], None).status, 200);
    let out = b.admin(&["client", "revoke", &id]);
    assert!(out.status.success());
    let r = request("GET", &url, Some(&token), &[], None);
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "UNAUTHORIZED");
    server.stop();
}

#[test]
fn configured_gateway_time_stamps_signatures_and_receipts() {
    let Some(_) = common::require_tool("openssl") else {
        return;
    };
    let root = common::repo_root();
    let tsa = SigngateServer::tsa_serve(&root.join("certs/demo/tsa.p12"));
    let dir = common::tempdir();
    let config = dir.path().join("signgate.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{data}\"\ntsa_url = \"{tsa}\"\noffline = true\nmax_body_mib = 1\nretention_days = 30\n\
             trust = [\"{root}/certs/demo/root-ca.pem\"]\nreceipt_key = \"ubnd\"\n\n\
             [[keys]]\nname = \"ubnd\"\nagency = \"bac-ninh\"\np12 = \"{root}/certs/demo/agency-signer.p12\"\n\
             password_env = \"SG_TEST_KEY_PASSWORD\"\nseal = \"{root}/assets/seal.png\"\nseal_size_mm = 30.0\n",
            data = dir.path().join("data").display(),
            tsa = tsa.url,
            root = root.display(),
        ),
    )
    .expect("write config");
    let cfg = config.to_str().expect("utf-8 path");
    let envs = [("SG_TEST_KEY_PASSWORD", "demo")];
    let mut add = common::signgate([
        "client", "add", "--config", cfg, "--agency", "bac-ninh", "--name", "one-stop", "--key",
        "ubnd",
    ]);
    for (k, v) in envs {
        add.env(k, v);
    }
    add.env_remove("SIGNGATE_DATABASE_URL");
    let token = token_of(&common::run(&mut add));
    let server = SigngateServer::start(
        &[
            OsStr::new("serve"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        &envs,
    );
    let pdf = std::fs::read(common::sample_pdf()).expect("sample.pdf");
    let signed = request(
        "POST",
        &format!(
            "{}v1/sign?key=ubnd&level=b-t&page=1&rect=400,90,85,85",
            server.url
        ),
        Some(&token),
        &[],
        Some(&pdf),
    );
    assert_eq!(
        signed.status,
        200,
        "{}",
        String::from_utf8_lossy(&signed.body)
    );
    let report = request(
        "POST",
        &format!("{}v1/verify", server.url),
        Some(&token),
        &[],
        Some(&signed.body),
    )
    .json();
    assert!(
        report["signatures"][0]["timestamp"].is_object(),
        "{report:#}"
    );
    let sub = request(
        "POST",
        &format!("{}v1/submissions", server.url),
        Some(&token),
        &[],
        Some(&signed.body),
    );
    assert_eq!(sub.status, 201, "{}", String::from_utf8_lossy(&sub.body));
    let p7s = base64::engine::general_purpose::STANDARD
        .decode(sub.json()["receipt_p7s"].as_str().expect("receipt_p7s"))
        .expect("base64");
    let p7s_path = dir.path().join("receipt.p7s");
    std::fs::write(&p7s_path, &p7s).expect("write");
    let out = common::run(
        std::process::Command::new("openssl")
            .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
            .arg(&p7s_path),
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("id-smime-aa-timeStampToken"),
        "receipt has no signature time-stamp: {printed}"
    );
    // The audit checkpoint is gateway-signed and time-stamped too, and verifies the chain.
    let cp = dir.path().join("checkpoint.json");
    let admin = |args: &[&str]| {
        let mut cmd = common::signgate(args);
        cmd.args(["--config", cfg])
            .env_remove("SIGNGATE_DATABASE_URL");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        common::run(&mut cmd)
    };
    let out = admin(&["audit", "checkpoint", "--out", cp.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file: Value = serde_json::from_slice(&std::fs::read(&cp).expect("read")).expect("json");
    let cp_p7s = dir.path().join("checkpoint.p7s");
    std::fs::write(
        &cp_p7s,
        base64::engine::general_purpose::STANDARD
            .decode(file["signature"].as_str().expect("signature"))
            .expect("base64"),
    )
    .expect("write");
    let out = common::run(
        std::process::Command::new("openssl")
            .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
            .arg(&cp_p7s),
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("id-smime-aa-timeStampToken"),
        "checkpoint has no signature time-stamp: {printed}"
    );
    let out = admin(&[
        "audit",
        "verify",
        "--checkpoint",
        cp.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Over the 1 MiB limit: refused from the announced length, before any body is sent
    // (a raw request, so no client races the server's early answer with a broken pipe).
    {
        use std::io::Write;
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        write!(
            tcp,
            "POST /v1/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            2 * 1024 * 1024
        )
        .expect("send");
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("\"PAYLOAD_TOO_LARGE\""), "{answer}");
    }
    // Retention: a submission older than retention_days is deleted when the gateway starts.
    let sub_id = sub.json()["submission_id"]
        .as_str()
        .expect("id")
        .to_string();
    let sub_url = format!("{}v1/submissions/{sub_id}", server.url);
    assert_eq!(
        request("GET", &sub_url, Some(&token), &[], None).status,
        200
    );
    server.stop();
    let db = Backend {
        dir: common::tempdir(),
        url: format!("sqlite://{}", dir.path().join("data/signgate.db").display()),
        _postgres: None,
    };
    db.sql(&["UPDATE submissions SET received_at = '2001-01-01T00:00:00Z'"]);
    let server = SigngateServer::start(
        &[
            OsStr::new("serve"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        &envs,
    );
    let sub_url = format!("{}v1/submissions/{sub_id}", server.url);
    let mut gone = false;
    for _ in 0..50 {
        if request("GET", &sub_url, Some(&token), &[], None).status == 404 {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "expired submission was not purged");
    server.stop();
    tsa.stop();
}

/// Two gateway processes on one database append to one chain without forking it.
fn two_gateways(b: &Backend) {
    let token = token_of(&b.admin(&[
        "client",
        "add",
        "--agency",
        "demo",
        "--name",
        "p",
        "--key",
        "demo-agency",
    ]));
    let (one, two) = (b.serve(), b.serve());
    let pdf = std::fs::read(common::sample_pdf()).expect("sample.pdf");
    let signed = request(
        "POST",
        &format!("{}v1/sign?key=demo-agency", one.url),
        Some(&token),
        &[],
        Some(&pdf),
    );
    assert_eq!(signed.status, 200);
    let handles: Vec<_> = [&one.url, &two.url, &one.url, &two.url]
        .iter()
        .map(|url| {
            let (url, token, doc) = (
                format!("{url}v1/verify"),
                token.clone(),
                signed.body.clone(),
            );
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| request("POST", &url, Some(&token), &[], Some(&doc)).status)
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().expect("thread").iter().all(|s| *s == 200));
    }
    one.stop();
    two.stop();
    let (code, text) = audit_verify(b, None);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("22 records"),
        "1 client.add + 1 sign + 20 verify: {text}"
    );
}

#[test]
fn two_gateways_share_one_chain_on_sqlite() {
    two_gateways(&Backend::sqlite());
}

#[test]
fn two_gateways_share_one_chain_on_postgres() {
    let Some(b) = Backend::postgres() else {
        return;
    };
    two_gateways(&b);
}

/// A multipart/form-data body of `parts` (name, file name, bytes) and its content type.
fn multipart(parts: &[(&str, Option<String>, Vec<u8>)]) -> (Vec<u8>, String) {
    let boundary = "sgbatch5d41402abc4b2a76";
    let mut form = Vec::new();
    for (name, file, bytes) in parts {
        let file = file
            .as_ref()
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        form.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        form.extend_from_slice(bytes);
        form.extend_from_slice(b"\r\n");
    }
    form.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (form, format!("multipart/form-data; boundary={boundary}"))
}

/// A batch of 40 PDFs over HTTP, the gateway SIGKILLed while it runs and restarted on the same
/// data folder and database: every document ends signed once, with one audit record each.
fn batch_suite(b: &Backend) {
    use std::time::{Duration, Instant};
    const N: usize = 40;
    let root = common::repo_root();
    let tsa = SigngateServer::tsa_serve(&root.join("certs/demo/tsa.p12"));
    let slow = common::slow_tsa(tsa.url.clone(), Duration::from_millis(400));
    let config = b.data().join("signgate.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{data}\"\ntsa_url = \"{slow}\"\noffline = true\n\
             trust = [\"{root}/certs/demo/root-ca.pem\"]\nreceipt_key = \"ubnd\"\n\n\
             [[keys]]\nname = \"ubnd\"\nagency = \"bac-ninh\"\np12 = \"{root}/certs/demo/agency-signer.p12\"\n\
             password_env = \"SG_TEST_KEY_PASSWORD\"\n",
            data = b.data().display(),
            root = root.display(),
        ),
    )
    .expect("write config");
    let cfg = config.to_str().expect("utf-8 path");
    let envs = [
        ("SG_TEST_KEY_PASSWORD", "demo"),
        ("SIGNGATE_DATABASE_URL", b.url.as_str()),
    ];
    let admin = |args: &[&str]| {
        let mut cmd = common::signgate(args);
        cmd.args(["--config", cfg]);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        common::run(&mut cmd)
    };
    let serve = || {
        SigngateServer::start(
            &[
                OsStr::new("serve"),
                OsStr::new("--config"),
                config.as_os_str(),
            ],
            &envs,
        )
    };
    let token = token_of(&admin(&[
        "client", "add", "--agency", "bac-ninh", "--name", "e-office", "--key", "ubnd",
    ]));
    let stranger = token_of(&admin(&[
        "client", "add", "--agency", "other", "--name", "x",
    ]));

    let mut parts: Vec<(&str, Option<String>, Vec<u8>)> = (0..N)
        .map(|i| {
            (
                "document",
                Some(format!("quyet-dinh-{i}.pdf")),
                signgate::batch::sample::pdf(i, 40_000),
            )
        })
        .collect();
    parts.push((
        "options",
        None,
        br#"{"key": "ubnd", "level": "b-t", "reason": "Ban hanh"}"#.to_vec(),
    ));
    let (form, content_type) = multipart(&parts);
    let headers = [
        ("Content-Type", content_type.as_str()),
        ("Idempotency-Key", "batch-2026-11-26"),
    ];

    let server = serve();
    let url = server.url.clone();
    let created = request(
        "POST",
        &format!("{url}v1/batches"),
        Some(&token),
        &headers,
        Some(&form),
    );
    assert_eq!(
        created.status,
        202,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["id"].as_str().expect("id").to_string();
    // Nothing can be signed before the slow TSA's first answer.
    let early = request(
        "GET",
        &format!("{url}v1/batches/{id}/documents/{}", N - 1),
        Some(&token),
        &[],
        None,
    );
    assert_eq!(early.status, 409);
    assert_eq!(early.error_code(), "NOT_SIGNED");
    // A retry with the same Idempotency-Key is the same batch.
    let again = request(
        "POST",
        &format!("{url}v1/batches"),
        Some(&token),
        &headers,
        Some(&form),
    );
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["id"], id.as_str());
    // Another agency sees no such batch.
    for path in [
        format!("v1/batches/{id}"),
        format!("v1/batches/{id}/documents/0"),
    ] {
        let r = request("GET", &format!("{url}{path}"), Some(&stranger), &[], None);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.error_code(), "NOT_FOUND");
    }

    // Poll until some but not all are signed, keep those outputs, then crash the gateway.
    let deadline = Instant::now() + Duration::from_secs(60);
    let signed_before: Vec<(usize, Vec<u8>)> = loop {
        assert!(Instant::now() < deadline, "batch never got under way");
        let status = request(
            "GET",
            &format!("{url}v1/batches/{id}"),
            Some(&token),
            &[],
            None,
        );
        assert_eq!(status.status, 200);
        let status = status.json();
        let signed = status["signed"].as_u64().expect("signed") as usize;
        assert!(signed < N, "the batch finished before the kill: {status}");
        if signed > 0 {
            break status["documents"]
                .as_array()
                .expect("documents")
                .iter()
                .filter(|d| d["state"] == "signed")
                .map(|d| {
                    let n = d["index"].as_u64().expect("index") as usize;
                    let r = request(
                        "GET",
                        &format!("{url}v1/batches/{id}/documents/{n}"),
                        Some(&token),
                        &[],
                        None,
                    );
                    assert_eq!(r.status, 200);
                    (n, r.body)
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    server.kill_hard();

    // Restarted on the same data folder and database, the gateway resumes the batch.
    let server = serve();
    let url = server.url.clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        assert!(
            Instant::now() < deadline,
            "the resumed batch did not finish"
        );
        let status = request(
            "GET",
            &format!("{url}v1/batches/{id}"),
            Some(&token),
            &[],
            None,
        )
        .json();
        if status["state"] != "running" && status["state"] != "queued" {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["state"], "done", "{status:#}");
    assert_eq!(status["total"], N);
    assert_eq!(status["signed"], N, "{status:#}");
    assert_eq!(status["failed"], 0);

    let trust = signgate::verify::TrustList::load("default", &root.join("certs/demo/root-ca.pem"))
        .expect("trust list");
    let ctx = signgate::verify::ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: vec![trust],
        fetcher: None,
    };
    let mut outputs = Vec::new();
    for n in 0..N {
        let r = request(
            "GET",
            &format!("{url}v1/batches/{id}/documents/{n}"),
            Some(&token),
            &[],
            None,
        );
        assert_eq!(r.status, 200, "document {n}");
        let report = signgate::verify::document(
            "batch.pdf",
            &r.body,
            None,
            &signgate::verify::Policy::default(),
            &ctx,
        )
        .expect("verify");
        assert_eq!(report.signatures.len(), 1, "document {n}");
        let sig = &report.signatures[0];
        assert!(sig.intact, "document {n}: {:?}", sig.notes);
        assert!(sig.timestamp.is_some(), "document {n} has no time-stamp");
        assert_ne!(
            report.indication,
            signgate::verify::Indication::TotalFailed,
            "document {n}"
        );
        assert_eq!(
            status["documents"][n]["output_sha256"],
            sha256_hex(&r.body).as_str()
        );
        outputs.push(r.body);
    }
    assert!(
        signed_before.len() < N,
        "some documents were left for the resumed run"
    );
    for (n, bytes) in &signed_before {
        assert!(
            outputs[*n] == *bytes,
            "document {n} signed before the crash changed after it"
        );
    }
    // Exactly one output per document in the batch folder.
    let out_dir = b.data().join("batches").join(&id).join("out");
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("out folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let expected: Vec<String> = (0..N)
        .map(|i| format!("{i:04}-quyet-dinh-{i}.pdf"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(names, expected);

    // Exactly one sign record per document, each the one the status names.
    let audit = request(
        "GET",
        &format!("{url}v1/audit?action=sign&limit=1000"),
        Some(&token),
        &[],
        None,
    )
    .json();
    let mut per_index = vec![Vec::new(); N];
    for r in audit["records"].as_array().expect("records") {
        let subject = &r["record"]["subject"];
        if subject["batch"] == id.as_str() {
            let n = subject["index"].as_u64().expect("index") as usize;
            per_index[n].push(r["seq"].as_i64().expect("seq"));
            assert_eq!(subject["output_sha256"], sha256_hex(&outputs[n]).as_str());
        }
    }
    for (n, seqs) in per_index.iter().enumerate() {
        assert_eq!(seqs.len(), 1, "document {n} has sign records {seqs:?}");
        assert_eq!(status["documents"][n]["audit_id"], seqs[0]);
    }
    // A document that is not a PDF fails alone, with its code; the batch is still done.
    let (form, content_type) = multipart(&[
        (
            "document",
            Some("ok.pdf".into()),
            signgate::batch::sample::pdf(99, 5_000),
        ),
        (
            "document",
            Some("broken.pdf".into()),
            b"%PDF-1.7 not really".to_vec(),
        ),
        (
            "document",
            Some("to-khai.xml".into()),
            signgate::batch::sample::tax_declaration(7),
        ),
        (
            "options",
            None,
            br#"{"key": "ubnd", "profile": "tax"}"#.to_vec(),
        ),
    ]);
    let headers = [("Content-Type", content_type.as_str())];
    let created = request(
        "POST",
        &format!("{url}v1/batches"),
        Some(&token),
        &headers,
        Some(&form),
    );
    assert_eq!(
        created.status,
        202,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let second = created.json()["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mixed = loop {
        assert!(Instant::now() < deadline, "the second batch did not finish");
        let s = request(
            "GET",
            &format!("{url}v1/batches/{second}"),
            Some(&token),
            &[],
            None,
        )
        .json();
        if s["state"] == "done" {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (mixed["signed"].as_u64(), mixed["failed"].as_u64()),
        (Some(2), Some(1)),
        "{mixed:#}"
    );
    // The XML filing was signed as XML-DSig in the tax layout (profile "tax"), and verifies.
    let filing = request(
        "GET",
        &format!("{url}v1/batches/{second}/documents/2"),
        Some(&token),
        &[],
        None,
    );
    assert_eq!(filing.status, 200);
    let text = String::from_utf8(filing.body.clone()).expect("utf-8 XML");
    assert!(
        text.contains("<CKyDTu><Signature") || text.contains("<CKyDTu><ds:Signature"),
        "{text}"
    );
    let report = signgate::verify::document(
        "to-khai.xml",
        &filing.body,
        None,
        &signgate::verify::Policy::default(),
        &ctx,
    )
    .expect("verify");
    assert_eq!(report.signatures.len(), 1);
    assert!(
        report.signatures[0].intact,
        "{:?}",
        report.signatures[0].notes
    );
    assert_eq!(mixed["documents"][1]["state"], "failed");
    assert_eq!(mixed["documents"][1]["code"], "PDF_MALFORMED", "{mixed:#}");
    let failed = request(
        "GET",
        &format!("{url}v1/batches/{second}/documents/1"),
        Some(&token),
        &[],
        None,
    );
    assert_eq!(failed.status, 409);
    assert_eq!(failed.error_code(), "NOT_SIGNED");
    let missing = request(
        "GET",
        &format!("{url}v1/batches/{second}/documents/3"),
        Some(&token),
        &[],
        None,
    );
    assert_eq!(missing.status, 404);
    // Refused uploads: no options part, a profile for PDFs, an unknown profile, an unknown
    // option, another agency's key.
    for (options, code) in [
        (None, "USAGE"),
        (
            Some(r#"{"key": "ubnd", "format": "pdf", "profile": "tax"}"#),
            "USAGE",
        ),
        (Some(r#"{"key": "ubnd", "profile": "letter"}"#), "USAGE"),
        (Some(r#"{"key": "ubnd", "colour": "red"}"#), "USAGE"),
    ] {
        let mut parts = vec![("document", Some("a.pdf".to_string()), b"%PDF-".to_vec())];
        if let Some(o) = options {
            parts.push(("options", None, o.as_bytes().to_vec()));
        }
        let (form, content_type) = multipart(&parts);
        let r = request(
            "POST",
            &format!("{url}v1/batches"),
            Some(&token),
            &[("Content-Type", content_type.as_str())],
            Some(&form),
        );
        assert_eq!(
            (r.status, r.error_code()),
            (400, code.to_string()),
            "{options:?}"
        );
    }
    let (form, content_type) = multipart(&[
        ("document", Some("a.pdf".into()), b"%PDF-".to_vec()),
        ("options", None, br#"{"key": "ubnd"}"#.to_vec()),
    ]);
    let r = request(
        "POST",
        &format!("{url}v1/batches"),
        Some(&stranger),
        &[("Content-Type", content_type.as_str())],
        Some(&form),
    );
    assert_eq!((r.status, r.error_code()), (404, "NOT_FOUND".to_string()));
    // Refused uploads leave nothing behind: only the two accepted batches have folders (beside
    // the folder's `.lock`).
    let folders = std::fs::read_dir(b.data().join("batches"))
        .expect("batches")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("bat_"))
        .count();
    assert_eq!(folders, 2);
    let metrics = String::from_utf8(request("GET", &format!("{url}metrics"), None, &[], None).body)
        .expect("utf-8");
    assert!(
        metrics.contains("signgate_batches_unfinished 0"),
        "{metrics}"
    );
    server.stop();
    let (code, text) = audit_verify(b, None);
    assert_eq!(code, 0, "{text}");
    tsa.stop();
}

#[test]
fn batches_survive_a_crash_on_sqlite() {
    batch_suite(&Backend::sqlite());
}

#[test]
fn batches_survive_a_crash_on_postgres() {
    let Some(b) = Backend::postgres() else {
        return;
    };
    batch_suite(&b);
}
