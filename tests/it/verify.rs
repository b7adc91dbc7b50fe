//! `signgate verify` against the case → verdict mapping of CONTRACTS.md §3, with a generated
//! demo PKI published live by `signgate pki serve` (OCSP, CRLs) and time-stamps from
//! `signgate tsa serve`. Every JSON report is checked against the schema.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::*;
use serde_json::Value;
use signgate::pki::demo::{Issuer, LeafKey, LeafProfile, LeafSpec};
use time::OffsetDateTime;

/// The live PKI and a TSA of that PKI, shared by the tests of this binary.
struct Env {
    live: LivePki,
    tsa: SigngateServer,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let live = LivePki::start();
        let tsa = SigngateServer::tsa_serve(&live.path("tsa.p12"));
        Env { live, tsa }
    })
}

/// `signgate sign --key P12 --in INPUT --out OUT EXTRA…` (password `demo`), must succeed.
fn sign(p12: &Path, input: &Path, out: &Path, extra: &[&str]) {
    run_ok(
        signgate(["sign", "--key"])
            .arg(p12)
            .arg("--in")
            .arg(input)
            .arg("--out")
            .arg(out)
            .args(extra)
            .env("SIGNGATE_KEY_PASSWORD", "demo"),
    );
}

/// Signs with B-T using the shared TSA.
fn sign_bt(p12: &Path, input: &Path, out: &Path) {
    let url = env().tsa.url.clone();
    sign(p12, input, out, &["--level", "b-t", "--tsa", &url]);
}

/// `signgate verify FILE --trust ROOT EXTRA…` with the live PKI's root.
fn verify(file: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    verify_trusting(file, &env().live.root(), extra)
}

fn verify_trusting(file: &Path, root: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args: Vec<&OsStr> = vec![file.as_os_str(), "--trust".as_ref(), root.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    let (code, report, out) = verify_json(&args);
    assert!(
        !report.is_null(),
        "no JSON report (exit {code:?}): {}",
        stderr_str(&out)
    );
    (code, report)
}

/// Asserts exit code, overall and first-signature verdict.
fn expect(got: &(Option<i32>, Value), exit: i32, indication: &str, sub: Option<&str>) {
    let (code, report) = got;
    let sub = sub.map_or(Value::Null, |s| Value::String(s.into()));
    assert_eq!(*code, Some(exit), "{report:#}");
    assert_eq!(report["indication"], indication, "{report:#}");
    assert_eq!(report["sub_indication"], sub, "{report:#}");
    assert_eq!(
        report["signatures"][0]["indication"], indication,
        "{report:#}"
    );
    assert_eq!(report["signatures"][0]["sub_indication"], sub, "{report:#}");
}

fn content_file(dir: &Path) -> PathBuf {
    let p = dir.join("to-khai.xml");
    std::fs::write(&p, "<HSoThueDTu>số liệu kê khai</HSoThueDTu>\n".repeat(50)).unwrap();
    p
}

/// `openssl cms -sign` (detached, DER) with a PEM key/cert and the issuing CA as extra cert.
fn openssl_cms_sign(key: &Path, cert: &Path, content: &Path, out: &Path) {
    run_ok(
        Command::new("openssl")
            .args([
                "cms", "-sign", "-binary", "-md", "sha256", "-outform", "DER",
            ])
            .arg("-signer")
            .arg(cert)
            .arg("-inkey")
            .arg(key)
            .arg("-certfile")
            .arg(env().live.path("issuing-ca.pem"))
            .arg("-in")
            .arg(content)
            .arg("-out")
            .arg(out),
    );
}

#[test]
fn good_signatures_pass() {
    let e = env();
    let work = tempdir();
    let signer = e.live.path("agency-signer.p12");
    // PAdES B-B
    let pdf = work.path().join("b-b.pdf");
    sign(&signer, &corpus("simple.pdf"), &pdf, &[]);
    let got = verify(&pdf, &[]);
    expect(&got, 0, "TOTAL_PASSED", None);
    let sig = &got.1["signatures"][0];
    assert_eq!(sig["intact"], true);
    assert_eq!(sig["kind"], "signature");
    assert_eq!(got.1["format"], "pdf");
    assert_eq!(sig["trust_list"], "default");
    assert_eq!(sig["modification"], "none");
    let rev = sig["revocation"].as_array().expect("revocation list");
    assert!(
        rev.iter()
            .any(|r| r["status"] == "good" && r["origin"] == "fetched"),
        "{rev:?}"
    );
    // PAdES B-T
    let pdf_t = work.path().join("b-t.pdf");
    sign_bt(&signer, &corpus("simple.pdf"), &pdf_t);
    let got = verify(&pdf_t, &[]);
    expect(&got, 0, "TOTAL_PASSED", None);
    assert_eq!(
        got.1["signatures"][0]["timestamp"]["valid"], true,
        "{:#}",
        got.1
    );
    // CAdES detached, B-B and B-T, RSA and ECDSA
    let content = content_file(work.path());
    for (i, (key, bt)) in [("agency-signer.p12", false), ("agency-signer-ec.p12", true)]
        .into_iter()
        .enumerate()
    {
        let p7s = work.path().join(format!("doc{i}.p7s"));
        if bt {
            sign_bt(&e.live.path(key), &content, &p7s);
        } else {
            sign(&e.live.path(key), &content, &p7s, &[]);
        }
        let c = content.to_str().unwrap();
        let got = verify(&p7s, &["--content", c]);
        expect(&got, 0, "TOTAL_PASSED", None);
        assert_eq!(got.1["format"], "cms");
        assert_eq!(got.1["signatures"][0]["intact"], true);
    }
}

#[test]
fn byte_flipped_in_signed_range_is_hash_failure() {
    let e = env();
    let work = tempdir();
    let pdf = work.path().join("signed.pdf");
    sign(
        &e.live.path("agency-signer.p12"),
        &corpus("simple.pdf"),
        &pdf,
        &[],
    );
    let mut bytes = std::fs::read(&pdf).unwrap();
    // Byte 11 is in the binary comment on line 2 (`%âãÏÓ`): still a readable PDF, but inside
    // the first /ByteRange range.
    assert_eq!(
        bytes[9], b'%',
        "simple.pdf's second line is no longer a comment"
    );
    bytes[11] ^= 0x01;
    let flipped = work.path().join("flipped.pdf");
    std::fs::write(&flipped, &bytes).unwrap();
    let got = verify(&flipped, &[]);
    expect(&got, 1, "TOTAL_FAILED", Some("HASH_FAILURE"));
    assert_eq!(got.1["signatures"][0]["intact"], false);
}

#[test]
fn revoked_without_poe_before_and_after_timestamp() {
    let e = env();
    let work = tempdir();
    // Revoked in 5 s: after the time-stamp we get right now, before the verification below.
    let later_at = OffsetDateTime::now_utc() + time::Duration::seconds(5);
    let later = e.live.issue(
        &LeafSpec::new("Revoked Later Signer").revoked(later_at),
        "revoked-later",
    );
    let later_bt = work.path().join("later-bt.pdf");
    sign_bt(&later.p12_path, &corpus("simple.pdf"), &later_bt);
    assert!(
        OffsetDateTime::now_utc() < later_at,
        "signing took too long for the revoked-later case (machine overloaded?)"
    );
    let later_bb = work.path().join("later-bb.pdf");
    sign(&later.p12_path, &corpus("simple.pdf"), &later_bb, &[]);

    // Revoked an hour ago (checked while the revocation above comes due).
    let early = e.live.issue(
        &LeafSpec::new("Revoked Early Signer")
            .revoked(OffsetDateTime::now_utc() - time::Duration::hours(1)),
        "revoked-early",
    );
    let early_bb = work.path().join("early-bb.pdf");
    let early_bt = work.path().join("early-bt.pdf");
    sign(&early.p12_path, &corpus("simple.pdf"), &early_bb, &[]);
    sign_bt(&early.p12_path, &corpus("simple.pdf"), &early_bt);

    // Revoked, no proof of existence.
    let got = verify(&early_bb, &[]);
    expect(&got, 2, "INDETERMINATE", Some("REVOKED_NO_POE"));
    let rev = got.1["signatures"][0]["revocation"]
        .as_array()
        .unwrap()
        .clone();
    assert!(rev.iter().any(|r| r["status"] == "revoked"), "{rev:?}");
    // Revoked before the time-stamp.
    let got = verify(&early_bt, &[]);
    expect(&got, 1, "TOTAL_FAILED", Some("REVOKED"));

    let wait = later_at - OffsetDateTime::now_utc() + time::Duration::milliseconds(1500);
    if wait.is_positive() {
        std::thread::sleep(Duration::from_millis(wait.whole_milliseconds() as u64));
    }
    // Revoked after the time-stamp: the signature stands.
    let got = verify(&later_bt, &[]);
    expect(&got, 0, "TOTAL_PASSED", None);
    let sig = &got.1["signatures"][0];
    assert_eq!(sig["timestamp"]["valid"], true, "{sig:#}");
    assert!(
        sig["revocation"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "revoked"),
        "the responder must have said revoked: {sig:#}"
    );
    // The same certificate without a time-stamp: no proof the signature is older.
    let got = verify(&later_bb, &[]);
    expect(&got, 2, "INDETERMINATE", Some("REVOKED_NO_POE"));
}

#[test]
fn expired_without_timestamp_is_out_of_bounds() {
    let e = env();
    let work = tempdir();
    let pdf = work.path().join("signed.pdf");
    sign(
        &e.live.path("agency-signer.p12"),
        &corpus("simple.pdf"),
        &pdf,
        &[],
    );
    // Leaves are valid ten years; validate eleven years from now.
    let at = OffsetDateTime::now_utc() + time::Duration::days(11 * 366);
    let at = at
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let got = verify(&pdf, &["--at", &at]);
    expect(&got, 2, "INDETERMINATE", Some("OUT_OF_BOUNDS_NO_POE"));
}

#[test]
fn unknown_root_has_no_chain() {
    let e = env();
    let work = tempdir();
    let pdf = work.path().join("signed.pdf");
    sign(
        &e.live.path("agency-signer.p12"),
        &corpus("simple.pdf"),
        &pdf,
        &[],
    );
    // Trusting another PKI's root (the shipped demo PKI).
    let other_root = repo_root().join("certs/demo/root-ca.pem");
    let got = verify_trusting(&pdf, &other_root, &[]);
    expect(&got, 2, "INDETERMINATE", Some("NO_CERTIFICATE_CHAIN_FOUND"));
    // A leaf issued by an untrusted root, verified with our root.
    let rogue = e.live.issue(
        &LeafSpec::new("Rogue Signer").with_issuer(Issuer::Untrusted),
        "rogue",
    );
    let pdf = work.path().join("rogue.pdf");
    sign(&rogue.p12_path, &corpus("simple.pdf"), &pdf, &[]);
    let got = verify(&pdf, &[]);
    expect(&got, 2, "INDETERMINATE", Some("NO_CERTIFICATE_CHAIN_FOUND"));
}

#[test]
fn responder_unreachable_and_offline_are_try_later() {
    // A PKI of its own: its publication point is stopped during the test.
    let port = free_port();
    let (tmp, _pki) = generate_demo_pki(&format!("http://127.0.0.1:{port}/"));
    let dir = tmp.path();
    let root = dir.join("root-ca.pem");
    let work = tempdir();
    let pdf = work.path().join("signed.pdf");
    sign(
        &dir.join("agency-signer.p12"),
        &corpus("simple.pdf"),
        &pdf,
        &[],
    );

    let server = SigngateServer::pki_serve(dir, port);
    let got = verify_trusting(&pdf, &root, &[]);
    expect(&got, 0, "TOTAL_PASSED", None);
    server.stop();

    let got = verify_trusting(&pdf, &root, &["--fetch-timeout", "3"]);
    expect(&got, 2, "INDETERMINATE", Some("TRY_LATER"));

    // --offline opens no connection: a listener on the AIA/CRL port sees nothing.
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("rebind the PKI port");
    listener.set_nonblocking(true).unwrap();
    let got = verify_trusting(&pdf, &root, &["--offline"]);
    expect(&got, 2, "INDETERMINATE", Some("TRY_LATER"));
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("verify --offline connected to the PKI port: {other:?}"),
    }
    // Control: without --offline the same listener is contacted.
    let got = verify_trusting(&pdf, &root, &["--fetch-timeout", "1"]);
    expect(&got, 2, "INDETERMINATE", Some("TRY_LATER"));
    assert!(
        listener.accept().is_ok(),
        "the online verification should have connected to the PKI port"
    );
}

#[test]
fn pdf_without_signature_is_exit_3() {
    let root = env().live.root();
    let (code, report, out) = verify_json(&[
        corpus("simple.pdf").as_os_str(),
        "--trust".as_ref(),
        root.as_os_str(),
    ]);
    assert_eq!(code, Some(3), "{report:#} {}", stderr_str(&out));
    assert!(
        stderr_str(&out).starts_with("signgate: NO_SIGNATURE: "),
        "{}",
        stderr_str(&out)
    );
}

#[test]
fn pyhanko_signature_passes() {
    if require_tool("pyhanko").is_none() {
        return;
    }
    let e = env();
    let work = tempdir();
    let leaf = e.live.issue(&LeafSpec::new("PyHanko Signer"), "pyhanko");
    let (key, cert) = leaf_pem_files(&leaf, work.path(), "pyhanko");
    let ica = e.live.path("issuing-ca.pem");
    for (name, extra) in [("plain.pdf", &[][..]), ("pades.pdf", &["--use-pades"][..])] {
        let out = work.path().join(name);
        pyhanko_sign(
            &corpus("simple.pdf"),
            &out,
            &key,
            &cert,
            &[&ica],
            "Sig1",
            extra,
        );
        let got = verify(&out, &[]);
        expect(&got, 0, "TOTAL_PASSED", None);
        assert_eq!(got.1["signatures"][0]["intact"], true);
    }
}

#[test]
fn openssl_detached_p7s_passes() {
    let Some(_) = require_tool("openssl") else {
        return;
    };
    let e = env();
    let work = tempdir();
    let content = content_file(work.path());
    let (key, cert) = p12_to_pem(&e.live.path("official.p12"), work.path(), "official");
    let p7s = work.path().join("doc.p7s");
    openssl_cms_sign(&key, &cert, &content, &p7s);
    let c = content.to_str().unwrap();
    let got = verify(&p7s, &["--content", c]);
    expect(&got, 0, "TOTAL_PASSED", None);
    // Changed content: the digest no longer matches.
    let other = work.path().join("other.xml");
    std::fs::write(&other, "<HSoThueDTu>sửa đổi</HSoThueDTu>").unwrap();
    let got = verify(&p7s, &["--content", other.to_str().unwrap()]);
    expect(&got, 1, "TOTAL_FAILED", Some("HASH_FAILURE"));
}

#[test]
fn constraint_failures_of_foreign_signatures() {
    let Some(_) = require_tool("openssl") else {
        return;
    };
    // signgate refuses to sign with these certificates, so openssl makes the signatures.
    let e = env();
    let work = tempdir();
    let content = content_file(work.path());
    let cases = [
        (
            LeafSpec::new("Encipherment Only Signer").with_profile(LeafProfile::NoSigningUsage),
            "CHAIN_CONSTRAINTS_FAILURE",
        ),
        (
            LeafSpec::new("Weak Key Signer").with_key(LeafKey::Rsa(1024)),
            "CRYPTO_CONSTRAINTS_FAILURE_NO_POE",
        ),
        (
            LeafSpec::new("SHA1 Issued Signer").sha1_issued(),
            "CRYPTO_CONSTRAINTS_FAILURE_NO_POE",
        ),
    ];
    for (i, (spec, sub)) in cases.into_iter().enumerate() {
        let leaf = e.live.issue(&spec, &format!("constraint-{i}"));
        let (key, cert) = leaf_pem_files(&leaf, work.path(), &format!("constraint-{i}"));
        let p7s = work.path().join(format!("c{i}.p7s"));
        openssl_cms_sign(&key, &cert, &content, &p7s);
        let got = verify(&p7s, &["--content", content.to_str().unwrap()]);
        expect(&got, 2, "INDETERMINATE", Some(sub));
        assert_eq!(got.1["signatures"][0]["intact"], true, "{:#}", got.1);
    }
}
