//! CMS SignedData (DER and BER) and RFC 3161 time-stamp tokens: the parser, and the whole
//! verifier on a CMS signature (signer, attributes, embedded tokens, certificates, CRLs).
#![no_main]

use der::Decode;
use libfuzzer_sys::fuzz_target;
use signgate::verify::{document, Policy, ValidationContext};

fuzz_target!(|data: &[u8]| {
    let _ = signgate::cms::parse_signed_data(data);
    if let Ok(info) = cms::content_info::ContentInfo::from_der(data) {
        let _ = signgate::pki::tsp::token_tst_info(&info);
    }
    if data.first() == Some(&0x30) {
        let ctx = ValidationContext {
            at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
            trust_lists: Vec::new(),
            fetcher: None,
        };
        let _ = document("fuzz.p7s", data, Some(b"content"), &Policy::default(), &ctx);
    }
});
