//! The signing side's PDF reader: preparing an incremental update (trailer, xref tables and
//! streams, pages, AcroForm) of an uploaded PDF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signgate::pdf::{prepare, PdfSignOptions};

fuzz_target!(|data: &[u8]| {
    let opts = PdfSignOptions::new(time::OffsetDateTime::UNIX_EPOCH);
    let _ = prepare(data, &opts);
});
