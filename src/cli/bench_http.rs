//! `signgate bench http`: the gateway under real HTTP load on loopback, beside the batch core's
//! rate measured in the same run with the same key.
//!
//! The gateway runs in-process (the same router `signgate serve` uses) on 127.0.0.1:0 over a
//! fresh SQLite database with a throwaway RSA-2048 key; N client threads, each with its own
//! keep-alive connection, post generated ~40 KB PDFs to `/v1/sign` and time every request.
//! Then the batch engine signs the same number of the same PDFs with the same key, with its
//! outputs synced in groups (as gateway batches run) and without fsync. Rounds alternate the
//! two so that a shared machine's noise falls on both; medians are compared.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use time::OffsetDateTime;

use super::CliError;
use crate::api::{self, AppState};
use crate::batch::{sample, BatchOptions, Engine};
use crate::error::ErrorCode;
use crate::gateway::KeyRecord;
use crate::gateway::Settings;
use crate::keys::KeySource;

/// Arguments of `signgate bench http`.
#[derive(Debug, Args)]
pub struct BenchHttpArgs {
    /// Signing requests per round (after a warm-up of one per client); also the batch size.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Rounds of HTTP load then batch core; the medians are compared.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent HTTP clients (default: 4 per core).
    #[arg(long)]
    clients: Option<usize>,
    /// Size of the generated PDFs in bytes.
    #[arg(long, default_value_t = 40_000)]
    pdf_size: usize,
}

fn internal(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError {
        code: ErrorCode::Internal,
        message: format!("{what}: {e}"),
    }
}

/// Distinct generated PDFs the clients cycle through.
const VARIANTS: usize = 64;

/// Runs the benchmark and prints its figures.
pub fn run(args: BenchHttpArgs) -> Result<u8, CliError> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let clients = args.clients.unwrap_or(4 * cores).max(1);
    if args.requests == 0 || args.rounds == 0 {
        return Err(CliError::usage(
            "--requests and --rounds must be at least 1",
        ));
    }
    let work = tempfile::Builder::new()
        .prefix("signgate-bench-http-")
        .tempdir()
        .map_err(|e| internal("temp dir", e))?;
    let (p12, _, _) = sample::throwaway_rsa_pkcs12(2048).map_err(|e| internal("key", e))?;
    let p12_path = work.path().join("bench.p12");
    std::fs::write(&p12_path, &p12).map_err(|e| internal("write key", e))?;
    let pdfs: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..VARIANTS)
            .map(|i| sample::pdf(i, args.pdf_size))
            .collect(),
    );

    // The gateway, in-process, on its own runtime.
    let runtime = tokio::runtime::Runtime::new().map_err(|e| internal("runtime", e))?;
    let (url, token, _server) = runtime.block_on(async {
        let key = KeyRecord {
            name: "bench".into(),
            agency: "bench".into(),
            p12_path: p12_path.display().to_string(),
            seal_path: None,
            seal_size_mm: None,
        };
        let mut settings = Settings::new(work.path(), "bench");
        settings.offline = true;
        // The clients are one API client on one address: the per-client and per-IP request
        // rates are what the benchmark measures, so those limits are off here.
        settings.limits.client_rate = None;
        settings.limits.ip_rate = None;
        settings
            .key_passwords
            .insert("bench".into(), crate::gateway::Secret::from("bench"));
        let services = crate::gateway::Services::connect(
            &crate::gateway::sqlite_url(work.path()),
            settings,
            &[key],
        )
        .await
        .map_err(|e| internal("database", e))?;
        let token = services
            .add_client(crate::gateway::admin::NewClient {
                agency: "bench".into(),
                name: "bench".into(),
                keys: vec!["bench".into()],
                cert_fingerprint: None,
            })
            .await
            .map_err(|e| internal("client", e))?
            .token;
        let router = api::router(AppState::over(services));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| internal("listen", e))?;
        let addr = listener.local_addr().map_err(|e| internal("listen", e))?;
        let server = crate::gateway::BackgroundServer::start(listener, router);
        Ok::<_, CliError>((format!("http://{addr}/v1/sign?key=bench"), token, server))
    })?;

    // Warm-up: opens the key (cached afterwards) and every client's connection.
    let agents: Vec<ureq::Agent> = (0..clients).map(|_| ureq::Agent::new()).collect();
    for agent in &agents {
        post(agent, &url, &token, &pdfs[0])?;
    }
    println!(
        "{} rounds of: {} requests of ~{} KB PDFs to POST /v1/sign (PAdES B-B, RSA-2048) from {clients} keep-alive clients, gateway in-process on {cores} cores with SQLite; then the batch core on as many of the same PDFs with the same key",
        args.rounds,
        args.requests,
        args.pdf_size / 1000
    );

    let key = crate::keys::Pkcs12Key::open(&p12_path, "bench")?;
    let key: Arc<dyn KeySource> = Arc::new(key);
    let in_dir = work.path().join("batch-in");
    std::fs::create_dir_all(&in_dir).map_err(|e| internal("temp dir", e))?;
    let inputs: Vec<_> = (0..args.requests)
        .map(|i| {
            let path = in_dir.join(format!("doc-{i:06}.pdf"));
            std::fs::write(&path, &pdfs[i % VARIANTS]).map(|_| path)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| internal("write input", e))?;

    // Rounds alternate HTTP and core so that both see the same (shared, noisy) machine.
    let (mut http, mut synced, mut unsynced, mut latencies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let started = Instant::now();
        let mut lat = load(&agents, &url, &token, &pdfs, args.requests)?;
        http.push(lat.len() as f64 / started.elapsed().as_secs_f64());
        latencies.append(&mut lat);
        // Durable (as the gateway's batches run) and without fsync: the HTTP path writes no
        // output files, so the second is the closer like-for-like reference.
        for (durable, rates) in [(true, &mut synced), (false, &mut unsynced)] {
            let mut options = BatchOptions::new(OffsetDateTime::now_utc());
            options.durable = durable;
            let engine = Engine::new(key.clone(), options)?;
            let out = work.path().join(format!("batch-out-{round}-{durable}"));
            let summary = engine.run(inputs.iter().cloned(), &out, &mut |_| {})?;
            rates.push(summary.docs_per_s());
        }
        println!(
            "round {}: HTTP {:.0} signed PDFs/s; batch core {:.0} docs/s synced, {:.0} not synced",
            round + 1,
            http[round],
            synced[round],
            unsynced[round]
        );
    }
    drop(runtime);
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let (http, synced, unsynced) = (median(http), median(synced), median(unsynced));
    println!(
        "HTTP: {http:.0} signed PDFs/s (median of rounds); latency p50 {:.1} ms, p99 {:.1} ms",
        pct(0.50),
        pct(0.99)
    );
    println!(
        "batch core (median of rounds): {synced:.0} docs/s outputs synced in groups, {unsynced:.0} not synced"
    );
    println!(
        "HTTP / batch core: {:.2} vs synced, {:.2} vs not synced (target at least 0.70)",
        http / synced,
        http / unsynced
    );
    Ok(0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Sends `requests` signing requests spread over the `agents` (one thread each); returns
/// every request's latency.
fn load(
    agents: &[ureq::Agent],
    url: &str,
    token: &str,
    pdfs: &[Vec<u8>],
    requests: usize,
) -> Result<Vec<Duration>, CliError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    type Job<'a> = Box<dyn FnOnce() -> Result<Vec<Duration>, CliError> + Send + 'a>;
    let jobs: Vec<Job<'_>> = agents
        .iter()
        .map(|agent| {
            let next = &next;
            Box::new(move || {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= requests {
                        return Ok(mine);
                    }
                    let t = Instant::now();
                    post(agent, url, token, &pdfs[i % pdfs.len()])?;
                    mine.push(t.elapsed());
                }
            }) as Job<'_>
        })
        .collect();
    let per_client = crate::gateway::tasks::on_threads(jobs)
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(internal("client", "thread panicked"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(per_client.into_iter().flatten().collect())
}

/// One `POST /v1/sign`; anything but 200 stops the benchmark.
fn post(agent: &ureq::Agent, url: &str, token: &str, pdf: &[u8]) -> Result<(), CliError> {
    let response = agent
        .post(url)
        .set("Authorization", &format!("Bearer {token}"))
        .send_bytes(pdf)
        .map_err(|e| internal("POST /v1/sign", e))?;
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .map_err(|e| internal("read response", e))?;
    if !body.starts_with(b"%PDF-") {
        return Err(internal("POST /v1/sign", "the answer is not a PDF"));
    }
    Ok(())
}
