//! `cargo bench --bench sign`: batch-signing throughput beside the raw key rate, same run.
//!
//! A plain harness (no criterion): the numbers that matter are docs/s and their ratio to the
//! raw RSA-2048 rate, measured back to back. Under `cargo test --all-targets` (no `--bench`
//! argument) it returns at once so the test suite stays fast.

use std::sync::Arc;
use std::time::Duration;

use signgate::batch::{sample, BatchOptions, Engine};
use signgate::keys::KeySource;
use signgate::pki::alg::{DigestAlgorithm, SignatureScheme};
use signgate::sign::Format;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let docs: usize = std::env::var("SIGNGATE_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let key: Arc<dyn KeySource> = Arc::new(sample::throwaway_rsa_key(2048).expect("key"));
    let scheme = SignatureScheme::RsaPkcs1(DigestAlgorithm::Sha256);
    let raw =
        sample::raw_sign_rate(key.as_ref(), scheme, threads, Duration::from_secs(2)).expect("raw");
    println!("raw RSA-2048 PKCS#1 v1.5, {threads} threads: {raw:.0} sig/s");

    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    for i in 0..docs {
        std::fs::write(
            input.join(format!("doc-{i:06}.pdf")),
            sample::pdf(i, 40_000),
        )
        .expect("write");
    }
    let mut inputs: Vec<_> = std::fs::read_dir(&input)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    inputs.sort();
    let mut options = BatchOptions::new(time::OffsetDateTime::now_utc());
    options.format = Some(Format::Pdf);
    let engine = Engine::new(key, options).expect("engine");
    let summary = engine
        .run(inputs.into_iter(), &dir.path().join("out"), &mut |_| {})
        .expect("batch");
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let rate = summary.docs_per_s();
    println!(
        "PAdES B-B, {docs} x ~40 KB PDFs: {rate:.0} docs/s = {:.2} x raw",
        rate / raw
    );
}
