//! OCSP responses and CRLs past their signature check (see `signgate_fuzz::revocation_signed`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signgate_fuzz::revocation_signed(data));
