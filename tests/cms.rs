//! Detached CAdES (.p7s) signing through the CLI, checked by `openssl cms -verify`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn openssl(args: &[&str], cwd: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA and signer keys made with the openssl command line.
fn make_pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n",
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=Test Root",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
        ],
        d,
    );
    for (name, alg) in [("rsa", "rsa:2048"), ("ec", "ec")] {
        let mut args = vec!["req", "-newkey", alg, "-nodes", "-subj"];
        let subj = format!("/O=Ủy ban nhân dân/CN=Signer {name}");
        args.push(&subj);
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        args.extend(["-keyout", &key, "-out", &csr, "-utf8"]);
        if alg == "ec" {
            args.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]);
        }
        openssl(&args, d);
        let pem = format!("{name}.pem");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "30",
                "-extfile",
                "leaf.ext",
            ],
            d,
        );
        let p12 = format!("{name}.p12");
        openssl(
            &[
                "pkcs12",
                "-export",
                "-inkey",
                &key,
                "-in",
                &pem,
                "-certfile",
                "ca.pem",
                "-out",
                &p12,
                "-passout",
                "pass:demo",
            ],
            d,
        );
    }
    openssl(
        &[
            "pkcs12",
            "-export",
            "-legacy",
            "-inkey",
            "rsa.key",
            "-in",
            "rsa.pem",
            "-out",
            "legacy.p12",
            "-passout",
            "pass:demo",
        ],
        d,
    );
    Pki { dir }
}

fn signgate(args: &[&str], password: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signgate"))
        .args(args)
        .env("SIGNGATE_KEY_PASSWORD", password)
        .output()
        .expect("signgate runs")
}

fn cms_verify(p7s: &Path, content: &Path, ca: &Path) -> Output {
    Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ])
        .arg("-in")
        .arg(p7s)
        .arg("-content")
        .arg(content)
        .arg("-CAfile")
        .arg(ca)
        .output()
        .expect("openssl runs")
}

fn cms_print(p7s: &Path) -> String {
    let out = Command::new("openssl")
        .args([
            "cms", "-cmsout", "-print", "-inform", "DER", "-noout", "-in",
        ])
        .arg(p7s)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn p7s_verifies_with_openssl_for_each_algorithm() {
    let pki = make_pki();
    let content = pki.path("filing.xml");
    std::fs::write(&content, "<HSoThueDTu>số liệu</HSoThueDTu>\n".repeat(500)).unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("rsa.p12", &[]),
        ("rsa.p12", &["--rsa-padding", "pss"]),
        ("rsa.p12", &["--digest", "sha384"]),
        ("rsa.p12", &["--digest", "sha512", "--rsa-padding", "pss"]),
        ("ec.p12", &[]),
        ("ec.p12", &["--digest", "sha384"]),
        ("legacy.p12", &[]),
    ];
    for (i, (key, extra)) in cases.iter().enumerate() {
        let out = pki.path(&format!("out{i}.p7s"));
        // XML-looking content is signed as XML-DSig by default; ask for detached CMS.
        let mut args = vec!["sign", "--format", "cms", "--key"];
        let key_path = pki.path(key);
        args.push(key_path.to_str().unwrap());
        args.extend([
            "--in",
            content.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        args.extend(extra.iter());
        let run = signgate(&args, "demo");
        assert!(
            run.status.success(),
            "{key} {extra:?}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let verify = cms_verify(&out, &content, &pki.path("ca.pem"));
        assert!(
            verify.status.success(),
            "{key} {extra:?}: openssl rejects: {}",
            String::from_utf8_lossy(&verify.stderr)
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
    let pki = make_pki();
    let content = pki.path("doc.bin");
    std::fs::write(&content, b"original content").unwrap();
    let out = pki.path("doc.p7s");
    let run = signgate(
        &[
            "sign",
            "--key",
            pki.path("rsa.p12").to_str().unwrap(),
            "--in",
            content.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "demo",
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::write(&content, b"Original content").unwrap();
    assert!(!cms_verify(&out, &content, &pki.path("ca.pem"))
        .status
        .success());
}

#[test]
fn wrong_password_gives_its_code_and_no_output() {
    let pki = make_pki();
    let content = pki.path("doc.bin");
    std::fs::write(&content, b"x").unwrap();
    let out = pki.path("doc.p7s");
    let run = signgate(
        &[
            "sign",
            "--key",
            pki.path("rsa.p12").to_str().unwrap(),
            "--in",
            content.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "not-the-password",
    );
    assert_eq!(run.status.code(), Some(77));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.starts_with("signgate: KEY_PASSWORD_WRONG: "),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"));
    assert!(!out.exists());
}

#[test]
fn missing_input_and_bad_key_file_have_codes() {
    let pki = make_pki();
    let out = pki.path("o.p7s");
    let run = signgate(
        &[
            "sign",
            "--key",
            pki.path("rsa.p12").to_str().unwrap(),
            "--in",
            "/nonexistent/x",
            "--out",
            out.to_str().unwrap(),
        ],
        "demo",
    );
    assert_eq!(
        run.status.code(),
        Some(66),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let run = signgate(
        &[
            "sign",
            "--key",
            pki.path("ca.pem").to_str().unwrap(),
            "--in",
            pki.path("ca.pem").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "demo",
    );
    assert_eq!(run.status.code(), Some(77));
    assert!(String::from_utf8_lossy(&run.stderr).contains("KEY_INVALID"));
    let run = signgate(
        &[
            "sign",
            "--key",
            pki.path("rsa.p12").to_str().unwrap(),
            "--in",
            pki.path("ca.pem").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--level",
            "b-t",
        ],
        "demo",
    );
    assert_eq!(run.status.code(), Some(64));
    assert!(!out.exists());
}

fn verify_json(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_signgate"))
        .arg("verify")
        .args(args)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    if !report.is_null() {
        assert_report_matches_schema(&report);
    }
    (out.status.code(), report)
}

fn assert_report_matches_schema(report: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/validation-report.v1.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "report violates the schema: {errors:?}\n{report:#}"
    );
}

#[test]
fn signgate_verifies_its_own_and_openssls_p7s() {
    let pki = make_pki();
    let content = pki.path("doc.txt");
    std::fs::write(&content, b"to be signed\n").unwrap();
    let ours = pki.path("ours.p7s");
    let run = signgate(
        &[
            "sign",
            "--key",
            pki.path("ec.p12").to_str().unwrap(),
            "--in",
            content.to_str().unwrap(),
            "--out",
            ours.to_str().unwrap(),
        ],
        "demo",
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let theirs = pki.path("theirs.p7s");
    openssl(
        &[
            "cms",
            "-sign",
            "-binary",
            "-in",
            "doc.txt",
            "-signer",
            "rsa.pem",
            "-inkey",
            "rsa.key",
            "-outform",
            "DER",
            "-out",
            "theirs.p7s",
        ],
        pki.dir.path(),
    );
    let ca = pki.path("ca.pem");
    for p7s in [&ours, &theirs] {
        // This throwaway PKI publishes no OCSP responder or CRL: the status cannot be known.
        let (code, report) = verify_json(&[
            p7s.to_str().unwrap(),
            "--content",
            content.to_str().unwrap(),
            "--trust",
            ca.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "{report:#}");
        assert_eq!(report["sub_indication"], "TRY_LATER");
        assert_eq!(report["signatures"][0]["intact"], true);
        assert_eq!(report["signatures"][0]["trust_list"], "default");
        // Without trust anchors the chain cannot be built.
        let (code, report) = verify_json(&[
            p7s.to_str().unwrap(),
            "--content",
            content.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2));
        assert_eq!(report["sub_indication"], "NO_CERTIFICATE_CHAIN_FOUND");
    }
    std::fs::write(&content, b"to be signed, changed\n").unwrap();
    let (code, report) = verify_json(&[
        ours.to_str().unwrap(),
        "--content",
        content.to_str().unwrap(),
        "--trust",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(report["sub_indication"], "HASH_FAILURE");
    assert_eq!(report["signatures"][0]["intact"], false);
    // A file that is no signature at all.
    let (code, _) = verify_json(&[content.to_str().unwrap()]);
    assert_eq!(code, Some(3));
}
