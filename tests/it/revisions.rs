//! Revision analysis against what the new permissions could be abused for: a change hidden
//! behind `/Extensions`, signed form fields reordered. The signed
//! input is a pyHanko-made corpus file (two approval signatures by the self-signed
//! certificate of `trust/pyhanko-selfsigned.cert.pem`), changed with lopdf's incremental writer.

use std::path::Path;

use lopdf::{IncrementalDocument, Object};
use serde_json::Value;
use signgate::verify::{self, Policy, TrustList, ValidationContext};

fn verify_pdf(corpus: &Path, bytes: &[u8]) -> Value {
    let ctx = ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: vec![TrustList::load(
            "pyhanko",
            &corpus.join("trust/pyhanko-selfsigned.cert.pem"),
        )
        .unwrap()],
        fetcher: None,
    };
    let report = verify::document("changed.pdf", bytes, None, &Policy::default(), &ctx).unwrap();
    serde_json::to_value(report).unwrap()
}

/// The corpus file with one incremental update made by `change`.
fn changed(input: &[u8], change: impl FnOnce(&mut IncrementalDocument)) -> Vec<u8> {
    let prev = lopdf::Document::load_mem(input).unwrap();
    let mut doc = IncrementalDocument::create_from(input.to_vec(), prev);
    change(&mut doc);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn catalog_id(doc: &IncrementalDocument) -> lopdf::ObjectId {
    doc.get_prev_documents()
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .unwrap()
}

fn assert_every_signature_fails(report: &Value, mentions: &str) {
    for sig in report["signatures"].as_array().unwrap() {
        assert_eq!(sig["intact"], true, "{report:#}");
        assert_eq!(sig["indication"], "TOTAL_FAILED", "{report:#}");
        assert_eq!(sig["modification"], "disallowed", "{report:#}");
        assert!(sig["changes"].to_string().contains(mentions), "{report:#}");
    }
}

#[test]
fn changes_hidden_behind_extensions_or_reordered_fields_stay_disallowed() {
    let Some(corpus) = crate::corpus::corpus_dir() else {
        return;
    };
    let input =
        std::fs::read(corpus.join("pdf/pyhanko-minimal-two-fields-signed-twice.pdf")).unwrap();

    // As signed: both signatures intact, nothing disallowed.
    let report = verify_pdf(&corpus, &input);
    for sig in report["signatures"].as_array().unwrap() {
        assert_eq!(sig["intact"], true, "{report:#}");
        assert_ne!(sig["indication"], "TOTAL_FAILED", "{report:#}");
    }

    // A page's font dictionary swapped, with /Extensions pointing at it as cover.
    let attack = changed(&input, |doc| {
        let font_id = crate::tamper::swap_first_font(doc);
        let root = catalog_id(doc);
        doc.opt_clone_object_to_new_document(root).unwrap();
        let catalog = doc
            .new_document
            .get_object_mut(root)
            .unwrap()
            .as_dict_mut()
            .unwrap();
        catalog.set("Extensions", Object::Reference(font_id));
    });
    assert_every_signature_fails(&verify_pdf(&corpus, &attack), "font");

    // The form's fields reordered: new signature fields may be inserted anywhere, but the
    // signed ones keep their order.
    let attack = changed(&input, |doc| {
        let root = catalog_id(doc);
        let form = doc
            .get_prev_documents()
            .get_dictionary(root)
            .unwrap()
            .get(b"AcroForm")
            .unwrap()
            .clone();
        let form_id = form.as_reference().expect("an indirect AcroForm");
        doc.opt_clone_object_to_new_document(form_id).unwrap();
        let form = doc
            .new_document
            .get_object_mut(form_id)
            .unwrap()
            .as_dict_mut()
            .unwrap();
        let mut fields = form.get(b"Fields").unwrap().as_array().unwrap().clone();
        assert!(fields.len() >= 2, "two signature fields");
        fields.reverse();
        form.set("Fields", Object::Array(fields));
    });
    assert_every_signature_fails(&verify_pdf(&corpus, &attack), "form fields removed");
}
