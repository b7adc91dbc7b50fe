//! Every fuzz target's function (`fuzz/src/lib.rs`) over its committed seeds in
//! `fuzz/seeds/TARGET/` and the regression inputs in `fuzz/regressions/TARGET/`, with the stable
//! toolchain: what CI runs in place of cargo-fuzz (SECURITY.md, "Fuzzing"). A panic is a
//! finding.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod bodies;

use std::path::Path;

use crate::common::repo_root;

/// The inputs of `target` under `fuzz/seeds` and `fuzz/regressions`.
fn inputs(target: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for folder in ["seeds", "regressions"] {
        let dir = repo_root().join("fuzz").join(folder).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        found.extend(entries.map(|e| e.expect("directory entry").path()));
    }
    found.sort();
    found
}

fn run(target: &str) {
    let inputs = inputs(target);
    assert!(
        !inputs.is_empty(),
        "no seeds for {target} in fuzz/seeds/{target}/"
    );
    for path in &inputs {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bodies::run(target, &data), "unknown target {target}");
        // Truncations and a flipped byte: cheap variations of each seed.
        for cut in [data.len() / 2, data.len().saturating_sub(1)] {
            bodies::run(target, &data[..cut]);
        }
        let mut flipped = data.clone();
        if let Some(b) = flipped.get_mut(data.len() / 3) {
            *b ^= 0x5a;
        }
        bodies::run(target, &flipped);
    }
}

#[test]
fn every_target_has_seeds_and_a_cargo_fuzz_binary() {
    let manifest = std::fs::read_to_string(repo_root().join("fuzz/Cargo.toml")).unwrap();
    for target in bodies::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no [[bin]] {target}"
        );
        assert!(
            Path::new(&repo_root().join(format!("fuzz/fuzz_targets/{target}.rs"))).is_file(),
            "fuzz/fuzz_targets/{target}.rs is missing"
        );
        assert!(!inputs(target).is_empty(), "no seeds for {target}");
    }
}

#[test]
fn pdf_verify_seeds() {
    run("pdf_verify");
}

#[test]
fn pdf_prepare_seeds() {
    run("pdf_prepare");
}

#[test]
fn cms_tsp_seeds() {
    run("cms_tsp");
}

#[test]
fn x509_revocation_seeds() {
    run("x509_revocation");
}

#[test]
fn revocation_signed_seeds() {
    run("revocation_signed");
}

#[test]
fn xml_c14n_seeds() {
    run("xml_c14n");
}

#[test]
fn edxml_zip_seeds() {
    run("edxml_zip");
}

#[test]
fn http_api_seeds() {
    run("http_api");
}

#[test]
fn revocation_signed_reaches_past_the_signature_check() {
    use signgate::verify::revocation::Status;
    let seed = |name: &str| {
        std::fs::read(repo_root().join("fuzz/seeds/revocation_signed").join(name)).unwrap()
    };
    // The re-signed OCSP response and CRL are accepted: their status decides (good).
    assert_eq!(
        bodies::revocation_signed_status(&seed("demo-good.ocsp")),
        Some(Status::Good)
    );
    assert_eq!(
        bodies::revocation_signed_status(&seed("pkits-trust-anchor.crl")),
        Some(Status::Good)
    );
    assert_eq!(bodies::revocation_signed_status(b"not DER"), None);
}

/// Fuzzing findings of the "slow input" kind (`fuzz/regressions/TARGET/slow-*`: an input that
/// hit libFuzzer's timeout) stay cheap: `signgate verify --offline` on each uses at most
/// [`SLOW_INPUT_CPU_BUDGET`] of CPU (user + system, `/usr/bin/time`; CPU rather than wall
/// time, so a busy machine does not fail it). `slow-0babef16`, a 256 KiB mutated PDF with
/// thousands of changed objects and a large DSS, took 1.6 s of CPU in this (debug) build when
/// the DSS was walked again, cloning it, for every changed object.
#[test]
fn pdf_verify_slow_findings_stay_within_their_cpu_budget() {
    let Some(time) = crate::common::require_tool("time") else {
        return;
    };
    let slow: Vec<_> = inputs("pdf_verify")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("slow-")
        })
        .collect();
    assert!(
        !slow.is_empty(),
        "no fuzz/regressions/pdf_verify/slow-* input"
    );
    for input in slow {
        let out = std::process::Command::new(&time)
            .args(["-f", "cpu-seconds=%U %S"])
            .arg(crate::common::signgate_bin())
            .args(["verify", "--offline"])
            .arg(&input)
            .output()
            .expect("run /usr/bin/time signgate verify");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let cpu: f64 = stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("cpu-seconds="))
            .unwrap_or_else(|| panic!("no CPU time in: {stderr}"))
            .split_whitespace()
            .map(|v| v.parse::<f64>().expect("seconds"))
            .sum();
        // A report, not a crash: exit 1 (failed) or 2 (indeterminate) with JSON on stdout.
        assert!(
            matches!(out.status.code(), Some(1..=3)) && out.stdout.starts_with(b"{"),
            "{}: {:?}\n{stderr}",
            input.display(),
            out.status
        );
        assert!(
            cpu <= SLOW_INPUT_CPU_BUDGET,
            "{}: {cpu:.2} s of CPU (budget {SLOW_INPUT_CPU_BUDGET} s)",
            input.display()
        );
    }
}

/// CPU seconds a slow-input finding may take in the test build.
const SLOW_INPUT_CPU_BUDGET: f64 = 0.5;
