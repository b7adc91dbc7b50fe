//! Routing across gateway processes (issue 15 item 9): one routing node (the district, `DA`)
//! run as several `signgate serve` processes on one PostgreSQL database ([`Cluster`]), each
//! with its own peer listener, sharing the accepts (the province posts to every process, as a
//! load balancer in front of them would) and the delivery (one outbox, leased).
//!
//! - a test: under load, one process is SIGKILLed mid-flow; every envelope the province had
//!   accepted is delivered to the commune once, none is lost or stored twice;
//! - an ignored-by-default bench (`SIGNGATE_BENCH_BIN=target/release/signgate cargo test --test
//!   it routing_scale::bench -- --ignored --nocapture`): accepts per second with 1, 2 and 4
//!   processes (of the release binary named there) on this machine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{doc_id, free_port, wait_for_port, Cluster};
use crate::routing::{envelope, pki, s, wait_until, Links, Net};
use signgate::edxml::Business;

/// The province, the district run by the cluster, and the commune.
fn spec() -> Vec<(&'static str, &'static str, Links)> {
    vec![
        ("P", "TEST.P", vec![("DA", s(&["TEST.DA", "TEST.C1"]))]),
        (
            "DA",
            "TEST.DA",
            vec![("P", s(&["*"])), ("C1", s(&["TEST.C1"]))],
        ),
        ("C1", "TEST.C1", vec![("DA", s(&["*"]))]),
    ]
}

/// `n` processes of node DA of `net` on one database: DA's configuration with its own data
/// folder and peer port each (`ports[i]`); `tweak` edits the TOML.
fn district(
    net: &Net,
    prefix: &str,
    ports: &[u16],
    tweak: impl Fn(String) -> String,
) -> Option<Cluster> {
    let da = &net.nodes["DA"];
    let toml: String = std::fs::read_to_string(&da.config)
        .expect("DA config")
        .lines()
        .filter(|l| !l.starts_with("data_dir = "))
        .collect::<Vec<_>>()
        .join("\n");
    let toml = tweak(toml);
    let own = format!("listen = \"127.0.0.1:{}\"", da.tls_port);
    Cluster::new(
        prefix,
        ports.len(),
        &[("SIGNGATE_KEY_PASSWORD", "demo")],
        |i| toml.replace(&own, &format!("listen = \"127.0.0.1:{}\"", ports[i])),
    )
}

/// Posts envelopes as node P to the peer listeners `ports` of DA (fingerprint `pin`).
struct Sender {
    rt: tokio::runtime::Runtime,
    client: signgate::routing::tls::PeerClient,
    pin: String,
}

impl Sender {
    fn new(net: &Net) -> Sender {
        use signgate::routing::tls;
        let identity = tls::TlsIdentity::open(&net.nodes["P"].p12, "demo").expect("identity");
        let connector = tls::connector(&identity, &[pki().root()]).expect("connector");
        Sender {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            client: tls::PeerClient::new(connector),
            pin: net.nodes["DA"].fingerprint.clone(),
        }
    }

    /// The status code DA's process on `port` answered (`01` accepted), or an error text
    /// when it could not be reached.
    fn post(&self, port: u16, body: &[u8]) -> Result<String, String> {
        let url = format!("https://127.0.0.1:{port}/v1/route/envelopes?to=TEST.C1");
        let answer = self
            .rt
            .block_on(self.client.post(
                &url,
                &self.pin,
                "application/xml",
                body.to_vec(),
                Duration::from_secs(30),
            ))
            .map_err(|e| e.to_string())?;
        answer
            .headers
            .get("signgate-route-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| format!("HTTP {}", answer.status))
    }
}

/// The envelopes of the load, P → C1.
fn envelopes(tag: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let number = format!("{tag}{i:04}");
            (
                doc_id("TEST.P", &number),
                envelope("TEST.P", &["TEST.C1"], &number, "Tai", Business::default()),
            )
        })
        .collect()
}

/// Sends every envelope from `threads` threads, envelope `i` first to process `i % ports`,
/// and on failure (the process is gone) to the next one, until it is accepted (`01`). Calls
/// `after(accepted)` on the main thread until it returns false. Returns how many each
/// process accepted.
fn load(
    net: &Net,
    ports: &[u16],
    docs: &[(String, Vec<u8>)],
    threads: usize,
    mut after: impl FnMut(usize) -> bool,
) -> Vec<usize> {
    let accepted = Arc::new(AtomicUsize::new(0));
    let per_process: Arc<Vec<AtomicUsize>> =
        Arc::new(ports.iter().map(|_| AtomicUsize::new(0)).collect());
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for t in 0..threads {
            let (accepted, per_process) = (accepted.clone(), per_process.clone());
            let sender = Sender::new(net);
            workers.push(scope.spawn(move || {
                for (i, (id, body)) in docs.iter().enumerate().skip(t).step_by(threads) {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let mut target = i % ports.len();
                    loop {
                        match sender.post(ports[target], body) {
                            Ok(code) if code == "01" => break,
                            Ok(code) => panic!("{id}: status {code}"),
                            Err(e) => {
                                assert!(Instant::now() < deadline, "{id}: {e}");
                                target = (target + 1) % ports.len();
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                    per_process[target].fetch_add(1, Ordering::SeqCst);
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        // until `after` is satisfied, or every sender ended (a panic is re-raised by the scope)
        while after(accepted.load(Ordering::SeqCst)) && !workers.iter().all(|w| w.is_finished()) {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    per_process
        .iter()
        .map(|n| n.load(Ordering::SeqCst))
        .collect()
}

/// Two processes of DA accept and deliver under load; one is SIGKILLed after a third of the
/// envelopes: the survivor takes over what the dead one had leased; every envelope is stored
/// once at DA and delivered to C1 once, none lost.
#[test]
fn a_killed_process_under_load_loses_and_duplicates_nothing() {
    const N: usize = 60;
    let mut net = Net::new("mpkill", &spec(), "", None);
    let ports = [net.nodes["DA"].tls_port, free_port()];
    let Some(mut cluster) = district(&net, "mproc_route", &ports, |t| t) else {
        return;
    };
    net.start_all(&["P", "C1"]);
    cluster.start_all();
    for port in ports {
        assert!(wait_for_port(port, Duration::from_secs(10)), "peer port");
    }
    let docs = envelopes("7", N);
    let mut killed = false;
    let per_process = load(&net, &ports, &docs, 4, |accepted| {
        if !killed && accepted >= N / 3 {
            cluster.kill(1);
            killed = true;
        }
        accepted < N
    });
    assert!(killed, "the kill happened mid-flow");
    assert!(
        per_process[1] > 0,
        "both processes accepted: {per_process:?}"
    );
    let rows = |id: &str| {
        cluster.scalar(&format!(
            "SELECT COUNT(*) FROM route_documents WHERE document_id = '{id}' AND recipient_organ = 'TEST.C1'"
        ))
    };
    for (id, _) in &docs {
        wait_until(
            &net,
            Duration::from_secs(120),
            &format!("{id} at C1"),
            || net.rows("C1", id, "TEST.C1", "delivered") == 1,
        );
        assert_eq!(rows(id), 1, "{id} stored once at DA");
        assert_eq!(
            net.rows("C1", id, "TEST.C1", "delivered"),
            1,
            "{id} stored once at C1"
        );
    }
    let lost = cluster.scalar(
        "SELECT COUNT(*) FROM route_outbox WHERE kind = 'envelope' AND state <> 'delivered'",
    );
    assert_eq!(lost, 0, "every envelope item delivered");
    let delivered = cluster.scalar(
        "SELECT COUNT(*) FROM route_outbox WHERE kind = 'envelope' AND state = 'delivered'",
    );
    assert_eq!(delivered, N as i64, "one delivery item per envelope");
    eprintln!(
        "accepted by process 0 / 1 (killed after {} of {N}): {per_process:?}",
        N / 3
    );
}

/// CPU seconds (user + system) process `pid` used so far, from `/proc/PID/stat`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // after the command: state is field 0, utime 11, stime 12 (clock ticks, 100 per second)
    (ticks(11) + ticks(12)) / 100.0
}

/// Accepts per second of node DA run as 1, 2 and 4 processes on one PostgreSQL database
/// (fresh per run), the province posting from 8 connections spread over the processes; wall
/// clock beside the processes' CPU time. Not a timed test: it prints the figures.
#[test]
#[ignore = "bench: SIGNGATE_BENCH_BIN=target/release/signgate cargo test --test it routing_scale::bench -- --ignored --nocapture"]
fn bench_accepts_with_1_2_4_processes() {
    const N: usize = 240;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "gateway binary: {}",
        std::env::var("SIGNGATE_BENCH_BIN").unwrap_or_else(|_| {
            "the test build's (set SIGNGATE_BENCH_BIN to a release build)".into()
        })
    );
    let mut net = Net::new("mpbench", &spec(), "", None);
    // Deliveries to the commune (not running) back off for the whole run: accepts only.
    let quiet = |t: String| {
        t.replace("backoff_initial_ms = 100", "backoff_initial_ms = 600000")
            .replace("backoff_max_ms = 600", "backoff_max_ms = 600000")
    };
    net.start("P");
    let warmup = envelopes("80", 16);
    let mut results = Vec::new();
    for (round, n) in [1usize, 2, 4].into_iter().enumerate() {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let Some(cluster) = district(&net, &format!("mproc_bench{n}"), &ports, quiet) else {
            return;
        };
        let mut cluster = match std::env::var_os("SIGNGATE_BENCH_BIN") {
            Some(bin) => cluster.with_binary(bin.into()),
            None => cluster,
        };
        cluster.start_all();
        for &port in &ports {
            assert!(wait_for_port(port, Duration::from_secs(10)), "peer port");
        }
        // warm-up (connections, caches), then the measured load
        load(&net, &ports, &warmup, 8, |a| a < warmup.len());
        let docs = envelopes(&format!("9{round}"), N);
        let pids: Vec<u32> = (0..n).map(|i| cluster.pid(i)).collect();
        let cpu_before: f64 = pids.iter().map(|&p| cpu_secs(p)).sum();
        let started = Instant::now();
        let per_process = load(&net, &ports, &docs, 8, |a| a < N);
        let wall = started.elapsed().as_secs_f64();
        let cpu = pids.iter().map(|&p| cpu_secs(p)).sum::<f64>() - cpu_before;
        let rate = N as f64 / wall;
        println!(
            "{n} process(es): {N} accepts in {wall:.2} s wall = {rate:.1} accepts/s; gateway CPU {cpu:.2} s ({:.1} ms/accept); per process {per_process:?}",
            cpu * 1000.0 / N as f64
        );
        results.push((n, rate));
    }
    let one = results[0].1;
    for (n, rate) in &results {
        println!(
            "scaling: {n} process(es) {rate:.1} accepts/s = {:.2} x one process ({cores} cores on this machine, load generator and PostgreSQL on the same cores)",
            rate / one
        );
    }
}
