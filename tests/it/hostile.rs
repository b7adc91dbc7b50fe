//! Hostile PDFs: decompression bombs, deep nesting, cross-reference loops, forged object
//! counts, random bytes. Signing and verifying each must end with a clear error code (never a
//! panic), quickly and within bounded memory (measured by GNU time's peak RSS).

use crate::common;

use std::io::Write;
use std::path::Path;

/// Peak resident memory allowed for one signgate run on these small inputs.
const MAX_RSS_KB: u64 = 200 * 1024;

fn pdf(objects: &[Vec<u8>], trailer_extra: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<</Size {} /Root 1 0 R{trailer_extra}>>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn base() -> Vec<Vec<u8>> {
    vec![
        b"<</Type/Catalog/Pages 2 0 R>>".to_vec(),
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>".to_vec(),
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 10 10]>>".to_vec(),
    ]
}

/// A FlateDecode stream of `len` zero bytes (inflates ~1000x).
fn bomb_stream(dict: &str, len: usize) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..len >> 20 {
        enc.write_all(&chunk).unwrap();
    }
    let data = enc.finish().unwrap();
    let mut out = format!(
        "<<{dict}/Length {}/Filter/FlateDecode>>\nstream\n",
        data.len()
    )
    .into_bytes();
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\nendstream");
    out
}

fn hostile_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut cases = Vec::new();
    let mut deep = base();
    deep.push([vec![b'['; 200_000], vec![b']'; 200_000]].concat());
    cases.push(("deep arrays", pdf(&deep, "")));
    let mut deep_dict = base();
    deep_dict.push(
        [
            b"<</A ".repeat(100_000),
            b"1".to_vec(),
            b">>".repeat(100_000),
        ]
        .concat(),
    );
    cases.push(("deep dictionaries", pdf(&deep_dict, "")));
    let mut bomb = base();
    bomb.push(bomb_stream("", 1 << 30));
    cases.push(("content stream bomb", pdf(&bomb, "")));
    let mut objstm_bomb = base();
    objstm_bomb.push(bomb_stream("/Type/ObjStm/N 1/First 4", 1 << 30));
    cases.push(("object stream bomb", pdf(&objstm_bomb, "")));
    let looped = pdf(&base(), "");
    let xref_at = String::from_utf8_lossy(&looped).rfind("xref").unwrap();
    cases.push(("xref /Prev loop", pdf(&base(), &format!("/Prev {xref_at}"))));
    let mut huge = pdf(&base(), "");
    let t = String::from_utf8_lossy(&huge).rfind("trailer").unwrap();
    huge.truncate(t);
    huge.extend_from_slice(b"trailer\n<</Size 999999999 /Root 1 0 R>>\nstartxref\n9\n%%EOF\n");
    cases.push(("forged object count", huge));
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..200_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    cases.push((
        "random bytes after a header",
        [b"%PDF-1.7\n".to_vec(), random].concat(),
    ));
    cases
}

/// Runs signgate under GNU time; returns (exit code, stderr, peak RSS in KB).
fn run_measured(gnu_time: &Path, args: &[&std::ffi::OsStr]) -> (i32, String, u64) {
    let out = std::process::Command::new(gnu_time)
        .arg("-f")
        .arg("SIGNGATE_PEAK_RSS_KB=%M")
        .arg("timeout")
        .arg("60")
        .arg(common::signgate_bin())
        .args(args)
        .env("SIGNGATE_KEY_PASSWORD", "demo")
        .output()
        .expect("GNU time runs (Debian package `time`)");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("SIGNGATE_PEAK_RSS_KB="))
        .and_then(|v| v.trim().parse().ok())
        .expect("GNU time reports peak RSS");
    (out.status.code().unwrap_or(-1), stderr, rss)
}

fn check(name: &str, what: &str, (code, stderr, rss): (i32, String, u64), allowed: &[i32]) {
    assert!(
        allowed.contains(&code),
        "{what} {name}: exit {code}, stderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "{what} {name} panicked: {stderr}"
    );
    assert!(rss < MAX_RSS_KB, "{what} {name}: peak RSS {rss} KB");
    if code != 0 && code != 3 {
        assert!(
            stderr.starts_with("signgate: "),
            "{what} {name}: unclear error: {stderr}"
        );
    }
}

#[test]
fn hostile_pdfs_get_clear_errors_in_bounded_memory() {
    let Some(gnu_time) = common::require_tool("time") else {
        return;
    };
    let dir = common::tempdir();
    let key = common::repo_root().join("certs/demo/agency-signer.p12");
    for (name, bytes) in hostile_inputs() {
        let input = dir.path().join("in.pdf");
        let output = dir.path().join("out.pdf");
        std::fs::write(&input, &bytes).unwrap();
        let verify = run_measured(
            &gnu_time,
            &["verify".as_ref(), "--offline".as_ref(), input.as_os_str()],
        );
        // No signature found (3), or the PDF refused as malformed (65).
        check(name, "verify", verify, &[3, 65]);
        let sign = run_measured(
            &gnu_time,
            &[
                "sign".as_ref(),
                "--key".as_ref(),
                key.as_os_str(),
                "--in".as_ref(),
                input.as_os_str(),
                "--out".as_ref(),
                output.as_os_str(),
            ],
        );
        // Refused (65), or signed when the damage is in an object the signature never reads.
        check(name, "sign", sign.clone(), &[0, 65]);
        if sign.0 != 0 {
            assert!(!output.exists(), "sign {name}: output left behind");
        }
        assert_no_temp_files(dir.path());
        let _ = std::fs::remove_file(&output);
    }
}

fn assert_no_temp_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "temporary file left: {name}");
    }
}

/// An object stream holding one string object `num` of `len` bytes (inflates ~1000x).
fn objstm_with_string(num: usize, len: usize) -> Vec<u8> {
    let index = format!("{num} 0 ");
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(index.as_bytes()).unwrap();
    enc.write_all(b"(").unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..len >> 20 {
        enc.write_all(&chunk).unwrap();
    }
    enc.write_all(b")").unwrap();
    let data = enc.finish().unwrap();
    let mut out = format!(
        "<</Type/ObjStm/N 1/First {}/Length {}/Filter/FlateDecode>>\nstream\n",
        index.len(),
        data.len()
    )
    .into_bytes();
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\nendstream");
    out
}

#[test]
fn object_streams_over_the_total_inflation_budget_are_refused_in_bounded_memory() {
    let Some(gnu_time) = common::require_tool("time") else {
        return;
    };
    // Eight object streams of 24 MiB each: every one under the per-stream limit
    // (pdf::MAX_DECOMPRESSED_STREAM), 192 MiB in all, the objects kept by the parser.
    const STREAM_MIB: usize = 24;
    const { assert!(STREAM_MIB << 20 < signgate::pdf::MAX_DECOMPRESSED_STREAM) };
    let mut objects = base();
    for i in 0..8 {
        objects.push(objstm_with_string(100 + i, STREAM_MIB << 20));
    }
    let bomb = pdf(&objects, "");
    assert!(
        bomb.len() < 1 << 20,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let expected = format!(
        "the object streams inflate to more than {} MiB in all: possible decompression bomb",
        signgate::pdf::MAX_DECOMPRESSED_TOTAL >> 20
    );

    let ctx = signgate::verify::ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: Vec::new(),
        fetcher: None,
    };
    let policy = signgate::verify::Policy::default();
    match signgate::verify::document("bomb.pdf", &bomb, None, &policy, &ctx) {
        Err(e) => {
            assert_eq!(e.code().as_str(), "PDF_MALFORMED", "{e}");
            assert!(e.to_string().contains(&expected), "{e}");
        }
        Ok(report) => panic!("verified an object stream bomb: {:?}", report.indication),
    }
    let opts = signgate::pdf::PdfSignOptions::new(time::OffsetDateTime::now_utc());
    match signgate::pdf::prepare(&bomb, &opts) {
        Err(e) => {
            assert_eq!(e.code().as_str(), "PDF_MALFORMED", "{e}");
            assert!(e.to_string().contains(&expected), "{e}");
        }
        Ok(_) => panic!("prepared an object stream bomb for signing"),
    }

    // The CLI, measured: a clear error (65) and a peak RSS far below the 192 MiB inflated.
    let dir = common::tempdir();
    let input = dir.path().join("bomb.pdf");
    std::fs::write(&input, &bomb).unwrap();
    let (code, stderr, rss) = run_measured(
        &gnu_time,
        &["verify".as_ref(), "--offline".as_ref(), input.as_os_str()],
    );
    println!(
        "object stream bomb: verify exit {code}, peak RSS {} MiB",
        rss / 1024
    );
    assert_eq!(code, 65, "{stderr}");
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(rss < MAX_RSS_KB, "peak RSS {rss} KB");
}

#[test]
fn a_file_with_a_few_small_object_streams_still_parses() {
    // Within the budget: three object streams of 1 MiB load, their objects readable.
    let mut objects = base();
    for i in 0..3 {
        objects.push(objstm_with_string(100 + i, 1 << 20));
    }
    let doc = signgate::pdf::parse_document(&pdf(&objects, "")).expect("parses");
    for i in 0..3 {
        let s = doc
            .get_object((100 + i as u32, 0))
            .expect("object of the stream");
        assert_eq!(s.as_str().expect("a string").len(), 1 << 20);
    }
    assert_eq!(doc.get_pages().len(), 1);
}
