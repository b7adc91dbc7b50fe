//! The signing side's PDF reader (see `signgate_fuzz::pdf_prepare`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signgate_fuzz::pdf_prepare(data));
