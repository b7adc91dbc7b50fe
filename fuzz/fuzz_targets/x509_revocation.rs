//! Certificates, OCSP responses and CRLs as they arrive (see `signgate_fuzz::x509_revocation`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signgate_fuzz::x509_revocation(data));
