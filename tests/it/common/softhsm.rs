//! SoftHSM2 tokens holding demo keys, for the PKCS#11 paths.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::openssl_cli::openssl_filter;
use super::{repo_root, require_file, require_tools, run, stderr_str};

fn tool(cmd: &mut Command) {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", stderr_str(&out));
}

/// A SoftHSM2 token `T` (user PIN 1234) under `tmp/tokens`, holding the demo agency key and
/// certificate as `object=agency`, `id=%01`. Returns the `SOFTHSM2_CONF` file, or `None` when
/// the tools are missing outside CI.
pub fn softhsm_token(tmp: &tempfile::TempDir) -> Option<PathBuf> {
    let module = Path::new(signgate::keys::DEFAULT_MODULE);
    if !require_tools(&["softhsm2-util", "pkcs11-tool"])
        || !require_file(module, "the SoftHSM2 PKCS#11 module (softhsm2)")
    {
        return None;
    }
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    tool(
        Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "T",
                "--pin",
                "1234",
                "--so-pin",
                "5678",
            ])
            .env("SOFTHSM2_CONF", &conf),
    );
    softhsm_import(
        &conf,
        &repo_root().join("certs/demo/agency-signer.p12"),
        "agency",
        "01",
        false,
    );
    Some(conf)
}

/// Imports the key and certificate of a demo PKCS#12 file (password `demo`) into token `T`
/// of `conf` as `object=LABEL`, `id=ID` (hex); `always_auth` marks the private key
/// `CKA_ALWAYS_AUTHENTICATE` (a PIN for each signature).
pub fn softhsm_import(conf: &Path, p12: &Path, label: &str, id: &str, always_auth: bool) {
    let module = signgate::keys::DEFAULT_MODULE;
    let der = std::fs::read(p12).unwrap();
    let dir = conf.parent().unwrap();
    let key_der = dir.join(format!("{label}.key.der"));
    let cert_der = dir.join(format!("{label}.cert.der"));
    let p12_args = ["pkcs12", "-passin", "pass:demo", "-nodes"];
    let pem = openssl_filter(&[&p12_args[..], &["-nocerts"]].concat(), &der);
    std::fs::write(&key_der, openssl_filter(&["pkey", "-outform", "DER"], &pem)).unwrap();
    let pem = openssl_filter(&[&p12_args[..], &["-clcerts", "-nokeys"]].concat(), &der);
    std::fs::write(
        &cert_der,
        openssl_filter(&["x509", "-outform", "DER"], &pem),
    )
    .unwrap();
    for (file, kind) in [(&key_der, "privkey"), (&cert_der, "cert")] {
        let mut c = Command::new("pkcs11-tool");
        c.args([
            "--module",
            module,
            "--token-label",
            "T",
            "--login",
            "--pin",
            "1234",
        ])
        .args([
            "--type",
            kind,
            "--id",
            id,
            "--label",
            label,
            "--write-object",
        ])
        .arg(file)
        .env("SOFTHSM2_CONF", conf);
        if always_auth && kind == "privkey" {
            c.arg("--always-auth");
        }
        tool(&mut c);
    }
}
