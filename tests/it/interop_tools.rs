//! Self-tests of the interop harness in `tests/it/common/` — independent of signgate's
//! signing code: PDFs are signed by pyHanko and CMS by `openssl cms`, with certificates of a
//! throwaway PKI from the demo generator (`signgate::pki::demo`), so a failure here means the
//! harness (or a tool) is broken, not signgate's signing or verification.

use std::path::{Path, PathBuf};
use std::process::Command;

use signgate::pki::demo::{DemoPki, IssuedLeaf, LeafSpec};

use crate::common::*;

const ORACLE_TOOLS: &[&str] = &["openssl", "pdfsig", "certutil", "pyhanko"];

/// A PKI with a signer, an OCSP/CRL responder, and simple.pdf signed by pyHanko.
struct Fixture {
    pki: DemoPki,
    leaf: IssuedLeaf,
    responder: Option<OcspResponder>,
    port: u16,
    signed: PathBuf,
    _pki_dir: tempfile::TempDir,
    _out: tempfile::TempDir,
}

impl Fixture {
    /// `root-ca.pem`, the trust anchor.
    fn root(&self) -> PathBuf {
        self.pki.dir.join("root-ca.pem")
    }

    /// Revokes the signer now and restarts the responder, which reads `index.txt` at start.
    fn revoke_signer(&mut self) -> OcspResponder {
        self.pki
            .revoke(&self.leaf.certificate, time::OffsetDateTime::now_utc())
            .expect("revoke the signer");
        drop(self.responder.take());
        OcspResponder::start(&self.pki.dir, self.port)
    }
}

fn fixture() -> Fixture {
    let port = free_port();
    let (pki_dir, mut pki) = generate_demo_pki(&format!("http://127.0.0.1:{port}/"));
    let (leaf, key, cert) = issue_pem(&mut pki, "Nguyen Van A", "signer");
    let responder = OcspResponder::start(pki_dir.path(), port);
    let out = tempdir();
    let signed = out.path().join("signed.pdf");
    let ica = pki_dir.path().join("issuing-ca.pem");
    pyhanko_sign(
        &corpus("simple.pdf"),
        &signed,
        &key,
        &cert,
        &[&ica],
        "Sig1",
        &[],
    );
    Fixture {
        pki,
        leaf,
        responder: Some(responder),
        port,
        signed,
        _pki_dir: pki_dir,
        _out: out,
    }
}

/// Issues a signer `common_name` from `pki` and writes its key and certificate as PEM files
/// `FILE.key`/`FILE.pem` in the PKI folder; returns the leaf and (key, cert).
fn issue_pem(pki: &mut DemoPki, common_name: &str, file: &str) -> (IssuedLeaf, PathBuf, PathBuf) {
    let dir = pki.dir.clone();
    let leaf = pki
        .issue_leaf(
            &LeafSpec::new(common_name),
            &dir.join(format!("{file}.p12")),
        )
        .expect("issue a leaf");
    let (key, cert) = leaf_pem_files(&leaf, &dir, file);
    (leaf, key, cert)
}

fn flip_byte(src: &Path, dst: &Path, at: usize) {
    let mut data = std::fs::read(src).unwrap();
    data[at] ^= 0x01;
    std::fs::write(dst, data).unwrap();
}

#[test]
fn pdfsig_trusts_pyhanko_signature_and_consults_ocsp() {
    if !require_tools(ORACLE_TOOLS) {
        return;
    }
    let mut fx = fixture();
    let nss = NssDb::new(&fx.root());
    let report = pdfsig(&nss, &fx.signed);
    assert_eq!(report.exit_code, Some(0), "{}", report.raw);
    assert_eq!(report.signatures.len(), 1, "{}", report.raw);
    let sig = &report.signatures[0];
    assert_eq!(sig.field_name.as_deref(), Some("Sig1"));
    assert_eq!(sig.signer_cn.as_deref(), Some("Nguyen Van A"));
    assert!(sig.signature_valid(), "{}", report.raw);
    let log = fx.responder.as_ref().unwrap().request_log();
    assert!(sig.certificate_trusted(), "{}\n{log:?}", report.raw);
    assert!(sig.total_document_signed, "{}", report.raw);
    assert_eq!(sig.signed_ranges.len(), 2);
    assert_eq!(sig.signed_ranges[0].0, 0);
    let len = std::fs::metadata(&fx.signed).unwrap().len();
    assert_eq!(sig.signed_ranges[1].1, len);
    let responder = fx.responder.as_ref().unwrap();
    assert!(
        responder.ocsp_requests() >= 1,
        "pdfsig did not ask the OCSP responder: {:?}",
        responder.request_log()
    );

    // unknown root: signature valid, certificate not trusted
    let empty = NssDb::empty();
    let report = pdfsig(&empty, &fx.signed);
    assert!(report.signatures[0].signature_valid(), "{}", report.raw);
    assert_eq!(
        report.signatures[0].certificate_validation, "Certificate issuer is unknown.",
        "{}",
        report.raw
    );

    // a flipped byte inside the signed range: digest mismatch
    let tampered = fx.signed.with_file_name("tampered.pdf");
    flip_byte(&fx.signed, &tampered, 200);
    let report = pdfsig(&nss, &tampered);
    assert!(!report.signatures[0].signature_valid(), "{}", report.raw);

    // revoked: the restarted responder says so and pdfsig reports it
    let responder = fx.revoke_signer();
    let report = pdfsig(&nss, &fx.signed);
    assert!(report.signatures[0].signature_valid(), "{}", report.raw);
    assert_eq!(
        report.signatures[0].certificate_validation,
        "Certificate has been Revoked.",
        "{}\n{:?}",
        report.raw,
        responder.request_log()
    );
}

#[test]
fn pyhanko_validate_reports_trust_coverage_and_revocation() {
    if !require_tools(ORACLE_TOOLS) {
        return;
    }
    let mut fx = fixture();
    let report = pyhanko_validate(&fx.signed, &fx.root());
    assert_eq!(report.signatures.len(), 1, "{}", report.raw);
    let s = &report.signatures[0];
    assert_eq!(s.kind, "signature");
    assert!(
        s.intact && s.valid && s.trusted && s.bottom_line,
        "{}",
        report.raw
    );
    assert_eq!(s.coverage.as_deref(), Some("ENTIRE_FILE"));
    assert_eq!(s.modification_level.as_deref(), Some("NONE"));
    assert_eq!(s.md_algorithm.as_deref(), Some("sha256"));
    assert_eq!(s.timestamp_valid, None);

    // untrusted root
    let (other, _) = generate_demo_pki("http://127.0.0.1:9/");
    let report = pyhanko_validate(&fx.signed, &other.path().join("root-ca.pem"));
    let s = &report.signatures[0];
    assert!(s.intact && !s.trusted, "{}", report.raw);
    assert_eq!(
        s.trust_problem.as_deref(),
        Some("NO_CERTIFICATE_CHAIN_FOUND")
    );

    // online revocation checking through the responder (OCSP and/or CRL)
    let root = fx.root();
    let args = [
        "--trust",
        root.to_str().unwrap(),
        "--allow-fetching",
        "--revocation-mode",
        "hard-fail",
    ];
    let report = pyhanko_validate_args(&fx.signed, &args).unwrap();
    assert!(report.signatures[0].trusted, "{}", report.raw);
    let r = fx.responder.as_ref().unwrap();
    assert!(
        r.ocsp_requests() + r.file_requests() >= 1,
        "{:?}",
        r.request_log()
    );

    let _responder = fx.revoke_signer();
    let report = pyhanko_validate_args(&fx.signed, &args).unwrap();
    let s = &report.signatures[0];
    assert!(s.intact && !s.trusted, "{}", report.raw);
    assert_eq!(
        s.trust_problem.as_deref(),
        Some("REVOKED_NO_POE"),
        "{}",
        report.raw
    );

    // tampered
    let tampered = fx.signed.with_file_name("tampered.pdf");
    flip_byte(&fx.signed, &tampered, 200);
    let report = pyhanko_validate(&tampered, &fx.root());
    assert!(!report.signatures[0].intact, "{}", report.raw);

    // unreadable input is an Err, not a panic
    assert!(pyhanko_validate_args(&corpus("not-a-pdf.txt"), &[]).is_err());
}

#[test]
fn certified_fixture_is_docmdp_p1_for_both_oracles() {
    if !require_tools(ORACLE_TOOLS) {
        return;
    }
    let root = data_dir().join("pki-throwaway/root.pem");
    let pdf = corpus("certified-p1.pdf");
    let report = pyhanko_validate(&pdf, &root);
    let s = &report.signatures[0];
    assert!(s.intact && s.trusted, "{}", report.raw);
    assert_eq!(
        s.docmdp_level.as_deref(),
        Some("NO_CHANGES"),
        "{}",
        report.raw
    );
    let nss = NssDb::new(&root);
    // (not -no-ocsp: poppler 22.12 then answers "Unknown issue with Certificate" even for
    // trusted chains; this certificate has no AIA, so nothing is fetched anyway)
    let report = pdfsig(&nss, &pdf);
    assert!(report.signatures[0].signature_valid(), "{}", report.raw);
    assert!(report.signatures[0].certificate_trusted(), "{}", report.raw);
}

#[test]
fn openssl_cms_verify_accepts_good_and_rejects_bad() {
    let Some(_) = require_tool("openssl") else {
        return;
    };
    let (pki_dir, mut pki) = generate_demo_pki("http://127.0.0.1:9/");
    let (_, key, cert) = issue_pem(&mut pki, "cms-signer", "cms-signer");
    let root = pki_dir.path().join("root-ca.pem");
    let dir = tempdir();
    let content = dir.path().join("content.bin");
    std::fs::write(&content, b"signgate detached CMS content\n").unwrap();
    let p7s = dir.path().join("sig.p7s");
    run_ok(
        Command::new("openssl")
            .args([
                "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256", "-in",
            ])
            .arg(&content)
            .arg("-signer")
            .arg(&cert)
            .arg("-inkey")
            .arg(&key)
            .arg("-certfile")
            .arg(pki_dir.path().join("issuing-ca.pem"))
            .arg("-out")
            .arg(&p7s),
    );
    assert!(openssl_cms_verify(&p7s, &content, &root));
    let other = dir.path().join("other.bin");
    std::fs::write(&other, b"signgate detached CMS content?\n").unwrap();
    assert!(!openssl_cms_verify(&p7s, &other, &root));
    let (stranger, _) = generate_demo_pki("http://127.0.0.1:9/");
    assert!(!openssl_cms_verify(
        &p7s,
        &content,
        &stranger.path().join("root-ca.pem")
    ));
}

#[test]
fn rendering_and_text_extraction() {
    if !require_tools(&["pdftoppm", "pdftotext"]) {
        return;
    }
    let png = render_page_png(&sample_pdf(), 1, 72);
    let img = read_png_rgb(&png);
    assert_eq!((img.width, img.height), (595, 842));
    // header text near the top-left; nothing red anywhere on a plain black-text page
    assert!(img.count_in(60, 30, 400, 60, is_ink) > 50);
    assert_eq!(img.red_pixels_in_pdf_rect([0.0, 0.0, 595.0, 842.0], 72), 0);
    assert_eq!(
        img.pdf_rect_to_px([72.0, 700.0, 144.0, 842.0], 72),
        (72, 0, 144, 142)
    );
    // /Rotate 90 on a portrait MediaBox renders landscape
    let page2 = read_png_rgb(&render_page_png(&corpus("rotated-3p.pdf"), 2, 36));
    assert!(
        page2.width > page2.height,
        "{}x{}",
        page2.width,
        page2.height
    );
    let page3 = read_png_rgb(&render_page_png(&corpus("rotated-3p.pdf"), 3, 36));
    assert!(
        page3.width < page3.height,
        "{}x{}",
        page3.width,
        page3.height
    );

    let text = pdftotext(&sample_pdf());
    assert!(text.contains("QUYET DINH"), "{text}");
    assert!(text.contains("So: 123/QD-UBND"), "{text}");
}

#[test]
fn corpus_has_the_promised_structures() {
    if !require_tools(&["qpdf", "pdfsig", "certutil"]) {
        return;
    }
    let has = |name: &str, needle: &[u8]| {
        let data = std::fs::read(corpus(name)).unwrap();
        data.windows(needle.len()).any(|w| w == needle)
    };
    for f in [
        "simple.pdf",
        "rotated-3p.pdf",
        "hybrid.pdf",
        "incremental.pdf",
        "objstm.pdf",
        "classic-1.4.pdf",
        "linearized.pdf",
        "cairo.pdf",
        "ghostscript.pdf",
        "certified-p1.pdf",
    ] {
        assert!(qpdf_check(&corpus(f)), "{f} fails qpdf --check");
    }
    assert!(qpdf_check(&sample_pdf()));
    assert!(has("objstm.pdf", b"/ObjStm") && has("objstm.pdf", b"/XRef"));
    assert!(has("classic-1.4.pdf", b"%PDF-1.4") && has("classic-1.4.pdf", b"\nxref"));
    assert!(!has("classic-1.4.pdf", b"/ObjStm"));
    assert!(has("linearized.pdf", b"/Linearized"));
    assert!(has("hybrid.pdf", b"/XRefStm") && has("hybrid.pdf", b"\nxref"));
    assert!(has("incremental.pdf", b"/Prev"));
    assert!(has("cairo.pdf", b"cairo"));
    assert!(has("ghostscript.pdf", b"Ghostscript"));
    assert!(has("encrypted.pdf", b"/Encrypt"));
    assert!(!has("truncated.pdf", b"%%EOF"));
    assert!(!std::fs::read(corpus("not-a-pdf.txt"))
        .unwrap()
        .starts_with(b"%PDF"));
    // pdfsig: unsigned → exit 2 without signatures
    let nss = NssDb::empty();
    let r = pdfsig(&nss, &corpus("simple.pdf"));
    assert_eq!(r.exit_code, Some(2), "{}", r.raw);
    assert!(r.signatures.is_empty());
}

#[test]
fn pdfsig_parser_reads_poppler_22_format() {
    let text = "Digital Signature Info of: x.pdf\nSignature #1:\n  - Signature Field Name: Sig1\n  - Signer Certificate Common Name: A\n  - Signer full Distinguished Name: CN=A,C=VN\n  - Signing Time: Nov 26 2026 06:10:29\n  - Signing Hash Algorithm: SHA-256\n  - Signature Type: ETSI.CAdES.detached\n  - Signed Ranges: [0 - 1446], [9086 - 9755]\n  - Total document signed\n  - Signature Validation: Signature is Valid.\n  - Certificate Validation: Certificate issuer isn't Trusted.\nSignature #2:\n  - Signature Field Name: Sig2\n  - Signed Ranges: [0 - 10], [20 - 30]\n  - Not total document signed\n  - Signature Validation: Digest Mismatch.\n  - Certificate Validation: Certificate has been Revoked.\n";
    let sigs = parse_pdfsig(text);
    assert_eq!(sigs.len(), 2);
    assert_eq!(sigs[0].signed_ranges, vec![(0, 1446), (9086, 9755)]);
    assert!(
        sigs[0].signature_valid()
            && !sigs[0].certificate_trusted()
            && sigs[0].total_document_signed
    );
    assert_eq!(
        sigs[0].signature_type.as_deref(),
        Some("ETSI.CAdES.detached")
    );
    assert!(!sigs[1].signature_valid() && !sigs[1].total_document_signed);
    assert_eq!(
        sigs[1].certificate_validation,
        "Certificate has been Revoked."
    );
}

#[test]
fn require_tool_skips_locally_and_fails_in_ci() {
    assert!(require_tool("openssl").is_some() || !in_ci());
    let missing = std::panic::catch_unwind(|| require_tool("signgate-no-such-tool-xyz"));
    match missing {
        Ok(found) => {
            assert!(!in_ci(), "CI=true must panic on a missing tool");
            assert!(found.is_none());
        }
        Err(_) => assert!(in_ci(), "panicked outside CI"),
    }
}
