//! Signatures made at test time by an independent producer (OpenSSL: `cms -sign -stream`,
//! `-noattr`, other key types and digests, `ts -reply` tokens of every shape), verified by
//! signgate's library: each positive case must be intact, and the same file with one byte
//! flipped in what it signs must not be. Where OpenSSL cannot produce a structure (a
//! counter-signature, a signature time-stamp attribute, a plain `r ‖ s` ECDSA value), the
//! test grafts OpenSSL-made parts into an OpenSSL-made SignedData.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use signgate::cms::ber;
use signgate::verify::{self, Policy, TrustList, ValidationContext};

/// `openssl` is installed (a test without it fails under CI=true, else is skipped).
fn openssl_available() -> bool {
    crate::common::require_tool("openssl").is_some()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// DSA domain parameters (2048 bits) in `dir/dsa.param`.
fn dsa_params(dir: &Path) {
    let args = ["genpkey", "-genparam", "-algorithm", "DSA", "-pkeyopt"];
    openssl(
        dir,
        &[&args[..], &["dsa_paramgen_bits:2048", "-out", "dsa.param"]].concat(),
    );
}

/// A self-signed certificate and key (`NAME.pem`, `NAME.key`) of key type `newkey`.
fn identity(dir: &Path, name: &str, newkey: &[&str], eku: Option<&str>) -> PathBuf {
    let mut args = vec!["req", "-x509", "-nodes", "-days", "3650", "-subj"];
    let subject = format!("/CN=interop {name}/O=signgate tests");
    args.push(&subject);
    args.extend_from_slice(newkey);
    let key = format!("{name}.key");
    let cert = format!("{name}.pem");
    args.extend_from_slice(&["-keyout", &key, "-out", &cert]);
    args.extend_from_slice(&[
        "-addext",
        "keyUsage=critical,digitalSignature,nonRepudiation",
    ]);
    let eku_ext = eku.map(|e| format!("extendedKeyUsage=critical,{e}"));
    if let Some(e) = &eku_ext {
        args.extend_from_slice(&["-addext", e]);
    }
    openssl(dir, &args);
    dir.join(cert)
}

fn context(trust: &[&Path]) -> ValidationContext {
    ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: trust
            .iter()
            .map(|p| TrustList::load("tests", p).expect("trust anchor"))
            .collect(),
        fetcher: None,
    }
}

fn verify_bytes(input: &[u8], content: Option<&[u8]>, trust: &[&Path]) -> Value {
    let report = verify::document(
        "interop",
        input,
        content,
        &Policy::default(),
        &context(trust),
    )
    .unwrap_or_else(|e| panic!("refused: {}: {e}", e.code().as_str()));
    serde_json::to_value(report).unwrap()
}

fn sig(report: &Value, i: usize) -> &Value {
    &report["signatures"][i]
}

fn assert_intact(report: &Value) {
    let sigs = report["signatures"].as_array().unwrap();
    assert!(!sigs.is_empty(), "{report:#}");
    for s in sigs {
        assert_eq!(s["intact"], true, "{report:#}");
        assert!(
            !matches!(
                s["sub_indication"].as_str(),
                Some("HASH_FAILURE" | "SIG_CRYPTO_FAILURE" | "FORMAT_FAILURE")
            ),
            "{report:#}"
        );
    }
}

fn assert_altered(report: &Value) {
    let s = sig(report, 0);
    assert_eq!(s["intact"], false, "{report:#}");
    assert_eq!(s["indication"], "TOTAL_FAILED", "{report:#}");
    assert!(
        matches!(
            s["sub_indication"].as_str(),
            Some("HASH_FAILURE" | "SIG_CRYPTO_FAILURE")
        ),
        "{report:#}"
    );
}

/// With one byte of the signed content flipped, `signed` is TOTAL_FAILED and not intact.
fn assert_flipped_fails(signed: &[u8], trust: &Path) {
    assert_altered(&verify_bytes(
        &flip_in(signed, b"interop test"),
        None,
        &[trust],
    ));
}

/// Flips one byte of `needle`'s first occurrence in `haystack`.
fn flip_in(haystack: &[u8], needle: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in haystack");
    let mut out = haystack.to_vec();
    out[at + needle.len() / 2] ^= 0x01;
    out
}

const CONTENT: &[u8] = b"Quyet dinh so 42/QD-UBND: interop test content, signed by another tool.\n";

struct Signed {
    dir: tempfile::TempDir,
    cert: PathBuf,
    p7: Vec<u8>,
}

/// `openssl cms -sign` over [`CONTENT`] with a fresh key of type `newkey` and `extra` options.
fn cms_sign(newkey: &[&str], extra: &[&str]) -> Signed {
    cms_sign_in(tempfile::tempdir().unwrap(), newkey, extra)
}

/// [`cms_sign`] in `dir` (which may already hold key parameters).
fn cms_sign_in(dir: tempfile::TempDir, newkey: &[&str], extra: &[&str]) -> Signed {
    std::fs::write(dir.path().join("content.txt"), CONTENT).unwrap();
    let cert = identity(dir.path(), "signer", newkey, None);
    let mut args = vec![
        "cms",
        "-sign",
        "-binary",
        "-in",
        "content.txt",
        "-signer",
        "signer.pem",
        "-inkey",
        "signer.key",
        "-outform",
        "DER",
        "-out",
        "signed.p7m",
    ];
    args.extend_from_slice(extra);
    openssl(dir.path(), &args);
    let p7 = std::fs::read(dir.path().join("signed.p7m")).unwrap();
    Signed { dir, cert, p7 }
}

#[test]
fn ber_streamed_cms_from_openssl_verifies_and_a_flipped_byte_fails() {
    if !openssl_available() {
        return;
    }
    // Attached, streamed: indefinite lengths and a constructed eContent OCTET STRING.
    let s = cms_sign(&["-newkey", "rsa:2048"], &["-nodetach", "-stream"]);
    assert_eq!(&s.p7[..2], &[0x30, 0x80], "openssl -stream writes BER");
    let report = verify_bytes(&s.p7, None, &[&s.cert]);
    assert_intact(&report);
    assert_eq!(sig(&report, 0)["indication"], "TOTAL_PASSED", "{report:#}");
    assert_flipped_fails(&s.p7, &s.cert);
    // Zero padding (a PDF /Contents hole) is allowed after the structure, data is not.
    let mut padded = s.p7.clone();
    padded.extend_from_slice(&[0; 64]);
    assert_intact(&verify_bytes(&padded, None, &[&s.cert]));
    padded.push(1);
    assert!(verify::document("x", &padded, None, &Policy::default(), &context(&[])).is_err());
}

#[test]
fn signer_info_without_signed_attributes_verifies_and_a_flipped_byte_fails() {
    if !openssl_available() {
        return;
    }
    for key in [
        &["-newkey", "rsa:2048"][..],
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ] {
        let s = cms_sign(key, &["-nodetach", "-noattr"]);
        let report = verify_bytes(&s.p7, None, &[&s.cert]);
        assert_intact(&report);
        assert_flipped_fails(&s.p7, &s.cert);
    }
}

#[test]
fn other_algorithms_verify_or_are_reported_by_policy_never_as_crypto_failures() {
    if !openssl_available() {
        return;
    }
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "P-384",
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
            vec![],
        ),
        (
            "P-521",
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
            vec!["-md", "sha512"],
        ),
        (
            "brainpoolP256r1",
            vec![
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:brainpoolP256r1",
            ],
            vec![],
        ),
        (
            "DSA",
            vec!["-newkey", "dsa:dsa.param"],
            vec!["-md", "sha256"],
        ),
        (
            "RSA-PSS",
            vec!["-newkey", "rsa:2048"],
            vec![
                "-keyopt",
                "rsa_padding_mode:pss",
                "-keyopt",
                "rsa_pss_saltlen:32",
            ],
        ),
        (
            "SHA3-256",
            vec!["-newkey", "rsa:2048"],
            vec!["-md", "sha3-256"],
        ),
        (
            "SHA-224",
            vec!["-newkey", "rsa:2048"],
            vec!["-md", "sha224"],
        ),
    ];
    for (name, key, extra) in cases {
        let dir = tempfile::tempdir().unwrap();
        if name == "DSA" {
            dsa_params(dir.path());
        }
        let mut extra = extra;
        extra.push("-nodetach");
        let Signed {
            dir: _dir,
            cert,
            p7,
        } = cms_sign_in(dir, &key, &extra);
        let report = verify_bytes(&p7, None, &[&cert]);
        assert_intact(&report);
        assert_ne!(
            sig(&report, 0)["sub_indication"],
            "SIG_CRYPTO_FAILURE",
            "{name}"
        );
        assert_flipped_fails(&p7, &cert);
    }
}

// ---- grafting OpenSSL-made parts into an OpenSSL-made SignedData --------------------------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    ber::encode(tag, content)
}

/// The SignedData fields (raw) of a ContentInfo.
fn signed_data_fields(p7: &[u8]) -> Vec<Vec<u8>> {
    let info = ber::read_one(p7).unwrap();
    let explicit = info.children().unwrap()[1];
    let sd = explicit.children().unwrap()[0];
    sd.children()
        .unwrap()
        .iter()
        .map(|t| t.raw.to_vec())
        .collect()
}

fn assemble(fields: &[Vec<u8>]) -> Vec<u8> {
    let oid = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
    ];
    let sd = tlv(0x30, &fields.concat());
    tlv(0x30, &[oid.to_vec(), tlv(0xa0, &sd)].concat())
}

/// The first SignerInfo's fields (raw).
fn signer_fields(fields: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let set = ber::read_one(fields.last().unwrap()).unwrap();
    let si = set.children().unwrap()[0];
    si.children()
        .unwrap()
        .iter()
        .map(|t| t.raw.to_vec())
        .collect()
}

fn set_signer(fields: &mut [Vec<u8>], signer: &[Vec<u8>]) {
    *fields.last_mut().unwrap() = tlv(0x31, &tlv(0x30, &signer.concat()));
}

/// Adds `attr` (a whole Attribute) to the first SignerInfo's unsigned attributes.
fn add_unsigned(fields: &mut [Vec<u8>], attr: &[u8]) {
    let mut signer = signer_fields(fields);
    signer.push(tlv(0xa1, attr));
    set_signer(fields, &signer);
}

fn signature_value(fields: &[Vec<u8>]) -> Vec<u8> {
    let signer = signer_fields(fields);
    let value = signer.iter().rev().find(|f| f[0] == 0x04).unwrap();
    ber::read_one(value).unwrap().value.to_vec()
}

const OID_TST_ATTR: [u8; 13] = [
    0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x02, 0x0e,
];
const OID_COUNTER_SIGNATURE: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x06,
];

/// A TSA configuration for `openssl ts -reply` in `dir` with `options` lines.
fn tsa_config(dir: &Path, options: &str) {
    std::fs::write(
        dir.join("ts.cnf"),
        format!(
            "[ tsa ]\ndefault_tsa = tsa_x\n[ tsa_x ]\nserial = {d}/serial\nsigner_cert = {d}/tsa.pem\n\
             signer_key = {d}/tsa.key\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\n\
             digests = sha256, sha384, sha512\n{options}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    // A 160-bit serial number.
    std::fs::write(
        dir.join("serial"),
        "7FEDCBA9876543210FEDCBA9876543210FEDCBA9\n",
    )
    .unwrap();
}

/// An `openssl ts` token over `data`.
fn ts_token(dir: &Path, data: &[u8], query_extra: &[&str]) -> Vec<u8> {
    std::fs::write(dir.join("stamped.bin"), data).unwrap();
    let mut q = vec![
        "ts",
        "-query",
        "-data",
        "stamped.bin",
        "-sha256",
        "-out",
        "q.tsq",
    ];
    q.extend_from_slice(query_extra);
    openssl(dir, &q);
    openssl(
        dir,
        &[
            "ts",
            "-reply",
            "-queryfile",
            "q.tsq",
            "-config",
            "ts.cnf",
            "-token_out",
            "-out",
            "token.der",
        ],
    );
    std::fs::read(dir.join("token.der")).unwrap()
}

#[test]
fn time_stamp_tokens_of_another_tsa_verify_and_trust_never_decides_intact() {
    if !openssl_available() {
        return;
    }
    let variants = [
        // Accuracy in all units, ordering, tsa name, fractional genTime, ESSCertID (SHA-1).
        (
            "accuracy = secs:1, millisecs:500, microsecs:100\nclock_precision_digits = 3\n\
             ordering = yes\ntsa_name = yes\ness_cert_id_alg = sha1\n",
            vec!["-cert"],
        ),
        // No accuracy, no nonce, ESSCertIDv2 with SHA-256 (hashAlgorithm absent).
        ("ess_cert_id_alg = sha256\n", vec!["-cert", "-no_nonce"]),
        // certReq false: the token carries no certificate; the TSA's comes from the trust list.
        (
            "ess_cert_id_alg = sha256\nclock_precision_digits = 6\n",
            vec![],
        ),
    ];
    for (config, query) in variants {
        let s = cms_sign(&["-newkey", "rsa:2048"], &["-nodetach"]);
        let dir = s.dir.path();
        let tsa = identity(dir, "tsa", &["-newkey", "rsa:2048"], Some("timeStamping"));
        tsa_config(dir, config);
        let mut fields = signed_data_fields(&s.p7);
        let token = ts_token(dir, &signature_value(&fields), &query);
        add_unsigned(
            &mut fields,
            &tlv(0x30, &[OID_TST_ATTR.to_vec(), tlv(0x31, &token)].concat()),
        );
        let cades_t = assemble(&fields);

        // TSA trusted: the time-stamp passes and proves the time.
        let report = verify_bytes(&cades_t, None, &[&s.cert, &tsa]);
        assert_intact(&report);
        let ts = &sig(&report, 0)["timestamp"];
        assert_eq!(ts["indication"], "TOTAL_PASSED", "{config}: {report:#}");
        assert_eq!(sig(&report, 0)["indication"], "TOTAL_PASSED", "{report:#}");

        // TSA not trusted: the time-stamp is INDETERMINATE; the signature stays intact and
        // passes (it does not need the proof of existence at the validation time).
        let report = verify_bytes(&cades_t, None, &[&s.cert]);
        assert_intact(&report);
        let ts = &sig(&report, 0)["timestamp"];
        assert_eq!(ts["indication"], "INDETERMINATE", "{report:#}");
        assert!(
            !matches!(
                ts["sub_indication"].as_str(),
                Some("HASH_FAILURE" | "SIG_CRYPTO_FAILURE")
            ),
            "{report:#}"
        );
        assert_eq!(sig(&report, 0)["indication"], "TOTAL_PASSED", "{report:#}");

        // One byte flipped in the token's TSTInfo (its policy OID 1.2.3.4.1): the token's
        // own signature no longer covers it.
        let broken = flip_in(&cades_t, &[0x06, 0x04, 0x2a, 0x03, 0x04, 0x01]);
        let report = verify_bytes(&broken, None, &[&s.cert, &tsa]);
        let ts = &sig(&report, 0)["timestamp"];
        assert_eq!(ts["indication"], "TOTAL_FAILED", "{report:#}");
        assert_eq!(ts["sub_indication"], "HASH_FAILURE", "{report:#}");
        assert_eq!(sig(&report, 0)["intact"], true, "{report:#}");
        assert_ne!(sig(&report, 0)["indication"], "TOTAL_PASSED", "{report:#}");
    }
}

#[test]
fn counter_signatures_are_reported_as_signatures_of_their_own() {
    if !openssl_available() {
        return;
    }
    let s = cms_sign(&["-newkey", "rsa:2048"], &["-nodetach"]);
    let dir = s.dir.path();
    let counter_cert = identity(
        dir,
        "counter",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        None,
    );
    let mut fields = signed_data_fields(&s.p7);
    std::fs::write(dir.join("value.bin"), signature_value(&fields)).unwrap();
    openssl(
        dir,
        &[
            "cms",
            "-sign",
            "-binary",
            "-in",
            "value.bin",
            "-signer",
            "counter.pem",
            "-inkey",
            "counter.key",
            "-outform",
            "DER",
            "-out",
            "counter.p7s",
        ],
    );
    let counter_fields = signed_data_fields(&std::fs::read(dir.join("counter.p7s")).unwrap());
    let counter_info = tlv(0x30, &signer_fields(&counter_fields).concat());
    // The counter-signer's certificate joins the SignedData's certificates ([0], field 3).
    let cert_der = openssl::x509::X509::from_pem(&std::fs::read(&counter_cert).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    let certs = ber::read_one(&fields[3]).unwrap();
    assert_eq!(certs.tag, 0xa0);
    fields[3] = tlv(0xa0, &[certs.value.to_vec(), cert_der].concat());
    add_unsigned(
        &mut fields,
        &tlv(
            0x30,
            &[OID_COUNTER_SIGNATURE.to_vec(), tlv(0x31, &counter_info)].concat(),
        ),
    );
    let countersigned = assemble(&fields);
    let report = verify_bytes(&countersigned, None, &[&s.cert, &counter_cert]);
    assert_intact(&report);
    let counter = sig(&report, 1);
    assert_eq!(counter["kind"], "counter_signature", "{report:#}");
    assert_eq!(counter["parent"], sig(&report, 0)["id"], "{report:#}");
    assert_eq!(counter["indication"], "TOTAL_PASSED", "{report:#}");
    assert_eq!(report["indication"], "TOTAL_PASSED", "{report:#}");

    // A byte flipped in the counter-signature's own value: the main signature stays intact.
    let value = {
        let si = ber::read_one(&counter_info).unwrap();
        let kids = si.children().unwrap();
        kids.iter().rev().find(|k| k.tag == 0x04).unwrap().value[10..20].to_vec()
    };
    let report = verify_bytes(
        &flip_in(&countersigned, &value),
        None,
        &[&s.cert, &counter_cert],
    );
    assert_eq!(sig(&report, 0)["intact"], true, "{report:#}");
    assert_eq!(sig(&report, 1)["intact"], false, "{report:#}");
    assert_eq!(report["indication"], "TOTAL_FAILED", "{report:#}");
}

#[test]
fn plain_ecdsa_values_verify_and_a_flipped_byte_fails() {
    if !openssl_available() {
        return;
    }
    let s = cms_sign(
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &["-nodetach", "-md", "sha256"],
    );
    let mut fields = signed_data_fields(&s.p7);
    let mut signer = signer_fields(&fields);
    let n = signer.len();
    let (alg_at, value_at) = (n - 2, n - 1);
    let der_sig = ber::read_one(&signer[value_at]).unwrap().value.to_vec();
    let ecdsa = openssl::ecdsa::EcdsaSig::from_der(&der_sig).unwrap();
    let plain = [
        ecdsa.r().to_vec_padded(32).unwrap(),
        ecdsa.s().to_vec_padded(32).unwrap(),
    ]
    .concat();
    // ecdsa-plain-SHA256, BSI TR-03111: 0.4.0.127.0.7.1.1.4.1.3.
    let oid = [
        0x06, 0x0a, 0x04, 0x00, 0x7f, 0x00, 0x07, 0x01, 0x01, 0x04, 0x01, 0x03,
    ];
    signer[alg_at] = tlv(0x30, &oid);
    signer[value_at] = tlv(0x04, &plain);
    set_signer(&mut fields, &signer);
    let p7 = assemble(&fields);
    assert_intact(&verify_bytes(&p7, None, &[&s.cert]));
    assert_flipped_fails(&p7, &s.cert);
}

#[test]
fn signed_attributes_reordered_after_signing_verify_over_der_with_a_note() {
    if !openssl_available() {
        return;
    }
    let s = cms_sign(&["-newkey", "rsa:2048"], &["-nodetach"]);
    let mut fields = signed_data_fields(&s.p7);
    let mut signer = signer_fields(&fields);
    let attrs_at = signer.iter().position(|f| f[0] == 0xa0).unwrap();
    let attrs = ber::read_one(&signer[attrs_at]).unwrap();
    let mut items: Vec<Vec<u8>> = attrs
        .children()
        .unwrap()
        .iter()
        .map(|a| a.raw.to_vec())
        .collect();
    items.reverse();
    signer[attrs_at] = tlv(0xa0, &items.concat());
    set_signer(&mut fields, &signer);
    let p7 = assemble(&fields);
    let report = verify_bytes(&p7, None, &[&s.cert]);
    assert_intact(&report);
    let notes = sig(&report, 0)["notes"].to_string();
    assert!(notes.contains("DER re-encoding"), "{report:#}");
    assert_flipped_fails(&p7, &s.cert);
}

// ---- XML-DSig made by xmlsec1 -----------------------------------------------------------

/// An enveloped-signature template over `<Doc>` with the given methods, transforms and KeyInfo.
fn xml_template(sig_method: &str, digest: &str, transform: &str, key_info: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<Doc><Data>Quyet dinh: interop test content</Data><Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo><CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><SignatureMethod Algorithm="{sig_method}"/><Reference URI=""><Transforms>{transform}</Transforms><DigestMethod Algorithm="{digest}"/><DigestValue/></Reference></SignedInfo><SignatureValue/><KeyInfo>{key_info}</KeyInfo></Signature></Doc>
"#
    )
}

const ENVELOPED_T: &str =
    r#"<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#;
const XPATH_T: &str = r#"<Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><XPath xmlns:dsig="http://www.w3.org/2000/09/xmldsig#">not(ancestor-or-self::dsig:Signature)</XPath></Transform>"#;

fn xmlsec_available() -> bool {
    crate::common::require_tool("xmlsec1").is_some()
}

fn xmlsec_sign(dir: &Path, template: &str, key_args: &[&str]) -> Vec<u8> {
    std::fs::write(dir.join("template.xml"), template).unwrap();
    let mut args = vec!["--sign"];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&["--output", "signed.xml", "template.xml"]);
    let out = Command::new("xmlsec1")
        .current_dir(dir)
        .args(&args)
        .output()
        .expect("run xmlsec1");
    assert!(
        out.status.success(),
        "xmlsec1 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("signed.xml")).unwrap()
}

#[test]
fn xml_signature_variants_from_xmlsec1_verify_and_a_flipped_byte_fails() {
    if !openssl_available() || !xmlsec_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cert = identity(d, "rsa", &["-newkey", "rsa:2048"], None);
    let other = identity(d, "other", &["-newkey", "rsa:2048"], None);
    dsa_params(d);
    openssl(
        d,
        &["genpkey", "-paramfile", "dsa.param", "-out", "dsa.key"],
    );
    let cases: Vec<(&str, String, Vec<String>, bool)> = vec![
        // SHA-224 digest and RSA-SHA224; two certificates, the signer's not first.
        (
            "rsa-sha224, X509Data with an unrelated certificate first",
            xml_template(
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha224",
                "http://www.w3.org/2001/04/xmldsig-more#sha224",
                ENVELOPED_T,
                "<X509Data/>",
            ),
            vec!["--privkey-pem".into(), "rsa.key,other.pem,rsa.pem".into()],
            true,
        ),
        // The XPath form of the enveloped-signature transform.
        (
            "XPath not(ancestor-or-self::ds:Signature)",
            xml_template(
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                "http://www.w3.org/2001/04/xmlenc#sha256",
                XPATH_T,
                "<X509Data/>",
            ),
            vec!["--privkey-pem".into(), "rsa.key,rsa.pem".into()],
            true,
        ),
        // DSA with a bare DSAKeyValue: intact, but no certificate names the signer.
        (
            "dsa-sha256 with KeyValue",
            xml_template(
                "http://www.w3.org/2009/xmldsig11#dsa-sha256",
                "http://www.w3.org/2001/04/xmlenc#sha256",
                ENVELOPED_T,
                "<KeyValue/>",
            ),
            vec!["--privkey-pem".into(), "dsa.key".into()],
            false,
        ),
    ];
    for (name, template, key_args, named_signer) in cases {
        let args: Vec<&str> = key_args.iter().map(String::as_str).collect();
        let signed = xmlsec_sign(d, &template, &args);
        let report = verify_bytes(&signed, None, &[&cert, &other]);
        assert_intact(&report);
        let expected = if named_signer {
            "TOTAL_PASSED"
        } else {
            "INDETERMINATE"
        };
        assert_eq!(
            sig(&report, 0)["indication"],
            expected,
            "{name}: {report:#}"
        );
        if named_signer {
            assert!(
                sig(&report, 0)["signer"]["subject"]
                    .as_str()
                    .unwrap()
                    .contains("interop rsa"),
                "{name}: {report:#}"
            );
        }
        assert_flipped_fails(&signed, &cert);
    }

    // HMAC: correct for whoever holds the key, but it names no signer: never TOTAL_PASSED.
    std::fs::write(d.join("hmac.bin"), b"shared secret").unwrap();
    let hmac = xml_template(
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
        "http://www.w3.org/2001/04/xmlenc#sha256",
        ENVELOPED_T,
        "",
    );
    let signed = xmlsec_sign(d, &hmac, &["--hmackey", "hmac.bin"]);
    let report = verify_bytes(&signed, None, &[&cert]);
    assert_ne!(report["indication"], "TOTAL_PASSED", "{report:#}");
    assert_eq!(sig(&report, 0)["indication"], "INDETERMINATE", "{report:#}");
}
