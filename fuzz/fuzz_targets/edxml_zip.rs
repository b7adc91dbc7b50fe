//! edXML packages and zipped attachments (see `signgate_fuzz::edxml_zip`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signgate_fuzz::edxml_zip(data));
