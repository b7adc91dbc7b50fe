//! Large PDFs are signed streaming (issue 6, item 4): a generated ~200 MB PDF is signed by
//! `signgate sign` and by `signgate batch-sign` in child processes whose peak resident memory
//! (`/usr/bin/time -f %M`) stays within 64 MiB of the same binary signing a tiny PDF, and the
//! outputs pass `pdfsig` and `signgate verify`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The bound the issue sets: peak RSS at most this much above the baseline (KiB).
const BOUND_KIB: u64 = 64 * 1024;

/// Image side in pixels: 4096 × 4096 RGB is 48 MiB of samples.
const SIDE: usize = 4096;

/// Pages, each drawing its own image: ~192 MiB of image data.
const PAGES: usize = 4;

fn demo(name: &str) -> PathBuf {
    common::repo_root().join("certs/demo").join(name)
}

/// Runs `cmd` under `/usr/bin/time -f %M` and returns its peak resident set size in KiB.
fn peak_rss_kib(cmd: &Command, expect_code: i32) -> u64 {
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("peak-rss-kib=%M")
        .arg(cmd.get_program());
    timed.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let out = common::run_expect(&mut timed, expect_code);
    let stderr = common::stderr_str(&out);
    stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {stderr}"))
}

fn sign_cmd(input: &Path, output: &Path) -> Command {
    let mut c = common::signgate(["sign", "--key"]);
    c.arg(demo("agency-signer.p12"))
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(output)
        .env("SIGNGATE_KEY_PASSWORD", "demo");
    c
}

/// pdfsig: one signature, valid, covering the whole file.
fn assert_pdfsig_valid(pdf: &Path) {
    let nss = common::NssDb::new(&demo("root-ca.pem"));
    let report = common::pdfsig_args(&nss, pdf, &["-nocert"]);
    assert_eq!(report.signatures.len(), 1, "{}", report.raw);
    assert!(report.signatures[0].signature_valid(), "{}", report.raw);
    assert!(report.signatures[0].total_document_signed, "{}", report.raw);
}

/// `signgate verify --offline`: the signature is intact.
fn assert_verifies(pdf: &Path) {
    let mut c = common::signgate(["verify", "--offline", "--trust"]);
    c.arg(demo("root-ca.pem")).arg(pdf);
    let out = common::run(&mut c);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify: {e}: {}", common::stderr_str(&out)));
    let sigs = report["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), 1, "{report}");
    assert_eq!(sigs[0]["intact"], true, "{report}");
}

#[test]
fn a_200_mb_pdf_is_signed_in_flat_memory_and_verifies() {
    if !common::require_tools(&["time", "pdfsig", "certutil"]) {
        return;
    }
    let tmp = common::tempdir();
    let big_dir = tmp.path().join("in");
    std::fs::create_dir_all(&big_dir).unwrap();
    let big = big_dir.join("large.pdf");
    let len = common::write_large_pdf(&big, PAGES, SIDE);
    assert!(len > 200_000_000, "generated {len} bytes");
    let tiny = tmp.path().join("tiny.pdf");
    std::fs::write(&tiny, signgate::batch::sample::pdf(0, 40_000)).unwrap();

    let baseline = peak_rss_kib(&sign_cmd(&tiny, &tmp.path().join("tiny-signed.pdf")), 0);
    let signed = tmp.path().join("large-signed.pdf");
    let peak = peak_rss_kib(&sign_cmd(&big, &signed), 0);
    eprintln!("sign: peak RSS {peak} KiB for {len} bytes, baseline {baseline} KiB");
    assert!(
        peak <= baseline + BOUND_KIB,
        "sign: peak RSS {peak} KiB, baseline {baseline} KiB"
    );
    // The original bytes are the output's prefix.
    let out_len = std::fs::metadata(&signed).unwrap().len();
    assert!(out_len > len && out_len < len + 64 * 1024, "{out_len}");
    assert_pdfsig_valid(&signed);
    assert_verifies(&signed);
    std::fs::remove_file(&signed).unwrap();

    // The batch engine takes the same streaming path.
    let out_dir = tmp.path().join("out");
    let mut batch = common::signgate(["batch-sign", "--key"]);
    batch
        .arg(demo("agency-signer.p12"))
        .arg("--in")
        .arg(&big_dir)
        .arg("--out")
        .arg(&out_dir)
        .arg("--json")
        .env("SIGNGATE_KEY_PASSWORD", "demo");
    let peak = peak_rss_kib(&batch, 0);
    eprintln!("batch-sign: peak RSS {peak} KiB, baseline {baseline} KiB");
    assert!(
        peak <= baseline + BOUND_KIB,
        "batch-sign: peak RSS {peak} KiB, baseline {baseline} KiB"
    );
    let batch_out = out_dir.join("large.pdf");
    assert_pdfsig_valid(&batch_out);
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
}
