//! Token keys marked `CKA_ALWAYS_AUTHENTICATE` (a PIN for each signature) through SoftHSM2:
//! the token really refuses a signature without the context-specific login, and signgate
//! signs with such keys (`sign`, `batch-sign`, PDF and XML) because it logs in between
//! `C_SignInit` and the hash-and-sign operation.

use crate::common;

use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use secrecy::SecretString;
use signgate::keys::{KeySource, OpenOptions};
use signgate::pki::alg::{DigestAlgorithm, RsaPadding, SignatureScheme};

fn demo(name: &str) -> PathBuf {
    common::repo_root().join("certs/demo").join(name)
}

/// Token `T` with the demo agency key as `agency` (plain), again as `agency-aa` (id 02,
/// always-authenticate) and the demo EC key as `ec-aa` (id 03, always-authenticate).
fn token(tmp: &tempfile::TempDir) -> Option<PathBuf> {
    let conf = common::softhsm_token(tmp)?;
    common::softhsm_import(&conf, &demo("agency-signer.p12"), "agency-aa", "02", true);
    common::softhsm_import(&conf, &demo("agency-signer-ec.p12"), "ec-aa", "03", true);
    Some(conf)
}

fn verifies(key: &dyn KeySource, scheme: SignatureScheme, message: &[u8], sig: &[u8]) -> bool {
    let public = key.certificate().public_key().unwrap();
    let md = openssl::hash::MessageDigest::from_nid(match scheme.digest() {
        DigestAlgorithm::Sha256 => openssl::nid::Nid::SHA256,
        DigestAlgorithm::Sha384 => openssl::nid::Nid::SHA384,
        DigestAlgorithm::Sha512 => openssl::nid::Nid::SHA512,
    })
    .unwrap();
    let mut v = openssl::sign::Verifier::new(md, &public).unwrap();
    if let SignatureScheme::RsaPss(_) = scheme {
        v.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS).unwrap();
        v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)
            .unwrap();
    }
    v.verify_oneshot(sig, message).unwrap_or(false)
}

/// In-process, in a process of its own (SoftHSM2 reads `SOFTHSM2_CONF` from the environment
/// once per process, and the tests' shared process must not change its environment):
/// SoftHSM2 enforces the attribute, and `Pkcs11Key` signs messages with it in every RSA
/// scheme; ECDSA needs `CKM_ECDSA_SHA*`, which the token may not offer, and then the error
/// says so without the PIN.
#[test]
fn token_enforces_the_attribute_and_the_key_signs_messages() {
    const NAME: &str =
        "pkcs11_always_auth::token_enforces_the_attribute_and_the_key_signs_messages";
    if !common::is_child(NAME) {
        let tmp = common::tempdir();
        let Some(conf) = token(&tmp) else {
            return;
        };
        common::run_in_child(NAME, &[("SOFTHSM2_CONF", conf.as_os_str())]);
        return;
    }
    let module = signgate::keys::DEFAULT_MODULE;

    // Raw cryptoki: logged in as user, C_SignInit + C_Sign without the context-specific
    // login is refused; with it, the multi-part hash-and-sign works.
    let ctx = Pkcs11::new(module).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx.get_slots_with_token().unwrap()[0];
    let offers_ecdsa_sha256 = ctx
        .get_mechanism_list(slot)
        .unwrap()
        .contains(&MechanismType::ECDSA_SHA256);
    let session = ctx.open_ro_session(slot).unwrap();
    let pin = SecretString::from("1234".to_string());
    session.login(UserType::User, Some(&pin)).unwrap();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"agency-aa".to_vec()),
        ])
        .unwrap()[0];
    let attrs = session
        .get_attributes(key, &[AttributeType::AlwaysAuthenticate])
        .unwrap();
    assert!(
        matches!(attrs[..], [Attribute::AlwaysAuthenticate(true)]),
        "{attrs:?}"
    );
    for mechanism in [Mechanism::Sha256RsaPkcs, Mechanism::RsaPkcs] {
        let refused = session.sign(&mechanism, key, &[0x30; 51]);
        assert!(
            matches!(refused, Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _))),
            "{mechanism:?} without the context login: {refused:?}"
        );
    }
    session.sign_init(&Mechanism::Sha256RsaPkcs, key).unwrap();
    session
        .login(UserType::ContextSpecific, Some(&pin))
        .unwrap();
    session.sign_update(b"hello").unwrap();
    assert_eq!(session.sign_final().unwrap().len(), 256);
    drop(session);

    // signgate's key: sign_message logs in per signature; a bare digest is refused clearly.
    let opts = OpenOptions {
        secret: Some(pin.clone()),
        ..Default::default()
    };
    let rsa = signgate::keys::open("pkcs11:token=T;object=agency-aa", &opts).unwrap();
    let message = b"signed attributes or SignedInfo".as_slice();
    for (digest, padding) in [
        (DigestAlgorithm::Sha256, RsaPadding::Pkcs1),
        (DigestAlgorithm::Sha384, RsaPadding::Pkcs1),
        (DigestAlgorithm::Sha256, RsaPadding::Pss),
        (DigestAlgorithm::Sha512, RsaPadding::Pss),
    ] {
        let scheme = SignatureScheme::for_key(rsa.algorithm(), digest, padding);
        let sig = rsa.sign_message(scheme, message).unwrap();
        assert!(verifies(rsa.as_ref(), scheme, message, &sig), "{scheme:?}");
        assert!(
            !verifies(rsa.as_ref(), scheme, b"other", &sig),
            "{scheme:?}"
        );
    }
    let scheme =
        SignatureScheme::for_key(rsa.algorithm(), DigestAlgorithm::Sha256, RsaPadding::Pkcs1);
    let err = rsa.sign_digest(scheme, &[0u8; 32]).unwrap_err();
    assert!(err.to_string().contains("CKA_ALWAYS_AUTHENTICATE"), "{err}");

    let ec = signgate::keys::open("pkcs11:token=T;object=ec-aa", &opts).unwrap();
    let scheme =
        SignatureScheme::for_key(ec.algorithm(), DigestAlgorithm::Sha256, RsaPadding::Pkcs1);
    match ec.sign_message(scheme, message) {
        Ok(sig) => {
            assert!(offers_ecdsa_sha256, "signed without CKM_ECDSA_SHA256?");
            assert!(verifies(ec.as_ref(), scheme, message, &sig));
        }
        Err(e) => {
            assert!(!offers_ecdsa_sha256, "{e}");
            assert_eq!(e.code(), signgate::ErrorCode::KeyUnavailable, "{e}");
            let text = e.to_string();
            assert!(
                text.contains("CKM_ECDSA_SHA256") && text.contains("does not offer"),
                "{text}"
            );
            assert!(!text.contains("1234"), "{text}");
        }
    }
}

fn assert_intact(file: &Path, content: Option<&Path>) {
    let mut c = common::signgate(["verify", "--offline", "--trust"]);
    c.arg(demo("root-ca.pem"));
    if let Some(content) = content {
        c.arg("--content").arg(content);
    }
    c.arg(file);
    let out = common::run(&mut c);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify {}: {e}: {}", file.display(), out.status));
    let sigs = report["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), 1, "{report}");
    assert_eq!(sigs[0]["intact"], true, "{}: {report}", file.display());
}

/// The CLI with an always-authenticate RSA key: `sign` of a PDF (PSS) and of a tax filing
/// (XML-DSig), and `batch-sign` of 20 PDFs and a text file; everything verifies.
#[test]
fn sign_and_batch_sign_with_an_always_authenticate_key() {
    let tmp = common::tempdir();
    let Some(conf) = token(&tmp) else {
        return;
    };
    let uri = "pkcs11:token=T;object=agency-aa";
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..20 {
        std::fs::write(
            input.join(format!("doc-{i:02}.pdf")),
            signgate::batch::sample::pdf(i, 3000),
        )
        .unwrap();
    }
    std::fs::write(input.join("note.txt"), "công văn").unwrap();
    let pin_file = tmp.path().join("pin");
    std::fs::write(&pin_file, "1234\n").unwrap();

    let signed = tmp.path().join("one.pdf");
    let mut one = common::signgate(["sign", "--key", uri, "--rsa-padding", "pss", "--in"]);
    one.arg(input.join("doc-00.pdf"))
        .arg("--out")
        .arg(&signed)
        .env("SOFTHSM2_CONF", &conf)
        .env("SIGNGATE_PKCS11_PIN", "1234");
    common::run_ok(&mut one);
    assert_intact(&signed, None);
    if common::require_tools(&["pdfsig", "certutil"]) {
        let nss = common::NssDb::new(&demo("root-ca.pem"));
        let report = common::pdfsig_args(&nss, &signed, &["-nocert"]);
        assert!(report.signatures[0].signature_valid(), "{}", report.raw);
    }

    let filing = tmp.path().join("tk.xml");
    std::fs::write(&filing, signgate::batch::sample::tax_declaration(1)).unwrap();
    let signed_xml = tmp.path().join("tk-signed.xml");
    let mut xml = common::signgate(["sign", "--key", uri, "--profile", "tax", "--in"]);
    xml.arg(&filing)
        .arg("--out")
        .arg(&signed_xml)
        .env("SOFTHSM2_CONF", &conf)
        .env("SIGNGATE_PKCS11_PIN", "1234");
    common::run_ok(&mut xml);
    assert_intact(&signed_xml, None);

    let out = tmp.path().join("out");
    let mut batch = common::signgate(["batch-sign", "--key", uri, "--json", "--pin-file"]);
    batch
        .arg(&pin_file)
        .arg("--in")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .env("SOFTHSM2_CONF", &conf);
    let result = common::run_ok(&mut batch);
    let summary: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(summary["signed"], 21, "{summary}");
    for i in [0, 7, 19] {
        assert_intact(&out.join(format!("doc-{i:02}.pdf")), None);
    }
    assert_intact(&out.join("note.txt.p7s"), Some(&input.join("note.txt")));
    let stderr = common::stderr_str(&result);
    assert!(!stderr.contains("1234"), "{stderr}");
}
