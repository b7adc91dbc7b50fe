//! Long-term validation: `signgate extend` to B-LT and B-LTA, then offline verification;
//! proof of existence from time-stamps (a certificate that expired after its signature's
//! time-stamp still validates); time-stamps out of order.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use der::{Decode, Encode};
use signgate::pki::alg::DigestAlgorithm;
use signgate::pki::demo::LeafSpec;
use signgate::sign::TimeStamper;

fn services() -> &'static common::LiveServices {
    static SERVICES: OnceLock<common::LiveServices> = OnceLock::new();
    SERVICES.get_or_init(common::LiveServices::start)
}

fn sign(input: &Path, output: &Path, p12: &Path, extra: &[&str]) {
    common::run_ok(
        common::signgate(["sign", "--key"])
            .arg(p12)
            .arg("--in")
            .arg(input)
            .arg("--out")
            .arg(output)
            .args(extra)
            .env("SIGNGATE_KEY_PASSWORD", "demo"),
    );
}

fn extend(input: &Path, output: &Path, level: &str) {
    let s = services();
    common::run_ok(
        common::signgate(["extend", "--level", level, "--tsa", &s.tsa.url, "--trust"])
            .arg(s.pki.root())
            .arg("--in")
            .arg(input)
            .arg("--out")
            .arg(output),
    );
}

fn verify(pdf: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<std::ffi::OsString> = vec!["--trust".into(), services().pki.root().into()];
    args.extend(extra.iter().map(Into::into));
    args.push(pdf.into());
    let (_, report, out) = common::verify_json(&args);
    assert!(!report.is_null(), "no report: {}", common::stderr_str(&out));
    report
}

fn scratch(name: &str) -> PathBuf {
    common::scratch_path(name, "pdf")
}

#[test]
fn b_lt_and_b_lta_verify_offline() {
    let s = services();
    let signed = scratch("ltv-bt");
    sign(
        &common::sample_pdf(),
        &signed,
        &s.pki.path("agency-signer.p12"),
        &["--level", "b-t", "--tsa", &s.tsa.url],
    );
    let offline = verify(&signed, &["--offline"]);
    assert_eq!(
        offline["sub_indication"], "TRY_LATER",
        "nothing embedded yet: {offline:#}"
    );

    let lt = scratch("ltv-blt");
    extend(&signed, &lt, "b-lt");
    let report = verify(&lt, &["--offline"]);
    assert_eq!(report["indication"], "TOTAL_PASSED", "{report:#}");
    let sig = &report["signatures"][0];
    assert_eq!(
        sig["modification"], "permitted",
        "DSS added after signing: {sig:#}"
    );
    let revocation = sig["revocation"].as_array().unwrap();
    assert!(
        revocation.len() >= 2 && revocation.iter().all(|r| r["origin"] == "embedded"),
        "{sig:#}"
    );

    let lta = scratch("ltv-blta");
    extend(&lt, &lta, "b-lta");
    let report = verify(&lta, &["--offline"]);
    assert_eq!(report["indication"], "TOTAL_PASSED", "{report:#}");
    let sigs = report["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2);
    assert_eq!(sigs[1]["kind"], "document_timestamp");
    assert_eq!(sigs[1]["coverage"]["whole_file"], true);
    assert_eq!(sigs[1]["timestamp"]["valid"], true);
    assert!(std::fs::read(&lta)
        .unwrap()
        .starts_with(&std::fs::read(&lt).unwrap()));
}

#[test]
fn b_lta_without_tsa_is_a_usage_error() {
    let s = services();
    let out = common::run(
        common::signgate(["extend", "--level", "b-lta", "--trust"])
            .arg(s.pki.root())
            .arg("--in")
            .arg(common::sample_pdf())
            .arg("--out")
            .arg(scratch("ltv-usage")),
    );
    common::assert_exit(&out, 64, "extend b-lta without --tsa");
}

#[test]
fn certificate_expired_after_the_time_stamp_still_validates() {
    let s = services();
    let now = time::OffsetDateTime::now_utc();
    let spec = LeafSpec::new("Short-lived signer").with_validity(
        now - time::Duration::hours(1),
        now + time::Duration::seconds(15),
    );
    s.pki.issue(&spec, "short-lived");
    let key = s.pki.path("short-lived.p12");
    let with_ts = scratch("expiring-bt");
    let without_ts = scratch("expiring-bb");
    sign(
        &common::sample_pdf(),
        &with_ts,
        &key,
        &["--level", "b-t", "--tsa", &s.tsa.url],
    );
    sign(&common::sample_pdf(), &without_ts, &key, &[]);
    let with_ts_lt = scratch("expiring-blt");
    let without_ts_lt = scratch("expiring-bb-lt");
    extend(&with_ts, &with_ts_lt, "b-lt");
    extend(&without_ts, &without_ts_lt, "b-lt");
    let expired_at = now + time::Duration::seconds(17);
    while time::OffsetDateTime::now_utc() < expired_at {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let report = verify(&with_ts_lt, &["--offline"]);
    assert_eq!(
        report["indication"], "TOTAL_PASSED",
        "the time-stamp proves the signature existed in time: {report:#}"
    );
    let report = verify(&without_ts_lt, &["--offline"]);
    assert_eq!(report["indication"], "INDETERMINATE", "{report:#}");
    assert_eq!(
        report["sub_indication"], "OUT_OF_BOUNDS_NO_POE",
        "{report:#}"
    );
}

/// A TSA whose clock runs `skew` behind: its tokens predate what they stamp.
struct SkewedTsa {
    tsa: signgate::tsa::TimeStampAuthority,
    skew: time::Duration,
}

impl TimeStamper for SkewedTsa {
    fn timestamp(
        &self,
        digest: DigestAlgorithm,
        imprint: &[u8],
    ) -> Result<Vec<u8>, signgate::pki::tsp::TspError> {
        let request = x509_tsp::TimeStampReq {
            version: x509_tsp::TspVersion::V1,
            message_imprint: x509_tsp::MessageImprint {
                hash_algorithm: digest.identifier(),
                hashed_message: der::asn1::OctetString::new(imprint).unwrap(),
            },
            req_policy: None,
            nonce: None,
            cert_req: true,
            extensions: None,
        };
        let response = self.tsa.respond(
            &request.to_der().unwrap(),
            time::OffsetDateTime::now_utc() - self.skew,
        );
        let response = signgate::pki::tsp::TimeStampResp::from_der(&response).unwrap();
        Ok(response
            .time_stamp_token
            .expect("granted")
            .to_der()
            .unwrap())
    }
}

#[test]
fn document_time_stamp_older_than_the_signature_time_stamp_is_out_of_order() {
    let s = services();
    let signed = scratch("order-bt");
    sign(
        &common::sample_pdf(),
        &signed,
        &s.pki.path("agency-signer.p12"),
        &["--level", "b-t", "--tsa", &s.tsa.url],
    );
    let key = signgate::keys::Pkcs12Key::open(&s.pki.path("tsa.p12"), "demo").unwrap();
    let tsa = signgate::tsa::TimeStampAuthority::new(
        Arc::new(key),
        "1.3.6.1.4.1.99999.1.1".parse().unwrap(),
    )
    .unwrap();
    let skewed = SkewedTsa {
        tsa,
        skew: time::Duration::minutes(10),
    };
    let bytes = std::fs::read(&signed).unwrap();
    let mut opts = signgate::pdf::PdfSignOptions::new(time::OffsetDateTime::now_utc());
    opts.contents_size = 16 * 1024;
    let prepared = signgate::pdf::prepare_document_timestamp(&bytes, &opts).unwrap();
    let token = skewed
        .timestamp(
            DigestAlgorithm::Sha256,
            &prepared.digest(DigestAlgorithm::Sha256),
        )
        .unwrap();
    let out = scratch("order-docts");
    std::fs::write(&out, prepared.finish(&token).unwrap()).unwrap();
    let report = verify(&out, &[]);
    let sigs = report["signatures"].as_array().unwrap();
    assert_eq!(sigs[1]["kind"], "document_timestamp");
    assert_eq!(sigs[1]["timestamp"]["valid"], true, "{report:#}");
    assert_eq!(sigs[0]["indication"], "INDETERMINATE", "{report:#}");
    assert_eq!(
        sigs[0]["sub_indication"], "TIMESTAMP_ORDER_FAILURE",
        "{report:#}"
    );
}
