//! `cargo bench --bench verify`: validated documents per second for single-signature PDFs
//! with embedded revocation data (PAdES B-LT), beside pyHanko validating the same files in
//! the same run, one process each.
//!
//! pyHanko runs from the test venv (`SIGNGATE_TEST_VENV`, default `.venv`, made by
//! `./tests/run`). Under `cargo test --all-targets` (no `--bench`) it returns at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signgate::extend::{self, LtvLevel};
use signgate::keys::Pkcs12Key;
use signgate::pki::demo::{generate, DemoOptions};
use signgate::sign::{sign_document, Level, PdfDetails, SignRequest};
use signgate::verify::{self, HttpFetcher, Indication, TrustList, ValidationContext};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let docs: usize = std::env::var("SIGNGATE_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let root_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pki_dir = dir.path().join("pki");
    let opts = DemoOptions {
        root_key_bits: 2048,
        issuing_key_bits: 2048,
        ..DemoOptions::with_base_url(format!("http://127.0.0.1:{port}/"))
    };
    generate(&pki_dir, &opts).expect("demo PKI");
    serve_publication(&pki_dir, port);

    let key = Pkcs12Key::open(&pki_dir.join("agency-signer.p12"), "demo").expect("key");
    let trust = || vec![TrustList::load("default", &pki_dir.join("root-ca.pem")).expect("root")];
    let online = ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: trust(),
        fetcher: Some(Box::new(HttpFetcher::new(Duration::from_secs(10)))),
    };
    let sample = std::fs::read(root_dir.join("tests/data/sample.pdf")).expect("sample.pdf");
    let files_dir = dir.path().join("files");
    std::fs::create_dir_all(&files_dir).unwrap();
    let mut files = Vec::new();
    for i in 0..docs {
        let request = SignRequest {
            format: None,
            level: Level::BB,
            digest: Default::default(),
            rsa_padding: Default::default(),
            signing_time: time::OffsetDateTime::now_utc(),
            timestamper: None,
            pdf: PdfDetails::default(),
            xml_profile: None,
        };
        let signed = sign_document(&sample, &key, &request).expect("sign").bytes;
        let lt = extend::extend(&signed, LtvLevel::BLt, &online, None).expect("extend to B-LT");
        let path = files_dir.join(format!("doc-{i:04}.pdf"));
        std::fs::write(&path, lt).unwrap();
        files.push(path);
    }
    let size = std::fs::metadata(&files[0]).unwrap().len();
    println!("{docs} single-signature PAdES B-LT PDFs of {size} bytes (revocation data embedded), offline validation, 1 process each");

    let offline = ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: trust(),
        fetcher: None,
    };
    // SIGNGATE_BENCH_PASSES repeats our side (for profiling); the rate is per document.
    let passes: usize = std::env::var("SIGNGATE_BENCH_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let start = Instant::now();
    let mut passed = 0;
    for _ in 0..passes {
        passed = 0;
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            let report =
                verify::document("bench", &bytes, None, &verify::Policy::default(), &offline)
                    .expect("report");
            passed += usize::from(report.indication == Indication::TotalPassed);
        }
    }
    let ours = (docs * passes) as f64 / start.elapsed().as_secs_f64();
    println!("signgate verify (library, 1 thread): {ours:.1} docs/s, {passed}/{docs} TOTAL_PASSED");

    match pyhanko_rate(&root_dir, &pki_dir.join("root-ca.pem"), &files) {
        Some((rate, passed)) => {
            println!("pyHanko validate_pdf_signature (1 process): {rate:.1} docs/s, {passed}/{docs} valid+trusted");
            println!("ratio signgate/pyHanko: {:.1}x", ours / rate);
        }
        None => println!("pyHanko not available (run ./tests/run once to create the venv)"),
    }
}

/// Serves the PKI's OCSP/CRL/CA certificates in this process, for the B-LT extension step.
fn serve_publication(pki_dir: &Path, port: u16) {
    let key = Arc::new(Pkcs12Key::open(&pki_dir.join("ocsp.p12"), "demo").expect("ocsp key"));
    let router = signgate::publish::router(pki_dir.to_path_buf(), key).expect("router");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind");
            axum::serve(listener, router).await.expect("serve");
        });
    });
    std::thread::sleep(Duration::from_millis(200));
}

fn pyhanko_rate(root_dir: &Path, root: &Path, files: &[PathBuf]) -> Option<(f64, u64)> {
    let venv = std::env::var("SIGNGATE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root_dir.join(".venv"));
    let python = venv.join("bin/python");
    if !python.exists() {
        return None;
    }
    let out = std::process::Command::new(python)
        .arg(root_dir.join("tests/support/pyhanko_bench_validate.py"))
        .arg(root)
        .args(files)
        .output()
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let elapsed = json["elapsed_s"].as_f64()?;
    Some((files.len() as f64 / elapsed, json["passed"].as_u64()?))
}
