//! Changes made to a signed PDF after signing, and what the verifier says about them
//! (the shadow and incremental-saving attacks, ByteRange tricks; CONTRACTS.md §3 mapping).

use crate::common;

use std::path::{Path, PathBuf};

use lopdf::{dictionary, IncrementalDocument, Object, Stream};

/// Signs `input` with the demo agency key (B-B, invisible) into `dir`.
fn signed_copy(input: &Path, dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    common::run_ok(
        common::signgate(["sign", "--key", "certs/demo/agency-signer.p12", "--in"])
            .arg(input)
            .arg("--out")
            .arg(&out)
            .env("SIGNGATE_KEY_PASSWORD", "demo"),
    );
    out
}

/// Verifies offline against the demo root and returns the parsed report.
fn verify(pdf: &Path) -> serde_json::Value {
    let out = common::run(
        common::signgate(["verify", "--offline", "--trust", "certs/demo/root-ca.pem"]).arg(pdf),
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {}", common::stderr_str(&out)))
}

/// Appends an incremental update made by `change` (lopdf's own writer, as another tool would).
fn tampered(signed: &Path, name: &str, change: impl FnOnce(&mut IncrementalDocument)) -> PathBuf {
    let bytes = std::fs::read(signed).unwrap();
    let prev = lopdf::Document::load_mem(&bytes).unwrap();
    let mut doc = IncrementalDocument::create_from(bytes, prev);
    change(&mut doc);
    let out = signed.with_file_name(name);
    let mut file = std::fs::File::create(&out).unwrap();
    doc.save_to(&mut file).unwrap();
    out
}

/// Replaces the first font of the signed revision by Courier in `doc`'s update; returns its id.
pub(crate) fn swap_first_font(doc: &mut IncrementalDocument) -> lopdf::ObjectId {
    let font_id = doc
        .get_prev_documents()
        .objects
        .iter()
        .find(|(_, o)| matches!(o, Object::Dictionary(d) if d.get(b"Type").and_then(|t| t.as_name()).ok() == Some(b"Font")))
        .map(|(id, _)| *id)
        .expect("the document has a font object");
    doc.opt_clone_object_to_new_document(font_id).unwrap();
    let font = doc
        .new_document
        .get_object_mut(font_id)
        .unwrap()
        .as_dict_mut()
        .unwrap();
    font.set("BaseFont", Object::Name(b"Courier".to_vec()));
    font_id
}

fn first_page(doc: &IncrementalDocument) -> lopdf::ObjectId {
    *doc.get_prev_documents().get_pages().get(&1).unwrap()
}

fn assert_disallowed(report: &serde_json::Value, change_mentions: &str) {
    let sig = &report["signatures"][0];
    assert_eq!(sig["modification"], "disallowed", "{report:#}");
    assert_eq!(sig["indication"], "TOTAL_FAILED", "{report:#}");
    assert_eq!(sig["sub_indication"], "FORMAT_FAILURE", "{report:#}");
    assert_eq!(
        sig["intact"], true,
        "the signed revision itself is intact: {report:#}"
    );
    let changes = sig["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.as_str().unwrap_or("").contains(change_mentions)),
        "expected a change mentioning {change_mentions:?}: {changes:?}"
    );
}

#[test]
fn untouched_signature_reports_no_modification() {
    let dir = common::tempdir();
    let signed = signed_copy(&common::sample_pdf(), dir.path(), "signed.pdf");
    let report = verify(&signed);
    assert_eq!(report["signatures"][0]["modification"], "none");
    assert_eq!(report["signatures"][0]["coverage"]["whole_file"], true);
}

#[test]
fn replaced_page_content_is_disallowed() {
    let dir = common::tempdir();
    let signed = signed_copy(&common::sample_pdf(), dir.path(), "signed.pdf");
    let out = tampered(&signed, "content.pdf", |doc| {
        let page = first_page(doc);
        let stream = Stream::new(
            dictionary! {},
            b"BT /F1 24 Tf 100 700 Td (PAID IN FULL) Tj ET".to_vec(),
        );
        let new_id = doc.new_document.add_object(stream);
        doc.opt_clone_object_to_new_document(page).unwrap();
        let page_dict = doc
            .new_document
            .get_object_mut(page)
            .unwrap()
            .as_dict_mut()
            .unwrap();
        page_dict.set("Contents", Object::Reference(new_id));
    });
    assert_disallowed(&verify(&out), "page 1 content stream replaced");
}

#[test]
fn overlay_annotation_is_disallowed() {
    let dir = common::tempdir();
    let signed = signed_copy(&common::sample_pdf(), dir.path(), "signed.pdf");
    let out = tampered(&signed, "overlay.pdf", |doc| {
        let page = first_page(doc);
        let ap = Stream::new(
            dictionary! {"Type" => "XObject", "Subtype" => "Form", "BBox" => vec![0.into(), 0.into(), 300.into(), 50.into()]},
            b"1 1 1 rg 0 0 300 50 re f".to_vec(),
        );
        let ap_id = doc.new_document.add_object(ap);
        let annot = dictionary! {
            "Type" => "Annot", "Subtype" => "Square",
            "Rect" => vec![50.into(), 600.into(), 350.into(), 650.into()],
            "AP" => dictionary! {"N" => Object::Reference(ap_id)},
        };
        let annot_id = doc.new_document.add_object(annot);
        doc.opt_clone_object_to_new_document(page).unwrap();
        let page_dict = doc
            .new_document
            .get_object_mut(page)
            .unwrap()
            .as_dict_mut()
            .unwrap();
        let mut annots = match page_dict.get(b"Annots") {
            Ok(Object::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        annots.push(Object::Reference(annot_id));
        page_dict.set("Annots", annots);
    });
    assert_disallowed(&verify(&out), "annotation /Square added with an appearance");
}

#[test]
fn swapped_font_is_disallowed() {
    let dir = common::tempdir();
    let signed = signed_copy(&common::sample_pdf(), dir.path(), "signed.pdf");
    let out = tampered(&signed, "font.pdf", |doc| {
        swap_first_font(doc);
    });
    assert_disallowed(&verify(&out), "font");
}

#[test]
fn changed_crop_box_is_disallowed() {
    let dir = common::tempdir();
    let signed = signed_copy(&common::sample_pdf(), dir.path(), "signed.pdf");
    let out = tampered(&signed, "crop.pdf", |doc| {
        let page = first_page(doc);
        doc.opt_clone_object_to_new_document(page).unwrap();
        let page_dict = doc
            .new_document
            .get_object_mut(page)
            .unwrap()
            .as_dict_mut()
            .unwrap();
        page_dict.set(
            "CropBox",
            vec![0.into(), 400.into(), 595.into(), 842.into()],
        );
    });
    assert_disallowed(&verify(&out), "page 1 /CropBox changed");
}

#[test]
fn a_second_signature_is_a_permitted_change() {
    let dir = common::tempdir();
    let first = signed_copy(&common::sample_pdf(), dir.path(), "first.pdf");
    let second = signed_copy(&first, dir.path(), "second.pdf");
    let report = verify(&second);
    let sigs = report["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2);
    assert_eq!(sigs[0]["modification"], "permitted", "{report:#}");
    assert_eq!(sigs[0]["coverage"]["whole_file"], false);
    assert_eq!(sigs[0]["intact"], true);
    assert_ne!(sigs[0]["indication"], "TOTAL_FAILED");
    assert_eq!(sigs[1]["modification"], "none");
}

#[test]
fn flipped_byte_inside_the_signed_range_is_a_hash_failure() {
    let dir = common::tempdir();
    let signed = signed_copy(&common::sample_pdf(), dir.path(), "signed.pdf");
    let mut bytes = std::fs::read(&signed).unwrap();
    let at = bytes
        .windows(9)
        .position(|w| w == b"Helvetica")
        .expect("sample font name present");
    bytes[at + 8] = b's';
    let out = dir.path().join("flipped.pdf");
    std::fs::write(&out, bytes).unwrap();
    let report = verify(&out);
    assert_eq!(report["indication"], "TOTAL_FAILED");
    assert_eq!(report["signatures"][0]["sub_indication"], "HASH_FAILURE");
    assert_eq!(report["signatures"][0]["intact"], false);
}

#[test]
fn byte_range_tricks_are_format_failures() {
    let dir = common::tempdir();
    let signed = signed_copy(&common::sample_pdf(), dir.path(), "signed.pdf");
    let bytes = std::fs::read(&signed).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let start = text.find("/ByteRange [").expect("ByteRange present") + "/ByteRange [".len();
    let end = start + text[start..].find(']').unwrap();
    let values: Vec<usize> = text[start..end]
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let width = end - start;
    let variants = [
        ("gap", [values[0], values[1] - 10, values[2], values[3]]),
        ("overlap", [values[0], values[1] + 40, values[2], values[3]]),
        ("not from zero", [5, values[1] - 5, values[2], values[3]]),
        (
            "beyond the end",
            [values[0], values[1], values[2], values[3] + 1],
        ),
    ];
    for (what, range) in variants {
        let replacement = format!("{} {} {} {}", range[0], range[1], range[2], range[3]);
        assert!(replacement.len() <= width, "{what}");
        let mut patched = bytes.clone();
        patched[start..end].copy_from_slice(format!("{replacement:<width$}").as_bytes());
        let out = dir
            .path()
            .join(format!("br-{}.pdf", what.replace(' ', "-")));
        std::fs::write(&out, patched).unwrap();
        let report = verify(&out);
        assert_eq!(report["indication"], "TOTAL_FAILED", "{what}: {report:#}");
        assert_eq!(
            report["signatures"][0]["sub_indication"], "FORMAT_FAILURE",
            "{what}"
        );
    }
}

#[test]
fn data_appended_outside_the_byte_range_is_reported() {
    let dir = common::tempdir();
    let signed = signed_copy(&common::sample_pdf(), dir.path(), "signed.pdf");
    let mut bytes = std::fs::read(&signed).unwrap();
    bytes.extend_from_slice(b"\n% hidden payload appended after signing\n");
    let out = dir.path().join("appended.pdf");
    std::fs::write(&out, bytes).unwrap();
    let report = verify(&out);
    let sig = &report["signatures"][0];
    assert_eq!(sig["coverage"]["whole_file"], false);
    assert_eq!(sig["modification"], "disallowed", "{report:#}");
    assert_eq!(report["indication"], "TOTAL_FAILED");
}
