//! `signgate bench sign`: batch throughput beside the raw key rate, measured in one run.
//!
//! Prints, for a throwaway RSA-2048 (or, with `--key p256`, ECDSA P-256) key: the in-process raw PKCS#1 v1.5 rate over SHA-256
//! digests on all cores, `openssl speed -multi N rsa2048` for comparison, the batch engine's
//! documents/s on N generated ~40 KB PDFs (PAdES B-B) and on N small XML tax filings
//! (XML-DSig under the tax profile, and CAdES detached for comparison), each with its ratio
//! to the raw rate, and a process-per-document
//! `openssl cms -sign` loop (a shell-scripted gateway).
//!
//! Beside each batch rate it prints the ratio to `openssl speed` measured in the same run,
//! the CPU time per document against the CPU time per raw signature, the kernel's share of
//! the CPU (user and system time from `/proc/self/stat`, what `getrusage` reports), the read
//! and write system calls per document (`/proc/self/io`), and the I/O floor of the same files
//! measured in the same run: every input read and written to a fresh folder on one thread,
//! like `cp`, then `syncfs` (the synced floor) — and the ratio of the batch rate to min(raw
//! rate, I/O floor). Every system call (and the `futex` calls among them, the thread
//! wake-ups) per document is counted by `strace -f -c` over a `signgate batch-sign` child on
//! the same files, since they cannot be counted in-process.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::CliError;
use crate::batch::{sample, BatchOptions, Engine};
use crate::error::ErrorCode;
use crate::keys::KeySource;
use crate::pki::alg::{DigestAlgorithm, SignatureScheme};
use crate::sign::Format;

/// `signgate bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Signing throughput: raw key rate, batch PDFs and XML filings, openssl loops.
    Sign(BenchSignArgs),
    /// The gateway under HTTP load (POST /v1/sign) beside the batch core's rate.
    Http(super::bench_http::BenchHttpArgs),
    /// Routing: envelopes accepted per second by one node, end-to-end over three nodes.
    Route(super::bench_route::BenchRouteArgs),
}

/// Arguments of `signgate bench sign`.
#[derive(Debug, Args)]
pub struct BenchSignArgs {
    /// Documents per batch run.
    #[arg(long, default_value_t = 2000)]
    docs: usize,
    /// Threads for the key (default: number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Size of the generated PDFs in bytes.
    #[arg(long, default_value_t = 40_000)]
    pdf_size: usize,
    /// Seconds for the raw-rate measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Documents for the process-per-document `openssl cms -sign` loop.
    #[arg(long, default_value_t = 200)]
    openssl_docs: usize,
    /// Skip the `openssl` subprocess measurements.
    #[arg(long)]
    no_openssl: bool,
    /// Skip counting system calls with `strace -f -c` (a `signgate batch-sign` child per
    /// batch kind, over the same files; slow, since strace stops every call).
    #[arg(long)]
    no_strace: bool,
    /// Keep the work folder (generated inputs `pdf-in/`, `xml-in/` and the outputs) for
    /// measuring with other tools; its path is printed.
    #[arg(long)]
    keep: bool,
    /// Folder for the generated inputs and the outputs (e.g. /dev/shm for tmpfs; default:
    /// the system temporary folder).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// The throwaway signing key: RSA-2048 (the agencies' usual key) or ECDSA P-256 (about
    /// 13 times faster to sign with, so hashing and I/O dominate).
    #[arg(long, value_enum, default_value_t = BenchKey::Rsa2048)]
    key: BenchKey,
}

/// The key `signgate bench sign` signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchKey {
    /// RSA-2048, PKCS#1 v1.5.
    Rsa2048,
    /// ECDSA on NIST P-256.
    P256,
}

impl BenchKey {
    fn throwaway(self) -> sample::ThrowawayKind {
        match self {
            Self::Rsa2048 => sample::ThrowawayKind::Rsa(2048),
            Self::P256 => sample::ThrowawayKind::P256,
        }
    }

    fn scheme(self) -> SignatureScheme {
        match self {
            Self::Rsa2048 => SignatureScheme::RsaPkcs1(DigestAlgorithm::Sha256),
            Self::P256 => SignatureScheme::Ecdsa(DigestAlgorithm::Sha256),
        }
    }

    /// The `openssl speed` algorithm name and how this report names the key.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Rsa2048 => ("rsa2048", "RSA-2048 PKCS#1 v1.5"),
            Self::P256 => ("ecdsap256", "ECDSA P-256"),
        }
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError {
        code: ErrorCode::Internal,
        message: format!("{what}: {e}"),
    }
}

pub fn run(cmd: BenchCommand) -> Result<u8, CliError> {
    match cmd {
        BenchCommand::Sign(args) => bench_sign(args),
        BenchCommand::Http(args) => super::bench_http::run(args),
        BenchCommand::Route(args) => super::bench_route::run(args),
    }
}

fn bench_sign(args: BenchSignArgs) -> Result<u8, CliError> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let jobs = args.jobs.unwrap_or(cores).max(1);
    println!(
        "machine: {} logical cores, {}",
        cores,
        cpu_model().unwrap_or_else(|| "unknown CPU".into())
    );
    let (p12, key_pem, cert_pem) = sample::throwaway_pkcs12(args.key.throwaway())
        .map_err(|e| internal("key generation", e))?;
    let p12_der = p12.clone();
    let key = crate::keys::Pkcs12Key::from_der(&p12, "bench", "throwaway key")?;
    let key: Arc<dyn KeySource> = Arc::new(key);
    let scheme = args.key.scheme();
    let (speed_name, key_name) = args.key.names();

    let (raw, raw_cpu) = cpu_per_op(|| {
        let started = std::time::Instant::now();
        let rate = sample::raw_sign_rate(
            key.as_ref(),
            scheme,
            jobs,
            Duration::from_secs(args.seconds),
        )?;
        Ok::<_, CliError>((
            rate,
            (rate * started.elapsed().as_secs_f64()).round() as usize,
        ))
    })?;
    println!(
        "raw {key_name} sign (SHA-256 digest), {jobs} threads, in-process: {raw:.0} sig/s, {:.0} us CPU per signature",
        raw_cpu * 1e6
    );
    let openssl_rate = if args.no_openssl {
        None
    } else {
        let rate = openssl_speed(jobs, args.seconds, speed_name);
        match rate {
            Some(rate) => println!("openssl speed -multi {jobs} {speed_name}: {rate:.0} sign/s"),
            None => println!("openssl speed -multi {jobs} {speed_name}: not available"),
        }
        rate
    };

    let mut builder = tempfile::Builder::new();
    builder.prefix("signgate-bench-");
    let work = match &args.dir {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
    .map_err(|e| internal("temp dir", e))?;
    println!(
        "work folder: {}{}",
        work.path().display(),
        if args.keep { " (kept)" } else { "" }
    );
    let pdf_in = work.path().join("pdf-in");
    let xml_in = work.path().join("xml-in");
    for d in [&pdf_in, &xml_in] {
        std::fs::create_dir_all(d).map_err(|e| internal("temp dir", e))?;
    }
    for i in 0..args.docs {
        std::fs::write(
            pdf_in.join(format!("doc-{i:06}.pdf")),
            sample::pdf(i, args.pdf_size),
        )
        .map_err(|e| internal("write input", e))?;
        std::fs::write(
            xml_in.join(format!("tk-{i:06}.xml")),
            sample::tax_declaration(i),
        )
        .map_err(|e| internal("write input", e))?;
    }

    let floors = [
        io_floor(&pdf_in, &work.path().join("floor-pdf"))?,
        io_floor(&xml_in, &work.path().join("floor-xml"))?,
    ];
    let hashing = [sha256sum_seconds(&pdf_in), sha256sum_seconds(&xml_in)];
    for ((label, floor), hash) in ["~40 KB PDFs", "XML filings"]
        .iter()
        .zip(&floors)
        .zip(&hashing)
    {
        println!(
            "I/O floor, {label} (read + write each on one thread like cp, then syncfs): {:.0} docs/s synced, {:.0} docs/s before the sync",
            floor.synced, floor.unsynced
        );
        match hash {
            Some(seconds) => println!(
                "    `sha256sum` of the same files: {:.0} docs/s; hash-and-I/O floor {:.0} docs/s synced, {:.0} before the sync",
                args.docs as f64 / seconds.max(1e-9),
                floor.with_hashing(*seconds, args.docs, true),
                floor.with_hashing(*seconds, args.docs, false),
            ),
            None => println!("    `sha256sum`: not available"),
        }
    }

    let strace = if args.no_strace {
        None
    } else {
        StraceRun::prepare(work.path(), &p12_der, jobs)
    };
    if strace.is_none() && !args.no_strace {
        println!("strace: not available (system calls per document not counted)");
    }

    for (run, (label, dir, format)) in [
        ("PAdES B-B, ~40 KB PDFs", &pdf_in, Format::Pdf),
        ("XML-DSig (tax profile), XML filings", &xml_in, Format::Xml),
        ("CAdES detached, XML filings", &xml_in, Format::Cms),
    ]
    .into_iter()
    .enumerate()
    {
        for durable in [true, false] {
            let out = work.path().join(format!("out-{run}-{durable}"));
            let mut options = BatchOptions::new(OffsetDateTime::now_utc());
            options.format = Some(format);
            if format == Format::Xml {
                options.xml_profile = Some(crate::xml::Profile::Tax);
            }
            options.jobs = jobs;
            options.durable = durable;
            let engine = Engine::new(key.clone(), options)?;
            // The machine may be shared: re-measure the raw rate right before each batch.
            let raw_now =
                sample::raw_sign_rate(key.as_ref(), scheme, jobs, Duration::from_secs(1))?;
            let inputs = list(dir)?;
            let (before, io_before) = (cpu_split(), io_calls());
            let (summary, doc_cpu) = cpu_per_op(|| {
                let summary = engine.run(inputs.into_iter(), &out, &mut |_| {})?;
                let signed = summary.signed;
                Ok::<_, CliError>((summary, signed))
            })?;
            let (after, io_after) = (cpu_split(), io_calls());
            if !summary.failed.is_empty() {
                return Err(internal(
                    "bench batch",
                    format!("{} documents failed", summary.failed.len()),
                ));
            }
            let rate = summary.docs_per_s();
            println!(
                "batch {label} ({} docs, fsync {}): {rate:.0} docs/s = {:.2} x raw ({:.2} x the raw {raw_now:.0} sig/s measured just before); {:.0} us CPU per document = {:.2} x raw by CPU",
                summary.signed,
                if durable { "syncfs per group" } else { "off" },
                rate / raw,
                rate / raw_now,
                doc_cpu * 1e6,
                raw_cpu / doc_cpu
            );
            let which = usize::from(format != Format::Pdf);
            let floor = &floors[which];
            let floor_rate = if durable {
                floor.synced
            } else {
                floor.unsynced
            };
            let hash_floor = hashing[which]
                .map(|seconds| {
                    format!(
                        "{:.2} x the hash-and-I/O floor",
                        rate / floor.with_hashing(seconds, args.docs, durable)
                    )
                })
                .unwrap_or_else(|| "hash-and-I/O floor not measured".into());
            let kernel = match (before, after) {
                (Some((u0, s0)), Some((u1, s1))) if (u1 + s1) > (u0 + s0) => {
                    format!("{:.0} %", 100.0 * (s1 - s0) / ((u1 + s1) - (u0 + s0)))
                }
                _ => "unknown".into(),
            };
            let calls = match (io_before, io_after) {
                (Some(b), Some(a)) => format!(
                    "{:.1}",
                    a.saturating_sub(b) as f64 / summary.signed.max(1) as f64
                ),
                _ => "unknown".into(),
            };
            let openssl = openssl_rate
                .map(|o| format!("{:.2} x openssl speed", rate / o))
                .unwrap_or_else(|| "openssl speed not measured".into());
            println!(
                "    {openssl}; {:.2} x min(raw now, I/O floor {floor_rate:.0} docs/s); {hash_floor}; kernel share of CPU {kernel}; read+write syscalls per document {calls}",
                rate / raw_now.min(floor_rate),
            );
        }
        if let Some(counted) = strace.as_ref().and_then(|c| c.count(dir, format, run)) {
            println!(
                "    `strace -f -c` of `signgate batch-sign` over the same {} files (synced, minus a run over an empty folder): {:.1} system calls per document, {:.2} futex",
                args.docs, counted.calls, counted.futex
            );
        }
    }

    if !args.no_openssl {
        let key_file = work.path().join("key.pem");
        let cert_file = work.path().join("cert.pem");
        std::fs::write(&key_file, &key_pem).map_err(|e| internal("write key", e))?;
        std::fs::write(&cert_file, &cert_pem).map_err(|e| internal("write cert", e))?;
        let n = args.openssl_docs.min(args.docs).max(1);
        match openssl_cms_loop(&pdf_in, n, &key_file, &cert_file, work.path()) {
            Some(rate) => println!(
                "process per document `openssl cms -sign` (sequential, {n} PDFs): {rate:.0} docs/s = {:.2} x raw",
                rate / raw
            ),
            None => println!("openssl cms -sign loop: not available"),
        }
    }
    if args.keep {
        let _ = work.keep();
    }
    Ok(0)
}

/// Counts the system calls of `signgate batch-sign` children under `strace -f -c`: what
/// cannot be counted in-process. Each count is net of a run over an empty folder (start-up:
/// loading the key, OpenSSL's providers).
struct StraceRun {
    work: std::path::PathBuf,
    jobs: usize,
    baseline: StraceCount,
}

/// System calls counted by `strace -c`, per document once divided.
struct StraceCount {
    calls: f64,
    futex: f64,
}

impl StraceRun {
    /// Writes the key for the children and measures the empty run; `None` without strace.
    fn prepare(work: &Path, p12: &[u8], jobs: usize) -> Option<Self> {
        let dir = work.join("strace");
        std::fs::create_dir_all(dir.join("empty")).ok()?;
        std::fs::write(dir.join("key.p12"), p12).ok()?;
        std::fs::write(dir.join("password"), "bench").ok()?;
        let mut run = Self {
            work: dir,
            jobs,
            baseline: StraceCount {
                calls: 0.0,
                futex: 0.0,
            },
        };
        let empty = run.work.join("empty");
        run.baseline = run.trace(&empty, Format::Pdf, "empty")?;
        Some(run)
    }

    /// Calls per document of a batch over every file of `dir`.
    fn count(&self, dir: &Path, format: Format, tag: usize) -> Option<StraceCount> {
        let docs = list(dir).ok()?.len().max(1) as f64;
        let total = self.trace(dir, format, &tag.to_string())?;
        Some(StraceCount {
            calls: (total.calls - self.baseline.calls) / docs,
            futex: (total.futex - self.baseline.futex) / docs,
        })
    }

    fn trace(&self, dir: &Path, format: Format, tag: &str) -> Option<StraceCount> {
        let exe = std::env::current_exe().ok()?;
        let report = self.work.join(format!("report-{tag}.txt"));
        let out = self.work.join(format!("out-{tag}"));
        let mut command = Command::new("strace");
        command
            .args(["-f", "-c", "-o"])
            .arg(&report)
            .arg(exe)
            .arg("batch-sign")
            .arg("--key")
            .arg(self.work.join("key.p12"))
            .arg("--password-file")
            .arg(self.work.join("password"))
            .arg("--in")
            .arg(dir)
            .arg("--out")
            .arg(&out)
            .args(["--format", format.name(), "--jobs", &self.jobs.to_string()])
            .arg("--json");
        if format == Format::Xml {
            command.args(["--profile", "tax"]);
        }
        let status = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        // The outputs stay until the work folder is removed (see `io_floor` for why).
        if !status.success() {
            return None;
        }
        let text = std::fs::read_to_string(&report).ok()?;
        // "% time  seconds  usecs/call  calls  errors syscall" rows; errors may be blank.
        let calls_of = |name: &str| {
            text.lines()
                .map(str::split_whitespace)
                .map(Iterator::collect::<Vec<&str>>)
                .find(|f| f.last() == Some(&name) && f.len() >= 5)
                .and_then(|f| f[3].parse::<f64>().ok())
        };
        Some(StraceCount {
            calls: calls_of("total")?,
            futex: calls_of("futex").unwrap_or(0.0),
        })
    }
}

/// Runs `work`, which returns its result and how many operations it did, and adds the
/// process CPU seconds per operation.
fn cpu_per_op<T>(
    work: impl FnOnce() -> Result<(T, usize), CliError>,
) -> Result<(T, f64), CliError> {
    let before = sample::process_cpu_time();
    let (result, ops) = work()?;
    let cpu = (sample::process_cpu_time() - before).as_secs_f64();
    Ok((result, cpu / ops.max(1) as f64))
}

/// The I/O floor of the files in `dir`, in files per second.
struct IoFloor {
    /// Read and write of every file, then `syncfs`.
    synced: f64,
    /// Read and write of every file only.
    unsynced: f64,
}

impl IoFloor {
    /// The hash-and-I/O floor: the I/O floor's time per document plus `sha256sum`'s
    /// (`hash_seconds` for `docs` documents), as documents per second.
    fn with_hashing(&self, hash_seconds: f64, docs: usize, synced: bool) -> f64 {
        let io_rate = if synced { self.synced } else { self.unsynced };
        let per_doc = 1.0 / io_rate.max(1e-9) + hash_seconds / docs.max(1) as f64;
        1.0 / per_doc
    }
}

/// Seconds `sha256sum` (coreutils, one process per 1,000 files) takes over every file of `dir`.
fn sha256sum_seconds(dir: &Path) -> Option<f64> {
    let inputs = list(dir).ok()?;
    let started = Instant::now();
    for chunk in inputs.chunks(1000) {
        let status = Command::new("sha256sum")
            .args(chunk)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
    }
    Some(started.elapsed().as_secs_f64())
}

/// Copies every file of `dir` into the new folder `to` on one thread (read whole, write
/// whole, like `cp`), then `syncfs` on it. The copies stay until the work folder is removed
/// at the end of the run: deleting thousands of files just before a batch would make the
/// batch pay for them (ext4 without a journal skips inodes freed in the last 30 s when it
/// allocates new ones, reading their inode-table blocks each time: measured here as 40 % of a
/// 16,000-document batch's CPU).
fn io_floor(dir: &Path, to: &Path) -> Result<IoFloor, CliError> {
    let inputs = list(dir)?;
    std::fs::create_dir_all(to).map_err(|e| internal("I/O floor", e))?;
    let started = Instant::now();
    for input in &inputs {
        let bytes = std::fs::read(input).map_err(|e| internal("I/O floor", e))?;
        let name = input.file_name().unwrap_or_default();
        std::fs::write(to.join(name), bytes).map_err(|e| internal("I/O floor", e))?;
    }
    let copied = started.elapsed().as_secs_f64();
    let folder = std::fs::File::open(to).map_err(|e| internal("I/O floor", e))?;
    rustix::fs::syncfs(&folder).map_err(|e| internal("I/O floor", e))?;
    let synced = started.elapsed().as_secs_f64();
    let n = inputs.len() as f64;
    Ok(IoFloor {
        synced: n / synced.max(1e-9),
        unsynced: n / copied.max(1e-9),
    })
}

/// This process's user and system CPU seconds so far (`/proc/self/stat` fields 14 and 15,
/// in the kernel's fixed 100 Hz user ticks: what `getrusage` reports, at 10 ms resolution).
fn cpu_split() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after it follow its closing ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    Some((ticks(11)? / 100.0, ticks(12)? / 100.0))
}

/// Read and write system calls this process made so far (`syscr` + `syscw` of `/proc/self/io`).
fn io_calls() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(value("syscr:")? + value("syscw:")?)
}

fn list(dir: &Path) -> Result<Vec<std::path::PathBuf>, CliError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| internal("list inputs", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    Ok(files)
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// Runs `openssl speed -multi N -seconds S ALG` (`rsa2048` or `ecdsap256`) and reads the
/// sign/s column.
fn openssl_speed(jobs: usize, seconds: u64, algorithm: &str) -> Option<f64> {
    let out = Command::new("openssl")
        .args([
            "speed",
            "-multi",
            &jobs.to_string(),
            "-seconds",
            &seconds.to_string(),
            algorithm,
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rsa 2048 bits 0.000xxx 0.0000yy   sign/s  verify/s"
    // " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  sign/s  verify/s"
    let (prefix, column) = if algorithm == "ecdsap256" {
        ("256 bits ecdsa (nistp256)", 6)
    } else {
        ("rsa 2048 bits", 5)
    };
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with(prefix))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    fields.get(column)?.trim_end_matches('s').parse().ok()
}

/// Signs `n` files of `dir` with one `openssl cms -sign` process each; returns docs/s.
fn openssl_cms_loop(dir: &Path, n: usize, key: &Path, cert: &Path, work: &Path) -> Option<f64> {
    let inputs: Vec<_> = list(dir).ok()?.into_iter().take(n).collect();
    let out = work.join("openssl-out.p7s");
    let started = Instant::now();
    for input in &inputs {
        let status = Command::new("openssl")
            .arg("cms")
            .arg("-sign")
            .arg("-binary")
            .arg("-in")
            .arg(input)
            .arg("-signer")
            .arg(cert)
            .arg("-inkey")
            .arg(key)
            .args(["-outform", "DER", "-out"])
            .arg(&out)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
    }
    Some(inputs.len() as f64 / started.elapsed().as_secs_f64())
}
