//! The hardened XML parser, every canonicalization method on the whole document and on the
//! root element, and the XML-DSig verifier on the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signgate::verify::{Policy, ValidationContext};
use signgate::xml::c14n::{canonicalize, Method, Subset};
use signgate::xml::parse::{parse, Limits};

const METHODS: [&str; 4] = [
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
];

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse(data, &Limits::default()) else {
        return;
    };
    for uri in METHODS {
        let method = Method::from_uri(uri, vec!["#default".into()]).expect("known URI");
        for apex in [parsed.doc.root(), parsed.doc.root_element()] {
            let subset = Subset {
                apex,
                exclude: None,
                comments: true,
            };
            let _ = canonicalize(parsed.text, subset, &method);
        }
    }
    let ctx = ValidationContext {
        at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
        trust_lists: Vec::new(),
        fetcher: None,
    };
    let _ = signgate::verify::xml_document("fuzz.xml", &parsed, &Policy::default(), &ctx);
});
