//! The openssl command line: `openssl cms -verify` as an oracle, PKCS#12 conversions.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{run, run_ok};

/// Verifies a detached DER CMS signature over `content`, trusting `root_pem`
/// (`openssl cms -verify -binary -inform DER -purpose any`). True when openssl says OK.
pub fn openssl_cms_verify(p7s: &Path, content: &Path, root_pem: &Path) -> bool {
    openssl_cms_verify_output(p7s, content, root_pem)
        .status
        .success()
}

/// [`openssl_cms_verify`] returning the full output (stderr says why it failed).
pub fn openssl_cms_verify_output(p7s: &Path, content: &Path, root_pem: &Path) -> Output {
    run(Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(p7s)
        .arg("-content")
        .arg(content)
        .arg("-CAfile")
        .arg(root_pem)
        .args(["-purpose", "any", "-out", "/dev/null"]))
}

/// Extracts key and certificate of a PKCS#12 file (password `demo`) as PEM into `dir`
/// with the openssl CLI; returns (key, cert).
pub fn p12_to_pem(p12: &Path, dir: &Path, file: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{file}.key"));
    let cert = dir.join(format!("{file}.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "pkcs12",
                "-nodes",
                "-nocerts",
                "-passin",
                "pass:demo",
                "-in",
            ])
            .arg(p12)
            .arg("-out")
            .arg(&key),
    );
    run_ok(
        Command::new("openssl")
            .args([
                "pkcs12",
                "-clcerts",
                "-nokeys",
                "-passin",
                "pass:demo",
                "-in",
            ])
            .arg(p12)
            .arg("-out")
            .arg(&cert),
    );
    (key, cert)
}

/// Re-exports a PKCS#12 file (password `demo`) with OpenSSL's legacy RC2/3DES encryption
/// (`openssl pkcs12 -export -legacy`), as old Windows and token tools write them; the CA
/// certificates of the original stay in the file.
pub fn legacy_p12(p12: &Path, dir: &Path, file: &str) -> PathBuf {
    let (key, cert) = p12_to_pem(p12, dir, &format!("{file}-src"));
    let chain = dir.join(format!("{file}-src-chain.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "pkcs12",
                "-cacerts",
                "-nokeys",
                "-passin",
                "pass:demo",
                "-in",
            ])
            .arg(p12)
            .arg("-out")
            .arg(&chain),
    );
    let out = dir.join(format!("{file}.p12"));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "pkcs12",
        "-export",
        "-legacy",
        "-passout",
        "pass:demo",
        "-inkey",
    ])
    .arg(&key)
    .arg("-in")
    .arg(&cert)
    .arg("-out")
    .arg(&out);
    if std::fs::metadata(&chain)
        .map(|m| m.len() > 0)
        .unwrap_or(false)
    {
        cmd.arg("-certfile").arg(&chain);
    }
    run_ok(&mut cmd);
    out
}

/// Runs `openssl ARGS` with `input` on stdin and returns its stdout.
pub(crate) fn openssl_filter(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?}");
    out.stdout
}
