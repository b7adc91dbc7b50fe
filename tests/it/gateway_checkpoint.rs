//! Audit checkpoints must be this gateway's own: `signgate audit verify --checkpoint` refuses
//! a checkpoint signed by a certificate that does not chain to the trust anchors, and one
//! signed by a trusted certificate that is not the receipt key's (issue 13: both passed
//! before, since only TOTAL_FAILED was refused).

use std::path::Path;

use crate::common::*;
use base64::Engine as _;
use openssl::asn1::Asn1Time;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509NameBuilder, X509};
use serde_json::Value;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A demo gateway's data folder with some audit records and a genuine checkpoint.
struct DemoData {
    dir: tempfile::TempDir,
}

impl DemoData {
    fn new() -> Self {
        let data = Self { dir: tempdir() };
        // Run from an unrelated folder: the demo gateway needs nothing from the working directory.
        run_ok(&mut data.admin(&["client", "add", "--agency", "demo", "--name", "portal"]));
        let out = data.genuine().display().to_string();
        run_ok(&mut data.admin(&["audit", "checkpoint", "--out", &out]));
        data
    }

    fn admin(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = signgate(args);
        cmd.arg("--data")
            .arg(self.dir.path().join("data"))
            .current_dir(self.dir.path())
            .env_remove("SIGNGATE_DATABASE_URL")
            .env_remove("SIGNGATE_KEY_PASSWORD");
        cmd
    }

    fn genuine(&self) -> std::path::PathBuf {
        self.dir.path().join("checkpoint.json")
    }

    /// The genuine checkpoint's canonical JSON (what a forger re-signs).
    fn canonical(&self) -> String {
        let file: Value =
            serde_json::from_slice(&std::fs::read(self.genuine()).expect("read")).expect("json");
        file["checkpoint"].as_str().expect("checkpoint").to_string()
    }

    /// Writes a checkpoint file with `canonical` and the detached CMS `signature`.
    fn forged(&self, name: &str, canonical: &str, signature: &[u8]) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        let file = serde_json::json!({"checkpoint": canonical, "signature": B64.encode(signature)});
        std::fs::write(&path, file.to_string()).expect("write");
        path
    }

    fn verify(&self, checkpoint: &Path) -> std::process::Output {
        let checkpoint = checkpoint.display().to_string();
        run(&mut self.admin(&["audit", "verify", "--checkpoint", &checkpoint]))
    }
}

/// A detached CMS signature over `content` by `cert`/`key`, made by OpenSSL.
fn cms_sign(cert: &X509, key: &PKey<openssl::pkey::Private>, content: &[u8]) -> Vec<u8> {
    let flags = CMSOptions::DETACHED | CMSOptions::BINARY;
    CmsContentInfo::sign(Some(cert), Some(key), None, Some(content), flags)
        .expect("cms sign")
        .to_der()
        .expect("der")
}

/// `audit verify` refused the checkpoint: not exit 0, and the reason on stderr.
fn assert_refused(out: &std::process::Output, what: &str) {
    assert_ne!(
        out.status.code(),
        Some(0),
        "{what} passed: {}",
        stdout_str(out)
    );
    let err = stderr_str(out);
    assert!(err.contains("does not verify"), "{what}: {err}");
}

#[test]
fn a_genuine_checkpoint_verifies() {
    let data = DemoData::new();
    let out = data.verify(&data.genuine());
    assert_exit(&out, 0, "audit verify with the genuine checkpoint");
    assert!(
        stdout_str(&out).contains("checkpoint matches"),
        "{}",
        stdout_str(&out)
    );
}

#[test]
fn a_checkpoint_signed_by_an_untrusted_certificate_is_refused() {
    let data = DemoData::new();
    // A self-signed certificate that names itself like the demo agency but chains to nothing
    // the gateway trusts.
    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "UBND tinh Demo")
        .expect("cn");
    let name = name.build();
    let mut cert = X509::builder().expect("builder");
    cert.set_version(2).expect("version");
    cert.set_subject_name(&name).expect("subject");
    cert.set_issuer_name(&name).expect("issuer");
    cert.set_pubkey(&key).expect("pubkey");
    cert.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("nb");
    cert.set_not_after(&Asn1Time::days_from_now(365).expect("time"))
        .expect("na");
    cert.sign(&key, MessageDigest::sha256()).expect("sign");
    let cert = cert.build();
    let canonical = data.canonical();
    let forged = data.forged(
        "untrusted.json",
        &canonical,
        &cms_sign(&cert, &key, canonical.as_bytes()),
    );
    assert_refused(&data.verify(&forged), "an untrusted checkpoint");
}

#[test]
fn a_checkpoint_signed_by_another_trusted_key_is_refused() {
    let data = DemoData::new();
    // The demo official's certificate chains to the trusted demo root, but it is not the
    // receipt key (the demo agency's).
    let p12 = openssl::pkcs12::Pkcs12::from_der(
        &std::fs::read(repo_root().join("certs/demo/official.p12")).expect("official.p12"),
    )
    .expect("pkcs12")
    .parse2("demo")
    .expect("open");
    let (cert, key) = (p12.cert.expect("cert"), p12.pkey.expect("key"));
    let canonical = data.canonical();
    let forged = data.forged(
        "other-key.json",
        &canonical,
        &cms_sign(&cert, &key, canonical.as_bytes()),
    );
    assert_refused(&data.verify(&forged), "another key's checkpoint");
}
