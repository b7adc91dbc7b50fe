//! The PDF parser and revision analysis as a verifier runs them on an uploaded PDF:
//! signature discovery, /ByteRange checks, CMS of each signature, changes after signing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signgate::verify::{document, Policy, ValidationContext};

fuzz_target!(|data: &[u8]| {
    // Anything not starting with %PDF- is routed elsewhere; keep the fuzzer on the PDF path.
    let input: std::borrow::Cow<[u8]> = if data.starts_with(b"%PDF-") {
        data.into()
    } else {
        [b"%PDF-".as_slice(), data].concat().into()
    };
    let ctx = ValidationContext {
        at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
        trust_lists: Vec::new(),
        fetcher: None,
    };
    let _ = document("fuzz.pdf", &input, None, &Policy::default(), &ctx);
    let _ = signgate::pdf::parse_document(&input);
});
