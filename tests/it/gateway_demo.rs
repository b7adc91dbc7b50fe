//! The demo gateway works alone, from any folder (issue 13 item 7): run from an empty working
//! directory it signs with its built-in demo key and seal, and `/v1/verify` answers
//! TOTAL_PASSED for what it just signed, its OCSP/CRL answered in-process, no other process
//! running. Readiness and `--check-config` (item 8) are checked on the same gateway.

use crate::common::*;

#[test]
fn demo_gateway_verifies_what_it_signed_with_no_other_process() {
    let gw = DemoGateway::start();
    let pdf = std::fs::read(sample_pdf()).expect("sample.pdf");
    let signed = gw.post("v1/sign?key=demo-agency", &pdf);
    assert_eq!(
        signed.status,
        200,
        "{}",
        String::from_utf8_lossy(&signed.body)
    );
    assert_eq!(signed.content_type.as_deref(), Some("application/pdf"));
    // The built-in seal was placed (the image XObject is in the signed revision).
    assert!(
        signed.body.len() > pdf.len() + 10_000,
        "no seal image in the signature"
    );
    let report = gw.post("v1/verify", &signed.body);
    assert_eq!(
        report.status,
        200,
        "{}",
        String::from_utf8_lossy(&report.body)
    );
    let report = report.json();
    assert_eq!(report["indication"], "TOTAL_PASSED", "{report:#}");
    let revocation = report["signatures"][0]["revocation"]
        .as_array()
        .expect("revocation entries");
    assert!(
        revocation
            .iter()
            .any(|r| r["origin"] == "fetched" && r["status"] == "good"),
        "{report:#}"
    );
    // Ready: the database answers and the demo key opens.
    let ready = request("GET", &gw.url("readyz"), None, None);
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    assert_eq!(ready.json()["status"], "ready");
}

#[test]
fn readiness_fails_with_the_error_shape_when_a_key_does_not_open() {
    let gw = DemoGateway::start();
    // A key whose file is not a PKCS#12 (registered after start-up): not ready.
    let bad = gw.dir.path().join("bad.p12");
    std::fs::write(&bad, b"not a key").expect("write");
    run_ok(&mut demo_admin(
        gw.dir.path(),
        &[
            "key",
            "add",
            "--name",
            "broken",
            "--agency",
            "demo",
            "--p12",
            bad.to_str().unwrap(),
        ],
    ));
    let ready = request("GET", &gw.url("readyz"), None, None);
    assert_eq!(
        ready.status,
        503,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    assert_eq!(ready.error_code(), "NOT_READY");
    let alive = request("GET", &gw.url("healthz"), None, None);
    assert_eq!(alive.status, 200);
}

#[test]
fn check_config_validates_and_exits() {
    let tmp = tempdir();
    // Demo mode: valid.
    let o = run(&mut demo_admin(tmp.path(), &["serve", "--check-config"]));
    assert_exit(&o, 0, "demo configuration");
    // A configuration whose key file is missing: the error line and a non-zero exit.
    let config = tmp.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[keys]]\nname = \"k\"\nagency = \"a\"\np12 = \"/nonexistent/k.p12\"\n",
    )
    .expect("write");
    let o = run(signgate(["serve", "--check-config", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(tmp.path().join("data"))
        .env("SIGNGATE_KEY_PASSWORD", "x")
        .env_remove("SIGNGATE_DATABASE_URL"));
    assert_exit(&o, 64, "a key file that does not exist");
    let line = stderr_str(&o);
    assert!(line.starts_with("signgate: USAGE: key 'k'"), "{line}");
    assert!(
        line.contains("k.p12") && line.lines().count() == 1,
        "{line}"
    );
    // Unknown fields are a usage error (64).
    std::fs::write(&config, "nonsense = 1\n").expect("write");
    let o = run(signgate(["serve", "--check-config", "--config"])
        .arg(&config)
        .env_remove("SIGNGATE_DATABASE_URL"));
    assert_exit(&o, 64, "unknown field");
    assert!(!tmp.path().join("data").join("signgate.db").exists());
}

#[test]
fn a_taken_publication_port_is_one_line_and_verification_still_passes() {
    // Hold 127.0.0.1:8089 (or find it held already): either way the gateway cannot bind it.
    let _held = std::net::TcpListener::bind("127.0.0.1:8089");
    let gw = DemoGateway::start();
    let log = gw.server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("127.0.0.1:8089"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].starts_with("signgate: demo OCSP/CRL server not started"),
        "{log}"
    );
    let pdf = std::fs::read(sample_pdf()).expect("sample.pdf");
    let signed = gw.post("v1/sign?key=demo-agency", &pdf);
    assert_eq!(signed.status, 200);
    let report = gw.post("v1/verify", &signed.body).json();
    assert_eq!(report["indication"], "TOTAL_PASSED", "{report:#}");
}
