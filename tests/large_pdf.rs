//! Large PDFs are signed streaming (issue 6, item 4): a generated ~200 MB PDF is signed by
//! `signgate sign` and by `signgate batch-sign` in child processes whose peak resident memory
//! (`/usr/bin/time -f %M`) stays within 64 MiB of the same binary signing a tiny PDF, and the
//! outputs pass `pdfsig` and `signgate verify`.

mod common;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bound the issue sets: peak RSS at most this much above the baseline (KiB).
const BOUND_KIB: u64 = 64 * 1024;

/// Image side in pixels: 4096 × 4096 RGB is 48 MiB of samples.
const SIDE: usize = 4096;

/// Pages, each drawing its own image: ~192 MiB of image data.
const PAGES: usize = 4;

fn demo(name: &str) -> PathBuf {
    common::repo_root().join("certs/demo").join(name)
}

/// A file written in order, remembering where each object starts.
struct PdfWriter {
    out: BufWriter<std::fs::File>,
    at: u64,
    offsets: Vec<(usize, u64)>,
}

impl PdfWriter {
    fn put(&mut self, bytes: &[u8]) {
        self.out.write_all(bytes).unwrap();
        self.at += bytes.len() as u64;
    }

    fn object(&mut self, n: usize, body: &str) {
        self.offsets.push((n, self.at));
        self.put(format!("{n} 0 obj\n{body}\nendobj\n").as_bytes());
    }
}

/// Writes a PDF of `PAGES` pages, each an uncompressed, incompressible RGB image, streaming
/// (never held in memory), with a classic cross-reference table; returns its length.
fn write_large_pdf(path: &Path) -> u64 {
    let mut w = PdfWriter {
        out: BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap()),
        at: 0,
        offsets: Vec::new(),
    };
    w.put(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n");
    w.object(1, "<< /Type /Catalog /Pages 2 0 R >>");
    let kids: Vec<String> = (0..PAGES).map(|p| format!("{} 0 R", 3 + 3 * p)).collect();
    w.object(
        2,
        &format!(
            "<< /Type /Pages /Kids [{}] /Count {PAGES} >>",
            kids.join(" ")
        ),
    );
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let len = SIDE * SIDE * 3;
    let mut chunk = vec![0u8; 1 << 20];
    for p in 0..PAGES {
        let (page, contents, image) = (3 + 3 * p, 4 + 3 * p, 5 + 3 * p);
        w.object(page, &format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 {image} 0 R >> >> /Contents {contents} 0 R >>"
        ));
        let draw = "q 595 0 0 842 0 0 cm /Im0 Do Q\n";
        w.object(
            contents,
            &format!("<< /Length {} >>\nstream\n{draw}endstream", draw.len()),
        );
        w.offsets.push((image, w.at));
        w.put(format!(
            "{image} 0 obj\n<< /Type /XObject /Subtype /Image /Width {SIDE} /Height {SIDE} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length {len} >>\nstream\n"
        ).as_bytes());
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            for word in chunk[..n].chunks_mut(8) {
                // xorshift64: fast, and incompressible as photographs are.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let bytes = state.to_le_bytes();
                word.copy_from_slice(&bytes[..word.len()]);
            }
            w.put(&chunk[..n]);
            left -= n;
        }
        w.put(b"\nendstream\nendobj\n");
    }
    let size = 3 + 3 * PAGES;
    let xref = w.at;
    let mut offsets = w.offsets.clone();
    offsets.sort();
    let mut table = format!("xref\n0 {size}\n0000000000 65535 f \n");
    for (_, off) in offsets {
        table.push_str(&format!("{off:010} 00000 n \n"));
    }
    table.push_str(&format!(
        "trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ));
    w.put(table.as_bytes());
    w.out.flush().unwrap();
    w.at
}

/// Runs `cmd` under `/usr/bin/time -f %M` and returns its peak resident set size in KiB.
fn peak_rss_kib(cmd: &Command, expect_code: i32) -> u64 {
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("peak-rss-kib=%M")
        .arg(cmd.get_program());
    timed.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let out = common::run_expect(&mut timed, expect_code);
    let stderr = common::stderr_str(&out);
    stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {stderr}"))
}

fn sign_cmd(input: &Path, output: &Path) -> Command {
    let mut c = common::signgate(["sign", "--key"]);
    c.arg(demo("agency-signer.p12"))
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(output)
        .env("SIGNGATE_KEY_PASSWORD", "demo");
    c
}

/// pdfsig: one signature, valid, covering the whole file.
fn assert_pdfsig_valid(pdf: &Path) {
    let nss = common::NssDb::new(&demo("root-ca.pem"));
    let report = common::pdfsig_args(&nss, pdf, &["-nocert"]);
    assert_eq!(report.signatures.len(), 1, "{}", report.raw);
    assert!(report.signatures[0].signature_valid(), "{}", report.raw);
    assert!(report.signatures[0].total_document_signed, "{}", report.raw);
}

/// `signgate verify --offline`: the signature is intact.
fn assert_verifies(pdf: &Path) {
    let mut c = common::signgate(["verify", "--offline", "--trust"]);
    c.arg(demo("root-ca.pem")).arg(pdf);
    let out = common::run(&mut c);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify: {e}: {}", common::stderr_str(&out)));
    let sigs = report["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), 1, "{report}");
    assert_eq!(sigs[0]["intact"], true, "{report}");
}

#[test]
fn a_200_mb_pdf_is_signed_in_flat_memory_and_verifies() {
    if !common::require_tools(&["time", "pdfsig", "certutil"]) {
        return;
    }
    let tmp = common::tempdir();
    let big_dir = tmp.path().join("in");
    std::fs::create_dir_all(&big_dir).unwrap();
    let big = big_dir.join("large.pdf");
    let len = write_large_pdf(&big);
    assert!(len > 200_000_000, "generated {len} bytes");
    let tiny = tmp.path().join("tiny.pdf");
    std::fs::write(&tiny, signgate::batch::sample::pdf(0, 40_000)).unwrap();

    let baseline = peak_rss_kib(&sign_cmd(&tiny, &tmp.path().join("tiny-signed.pdf")), 0);
    let signed = tmp.path().join("large-signed.pdf");
    let peak = peak_rss_kib(&sign_cmd(&big, &signed), 0);
    eprintln!("sign: peak RSS {peak} KiB for {len} bytes, baseline {baseline} KiB");
    assert!(
        peak <= baseline + BOUND_KIB,
        "sign: peak RSS {peak} KiB, baseline {baseline} KiB"
    );
    // The original bytes are the output's prefix.
    let out_len = std::fs::metadata(&signed).unwrap().len();
    assert!(out_len > len && out_len < len + 64 * 1024, "{out_len}");
    assert_pdfsig_valid(&signed);
    assert_verifies(&signed);
    std::fs::remove_file(&signed).unwrap();

    // The batch engine takes the same streaming path.
    let out_dir = tmp.path().join("out");
    let mut batch = common::signgate(["batch-sign", "--key"]);
    batch
        .arg(demo("agency-signer.p12"))
        .arg("--in")
        .arg(&big_dir)
        .arg("--out")
        .arg(&out_dir)
        .arg("--json")
        .env("SIGNGATE_KEY_PASSWORD", "demo");
    let peak = peak_rss_kib(&batch, 0);
    eprintln!("batch-sign: peak RSS {peak} KiB, baseline {baseline} KiB");
    assert!(
        peak <= baseline + BOUND_KIB,
        "batch-sign: peak RSS {peak} KiB, baseline {baseline} KiB"
    );
    let batch_out = out_dir.join("large.pdf");
    assert_pdfsig_valid(&batch_out);
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
}
