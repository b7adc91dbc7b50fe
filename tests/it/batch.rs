//! `signgate batch-sign`: mixed batches with broken inputs, kill-and-resume, SoftHSM2 keys.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signgate::batch::journal::JOURNAL_NAME;
use signgate::batch::{sample, BatchOptions, Engine};
use signgate::keys::{KeyError, KeySource, Pkcs12Key};
use signgate::ErrorCode;

fn demo(name: &str) -> PathBuf {
    common::repo_root().join("certs/demo").join(name)
}

/// Writes `pdfs` generated PDFs and `texts` small XML files into `dir`.
fn make_inputs(dir: &Path, pdfs: usize, texts: usize, pdf_size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..pdfs {
        std::fs::write(
            dir.join(format!("doc-{i:04}.pdf")),
            sample::pdf(i, pdf_size),
        )
        .unwrap();
    }
    for i in 0..texts {
        std::fs::write(
            dir.join(format!("tk-{i:04}.xml")),
            sample::tax_declaration(i),
        )
        .unwrap();
    }
}

fn batch_cmd(input: &Path, out: &Path) -> Command {
    let mut c = common::signgate(["batch-sign", "--key"]);
    c.arg(demo("agency-signer.p12"))
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(out)
        .arg("--json")
        .env("SIGNGATE_KEY_PASSWORD", "demo");
    c
}

fn summary(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json summary: {e}: {}", common::stdout_str(out)))
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

fn journal_lines(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join(JOURNAL_NAME)).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `signgate verify --offline`: the signature is intact (digest and value check).
fn assert_intact(file: &Path, content: Option<&Path>) {
    let mut c = common::signgate(["verify", "--offline", "--trust"]);
    c.arg(demo("root-ca.pem"));
    if let Some(content) = content {
        c.arg("--content").arg(content);
    }
    c.arg(file);
    let out = common::run(&mut c);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify {}: {e}: {}",
            file.display(),
            common::stderr_str(&out)
        )
    });
    let sigs = report["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), 1, "{report}");
    assert_eq!(sigs[0]["intact"], true, "{}: {report}", file.display());
}

#[test]
fn mixed_batch_signs_good_documents_and_lists_broken_ones() {
    let tmp = common::tempdir();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    make_inputs(&input, 240, 40, 3000);
    for broken in ["truncated.pdf", "encrypted.pdf"] {
        std::fs::copy(common::corpus(broken), input.join(broken)).unwrap();
    }
    let run = common::run_expect(&mut batch_cmd(&input, &out), 3);
    let s = summary(&run);
    assert_eq!(s["signed"], 280, "{s}");
    assert_eq!(s["skipped"], 0, "{s}");
    let failed: HashMap<String, String> = s["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = Path::new(f["input"].as_str().unwrap()).file_name().unwrap();
            (
                name.to_string_lossy().into_owned(),
                f["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(failed.len(), 2, "{s}");
    assert_eq!(failed["truncated.pdf"], "PDF_MALFORMED");
    assert_eq!(failed["encrypted.pdf"], "PDF_ENCRYPTED");
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    assert!(!out.join("truncated.pdf").exists() && !out.join("encrypted.pdf").exists());
    assert_eq!(journal_lines(&out).len(), 280);

    for name in ["doc-0000.pdf", "doc-0117.pdf", "doc-0239.pdf"] {
        assert_intact(&out.join(name), None);
    }
    // XML is signed as XML-DSig by default (CONTRACTS §1), under its root element's profile.
    assert_intact(&out.join("tk-0007.xml"), None);
    if common::require_tools(&["pdfsig", "certutil"]) {
        let nss = common::NssDb::new(&demo("root-ca.pem"));
        let report = common::pdfsig_args(&nss, &out.join("doc-0042.pdf"), &["-nocert"]);
        assert_eq!(report.signatures.len(), 1, "{}", report.raw);
        assert!(report.signatures[0].signature_valid(), "{}", report.raw);
        assert!(report.signatures[0].total_document_signed, "{}", report.raw);
    }

    // A second run changes nothing: every good document is skipped, outputs untouched.
    let before = std::fs::read(out.join("doc-0005.pdf")).unwrap();
    let again = summary(&common::run_expect(&mut batch_cmd(&input, &out), 3));
    assert_eq!(again["signed"], 0, "{again}");
    assert_eq!(again["skipped"], 280, "{again}");
    assert_eq!(std::fs::read(out.join("doc-0005.pdf")).unwrap(), before);

    // An output edited after signing no longer matches its journal entry: it is redone.
    std::fs::write(out.join("doc-0006.pdf"), b"tampered").unwrap();
    let redo = summary(&common::run_expect(&mut batch_cmd(&input, &out), 3));
    assert_eq!(redo["signed"], 1, "{redo}");
    assert_intact(&out.join("doc-0006.pdf"), None);
}

#[test]
fn killed_batch_resumes_without_signing_twice() {
    let tmp = common::tempdir();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    make_inputs(&input, 1500, 0, 2000);
    let mut child = batch_cmd(&input, &out)
        .args(["--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while journal_lines(&out).len() < 100 {
        assert!(Instant::now() < deadline, "batch made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "batch finished before it could be killed"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let finished = journal_lines(&out);
    assert!(finished.len() < 1500, "killed too late: {}", finished.len());
    let kept: Vec<(String, Vec<u8>)> = finished
        .iter()
        .map(|e| {
            let name = e["output"].as_str().unwrap().to_string();
            let bytes = std::fs::read(out.join(&name)).unwrap();
            (name, bytes)
        })
        .collect();

    let s = summary(&common::run_ok(&mut batch_cmd(&input, &out)));
    let (signed, skipped) = (
        s["signed"].as_u64().unwrap(),
        s["skipped"].as_u64().unwrap(),
    );
    assert_eq!(signed + skipped, 1500, "{s}");
    assert!(
        skipped >= kept.len() as u64,
        "{s}: {} finished before the kill",
        kept.len()
    );
    for (name, bytes) in &kept {
        assert_eq!(
            &std::fs::read(out.join(name)).unwrap(),
            bytes,
            "{name} changed on resume"
        );
    }
    // Nothing signed twice: each output has exactly one journal entry across both runs.
    let mut seen = HashMap::new();
    for e in journal_lines(&out) {
        *seen
            .entry(e["output"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 1500);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.len() <= 1, "signed twice: {twice:?}");
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    assert_intact(&out.join("doc-1499.pdf"), None);
}

#[test]
fn softhsm_batch_verifies() {
    let tmp = common::tempdir();
    let Some(conf) = common::softhsm_token(&tmp) else {
        return;
    };
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    make_inputs(&input, 40, 10, 3000);
    std::fs::copy(common::corpus("truncated.pdf"), input.join("truncated.pdf")).unwrap();
    let pin_file = tmp.path().join("pin");
    std::fs::write(&pin_file, "1234\n").unwrap();
    let mut c = common::signgate([
        "batch-sign",
        "--key",
        "pkcs11:token=T;object=agency",
        "--json",
        "--chain",
    ]);
    c.arg(demo("issuing-ca.pem"))
        .arg("--pin-file")
        .arg(&pin_file)
        .arg("--in")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .env("SOFTHSM2_CONF", &conf);
    let s = summary(&common::run_expect(&mut c, 3));
    assert_eq!(s["signed"], 50, "{s}");
    assert_eq!(s["failed"][0]["code"], "PDF_MALFORMED", "{s}");
    assert_intact(&out.join("doc-0003.pdf"), None);
    assert_intact(&out.join("tk-0004.xml"), None);
    if common::require_tools(&["pdfsig", "certutil"]) {
        let nss = common::NssDb::new(&demo("root-ca.pem"));
        let report = common::pdfsig_args(&nss, &out.join("doc-0011.pdf"), &["-nocert"]);
        assert!(report.signatures[0].signature_valid(), "{}", report.raw);
    }

    // `sign` takes the same key (PSS this time, id= form); a wrong PIN is KEY_PASSWORD_WRONG
    // and never printed.
    let signed = tmp.path().join("one.pdf");
    let mut one = common::signgate([
        "sign",
        "--key",
        "pkcs11:token=T;id=%01",
        "--rsa-padding",
        "pss",
        "--in",
    ]);
    one.arg(input.join("doc-0001.pdf"))
        .arg("--out")
        .arg(&signed)
        .env("SOFTHSM2_CONF", &conf)
        .env("SIGNGATE_PKCS11_PIN", "1234");
    common::run_ok(&mut one);
    assert_intact(&signed, None);
    let mut bad = common::signgate(["sign", "--key", "pkcs11:token=T;object=agency", "--in"]);
    bad.arg(input.join("doc-0001.pdf"))
        .arg("--out")
        .arg(tmp.path().join("bad.pdf"))
        .env("SOFTHSM2_CONF", &conf)
        .env("SIGNGATE_PKCS11_PIN", "98765");
    let out_bad = common::run_expect(&mut bad, 77);
    let err = common::stderr_str(&out_bad);
    assert!(
        err.contains("KEY_PASSWORD_WRONG") && !err.contains("98765"),
        "{err}"
    );
}

/// A key that starts failing the way a removed token does (`CKR_DEVICE_REMOVED` from C_Sign,
/// which [`signgate::keys::Pkcs11Key`] reports as a token error) after `left` signatures.
/// SoftHSM2 has no removable device to pull, so removal is emulated here, at the
/// `KeySource` boundary the engine sees.
struct RemovableKey {
    inner: Arc<dyn KeySource>,
    left: AtomicUsize,
}

impl KeySource for RemovableKey {
    fn certificate(&self) -> &openssl::x509::X509 {
        self.inner.certificate()
    }
    fn chain(&self) -> &[openssl::x509::X509] {
        self.inner.chain()
    }
    fn algorithm(&self) -> signgate::pki::alg::KeyAlgorithm {
        self.inner.algorithm()
    }
    fn sign_digest(
        &self,
        scheme: signgate::pki::alg::SignatureScheme,
        digest: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let took = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if took.is_err() {
            return Err(KeyError::Token {
                uri: "pkcs11:token=T;object=agency".into(),
                reason: "C_Sign: CKR_DEVICE_REMOVED".into(),
            });
        }
        self.inner.sign_digest(scheme, digest)
    }
}

#[test]
fn removed_token_stops_the_batch_cleanly_and_a_rerun_completes() {
    let tmp = common::tempdir();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    make_inputs(&input, 60, 0, 3000);
    let key: Arc<dyn KeySource> =
        Arc::new(Pkcs12Key::open(&demo("agency-signer.p12"), "demo").expect("demo key"));
    let options = BatchOptions::new(time::OffsetDateTime::now_utc());
    let inputs = || {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&input)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.into_iter()
    };

    let removable = Arc::new(RemovableKey {
        inner: key.clone(),
        left: AtomicUsize::new(15),
    });
    let engine = Engine::new(removable, options.clone()).unwrap();
    let first = engine.run(inputs(), &out, &mut |_| {}).unwrap();
    let (code, message) = first.aborted.clone().expect("the batch stops");
    assert_eq!(code, ErrorCode::KeyUnavailable, "{message}");
    assert!(message.contains("CKR_DEVICE_REMOVED"), "{message}");
    assert!(first.signed <= 15, "{first:?}");
    assert!(first.signed + first.failed.len() < 60, "{first:?}");
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    // The journal lists exactly the outputs on disk, and each is whole and signed.
    let journal = journal_lines(&out);
    assert_eq!(journal.len(), first.signed);
    let mut on_disk: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pdf"))
        .collect();
    on_disk.sort();
    let mut journaled: Vec<String> = journal
        .iter()
        .map(|e| e["output"].as_str().unwrap().to_string())
        .collect();
    journaled.sort();
    assert_eq!(on_disk, journaled);
    let before: HashMap<String, Vec<u8>> = on_disk
        .iter()
        .map(|n| (n.clone(), std::fs::read(out.join(n)).unwrap()))
        .collect();
    if let Some(name) = on_disk.first() {
        assert_intact(&out.join(name), None);
    }

    // The token is back: the re-run signs the rest and leaves the earlier outputs alone.
    let engine = Engine::new(key, options).unwrap();
    let second = engine.run(inputs(), &out, &mut |_| {}).unwrap();
    assert!(second.aborted.is_none(), "{second:?}");
    assert!(second.failed.is_empty(), "{second:?}");
    assert_eq!(second.skipped, first.signed, "{second:?}");
    assert_eq!(second.signed + second.skipped, 60, "{second:?}");
    assert_eq!(journal_lines(&out).len(), 60);
    for (name, bytes) in &before {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), bytes, "{name}");
    }
    assert_intact(&out.join("doc-0059.pdf"), None);
}

/// SoftHSM2 loses the token when its directory disappears (what unplugging a USB token does
/// to a real module): C_SignInit then fails (`CKR_OBJECT_HANDLE_INVALID`, measured with
/// SoftHSM 2.6.1). The batch must stop with KEY_UNAVAILABLE, leave only whole, journaled
/// outputs, and complete when re-run with the token back.
#[test]
fn softhsm_token_removed_mid_batch_stops_and_resumes() {
    let tmp = common::tempdir();
    let Some(conf) = common::softhsm_token(&tmp) else {
        return;
    };
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    const DOCS: usize = 3000;
    make_inputs(&input, DOCS, 0, 1500);
    let pin_file = tmp.path().join("pin");
    std::fs::write(&pin_file, "1234\n").unwrap();
    let cmd = || {
        let mut c = common::signgate([
            "batch-sign",
            "--key",
            "pkcs11:token=T;object=agency",
            "--json",
            "--chain",
        ]);
        c.arg(demo("issuing-ca.pem"))
            .arg("--pin-file")
            .arg(&pin_file)
            .arg("--in")
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .env("SOFTHSM2_CONF", &conf)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let child = cmd().spawn().unwrap();
    // Pull the token once the batch is well under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = || {
        std::fs::read_dir(&out)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".pdf"))
                })
                .count()
            })
            .unwrap_or(0)
    };
    while count() < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let (tokens, gone) = (tmp.path().join("tokens"), tmp.path().join("tokens.gone"));
    std::fs::rename(&tokens, &gone).unwrap();
    let first = child.wait_with_output().unwrap();
    let s = summary(&first);
    common::assert_exit(&first, 77, "batch with the token pulled");
    assert_eq!(s["aborted"]["code"], "KEY_UNAVAILABLE", "{s}");
    let signed = s["signed"].as_u64().unwrap() as usize;
    assert!((100..DOCS).contains(&signed), "{s}");
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    assert_eq!(journal_lines(&out).len(), signed, "{s}");
    assert_eq!(count(), signed, "only journaled outputs are on disk");
    let kept = std::fs::read(out.join("doc-0000.pdf")).unwrap();
    assert_intact(&out.join("doc-0000.pdf"), None);

    // The token is back: the re-run completes without signing anything twice.
    std::fs::rename(&gone, &tokens).unwrap();
    let second = cmd().output().unwrap();
    common::assert_exit(&second, 0, "re-run with the token back");
    let again = summary(&second);
    assert_eq!(
        again["skipped"].as_u64().unwrap() as usize,
        signed,
        "{again}"
    );
    assert_eq!(
        again["signed"].as_u64().unwrap() as usize,
        DOCS - signed,
        "{again}"
    );
    assert_eq!(journal_lines(&out).len(), DOCS);
    assert_eq!(std::fs::read(out.join("doc-0000.pdf")).unwrap(), kept);
    assert_intact(&out.join("doc-2999.pdf"), None);
}

/// `batch-sign --profile tax` signs XML filings as XML-DSig through the pipeline: outputs
/// verify with xmlsec1 and with `signgate verify`; PDFs in the same folder stay PAdES.
#[test]
fn xml_filings_are_signed_as_xml_dsig_in_a_batch() {
    let tmp = common::tempdir();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    make_inputs(&input, 5, 60, 3000);
    std::fs::write(
        input.join("broken.xml"),
        b"<HSoThueDTu><unclosed></HSoThueDTu>",
    )
    .unwrap();
    let mut c = batch_cmd(&input, &out);
    c.args(["--profile", "tax"]);
    let s = summary(&common::run_expect(&mut c, 3));
    assert_eq!(s["signed"], 65, "{s}");
    assert_eq!(s["failed"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["failed"][0]["code"], "XML_MALFORMED", "{s}");
    assert!(!out.join("tk-0000.xml.p7s").exists());
    let signed = std::fs::read_to_string(out.join("tk-0007.xml")).unwrap();
    assert!(signed.contains("<CKyDTu><Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\""));
    // Only the Signature was inserted.
    let original = String::from_utf8(sample::tax_declaration(7)).unwrap();
    let start = signed.find("<Signature ").unwrap();
    let end = signed.find("</Signature>").unwrap() + "</Signature>".len();
    assert_eq!(format!("{}{}", &signed[..start], &signed[end..]), original);
    for name in ["tk-0000.xml", "tk-0007.xml", "tk-0059.xml"] {
        assert_intact(&out.join(name), None);
    }
    assert_intact(&out.join("doc-0003.pdf"), None);
    if common::require_tool("xmlsec1").is_some() {
        for name in ["tk-0007.xml", "tk-0042.xml"] {
            let o = common::run(
                Command::new("xmlsec1")
                    .arg("--verify")
                    .arg("--trusted-pem")
                    .arg(demo("root-ca.pem"))
                    .arg("--untrusted-pem")
                    .arg(demo("issuing-ca.pem"))
                    .arg("--id-attr:id")
                    .arg("http://kekhaithue.gdt.gov.vn/TKhaiThue:HSoKhaiThue")
                    .arg(out.join(name)),
            );
            assert!(
                o.status.success(),
                "xmlsec1 {name}: {}",
                common::stderr_str(&o)
            );
        }
    }
    // A re-run skips every signed filing.
    let again = summary(&common::run_expect(
        batch_cmd(&input, &out).args(["--profile", "tax"]),
        3,
    ));
    assert_eq!(again["skipped"], 65, "{again}");
}

/// Issue 17: journal lines are written in groups after the outputs get their names, so a run
/// killed in between leaves outputs with no line. The next run checks each of them and
/// records it when it carries a valid signature by this key over this input (the file is
/// kept as it is: same inode, same bytes), and signs again an output that is partial, was
/// made from another input, carries another key's signature, or was altered.
#[test]
fn unjournaled_outputs_are_checked_and_recorded_not_signed_again() {
    use std::os::unix::fs::MetadataExt;
    let tmp = common::tempdir();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    make_inputs(&input, 6, 4, 3000);
    let first = summary(&common::run_ok(&mut batch_cmd(&input, &out)));
    assert_eq!(first["signed"], 10, "{first}");
    // The kill: no journal line reached the disk.
    std::fs::remove_file(out.join(JOURNAL_NAME)).unwrap();
    // A partial output (impossible under the final name since outputs are staged and
    // synced before they are named, but a disk can still lose it).
    let partial = std::fs::read(out.join("doc-0001.pdf")).unwrap();
    std::fs::write(out.join("doc-0001.pdf"), &partial[..partial.len() / 2]).unwrap();
    // A valid signature by this key, over another input.
    std::fs::copy(out.join("doc-0003.pdf"), out.join("doc-0002.pdf")).unwrap();
    // A valid signature over the right input, by another key.
    common::run_ok(
        common::signgate(["sign", "--key"])
            .arg(demo("organization.p12"))
            .arg("--in")
            .arg(input.join("doc-0004.pdf"))
            .arg("--out")
            .arg(out.join("doc-0004.pdf"))
            .env("SIGNGATE_KEY_PASSWORD", "demo"),
    );
    // XML-DSig with one signed character changed.
    let xml = std::fs::read_to_string(out.join("tk-0001.xml")).unwrap();
    let altered = xml.replacen("<MST>", "<MST>9", 1);
    assert_ne!(altered, xml, "the sample filing has no <MST> to alter");
    std::fs::write(out.join("tk-0001.xml"), altered).unwrap();
    let redone = [
        "doc-0001.pdf",
        "doc-0002.pdf",
        "doc-0004.pdf",
        "tk-0001.xml",
    ];
    let kept: Vec<(String, u64, Vec<u8>)> = ["doc-0000.pdf", "doc-0003.pdf", "doc-0005.pdf"]
        .iter()
        .chain(&["tk-0000.xml", "tk-0002.xml", "tk-0003.xml"])
        .map(|name| {
            let path = out.join(name);
            let inode = std::fs::metadata(&path).unwrap().ino();
            (name.to_string(), inode, std::fs::read(&path).unwrap())
        })
        .collect();

    let again = summary(&common::run_ok(&mut batch_cmd(&input, &out)));
    assert_eq!(again["skipped"], 6, "{again}");
    assert_eq!(again["signed"], 4, "{again}");
    for (name, inode, bytes) in &kept {
        let path = out.join(name);
        assert_eq!(
            std::fs::metadata(&path).unwrap().ino(),
            *inode,
            "{name} was rewritten"
        );
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{name} changed");
    }
    for name in redone {
        assert_intact(&out.join(name), None);
    }
    let mut recorded: Vec<String> = journal_lines(&out)
        .iter()
        .map(|e| e["output"].as_str().unwrap().to_string())
        .collect();
    recorded.sort();
    assert_eq!(recorded.len(), 10, "{recorded:?}");
    recorded.dedup();
    assert_eq!(recorded.len(), 10, "{recorded:?}");
    // Recorded outputs are skipped from then on like any journaled one.
    let third = summary(&common::run_ok(&mut batch_cmd(&input, &out)));
    assert_eq!(third["skipped"], 10, "{third}");

    // Detached CAdES: a .p7s over another input is redone, the others are recorded.
    let cms_out = tmp.path().join("cms");
    let cms = || {
        let mut c = batch_cmd(&input, &cms_out);
        c.args(["--format", "cms"]);
        c
    };
    assert_eq!(summary(&common::run_ok(&mut cms()))["signed"], 10);
    std::fs::remove_file(cms_out.join(JOURNAL_NAME)).unwrap();
    std::fs::copy(
        cms_out.join("tk-0000.xml.p7s"),
        cms_out.join("tk-0001.xml.p7s"),
    )
    .unwrap();
    let resumed = summary(&common::run_ok(&mut cms()));
    assert_eq!(resumed["skipped"], 9, "{resumed}");
    assert_eq!(resumed["signed"], 1, "{resumed}");
    assert_intact(
        &cms_out.join("tk-0001.xml.p7s"),
        Some(&input.join("tk-0001.xml")),
    );
}
