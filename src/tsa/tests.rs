use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;
use crate::keys::Pkcs12Key;
use crate::pki::tsp::{request_token, token_tst_info, TspError};
use crate::test_support::require_tool;

fn demo(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("certs/demo")
        .join(file)
}

fn demo_tsa() -> Arc<TimeStampAuthority> {
    let key = Pkcs12Key::open(&demo("tsa.p12"), "demo").unwrap();
    Arc::new(
        TimeStampAuthority::new(Arc::new(key), "1.3.6.1.4.1.99999.1.1".parse().unwrap()).unwrap(),
    )
}

fn run_openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Starts the HTTP server on a free loopback port; returns its URL and the shutdown sender.
fn start(
    rt: &tokio::runtime::Runtime,
    router: Router,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (url, tx)
}

fn request(digest: &[u8], nonce: Option<u64>, policy: Option<&str>) -> Vec<u8> {
    TimeStampReq {
        version: TspVersion::V1,
        message_imprint: x509_tsp::MessageImprint {
            hash_algorithm: DigestAlgorithm::Sha256.identifier(),
            hashed_message: der::asn1::OctetString::new(digest).unwrap(),
        },
        req_policy: policy.map(|p| p.parse().unwrap()),
        nonce: nonce.map(|n| Int::from_der(&n.to_der().unwrap()).unwrap()),
        cert_req: true,
        extensions: None,
    }
    .to_der()
    .unwrap()
}

#[test]
fn served_token_verifies_with_openssl_ts() {
    if !require_tool("openssl") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, stop) = start(&rt, router(demo_tsa()));
    let digest = DigestAlgorithm::Sha256.digest(b"Quyet dinh so 123/QD-UBND");
    let token = request_token(
        &url,
        DigestAlgorithm::Sha256,
        &digest,
        Duration::from_secs(10),
    )
    .unwrap();
    let _ = stop.send(());

    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token.der");
    std::fs::write(&token_path, &token).unwrap();
    let (root, issuing) = (demo("root-ca.pem"), demo("issuing-ca.pem"));
    let hex_digest = hex::encode(&digest);
    let verify = |path: &Path, extra: &[&str]| {
        let mut args = vec!["ts", "-verify", "-in", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-digest", &hex_digest, "-CAfile", root.to_str().unwrap()]);
        args.extend_from_slice(&["-untrusted", issuing.to_str().unwrap()]);
        run_openssl(&args)
    };
    let (ok, text) = verify(&token_path, &["-token_in"]);
    assert!(ok && text.contains("Verification: OK"), "{text}");

    // A different digest must fail.
    let other = hex::encode(DigestAlgorithm::Sha256.digest(b"other"));
    let (ok, _) = run_openssl(&[
        "ts",
        "-verify",
        "-in",
        token_path.to_str().unwrap(),
        "-token_in",
        "-digest",
        &other,
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        issuing.to_str().unwrap(),
    ]);
    assert!(!ok, "token verified against another digest");

    // The full reply from respond() verifies too, and `openssl ts -reply -text` reads it.
    let reply = demo_tsa().respond(&request(&digest, Some(42), None), OffsetDateTime::now_utc());
    let reply_path = dir.path().join("reply.tsr");
    std::fs::write(&reply_path, &reply).unwrap();
    let (ok, text) = verify(&reply_path, &[]);
    assert!(ok && text.contains("Verification: OK"), "{text}");
    let (ok, text) = run_openssl(&["ts", "-reply", "-in", reply_path.to_str().unwrap(), "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("Status: Granted."), "{text}");
    assert!(text.contains("Policy OID: 1.3.6.1.4.1.99999.1.1"), "{text}");
    assert!(text.contains("Nonce: 0x2A"), "{text}");
    assert!(text.contains("Hash Algorithm: sha256"), "{text}");
    assert!(
        text.contains("TSA: DirName:/C=VN/O=signgate demo/CN=signgate demo TSA"),
        "{text}"
    );
}

#[test]
fn token_content_is_what_was_asked() {
    let now = time::macros::datetime!(2030-01-02 03:04:05 UTC);
    let digest = [9u8; 32];
    let reply = demo_tsa().respond(&request(&digest, Some(7), None), now);
    let resp = TimeStampResp::from_der(&reply).unwrap();
    assert_eq!(resp.status.status, status::GRANTED);
    let tst = token_tst_info(&resp.time_stamp_token.unwrap()).unwrap();
    assert_eq!(
        tst.gen_time.to_unix_duration().as_secs(),
        now.unix_timestamp() as u64
    );
    assert_eq!(tst.message_imprint.hashed_message.as_bytes(), &digest);
    assert_eq!(tst.nonce.unwrap().as_bytes(), &[7]);
    assert_eq!(tst.policy.to_string(), "1.3.6.1.4.1.99999.1.1");
    // Serials differ between tokens.
    let again =
        TimeStampResp::from_der(&demo_tsa().respond(&request(&digest, None, None), now)).unwrap();
    let tst2 = token_tst_info(&again.time_stamp_token.unwrap()).unwrap();
    assert_ne!(tst.serial_number, tst2.serial_number);
    assert!(tst2.nonce.is_none());
}

fn rejected_with(reply: &[u8], failure: FailureInfo) {
    let resp = TimeStampResp::from_der(reply).unwrap();
    assert_eq!(resp.status.status, status::REJECTION);
    assert!(resp.time_stamp_token.is_none());
    assert!(
        failure.is_set_in(resp.status.fail_info.as_ref().unwrap()),
        "{resp:?}"
    );
}

#[test]
fn bad_requests_are_rejected_with_the_right_failure() {
    let tsa = demo_tsa();
    let now = OffsetDateTime::now_utc();
    rejected_with(&tsa.respond(b"not der", now), FailureInfo::BadDataFormat);
    rejected_with(
        &tsa.respond(&request(&[1; 20], None, None), now),
        FailureInfo::BadDataFormat,
    );
    rejected_with(
        &tsa.respond(&request(&[1; 32], None, Some("1.2.3.4")), now),
        FailureInfo::UnacceptedPolicy,
    );
    // SHA-1 (1.3.14.3.2.26) is not offered.
    let mut req = TimeStampReq::from_der(&request(&[1; 20], None, None)).unwrap();
    req.message_imprint.hash_algorithm.oid = "1.3.14.3.2.26".parse().unwrap();
    rejected_with(
        &tsa.respond(&req.to_der().unwrap(), now),
        FailureInfo::BadAlg,
    );
    // openssl reads the rejection.
    if !require_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.tsr");
    std::fs::write(&p, tsa.respond(b"x", now)).unwrap();
    let (ok, text) = run_openssl(&["ts", "-reply", "-in", p.to_str().unwrap(), "-text"]);
    assert!(ok && text.contains("Status: Rejected"), "{text}");
    assert!(
        text.contains("the data submitted has the wrong format"),
        "{text}"
    );
}

#[test]
fn non_tsa_certificate_is_refused() {
    let key = Pkcs12Key::open(&demo("agency-signer.p12"), "demo").unwrap();
    let err = TimeStampAuthority::new(Arc::new(key), "1.2.3".parse().unwrap()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeyInvalid);
    assert!(err.to_string().contains("no extended key usage"), "{err}");
    let key = Pkcs12Key::open(&demo("ocsp.p12"), "demo").unwrap();
    let err = TimeStampAuthority::new(Arc::new(key), "1.2.3".parse().unwrap()).unwrap_err();
    assert!(err.to_string().contains("not critical"), "{err}");
}

#[test]
fn http_limits_and_content_type() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, stop) = start(&rt, router(demo_tsa()));
    let big = vec![0u8; MAX_REQUEST_BYTES + 1];
    match ureq::post(&url).send_bytes(&big) {
        Err(ureq::Error::Status(413, _)) => {}
        other => panic!("expected 413, got {:?}", other.map(|r| r.status())),
    }
    let resp = ureq::post(&url)
        .send_bytes(&request(&[3; 32], Some(1), None))
        .unwrap();
    assert_eq!(
        resp.header("content-type"),
        Some("application/timestamp-reply")
    );
    let _ = stop.send(());
}

/// A TSA that answers every query with a reply made for another request.
#[test]
fn client_rejects_a_reply_for_another_request() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let canned = demo_tsa().respond(
        &request(&[1; 32], Some(99), None),
        OffsetDateTime::now_utc(),
    );
    let app = Router::new().route(
        "/",
        post(move || {
            let canned = canned.clone();
            async move { canned }
        }),
    );
    let (url, stop) = start(&rt, app);
    let err = request_token(
        &url,
        DigestAlgorithm::Sha256,
        &[1; 32],
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(
        matches!(&err, TspError::BadResponse { reason, .. } if reason.contains("nonce")),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::TsaBadResponse);
    let _ = stop.send(());
}

/// The client accepts a reply produced by `openssl ts -reply` (an independent TSA).
#[test]
fn client_accepts_openssl_ts_replies() {
    if !require_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    std::fs::write(d.join("serial"), "01\n").unwrap();
    let config = format!(
        "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\nserial = {serial}\nsigner_cert = {cert}\ncerts = {chain}\n\
         signer_key = {key}\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\n\
         digests = sha256, sha384, sha512\ness_cert_id_alg = sha256\n",
        serial = d.join("serial").display(),
        cert = demo("tsa.pem").display(),
        chain = demo("issuing-ca.pem").display(),
        key = demo("tsa.key").display(),
    );
    std::fs::write(d.join("tsa.cnf"), config).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dd = d.clone();
    let app = Router::new().route(
        "/",
        post(move |body: Bytes| {
            let d = dd.clone();
            async move {
                std::fs::write(d.join("q.tsq"), &body).unwrap();
                let out = Command::new("openssl")
                    .args(["ts", "-reply", "-config"])
                    .arg(d.join("tsa.cnf"))
                    .arg("-queryfile")
                    .arg(d.join("q.tsq"))
                    .arg("-out")
                    .arg(d.join("r.tsr"))
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::fs::read(d.join("r.tsr")).unwrap()
            }
        }),
    );
    let (url, stop) = start(&rt, app);
    let digest = DigestAlgorithm::Sha384.digest(b"abc");
    let token = request_token(
        &url,
        DigestAlgorithm::Sha384,
        &digest,
        Duration::from_secs(10),
    )
    .unwrap();
    let _ = stop.send(());
    let tst = token_tst_info(&ContentInfo::from_der(&token).unwrap()).unwrap();
    assert_eq!(tst.policy.to_string(), "1.2.3.4.1");
    assert_eq!(
        tst.message_imprint.hashed_message.as_bytes(),
        digest.as_slice()
    );
}
