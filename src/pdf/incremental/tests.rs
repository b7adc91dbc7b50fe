//! Tests of the incremental update against files made by lopdf and converted by qpdf; a test
//! needing qpdf or pdfsig skips locally without it and fails under `CI=true`.

use std::path::Path;
use std::process::Command;

use lopdf::{dictionary, Document, Object, Stream};
use time::macros::datetime;

use super::*;
use crate::pdf::{prepare as prepare_pdf, Appearance, Placement, VisibleSignature};
use crate::pki::alg::DigestAlgorithm;
use crate::test_support::require_tool;

/// A stand-in CMS blob: `qpdf --check` and the layout checks don't look inside.
const DUMMY_CMS: &[u8] = &[0x30, 0x03, 0x02, 0x01, 0x01];

struct Spec {
    pages: usize,
    rotate: Option<i64>,
    /// Put /Annots on page 1 as an indirect (empty) array.
    indirect_annots: bool,
    /// An existing indirect AcroForm with an indirect /Fields array.
    indirect_form: bool,
    /// A certification signature with this DocMDP /P.
    docmdp: Option<i64>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            pages: 2,
            rotate: None,
            indirect_annots: false,
            indirect_form: false,
            docmdp: None,
        }
    }
}

fn make_pdf(spec: &Spec) -> Vec<u8> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let mut kids = Vec::new();
    for n in 0..spec.pages {
        let content = format!("BT /F1 24 Tf 72 720 Td (Page {}) Tj ET", n + 1);
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.into_bytes()));
        let mut page = dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        };
        if n == 0 && spec.indirect_annots {
            let annots = doc.add_object(Object::Array(vec![]));
            page.set("Annots", annots);
        }
        kids.push(Object::Reference(doc.add_object(page)));
    }
    let font_id = doc.add_object(
        dictionary! {"Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica"},
    );
    let mut pages = dictionary! {
        "Type" => "Pages",
        "Kids" => kids,
        "Count" => spec.pages as i64,
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
    };
    if let Some(r) = spec.rotate {
        pages.set("Rotate", r);
    }
    doc.objects.insert(pages_id, Object::Dictionary(pages));
    let mut catalog = dictionary! { "Type" => "Catalog", "Pages" => pages_id };
    if spec.indirect_form {
        let fields = doc.add_object(Object::Array(vec![]));
        let form = doc.add_object(
            dictionary! { "Fields" => fields, "DA" => Object::string_literal("/Helv 0 Tf 0 g") },
        );
        catalog.set("AcroForm", form);
    }
    if let Some(p) = spec.docmdp {
        let sig = doc.add_object(dictionary! {
            "Type" => "Sig",
            "Filter" => "Adobe.PPKLite",
            "Reference" => vec![Object::Dictionary(dictionary! {
                "Type" => "SigRef",
                "TransformMethod" => "DocMDP",
                "TransformParams" => dictionary! { "Type" => "TransformParams", "P" => p, "V" => "1.2" },
            })],
        });
        catalog.set("Perms", dictionary! { "DocMDP" => sig });
    }
    let catalog_id = doc.add_object(catalog);
    doc.trailer.set("Root", catalog_id);
    let info =
        doc.add_object(dictionary! { "Producer" => Object::string_literal("signgate tests") });
    doc.trailer.set("Info", info);
    doc.reference_table.cross_reference_type = lopdf::xref::XrefType::CrossReferenceTable;
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save test PDF");
    out
}

fn qpdf(input: &[u8], args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (i, o) = (dir.path().join("in.pdf"), dir.path().join("out.pdf"));
    std::fs::write(&i, input).unwrap();
    let status = Command::new("qpdf")
        .args(args)
        .arg(&i)
        .arg(&o)
        .status()
        .expect("run qpdf");
    assert!(
        status.code() == Some(0) || status.code() == Some(3),
        "qpdf {args:?} failed: {status}"
    );
    std::fs::read(o).unwrap()
}

fn qpdf_check(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.pdf");
    std::fs::write(&p, bytes).unwrap();
    let out = Command::new("qpdf")
        .arg("--check")
        .arg(&p)
        .output()
        .expect("run qpdf");
    assert_eq!(
        out.status.code(),
        Some(0),
        "qpdf --check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn options() -> PdfSignOptions {
    let mut o = PdfSignOptions::new(datetime!(2025-07-01 09:30:00 +07:00));
    o.reason = Some("Phê duyệt văn bản".into());
    o.location = Some("Hà Nội".into());
    o.name = Some("Nguyễn Văn An".into());
    o.contents_size = 4096;
    o
}

fn visible(page: PageSelector, placement: Placement) -> Option<VisibleSignature> {
    Some(VisibleSignature {
        page,
        placement,
        appearance: Appearance::Text {
            lines: vec!["Signed".into()],
        },
    })
}

/// Prepares `input` both in memory and streaming ([`crate::pdf::prepare_file`], reading only
/// what the signature touches): both must fail with the same code, or lay out the same bytes.
fn prepare_both(input: &[u8], opts: &PdfSignOptions) -> Result<crate::pdf::PreparedPdf, PdfError> {
    let whole = prepare_pdf(input, opts);
    let streamed = crate::pdf::prepare_file(&mut std::io::Cursor::new(input), opts);
    match (&whole, streamed) {
        (Ok(whole), Ok(streamed)) => {
            assert_eq!(whole.byte_range(), streamed.byte_range());
            assert_eq!(whole.field_name(), streamed.field_name());
            let mut out = Vec::new();
            let digest = streamed
                .copy_and_digest(
                    &mut std::io::Cursor::new(input),
                    &mut out,
                    DigestAlgorithm::Sha256,
                )
                .expect("streamed copy");
            assert_eq!(digest, whole.digest(DigestAlgorithm::Sha256));
            out.extend_from_slice(&streamed.finish(DUMMY_CMS).expect("finish streamed"));
            let expected = prepare_pdf(input, opts).unwrap().finish(DUMMY_CMS).unwrap();
            assert!(
                out == expected,
                "streamed layout differs from the in-memory one"
            );
        }
        (Err(whole), Err(streamed)) => {
            assert_eq!(
                whole.code(),
                streamed.code(),
                "{whole} vs streamed {streamed}"
            )
        }
        (whole, streamed) => panic!(
            "in memory: {:?}, streamed: {:?}",
            whole.as_ref().map(|_| ()),
            streamed.map(|_| ())
        ),
    }
    whole
}

/// Signs with the dummy blob and checks the layout invariants every output must meet.
fn sign(input: &[u8], opts: &PdfSignOptions) -> Vec<u8> {
    let prepared = prepare_both(input, opts).expect("prepare");
    let [zero, a, b, c] = prepared.byte_range();
    let digest = prepared.digest(DigestAlgorithm::Sha256);
    let out = prepared.finish(DUMMY_CMS).expect("finish");
    assert_eq!(zero, 0);
    assert_eq!(
        &out[..input.len()],
        input,
        "original bytes must be the prefix"
    );
    assert_eq!(b + c, out.len(), "ByteRange must reach the end of the file");
    assert_eq!(out[a], b'<');
    assert_eq!(out[b - 1], b'>');
    assert!(out[a + 1..b - 1].iter().all(u8::is_ascii_hexdigit));
    assert!(out[..a].ends_with(b"/Contents "));
    // The ByteRange written in the file is the one reported.
    let text = String::from_utf8_lossy(&out[input.len()..]).into_owned();
    let written = text.rsplit("/ByteRange [").next().unwrap();
    let nums: Vec<usize> = written
        .split(']')
        .next()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(nums, vec![0, a, b, c]);
    // The digest covers exactly the two ranges.
    let mut covered = out[..a].to_vec();
    covered.extend_from_slice(&out[b..]);
    assert_eq!(digest, DigestAlgorithm::Sha256.digest(&covered));
    out
}

fn widget_of(doc: &Document, field: &str) -> Dictionary {
    let catalog = doc.catalog().unwrap();
    let form = match catalog.get(b"AcroForm").unwrap() {
        Object::Reference(id) => doc.get_dictionary(*id).unwrap(),
        Object::Dictionary(d) => d,
        other => panic!("AcroForm is {other:?}"),
    };
    let fields = deref(doc, form.get(b"Fields").unwrap()).as_array().unwrap();
    for f in fields {
        let d = deref(doc, f).as_dict().unwrap();
        if decode_text_string(d.get(b"T").unwrap().as_str().unwrap()) == field {
            return d.clone();
        }
    }
    panic!("field {field} not found");
}

fn new_section(input: &[u8], out: &[u8]) -> String {
    String::from_utf8_lossy(&out[input.len()..]).into_owned()
}

#[test]
fn classic_table_gets_a_table_and_passes_qpdf_check() {
    if !require_tool("qpdf") {
        return;
    }
    let input = make_pdf(&Spec::default());
    assert_eq!(last_xref_section(&input).unwrap().1, XrefKind::Table);
    let out = sign(&input, &options());
    let section = new_section(&input, &out);
    assert!(
        section.contains("\nxref\n") && section.contains("trailer"),
        "{section}"
    );
    assert!(section.contains(&format!("/Prev {}", last_xref_section(&input).unwrap().0)));
    assert!(section.contains("/SubFilter/ETSI.CAdES.detached"));
    qpdf_check(&out);

    let doc = Document::load_mem(&out).unwrap();
    let widget = widget_of(&doc, "Signature1");
    assert_eq!(widget.get(b"FT").unwrap().as_name().unwrap(), b"Sig");
    assert_eq!(widget.get(b"F").unwrap().as_i64().unwrap(), 132);
    let sig = deref(&doc, widget.get(b"V").unwrap()).as_dict().unwrap();
    assert_eq!(
        decode_text_string(sig.get(b"Reason").unwrap().as_str().unwrap()),
        "Phê duyệt văn bản"
    );
    assert_eq!(
        decode_text_string(sig.get(b"Location").unwrap().as_str().unwrap()),
        "Hà Nội"
    );
    assert_eq!(
        decode_text_string(sig.get(b"Name").unwrap().as_str().unwrap()),
        "Nguyễn Văn An"
    );
    assert_eq!(
        sig.get(b"M").unwrap().as_str().unwrap(),
        b"D:20250701093000+07'00'"
    );
    let form = deref(&doc, doc.catalog().unwrap().get(b"AcroForm").unwrap())
        .as_dict()
        .unwrap();
    assert_eq!(form.get(b"SigFlags").unwrap().as_i64().unwrap(), 3);
    // Invisible: zero rect on page 1, listed in the page's /Annots.
    let rect: Vec<f32> = widget
        .get(b"Rect")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_float().unwrap())
        .collect();
    assert_eq!(rect, vec![0.0; 4]);
    let page1 = doc.get_pages()[&1];
    assert_eq!(widget.get(b"P").unwrap().as_reference().unwrap(), page1);
    let annots = doc
        .get_dictionary(page1)
        .unwrap()
        .get(b"Annots")
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!(annots.len(), 1);
}

#[test]
fn xref_stream_file_gets_an_xref_stream() {
    if !require_tool("qpdf") {
        return;
    }
    let input = qpdf(&make_pdf(&Spec::default()), &["--object-streams=generate"]);
    assert_eq!(last_xref_section(&input).unwrap().1, XrefKind::Stream);
    let out = sign(&input, &options());
    let section = new_section(&input, &out);
    assert!(
        !section.contains("\nxref\n"),
        "no table after a stream: {section}"
    );
    assert!(section.contains("/Type/XRef"), "{section}");
    qpdf_check(&out);
    let doc = Document::load_mem(&out).unwrap();
    widget_of(&doc, "Signature1");
}

#[test]
fn linearized_file() {
    if !require_tool("qpdf") {
        return;
    }
    let input = qpdf(&make_pdf(&Spec::default()), &["--linearize"]);
    let out = sign(&input, &options());
    qpdf_check(&out);
    widget_of(&Document::load_mem(&out).unwrap(), "Signature1");
}

#[test]
fn linearized_object_stream_file() {
    if !require_tool("qpdf") {
        return;
    }
    let input = qpdf(
        &make_pdf(&Spec::default()),
        &["--linearize", "--object-streams=generate"],
    );
    let out = sign(&input, &options());
    qpdf_check(&out);
    widget_of(&Document::load_mem(&out).unwrap(), "Signature1");
}

#[test]
fn indirect_annots_and_fields_arrays_are_updated_in_place() {
    if !require_tool("qpdf") {
        return;
    }
    let input = make_pdf(&Spec {
        indirect_annots: true,
        indirect_form: true,
        ..Spec::default()
    });
    let before = Document::load_mem(&input).unwrap();
    let page1 = before.get_pages()[&1];
    let annots_id = before
        .get_dictionary(page1)
        .unwrap()
        .get(b"Annots")
        .unwrap()
        .as_reference()
        .unwrap();
    let out = sign(&input, &options());
    qpdf_check(&out);
    let doc = Document::load_mem(&out).unwrap();
    // The page itself was not rewritten; its annots array was.
    let section = new_section(&input, &out);
    assert!(!section.contains(&format!("\n{} {} obj", page1.0, page1.1)));
    assert_eq!(
        doc.get_object(annots_id).unwrap().as_array().unwrap().len(),
        1
    );
    let form = deref(&doc, doc.catalog().unwrap().get(b"AcroForm").unwrap())
        .as_dict()
        .unwrap();
    assert!(form.has(b"DA"), "existing form entries kept");
    widget_of(&doc, "Signature1");
}

#[test]
fn second_signature_keeps_the_first_revision_and_the_form() {
    if !require_tool("qpdf") {
        return;
    }
    let input = make_pdf(&Spec::default());
    let once = sign(&input, &options());
    let prepared_once = prepare_pdf(&input, &options()).unwrap().byte_range();
    let twice = sign(&once, &options());
    assert_eq!(&twice[..once.len()], &once[..]);
    qpdf_check(&twice);
    let doc = Document::load_mem(&twice).unwrap();
    widget_of(&doc, "Signature1");
    let second = widget_of(&doc, "Signature2");
    let form = deref(&doc, doc.catalog().unwrap().get(b"AcroForm").unwrap())
        .as_dict()
        .unwrap();
    assert_eq!(
        deref(&doc, form.get(b"Fields").unwrap())
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The first signature's ByteRange still describes the first revision.
    let first_sig = deref(&doc, widget_of(&doc, "Signature1").get(b"V").unwrap())
        .as_dict()
        .unwrap()
        .clone();
    let br: Vec<i64> = first_sig
        .get(b"ByteRange")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_i64().unwrap())
        .collect();
    assert_eq!(
        br,
        prepared_once.iter().map(|&v| v as i64).collect::<Vec<_>>()
    );
    assert!(second.get(b"V").is_ok());
    // Same for a file with xref streams.
    let streams = qpdf(&input, &["--object-streams=generate"]);
    let once = sign(&streams, &options());
    let twice = sign(&once, &options());
    qpdf_check(&twice);
    widget_of(&Document::load_mem(&twice).unwrap(), "Signature2");
}

#[test]
fn explicit_field_name_must_be_new() {
    let input = make_pdf(&Spec::default());
    let mut opts = options();
    opts.field_name = Some("Lãnh đạo".into());
    let out = sign(&input, &opts);
    widget_of(&Document::load_mem(&out).unwrap(), "Lãnh đạo");
    let err = prepare_both(&out, &opts).unwrap_err();
    assert!(matches!(err, PdfError::InvalidOption(_)), "{err}");
}

#[test]
fn rotated_page_widget_rect_is_in_user_space() {
    if !require_tool("qpdf") {
        return;
    }
    let input = make_pdf(&Spec {
        rotate: Some(90),
        ..Spec::default()
    });
    let mut opts = options();
    opts.visible = visible(
        PageSelector::Last,
        Placement::Rect {
            x: 50.0,
            y: 60.0,
            w: 200.0,
            h: 80.0,
        },
    );
    let out = sign(&input, &opts);
    qpdf_check(&out);
    let doc = Document::load_mem(&out).unwrap();
    let widget = widget_of(&doc, "Signature1");
    let rect: Vec<f32> = widget
        .get(b"Rect")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_float().unwrap())
        .collect();
    // Displayed page is 842 x 595; user x = 595 - dy, user y = dx.
    assert_eq!(rect, vec![455.0, 50.0, 535.0, 250.0]);
    assert_eq!(
        widget.get(b"P").unwrap().as_reference().unwrap(),
        doc.get_pages()[&2]
    );
    assert!(widget.get(b"AP").is_ok());
}

#[test]
fn seal_goes_over_the_left_third_of_the_previous_signature() {
    if !require_tool("qpdf") {
        return;
    }
    let input = make_pdf(&Spec::default());
    let mut first = options();
    first.visible = visible(
        PageSelector::Number(1),
        Placement::Rect {
            x: 300.0,
            y: 100.0,
            w: 180.0,
            h: 60.0,
        },
    );
    let once = sign(&input, &first);
    let mut seal = options();
    seal.visible = visible(
        PageSelector::Number(1),
        Placement::SealOverPreviousSignature { diameter_pt: 90.0 },
    );
    let twice = sign(&once, &seal);
    qpdf_check(&twice);
    let doc = Document::load_mem(&twice).unwrap();
    let rect: Vec<f32> = widget_of(&doc, "Signature2")
        .get(b"Rect")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_float().unwrap())
        .collect();
    assert_eq!(rect, vec![270.0, 85.0, 360.0, 175.0]);
    // No signature on page 2 to seal over.
    seal.visible = visible(
        PageSelector::Number(2),
        Placement::SealOverPreviousSignature { diameter_pt: 90.0 },
    );
    let err = prepare_both(&once, &seal).unwrap_err();
    assert_eq!(err.code(), crate::ErrorCode::PdfNoSignatureToSeal);
}

#[test]
fn top_right_stamp() {
    let input = make_pdf(&Spec::default());
    let mut opts = options();
    opts.visible = visible(
        PageSelector::Number(1),
        Placement::TopRightStamp { w: 200.0, h: 50.0 },
    );
    let out = sign(&input, &opts);
    let doc = Document::load_mem(&out).unwrap();
    let rect: Vec<f32> = widget_of(&doc, "Signature1")
        .get(b"Rect")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_float().unwrap())
        .collect();
    assert_eq!(rect, vec![375.0, 772.0, 575.0, 822.0]);
}

#[test]
fn page_out_of_range_is_refused() {
    let input = make_pdf(&Spec::default());
    let mut opts = options();
    opts.visible = visible(
        PageSelector::Number(3),
        Placement::Rect {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        },
    );
    let err = prepare_both(&input, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            PdfError::PageOutOfRange {
                requested: 3,
                count: 2
            }
        ),
        "{err}"
    );
    assert_eq!(err.code(), crate::ErrorCode::PdfPageOutOfRange);
    opts.visible = visible(
        PageSelector::Number(0),
        Placement::Rect {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        },
    );
    assert!(matches!(
        prepare_both(&input, &opts),
        Err(PdfError::PageOutOfRange { .. })
    ));
}

#[test]
fn encrypted_pdfs_are_refused() {
    if !require_tool("qpdf") {
        return;
    }
    let input = make_pdf(&Spec::default());
    for args in [
        &["--encrypt", "", "owner", "256", "--"][..],
        &["--encrypt", "user", "owner", "256", "--"][..],
        &[
            "--allow-weak-crypto",
            "--encrypt",
            "",
            "owner",
            "128",
            "--use-aes=n",
            "--",
        ][..],
    ] {
        let encrypted = qpdf(&input, args);
        let err = prepare_both(&encrypted, &options()).unwrap_err();
        assert_eq!(
            err.code(),
            crate::ErrorCode::PdfEncrypted,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn broken_pdfs_are_refused() {
    let input = make_pdf(&Spec::default());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not a pdf", b"hello, world\n".to_vec()),
        ("truncated", input[..input.len() / 2].to_vec()),
        ("no eof", input[..input.len() - 7].to_vec()),
        ("header only", b"%PDF-1.7\n%%EOF\n".to_vec()),
        ("bad startxref", {
            let mut v = input.clone();
            let at = v.windows(9).rposition(|w| w == b"startxref").unwrap();
            v.truncate(at);
            v.extend_from_slice(b"startxref\n99999999\n%%EOF\n");
            v
        }),
    ];
    for (what, bytes) in cases {
        let err = prepare_both(&bytes, &options()).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::PdfMalformed, "{what}: {err}");
    }
}

#[test]
fn certification_with_no_changes_is_refused() {
    let err = prepare_both(
        &make_pdf(&Spec {
            docmdp: Some(1),
            ..Spec::default()
        }),
        &options(),
    )
    .unwrap_err();
    assert!(matches!(err, PdfError::CertifiedNoChanges), "{err}");
    assert_eq!(err.code(), crate::ErrorCode::PdfCertifiedNoChanges);
    // P=2 allows signing.
    sign(
        &make_pdf(&Spec {
            docmdp: Some(2),
            ..Spec::default()
        }),
        &options(),
    );
}

#[test]
fn signature_too_large_for_the_reservation() {
    let input = make_pdf(&Spec::default());
    let mut opts = options();
    opts.contents_size = 8;
    let prepared = prepare_pdf(&input, &opts).unwrap();
    let err = prepared.finish(&[0u8; 9]).unwrap_err();
    assert!(
        matches!(
            err,
            PdfError::SignatureTooLarge {
                needed: 9,
                available: 8
            }
        ),
        "{err}"
    );
    let prepared = prepare_pdf(&input, &opts).unwrap();
    assert!(prepared.finish(&[0xab; 8]).is_ok());
}

#[test]
fn file_without_final_newline_is_not_modified() {
    if !require_tool("qpdf") {
        return;
    }
    let mut input = make_pdf(&Spec::default());
    while input.last().is_some_and(|b| b.is_ascii_whitespace()) {
        input.pop();
    }
    let out = sign(&input, &options());
    assert_eq!(out[input.len()], b'\n');
    qpdf_check(&out);
}

/// Runs `pdfsig` on `bytes` and returns its stdout.
fn pdfsig(dir: &Path, bytes: &[u8]) -> String {
    let p = dir.join("signed.pdf");
    std::fs::write(&p, bytes).unwrap();
    let out = Command::new("pdfsig").arg(&p).output().expect("run pdfsig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn real_cms_verifies_with_pdfsig() {
    if !require_tool("qpdf") || !require_tool("pdfsig") {
        return;
    }
    use crate::cms::SignedDataBuilder;
    use crate::keys::{KeySource, Pkcs12Key};
    use crate::pki::alg::SignatureScheme;

    let dir = tempfile::tempdir().unwrap();
    let demo_key = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/demo/agency-signer.p12");
    let key = Pkcs12Key::open(&demo_key, "demo").unwrap();
    let scheme = SignatureScheme::RsaPkcs1(DigestAlgorithm::Sha256);
    let sign_real = |input: &[u8], opts: &PdfSignOptions| {
        let prepared = prepare_pdf(input, opts).unwrap();
        let digest = prepared.digest(scheme.digest());
        let cms = SignedDataBuilder::new(&key as &dyn KeySource, scheme, digest)
            .sign()
            .unwrap()
            .to_der()
            .unwrap();
        prepared.finish(&cms).unwrap()
    };
    let mut opts = options();
    opts.contents_size = 8192;
    for (what, input) in [
        ("classic", make_pdf(&Spec::default())),
        (
            "object streams",
            qpdf(&make_pdf(&Spec::default()), &["--object-streams=generate"]),
        ),
        (
            "linearized",
            qpdf(&make_pdf(&Spec::default()), &["--linearize"]),
        ),
    ] {
        let once = sign_real(&input, &opts);
        opts.visible = visible(
            PageSelector::Last,
            Placement::Rect {
                x: 50.0,
                y: 50.0,
                w: 150.0,
                h: 50.0,
            },
        );
        let twice = sign_real(&once, &opts);
        opts.visible = None;
        let report = pdfsig(dir.path(), &twice);
        assert_eq!(
            report.matches("Signature is Valid").count(),
            2,
            "{what}: {report}"
        );
        assert!(report.contains("ETSI.CAdES.detached"), "{what}: {report}");
        assert!(
            !report.contains("not signed completely")
                || report.matches("Total document signed").count() == 1,
            "{what}: {report}"
        );
    }
}

/// A hybrid-reference file (ISO 32000-1 §7.5.8.4): the page lives in an object stream that
/// only the `/XRefStm` describes; the table marks it free.
fn hybrid_pdf() -> Vec<u8> {
    let mut out = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    let mut obj = |out: &mut Vec<u8>, text: &[u8]| {
        offsets.push(out.len());
        out.extend_from_slice(text);
    };
    obj(
        &mut out,
        b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
    );
    obj(
        &mut out,
        b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n",
    );
    let body = b"3 0 << /Type /Page /Parent 2 0 R /MediaBox [0 0 300 400] >>";
    let objstm = format!(
        "4 0 obj\n<< /Type /ObjStm /N 1 /First 4 /Length {} >>\nstream\n",
        body.len()
    );
    let mut objstm = objstm.into_bytes();
    objstm.extend_from_slice(body);
    objstm.extend_from_slice(b"\nendstream\nendobj\n");
    obj(&mut out, &objstm);
    let xref_stm_at = out.len();
    // One entry for object 3: type 2, in object stream 4, index 0.
    let data = [2u8, 0, 4, 0];
    let mut stm = format!(
        "5 0 obj\n<< /Type /XRef /Size 6 /W [1 2 1] /Index [3 1] /Length {} >>\nstream\n",
        data.len()
    )
    .into_bytes();
    stm.extend_from_slice(&data);
    stm.extend_from_slice(b"\nendstream\nendobj\n");
    obj(&mut out, &stm);
    let xref_at = out.len();
    let mut table = String::from("xref\n0 6\n0000000000 65535 f\r\n");
    for (i, off) in offsets.iter().enumerate() {
        if i == 2 {
            table.push_str("0000000000 00000 f\r\n"); // object 3 is hidden in the stream
        }
        table.push_str(&format!("{off:010} 00000 n\r\n"));
    }
    out.extend_from_slice(table.as_bytes());
    out.extend_from_slice(
        format!("trailer\n<< /Size 6 /Root 1 0 R /XRefStm {xref_stm_at} >>\nstartxref\n{xref_at}\n%%EOF\n")
            .as_bytes(),
    );
    out
}

#[test]
fn hybrid_file_gets_a_table_and_the_compressed_page_is_rewritten() {
    if !require_tool("qpdf") {
        return;
    }
    let input = hybrid_pdf();
    qpdf_check(&input);
    assert_eq!(last_xref_section(&input).unwrap().1, XrefKind::Table);
    let mut opts = options();
    opts.visible = visible(
        PageSelector::Number(1),
        Placement::Rect {
            x: 10.0,
            y: 10.0,
            w: 100.0,
            h: 40.0,
        },
    );
    let out = sign(&input, &opts);
    let section = new_section(&input, &out);
    assert!(section.contains("\nxref\n"), "{section}");
    assert!(
        section.contains("\n3 0 obj\n"),
        "the page leaves its object stream: {section}"
    );
    qpdf_check(&out);
    let doc = Document::load_mem(&out).unwrap();
    let widget = widget_of(&doc, "Signature1");
    let page = doc.get_dictionary((3, 0)).unwrap();
    assert_eq!(page.get(b"Annots").unwrap().as_array().unwrap().len(), 1);
    assert_eq!(widget.get(b"P").unwrap().as_reference().unwrap(), (3, 0));
    // qpdf reads the field through the table + /Prev chain too.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.pdf");
    std::fs::write(&p, &out).unwrap();
    let json = Command::new("qpdf")
        .args(["--json", "--json-key=acroform"])
        .arg(&p)
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&json.stdout);
    assert!(json.contains("Signature1"), "{json}");
}

/// The batch engine's one pass (input hash, continued to the hole, then to the end) gives
/// the same signed digest, the same file and the digest of that file as the separate calls,
/// and `/Contents` holds the DER as upper-case hex.
#[test]
fn one_pass_hashing_matches_separate_digests() {
    let input = make_pdf(&Spec::default());
    let opts = options();
    let cms: Vec<u8> = (0..=255u8).chain([0x0f, 0xa0]).collect();
    let separate = prepare_pdf(&input, &opts).unwrap();
    let separate_digest = separate.digest(DigestAlgorithm::Sha256);
    let separate_file = separate.finish(&cms).unwrap();

    let mut output = DigestAlgorithm::Sha256.hasher();
    output.update(&input);
    let prepared = crate::pdf::prepare_owned(input.clone(), &opts).unwrap();
    assert_eq!(
        prepared.digest_continuing(&mut output, input.len()),
        separate_digest
    );
    let (file, file_digest) = prepared.finish_hashed(&cms, output).unwrap();
    assert_eq!(file, separate_file);
    assert_eq!(file_digest, DigestAlgorithm::Sha256.digest(&file));
    let hex = hex::encode_upper(&cms);
    assert!(file.windows(hex.len()).any(|w| w == hex.as_bytes()));
}
