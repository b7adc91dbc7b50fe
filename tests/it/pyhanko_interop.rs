//! Accepting other tools' signatures and agreeing with an independent verifier.
//!
//! PDFs signed by pyHanko (B-B, B-T, B-LT, B-LTA, RSA-PSS, ECDSA, several signatures, a
//! certification signature, adbe.pkcs7.detached with Adobe's revocation archival attribute)
//! must verify TOTAL_PASSED offline; and on a corpus of pyHanko- and signgate-signed,
//! extended and tampered files, signgate's verdict must match pyHanko's.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn services() -> &'static common::LiveServices {
    static SERVICES: OnceLock<common::LiveServices> = OnceLock::new();
    SERVICES.get_or_init(common::LiveServices::start)
}

/// Signs with pyHanko through tests/support/pyhanko_sign.py.
fn pyhanko_sign(input: &Path, output: &Path, p12: &str, mode: &str, extra: &[&str]) {
    let s = services();
    let py = common::pyhanko_python().expect("pyHanko is installed by ./tests/run");
    let mut cmd = Command::new(py);
    cmd.arg(common::repo_root().join("tests/support/pyhanko_sign.py"))
        .arg(input)
        .arg(output)
        .arg(s.pki.path(p12))
        .arg(s.pki.root())
        .arg(mode)
        .args(["--tsa", &s.tsa.url])
        .args(extra);
    common::run_ok(&mut cmd);
}

fn signgate_sign(input: &Path, output: &Path, p12: &str, extra: &[&str]) {
    let s = services();
    common::run_ok(
        common::signgate(["sign", "--key"])
            .arg(s.pki.path(p12))
            .arg("--in")
            .arg(input)
            .arg("--out")
            .arg(output)
            .args(extra)
            .env("SIGNGATE_KEY_PASSWORD", "demo"),
    );
}

fn verify(pdf: &Path, offline: bool) -> serde_json::Value {
    let mut cmd = common::signgate(["verify", "--trust"]);
    cmd.arg(services().pki.root()).arg(pdf);
    if offline {
        cmd.arg("--offline");
    }
    let out = common::run(&mut cmd);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no report for {} ({e}): {}",
            pdf.display(),
            common::stderr_str(&out)
        )
    })
}

/// The reference files made by pyHanko, once per test binary.
fn pyhanko_corpus() -> &'static Vec<(String, PathBuf)> {
    static CORPUS: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let out = services().pki.path("pyhanko");
        std::fs::create_dir_all(&out).unwrap();
        let sample = common::sample_pdf();
        let mut files = Vec::new();
        for mode in ["bb", "bt", "blt", "blta", "certify", "adbe"] {
            let file = out.join(format!("{mode}.pdf"));
            pyhanko_sign(&sample, &file, "agency-signer.p12", mode, &[]);
            files.push((format!("pyHanko {mode}"), file));
        }
        let pss = out.join("pss-bt.pdf");
        pyhanko_sign(
            &common::corpus("objstm.pdf"),
            &pss,
            "agency-signer.p12",
            "bt",
            &["--pss"],
        );
        files.push((
            "pyHanko RSA-PSS B-T on an xref-stream file".into(),
            pss.clone(),
        ));
        let two = out.join("pss-then-ecdsa.pdf");
        pyhanko_sign(
            &pss,
            &two,
            "agency-signer-ec.p12",
            "bb",
            &["--field", "Second"],
        );
        files.push(("pyHanko PSS then ECDSA".into(), two));
        let after_cert = out.join("certified-then-approved.pdf");
        pyhanko_sign(
            &out.join("certify.pdf"),
            &after_cert,
            "official.p12",
            "bt",
            &["--field", "Approval"],
        );
        files.push(("pyHanko certification then approval".into(), after_cert));
        files
    })
}

#[test]
fn pyhanko_signatures_verify_offline() {
    if !common::require_tools(&["pyhanko", "openssl"]) {
        return;
    }
    for (what, file) in pyhanko_corpus() {
        let report = verify(file, true);
        assert_eq!(report["indication"], "TOTAL_PASSED", "{what}: {report:#}");
        for sig in report["signatures"].as_array().unwrap() {
            assert_eq!(sig["intact"], true, "{what}: {sig:#}");
            let m = sig["modification"].as_str().unwrap_or("null");
            assert!(
                m == "none" || m == "permitted",
                "{what}: modification {m}: {sig:#}"
            );
            assert!(
                sig["revocation"].as_array().is_some_and(|r| !r.is_empty())
                    || sig["kind"] == "document_timestamp",
                "{what}: revocation came from the file: {sig:#}"
            );
        }
    }
}

/// Files whose verdicts are compared: pyHanko's, signgate's own, extended and tampered ones.
fn agreement_corpus() -> Vec<(String, PathBuf)> {
    let s = services();
    let dir = s.pki.path("agreement");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = pyhanko_corpus().clone();
    let sample = common::sample_pdf();
    let ours = dir.join("signgate-bt.pdf");
    signgate_sign(
        &sample,
        &ours,
        "agency-signer.p12",
        &["--level", "b-t", "--tsa", &s.tsa.url],
    );
    files.push(("signgate B-T".into(), ours.clone()));
    let twice = dir.join("signgate-twice.pdf");
    signgate_sign(&ours, &twice, "agency-signer-ec.p12", &[]);
    files.push(("signgate B-T then ECDSA".into(), twice.clone()));
    let lta = dir.join("signgate-lta.pdf");
    common::run_ok(
        common::signgate(["extend", "--level", "b-lta", "--tsa", &s.tsa.url, "--trust"])
            .arg(s.pki.root())
            .arg("--in")
            .arg(&twice)
            .arg("--out")
            .arg(&lta),
    );
    files.push(("signgate-extended B-LTA".into(), lta));
    let mut flipped = std::fs::read(&ours).unwrap();
    let at = flipped.windows(9).position(|w| w == b"Helvetica").unwrap();
    flipped[at + 8] = b's';
    let flipped_path = dir.join("flipped.pdf");
    std::fs::write(&flipped_path, flipped).unwrap();
    files.push(("byte flipped in a signed range".into(), flipped_path));
    // Someone else's signature on a file whose content was then replaced: pyHanko-signed, then
    // a new revision changes the page (lopdf's writer, as a third tool would).
    let bytes = std::fs::read(&pyhanko_corpus()[0].1).unwrap();
    let prev = lopdf::Document::load_mem(&bytes).unwrap();
    let page = *prev.get_pages().get(&1).unwrap();
    let mut doc = lopdf::IncrementalDocument::create_from(bytes, prev);
    let stream = lopdf::Stream::new(
        lopdf::Dictionary::new(),
        b"BT /F1 30 Tf 80 700 Td (VOID) Tj ET".to_vec(),
    );
    let new_id = doc.new_document.add_object(stream);
    doc.opt_clone_object_to_new_document(page).unwrap();
    doc.new_document
        .get_object_mut(page)
        .unwrap()
        .as_dict_mut()
        .unwrap()
        .set("Contents", lopdf::Object::Reference(new_id));
    let replaced = dir.join("content-replaced.pdf");
    doc.save_to(&mut std::fs::File::create(&replaced).unwrap())
        .unwrap();
    files.push((
        "page content replaced after a pyHanko signature".into(),
        replaced,
    ));
    files.push((
        "pyHanko certification (P=2), then a form field filled in".into(),
        certified_then_filled(&dir),
    ));
    files
}

/// A one-page PDF with an empty text field, made here (lopdf).
fn form_pdf(path: &Path) {
    use lopdf::{dictionary, Document, Object, Stream};
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(
        dictionary! {"Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica"},
    );
    let content = Stream::new(
        dictionary! {},
        b"BT /F1 14 Tf 72 760 Td (Ho ten nguoi nop:) Tj ET".to_vec(),
    );
    let content_id = doc.add_object(content);
    let page_id = doc.new_object_id();
    let field_id = doc.add_object(dictionary! {
        "FT" => "Tx", "T" => Object::string_literal("HoTen"), "Type" => "Annot", "Subtype" => "Widget",
        "Rect" => vec![230.into(), 750.into(), 500.into(), 775.into()], "F" => 4, "P" => Object::Reference(page_id),
        "DA" => Object::string_literal("/Helv 12 Tf 0 g"),
    });
    doc.objects.insert(page_id, Object::Dictionary(dictionary! {
        "Type" => "Page", "Parent" => Object::Reference(pages_id),
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        "Resources" => dictionary! {"Font" => dictionary! {"F1" => Object::Reference(font_id)}},
        "Contents" => Object::Reference(content_id), "Annots" => vec![Object::Reference(field_id)],
    }));
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![Object::Reference(page_id)], "Count" => 1,
        }),
    );
    let catalog = doc.add_object(dictionary! {
        "Type" => "Catalog", "Pages" => Object::Reference(pages_id),
        "AcroForm" => dictionary! {"Fields" => vec![Object::Reference(field_id)],
            "DR" => dictionary! {"Font" => dictionary! {"Helv" => Object::Reference(font_id)}}},
    });
    doc.trailer.set("Root", Object::Reference(catalog));
    doc.save(path).unwrap();
}

/// Certifies a form with pyHanko (DocMDP P=2), then fills its text field in a new revision
/// (value and appearance), as a form-filling tool would.
fn certified_then_filled(dir: &Path) -> PathBuf {
    use lopdf::{dictionary, Object, Stream};
    let form = dir.join("form.pdf");
    form_pdf(&form);
    let certified = dir.join("form-certified.pdf");
    pyhanko_sign(&form, &certified, "agency-signer.p12", "certify", &[]);
    let bytes = std::fs::read(&certified).unwrap();
    let prev = lopdf::Document::load_mem(&bytes).unwrap();
    let field = prev
        .objects
        .iter()
        .find(|(_, o)| matches!(o, Object::Dictionary(d) if d.get(b"FT").and_then(|f| f.as_name()).ok() == Some(b"Tx")))
        .map(|(id, _)| *id)
        .expect("the text field");
    let mut doc = lopdf::IncrementalDocument::create_from(bytes, prev);
    let ap = Stream::new(
        dictionary! {"Type" => "XObject", "Subtype" => "Form", "BBox" => vec![0.into(), 0.into(), 270.into(), 25.into()]},
        b"/Tx BMC BT /Helv 12 Tf 0 g 2 8 Td (Nguyen Van A) Tj ET EMC".to_vec(),
    );
    let ap_id = doc.new_document.add_object(ap);
    doc.opt_clone_object_to_new_document(field).unwrap();
    let dict = doc
        .new_document
        .get_object_mut(field)
        .unwrap()
        .as_dict_mut()
        .unwrap();
    dict.set("V", Object::string_literal("Nguyen Van A"));
    dict.set("AP", dictionary! {"N" => Object::Reference(ap_id)});
    let filled = dir.join("form-certified-filled.pdf");
    doc.save_to(&mut std::fs::File::create(&filled).unwrap())
        .unwrap();
    filled
}

#[test]
fn form_filling_after_a_certification_signature_is_permitted() {
    if !common::require_tools(&["pyhanko", "openssl"]) {
        return;
    }
    let dir = services().pki.path("form");
    std::fs::create_dir_all(&dir).unwrap();
    let filled = certified_then_filled(&dir);
    let report = verify(&filled, true);
    let sig = &report["signatures"][0];
    assert_eq!(sig["modification"], "permitted", "{report:#}");
    assert!(
        sig["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap_or("").contains("filled in")),
        "{sig:#}"
    );
    assert_eq!(report["indication"], "TOTAL_PASSED", "{report:#}");
    let theirs = common::pyhanko_validate(&filled, &services().pki.root());
    assert_eq!(
        theirs.signatures[0].modification_level.as_deref(),
        Some("FORM_FILLING"),
        "{}",
        theirs.raw
    );
}

/// Known, reviewed disagreements with pyHanko: (file description, field or "*", reason).
const ALLOWED_DISAGREEMENTS: &[(&str, &str, &str)] = &[];

#[test]
fn verdicts_agree_with_pyhanko() {
    if !common::require_tools(&["pyhanko", "openssl"]) {
        return;
    }
    let root = services().pki.root();
    let mut disagreements = Vec::new();
    for (what, file) in agreement_corpus() {
        let ours = verify(&file, false);
        let theirs = common::pyhanko_validate(&file, &root);
        let our_sigs = ours["signatures"].as_array().unwrap();
        assert_eq!(
            our_sigs.len(),
            theirs.signatures.len(),
            "{what}: signature count\n{ours:#}\n{}",
            theirs.raw
        );
        for (o, t) in our_sigs.iter().zip(&theirs.signatures) {
            let field = o["id"].as_str().unwrap_or("?").to_string();
            let mut differ = |aspect: &str, ours: String, theirs: String| {
                if ours != theirs {
                    let allowed = ALLOWED_DISAGREEMENTS
                        .iter()
                        .any(|(w, f, _)| *w == what && (*f == "*" || *f == field));
                    if !allowed {
                        disagreements.push(format!(
                            "{what} / {field}: {aspect}: signgate {ours}, pyHanko {theirs}"
                        ));
                    }
                }
            };
            differ("intact", o["intact"].to_string(), t.intact.to_string());
            let level = t
                .modification_level
                .clone()
                .unwrap_or_else(|| "NONE".into());
            let their_modification = match level.as_str() {
                "NONE" => "none",
                "LTA_UPDATES" | "FORM_FILLING" => "permitted",
                _ => "disallowed",
            };
            differ(
                "modification",
                o["modification"].as_str().unwrap_or("null").into(),
                their_modification.into(),
            );
            let their_pass = t.valid
                && t.trusted
                && their_modification != "disallowed"
                && t.docmdp_ok != Some(false);
            differ(
                "passed",
                (o["indication"] == "TOTAL_PASSED").to_string(),
                their_pass.to_string(),
            );
        }
    }
    assert!(
        disagreements.is_empty(),
        "disagreements with pyHanko:\n{}",
        disagreements.join("\n")
    );
}
