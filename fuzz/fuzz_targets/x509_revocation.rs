//! Certificates, OCSP responses and CRLs: the input is parsed as a certificate (the shared
//! cache) and offered as embedded OCSP and CRL evidence about a fixed certificate.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509Name, X509};
use signgate::verify::revocation::{check, Evidence};

fn cert(subject: &str, issuer: Option<(&X509, &PKey<Private>)>, key: &PKey<Private>) -> X509 {
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("CN", subject).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(3650).unwrap())
        .unwrap();
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())
        .unwrap();
    b.build()
}

/// A CA and a certificate it issued (EC P-256 keys: fast to make).
fn pair() -> &'static (X509, X509) {
    static PAIR: OnceLock<(X509, X509)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = || PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
        let (ca_key, ee_key) = (key(), key());
        let ca = cert("Fuzz CA", None, &ca_key);
        let ee = cert("Fuzz EE", Some((&ca, &ca_key)), &ee_key);
        (ca, ee)
    })
}

fuzz_target!(|data: &[u8]| {
    let (ca, ee) = pair();
    let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let subject = signgate::pki::certs::from_der(data).unwrap_or_else(|| ee.clone());
    let evidence = Evidence {
        ocsp: vec![data.to_vec()],
        crls: vec![data.to_vec()],
    };
    let _ = check(&subject, ca, std::slice::from_ref(ca), &evidence, None, at);
});
