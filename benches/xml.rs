//! `cargo bench --bench xml`: tax declarations (a few KB, `tax` profile, RSA-2048 SHA-256)
//! signed and verified per second by signgate, beside `xmlsec1 --sign`/`--verify` on the
//! same files in the same run.
//!
//! Three signgate figures: the library on one thread (the gateway's own path), and the CLI
//! as one process per file, which is how xmlsec1 runs, for a like-for-like comparison.
//! Verification on both sides checks digests, the signature and the certificate path to
//! the demo root (no revocation: signgate runs `--offline`, xmlsec1 has none).
//! `SIGNGATE_BENCH_DOCS` sets the number of documents (default 300). Under
//! `cargo test --all-targets` (no `--bench`) it returns at once.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use signgate::keys::Pkcs12Key;
use signgate::pki::alg::{DigestAlgorithm, SignatureScheme};
use signgate::verify::{self, TrustList, ValidationContext};
use signgate::xml::Profile;

const TAX_NS: &str = "http://kekhaithue.gdt.gov.vn/TKhaiThue";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let docs: usize = std::env::var("SIGNGATE_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let demo = |n: &str| root.join("certs/demo").join(n);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_signgate"));
    let dir = tempfile::tempdir().expect("temp dir");
    let p = |n: &str| dir.path().join(n);
    for sub in ["in", "tpl", "sg", "sg-cli", "xs"] {
        std::fs::create_dir_all(p(sub)).unwrap();
    }
    let has_xmlsec1 = Command::new("xmlsec1").arg("--version").output().is_ok();

    // Key material: the demo organization (RSA-2048), as PKCS#12 for signgate and PEM for xmlsec1.
    let p12 = demo("organization.p12");
    let key = Pkcs12Key::open(&p12, "demo").expect("demo key");
    let (key_pem, cert_pem) = (p("key.pem"), p("cert.pem"));
    for (what, path) in [("-nocerts", &key_pem), ("-clcerts", &cert_pem)] {
        let ok = Command::new("openssl")
            .args(["pkcs12", "-in"])
            .arg(&p12)
            .args(["-passin", "pass:demo", "-nodes", what, "-out"])
            .arg(path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "openssl pkcs12 {what}");
    }

    let inputs: Vec<(PathBuf, Vec<u8>)> = (0..docs)
        .map(|n| {
            let doc = declaration(n);
            let path = p("in").join(format!("tax-{n:04}.xml"));
            std::fs::write(&path, &doc).unwrap();
            (path, doc)
        })
        .collect();
    let avg = inputs.iter().map(|(_, d)| d.len()).sum::<usize>() / docs.max(1);
    println!("{docs} tax declarations of {avg} bytes on average, profile tax, RSA-2048 PKCS#1 v1.5 SHA-256");

    // --- signing ---
    let scheme = SignatureScheme::RsaPkcs1(DigestAlgorithm::Sha256);
    let now = time::OffsetDateTime::now_utc();
    let start = Instant::now();
    let mut signed_files = Vec::new();
    for (path, doc) in &inputs {
        let out = signgate::xml::sign(doc, Profile::Tax, &key, scheme, now).expect("sign");
        let file = p("sg").join(path.file_name().unwrap());
        std::fs::write(&file, out).unwrap();
        signed_files.push(file);
    }
    let sg_sign = rate(docs, start);

    let start = Instant::now();
    for (path, _) in &inputs {
        let ok = Command::new(&bin)
            .args(["sign", "--key"])
            .arg(&p12)
            .arg("--in")
            .arg(path)
            .arg("--out")
            .arg(p("sg-cli").join(path.file_name().unwrap()))
            .args(["--profile", "tax"])
            .env("SIGNGATE_KEY_PASSWORD", "demo")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "signgate sign {}", path.display());
    }
    let sg_cli_sign = rate(docs, start);

    let id_attr = format!("{TAX_NS}:HSoKhaiThue");
    let xs_sign = if has_xmlsec1 {
        let templates: Vec<PathBuf> = inputs
            .iter()
            .map(|(path, doc)| {
                let text = String::from_utf8(doc.clone()).unwrap();
                let tpl = p("tpl").join(path.file_name().unwrap());
                std::fs::write(&tpl, text.replacen("<CKyDTu></CKyDTu>", &template(), 1)).unwrap();
                tpl
            })
            .collect();
        let start = Instant::now();
        for tpl in &templates {
            let o = Command::new("xmlsec1")
                .arg("--sign")
                .arg("--privkey-pem")
                .arg(format!("{},{}", key_pem.display(), cert_pem.display()))
                .arg("--id-attr:id")
                .arg(&id_attr)
                .arg("--output")
                .arg(p("xs").join(tpl.file_name().unwrap()))
                .arg(tpl)
                .output()
                .expect("xmlsec1");
            assert!(
                o.status.success(),
                "xmlsec1 --sign: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Some(rate(docs, start))
    } else {
        println!("xmlsec1 not installed: signgate figures only");
        None
    };

    // --- verification (of signgate's signed files, by both) ---
    let ctx = ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: vec![TrustList::load("default", &demo("root-ca.pem")).expect("root")],
        fetcher: None,
    };
    let start = Instant::now();
    for f in &signed_files {
        let bytes = std::fs::read(f).unwrap();
        let report = verify::document("tax.xml", &bytes, None, &verify::Policy::default(), &ctx)
            .expect("verify");
        assert!(report.signatures[0].intact, "{}", f.display());
    }
    let sg_verify = rate(docs, start);

    let start = Instant::now();
    for f in &signed_files {
        let o = Command::new(&bin)
            .args(["verify", "--offline", "--trust"])
            .arg(demo("root-ca.pem"))
            .arg(f)
            .output()
            .expect("signgate verify");
        // Offline, a demo signature ends INDETERMINATE (exit 2): intact, no revocation data.
        assert_eq!(o.status.code(), Some(2), "signgate verify {}", f.display());
    }
    let sg_cli_verify = rate(docs, start);

    let xs_verify = has_xmlsec1.then(|| {
        let start = Instant::now();
        for f in &signed_files {
            let o = Command::new("xmlsec1")
                .arg("--verify")
                .arg("--trusted-pem")
                .arg(demo("root-ca.pem"))
                .arg("--untrusted-pem")
                .arg(demo("issuing-ca.pem"))
                .arg("--id-attr:id")
                .arg(&id_attr)
                .arg(f)
                .output()
                .expect("xmlsec1");
            assert!(
                o.status.success(),
                "xmlsec1 --verify: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        rate(docs, start)
    });

    println!("{:<44}{:>12}{:>12}", "", "sign/s", "verify/s");
    let row = |what: &str, s: f64, v: f64| println!("{what:<44}{s:>12.1}{v:>12.1}");
    row("signgate library, 1 thread", sg_sign, sg_verify);
    row(
        "signgate CLI, 1 process per file",
        sg_cli_sign,
        sg_cli_verify,
    );
    if let (Some(xs), Some(xv)) = (xs_sign, xs_verify) {
        row("xmlsec1 1.2.x, 1 process per file", xs, xv);
        println!(
            "ratio signgate library / xmlsec1:            sign {:.2}x, verify {:.2}x",
            sg_sign / xs,
            sg_verify / xv
        );
        println!(
            "ratio signgate CLI / xmlsec1 (like for like): sign {:.2}x, verify {:.2}x",
            sg_cli_sign / xs,
            sg_cli_verify / xv
        );
    }
}

fn rate(n: usize, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

/// A tax declaration of a few KB numbered `n`, in the layout of `tests/data/xml/tax.xml`.
fn declaration(n: usize) -> Vec<u8> {
    let mut items = String::new();
    for i in 0..80 {
        items.push_str(&format!(
            "      <ct{i:02}>{}</ct{i:02}>\n",
            (n * 7919 + i * 104_729) % 1_000_000_000
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<HSoThueDTu xmlns=\"{TAX_NS}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n  <HSoKhaiThue id=\"_NODE_TO_SIGN\">\n    <TTinChung>\n      <TTinDVu><maDVu>HTKK</maDVu><tenDVu>HTKK</tenDVu><pbanDVu>5.2.0</pbanDVu></TTinDVu>\n      <TTinTKhaiThue>\n        <TKhaiThue><maTKhai>842</maTKhai><tenTKhai>TỜ KHAI THUẾ GIÁ TRỊ GIA TĂNG (Mẫu số 01/GTGT)</tenTKhai><KyKKhaiThue><kieuKy>Q</kieuKy><kyKKhai>{}/2025</kyKKhai></KyKKhaiThue></TKhaiThue>\n        <NNT><mst>0100686209</mst><tenNNT>Công ty TNHH Mẫu Thử Nghiệm số {n}</tenNNT></NNT>\n      </TTinTKhaiThue>\n    </TTinChung>\n    <!-- synthetic benchmark document -->\n    <CTieuTKhaiChinh>\n{items}    </CTieuTKhaiChinh>\n  </HSoKhaiThue>\n  <CKyDTu></CKyDTu>\n</HSoThueDTu>\n",
        n % 4 + 1
    )
    .into_bytes()
}

/// The xmlsec1 template of the tax profile: what signgate produces, with empty values.
fn template() -> String {
    let c14n = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments";
    format!(
        "<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\" Id=\"xs-sig\"><SignedInfo><CanonicalizationMethod Algorithm=\"{c14n}\"/><SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/><Reference URI=\"#_NODE_TO_SIGN\"><Transforms><Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/><Transform Algorithm=\"{c14n}\"/></Transforms><DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><DigestValue/></Reference><Reference URI=\"#xs-time\"><Transforms><Transform Algorithm=\"{c14n}\"/></Transforms><DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><DigestValue/></Reference></SignedInfo><SignatureValue/><KeyInfo><X509Data><X509SubjectName/><X509Certificate/></X509Data></KeyInfo><Object Id=\"xs-time\"><SignatureProperties><SignatureProperty Target=\"#xs-sig\"><SigningTime>2025-07-01T09:30:00+07:00</SigningTime></SignatureProperty></SignatureProperties></Object></Signature>"
    )
}
