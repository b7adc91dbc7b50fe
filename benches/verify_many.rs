//! `cargo bench --bench verify_many`: many third-party PDFs verified by one
//! `signgate verify` run, beside the two references of the verification issue in the same run:
//! poppler's `pdfsig` run once per file, and pyHanko validating the same files in one Python
//! process.
//!
//! Files: the PDFs of the development corpus (`../shared/corpus`, or `SIGNGATE_CORPUS`) whose
//! signatures are all intact (`expect_intact` = `yes`), `SIGNGATE_BENCH_COPIES` times over
//! (default 3), read from the page cache. Every side uses one process and one core at a time:
//! `signgate verify --offline --jobs 1 FILE...` (every signature: byte ranges, CMS signature,
//! time-stamps, path building, embedded revocation data, the revision analysis; no trust
//! anchors, no network), `pdfsig -nocert FILE` per file (byte ranges and CMS signature only)
//! and `pdfsig -no-ocsp FILE` per file (the same plus NSS's certificate validation against its
//! default database, no network), then pyHanko (`tests/support/pyhanko_bench_validate.py`,
//! no trust roots, no fetching). The sides alternate within each of `SIGNGATE_BENCH_ROUNDS`
//! rounds (default 5; the order flips every round); pyHanko runs in the first
//! `SIGNGATE_BENCH_PYHANKO_ROUNDS` rounds (default 1, it takes tens of seconds). Printed per
//! round and as median with min–max: wall clock, and CPU time (user + system) of the child
//! processes; the ratios are of median wall clocks, and per round. Under
//! `cargo test --all-targets` (no `--bench`) it returns at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One side's cost in one round.
#[derive(Clone, Copy, Default)]
struct Cost {
    wall: Duration,
    cpu: Duration,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let env_usize = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let copies = env_usize("SIGNGATE_BENCH_COPIES", 3).max(1);
    let rounds = env_usize("SIGNGATE_BENCH_ROUNDS", 5).max(1);
    let pyhanko_rounds = env_usize("SIGNGATE_BENCH_PYHANKO_ROUNDS", 1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = std::env::var("SIGNGATE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("../shared/corpus"));
    let Ok(manifest) = std::fs::read_to_string(corpus.join("manifest.tsv")) else {
        println!("no corpus at {} (set SIGNGATE_CORPUS)", corpus.display());
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let files = copy_files(&corpus, &manifest, dir.path(), copies);
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    let has_pdfsig = Command::new("pdfsig").arg("-v").output().is_ok();
    let python = std::env::var("SIGNGATE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv"))
        .join("bin/python");
    println!(
        "{} files ({} corpus PDFs with every signature intact, {copies} times over), {:.1} MB; \
         {rounds} rounds; load average at start {}",
        files.len(),
        files.len() / copies,
        bytes as f64 / 1e6,
        load_average()
    );

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_signgate"));
    let signgate = || {
        let (out, cost) = measure(|| {
            Command::new(&bin)
                .args(["verify", "--offline", "--jobs", "1"])
                .args(&files)
                .stderr(Stdio::null())
                .output()
                .expect("run signgate verify")
        });
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(lines, files.len(), "one JSON line per file");
        cost
    };
    let pdfsig = |flag: &str| {
        let (valid, cost) = measure(|| {
            let mut valid = 0;
            for f in &files {
                let out = Command::new("pdfsig")
                    .arg(flag)
                    .arg(f)
                    .stderr(Stdio::null())
                    .output()
                    .expect("run pdfsig");
                valid += String::from_utf8_lossy(&out.stdout)
                    .matches("Signature is Valid")
                    .count();
            }
            valid
        });
        assert!(valid > 0, "pdfsig {flag} found no valid signature");
        cost
    };

    let mut ours = Vec::new();
    let mut nocert = Vec::new();
    let mut no_ocsp = Vec::new();
    let mut pyhanko = Vec::new();
    for round in 0..rounds {
        // Alternate who goes first, so neither side always meets a colder or busier machine.
        if round % 2 == 0 {
            ours.push(signgate());
        }
        if has_pdfsig {
            nocert.push(pdfsig("-nocert"));
            no_ocsp.push(pdfsig("-no-ocsp"));
        }
        if round % 2 == 1 {
            ours.push(signgate());
        }
        if round < pyhanko_rounds && python.exists() {
            pyhanko.extend(pyhanko_cost(&root, &python, &files));
        }
        let show = |name: &str, v: &[Cost]| match v.last() {
            Some(c) => format!("{name} {:.2} s ({:.2} s CPU)", secs(c.wall), secs(c.cpu)),
            None => String::new(),
        };
        println!(
            "round {}: {}; {}; {}{}",
            round + 1,
            show("signgate", &ours),
            show("pdfsig -nocert", &nocert),
            show("pdfsig -no-ocsp", &no_ocsp),
            if round < pyhanko.len() {
                format!("; {}", show("pyHanko (wall in-process)", &pyhanko))
            } else {
                String::new()
            }
        );
    }
    println!("load average at end {}", load_average());
    summarize("signgate verify --offline --jobs 1 (1 process)", &ours);
    for (name, side) in [
        ("pdfsig -nocert (1 process per file)", &nocert),
        ("pdfsig -no-ocsp (1 process per file)", &no_ocsp),
        ("pyHanko validate_pdf_signature (1 process)", &pyhanko),
    ] {
        if side.is_empty() {
            println!("{name}: not run (tool or venv missing)");
            continue;
        }
        summarize(name, side);
        let per_round: Vec<f64> = ours
            .iter()
            .zip(side.iter())
            .map(|(o, s)| secs(s.wall) / secs(o.wall))
            .collect();
        let (lo, hi) = min_max(&per_round);
        println!(
            "  ratio {name} / signgate, median wall clocks: {:.1}x (per round {lo:.1}-{hi:.1}x); \
             median CPU: {:.1}x",
            median(side, |c| c.wall) / median(&ours, |c| c.wall),
            median(side, |c| c.cpu) / median(&ours, |c| c.cpu),
        );
    }
}

/// Copies the `yes` PDFs of the corpus `copies` times into `dir`, in manifest order.
fn copy_files(corpus: &Path, manifest: &str, dir: &Path, copies: usize) -> Vec<PathBuf> {
    let rows: Vec<&str> = manifest
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (cols.len() > 5 && cols[2] == "pdf" && cols[5] == "yes").then_some(cols[0])
        })
        .collect();
    let mut files = Vec::new();
    for copy in 0..copies {
        for row in &rows {
            let name = Path::new(row).file_name().unwrap().to_string_lossy();
            let to = dir.join(format!("{copy}-{name}"));
            std::fs::copy(corpus.join(row), &to).expect("copy corpus file");
            files.push(to);
        }
    }
    files
}

/// Runs `work`, timing the wall clock and the CPU time of the children it waited for.
fn measure<T>(work: impl FnOnce() -> T) -> (T, Cost) {
    let cpu_before = children_cpu();
    let start = Instant::now();
    let out = work();
    let wall = start.elapsed();
    let cpu = children_cpu().saturating_sub(cpu_before);
    (out, Cost { wall, cpu })
}

/// User + system time of the waited-for children of this process (`/proc/self/stat` fields
/// `cutime` and `cstime`, in clock ticks of 10 ms).
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // `rest` starts at field 3 (state); cutime and cstime are fields 16 and 17.
    let ticks = fields.get(13).copied().unwrap_or(0) + fields.get(14).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// pyHanko's cost: the wall clock it measures around its validation loop (imports and start-up
/// left out, in its favour) and the CPU time of its whole process.
fn pyhanko_cost(root: &Path, python: &Path, files: &[PathBuf]) -> Option<Cost> {
    let (out, cost) = measure(|| {
        Command::new(python)
            .arg(root.join("tests/support/pyhanko_bench_validate.py"))
            .arg("-")
            .args(files)
            .stderr(Stdio::null())
            .output()
            .ok()
    });
    let json: serde_json::Value = serde_json::from_slice(&out?.stdout).ok()?;
    println!(
        "pyHanko: {} files, {} raised an exception",
        json["files"], json["errors"]
    );
    Some(Cost {
        wall: Duration::from_secs_f64(json["elapsed_s"].as_f64()?),
        cpu: cost.cpu,
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn median(costs: &[Cost], of: impl Fn(&Cost) -> Duration) -> f64 {
    let mut v: Vec<f64> = costs.iter().map(|c| secs(of(c))).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

fn summarize(name: &str, costs: &[Cost]) {
    let walls: Vec<f64> = costs.iter().map(|c| secs(c.wall)).collect();
    let cpus: Vec<f64> = costs.iter().map(|c| secs(c.cpu)).collect();
    let (wlo, whi) = min_max(&walls);
    let (clo, chi) = min_max(&cpus);
    println!(
        "{name}: wall median {:.2} s ({wlo:.2}-{whi:.2}), CPU median {:.2} s ({clo:.2}-{chi:.2}) over {} rounds",
        median(costs, |c| c.wall),
        median(costs, |c| c.cpu),
        costs.len()
    );
}
