//! `signgate bench route`: envelopes accepted per second by one node (SQLite, full sync) as a
//! ratio to the floor for the envelope's size measured in the same run ([`super::bench_floor`]),
//! and end-to-end documents per second over a three-node path (origin → transit → recipient,
//! two mutual-TLS transfers) as a ratio to the accept rate, with p50/p99 latency to the
//! recipient's inbox both saturated (every document queued at once) and not (one document at a
//! time). Everything runs in this process against a fresh demo PKI whose OCSP/CRL publication
//! point is served on loopback, so each envelope is verified as in production (chain, live
//! revocation, attachments).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use time::OffsetDateTime;

use super::CliError;
use crate::edxml::{Attachment, Business, MessageHeader, Organ, Package, SignerInfo, TraceHeader};
use crate::error::ErrorCode;
use crate::gateway::Settings;
use crate::keys::{KeySource, Pkcs12Key};
use crate::pki::demo::{DemoOptions, LeafKey, LeafProfile, LeafSpec};
use crate::routing::{lifecycle, Node, RoutingConfig, RoutingFileConfig};

/// Arguments of `signgate bench route`.
#[derive(Debug, Args)]
pub struct BenchRouteArgs {
    /// Envelopes for the single-node accept measurement.
    #[arg(long, default_value_t = 400)]
    docs: usize,
    /// Documents sent over the three-node path.
    #[arg(long, default_value_t = 200)]
    e2e_docs: usize,
    /// Documents sent over the three-node path one at a time (the latency when not saturated).
    #[arg(long, default_value_t = 20)]
    latency_docs: usize,
    /// Concurrent submissions.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Size of the PDF attachment in bytes.
    #[arg(long, default_value_t = 100_000)]
    attachment_size: usize,
    /// Key of the nodes' status-signing certificates (`routing.signing_key`): RSA-2048 or
    /// ECDSA P-256 (each accept signs status messages with it).
    #[arg(long, value_enum, default_value_t = StatusKey::Rsa)]
    status_key: StatusKey,
}

/// The key type of the bench nodes' status-signing certificates.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StatusKey {
    /// RSA-2048.
    Rsa,
    /// ECDSA on P-256.
    Ec,
}

fn fail(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError {
        code: ErrorCode::Internal,
        message: format!("{what}: {e}"),
    }
}

fn settings(root: &Path, work: &Path) -> Settings {
    let mut settings = Settings::new(work, String::new());
    settings.trust = vec![root.to_path_buf()];
    // The bench PKI's publication point is on loopback, which the fetch policy refuses unless
    // allowed.
    settings.fetch =
        crate::gateway::fetch::OutboundFetch::new(crate::gateway::fetch::FetchPolicy {
            allow: vec![crate::gateway::fetch::Allowed::Net {
                addr: std::net::Ipv4Addr::LOCALHOST.into(),
                prefix: 32,
            }],
            ..Default::default()
        });
    settings
}

/// About 5 KB of header text plus the attachment.
fn envelope(key: &dyn KeySource, n: usize, pdf: &[u8]) -> Result<(String, Vec<u8>), CliError> {
    let document_id = format!("BENCH.P,2025/07/01,{n}/UBND-VP");
    let package = Package {
        header: MessageHeader {
            from: Organ::new("BENCH.P", "UBND tỉnh Thử nghiệm"),
            to: vec![Organ::new("BENCH.C", "UBND xã Thử nghiệm")],
            document_id: document_id.clone(),
            code_number: n.to_string(),
            code_notation: "UBND-VP".into(),
            promulgation_place: "Thử nghiệm".into(),
            promulgation_date: time::macros::date!(2025 - 07 - 01),
            document_type: "18".into(),
            document_type_name: Some("Công văn".into()),
            subject: "Về việc đo hiệu năng liên thông văn bản".into(),
            content: Some("Nội dung văn bản thử nghiệm. ".repeat(150)),
            signer: SignerInfo {
                competence: Some("TM. UBND".into()),
                position: Some("Chủ tịch".into()),
                full_name: "Nguyễn Văn Mẫu".into(),
            },
            due_date: None,
            to_places: vec!["Như trên".into()],
            steering_type: None,
            response_for: None,
        },
        business: Business::default(),
        traces: vec![TraceHeader {
            organ_id: "BENCH.P".into(),
            timestamp: OffsetDateTime::now_utc(),
        }],
        attachments: vec![Attachment {
            content_id: "att1".into(),
            name: "congvan.pdf".into(),
            content_type: "application/pdf".into(),
            description: None,
            data: pdf.to_vec(),
        }],
    };
    let bytes = package
        .build_signed(key, OffsetDateTime::now_utc())
        .map_err(|e| fail("building an envelope", e))?;
    Ok((document_id, bytes))
}

struct NodeFiles {
    name: &'static str,
    organ: &'static str,
    p12: std::path::PathBuf,
    signer: std::path::PathBuf,
    fingerprint: String,
    port: u16,
}

fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| fail("binding a port", e))
}

fn routing(
    node: &NodeFiles,
    peers: &[(&NodeFiles, &str)],
    root: &Path,
) -> Result<RoutingConfig, CliError> {
    let mut toml = format!(
        "node_id = {:?}\nserves = [{:?}]\nlisten = \"127.0.0.1:{}\"\nidentity = {:?}\nsigning_key = {:?}\npoll_ms = 20\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\n",
        node.name, node.organ, node.port, node.p12, node.signer
    );
    for (p, serves) in peers {
        toml.push_str(&format!(
            "[[peers]]\nnode_id = {:?}\nurl = \"https://127.0.0.1:{}/\"\ncert_fingerprint = {:?}\nserves = [{serves:?}]\n",
            p.name, p.port, p.fingerprint
        ));
    }
    let file: RoutingFileConfig = toml::from_str(&toml).map_err(|e| fail("bench config", e))?;
    RoutingConfig::from_file(&file, &[root.to_path_buf()], |_| Some("demo".into()))
        .map_err(|e| fail("bench config", e))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `signgate bench route`.
pub fn run(args: BenchRouteArgs) -> Result<u8, CliError> {
    let tmp = tempfile::tempdir().map_err(|e| fail("temp dir", e))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| fail("runtime", e))?;
    // the PKI's publication point (OCSP, CRLs), live on loopback
    let pki_port = free_port()?;
    let mut pki = crate::pki::demo::generate(
        &tmp.path().join("pki"),
        &DemoOptions {
            root_key_bits: 2048,
            issuing_key_bits: 2048,
            ..DemoOptions::with_base_url(format!("http://127.0.0.1:{pki_port}/"))
        },
    )
    .map_err(|e| fail("demo PKI", e))?;
    let dir = pki.dir.clone();
    let root = dir.join("root-ca.pem");
    let ocsp: Arc<dyn KeySource> = Arc::new(Pkcs12Key::open(&dir.join("ocsp.p12"), "demo")?);
    let publication =
        crate::publish::router(dir.clone(), ocsp).map_err(|e| fail("publication point", e))?;
    let agency = Pkcs12Key::open(&dir.join("agency-signer.p12"), "demo")?;
    let mut nodes = Vec::new();
    for (name, organ) in [("P", "BENCH.P"), ("D", "BENCH.D"), ("C", "BENCH.C")] {
        let p12 = dir.join(format!("bench-node-{name}.p12"));
        let leaf = pki
            .issue_leaf(
                &LeafSpec::new(&format!("bench node {name}")).with_profile(LeafProfile::Node),
                &p12,
            )
            .map_err(|e| fail("node certificate", e))?;
        let signer = dir.join(format!("bench-signer-{name}.p12"));
        let key = match args.status_key {
            StatusKey::Rsa => LeafKey::Rsa(2048),
            StatusKey::Ec => LeafKey::EcP256,
        };
        pki.issue_leaf(
            &LeafSpec::new(&format!("bench signer {name}")).with_key(key),
            &signer,
        )
        .map_err(|e| fail("signer certificate", e))?;
        let der = leaf
            .certificate
            .to_der()
            .map_err(|e| fail("certificate", e))?;
        nodes.push(NodeFiles {
            name,
            organ,
            p12,
            signer,
            fingerprint: hex::encode(openssl::sha::sha256(&der)),
            port: free_port()?,
        });
    }
    let pdf = crate::batch::sample::pdf(1, args.attachment_size);
    println!(
        "building {} envelopes (~5 KB + {} KB PDF attachment) ...",
        args.docs + args.e2e_docs + args.latency_docs,
        args.attachment_size / 1000
    );
    let mut envelopes = Vec::new();
    for n in 0..args.docs + args.e2e_docs + args.latency_docs {
        envelopes.push(envelope(&agency, n, &pdf)?);
    }
    let size = envelopes.first().map(|(_, b)| b.len()).unwrap_or(0);
    println!("measuring the floor (openssl speed on one core, durable writes) ...");
    let floor = super::bench_floor::measure(size, args.concurrency, args.docs, tmp.path())?;
    let (accept, e2e) =
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", pki_port))
                .await
                .map_err(|e| fail("publication listener", e))?;
            let _publication = crate::gateway::BackgroundServer::start(listener, publication);
            let settings = settings(&root, tmp.path());
            let open = |name: &str| {
                let path = tmp.path().join(format!("db-{name}"));
                let settings = settings.clone();
                async move {
                    std::fs::create_dir_all(&path).map_err(|e| fail("db dir", e))?;
                    crate::gateway::Services::connect(
                        &crate::gateway::sqlite_url(&path),
                        settings,
                        &[],
                    )
                    .await
                    .map_err(|e| fail("database", e))
                }
            };
            // 1. one node accepting envelopes addressed to an agency it serves; its parent (not
            // running) is the route back to the sender, so each accept queues the recipient's
            // signed status 01 in the outbox as in production
            let single = routing(&nodes[2], &[(&nodes[1], "*")], &root)?;
            let node = open("single")
                .await?
                .routing_node(&single)
                .map_err(|e| fail("node", e))?;
            let (accept_docs, rest) = envelopes.split_at(args.docs);
            let (rest, one_by_one) = rest.split_at(args.e2e_docs);
            let accept_docs: Vec<Vec<u8>> = accept_docs.iter().map(|(_, b)| b.clone()).collect();
            let cpu_before = crate::batch::sample::process_cpu_time();
            let started = Instant::now();
            run_concurrently(&node, accept_docs, args.concurrency).await?;
            let accept_secs = started.elapsed().as_secs_f64();
            let accept_cpu = (crate::batch::sample::process_cpu_time() - cpu_before).as_secs_f64();
            let accept = Rate {
                per_sec: args.docs as f64 / accept_secs,
                cpu_per_item: accept_cpu / args.docs.max(1) as f64,
            };
            // 2. P -> D -> C over mutual TLS, with the outbox workers
            let p = routing(&nodes[0], &[(&nodes[1], "*")], &root)?;
            let d = routing(
                &nodes[1],
                &[(&nodes[0], "BENCH.P"), (&nodes[2], "BENCH.C")],
                &root,
            )?;
            let c = routing(&nodes[2], &[(&nodes[1], "*")], &root)?;
            let start = |routing: crate::routing::RoutingConfig,
                         services: crate::gateway::Services| {
                async move {
                    crate::gateway::RunningNode::start(
                        &routing,
                        &services,
                        crate::api::route::peer_router,
                    )
                    .await
                    .map_err(CliError::from)
                }
            };
            let origin_node = start(p, open("p").await?).await?;
            let _middle = start(d, open("d").await?).await?;
            let recipient_node = start(c, open("c").await?).await?;
            let (origin, recipient) = (origin_node.node.clone(), recipient_node.node.clone());
            let mut sent_at = HashMap::new();
            let started = Instant::now();
            for chunk in rest.chunks(args.concurrency.max(1)) {
                for (id, _) in chunk {
                    sent_at.insert(id.clone(), Instant::now());
                }
                run_concurrently(
                    &origin,
                    chunk.iter().map(|(_, b)| b.clone()).collect(),
                    args.concurrency,
                )
                .await?;
            }
            let mut latencies = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(600);
            while latencies.len() < rest.len() && Instant::now() < deadline {
                for row in recipient
                    .store()
                    .route_inbox(&lifecycle::inbox_state_names())
                    .await
                    .map_err(|e| fail("inbox", e))?
                {
                    if let Some(at) = sent_at.remove(&row.document_id) {
                        latencies.push(at.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let e2e_secs = started.elapsed().as_secs_f64();
            latencies.sort();
            // 3. one document at a time: the latency of a node that is not saturated
            let mut unsaturated = Vec::new();
            for (id, bytes) in one_by_one {
                let sent = Instant::now();
                run_concurrently(&origin, vec![bytes.clone()], 1).await?;
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    let rows = recipient
                        .store()
                        .route_inbox(&lifecycle::inbox_state_names())
                        .await
                        .map_err(|e| fail("inbox", e))?;
                    if rows.iter().any(|r| &r.document_id == id) {
                        unsaturated.push(sent.elapsed());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            unsaturated.sort();
            Ok::<_, CliError>((accept, (latencies, e2e_secs, unsaturated)))
        })?;
    let (latencies, e2e_secs, unsaturated) = e2e;
    let e2e_rate = latencies.len() as f64 / e2e_secs;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "envelope size: {} bytes; status messages signed with {:?}",
        size, args.status_key
    );
    println!(
        "floor: {} cores; openssl speed: SHA-256 {:.0} MB/s on {size}-byte blocks, RSA-2048 {:.0} signatures/s per core -> CPU floor {:.0} accepts/s; disk: {:.0} envelopes/s written durably (one fdatasync per {}) -> floor {:.0} accepts/s ({})",
        floor.cores,
        floor.sha256_bytes_per_sec / 1e6,
        floor.rsa_signs_per_core,
        floor.cpu,
        floor.disk,
        args.concurrency,
        floor.rate(),
        floor.bound(),
    );
    println!(
        "accept (one node, verify + store, SQLite synchronous=FULL): {:.1} envelopes/s ({} envelopes, concurrency {}); CPU {:.2} ms per accept (the CPU floor's share: {:.2} ms)",
        accept.per_sec,
        args.docs,
        args.concurrency,
        accept.cpu_per_item * 1000.0,
        1000.0 * floor.cores as f64 / floor.cpu,
    );
    println!("accept/floor ratio: {:.3}", accept.per_sec / floor.rate());
    println!(
        "end-to-end over 3 nodes (2 mutual-TLS transfers): {e2e_rate:.1} documents/s; delivered {}/{}",
        latencies.len(),
        args.e2e_docs
    );
    println!("e2e/accept ratio: {:.3}", e2e_rate / accept.per_sec);
    println!(
        "latency send -> recipient inbox, saturated ({} queued at once): p50 {:.0} ms, p99 {:.0} ms",
        args.e2e_docs,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "latency send -> recipient inbox, not saturated (one at a time, {} documents): p50 {:.0} ms, p99 {:.0} ms",
        unsaturated.len(),
        ms(percentile(&unsaturated, 0.5)),
        ms(percentile(&unsaturated, 0.99))
    );
    Ok(
        if latencies.len() == args.e2e_docs && unsaturated.len() == args.latency_docs {
            0
        } else {
            1
        },
    )
}

/// A measured rate and the process CPU time it cost per item.
struct Rate {
    per_sec: f64,
    cpu_per_item: f64,
}

async fn run_concurrently(
    node: &Arc<Node>,
    envelopes: Vec<Vec<u8>>,
    concurrency: usize,
) -> Result<(), CliError> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let jobs: Vec<_> = envelopes
        .into_iter()
        .map(|bytes| {
            let (node, sem) = (node.clone(), sem.clone());
            async move {
                let _permit = sem.acquire_owned().await;
                node.receive("local", bytes, None).await
            }
        })
        .collect();
    for result in crate::gateway::tasks::as_tasks(jobs).await {
        let receipt = result
            .map_err(|e| fail("task", e))?
            .map_err(|e| fail("receive", e))?;
        if receipt.code != crate::edxml::StatusCode::Received {
            return Err(fail("receive", receipt.reason.unwrap_or_default()));
        }
    }
    Ok(())
}
