//! PAdES signing end to end, judged by tools we did not write: poppler `pdfsig` (NSS, with
//! live OCSP from an independent `openssl ocsp` responder), pyHanko, `qpdf --check`,
//! `openssl ts -verify`, and page rendering with `pdftoppm`/`pdftotext`; plus
//! `signgate verify` itself.
//!
//! One fixture per test binary ([`fx`]): a demo PKI generated for a free port, an
//! [`OcspResponder`] on that port (OCSP + CRLs + CA certificates), and one
//! `signgate tsa serve`. Statics are never dropped, so a small reaper process (`sh`, reading
//! a pipe only this process holds) kills the responder and the TSA when the test binary
//! exits, whatever way it exits: `cargo test` never waits for them and no orphan survives.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::common::*;

/// Tools every test here needs.
const TOOLS: &[&str] = &["openssl", "pdfsig", "certutil", "pyhanko", "qpdf"];

/// The PDF corpus (tests/data/pdfs, see make_corpus.sh) signed by test 1.
const CORPUS: &[&str] = &[
    "simple.pdf",
    "rotated-3p.pdf",
    "incremental.pdf",
    "hybrid.pdf",
    "objstm.pdf",
    "classic-1.4.pdf",
    "linearized.pdf",
    "cairo.pdf",
    "ghostscript.pdf",
];

/// Shared per-binary state: PKI, revocation responder, TSA.
struct Fixture {
    /// The generated demo PKI.
    pki: PathBuf,
    /// Where tests write their outputs (kept for inspection after a failure).
    out: PathBuf,
    /// `http://127.0.0.1:PORT/` of the TSA.
    tsa_url: String,
    /// OCSP/CRL server at the PKI's base URL.
    responder: OcspResponder,
    /// The TSA's stderr, for diagnostics.
    tsa_log: std::sync::Arc<Mutex<String>>,
    /// Held open for the life of the process; its closing tells the reaper to kill the servers.
    _reaper: Mutex<ChildStdin>,
}

impl Fixture {
    fn file(&self, name: &str) -> PathBuf {
        self.pki.join(name)
    }

    fn root(&self) -> PathBuf {
        self.file("root-ca.pem")
    }

    /// A fresh output path `out/STEM-N.pdf`.
    fn out_path(&self, stem: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.out.join(format!("{stem}-{n}.pdf"))
    }
}

fn fx() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    // Outputs under cargo's scratch dir; drop those of earlier runs whose process is gone.
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pades");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let alive = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    let pki = dir.join("pki");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("create output dir");

    let port = free_port();
    let base_url = format!("http://127.0.0.1:{port}/");
    run_ok(
        signgate(["pki", "demo", "--out"])
            .arg(&pki)
            .args(["--base-url", &base_url]),
    );
    // AIA caIssuers points at {base}certs/issuing-ca.cer (DER): make it servable.
    run_ok(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(pki.join("issuing-ca.pem"))
            .arg("-out")
            .arg(pki.join("issuing-ca.cer")),
    );
    let responder = OcspResponder::start(&pki, port);
    let mut to_kill = vec![responder.pid()];

    let mut tsa = signgate(["tsa", "serve", "--listen", "127.0.0.1:0", "--key"])
        .arg(pki.join("tsa.p12"))
        .env("SIGNGATE_KEY_PASSWORD", "demo")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signgate tsa serve");
    to_kill.push(tsa.id());
    let mut stdout = BufReader::new(tsa.stdout.take().expect("tsa stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read tsa ready line");
    let tsa_url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from tsa serve: {first:?}"))
        .to_string();
    // Drain its output so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    });
    let tsa_log = std::sync::Arc::new(Mutex::new(String::new()));
    {
        let mut err = tsa.stderr.take().expect("tsa stderr");
        let log = tsa_log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }

    // The reaper: waits for EOF on stdin (this process exiting closes the pipe), then
    // kills exactly the servers started above.
    let pids: Vec<String> = to_kill.iter().map(u32::to_string).collect();
    let mut reaper = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "read _ignored; kill {} 2>/dev/null",
            pids.join(" ")
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn reaper");
    let reaper_in = reaper.stdin.take().expect("reaper stdin");
    // `tsa` and `reaper` are not waited for: they outlive this function on purpose
    // (dropping a `Child` neither kills nor waits).
    drop(tsa);
    drop(reaper);

    Fixture {
        pki,
        out,
        tsa_url,
        responder,
        tsa_log,
        _reaper: Mutex::new(reaper_in),
    }
}

// ---------------------------------------------------------------------------------------
// Signing and checking helpers
// ---------------------------------------------------------------------------------------

/// Runs `signgate sign --key PKI/KEY --in INPUT --out OUT ARGS...`, asserting success.
fn sign(key: &str, input: &Path, out: &Path, args: &[&str]) {
    let f = fx();
    let out_cmd = run(signgate(["sign", "--key"])
        .arg(f.file(key))
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(args)
        .env("SIGNGATE_KEY_PASSWORD", "demo"));
    if !out_cmd.status.success() {
        panic!(
            "signgate sign {key} {} {args:?} failed ({:?}): {}\nTSA log: {}",
            input.display(),
            out_cmd.status.code(),
            stderr_str(&out_cmd),
            f.tsa_log.lock().unwrap()
        );
    }
}

/// `signgate verify FILE --trust root --format json`: (exit code, report).
fn signgate_verify(pdf: &Path) -> (Option<i32>, serde_json::Value, String) {
    let out = run(signgate(["verify", "--format", "json", "--trust"])
        .arg(fx().root())
        .arg(pdf));
    let text = stdout_str(&out);
    let json = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "signgate verify {}: bad JSON ({e}): {text}\n{}",
            pdf.display(),
            stderr_str(&out)
        )
    });
    (
        out.status.code(),
        json,
        format!("{text}{}", stderr_str(&out)),
    )
}

/// Asserts `prefix` is a byte prefix of `file`.
fn assert_prefix(prefix: &Path, file: &Path) {
    let a = std::fs::read(prefix).expect("read prefix file");
    let b = std::fs::read(file).expect("read signed file");
    assert!(
        b.len() > a.len() && b[..a.len()] == a[..],
        "{} is not a byte prefix of {} (incremental update expected)",
        prefix.display(),
        file.display()
    );
}

/// Problems found with a PDF that must now carry exactly `n` signatures, all valid and
/// trusted for pdfsig, pyHanko and signgate; the last one covers the whole file.
/// Returns the pdfsig and pyHanko reports for further checks.
fn check_all_valid(
    original: &Path,
    signed: &Path,
    n: usize,
    nss: &NssDb,
) -> (PdfsigReport, PyhankoReport, serde_json::Value) {
    let f = fx();
    let what = signed.display().to_string();
    assert_prefix(original, signed);
    assert!(qpdf_check(signed), "qpdf --check fails for {what}");

    let ps = pdfsig(nss, signed);
    let log = f.responder.request_log();
    assert_eq!(ps.exit_code, Some(0), "pdfsig {what}: {}", ps.raw);
    assert_eq!(ps.signatures.len(), n, "pdfsig {what}: {}", ps.raw);
    for (i, s) in ps.signatures.iter().enumerate() {
        assert!(s.signature_valid(), "pdfsig {what} #{i}: {}", ps.raw);
        assert!(
            s.certificate_trusted(),
            "pdfsig {what} #{i}: {}\nresponder log: {log:?}",
            ps.raw
        );
        assert_eq!(
            s.total_document_signed,
            i == n - 1,
            "pdfsig {what} #{i}: only the last signature covers the whole file: {}",
            ps.raw
        );
    }

    // pyHanko refuses hybrid-reference files unless strict mode is off (by design).
    let root = f.root().to_str().expect("utf-8 path").to_string();
    let mut ph_args = vec!["--trust", root.as_str()];
    if original.file_name().is_some_and(|n| n == "hybrid.pdf") {
        ph_args.push("--no-strict");
    }
    let ph = pyhanko_validate_args(signed, &ph_args).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ph.signatures.len(), n, "pyHanko {what}: {}", ph.raw);
    for (i, s) in ph.signatures.iter().enumerate() {
        assert_eq!(s.kind, "signature", "pyHanko {what} #{i}: {}", ph.raw);
        assert!(
            s.intact && s.valid && s.trusted,
            "pyHanko {what} #{i}: {}",
            ph.raw
        );
        let want = if i == n - 1 {
            "ENTIRE_FILE"
        } else {
            "ENTIRE_REVISION"
        };
        assert_eq!(
            s.coverage.as_deref(),
            Some(want),
            "pyHanko {what} #{i}: {}",
            ph.raw
        );
    }

    let (code, report, raw) = signgate_verify(signed);
    assert_eq!(code, Some(0), "signgate verify {what}: {raw}");
    assert_eq!(report["indication"], "TOTAL_PASSED", "{raw}");
    let sigs = report["signatures"].as_array().expect("signatures array");
    assert_eq!(sigs.len(), n, "{raw}");
    for (i, s) in sigs.iter().enumerate() {
        assert_eq!(s["intact"], true, "signgate verify {what} #{i}: {raw}");
        assert_eq!(
            s["coverage"]["whole_file"],
            i == n - 1,
            "signgate verify {what} #{i}: {raw}"
        );
    }
    (ps, ph, report)
}

/// "Clearly blue" ink, like the handwritten signature sample.
fn is_blue(p: [u8; 3]) -> bool {
    p[2] >= 120 && p[0] <= 110 && (p[2] as i32 - p[0] as i32) >= 60
}

/// "Clearly dark" (black text) ink.
fn is_dark(p: [u8; 3]) -> bool {
    p.iter().all(|&c| c < 110)
}

/// Extracts the DER CMS from the /Contents gap between pdfsig's two signed ranges.
fn cms_of(pdf: &Path, ranges: &[(u64, u64)]) -> Vec<u8> {
    assert_eq!(ranges.len(), 2, "two byte ranges expected: {ranges:?}");
    let data = std::fs::read(pdf).expect("read pdf");
    let gap = &data[ranges[0].1 as usize..ranges[1].0 as usize];
    let hex_text: String = String::from_utf8_lossy(gap)
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    let mut der = hex::decode(&hex_text).expect("hex /Contents");
    // Cut the zero padding after the outer SEQUENCE.
    assert_eq!(der[0], 0x30, "CMS is a SEQUENCE");
    let len = match der[1] {
        l if l < 0x80 => 2 + l as usize,
        0x81 => 3 + der[2] as usize,
        0x82 => 4 + ((der[2] as usize) << 8 | der[3] as usize),
        0x83 => 5 + ((der[2] as usize) << 16 | (der[3] as usize) << 8 | der[4] as usize),
        other => panic!("unexpected DER length byte {other:#x}"),
    };
    der.truncate(len);
    der
}

/// One line of `openssl asn1parse`: (offset, header length, length, rest of the line).
fn asn1_lines(der_file: &Path) -> Vec<(usize, usize, usize, String)> {
    let out = run_ok(
        Command::new("openssl")
            .args(["asn1parse", "-inform", "DER", "-in"])
            .arg(der_file),
    );
    stdout_str(&out)
        .lines()
        .filter_map(|l| {
            // " 3211:d=5  hl=4 l=3429 cons: cont [ 1 ]"
            let (off, rest) = l.trim_start().split_once(':')?;
            let hl = rest.split("hl=").nth(1)?.split_whitespace().next()?;
            let len = rest.split(" l=").nth(1)?.split_whitespace().next()?;
            Some((
                off.trim().parse().ok()?,
                hl.parse().ok()?,
                len.parse().ok()?,
                rest.to_string(),
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. Corpus interop
// ---------------------------------------------------------------------------------------

#[test]
fn corpus_b_b_invisible_is_accepted_by_all_validators() {
    if !require_tools(TOOLS) {
        return;
    }
    let f = fx();
    let nss = NssDb::new(&f.root());
    let mut inputs: Vec<PathBuf> = CORPUS.iter().map(|n| corpus(n)).collect();
    inputs.push(sample_pdf());
    for input in &inputs {
        let stem = input.file_stem().unwrap().to_string_lossy().into_owned();
        let out = f.out_path(&format!("bb-{stem}"));
        sign("agency-signer.p12", input, &out, &[]);
        let (ps, ph, _) = check_all_valid(input, &out, 1, &nss);
        assert_eq!(
            ps.signatures[0].signature_type.as_deref(),
            Some("ETSI.CAdES.detached"),
            "{}",
            ps.raw
        );
        assert_eq!(ph.signatures[0].md_algorithm.as_deref(), Some("sha256"));
    }
    assert!(
        f.responder.ocsp_requests() >= inputs.len(),
        "pdfsig and signgate verify should have asked the OCSP responder: {:?}",
        f.responder.request_log()
    );
}

#[test]
fn visible_signature_on_rotated_pages() {
    if !require_tools(&[TOOLS, &["pdftoppm"]].concat()) {
        return;
    }
    let f = fx();
    let nss = NssDb::new(&f.root());
    let input = corpus("rotated-3p.pdf");
    let image = data_dir().join("images/signature.png");
    // (page, /Rotate as built by make_corpus.sh) — the rect is in displayed coordinates.
    let rect = [300.0, 100.0, 200.0, 90.0];
    let rect_arg = format!("{},{},{},{}", rect[0], rect[1], rect[2], rect[3]);
    for page in [2u32, 3] {
        let out = f.out_path(&format!("rotated-p{page}"));
        sign(
            "official.p12",
            &input,
            &out,
            &[
                "--signature-image",
                image.to_str().unwrap(),
                "--page",
                &page.to_string(),
                "--rect",
                &rect_arg,
            ],
        );
        check_all_valid(&input, &out, 1, &nss);
        // pdftoppm renders the page as displayed: the blue signature must be inside the
        // requested rectangle there, and nowhere else.
        let dpi = 72;
        let img = read_png_rgb(&render_page_png(&out, page, dpi));
        let corners = [rect[0], rect[1], rect[0] + rect[2], rect[1] + rect[3]];
        let (x0, y0, x1, y1) = img.pdf_rect_to_px(corners, dpi);
        let inside = img.count_in(x0, y0, x1, y1, is_blue);
        let total = img.count_in(0, 0, img.width, img.height, is_blue);
        assert!(
            inside > 100,
            "page {page}: only {inside} blue pixels in the displayed rect {rect:?} ({}x{} px)",
            img.width,
            img.height
        );
        assert_eq!(
            inside, total,
            "page {page}: blue ink outside the requested rect"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. B-T
// ---------------------------------------------------------------------------------------

#[test]
fn b_t_signature_time_stamp_is_valid() {
    if !require_tools(TOOLS) {
        return;
    }
    let f = fx();
    let nss = NssDb::new(&f.root());
    let input = sample_pdf();
    let out = f.out_path("bt");
    sign(
        "agency-signer.p12",
        &input,
        &out,
        &["--level", "b-t", "--tsa", &f.tsa_url],
    );
    let (ps, ph, report) = check_all_valid(&input, &out, 1, &nss);
    let s = &ph.signatures[0];
    assert_eq!(s.timestamp_valid, Some(true), "pyHanko: {}", ph.raw);
    assert_eq!(s.timestamp_trusted, Some(true), "pyHanko: {}", ph.raw);
    let ts = &report["signatures"][0]["timestamp"];
    assert_eq!(ts["valid"], true, "signgate verify: {report}");
    assert!(ts["gen_time"].is_string(), "signgate verify: {report}");

    // The signature time-stamp token, checked by `openssl ts -verify` against the
    // signature value it must cover.
    let cms = cms_of(&out, &ps.signatures[0].signed_ranges);
    let cms_file = out.with_extension("p7s");
    std::fs::write(&cms_file, &cms).unwrap();
    let lines = asn1_lines(&cms_file);
    let oid_at = lines
        .iter()
        .position(|l| l.3.contains("id-smime-aa-timeStampToken"))
        .unwrap_or_else(|| panic!("no signature time-stamp attribute in the CMS"));
    // OID, SET, then the token's ContentInfo SEQUENCE.
    let (off, hl, len, ref what) = lines[oid_at + 2];
    assert!(what.contains("SEQUENCE"), "token: {what}");
    let token_file = out.with_extension("tst");
    std::fs::write(&token_file, &cms[off..off + hl + len]).unwrap();
    // The signature value: the last OCTET STRING before the unsigned attributes [1].
    let unsigned_at = (0..oid_at)
        .rev()
        .find(|&i| lines[i].3.contains("cont [ 1 ]"))
        .expect("unsigned attributes");
    let (soff, shl, slen, ref swhat) = lines[unsigned_at - 1];
    assert!(swhat.contains("OCTET STRING"), "signature value: {swhat}");
    let value_file = out.with_extension("sigvalue");
    std::fs::write(&value_file, &cms[soff + shl..soff + shl + slen]).unwrap();
    let untrusted = out.with_extension("chain.pem");
    let chain = [
        std::fs::read(f.file("tsa.pem")).unwrap(),
        std::fs::read(f.file("issuing-ca.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(&untrusted, chain).unwrap();
    let v = run(Command::new("openssl")
        .args(["ts", "-verify", "-token_in", "-in"])
        .arg(&token_file)
        .arg("-data")
        .arg(&value_file)
        .arg("-CAfile")
        .arg(f.root())
        .arg("-untrusted")
        .arg(&untrusted));
    assert!(
        v.status.success() && stdout_str(&v).contains("Verification: OK"),
        "openssl ts -verify: {}{}",
        stdout_str(&v),
        stderr_str(&v)
    );
    // Negative control: the same token does not verify against other data.
    let mut other = std::fs::read(&value_file).unwrap();
    other[0] ^= 1;
    std::fs::write(&value_file, other).unwrap();
    let bad = run(Command::new("openssl")
        .args(["ts", "-verify", "-token_in", "-in"])
        .arg(&token_file)
        .arg("-data")
        .arg(&value_file)
        .arg("-CAfile")
        .arg(f.root())
        .arg("-untrusted")
        .arg(&untrusted));
    assert!(
        !bad.status.success(),
        "openssl ts -verify accepted wrong data"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Algorithms
// ---------------------------------------------------------------------------------------

#[test]
fn rsa_pss_ecdsa_and_sha2_variants() {
    if !require_tools(TOOLS) {
        return;
    }
    let f = fx();
    let nss = NssDb::new(&f.root());
    let input = corpus("simple.pdf");
    // (key, digest, rsa padding, pdfsig hash name, pyHanko mechanism fragment)
    let cases = [
        ("agency-signer.p12", "sha256", "pss", "SHA-256", "pss"),
        (
            "agency-signer-ec.p12",
            "sha256",
            "pkcs1",
            "SHA-256",
            "ecdsa",
        ),
        ("agency-signer.p12", "sha384", "pkcs1", "SHA-384", "rsa"),
        ("agency-signer.p12", "sha512", "pkcs1", "SHA-512", "rsa"),
        ("agency-signer.p12", "sha512", "pss", "SHA-512", "pss"),
        (
            "agency-signer-ec.p12",
            "sha384",
            "pkcs1",
            "SHA-384",
            "ecdsa",
        ),
        (
            "agency-signer-ec.p12",
            "sha512",
            "pkcs1",
            "SHA-512",
            "ecdsa",
        ),
    ];
    for (key, digest, padding, hash_name, mech) in cases {
        let out = f.out_path(&format!("alg-{digest}-{padding}-{}", &key[..key.len() - 4]));
        let mut args = vec!["--digest", digest];
        if key == "agency-signer.p12" {
            args.extend(["--rsa-padding", padding]);
        }
        sign(key, &input, &out, &args);
        let (ps, ph, _) = check_all_valid(&input, &out, 1, &nss);
        assert_eq!(
            ps.signatures[0].hash_algorithm.as_deref(),
            Some(hash_name),
            "{key} {digest} {padding}: {}",
            ps.raw
        );
        let s = &ph.signatures[0];
        assert_eq!(s.md_algorithm.as_deref(), Some(digest), "{}", ph.raw);
        let m = s.mechanism.clone().unwrap_or_default().to_lowercase();
        assert!(
            m.contains(mech),
            "{key} {digest} {padding}: pyHanko mechanism {m:?}, want *{mech}*"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. Two signatures on an xref-stream PDF
// ---------------------------------------------------------------------------------------

#[test]
fn second_signature_on_xref_stream_pdf() {
    if !require_tools(TOOLS) {
        return;
    }
    let f = fx();
    let nss = NssDb::new(&f.root());
    let input = corpus("objstm.pdf");
    let first = f.out_path("two-1");
    let second = f.out_path("two-2");
    let sig_png = data_dir().join("images/signature.png");
    let seal_png = data_dir().join("images/seal.png");
    sign(
        "official.p12",
        &input,
        &first,
        &["--signature-image", sig_png.to_str().unwrap()],
    );
    sign(
        "agency-signer-ec.p12",
        &first,
        &second,
        &["--stamp", seal_png.to_str().unwrap()],
    );
    assert_prefix(&input, &first);
    assert_prefix(&first, &second);
    let (ps, ph, report) = check_all_valid(&input, &second, 2, &nss);
    // check_all_valid already asserted: "Total document signed" only on #2, pyHanko
    // ENTIRE_REVISION then ENTIRE_FILE, signgate whole_file false then true.
    assert!(!ps.signatures[0].total_document_signed);
    assert_eq!(
        ph.signatures[0].coverage.as_deref(),
        Some("ENTIRE_REVISION")
    );
    assert_eq!(report["signatures"][0]["coverage"]["whole_file"], false);
    assert_eq!(report["signatures"][1]["coverage"]["whole_file"], true);
    // Signed by whom we asked, in order.
    assert!(
        ph.signatures[1]
            .mechanism
            .clone()
            .unwrap_or_default()
            .contains("ecdsa"),
        "{}",
        ph.raw
    );
    assert_ne!(ps.signatures[0].signer_cn, ps.signatures[1].signer_cn);
}

// ---------------------------------------------------------------------------------------
// 5. Decree 30: official's signature, then the agency's seal over its left third
// ---------------------------------------------------------------------------------------

#[test]
fn decree_30_signature_then_seal_rendering() {
    if !require_tools(&[TOOLS, &["pdftoppm", "pdftotext"]].concat()) {
        return;
    }
    let f = fx();
    let nss = NssDb::new(&f.root());
    let input = sample_pdf();
    let signed = f.out_path("decree30-sig");
    let sealed = f.out_path("decree30-seal");
    let (x, y, w, h) = (330.0, 90.0, 180.0, 90.0);
    let sig_png = data_dir().join("images/signature.png");
    let seal_png = data_dir().join("images/seal.png");
    sign(
        "official.p12",
        &input,
        &signed,
        &[
            "--signature-image",
            sig_png.to_str().unwrap(),
            "--rect",
            &format!("{x},{y},{w},{h}"),
        ],
    );
    sign(
        "agency-signer.p12",
        &signed,
        &sealed,
        &[
            "--stamp",
            seal_png.to_str().unwrap(),
            "--seal-size-mm",
            "30",
        ],
    );
    assert_prefix(&signed, &sealed);
    let (ps, _, _) = check_all_valid(&input, &sealed, 2, &nss);

    let dpi = 100;
    let before = read_png_rgb(&render_page_png(&input, 1, dpi));
    let img = read_png_rgb(&render_page_png(&sealed, 1, dpi));
    assert_eq!(
        before.count_in(0, 0, before.width, before.height, is_red),
        0,
        "sample.pdf already has red ink"
    );
    let slack = 2.0; // points, for anti-aliasing
    let third = w / 3.0;
    let left = [x, y, x + third, y + h];
    let middle = [x + third + slack, y, x + 2.0 * third, y + h];
    let right = [x + 2.0 * third, y, x + w, y + h];
    let red_left = img.red_pixels_in_pdf_rect(left, dpi);
    let area_left = {
        let (a, b, c, d) = img.pdf_rect_to_px(left, dpi);
        ((c - a) * (d - b)) as usize
    };
    assert!(
        red_left * 20 > area_left,
        "seal should cover the left third of the signature: {red_left} red of {area_left} px"
    );
    assert_eq!(
        img.red_pixels_in_pdf_rect(middle, dpi),
        0,
        "red in middle third"
    );
    assert_eq!(
        img.red_pixels_in_pdf_rect(right, dpi),
        0,
        "red in right third"
    );
    // The seal: a 30 mm square whose right edge is at the first third, centred vertically.
    let d = 30.0 * 72.0 / 25.4;
    let seal = [
        x + third - d - slack,
        y + h / 2.0 - d / 2.0 - slack,
        x + third + slack,
        y + h / 2.0 + d / 2.0 + slack,
    ];
    let in_seal = img.red_pixels_in_pdf_rect(seal, dpi);
    let total_red = img.count_in(0, 0, img.width, img.height, is_red);
    assert_eq!(
        in_seal, total_red,
        "red ink outside the {d:.1} pt seal square {seal:?}"
    );
    // Its size: red spans most of the square's width.
    let (sx0, sy0, sx1, sy1) = img.pdf_rect_to_px(seal, dpi);
    let cols_with_red = (sx0..sx1.min(img.width))
        .filter(|&cx| img.count_in(cx, sy0, cx + 1, sy1, is_red) > 0)
        .count() as f64;
    let want_cols = d * dpi as f64 / 72.0;
    assert!(
        cols_with_red > 0.85 * want_cols,
        "seal narrower than 30 mm: {cols_with_red} of {want_cols:.0} px columns"
    );
    // The handwritten signature (blue) is in the signature rectangle.
    let blue = img.count_in(0, 0, img.width, img.height, is_blue);
    let (bx0, by0, bx1, by1) = img.pdf_rect_to_px([x, y, x + w, y + h], dpi);
    let blue_in = img.count_in(bx0, by0, bx1, by1, is_blue);
    assert!(blue_in > 100, "blue ink in the signature rect: {blue_in}");
    assert_eq!(blue_in, blue, "blue ink outside the signature rect");

    let text = pdftotext(&sealed);
    let cn = ps.signatures[0].signer_cn.clone().expect("signer CN");
    assert!(
        text.lines().any(|l| l.trim() == format!("Ký bởi: {cn}")),
        "no 'Ký bởi: {cn}' line in:\n{text}"
    );
    assert!(
        text.lines().any(|l| is_signing_time_line(l.trim())),
        "no 'Thời gian ký: ...+07:00' line in:\n{text}"
    );
}

/// `Thời gian ký: YYYY-MM-DDTHH:MM:SS+07:00`.
fn is_signing_time_line(line: &str) -> bool {
    let Some(t) = line.strip_prefix("Thời gian ký: ") else {
        return false;
    };
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 25
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && &t[19..] == "+07:00"
}

#[test]
fn signing_time_line_matcher() {
    assert!(is_signing_time_line(
        "Thời gian ký: 2026-11-26T13:38:50+07:00"
    ));
    assert!(!is_signing_time_line("Thời gian ký: 2026-11-26T06:38:50Z"));
    assert!(!is_signing_time_line(
        "Thời gian ký: 2026-11-26 13:38:50+07:00"
    ));
}

// ---------------------------------------------------------------------------------------
// 6. Attachment and copy stamps
// ---------------------------------------------------------------------------------------

/// Text of the top-right region of page 1 (x ≥ 395 pt, top 110 pt) of an A4 page.
fn top_right_text(pdf: &Path) -> Vec<String> {
    let out = run_ok(
        Command::new("pdftotext")
            .args(["-enc", "UTF-8", "-f", "1", "-l", "1", "-r", "72"])
            .args(["-x", "395", "-y", "0", "-W", "200", "-H", "110"])
            .arg(pdf)
            .arg("-"),
    );
    stdout_str(&out)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && l != "\u{c}")
        .collect()
}

fn check_text_stamp(extra: &[&str], want_middle: &[&str], stem: &str) {
    let f = fx();
    let nss = NssDb::new(&f.root());
    let input = sample_pdf();
    let out = f.out_path(stem);
    sign("agency-signer.p12", &input, &out, extra);
    let (ps, _, _) = check_all_valid(&input, &out, 1, &nss);

    // Agency name = O of the signer certificate, as pdfsig reads it.
    let dn = ps.signatures[0].signer_dn.clone().expect("signer DN");
    let org = dn
        .split(',')
        .find_map(|p| p.trim().strip_prefix("O="))
        .unwrap_or_else(|| panic!("no O= in {dn}"))
        .to_string();
    assert!(
        top_right_text(&input).is_empty(),
        "top right of sample.pdf is not empty"
    );
    let lines = top_right_text(&out);
    assert_eq!(lines.len(), 2 + want_middle.len(), "stamp lines: {lines:?}");
    assert_eq!(lines[0], org, "stamp lines: {lines:?}");
    for (i, want) in want_middle.iter().enumerate() {
        assert_eq!(&lines[1 + i], want, "stamp lines: {lines:?}");
    }
    assert!(
        is_signing_time_line(lines.last().unwrap()),
        "stamp lines: {lines:?}"
    );

    // Rendered: black ink in the top-right region, none there before.
    let dpi = 72;
    let ink_in = |img: &RgbImage, r: [f64; 4]| {
        let (x0, y0, x1, y1) = img.pdf_rect_to_px(r, dpi);
        img.count_in(x0, y0, x1, y1, is_dark)
    };
    let region = |img: &RgbImage| ink_in(img, [395.0, 842.0 - 110.0, 595.0, 842.0]);
    let before = read_png_rgb(&render_page_png(&input, 1, dpi));
    let after = read_png_rgb(&render_page_png(&out, 1, dpi));
    assert_eq!(region(&before), 0, "sample.pdf has ink at the top right");
    assert!(region(&after) > 100, "no stamp ink at the top right");
    // Inside the 20 pt page margins (2 pt anti-aliasing slack).
    assert_eq!(
        ink_in(&after, [577.0, 0.0, 595.0, 842.0]),
        0,
        "ink in the right margin"
    );
    assert_eq!(
        ink_in(&after, [0.0, 824.0, 595.0, 842.0]),
        0,
        "ink in the top margin"
    );
    // The rest of the page is unchanged.
    let all = |img: &RgbImage| img.count_in(0, 0, img.width, img.height, is_dark);
    assert_eq!(
        all(&after) - region(&after),
        all(&before),
        "ink changed outside the stamp region"
    );
}

#[test]
fn attachment_stamp_top_right() {
    if !require_tools(&[TOOLS, &["pdftoppm", "pdftotext"]].concat()) {
        return;
    }
    check_text_stamp(
        &["--attachment-stamp", "--doc-number", "123/QĐ-UBND"],
        &["Số: 123/QĐ-UBND"],
        "attachment",
    );
}

#[test]
fn copy_stamp_top_right() {
    if !require_tools(&[TOOLS, &["pdftoppm", "pdftotext"]].concat()) {
        return;
    }
    check_text_stamp(&["--copy-stamp"], &["Bản sao điện tử"], "copy");
}
