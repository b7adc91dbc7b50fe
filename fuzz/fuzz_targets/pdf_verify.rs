//! The PDF parser and revision analysis as a verifier runs them (see `signgate_fuzz::pdf_verify`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signgate_fuzz::pdf_verify(data));
