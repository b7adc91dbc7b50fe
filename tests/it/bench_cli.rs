//! `signgate bench sign` and `signgate bench http` run small: every line the README's
//! performance tables are read from is printed, with finite ratios. The figures themselves are
//! the release build's, in the README.

use crate::common::{run_ok, signgate, stdout_str};

/// The number after `after` on the first line containing `after`.
fn number_after(text: &str, after: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.contains(after))
        .unwrap_or_else(|| panic!("no line with `{after}` in:\n{text}"));
    let rest = &line[line.find(after).unwrap() + after.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits.parse().unwrap_or_else(|e| panic!("`{line}`: {e}"))
}

#[test]
fn bench_sign_prints_rates_floors_and_kernel_share_for_every_format() {
    let work = tempfile::tempdir().unwrap();
    let out = run_ok(&mut signgate([
        "bench",
        "sign",
        "--docs",
        "24",
        "--seconds",
        "1",
        "--no-openssl",
        "--no-strace",
        "--dir",
        work.path().to_str().unwrap(),
    ]));
    let text = stdout_str(&out);
    for kind in ["PAdES B-B", "XML-DSig (tax profile)", "CAdES detached"] {
        for sync in ["fsync syncfs per group", "fsync off"] {
            let head = format!("{kind}, ");
            let line = text
                .lines()
                .find(|l| l.starts_with("batch ") && l.contains(&head) && l.contains(sync))
                .unwrap_or_else(|| panic!("no {kind} / {sync} line in:\n{text}"));
            assert!(line.contains("(24 docs,"), "{line}");
            let rate = number_after(line, "):");
            assert!(rate > 0.0 && rate.is_finite(), "{line}");
        }
    }
    assert!(number_after(&text, "in-process:") > 0.0, "{text}");
    assert!(number_after(&text, "then syncfs):") > 0.0, "{text}");
    assert!(text.contains("kernel share of CPU"), "{text}");
    // The scratch copies and outputs go with the work folder: nothing is left beside it.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

#[test]
fn bench_http_signs_over_http_beside_the_batch_core() {
    let out = run_ok(&mut signgate([
        "bench",
        "http",
        // More than the default per-client burst (200) and rate (50/s) allow: the benchmark
        // must not be throttled by the limits it measures through.
        "--requests",
        "400",
        "--rounds",
        "1",
        "--clients",
        "3",
        "--pdf-size",
        "8000",
    ]));
    let text = stdout_str(&out);
    let http = number_after(&text, "HTTP:");
    assert!(http > 0.0 && http.is_finite(), "{text}");
    assert!(number_after(&text, "latency p50") > 0.0, "{text}");
    let ratio = number_after(&text, "HTTP / batch core:");
    assert!(ratio > 0.0 && ratio.is_finite(), "{text}");
}
