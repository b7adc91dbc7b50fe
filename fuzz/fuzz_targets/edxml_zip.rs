//! edXML packages (envelope, headers, base64 attachments) and zipped attachments under the
//! default limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signgate::edxml::{parse, zip, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = parse(data, &limits);
    let _ = zip::inspect(data, &limits);
});
