//! Detached CAdES (.p7s) signing through the CLI, checked by `openssl cms -verify` and by
//! `signgate verify`.
//!
//! Keys: the shipped demo PKI `certs/demo/` for checks that need no network (openssl, and
//! `signgate verify --offline`); a generated PKI served live by `signgate pki serve` for
//! TOTAL_PASSED.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::common::*;

/// A file of the shipped demo PKI.
fn demo(name: &str) -> PathBuf {
    repo_root().join("certs/demo").join(name)
}

fn demo_root() -> PathBuf {
    demo("root-ca.pem")
}

fn live() -> &'static LivePki {
    static LIVE: OnceLock<LivePki> = OnceLock::new();
    LIVE.get_or_init(LivePki::start)
}

/// `signgate sign ARGS…` with `SIGNGATE_KEY_PASSWORD=password`.
fn sign(args: &[&OsStr], password: &str) -> Output {
    run(signgate(args).env("SIGNGATE_KEY_PASSWORD", password))
}

/// `signgate sign --key KEY --in IN --out OUT EXTRA…` with password `demo`; must succeed.
fn sign_ok(key: &Path, input: &Path, out: &Path, extra: &[&str]) {
    let mut args: Vec<&OsStr> = vec![
        "sign".as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        "--in".as_ref(),
        input.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    let run = sign(&args, "demo");
    assert!(
        run.status.success(),
        "{} {extra:?}: {}",
        key.display(),
        stderr_str(&run)
    );
}

fn cms_print(p7s: &Path) -> String {
    stdout_str(&run(Command::new("openssl")
        .args([
            "cms", "-cmsout", "-print", "-inform", "DER", "-noout", "-in",
        ])
        .arg(p7s)))
}

/// `openssl cms -sign` (detached, DER) with the key and certificate of a PKCS#12 file,
/// adding `issuing_ca` so the chain can be built.
fn openssl_sign(p12: &Path, issuing_ca: &Path, content: &Path, out: &Path, work: &Path) {
    let (key, cert) = p12_to_pem(p12, work, "openssl-signer");
    run_ok(
        Command::new("openssl")
            .args(["cms", "-sign", "-binary", "-outform", "DER", "-signer"])
            .arg(&cert)
            .arg("-inkey")
            .arg(&key)
            .arg("-certfile")
            .arg(issuing_ca)
            .arg("-in")
            .arg(content)
            .arg("-out")
            .arg(out),
    );
}

#[test]
fn p7s_verifies_with_openssl_for_each_algorithm() {
    let Some(_) = require_tool("openssl") else {
        return;
    };
    let work = tempdir();
    let content = work.path().join("filing.xml");
    std::fs::write(&content, "<HSoThueDTu>số liệu</HSoThueDTu>\n".repeat(500)).unwrap();
    let rsa = demo("agency-signer.p12");
    let ec = demo("agency-signer-ec.p12");
    let legacy = legacy_p12(&rsa, work.path(), "legacy");
    let cases: &[(&Path, &[&str])] = &[
        (&rsa, &[]),
        (&rsa, &["--rsa-padding", "pss"]),
        (&rsa, &["--digest", "sha384"]),
        (&rsa, &["--digest", "sha512", "--rsa-padding", "pss"]),
        (&ec, &[]),
        (&ec, &["--digest", "sha384"]),
        (&legacy, &[]),
    ];
    for (i, (key, extra)) in cases.iter().enumerate() {
        let out = work.path().join(format!("out{i}.p7s"));
        sign_ok(key, &content, &out, extra);
        let verify = openssl_cms_verify_output(&out, &content, &demo_root());
        assert!(
            verify.status.success(),
            "{} {extra:?}: openssl rejects: {}",
            key.display(),
            stderr_str(&verify)
        );
        let printed = cms_print(&out);
        assert!(
            printed.contains("pkcs9_signingTime") || printed.contains("signingTime"),
            "{printed}"
        );
        assert!(
            printed.contains("id-smime-aa-signingCertificateV2"),
            "{printed}"
        );
    }
}

#[test]
fn tampered_content_fails_openssl_verification() {
    let Some(_) = require_tool("openssl") else {
        return;
    };
    let work = tempdir();
    let content = work.path().join("doc.bin");
    std::fs::write(&content, b"original content").unwrap();
    let out = work.path().join("doc.p7s");
    sign_ok(&demo("agency-signer.p12"), &content, &out, &[]);
    assert!(openssl_cms_verify(&out, &content, &demo_root()));
    std::fs::write(&content, b"Original content").unwrap();
    assert!(!openssl_cms_verify(&out, &content, &demo_root()));
}

#[test]
fn wrong_password_gives_its_code_and_no_output() {
    let work = tempdir();
    let content = work.path().join("doc.bin");
    std::fs::write(&content, b"x").unwrap();
    let out = work.path().join("doc.p7s");
    let key = demo("agency-signer.p12");
    let run = sign(
        &[
            "sign".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--in".as_ref(),
            content.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        "not-the-password",
    );
    assert_exit(&run, 77, "wrong password");
    let stderr = stderr_str(&run);
    assert!(
        stderr.starts_with("signgate: KEY_PASSWORD_WRONG: "),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"));
    assert!(!out.exists());
}

#[test]
fn missing_input_and_bad_key_file_have_codes() {
    let work = tempdir();
    let out = work.path().join("o.p7s");
    let key = demo("agency-signer.p12");
    let not_a_key = demo_root();
    let run = sign(
        &[
            "sign".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--in".as_ref(),
            "/nonexistent/x".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        "demo",
    );
    assert_exit(&run, 66, "missing input");
    let run = sign(
        &[
            "sign".as_ref(),
            "--key".as_ref(),
            not_a_key.as_os_str(),
            "--in".as_ref(),
            not_a_key.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        "demo",
    );
    assert_exit(&run, 77, "PEM certificate as key");
    assert!(
        stderr_str(&run).contains("KEY_INVALID"),
        "{}",
        stderr_str(&run)
    );
    let run = sign(
        &[
            "sign".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--in".as_ref(),
            not_a_key.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--level".as_ref(),
            "b-t".as_ref(),
        ],
        "demo",
    );
    assert_exit(&run, 64, "b-t without --tsa");
    assert!(!out.exists());
}

/// Our p7s (ECDSA) and openssl's (RSA) over the same content, signed with `p12s`' keys.
fn ours_and_theirs(
    work: &Path,
    ec_p12: &Path,
    rsa_p12: &Path,
    issuing_ca: &Path,
) -> (PathBuf, [PathBuf; 2]) {
    let content = work.join("doc.txt");
    std::fs::write(&content, b"to be signed\n").unwrap();
    let ours = work.join("ours.p7s");
    sign_ok(ec_p12, &content, &ours, &[]);
    let theirs = work.join("theirs.p7s");
    openssl_sign(rsa_p12, issuing_ca, &content, &theirs, work);
    (content, [ours, theirs])
}

fn verify_report(args: &[&Path]) -> (Option<i32>, serde_json::Value) {
    let args: Vec<&OsStr> = args.iter().map(|p| p.as_os_str()).collect();
    let (code, report, _) = verify_json(&args);
    (code, report)
}

#[test]
fn signgate_verifies_its_own_and_openssls_p7s_offline() {
    let Some(_) = require_tool("openssl") else {
        return;
    };
    let work = tempdir();
    let (content, sigs) = ours_and_theirs(
        work.path(),
        &demo("agency-signer-ec.p12"),
        &demo("agency-signer.p12"),
        &demo("issuing-ca.pem"),
    );
    let root = demo_root();
    let (c, t, off) = (
        Path::new("--content"),
        Path::new("--trust"),
        Path::new("--offline"),
    );
    for p7s in &sigs {
        // Offline, with no revocation data in the signature: the status cannot be known.
        let (code, report) = verify_report(&[p7s, c, &content, t, &root, off]);
        assert_eq!(code, Some(2), "{report:#}");
        assert_eq!(report["sub_indication"], "TRY_LATER");
        assert_eq!(report["signatures"][0]["intact"], true);
        assert_eq!(report["signatures"][0]["trust_list"], "default");
        // Without trust anchors the chain cannot be built.
        let (code, report) = verify_report(&[p7s, c, &content, off]);
        assert_eq!(code, Some(2));
        assert_eq!(report["sub_indication"], "NO_CERTIFICATE_CHAIN_FOUND");
    }
    std::fs::write(&content, b"to be signed, changed\n").unwrap();
    let (code, report) = verify_report(&[&sigs[0], c, &content, t, &root, off]);
    assert_eq!(code, Some(1));
    assert_eq!(report["sub_indication"], "HASH_FAILURE");
    assert_eq!(report["signatures"][0]["intact"], false);
    // A file that is no signature at all.
    let (code, _) = verify_report(&[&content]);
    assert_eq!(code, Some(3));
}

#[test]
fn signgate_verifies_its_own_and_openssls_p7s_with_live_revocation() {
    let Some(_) = require_tool("openssl") else {
        return;
    };
    let live = live();
    let work = tempdir();
    let (content, sigs) = ours_and_theirs(
        work.path(),
        &live.path("agency-signer-ec.p12"),
        &live.path("agency-signer.p12"),
        &live.path("issuing-ca.pem"),
    );
    let root = live.root();
    for p7s in &sigs {
        let (code, report) = verify_report(&[
            p7s,
            Path::new("--content"),
            &content,
            Path::new("--trust"),
            &root,
        ]);
        assert_eq!(code, Some(0), "{report:#}");
        assert_eq!(report["indication"], "TOTAL_PASSED");
        assert_eq!(report["sub_indication"], serde_json::Value::Null);
        assert_eq!(report["signatures"][0]["intact"], true);
        let revocation = report["signatures"][0]["revocation"].as_array().unwrap();
        assert!(
            revocation.iter().any(|r| r["status"] == "good"),
            "{report:#}"
        );
    }
}

/// A .p7s by the demo agency key over a small file in `work`; returns `verify`'s arguments
/// for it (content, demo root, offline) followed by `extra`.
fn offline_verify_args(work: &Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let content = work.join("doc.txt");
    std::fs::write(&content, b"policy\n").unwrap();
    let p7s = work.join("doc.p7s");
    sign_ok(&demo("agency-signer.p12"), &content, &p7s, &[]);
    let mut args: Vec<std::ffi::OsString> = vec![
        p7s.into(),
        "--content".into(),
        content.into(),
        "--trust".into(),
        demo_root().into(),
        "--offline".into(),
    ];
    args.extend(extra.iter().map(Into::into));
    args
}

#[test]
fn the_validation_policy_is_applied() {
    let work = tempdir();
    // Default policy: offline with nothing embedded, the status is unknown → TRY_LATER.
    let (code, report, _) = verify_json(&offline_verify_args(work.path(), &[]));
    assert_eq!(code, Some(2), "{report:#}");
    assert_eq!(report["sub_indication"], "TRY_LATER");
    // Tolerating an unknown status passes, with the reason kept as a note.
    let (code, report, _) = verify_json(&offline_verify_args(
        work.path(),
        &["--allow-unknown-revocation"],
    ));
    assert_eq!(code, Some(0), "{report:#}");
    let notes = report["signatures"][0]["notes"].to_string();
    assert!(notes.contains("revocation status"), "{notes}");
    // A stricter key-size floor than the demo's RSA-2048 keys.
    let strict = ["--allow-unknown-revocation", "--min-rsa-bits", "4096"];
    let (code, report, _) = verify_json(&offline_verify_args(work.path(), &strict));
    assert_eq!(code, Some(2), "{report:#}");
    assert_eq!(
        report["sub_indication"],
        "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"
    );
}

#[test]
fn a_certificate_not_yet_valid_at_the_validation_time_is_out_of_bounds() {
    let work = tempdir();
    let early = ["--allow-unknown-revocation", "--at", "2001-01-01T00:00:00Z"];
    let (code, report, _) = verify_json(&offline_verify_args(work.path(), &early));
    assert_eq!(code, Some(2), "{report:#}");
    assert_eq!(
        report["sub_indication"], "OUT_OF_BOUNDS_NO_POE",
        "{report:#}"
    );
}
