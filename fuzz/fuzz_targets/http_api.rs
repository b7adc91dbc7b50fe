//! HTTP query and multipart decoding through the gateway's router (see `signgate_fuzz::http_api`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signgate_fuzz::http_api(data));
