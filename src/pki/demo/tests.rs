use std::process::{Command, Stdio};

use super::*;
use crate::test_support::require_tool;

/// Fast options for tests: smaller CA keys, same structure.
fn fast(base_url: &str) -> DemoOptions {
    DemoOptions {
        base_url: base_url.into(),
        root_key_bits: 2048,
        issuing_key_bits: 2048,
    }
}

fn run_openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn p12_cert(path: &Path) -> X509 {
    let der = std::fs::read(path).unwrap();
    let parsed = Pkcs12::from_der(&der)
        .unwrap()
        .parse2(DEMO_PASSWORD)
        .unwrap();
    assert_eq!(
        parsed.ca.as_ref().map(|c| c.len()),
        Some(1),
        "{}: chain",
        path.display()
    );
    parsed.cert.unwrap()
}

fn write_pem(dir: &Path, name: &str, cert: &X509) -> String {
    let path = dir.join(name);
    std::fs::write(&path, cert.to_pem().unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

const P12S: [&str; 10] = [
    "agency-signer.p12",
    "agency-signer-ec.p12",
    "official.p12",
    "citizen.p12",
    "organization.p12",
    "tsa.p12",
    "ocsp.p12",
    "node-province.p12",
    "node-district.p12",
    "node-commune.p12",
];

#[test]
fn generates_exactly_the_contract_files_and_they_verify() {
    if !require_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    generate(&out, &fast(DEFAULT_BASE_URL)).unwrap();

    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = P12S.iter().map(|s| s.to_string()).collect();
    expected.extend(
        [
            "root-ca.pem",
            "issuing-ca.pem",
            "root-ca.crl",
            "issuing-ca.crl",
            "index.txt",
            "tsa.pem",
            "tsa.key",
            "ocsp.pem",
            "ocsp.key",
        ]
        .map(String::from),
    );
    expected.sort();
    assert_eq!(names, expected);

    let root = out.join("root-ca.pem");
    let issuing = out.join("issuing-ca.pem");
    let scratch = dir.path();
    for p12 in P12S {
        let path = out.join(p12);
        let (ok, text) = run_openssl(&[
            "pkcs12",
            "-in",
            path.to_str().unwrap(),
            "-passin",
            "pass:demo",
            "-info",
            "-noout",
        ]);
        assert!(ok, "{p12}: {text}");
        assert!(text.contains("AES-256-CBC"), "{p12} not AES-256: {text}");
        assert!(text.contains("PBKDF2"), "{p12} not PBKDF2: {text}");

        let leaf = write_pem(scratch, "leaf.pem", &p12_cert(&path));
        let (ok, text) = run_openssl(&[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            issuing.to_str().unwrap(),
            &leaf,
        ]);
        assert!(ok && text.contains(": OK"), "{p12}: {text}");
    }

    // Both CRLs are DER, signed by their CA, with a next update ten years out.
    for (crl, ca) in [("issuing-ca.crl", &issuing), ("root-ca.crl", &root)] {
        let path = out.join(crl);
        let (ok, text) = run_openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            path.to_str().unwrap(),
            "-CAfile",
            ca.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        assert!(ok, "{crl}: {text}");
        assert!(text.contains("verify OK"), "{crl}: {text}");
        assert!(text.contains("X509v3 CRL Number"), "{crl}: {text}");
        assert!(
            text.contains("X509v3 Authority Key Identifier"),
            "{crl}: {text}"
        );
        assert!(text.contains("No Revoked Certificates"), "{crl}: {text}");
    }

    // index.txt lists every leaf as valid.
    let index = std::fs::read_to_string(out.join("index.txt")).unwrap();
    assert_eq!(index.lines().count(), P12S.len());
    assert!(
        index
            .lines()
            .all(|l| l.starts_with("V\t") && l.split('\t').count() == 6),
        "{index}"
    );
}

#[test]
fn leaves_carry_the_contract_extensions() {
    if !require_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = "http://127.0.0.1:9999/";
    generate(dir.path(), &fast(base)).unwrap();
    let text_of = |p12: &str| {
        let pem = write_pem(dir.path(), "x.pem", &p12_cert(&dir.path().join(p12)));
        let (ok, text) = run_openssl(&["x509", "-in", &pem, "-noout", "-text", "-nameopt", "utf8"]);
        assert!(ok, "{text}");
        text
    };

    let tsa = text_of("tsa.p12");
    assert!(
        tsa.contains("X509v3 Extended Key Usage: critical\n                Time Stamping\n"),
        "{tsa}"
    );
    let ocsp = text_of("ocsp.p12");
    assert!(ocsp.contains("OCSP Signing"), "{ocsp}");
    assert!(ocsp.contains("OCSP No Check"), "{ocsp}");
    let node = text_of("node-district.p12");
    assert!(
        node.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{node}"
    );
    assert!(
        node.contains("IP Address:127.0.0.1") && node.contains("DNS:localhost"),
        "{node}"
    );

    let agency = text_of("agency-signer.p12");
    assert!(
        agency.contains("O=Ủy ban nhân dân tỉnh Bắc Ninh"),
        "{agency}"
    );
    assert!(agency.contains("CN=UBND tỉnh Bắc Ninh"), "{agency}");
    assert!(
        agency.contains("Digital Signature, Non Repudiation"),
        "{agency}"
    );
    assert!(
        agency.contains(&format!("URI:{base}crl/issuing-ca.crl")),
        "{agency}"
    );
    assert!(
        agency.contains(&format!("OCSP - URI:{base}ocsp")),
        "{agency}"
    );
    assert!(
        agency.contains(&format!("CA Issuers - URI:{base}certs/issuing-ca.cer")),
        "{agency}"
    );
    assert!(agency.contains("Public-Key: (2048 bit)"), "{agency}");
    assert!(text_of("agency-signer-ec.p12").contains("NIST CURVE: P-256"));

    let citizen = text_of("citizen.p12");
    assert!(citizen.contains("UID=CCCD:001190012345"), "{citizen}");
    let org = text_of("organization.p12");
    assert!(org.contains("UID=MST:0100686209"), "{org}");

    let issuing = std::fs::read(dir.path().join("issuing-ca.pem")).unwrap();
    let issuing = X509::from_pem(&issuing).unwrap();
    let pem = write_pem(dir.path(), "ca.pem", &issuing);
    let (_, ca) = run_openssl(&["x509", "-in", &pem, "-noout", "-text"]);
    assert!(ca.contains("CA:TRUE, pathlen:0"), "{ca}");
    assert!(ca.contains("Certificate Sign, CRL Sign"), "{ca}");
    assert!(ca.contains(&format!("URI:{base}crl/root-ca.crl")), "{ca}");

    // Unencrypted PEM keys match their certificates.
    for stem in ["tsa", "ocsp"] {
        let key = std::fs::read(dir.path().join(format!("{stem}.key"))).unwrap();
        assert!(key.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        let key = PKey::private_key_from_pem(&key).unwrap();
        let cert = X509::from_pem(&std::fs::read(dir.path().join(format!("{stem}.pem"))).unwrap())
            .unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
    }
}

#[test]
fn bad_leaves_for_tests() {
    if !require_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut pki = generate(dir.path(), &fast(DEFAULT_BASE_URL)).unwrap();
    let now = OffsetDateTime::now_utc();

    let expired = pki
        .issue_leaf(
            &LeafSpec::new("Expired").expired(),
            &dir.path().join("expired.p12"),
        )
        .unwrap();
    let err = crate::pki::check_signing_certificate(&expired.certificate, now).unwrap_err();
    assert_eq!(err.code(), ErrorCode::CertExpired);

    let not_yet = pki
        .issue_leaf(
            &LeafSpec::new("Later").not_yet_valid(),
            &dir.path().join("later.p12"),
        )
        .unwrap();
    let err = crate::pki::check_signing_certificate(&not_yet.certificate, now).unwrap_err();
    assert_eq!(err.code(), ErrorCode::CertNotYetValid);

    let no_usage = pki
        .issue_leaf(
            &LeafSpec::new("No usage").with_profile(LeafProfile::NoSigningUsage),
            &dir.path().join("nousage.p12"),
        )
        .unwrap();
    let err = crate::pki::check_signing_certificate(&no_usage.certificate, now).unwrap_err();
    assert_eq!(err.code(), ErrorCode::CertNoSigningUsage);

    let revoked_at = now - time::Duration::days(1);
    let revoked = pki
        .issue_leaf(
            &LeafSpec::new("Revoked").revoked(revoked_at),
            &dir.path().join("revoked.p12"),
        )
        .unwrap();
    // The p12 opens through the crate's own key loader.
    let key = crate::keys::Pkcs12Key::open(&dir.path().join("revoked.p12"), DEMO_PASSWORD).unwrap();
    assert_eq!(crate::keys::KeySource::chain(&key).len(), 1);
    assert_revoked(dir.path(), &revoked.certificate, revoked_at);

    let weak = pki
        .issue_leaf(
            &LeafSpec::new("Weak")
                .with_key(LeafKey::Rsa(1024))
                .sha1_issued(),
            &dir.path().join("weak.p12"),
        )
        .unwrap();
    assert_eq!(weak.certificate.public_key().unwrap().bits(), 1024);
    assert_eq!(
        weak.certificate.signature_algorithm().object().nid(),
        Nid::SHA1WITHRSAENCRYPTION
    );

    let untrusted = pki
        .issue_leaf(
            &LeafSpec::new("Stranger").with_issuer(Issuer::Untrusted),
            &dir.path().join("u.p12"),
        )
        .unwrap();
    let leaf = write_pem(dir.path(), "u.pem", &untrusted.certificate);
    let root = dir.path().join("root-ca.pem");
    let issuing = dir.path().join("issuing-ca.pem");
    let (ok, text) = run_openssl(&[
        "verify",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        issuing.to_str().unwrap(),
        &leaf,
    ]);
    assert!(!ok, "untrusted leaf verified: {text}");
}

/// Asserts that `cert` is revoked at `at` in `DIR/index.txt` and listed with reason
/// keyCompromise in `DIR/issuing-ca.crl`.
fn assert_revoked(dir: &Path, cert: &X509, at: OffsetDateTime) {
    let serial = hex::encode_upper(cert.serial_number().to_bn().unwrap().to_vec());
    let index = std::fs::read_to_string(dir.join("index.txt")).unwrap();
    let line = index
        .lines()
        .find(|l| l.contains(&serial))
        .expect("revoked serial in index.txt");
    assert!(line.starts_with("R\t"), "{line}");
    assert_eq!(line.split('\t').nth(2).unwrap(), index_time(at));

    let crl = dir.join("issuing-ca.crl");
    let (ok, text) = run_openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("Serial Number: {serial}")),
        "{serial} not in {text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
}

#[test]
fn revoking_an_issued_leaf_updates_index_and_crl() {
    if !require_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut pki = generate(dir.path(), &fast(DEFAULT_BASE_URL)).unwrap();
    let leaf = pki
        .issue_leaf(&LeafSpec::new("Later revoked"), &dir.path().join("l.p12"))
        .unwrap();
    let at = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    pki.revoke(&leaf.certificate, at).unwrap();
    assert_revoked(dir.path(), &leaf.certificate, at);

    // A certificate of another PKI is refused.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = generate(other_dir.path(), &fast(DEFAULT_BASE_URL)).unwrap();
    let stranger = other
        .issue_leaf(&LeafSpec::new("Stranger"), &other_dir.path().join("s.p12"))
        .unwrap();
    assert!(pki.revoke(&stranger.certificate, at).is_err());
}

#[test]
fn bad_base_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = generate(dir.path(), &fast("ftp://x/")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Usage);
}

#[test]
fn index_time_matches_openssl_format() {
    let t = time::macros::datetime!(2035-07-01 09:30:05 UTC);
    assert_eq!(index_time(t), "350701093005Z");
    let t = time::macros::datetime!(2051-01-02 03:04:05 UTC);
    assert_eq!(index_time(t), "20510102030405Z");
}

/// A live `openssl ocsp` responder answers from the generated index.txt.
#[test]
fn openssl_ocsp_responder_serves_the_index() {
    if !require_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut pki = generate(d, &fast(DEFAULT_BASE_URL)).unwrap();
    let revoked = pki
        .issue_leaf(
            &LeafSpec::new("Revoked").revoked(OffsetDateTime::now_utc() - time::Duration::hours(2)),
            &d.join("revoked.p12"),
        )
        .unwrap();
    let good = write_pem(d, "good.pem", &p12_cert(&d.join("agency-signer.p12")));
    let bad = write_pem(d, "bad.pem", &revoked.certificate);

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let path = |n: &str| d.join(n).to_str().unwrap().to_string();
    let mut server = Command::new("openssl")
        .args([
            "ocsp",
            "-index",
            &path("index.txt"),
            "-CA",
            &path("issuing-ca.pem"),
        ])
        .args(["-rsigner", &path("ocsp.pem"), "-rkey", &path("ocsp.key")])
        .args(["-port", &port.to_string(), "-nrequest", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let query = |cert: &str| {
        let mut last = String::new();
        for _ in 0..50 {
            let (ok, text) = run_openssl(&[
                "ocsp",
                "-issuer",
                &path("issuing-ca.pem"),
                "-cert",
                cert,
                "-url",
                &url,
                "-CAfile",
                &path("root-ca.pem"),
                "-verify_other",
                &path("issuing-ca.pem"),
            ]);
            if ok {
                return text;
            }
            last = text;
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("OCSP query failed: {last}");
    };
    let good_text = query(&good);
    let bad_text = query(&bad);
    let _ = server.kill();
    let _ = server.wait();
    assert!(good_text.contains("Response verify OK"), "{good_text}");
    assert!(good_text.contains(&format!("{good}: good")), "{good_text}");
    assert!(bad_text.contains(&format!("{bad}: revoked")), "{bad_text}");
}
