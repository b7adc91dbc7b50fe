//! Nothing stored without its record, nothing replayed for another request, nothing left
//! behind or readable by others (issue 16, items 1, 2 and 5), against a real `signgate serve`:
//! - a burst of submissions with a SIGKILL in the middle: after a restart every stored
//!   submission has its `submit` audit record, `audit verify` passes, and retries replay;
//! - `audit verify` names a submission whose audit record was removed;
//! - `Idempotency-Key`: the same request replays, another one is 422, one in flight is 409;
//! - start-up removes spooled bodies and unrecorded batch folders; the data folder is 0700
//!   and its files 0600.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Row;

use crate::common::{self, demo_admin, multipart, request_with, run, DemoGateway, Server};

/// `serve --listen 127.0.0.1:0 --data DIR/data`, from `DIR`.
fn serve(dir: &Path) -> Server {
    let data = dir.join("data");
    Server::start(
        dir,
        &[
            OsStr::new("serve"),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--data"),
            data.as_os_str(),
        ],
        &[],
    )
}

/// A PDF signed by the demo gateway (verifies `TOTAL_PASSED` there).
fn signed_pdf(gw: &DemoGateway) -> Vec<u8> {
    let sample = std::fs::read(common::sample_pdf()).expect("sample.pdf");
    let signed = gw.post("v1/sign?key=demo-agency", &sample);
    assert_eq!(
        signed.status,
        200,
        "{}",
        String::from_utf8_lossy(&signed.body)
    );
    signed.body
}

/// `audit verify` of the demo data folder in `dir`.
fn audit_verify(dir: &Path) -> std::process::Output {
    run(&mut demo_admin(dir, &["audit", "verify"]))
}

/// Runs `statements` on the demo SQLite database in `dir`, returning the rows of the last one
/// as text columns.
fn sql(dir: &Path, statements: &[&str]) -> Vec<Vec<String>> {
    let url = format!("sqlite://{}", dir.join("data/signgate.db").display());
    let statements: Vec<String> = statements.iter().map(|s| s.to_string()).collect();
    common::block_on(async move {
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        let mut rows = Vec::new();
        for s in &statements {
            rows = sqlx::query(s)
                .fetch_all(&pool)
                .await
                .expect(s)
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| {
                            r.try_get::<String, _>(i)
                                .or_else(|_| r.try_get::<i64, _>(i).map(|n| n.to_string()))
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .collect();
        }
        pool.close().await;
        rows
    })
}

/// Submission ids stored, and submission ids named by `submit` audit records.
fn stored_and_audited(dir: &Path) -> (HashSet<String>, HashSet<String>) {
    let stored = sql(dir, &["SELECT id FROM submissions"])
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let audited = sql(
        dir,
        &["SELECT canonical FROM audit WHERE action = 'submit'"],
    )
    .into_iter()
    .filter_map(|r| {
        let v: Value = serde_json::from_str(&r[0]).ok()?;
        v["subject"]["submission_id"].as_str().map(String::from)
    })
    .collect();
    (stored, audited)
}

/// A POST that reports transport failures instead of panicking (the server may be killed).
fn try_post(url: &str, token: &str, key: &str, body: &[u8]) -> Result<(u16, Value), String> {
    let result = ureq::post(url)
        .set("Authorization", &format!("Bearer {token}"))
        .set("Idempotency-Key", key)
        .timeout(Duration::from_secs(120))
        .send_bytes(body);
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = response.status();
    let mut text = String::new();
    response
        .into_reader()
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let json = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    Ok((status, json))
}

#[test]
fn a_sigkill_mid_burst_leaves_every_stored_submission_in_the_audit_chain() {
    const THREADS: usize = 8;
    const EACH: usize = 25;
    const KILL_AFTER: usize = 60;
    let mut gw = DemoGateway::start();
    let document = Arc::new(signed_pdf(&gw));
    let url = gw.url("v1/submissions");
    let answered = Arc::new(Mutex::new(BTreeMap::<String, String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (url, token, document) = (url.clone(), gw.token.clone(), document.clone());
            let (answered, count) = (answered.clone(), count.clone());
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let key = format!("burst-{t}-{i}");
                    match try_post(&url, &token, &key, &document) {
                        Ok((201, v)) => {
                            let id = v["submission_id"].as_str().expect("id").to_string();
                            answered.lock().expect("lock").insert(key, id);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok((status, v)) => panic!("{key}: {status} {v}"),
                        Err(_) => return, // the gateway was killed
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    while count.load(Ordering::SeqCst) < KILL_AFTER && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &gw.server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    for w in workers {
        w.join().expect("worker");
    }
    let answered = answered.lock().expect("lock").clone();
    assert!(
        answered.len() >= KILL_AFTER && answered.len() < THREADS * EACH,
        "killed mid-burst: {} answered",
        answered.len()
    );

    // Restart: every stored submission is in the audit chain, and the chain verifies.
    gw.server = serve(gw.dir.path());
    let (stored, audited) = stored_and_audited(gw.dir.path());
    let orphans: Vec<_> = stored.difference(&audited).collect();
    assert!(
        orphans.is_empty(),
        "{} of {} stored submissions have no submit record: {orphans:?}",
        orphans.len(),
        stored.len()
    );
    for id in answered.values() {
        assert!(stored.contains(id), "answered {id} was not stored");
    }
    let out = audit_verify(gw.dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Retries: the answered ones replay their receipt, the others are filed once.
    let url = gw.url("v1/submissions");
    for t in 0..THREADS {
        for i in 0..EACH {
            let key = format!("burst-{t}-{i}");
            let (status, v) = try_post(&url, &gw.token, &key, &document).expect("retry");
            let id = v["submission_id"].as_str().unwrap_or_default();
            match answered.get(&key) {
                Some(first) => {
                    assert_eq!((status, id), (200, first.as_str()), "{key} replays");
                }
                None => assert!(status == 200 || status == 201, "{key}: {status} {v}"),
            }
        }
    }
    let (stored, audited) = stored_and_audited(gw.dir.path());
    assert_eq!(stored.len(), THREADS * EACH, "one filing per key");
    assert_eq!(stored, audited);
    let out = audit_verify(gw.dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn audit_verify_names_a_submission_whose_record_was_removed() {
    let mut gw = DemoGateway::start();
    let document = signed_pdf(&gw);
    let submitted = gw.post("v1/submissions", &document);
    assert_eq!(submitted.status, 201);
    let id = submitted.json()["submission_id"]
        .as_str()
        .expect("id")
        .to_string();
    let seq: i64 = submitted
        .audit_id
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("audit id");
    gw.server.terminate(Duration::from_secs(30)).expect("stops");
    let out = audit_verify(gw.dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The attacker removes the submit record at the tail and moves the head back: the chain
    // itself is intact, the filing is not in it.
    let last = sql(gw.dir.path(), &["SELECT MAX(seq) FROM audit"]);
    assert_eq!(last[0][0], seq.to_string(), "the submit record is the last");
    sql(
        gw.dir.path(),
        &[
            &format!("DELETE FROM audit WHERE seq = {seq}"),
            &format!(
                "UPDATE audit_head SET seq = {}, hash = (SELECT hash FROM audit WHERE seq = {}) WHERE id = 1",
                seq - 1,
                seq - 1
            ),
        ],
    );
    let out = audit_verify(gw.dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("submission {id}")), "{stdout}");
}

/// POSTs `body` to `path` with `token` and `headers`.
fn post(
    gw: &DemoGateway,
    token: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> common::Reply {
    request_with("POST", &gw.url(path), Some(token), headers, Some(body))
}

/// A second client of the demo agency, granted the demo key.
fn second_client(gw: &DemoGateway) -> String {
    let out = common::run_ok(&mut demo_admin(
        gw.dir.path(),
        &[
            "client",
            "add",
            "--agency",
            "demo",
            "--name",
            "other",
            "--key",
            "demo-agency",
        ],
    ));
    let v: Value = serde_json::from_slice(&out.stdout).expect("client add prints JSON");
    v["token"].as_str().expect("token").to_string()
}

/// `Idempotency-Key` and `Content-Type` headers.
fn with_type<'a>(key: &'a str, content_type: &'a str) -> [(&'a str, &'a str); 2] {
    [("Idempotency-Key", key), ("Content-Type", content_type)]
}

/// A batch form of `sample.pdf` with `reason`, with the multipart `boundary`.
fn batch_form(reason: &str, boundary: &str) -> (Vec<u8>, String) {
    let sample = std::fs::read(common::sample_pdf()).expect("sample.pdf");
    let options = format!(r#"{{"key": "demo-agency", "reason": "{reason}"}}"#);
    let (form, content_type) = multipart(&[
        ("document", Some("a.pdf"), &sample),
        ("options", None, options.as_bytes()),
    ]);
    let form = String::from_utf8_lossy(&form).into_owned();
    let fixed = "sggateway7c1e0f";
    (
        form.replace(fixed, boundary).into_bytes().to_vec(),
        content_type.replace(fixed, boundary),
    )
}

#[test]
fn an_idempotency_key_replays_only_the_same_request() {
    let gw = DemoGateway::start();
    let a = signed_pdf(&gw);
    // Another document: the same bytes with a byte of the page box changed (stored with its
    // verdict like any parseable filing).
    let mut b = a.clone();
    let pos = b
        .windows(9)
        .position(|w| w == b"/MediaBox")
        .expect("MediaBox");
    b[pos + 3] ^= 0x01;
    let key = [("Idempotency-Key", "filing-7")];

    let first = post(&gw, &gw.token, "v1/submissions", &key, &a);
    assert_eq!(
        first.status,
        201,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let id = first.json()["submission_id"].clone();
    let again = post(&gw, &gw.token, "v1/submissions", &key, &a);
    assert_eq!(
        (again.status, again.json()["submission_id"].clone()),
        (200, id.clone())
    );
    let other = post(&gw, &gw.token, "v1/submissions", &key, &b);
    assert_eq!(
        other.status,
        422,
        "{}",
        String::from_utf8_lossy(&other.body)
    );
    assert_eq!(other.error_code(), "IDEMPOTENCY_KEY_REUSED");
    // The same query matters too, and the key of a filing is not a batch's.
    let queried = post(&gw, &gw.token, "v1/submissions?x=1", &key, &a);
    assert_eq!(queried.error_code(), "IDEMPOTENCY_KEY_REUSED");
    let (form, content_type) = batch_form("Ban hanh", "b0undary1");
    let as_batch = post(
        &gw,
        &gw.token,
        "v1/batches",
        &with_type("filing-7", &content_type),
        &form,
    );
    assert_eq!(as_batch.status, 422);
    assert_eq!(as_batch.error_code(), "IDEMPOTENCY_KEY_REUSED");
    // Keys are per client: another client's same key is its own filing.
    let other_client = second_client(&gw);
    let theirs = post(&gw, &other_client, "v1/submissions", &key, &b);
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.json()["submission_id"], id);

    // Batches: the same upload (even with another multipart boundary) replays; other
    // options are another request.
    let created = post(
        &gw,
        &gw.token,
        "v1/batches",
        &with_type("batch-1", &content_type),
        &form,
    );
    assert_eq!(
        created.status,
        202,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let batch = created.json()["id"].clone();
    let (form2, content_type2) = batch_form("Ban hanh", "an0ther");
    let replay = post(
        &gw,
        &gw.token,
        "v1/batches",
        &with_type("batch-1", &content_type2),
        &form2,
    );
    assert_eq!((replay.status, replay.json()["id"].clone()), (202, batch));
    let (form3, content_type3) = batch_form("Sao y", "b0undary1");
    let changed = post(
        &gw,
        &gw.token,
        "v1/batches",
        &with_type("batch-1", &content_type3),
        &form3,
    );
    assert_eq!(changed.status, 422);
    assert_eq!(changed.error_code(), "IDEMPOTENCY_KEY_REUSED");
    // Only one batch was stored for it.
    let batches = sql(gw.dir.path(), &["SELECT COUNT(*) FROM batches"]);
    assert_eq!(batches[0][0], "1");
}

#[test]
fn a_repeat_while_the_first_is_in_flight_is_409() {
    let gw = DemoGateway::start();
    let a = signed_pdf(&gw);
    // The first request sends its headers and half its body, and waits.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", gw.server.port)).expect("connect");
    let head = format!(
        "POST /v1/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nIdempotency-Key: slow-1\r\nContent-Type: application/pdf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        gw.token,
        a.len()
    );
    slow.write_all(head.as_bytes()).expect("headers");
    slow.write_all(&a[..a.len() / 2]).expect("half the body");
    slow.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(500));
    let key = [("Idempotency-Key", "slow-1")];
    let second = post(&gw, &gw.token, "v1/submissions", &key, &a);
    assert_eq!(
        second.status,
        409,
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    assert_eq!(second.error_code(), "IDEMPOTENCY_IN_PROGRESS");
    // The first completes and is the one filing; a later repeat replays it.
    slow.write_all(&a[a.len() / 2..]).expect("rest of the body");
    let mut answer = String::new();
    slow.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").expect("head end") + 4..];
    let first: Value = serde_json::from_str(body).expect("JSON");
    let third = post(&gw, &gw.token, "v1/submissions", &key, &a);
    assert_eq!(third.status, 200);
    assert_eq!(third.json()["submission_id"], first["submission_id"]);
}

#[test]
fn start_up_removes_what_a_crash_left() {
    let mut gw = DemoGateway::start();
    let (form, content_type) = batch_form("Ban hanh", "b0undary1");
    let created = post(
        &gw,
        &gw.token,
        "v1/batches",
        &[("Content-Type", content_type.as_str())],
        &form,
    );
    assert_eq!(created.status, 202);
    let kept = created.json()["id"].as_str().expect("id").to_string();
    gw.server.terminate(Duration::from_secs(30)).expect("stops");
    let data = gw.dir.path().join("data");
    // What a SIGKILL during two uploads leaves: a spooled body and a batch folder whose row
    // was never written.
    std::fs::create_dir_all(data.join("spool")).expect("spool");
    std::fs::write(data.join("spool/in_Xy12.part"), vec![7u8; 100_000]).expect("part");
    let orphan = data.join("batches/bat_cutoff0000000000000000/in");
    std::fs::create_dir_all(&orphan).expect("orphan");
    std::fs::write(orphan.join("0000-Nguyen_Van_A.pdf"), vec![1u8; 50_000]).expect("input");

    gw.server = serve(gw.dir.path());
    assert!(
        !data.join("spool/in_Xy12.part").exists(),
        "spooled body left"
    );
    assert!(
        !data.join("batches/bat_cutoff0000000000000000").exists(),
        "orphan folder left"
    );
    assert!(
        data.join("batches").join(&kept).join("in").is_dir(),
        "recorded batch removed"
    );
    let log = gw.server.log();
    assert!(
        log.contains("spool_files=1") && log.contains("batch_folders=1"),
        "{log}"
    );
    assert!(
        !log.contains("Nguyen") && !log.contains("bat_cutoff"),
        "{log}"
    );
    // A second gateway on the same data folder leaves what the running one may be receiving.
    std::fs::write(data.join("spool/in_Ab34.part"), b"uploading").expect("part");
    let second = serve(gw.dir.path());
    assert!(
        data.join("spool/in_Ab34.part").exists(),
        "in-flight upload removed"
    );
    drop(second);
}

/// Every folder under `dir` (itself included) is 0700 and every file 0600; returns how many
/// files were checked.
fn assert_private(dir: &Path) -> usize {
    let mode = std::fs::metadata(dir).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    let mut files = 0;
    for entry in std::fs::read_dir(dir).expect("list").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files += assert_private(&path);
        } else {
            let mode = entry.metadata().expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
            files += 1;
        }
    }
    files
}

#[test]
fn the_data_folder_is_owner_only() {
    let dir = common::tempdir();
    let server = serve(dir.path());
    let data = dir.path().join("data");
    let files = assert_private(&data);
    assert!(
        data.join("signgate.db").is_file() && data.join("demo/agency-signer.p12").is_file(),
        "database and demo files"
    );
    assert!(files >= 5, "{files} files");
    // The demo client's token, printed once on stderr.
    let log = server.log();
    let token = log
        .lines()
        .skip_while(|l| !l.contains("bearer token"))
        .nth(1)
        .expect("token line")
        .trim()
        .to_string();
    // A batch writes its inputs, outputs and journal; a submission goes into the database.
    let (form, content_type) = batch_form("Ban hanh", "b0undary1");
    let created = request_with(
        "POST",
        &format!("{}v1/batches", server.url),
        Some(&token),
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
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = request_with(
            "GET",
            &format!("{}v1/batches/{id}", server.url),
            Some(&token),
            &[],
            None,
        );
        if status.json()["state"] == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "batch not done");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(data.join("batches").join(&id).join("out").is_dir());
    assert_private(&data);
}
