//! The interop matrix (issue 14): other signing tools sign at test time, with the keys of a
//! generated demo PKI served live (`common::LiveServices`: OCSP, CRLs, a time-stamp authority),
//! and `signgate verify` must give each file the verdict its producer intends, and the same file
//! with one signed byte flipped `intact: false`; an independent verifier (`pdfsig`, `openssl cms`,
//! `xmlsec1`) must agree with signgate on whether the valid file verifies. No producer's output
//! is committed.
//!
//! Producers (each fails under `CI=true` when its tool is missing, else is skipped):
//! - Java: Apache PDFBox 2 with BouncyCastle (Debian's jars) and the JDK's `javax.xml.crypto`,
//!   through `tests/interop/java/InteropSigner.java`, compiled here with `javac` into `target/`;
//! - Python (the test venv, `tests/requirements.txt`): pyHanko, endesive, signxml, through
//!   `tests/interop/python/produce.py`;
//! - Node: `@signpdf/signpdf` with its P12 signer (`tests/interop/node/`, `npm ci` by `tests/run`).
//!
//! The test writes the matrix to `target/interop-matrix.md` and requires README.md to hold
//! exactly that table between `<!-- interop-matrix:begin -->` and `<!-- interop-matrix:end -->`
//! (checked when every producer ran), so the README cannot drift from what was tested.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common;

/// Debian's jars the Java producer needs (`tests/run` installs their packages).
const JARS: &[&str] = &[
    "pdfbox2.jar",
    "fontbox2.jar",
    "bcprov.jar",
    "bcpkix.jar",
    "bcutil.jar",
    "commons-logging.jar",
];

/// The `xml:lang` attribute on generic.xml's root element.
const LANG: &str = " xml:lang=\"vi\"";

const BEGIN: &str = "<!-- interop-matrix:begin -->";
const END: &str = "<!-- interop-matrix:end -->";

/// The verdict of a valid signature checked online against the live demo PKI.
const PASSED: &str = "intact, TOTAL_PASSED";
/// The verdict of a signature whose signed content changed (digest mismatch).
const HASH_FAILED: &str = "not intact, TOTAL_FAILED / HASH_FAILURE";

/// How the tampered copy of a cell's file is made.
#[derive(Clone, Copy)]
enum Tamper {
    /// Flip a bit of the PDF's binary comment (line 2): inside the first byte range, ignored by
    /// parsers, so only the digest can notice.
    PdfComment,
    /// Flip a bit in the middle of the detached content.
    Content,
    /// Replace the first occurrence of the first text by the second, as long, in the signed XML.
    Replace(&'static str, &'static str),
}

/// One cell of the matrix: a file signed by a producer and the verdicts it must get.
struct Cell {
    producer: String,
    format: &'static str,
    level: &'static str,
    file: PathBuf,
    content: Option<PathBuf>,
    tamper: Tamper,
    valid: String,
    tampered: String,
}

fn java_ready() -> bool {
    common::require_tools(&["java", "javac"])
        && JARS.iter().all(|j| {
            common::require_file(&Path::new("/usr/share/java").join(j), "a Java producer jar")
        })
}

fn node_dir() -> PathBuf {
    common::repo_root().join("tests/interop/node")
}

fn node_ready() -> bool {
    common::require_tool("node").is_some()
        && common::require_file(
            &node_dir().join("node_modules/@signpdf/signpdf/package.json"),
            "the Node producers (npm ci in tests/interop/node)",
        )
}

/// The first line of `cmd`'s stdout (each producer prints its versions first), after success.
fn first_line(cmd: &mut Command) -> String {
    let out = common::run_ok(cmd);
    common::stdout_str(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `NAME VERSION` of `name` in a producer's version line `A 1, B 2, …`.
fn version_of(line: &str, name: &str) -> String {
    line.split(", ")
        .find(|p| p.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} version in {line:?}"))
        .to_string()
}

/// Compiles the Java producer into `target/interop-java/` and signs every Java cell in one JVM.
fn java_cells(s: &common::LiveServices, out: &Path) -> Vec<Cell> {
    let classes = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/")
        .join("interop-java");
    std::fs::create_dir_all(&classes).unwrap();
    let classpath = JARS
        .iter()
        .map(|j| format!("/usr/share/java/{j}"))
        .collect::<Vec<_>>()
        .join(":");
    common::run_ok(
        Command::new("javac")
            .arg("-d")
            .arg(&classes)
            .args(["-cp", &classpath])
            .arg(common::repo_root().join("tests/interop/java/InteropSigner.java")),
    );
    let rsa = s.pki.path("agency-signer.p12");
    let ec = s.pki.path("agency-signer-ec.p12");
    let pdf = common::sample_pdf();
    let xml = common::data_dir().join("xml/generic.xml");
    let jobs: [(&str, &Path, &Path, &str); 7] = [
        ("pdf-der", &rsa, &pdf, "pdfbox-der.pdf"),
        ("pdf-ber", &rsa, &pdf, "pdfbox-ber.pdf"),
        ("pdf-cades", &ec, &pdf, "pdfbox-cades.pdf"),
        ("cms-cades", &rsa, &pdf, "bc-cades.p7s"),
        ("cms-ber", &ec, &pdf, "bc-ber.p7s"),
        ("xml-incl", &rsa, &xml, "jdk-incl.xml"),
        ("xml-excl", &ec, &xml, "jdk-excl.xml"),
    ];
    let list = jobs
        .iter()
        .map(|(kind, p12, input, file)| {
            format!(
                "{kind}\t{}\t{}\t{}\n",
                p12.display(),
                input.display(),
                out.join(file).display()
            )
        })
        .collect::<String>();
    let list_file = out.join("java-jobs.tsv");
    std::fs::write(&list_file, list).unwrap();
    let versions = first_line(
        Command::new("java")
            .arg("-cp")
            .arg(format!("{classpath}:{}", classes.display()))
            .arg("InteropSigner")
            .arg(&list_file),
    );
    let pdfbox = format!(
        "{} + {}",
        version_of(&versions, "PDFBox"),
        version_of(&versions, "BouncyCastle")
    );
    let bc = version_of(&versions, "BouncyCastle");
    let jdk = format!("{} javax.xml.crypto", version_of(&versions, "Java"));
    let cell = |producer: &str, format, level, file: &str, tamper| Cell {
        producer: producer.to_string(),
        format,
        level,
        file: out.join(file),
        content: matches!(tamper, Tamper::Content).then(|| pdf.clone()),
        tamper,
        valid: PASSED.into(),
        tampered: HASH_FAILED.into(),
    };
    vec![
        cell(
            &pdfbox,
            "PDF adbe.pkcs7.detached",
            "RSA, DER CMS",
            "pdfbox-der.pdf",
            Tamper::PdfComment,
        ),
        cell(
            &pdfbox,
            "PDF adbe.pkcs7.detached",
            "RSA, BER CMS (streaming generator)",
            "pdfbox-ber.pdf",
            Tamper::PdfComment,
        ),
        cell(
            &pdfbox,
            "PDF ETSI.CAdES.detached",
            "B-B, ECDSA P-256, signing-certificate-v2",
            "pdfbox-cades.pdf",
            Tamper::PdfComment,
        ),
        cell(
            &bc,
            "CAdES detached (.p7s)",
            "B-B, RSA, DER",
            "bc-cades.p7s",
            Tamper::Content,
        ),
        cell(
            &bc,
            "CMS detached (.p7s)",
            "ECDSA P-256, BER (streaming generator)",
            "bc-ber.p7s",
            Tamper::Content,
        ),
        cell(
            &jdk,
            "XML-DSig enveloped",
            "RSA-SHA256, C14N 1.0, X509Data chain",
            "jdk-incl.xml",
            Tamper::Replace("123/Q", "124/Q"),
        ),
        cell(
            &jdk,
            "XML-DSig enveloped",
            "ECDSA-SHA256, exclusive C14N, X509Data chain",
            "jdk-excl.xml",
            Tamper::Replace("123/Q", "124/Q"),
        ),
    ]
}

/// Signs every Python cell with `tests/interop/python/produce.py` in the test venv.
fn python_cells(s: &common::LiveServices, py: &Path, out: &Path) -> Vec<Cell> {
    let script = common::repo_root().join("tests/interop/python/produce.py");
    let versions = first_line(Command::new(py).arg(&script).arg("versions"));
    let rsa = s.pki.path("agency-signer.p12");
    let ec = s.pki.path("agency-signer-ec.p12");
    let pdf = common::sample_pdf();
    let xml = common::data_dir().join("xml/generic.xml");
    let tsa = s.tsa.url.as_str();
    let mut cells = Vec::new();
    let mut produce = |name: &str,
                       cmd: &str,
                       p12: &Path,
                       input: &Path,
                       file: &str,
                       extra: &[&str],
                       (format, level): (&'static str, &'static str),
                       tamper: Tamper,
                       (valid, tampered): (&str, &str)| {
        let target = out.join(file);
        common::run_ok(
            Command::new(py)
                .arg(&script)
                .arg(cmd)
                .arg(p12)
                .arg(input)
                .arg(&target)
                .args(extra),
        );
        cells.push(Cell {
            producer: version_of(&versions, name),
            format,
            level,
            file: target,
            content: matches!(tamper, Tamper::Content).then(|| input.to_path_buf()),
            tamper,
            valid: valid.into(),
            tampered: tampered.into(),
        });
    };
    let ts_passed = format!("{PASSED}; time-stamp TOTAL_PASSED");
    let plain = (PASSED, HASH_FAILED);
    let timestamped = (ts_passed.as_str(), HASH_FAILED);
    let xml_tamper = Tamper::Replace("123/Q", "124/Q");
    produce(
        "pyHanko",
        "pyhanko-pdf",
        &rsa,
        &pdf,
        "pyhanko-bb.pdf",
        &[],
        ("PDF ETSI.CAdES.detached", "PAdES B-B, RSA"),
        Tamper::PdfComment,
        plain,
    );
    produce(
        "pyHanko",
        "pyhanko-pdf",
        &ec,
        &pdf,
        "pyhanko-bt.pdf",
        &["--tsa", tsa],
        ("PDF ETSI.CAdES.detached", "PAdES B-T, ECDSA P-256"),
        Tamper::PdfComment,
        timestamped,
    );
    produce(
        "endesive",
        "endesive-pdf",
        &rsa,
        &pdf,
        "endesive.pdf",
        &[],
        ("PDF adbe.pkcs7.detached", "RSA"),
        Tamper::PdfComment,
        plain,
    );
    produce(
        "endesive",
        "endesive-pdf",
        &rsa,
        &pdf,
        "endesive-ts.pdf",
        &["--tsa", tsa],
        ("PDF adbe.pkcs7.detached", "RSA, signature time-stamp"),
        Tamper::PdfComment,
        timestamped,
    );
    produce(
        "endesive",
        "endesive-cms",
        &rsa,
        &pdf,
        "endesive.p7s",
        &[],
        ("CMS detached (.p7s)", "RSA, signed attributes"),
        Tamper::Content,
        plain,
    );
    produce(
        "endesive",
        "endesive-cms",
        &rsa,
        &pdf,
        "endesive-noattrs.p7s",
        &["--noattrs"],
        ("CMS detached (.p7s)", "RSA, no signed attributes"),
        Tamper::Content,
        plain,
    );
    produce(
        "endesive",
        "endesive-cms",
        &rsa,
        &pdf,
        "endesive-pss.p7s",
        &["--pss"],
        ("CMS detached (.p7s)", "RSASSA-PSS, signed attributes"),
        Tamper::Content,
        plain,
    );
    // signxml canonicalizes SignedInfo without the xml:lang it inherits from the root, which
    // C14N 1.0 (§2.4) imports into a document subset: over generic.xml (xml:lang="vi" on the
    // root) its value does not verify, for xmlsec1 either; without xml:lang it does.
    let no_lang = out.join("generic-no-lang.xml");
    let generic = std::fs::read_to_string(&xml).unwrap();
    assert!(
        generic.contains(LANG),
        "generic.xml has xml:lang on its root"
    );
    std::fs::write(&no_lang, generic.replacen(LANG, "", 1)).unwrap();
    produce(
        "signxml",
        "signxml",
        &rsa,
        &no_lang,
        "signxml.xml",
        &[],
        ("XML-DSig enveloped", "RSA-SHA256, C14N 1.0"),
        xml_tamper,
        plain,
    );
    produce(
        "signxml",
        "signxml",
        &rsa,
        &xml,
        "signxml-lang.xml",
        &[],
        (
            "XML-DSig enveloped",
            "RSA-SHA256, C14N 1.0, xml:lang on the root (left out of SignedInfo by signxml)",
        ),
        xml_tamper,
        ("not intact, TOTAL_FAILED / SIG_CRYPTO_FAILURE", HASH_FAILED),
    );
    produce(
        "signxml",
        "signxml",
        &ec,
        &xml,
        "signxml-exc.xml",
        &["--exclusive"],
        ("XML-DSig enveloped", "ECDSA-SHA256, exclusive C14N"),
        xml_tamper,
        plain,
    );
    cells
}

/// Signs the Node cell with `tests/interop/node/sign.js`.
fn node_cells(s: &common::LiveServices, out: &Path) -> Vec<Cell> {
    let script = node_dir().join("sign.js");
    let versions = first_line(Command::new("node").arg(&script).arg("versions"));
    let target = out.join("signpdf.pdf");
    common::run_ok(
        Command::new("node")
            .arg(&script)
            .arg(s.pki.path("agency-signer.p12"))
            .arg(common::sample_pdf())
            .arg(&target),
    );
    vec![Cell {
        producer: format!(
            "{} (P12 signer, {})",
            version_of(&versions, "@signpdf/signpdf"),
            version_of(&versions, "node-forge")
        ),
        format: "PDF adbe.pkcs7.detached",
        level: "RSA, plain placeholder",
        file: target,
        content: None,
        tamper: Tamper::PdfComment,
        valid: PASSED.into(),
        tampered: HASH_FAILED.into(),
    }]
}

/// `input` with one signed byte changed per `tamper`; `None` when the layout does not allow it.
fn tampered(input: &[u8], tamper: Tamper) -> Option<Vec<u8>> {
    let mut out = input.to_vec();
    match tamper {
        Tamper::PdfComment => {
            let eol = out.iter().position(|b| *b == b'\n')?;
            if out.get(eol + 1) != Some(&b'%') || out.get(eol + 2)? & 0x80 == 0 {
                return None;
            }
            out[eol + 2] ^= 0x01;
        }
        Tamper::Content => {
            let mid = out.len() / 2;
            *out.get_mut(mid)? ^= 0x01;
        }
        Tamper::Replace(from, to) => {
            let at = out.windows(from.len()).position(|w| w == from.as_bytes())?;
            out[at..at + from.len()].copy_from_slice(to.as_bytes());
        }
    }
    Some(out)
}

/// `signgate verify --trust ROOT [--content C] FILE`, online against the live PKI: the verdict.
fn verdict(s: &common::LiveServices, file: &Path, content: Option<&Path>) -> String {
    let mut cmd = common::signgate(["verify", "--trust"]);
    cmd.arg(s.pki.root());
    if let Some(c) = content {
        cmd.arg("--content").arg(c);
    }
    let out = common::run(cmd.arg(file));
    let Ok(report) = serde_json::from_slice::<Value>(&out.stdout) else {
        let err = common::stderr_str(&out);
        return format!("refused: {}", err.lines().next().unwrap_or_default());
    };
    render(&report)
}

/// An independent verifier's verdict on `file` (signed by a producer): `pdfsig -nocert` (poppler,
/// the first signature's cryptographic check), `openssl cms -verify` or `xmlsec1 --verify`
/// against the PKI's root; its name and true when it accepts the file.
fn oracle(s: &common::LiveServices, file: &Path, content: Option<&Path>) -> (&'static str, bool) {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let root = s.pki.root();
    match ext {
        "pdf" => {
            let out = common::run(Command::new("pdfsig").arg("-nocert").arg(file));
            let text = common::stdout_str(&out);
            let first = text
                .lines()
                .find(|l| l.contains("Signature Validation:"))
                .unwrap_or_default();
            ("pdfsig", first.contains("Signature is Valid."))
        }
        "p7s" => {
            let out = common::run(
                Command::new("openssl")
                    .args([
                        "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
                    ])
                    .arg("-in")
                    .arg(file)
                    .arg("-content")
                    .arg(content.expect("detached content"))
                    .arg("-CAfile")
                    .arg(&root)
                    .args(["-out", "/dev/null"]),
            );
            ("openssl cms", out.status.success())
        }
        _ => {
            let out = common::run(
                Command::new("xmlsec1")
                    .arg("--verify")
                    .arg("--trusted-pem")
                    .arg(&root)
                    .arg("--untrusted-pem")
                    .arg(s.pki.path("issuing-ca.pem"))
                    .arg(file),
            );
            ("xmlsec1", out.status.success())
        }
    }
}

/// One line for a report: the first signature's `intact`, indication and sub-indication, its
/// time-stamp's indication if it has one, and the count when there is not exactly one signature.
fn render(report: &Value) -> String {
    let sigs = report["signatures"].as_array().cloned().unwrap_or_default();
    let Some(s) = sigs.first() else {
        return format!("no signature, {}", report["indication"]);
    };
    let mut v = format!(
        "{}, {}",
        if s["intact"] == true {
            "intact"
        } else {
            "not intact"
        },
        s["indication"].as_str().unwrap_or("?")
    );
    if let Some(sub) = s["sub_indication"].as_str() {
        v.push_str(&format!(" / {sub}"));
    }
    if let Some(ts) = s["timestamp"].as_object() {
        v.push_str(&format!(
            "; time-stamp {}",
            ts["indication"].as_str().unwrap_or("?")
        ));
        if let Some(sub) = ts["sub_indication"].as_str() {
            v.push_str(&format!(" / {sub}"));
        }
    }
    if sigs.len() != 1 {
        v.push_str(&format!(" ({} signatures)", sigs.len()));
    }
    v
}

/// The Markdown table of `rows` (producer, format, level, valid verdict, tampered verdict,
/// the independent verifier's verdict on the valid file).
fn table(rows: &[[String; 6]]) -> String {
    let mut t = String::from(
        "| producer | format | level, key, encoding | valid file | one signed byte flipped | \
         independent check of the valid file |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        t.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    t
}

/// README.md's text between the interop-matrix markers, trimmed of the newlines next to them.
fn readme_table() -> Option<String> {
    let readme = std::fs::read_to_string(common::repo_root().join("README.md")).unwrap();
    let start = readme.find(BEGIN)? + BEGIN.len();
    let end = start + readme[start..].find(END)?;
    Some(readme[start..end].trim_matches('\n').to_string() + "\n")
}

#[test]
fn independent_producers_get_their_intended_verdicts_and_the_readme_shows_the_matrix() {
    if !common::require_tools(&["pdfsig", "openssl", "xmlsec1"]) {
        return;
    }
    let java = java_ready();
    let python = common::pyhanko_python();
    let node = node_ready();
    if !java && python.is_none() && !node {
        return;
    }
    let s = common::LiveServices::start();
    let out = common::tempdir();
    let mut cells = Vec::new();
    std::thread::scope(|scope| {
        let j = java.then(|| scope.spawn(|| java_cells(&s, out.path())));
        let p = python
            .as_deref()
            .map(|py| scope.spawn(|| python_cells(&s, py, out.path())));
        let n = node.then(|| scope.spawn(|| node_cells(&s, out.path())));
        for h in [j, p, n].into_iter().flatten() {
            cells.extend(h.join().expect("a producer failed"));
        }
    });

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for c in &cells {
        let valid = verdict(&s, &c.file, c.content.as_deref());
        let (signed, content) = match &c.content {
            Some(content) => (c.file.clone(), std::fs::read(content).unwrap()),
            None => (c.file.clone(), std::fs::read(&c.file).unwrap()),
        };
        let bad = tampered(&content, c.tamper)
            .unwrap_or_else(|| panic!("{}: cannot tamper with {}", c.producer, signed.display()));
        let bad_file = c.file.with_extension(format!(
            "tampered.{}",
            c.file.extension().unwrap().to_string_lossy()
        ));
        std::fs::write(&bad_file, bad).unwrap();
        let tampered_verdict = match &c.content {
            Some(_) => verdict(&s, &c.file, Some(&bad_file)),
            None => verdict(&s, &bad_file, None),
        };
        let what = format!("{} {} {}", c.producer, c.format, c.level);
        if valid != c.valid {
            failures.push(format!(
                "{what}: valid file: expected {:?}, got {valid:?}",
                c.valid
            ));
        }
        if tampered_verdict != c.tampered {
            failures.push(format!(
                "{what}: tampered copy: expected {:?}, got {tampered_verdict:?}",
                c.tampered
            ));
        }
        let (tool, accepts) = oracle(&s, &c.file, c.content.as_deref());
        if accepts != valid.starts_with("intact") {
            failures.push(format!(
                "{what}: {tool} {} the valid file, signgate says {valid:?}",
                if accepts { "accepts" } else { "rejects" }
            ));
        }
        rows.push([
            c.producer.clone(),
            c.format.to_string(),
            c.level.to_string(),
            valid,
            tampered_verdict,
            format!("{tool}: {}", if accepts { "valid" } else { "invalid" }),
        ]);
    }
    let matrix = table(&rows);
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/")
        .join("interop-matrix.md");
    std::fs::write(&target, &matrix).unwrap();
    assert!(
        failures.is_empty(),
        "cells with another verdict than intended:\n{}\n(matrix in {})",
        failures.join("\n"),
        target.display()
    );
    if !(java && python.is_some() && node) {
        eprintln!("skipping the README check: not every producer ran");
        return;
    }
    assert_eq!(
        readme_table().as_deref(),
        Some(matrix.as_str()),
        "README.md's interop table (between {BEGIN} and {END}) must be exactly {}",
        target.display()
    );
}
