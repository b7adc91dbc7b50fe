//! The XML parser, canonicalizer and XML-DSig verifier (see `signgate_fuzz::xml_c14n`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signgate_fuzz::xml_c14n(data));
