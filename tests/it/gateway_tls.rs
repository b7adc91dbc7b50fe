//! The gateway over HTTPS with client certificates (issue 7 item 3), and large PDFs streamed
//! through `POST /v1/sign` (item 5): real `signgate serve` processes, real TLS with curl, certificates
//! from a freshly generated demo PKI.

use crate::common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::SigngateServer;
use signgate::pki::demo::{LeafProfile, LeafSpec};

/// A gateway configuration in `dir` with key `ubnd` (agency bac-ninh) and key `hn` (agency
/// hanoi), both the demo agency signer; `extra` is appended (e.g. a `[tls]` table).
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let root = common::repo_root();
    let config = dir.join("signgate.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\noffline = true\n\
             trust = [\"{root}/certs/demo/root-ca.pem\"]\nreceipt_key = \"ubnd\"\n\n\
             [[keys]]\nname = \"ubnd\"\nagency = \"bac-ninh\"\np12 = \"{root}/certs/demo/agency-signer.p12\"\npassword_env = \"SG_TEST_KEY_PASSWORD\"\n\n\
             [[keys]]\nname = \"hn\"\nagency = \"hanoi\"\np12 = \"{root}/certs/demo/agency-signer.p12\"\npassword_env = \"SG_TEST_KEY_PASSWORD\"\n\n{extra}",
            data = dir.join("data"),
            root = root.display(),
        ),
    )
    .expect("write config");
    config
}

const ENVS: [(&str, &str); 1] = [("SG_TEST_KEY_PASSWORD", "demo")];

/// `signgate client add --config CONFIG ARGS…`; returns its JSON line.
fn add_client(config: &Path, args: &[&str]) -> serde_json::Value {
    let mut cmd = common::signgate(["client", "add", "--config"]);
    cmd.arg(config)
        .args(args)
        .env_remove("SIGNGATE_DATABASE_URL");
    for (k, v) in ENVS {
        cmd.env(k, v);
    }
    let out = common::run_ok(&mut cmd);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("client add: {e}: {}", common::stdout_str(&out)))
}

fn serve(config: &Path) -> SigngateServer {
    SigngateServer::start(
        &[
            OsStr::new("serve"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        &ENVS,
    )
}

/// Runs curl with `args`, the response body into `out`; returns the HTTP status (0 when no
/// HTTP exchange happened, e.g. a refused handshake).
fn curl(args: &[&OsStr], out: &Path) -> u16 {
    let output = Command::new("curl")
        .args(["-sS", "-o"])
        .arg(out)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// `signgate verify --offline` of `pdf` against the repository's demo root: the single
/// signature is intact and the document passes.
fn assert_verifies(pdf: &Path) {
    let mut c = common::signgate(["verify", "--offline", "--trust"]);
    c.arg(common::repo_root().join("certs/demo/root-ca.pem"))
        .arg(pdf);
    let out = common::run(&mut c);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify: {e}: {}", common::stderr_str(&out)));
    let sigs = report["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), 1, "{report}");
    assert_eq!(sigs[0]["intact"], true, "{report}");
}

#[test]
fn client_certificates_authenticate_over_mutual_tls() {
    if !common::require_tools(&["curl"]) {
        return;
    }
    let tmp = common::tempdir();
    let dir = tmp.path();
    let (_pki_dir, mut pki) = common::generate_demo_pki("http://127.0.0.1:9/");
    let issue = |pki: &mut signgate::pki::demo::DemoPki, name: &str| {
        let leaf = pki
            .issue_leaf(
                &LeafSpec::new(&format!("gateway tls test {name}")).with_profile(LeafProfile::Node),
                &dir.join(format!("{name}.p12")),
            )
            .expect("issue leaf");
        common::leaf_pem_files(&leaf, dir, name)
    };
    let (server_key, server_cert) = issue(&mut pki, "server");
    let (a_key, a_cert) = issue(&mut pki, "client-a");
    let (b_key, b_cert) = issue(&mut pki, "client-b");
    let (u_key, u_cert) = issue(&mut pki, "unknown");
    // The server presents its chain: leaf, then the issuing CA.
    let chain = dir.join("server-chain.pem");
    let mut pem = std::fs::read(&server_cert).unwrap();
    pem.extend(std::fs::read(_pki_dir.path().join("issuing-ca.pem")).unwrap());
    std::fs::write(&chain, pem).unwrap();
    let root = _pki_dir.path().join("root-ca.pem");
    let issuing = _pki_dir.path().join("issuing-ca.pem");
    let config = write_config(
        dir,
        &format!(
            "[tls]\ncert = {chain:?}\nkey = {server_key:?}\nclient_ca = [{root:?}, {issuing:?}]\n"
        ),
    );
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let a = add_client(
        &config,
        &[
            "--agency",
            "bac-ninh",
            "--name",
            "tls-a",
            "--key",
            "ubnd",
            "--cert",
            &path(&a_cert),
        ],
    );
    assert!(
        a["token"].is_null(),
        "a certificate client gets no token: {a}"
    );
    assert_eq!(
        a["cert_fingerprint"].as_str().map(str::len),
        Some(64),
        "{a}"
    );
    add_client(
        &config,
        &[
            "--agency",
            "hanoi",
            "--name",
            "tls-b",
            "--key",
            "hn",
            "--cert",
            &path(&b_cert),
        ],
    );
    let bearer = add_client(
        &config,
        &["--agency", "bac-ninh", "--name", "bearer", "--key", "ubnd"],
    );
    let token = bearer["token"].as_str().expect("token").to_string();
    let server = serve(&config);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let url = |path: &str| format!("https://127.0.0.1:{}/{path}", server.port);
    let pdf = common::sample_pdf();
    let data = format!("@{}", pdf.display());
    let with_cert = |cert: &Path, key: &Path, target: &str, out: &Path| {
        curl(
            &[
                OsStr::new("--cacert"),
                root.as_os_str(),
                OsStr::new("--cert"),
                cert.as_os_str(),
                OsStr::new("--key"),
                key.as_os_str(),
                OsStr::new("--data-binary"),
                OsStr::new(&data),
                OsStr::new(target),
            ],
            out,
        )
    };

    // A registered certificate client signs with its granted key.
    let signed = dir.join("signed-a.pdf");
    assert_eq!(
        with_cert(&a_cert, &a_key, &url("v1/sign?key=ubnd"), &signed),
        200
    );
    assert!(std::fs::read(&signed).unwrap().starts_with(b"%PDF-"));
    assert_verifies(&signed);
    // The audit trail names that client.
    let audit = dir.join("audit.json");
    let status = curl(
        &[
            OsStr::new("--cacert"),
            root.as_os_str(),
            OsStr::new("--cert"),
            a_cert.as_os_str(),
            OsStr::new("--key"),
            a_key.as_os_str(),
            OsStr::new(&url("v1/audit?action=sign")),
        ],
        &audit,
    );
    assert_eq!(status, 200);
    let records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&audit).unwrap()).unwrap();
    assert_eq!(records["records"][0]["client"], a["id"], "{records}");

    // A certificate from the trusted CA that no client was registered with: 401.
    let out = dir.join("unknown.json");
    assert_eq!(
        with_cert(&u_cert, &u_key, &url("v1/sign?key=ubnd"), &out),
        401
    );
    let body: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{body}");

    // Another agency's client certificate: bac-ninh's key does not exist for it (404).
    let out = dir.join("other.json");
    assert_eq!(
        with_cert(&b_cert, &b_key, &url("v1/sign?key=ubnd"), &out),
        404
    );
    // ...while its own key works.
    let signed_b = dir.join("signed-b.pdf");
    assert_eq!(
        with_cert(&b_cert, &b_key, &url("v1/sign?key=hn"), &signed_b),
        200
    );
    assert_verifies(&signed_b);

    // No client certificate: a bearer token still works over TLS, nothing at all is 401.
    let bearer_header = format!("Authorization: Bearer {token}");
    let signed_t = dir.join("signed-token.pdf");
    let status = curl(
        &[
            OsStr::new("--cacert"),
            root.as_os_str(),
            OsStr::new("-H"),
            OsStr::new(&bearer_header),
            OsStr::new("--data-binary"),
            OsStr::new(&data),
            OsStr::new(&url("v1/sign?key=ubnd")),
        ],
        &signed_t,
    );
    assert_eq!(status, 200);
    assert_verifies(&signed_t);
    let status = curl(
        &[
            OsStr::new("--cacert"),
            root.as_os_str(),
            OsStr::new("--data-binary"),
            OsStr::new(&data),
            OsStr::new(&url("v1/sign?key=ubnd")),
        ],
        &dir.join("anonymous.json"),
    );
    assert_eq!(status, 401);

    // A revoked certificate client is refused at once.
    let mut revoke = common::signgate(["client", "revoke", "--config"]);
    revoke
        .arg(&config)
        .arg(a["id"].as_str().expect("id"))
        .env_remove("SIGNGATE_DATABASE_URL");
    for (k, v) in ENVS {
        revoke.env(k, v);
    }
    common::run_ok(&mut revoke);
    assert_eq!(
        with_cert(&a_cert, &a_key, &url("v1/sign?key=ubnd"), &dir.join("r")),
        401
    );

    // A certificate from a CA the gateway does not trust fails the handshake.
    let (_other_dir, mut other_pki) = common::generate_demo_pki("http://127.0.0.1:9/");
    let (x_key, x_cert) = issue(&mut other_pki, "foreign");
    assert_eq!(
        with_cert(&x_cert, &x_key, &url("v1/sign?key=ubnd"), &dir.join("x")),
        0
    );

    // SIGTERM with a request in flight (half its body sent before the signal): the request
    // still completes with the signed PDF, then the server exits.
    let body = std::fs::read(&pdf).expect("read sample");
    let mut connector =
        openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).expect("connector");
    connector.set_ca_file(&root).expect("trust the demo root");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let mut tls = connector
        .build()
        .connect("127.0.0.1", tcp)
        .expect("TLS handshake");
    let head = format!(
        "POST /v1/sign?key=ubnd HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/pdf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let half = body.len() / 2;
    tls.write_all(head.as_bytes()).expect("send head");
    tls.write_all(&body[..half]).expect("send half the body");
    tls.flush().expect("flush");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let term = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(term.success());
    std::thread::sleep(std::time::Duration::from_millis(500));
    tls.write_all(&body[half..])
        .expect("send the rest after SIGTERM");
    tls.flush().expect("flush");
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "the request in flight at SIGTERM was not finished: {text:.300}"
    );
    let start = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers")
        + 4;
    let signed = dir.join("drained.pdf");
    std::fs::write(&signed, &response[start..]).expect("write drained.pdf");
    assert_verifies(&signed);
    server.stop();
}

#[test]
fn a_40_mb_pdf_is_signed_over_http_in_flat_server_memory() {
    if !common::require_tools(&["curl"]) {
        return;
    }
    let tmp = common::tempdir();
    let dir = tmp.path();
    let config = write_config(dir, "");
    let client = add_client(
        &config,
        &[
            "--agency", "bac-ninh", "--name", "e-office", "--key", "ubnd",
        ],
    );
    let auth = format!(
        "Authorization: Bearer {}",
        client["token"].as_str().expect("token")
    );
    let server = serve(&config);
    let sign = |input: &Path, out: &Path| {
        let data = format!("@{}", input.display());
        curl(
            &[
                OsStr::new("-H"),
                OsStr::new(&auth),
                OsStr::new("--data-binary"),
                OsStr::new(&data),
                OsStr::new(&format!("{}v1/sign?key=ubnd", server.url)),
            ],
            out,
        )
    };
    let hwm_kib = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
    };
    // Warm up (key opened, pools started) with a small PDF, then take the idle peak.
    let small = dir.join("small-signed.pdf");
    assert_eq!(sign(&common::sample_pdf(), &small), 200);
    let idle = hwm_kib();

    // 3 pages of 2048² RGB: ~37.7 MB, above the 16 MiB streaming threshold.
    let big = dir.join("large.pdf");
    let len = common::write_large_pdf(&big, 3, 2048);
    assert!(len > 36_000_000, "generated {len} bytes");
    let signed = dir.join("large-signed.pdf");
    assert_eq!(
        sign(&big, &signed),
        200,
        "{}",
        String::from_utf8_lossy(&std::fs::read(&signed).unwrap_or_default()[..])
            .chars()
            .take(300)
            .collect::<String>()
    );
    let peak = hwm_kib();
    eprintln!("server VmHWM: idle {idle} KiB, after a {len}-byte PDF {peak} KiB");
    assert!(
        peak <= idle + 64 * 1024,
        "server peak {peak} KiB, idle {idle} KiB"
    );
    // The original bytes are the output's prefix, and the signature verifies.
    let out_len = std::fs::metadata(&signed).unwrap().len();
    assert!(out_len > len && out_len < len + 64 * 1024, "{out_len}");
    assert_verifies(&signed);
    // Nothing is left in the spool folder but the gateway's lock file of the data folder.
    let spool = dir.join("data/spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| !p.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "spool not cleaned: {left:?}");
    server.stop();
}
