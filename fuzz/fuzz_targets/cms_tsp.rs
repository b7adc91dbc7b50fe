//! CMS SignedData (DER and BER) and RFC 3161 tokens (see `signgate_fuzz::cms_tsp`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signgate_fuzz::cms_tsp(data));
