//! What a document can make the gateway fetch or inflate (issue 16, item 6): revocation data
//! only for paths that reach a configured trust anchor, no loopback or private addresses
//! unless `[fetch] allow` names them (the report says why nothing was fetched), no AIA
//! chasing unless configured; decompression bombs refused with a clear error code.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use signgate::gateway::fetch::{FetchPolicy, GatewayFetcher, OutboundFetch};
use signgate::verify::{Indication, Policy, Report, SubIndication, TrustList, ValidationContext};

use crate::common::{corpus, generate_demo_pki, signgate_bin, tempdir, SigngateServer};

fn sign(p12: &Path, out: &Path) {
    let o = Command::new(signgate_bin())
        .args(["sign", "--key"])
        .arg(p12)
        .arg("--in")
        .arg(corpus("simple.pdf"))
        .arg("--out")
        .arg(out)
        .env("SIGNGATE_KEY_PASSWORD", "demo")
        .output()
        .expect("run signgate sign");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Verifies `pdf` trusting `root`, fetching through the gateway's fetcher under `policy`.
fn verify(pdf: &Path, root: &Path, policy: FetchPolicy) -> Report {
    let fetcher = GatewayFetcher::new(
        Vec::new(),
        Duration::from_secs(3),
        OutboundFetch::new(policy),
    );
    let ctx = ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: vec![TrustList::load("default", root).expect("trust list")],
        fetcher: Some(Box::new(fetcher)),
    };
    let bytes = std::fs::read(pdf).unwrap();
    signgate::verify::document("signed.pdf", &bytes, None, &Policy::default(), &ctx)
        .expect("a report")
}

fn allowing_loopback() -> FetchPolicy {
    FetchPolicy {
        allow: vec!["127.0.0.0/8".parse().unwrap()],
        ..FetchPolicy::default()
    }
}

/// Whether something connected to `listener` (non-blocking) since the last call.
fn contacted(listener: &TcpListener) -> bool {
    match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

fn notes(report: &Report) -> String {
    report.signatures[0].notes.join(" | ")
}

#[test]
fn loopback_revocation_urls_are_not_fetched_and_the_report_says_why() {
    // A PKI whose certificates name OCSP, CRL and AIA URLs on a loopback port.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tmp, _pki) = generate_demo_pki(&format!("http://127.0.0.1:{port}/"));
    let root = tmp.path().join("root-ca.pem");
    let work = tempdir();
    let pdf = work.path().join("signed.pdf");
    sign(&tmp.path().join("agency-signer.p12"), &pdf);

    // Default policy: the path reaches the anchor, but its URLs are loopback: nothing is sent.
    let report = verify(&pdf, &root, FetchPolicy::default());
    assert_eq!(report.indication, Indication::Indeterminate);
    assert_eq!(report.sub_indication, Some(SubIndication::TryLater));
    let why = notes(&report);
    assert!(
        why.contains(&format!("http://127.0.0.1:{port}/"))
            && why.contains("not fetched: 127.0.0.1 is a loopback address"),
        "{why}"
    );
    assert!(!contacted(&listener), "a loopback URL was fetched");

    // Control: allowed, the same verification does connect (and gets no answer).
    let report = verify(&pdf, &root, allowing_loopback());
    assert_eq!(report.sub_indication, Some(SubIndication::TryLater));
    assert!(contacted(&listener), "the allowed URL was not fetched");
    drop(listener);

    // With the publication point running: allowed passes, refused stays TRY_LATER.
    let server = SigngateServer::pki_serve(tmp.path(), port);
    let report = verify(&pdf, &root, allowing_loopback());
    assert_eq!(
        report.indication,
        Indication::TotalPassed,
        "{}",
        notes(&report)
    );
    let report = verify(&pdf, &root, FetchPolicy::default());
    assert_eq!(report.sub_indication, Some(SubIndication::TryLater));
    assert!(notes(&report).contains("loopback"), "{}", notes(&report));
    server.stop();
}

#[test]
fn a_path_that_reaches_no_anchor_fetches_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tmp, _pki) = generate_demo_pki(&format!("http://127.0.0.1:{port}/"));
    let work = tempdir();
    let pdf = work.path().join("signed.pdf");
    sign(&tmp.path().join("agency-signer.p12"), &pdf);
    // Another PKI's root: the signer's path reaches no configured anchor.
    let root = crate::common::repo_root().join("certs/demo/root-ca.pem");

    // Even with loopback allowed: no OCSP/CRL for an unanchored path, no AIA chasing.
    let report = verify(&pdf, &root, allowing_loopback());
    assert_eq!(
        report.sub_indication,
        Some(SubIndication::NoCertificateChainFound)
    );
    assert!(
        !contacted(&listener),
        "an unanchored certificate's URL was fetched"
    );

    // Control: AIA chasing turned on does fetch the caIssuers URL.
    let chasing = FetchPolicy {
        chase_issuers: true,
        ..allowing_loopback()
    };
    let report = verify(&pdf, &root, chasing);
    assert_eq!(
        report.sub_indication,
        Some(SubIndication::NoCertificateChainFound)
    );
    assert!(contacted(&listener), "AIA chasing did not fetch");
}

#[test]
fn the_demo_gateway_allows_only_its_own_publication_point() {
    let dir = tempdir();
    let config =
        signgate::gateway::GatewayConfig::load_with(None, None, Some(dir.path()), |_| None)
            .expect("demo configuration");
    let policy = &config.settings.fetch.policy;
    assert_eq!(policy.refusal(&"127.0.0.1:8089".parse().unwrap()), None);
    assert!(policy.refusal(&"127.0.0.1:8080".parse().unwrap()).is_some());
    assert!(policy.refusal(&"10.0.0.1:80".parse().unwrap()).is_some());
    assert!(!policy.chase_issuers);

    // A configuration names what it allows; a bad entry is a configuration error.
    let file = dir.path().join("signgate.toml");
    let write = |fetch: &str| {
        std::fs::write(
            &file,
            format!(
                "data_dir = {:?}\n\n[fetch]\n{fetch}\n",
                dir.path().join("data")
            ),
        )
        .unwrap();
        signgate::gateway::GatewayConfig::load_with(Some(&file), None, None, |_| None)
    };
    let config = write("allow = [\"10.20.0.0/16\"]\nmax_response_kib = 512\nchase_issuers = true")
        .expect("valid [fetch]");
    let policy = &config.settings.fetch.policy;
    assert_eq!(policy.refusal(&"10.20.1.2:80".parse().unwrap()), None);
    assert!(policy.refusal(&"127.0.0.1:8089".parse().unwrap()).is_some());
    assert_eq!(policy.max_response_bytes, 512 * 1024);
    assert!(policy.chase_issuers);
    let err = write("allow = [\"intranet.example\"]").unwrap_err();
    assert!(err.to_string().contains("intranet.example"), "{err}");
}

/// A PDF whose cross-reference stream inflates to `len` bytes.
fn xref_stream_bomb(len: usize) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..len >> 20 {
        enc.write_all(&chunk).unwrap();
    }
    let data = enc.finish().unwrap();
    let mut pdf = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for body in [
        "<</Type/Catalog/Pages 2 0 R>>",
        "<</Type/Pages/Kids[3 0 R]/Count 1>>",
        "<</Type/Page/Parent 2 0 R/MediaBox[0 0 10 10]>>",
    ] {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", offsets.len()).as_bytes());
    }
    let xref_at = pdf.len();
    pdf.extend_from_slice(
        format!(
            "4 0 obj\n<</Type/XRef/Size 5/W[1 4 2]/Root 1 0 R/Filter/FlateDecode/Length {}>>\nstream\n",
            data.len()
        )
        .as_bytes(),
    );
    pdf.extend_from_slice(&data);
    pdf.extend_from_slice(format!("\nendstream\nendobj\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
    pdf
}

#[test]
fn decompression_bombs_are_refused_with_a_clear_code() {
    // PDF: a 40 MiB cross-reference stream (from ~40 KiB) passes the 32 MiB stream limit.
    let bomb = xref_stream_bomb(40 << 20);
    assert!(bomb.len() < 200_000);
    let ctx = ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: Vec::new(),
        fetcher: None,
    };
    match signgate::verify::document("bomb.pdf", &bomb, None, &Policy::default(), &ctx) {
        Err(e) => {
            assert_eq!(e.code().as_str(), "PDF_MALFORMED", "{e}");
            assert!(e.to_string().contains("decompression bomb"), "{e}");
        }
        Ok(report) => panic!("verified a decompression bomb: {:?}", report.indication),
    }
    let opts = signgate::pdf::PdfSignOptions::new(time::OffsetDateTime::now_utc());
    match signgate::pdf::prepare(&bomb, &opts) {
        Err(e) => assert!(e.to_string().contains("decompression bomb"), "{e}"),
        Ok(_) => panic!("prepared a decompression bomb for signing"),
    }

    // Zipped edXML attachments: edxml::zipped_attachments_are_bounded (EDXML_LIMIT_EXCEEDED).
}
