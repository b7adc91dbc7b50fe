//! Load and abuse against a real gateway on loopback (issue 16 item 3), with small configured
//! limits so each case takes seconds: a flooding client is answered 429 while another client's
//! latency stays low, a client sending its headers or its body slowly is cut off within its
//! timeout, a flood of idle connections beyond the cap leaves `/healthz` answering, concurrent
//! large verifications, signings and batch uploads keep the peak RSS within the body memory
//! budget, and SIGTERM with slow clients exits within the shutdown timeout. Figures print with `--nocapture`.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// A gateway started from a configuration file with `[limits]` `limits` and the demo agency
/// key as `k`, and two clients of agency `a` granted it: `flood` and `calm`.
struct Limited {
    _dir: tempfile::TempDir,
    server: Server,
    flood: String,
    calm: String,
}

impl Limited {
    fn start(limits: &str, shutdown_secs: u64) -> Limited {
        let dir = tempdir();
        let root = repo_root().join("certs/demo/root-ca.pem");
        let config = dir.path().join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {data:?}\ntrust = [{root:?}]\noffline = true\n\
                 shutdown_timeout_secs = {shutdown_secs}\n\n[limits]\n{limits}\n\n\
                 [[keys]]\nname = \"k\"\nagency = \"a\"\np12 = {p12:?}\npassword_env = \"SIGNGATE_KEY_PASSWORD\"\n",
                data = dir.path().join("data"),
                p12 = repo_root().join("certs/demo/agency-signer.p12"),
            ),
        )
        .expect("write config");
        let client = |name: &str| -> String {
            let out = run_ok(
                signgate([
                    "client", "add", "--agency", "a", "--key", "k", "--name", name, "--config",
                ])
                .arg(&config)
                .env("SIGNGATE_KEY_PASSWORD", "demo")
                .env_remove("SIGNGATE_DATABASE_URL"),
            );
            let v: Value = serde_json::from_slice(&out.stdout).expect("client JSON");
            v["token"].as_str().expect("token").to_string()
        };
        let (flood, calm) = (client("flood"), client("calm"));
        let server = Server::start(
            dir.path(),
            &[
                OsStr::new("serve"),
                OsStr::new("--listen"),
                OsStr::new("127.0.0.1:0"),
                OsStr::new("--config"),
                config.as_os_str(),
            ],
            &[("SIGNGATE_KEY_PASSWORD", "demo")],
        );
        Limited {
            _dir: dir,
            server,
            flood,
            calm,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.server.port)).expect("connect")
    }

    /// A `/proc/PID/status` field in KiB (VmHWM, VmRSS).
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server.pid()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"))
    }

    /// Open sockets of the server process.
    fn sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.server.pid()))
            .expect("/proc fd")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    }
}

/// `GET url` with `token`: status, `Retry-After`, the error code if any, and the time taken.
fn get(agent: &ureq::Agent, url: &str, token: &str) -> (u16, Option<String>, String, Duration) {
    let started = Instant::now();
    let result = agent
        .get(url)
        .set("Authorization", &format!("Bearer {token}"))
        .call();
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = response.status();
    let retry_after = response.header("retry-after").map(String::from);
    let body = response.into_string().unwrap_or_default();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(String::from))
        .unwrap_or_default();
    (status, retry_after, code, started.elapsed())
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

/// Reads until the server closes the connection (or `limit` passes); what it sent and when
/// it closed.
fn until_closed(mut stream: TcpStream, started: Instant, limit: Duration) -> (String, Duration) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn a_flooding_client_is_rate_limited_while_another_is_served_quickly() {
    let gw = Limited::start(
        "client_rate_per_sec = 20\nclient_burst = 20\nclient_concurrency = 2\nip_rate_per_sec = 0\nip_concurrency = 0",
        5,
    );
    let pdf = std::fs::read(sample_pdf()).expect("sample");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..6)
        .map(|_| {
            let (url, token, stop, pdf) = (
                gw.url("v1/verify"),
                gw.flood.clone(),
                stop.clone(),
                pdf.clone(),
            );
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                let (mut limited, mut served, mut retry_after) = (0u32, 0u32, None);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = agent
                        .post(&url)
                        .set("Authorization", &format!("Bearer {token}"))
                        .send_bytes(&pdf);
                    match r {
                        Err(ureq::Error::Status(429, r)) => {
                            limited += 1;
                            retry_after = r.header("retry-after").map(String::from);
                            let body: Value = serde_json::from_str(&r.into_string().expect("body"))
                                .expect("429 is JSON");
                            assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
                        }
                        Ok(_) | Err(ureq::Error::Status(..)) => served += 1,
                        Err(e) => panic!("flood: {e}"),
                    }
                }
                (limited, served, retry_after)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The calm client: 10 requests a second for 3 s, half its rate.
    let agent = ureq::AgentBuilder::new().build();
    let mut latencies = Vec::new();
    let started = Instant::now();
    for i in 0..30u32 {
        let due = started + Duration::from_millis(100) * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (status, _, code, took) = get(&agent, &gw.url("v1/audit?limit=1"), &gw.calm);
        assert_eq!(status, 200, "calm client refused: {code}");
        latencies.push(took);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut limited, mut served, mut retry_after) = (0, 0, None);
    for f in flooders {
        let (l, s, r) = f.join().expect("flooder");
        limited += l;
        served += s;
        retry_after = retry_after.or(r);
    }
    let p50 = percentile(&mut latencies, 0.5);
    let p99 = percentile(&mut latencies, 0.99);
    println!(
        "flood: {served} served, {limited} answered 429; calm client p50 {p50:?}, p99 {p99:?}"
    );
    assert!(
        limited > 0,
        "the flooding client was never limited ({served} served)"
    );
    assert!(
        retry_after
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1),
        "Retry-After: {retry_after:?}"
    );
    // Generous: 2 shared cores under other builds.
    assert!(p99 < Duration::from_secs(2), "calm client p99 {p99:?}");
}

#[test]
fn slow_headers_slow_bodies_and_idle_connections_are_cut_off() {
    let gw = Limited::start(
        "header_read_timeout_secs = 1\nbody_read_timeout_secs = 2\nidle_timeout_secs = 1",
        5,
    );
    // Headers trickled one byte every 200 ms: closed about 1 s after the first byte.
    let mut slow_header = gw.connect();
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if slow_header.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        started.elapsed()
    });
    let idle = gw.connect();
    let idle_started = Instant::now();
    // A body trickled after complete headers: answered 408 about 2 s after the headers.
    let mut slow_body = gw.connect();
    let body_started = Instant::now();
    write!(
        slow_body,
        "POST /v1/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100000\r\n\r\n%PDF-",
        gw.calm
    )
    .expect("send headers");
    let mut body_writer = slow_body.try_clone().expect("clone");
    std::thread::spawn(move || {
        for _ in 0..100 {
            if body_writer.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });

    let (_, idle_took) = until_closed(idle, idle_started, Duration::from_secs(8));
    let (answer, body_took) = until_closed(slow_body, body_started, Duration::from_secs(8));
    let header_took = trickle.join().expect("trickle");
    println!(
        "slow headers closed after {header_took:?}, idle after {idle_took:?}, slow body answered after {body_took:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "slow body: {answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
    assert!(
        body_took < Duration::from_secs(4),
        "slow body took {body_took:?}"
    );
    assert!(
        idle_took < Duration::from_millis(2500),
        "idle connection open {idle_took:?}"
    );
    // The trickle stops once its writes fail (the server closed); all 56 bytes would be 11 s.
    assert!(
        header_took < Duration::from_secs(4),
        "slow headers kept the connection {header_took:?}"
    );
}

#[test]
fn a_connection_flood_beyond_the_cap_leaves_healthz_answering() {
    const CAP: usize = 20;
    let gw = Limited::start(
        &format!("max_connections = {CAP}\nheader_read_timeout_secs = 30\nidle_timeout_secs = 30"),
        5,
    );
    let before = gw.sockets();
    // 300 connections that send nothing (more than the former fixed 256).
    let flood: Vec<TcpStream> = (0..300).map(|_| gw.connect()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let held = gw.sockets() - before;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(3))
        .build();
    let started = Instant::now();
    let health = agent.get(&gw.url("healthz")).call();
    let took = started.elapsed();
    println!("300 idle connections: server holds {held} of them; /healthz in {took:?}");
    let health = health.unwrap_or_else(|e| panic!("/healthz under a connection flood: {e}"));
    assert_eq!(health.status(), 200);
    assert!(
        held <= CAP + 2,
        "server holds {held} connections (cap {CAP})"
    );
    drop(flood);
}

#[test]
fn concurrent_large_verifications_stay_within_the_body_memory_budget() {
    const BUDGET_MIB: u64 = 128;
    const BODY_MIB: usize = 16;
    const CLIENTS: usize = 8;
    let gw = Limited::start(
        &format!(
            "body_memory_mib = {BUDGET_MIB}\nspool_threshold_kib = 256\nclient_concurrency = 0\nip_concurrency = 0"
        ),
        5,
    );
    // Warm up (first verification loads the trust anchors), then the baseline.
    let (status, ..) = get(&ureq::agent(), &gw.url("v1/audit?limit=1"), &gw.calm);
    assert_eq!(status, 200);
    let baseline = gw.status_kib("VmHWM");
    let mut body = b"%PDF-1.7\n".to_vec();
    body.resize(BODY_MIB << 20, b' ');
    let body = std::sync::Arc::new(body);
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, token, body) = (gw.url("v1/verify"), gw.calm.clone(), body.clone());
            std::thread::spawn(move || {
                match ureq::post(&url)
                    .set("Authorization", &format!("Bearer {token}"))
                    .send_bytes(&body)
                {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(s, _)) => s,
                    Err(e) => panic!("verify: {e}"),
                }
            })
        })
        .collect();
    let statuses: Vec<u16> = workers
        .into_iter()
        .map(|w| w.join().expect("worker"))
        .collect();
    let peak = gw.status_kib("VmHWM");
    let grown_mib = (peak.saturating_sub(baseline)) as f64 / 1024.0;
    println!(
        "{CLIENTS} concurrent {BODY_MIB} MiB verifications: statuses {statuses:?}; VmHWM {} -> {} MiB (+{grown_mib:.1} MiB; budget {BUDGET_MIB} MiB)",
        baseline / 1024,
        peak / 1024
    );
    assert!(
        statuses.iter().all(|s| *s == 422 || *s == 200),
        "{statuses:?}"
    );
    // The budget (a verification reserves 3 times its body) plus the in-memory heads of the
    // bodies being spooled and the allocator's slack.
    assert!(
        grown_mib < (BUDGET_MIB + 32) as f64,
        "peak RSS grew {grown_mib:.1} MiB for a {BUDGET_MIB} MiB budget ({} MiB sent at once)",
        CLIENTS * BODY_MIB
    );
}

/// POSTs `body` to `url` with `token` and headers `headers`: the status and the body.
fn post(url: &str, token: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut req = ureq::post(url).set("Authorization", &format!("Bearer {token}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_bytes(body) {
        Ok(r) => (r.status(), String::new()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        // The server answered and closed while the body was still being sent.
        Err(ureq::Error::Transport(t)) => (0, t.to_string()),
    }
}

#[test]
fn concurrent_large_signings_and_batch_uploads_stay_within_the_body_memory_budget() {
    const BUDGET_MIB: u64 = 160;
    const CLIENTS: usize = 8;
    let gw = Limited::start(
        &format!(
            "body_memory_mib = {BUDGET_MIB}\nspool_threshold_kib = 256\nclient_concurrency = 0\nip_concurrency = 0"
        ),
        5,
    );
    // Warm up (the first signing opens the key), then the baseline.
    let sample = std::fs::read(sample_pdf()).expect("sample.pdf");
    let (status, body) = post(&gw.url("v1/sign?key=k"), &gw.calm, &[], &sample);
    assert_eq!(status, 200, "{body}");
    let baseline = gw.status_kib("VmHWM");

    // A 10.8 MB PDF (one incompressible image): under the streaming threshold, so it is
    // signed in memory and reserves 14 times its size; eight of them at once.
    let dir = tempdir();
    let path = dir.path().join("large.pdf");
    write_large_pdf(&path, 1, 1900);
    let pdf = std::sync::Arc::new(std::fs::read(&path).expect("large.pdf"));
    assert!((pdf.len() as u64) < signgate::pdf::STREAMING_THRESHOLD);
    let run = |url: String, headers: Vec<(&'static str, String)>, body: std::sync::Arc<Vec<u8>>| {
        let token = gw.calm.clone();
        std::thread::spawn(move || {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(&url, &token, &headers, &body)
        })
    };
    let signers: Vec<_> = (0..CLIENTS)
        .map(|_| run(gw.url("v1/sign?key=k"), Vec::new(), pdf.clone()))
        .collect();
    let signed: Vec<(u16, String)> = signers
        .into_iter()
        .map(|w| w.join().expect("signer"))
        .collect();
    let peak_sign = gw.status_kib("VmHWM");

    // Batch uploads whose options part is 24 MiB (a document part first): refused at its
    // 64 KiB cap, the document parts streamed to disk, never held.
    let mut options = vec![b' '; 24 << 20];
    options.extend_from_slice(br#"{"key": "k"}"#);
    let (form, content_type) = multipart(&[
        ("document", Some("a.pdf"), &sample[..]),
        ("options", None, &options[..]),
    ]);
    let form = std::sync::Arc::new(form);
    let uploads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let headers = vec![
                ("Content-Type", content_type.clone()),
                ("Idempotency-Key", format!("abuse-batch-{i}")),
            ];
            run(gw.url("v1/batches"), headers, form.clone())
        })
        .collect();
    let uploaded: Vec<(u16, String)> = uploads
        .into_iter()
        .map(|w| w.join().expect("upload"))
        .collect();
    let peak = gw.status_kib("VmHWM");
    let grown = |kib: u64| kib.saturating_sub(baseline) as f64 / 1024.0;
    println!(
        "{CLIENTS} concurrent {:.1} MB signings: VmHWM {} -> {} MiB (+{:.1} MiB); then {CLIENTS} \
         batch uploads of {:.1} MiB: VmHWM {} MiB (+{:.1} MiB); budget {BUDGET_MIB} MiB",
        pdf.len() as f64 / 1e6,
        baseline / 1024,
        peak_sign / 1024,
        grown(peak_sign),
        form.len() as f64 / (1 << 20) as f64,
        peak / 1024,
        grown(peak),
    );
    for (status, body) in &signed {
        assert_eq!(*status, 200, "{body}");
    }
    for (status, body) in &uploaded {
        // 400 "options part is larger than 64 KiB", or the connection closed after that
        // answer while the rest of the 24 MiB part was still being sent.
        match status {
            400 => assert!(
                body.contains("options part is larger than 64 KiB"),
                "{body}"
            ),
            0 => assert!(
                body.contains("Broken pipe") || body.contains("reset"),
                "{body}"
            ),
            other => panic!("batch upload answered {other}: {body}"),
        }
    }
    // The budget plus the in-memory heads of the bodies being spooled and the allocator's
    // slack.
    assert!(
        grown(peak) < (BUDGET_MIB + 32) as f64,
        "peak RSS grew {:.1} MiB for a {BUDGET_MIB} MiB budget",
        grown(peak)
    );
}

#[test]
fn sigterm_with_slow_clients_exits_within_the_shutdown_timeout() {
    const SHUTDOWN_SECS: u64 = 2;
    let mut gw = Limited::start(
        "header_read_timeout_secs = 60\nbody_read_timeout_secs = 60\nidle_timeout_secs = 60",
        SHUTDOWN_SECS,
    );
    let mut slow_header = gw.connect();
    slow_header
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("send");
    let mut slow_body = gw.connect();
    write!(
        slow_body,
        "POST /v1/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100000\r\n\r\n%PDF-",
        gw.calm
    )
    .expect("send");
    let idle: Vec<TcpStream> = (0..20).map(|_| gw.connect()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let (code, took) = gw
        .server
        .terminate(Duration::from_secs(SHUTDOWN_SECS + 8))
        .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", gw.server.log()));
    println!("SIGTERM with slow and idle clients: exit {code:?} after {took:?}");
    assert_eq!(code, Some(0), "{}", gw.server.log());
    assert!(
        took < Duration::from_secs(SHUTDOWN_SECS) + Duration::from_millis(1500),
        "took {took:?}"
    );
    drop(idle);
}
