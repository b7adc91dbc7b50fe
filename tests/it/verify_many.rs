//! `signgate verify FILE...` and `--in DIR` (CONTRACTS.md §1): JSON Lines in input order,
//! a summary on stderr, the worst verdict as exit code (1 > 2 > 3 > 0), an error line for an
//! unreadable file and exit 66 only when no report was produced.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn signgate(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(crate::common::signgate_bin())
        .arg("verify")
        .arg("--offline")
        .args(args)
        .output()
        .expect("run signgate")
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON value per line"))
        .collect()
}

/// A CMS signature made by `openssl cms -sign` (attached), and its certificate.
fn openssl_signed(dir: &Path, name: &str) -> bool {
    std::fs::write(dir.join("content.txt"), b"many files\n").unwrap();
    let run = |args: &[&str]| {
        Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    run(&[
        "req", "-x509", "-nodes", "-newkey", "rsa:2048", "-subj", "/CN=many", "-keyout", "k.pem",
        "-out", "c.pem", "-days", "30",
    ]) && run(&[
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-in",
        "content.txt",
        "-signer",
        "c.pem",
        "-inkey",
        "k.pem",
        "-outform",
        "DER",
        "-out",
        name,
    ])
}

#[test]
fn many_files_give_json_lines_in_order_and_the_worst_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    if crate::common::require_tool("openssl").is_none() {
        return;
    }
    assert!(openssl_signed(dir, "a-signed.p7m"), "openssl signs");
    let mut altered = std::fs::read(dir.join("a-signed.p7m")).unwrap();
    let at = altered
        .windows(10)
        .position(|w| w == b"many files")
        .unwrap();
    altered[at] ^= 1;
    std::fs::write(dir.join("b-altered.p7m"), &altered).unwrap();
    std::fs::write(dir.join("c-plain.txt"), b"not signed").unwrap();
    let trust = dir.join("c.pem");

    // Files in the order given; an untrusted signature alone is INDETERMINATE (exit 2).
    let signed = dir.join("a-signed.p7m");
    let out = signgate(&[signed.as_os_str(), signed.as_os_str()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&out).len(), 2);

    // Trusted: passed (0); with the altered copy the worst is TOTAL_FAILED (1).
    let mut args = vec![
        "--trust".as_ref(),
        trust.as_os_str(),
        "--in".as_ref(),
        dir.as_os_str(),
    ];
    let out = signgate(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = lines(&out);
    // c.pem, content.txt and k.pem are files of the folder too: no signature.
    let files: Vec<String> = reports
        .iter()
        .map(|r| {
            r["file"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted, "input order");
    assert_eq!(reports[0]["indication"], "TOTAL_PASSED");
    assert_eq!(reports[1]["indication"], "TOTAL_FAILED");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 passed, 1 failed"), "{stderr}");

    // An unreadable file gets an error line; the others still report.
    let missing = dir.join("missing.pdf");
    args = vec![
        "--trust".as_ref(),
        trust.as_os_str(),
        missing.as_os_str(),
        signed.as_os_str(),
    ];
    let out = signgate(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = lines(&out);
    assert_eq!(reports[0]["error"]["code"], "INPUT_MISSING");
    assert_eq!(reports[1]["indication"], "TOTAL_PASSED");

    // Nothing readable at all: 66.
    let out = signgate(&[missing.as_os_str(), missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(66));
}
