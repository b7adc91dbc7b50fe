//! Batches across gateway processes (issue 16 item 4): two real `signgate serve` processes on
//! one PostgreSQL database and one shared batch folder (`batch_dir`), on loopback ports
//! ([`common::Cluster`]). A batch submitted to one process downloads from the other; a batch
//! whose process is SIGKILLed mid-run is taken over and finished by the other (every document
//! signed once, none lost); a process paused past its lease has its late writes refused; a
//! one-document batch of one agency finishes while another agency's big batch runs.

use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{self, request_with, Cluster, Reply, SigngateServer};

/// Lease of the test clusters: short, so that a takeover happens within seconds.
const LEASE_SECS: u64 = 3;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Two processes; agencies `bac-ninh` (key `ubnd`) and `ha-noi` (key `hn`); B-T through `tsa`.
fn cluster(prefix: &str, tsa: &str) -> Option<Cluster> {
    let root = common::repo_root();
    Cluster::new(prefix, 2, &[("SG_TEST_KEY_PASSWORD", "demo")], |_| {
        format!(
            "listen = \"127.0.0.1:0\"\ntsa_url = {tsa:?}\noffline = true\nbatch_lease_secs = {LEASE_SECS}\n\
             trust = [\"{root}/certs/demo/root-ca.pem\"]\nreceipt_key = \"ubnd\"\n\n\
             [[keys]]\nname = \"ubnd\"\nagency = \"bac-ninh\"\np12 = \"{root}/certs/demo/agency-signer.p12\"\n\
             password_env = \"SG_TEST_KEY_PASSWORD\"\n\n\
             [[keys]]\nname = \"hn\"\nagency = \"ha-noi\"\np12 = \"{root}/certs/demo/agency-signer.p12\"\n\
             password_env = \"SG_TEST_KEY_PASSWORD\"\n",
            root = root.display(),
        )
    })
}

fn token(c: &Cluster, agency: &str, key: &str) -> String {
    let out = c.admin(&[
        "client", "add", "--agency", agency, "--name", "e-office", "--key", key,
    ]);
    assert!(
        out.status.success(),
        "client add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("client add prints JSON");
    v["token"].as_str().expect("token").to_string()
}

fn get(url: &str, token: &str) -> Reply {
    request_with("GET", url, Some(token), &[], None)
}

/// Submits `n` PDFs to `base` with `options`; returns the batch id.
fn submit(base: &str, token: &str, n: usize, size: usize, options: &str) -> String {
    let docs: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                format!("cong-van-{i}.pdf"),
                signgate::batch::sample::pdf(i, size),
            )
        })
        .collect();
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = docs
        .iter()
        .map(|(name, bytes)| ("document", Some(name.as_str()), bytes.as_slice()))
        .collect();
    parts.push(("options", None, options.as_bytes()));
    let (form, content_type) = common::multipart(&parts);
    let r = request_with(
        "POST",
        &format!("{base}v1/batches"),
        Some(token),
        &[("Content-Type", content_type.as_str())],
        Some(&form),
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().expect("id").to_string()
}

fn status(base: &str, token: &str, id: &str) -> Value {
    let r = get(&format!("{base}v1/batches/{id}"), token);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Polls `base` until batch `id` is no longer queued or running; returns its status.
fn wait_finished(base: &str, token: &str, id: &str, limit: Duration, c: &Cluster) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = status(base, token, id);
        if s["state"] != "running" && s["state"] != "queued" {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "batch {id} not finished: {s}\nprocess 0:\n{}\nprocess 1:\n{}",
            c.log(0),
            c.log(1)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every document of a finished batch, downloaded from `base`: signed once (one signature,
/// intact, time-stamped when `bt`), its bytes the hash its row records, and exactly one `sign`
/// audit record per document; returns the outputs.
fn check_outputs(
    c: &Cluster,
    base: &str,
    token: &str,
    id: &str,
    n: usize,
    bt: bool,
) -> Vec<Vec<u8>> {
    let s = status(base, token, id);
    assert_eq!(s["state"], "done", "{s:#}");
    assert_eq!(s["signed"], n, "{s:#}");
    let root = common::repo_root();
    let trust = signgate::verify::TrustList::load("default", &root.join("certs/demo/root-ca.pem"))
        .expect("trust list");
    let ctx = signgate::verify::ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: vec![trust],
        fetcher: None,
    };
    let outputs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let r = get(&format!("{base}v1/batches/{id}/documents/{i}"), token);
            assert_eq!(r.status, 200, "document {i}: {}", r.error_message());
            let report = signgate::verify::document(
                "batch.pdf",
                &r.body,
                None,
                &signgate::verify::Policy::default(),
                &ctx,
            )
            .expect("verify");
            assert_eq!(report.signatures.len(), 1, "document {i} signed once");
            assert!(report.signatures[0].intact, "document {i}");
            assert_eq!(report.signatures[0].timestamp.is_some(), bt, "document {i}");
            assert_eq!(
                s["documents"][i]["output_sha256"],
                sha256_hex(&r.body).as_str(),
                "document {i}: the bytes served are the ones recorded"
            );
            r.body
        })
        .collect();
    let records = c.scalar(&format!(
        "SELECT COUNT(*) FROM audit WHERE action = 'sign' AND dedup LIKE 'batch:{id}:%'"
    ));
    assert_eq!(records, n as i64, "one sign audit record per document");
    // Exactly one output per document in the shared batch folder.
    let names = std::fs::read_dir(c.batch_dir.join(id).join("out"))
        .expect("out folder")
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(names, n, "outputs in the shared batch folder");
    let out = c.admin(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    outputs
}

/// Submitted to process 0, the batch's status and documents are served by process 1 too.
#[test]
fn a_batch_downloads_from_another_process() {
    let Some(mut c) = cluster("mproc_dl", "http://127.0.0.1:9/") else {
        return;
    };
    let t = token(&c, "bac-ninh", "ubnd");
    c.start_all();
    let (a, b) = (c.url(0), c.url(1));
    let id = submit(&a, &t, 6, 20_000, r#"{"key": "ubnd"}"#);
    wait_finished(&b, &t, &id, Duration::from_secs(60), &c);
    let from_b = check_outputs(&c, &b, &t, &id, 6, false);
    for (i, bytes) in from_b.iter().enumerate() {
        let r = get(&format!("{a}v1/batches/{id}/documents/{i}"), &t);
        assert_eq!(r.status, 200);
        assert!(
            r.body == *bytes,
            "document {i}: both processes serve the same bytes"
        );
    }
    // Another agency sees nothing on either process.
    let other = token(&c, "ha-noi", "hn");
    for base in [&a, &b] {
        assert_eq!(get(&format!("{base}v1/batches/{id}"), &other).status, 404);
    }
}

/// Process 0 is SIGKILLed in the middle of a B-T batch (a slow TSA keeps it running): process
/// 1 takes the batch over once the lease expires and finishes it; the documents signed before
/// the crash keep their bytes, every document is signed once, none is lost.
#[test]
fn a_killed_process_batch_is_taken_over_by_another() {
    const N: usize = 40;
    let root = common::repo_root();
    let tsa = SigngateServer::tsa_serve(&root.join("certs/demo/tsa.p12"));
    let slow = common::slow_tsa(tsa.url.clone(), Duration::from_millis(400));
    let Some(mut c) = cluster("mproc_kill", &slow) else {
        return;
    };
    let t = token(&c, "bac-ninh", "ubnd");
    c.start(0);
    let a = c.url(0);
    let id = submit(&a, &t, N, 30_000, r#"{"key": "ubnd", "level": "b-t"}"#);
    let deadline = Instant::now() + Duration::from_secs(60);
    let before: Vec<(usize, Vec<u8>)> = loop {
        assert!(Instant::now() < deadline, "the batch never got under way");
        let s = status(&a, &t, &id);
        let signed = s["signed"].as_u64().expect("signed") as usize;
        assert!(signed < N, "the batch finished before the kill");
        if signed > 0 {
            break (0..N)
                .filter(|&i| s["documents"][i]["state"] == "signed")
                .map(|i| {
                    (
                        i,
                        get(&format!("{a}v1/batches/{id}/documents/{i}"), &t).body,
                    )
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    c.kill(0);
    assert_eq!(
        c.scalar(&format!(
            "SELECT COUNT(*) FROM batches WHERE id = '{id}' AND state = 'running'"
        )),
        1,
        "the killed process's batch is left running"
    );
    c.start(1);
    let b = c.url(1);
    wait_finished(&b, &t, &id, Duration::from_secs(120), &c);
    let outputs = check_outputs(&c, &b, &t, &id, N, true);
    for (i, bytes) in &before {
        assert!(
            outputs[*i] == *bytes,
            "document {i} signed before the crash changed"
        );
    }
    assert!(
        c.log(1).contains("batch claimed"),
        "process 1 took the batch over:\n{}",
        c.log(1)
    );
    assert_eq!(
        c.scalar(&format!("SELECT lease_gen FROM batches WHERE id = '{id}'")),
        2,
        "claimed twice: by the killed process, then by the other"
    );
}

/// Process 0 is paused (SIGSTOP) mid-batch past its lease: process 1 takes the batch over and
/// finishes it; when process 0 wakes up, its late writes are refused (fencing) and it writes
/// no output: what the batch records and serves is unchanged.
#[test]
fn a_stale_leaseholder_late_writes_are_refused() {
    const N: usize = 40;
    let root = common::repo_root();
    let tsa = SigngateServer::tsa_serve(&root.join("certs/demo/tsa.p12"));
    let slow = common::slow_tsa(tsa.url.clone(), Duration::from_millis(400));
    let Some(mut c) = cluster("mproc_stale", &slow) else {
        return;
    };
    // A process paused inside a transaction would hold its row locks: the server ends such a
    // session, as a production database should be configured to.
    c.execute(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET idle_in_transaction_session_timeout = %L', \
         current_database(), '2s'); END $$",
    );
    let t = token(&c, "bac-ninh", "ubnd");
    c.start(0);
    let a = c.url(0);
    let id = submit(&a, &t, N, 30_000, r#"{"key": "ubnd", "level": "b-t"}"#);
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&a, &t, &id)["signed"].as_u64().unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the batch never got under way");
        std::thread::sleep(Duration::from_millis(25));
    }
    // Paused with documents in flight (their TSA answers arrive while it sleeps).
    c.signal(0, "STOP");
    c.start(1);
    let b = c.url(1);
    let done = wait_finished(&b, &t, &id, Duration::from_secs(120), &c);
    assert_eq!(done["state"], "done", "{done:#}");
    let outputs = check_outputs(&c, &b, &t, &id, N, true);
    c.signal(0, "CONT");
    // Let the woken process run into its fence.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.log(0).contains("batch lease lost") {
        assert!(
            Instant::now() < deadline,
            "the stale process never noticed:\n{}",
            c.log(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let again = check_outputs(&c, &b, &t, &id, N, true);
    assert!(
        again == outputs,
        "nothing changed after the stale process woke"
    );
    assert_eq!(status(&a, &t, &id)["state"], "done");
}

/// Agency ha-noi's one-document batch finishes while agency bac-ninh's big batch, submitted
/// first to the same process, is still running: agencies do not wait for each other.
#[test]
fn a_small_batch_of_one_agency_finishes_while_another_agencys_big_batch_runs() {
    let root = common::repo_root();
    let tsa = SigngateServer::tsa_serve(&root.join("certs/demo/tsa.p12"));
    let slow = common::slow_tsa(tsa.url.clone(), Duration::from_millis(300));
    let Some(mut c) = cluster("mproc_fair", &slow) else {
        return;
    };
    let big_token = token(&c, "bac-ninh", "ubnd");
    let small_token = token(&c, "ha-noi", "hn");
    c.start(0);
    let a = c.url(0);
    let big = submit(
        &a,
        &big_token,
        200,
        20_000,
        r#"{"key": "ubnd", "level": "b-t"}"#,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&a, &big_token, &big)["state"] != "running" {
        assert!(Instant::now() < deadline, "the big batch never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let small = submit(&a, &small_token, 1, 20_000, r#"{"key": "hn"}"#);
    let finished = wait_finished(&a, &small_token, &small, Duration::from_secs(60), &c);
    assert_eq!(finished["state"], "done", "{finished:#}");
    let big_now = status(&a, &big_token, &big);
    assert_eq!(
        big_now["state"], "running",
        "the small batch finished only after the big one: {big_now}"
    );
    assert!(big_now["signed"].as_u64().unwrap_or(0) < 200);
    wait_finished(&a, &big_token, &big, Duration::from_secs(180), &c);
    check_outputs(&c, &a, &big_token, &big, 200, true);
}
