//! What stays the same from hop to hop and what grows: the content digest (over the signed
//! SignedInfo) and the trace list (appended by splicing bytes outside the signed parts).

use roxmltree::Node;

use super::package::{child, children, Writer};
use super::{EdxmlError, TraceHeader};
use crate::xml::dsig::{self, DSIG_NS};
use crate::xml::parse::{element_qname, prefix_of};

/// The package's one Signature, at the end of `edXMLHeader`.
pub(crate) fn signature<'a, 'i>(root: Node<'a, 'i>) -> Result<Node<'a, 'i>, EdxmlError> {
    let header = child(root, "edXMLEnvelope")
        .and_then(|e| child(e, "edXMLHeader"))
        .ok_or_else(|| EdxmlError::invalid("no edXMLEnvelope/edXMLHeader"))?;
    let mut sigs = header
        .children()
        .filter(|c| c.is_element() && c.has_tag_name((DSIG_NS, "Signature")));
    match (sigs.next(), sigs.next()) {
        (Some(s), None) => Ok(s),
        (None, _) => Err(EdxmlError::invalid("the package is not signed")),
        _ => Err(EdxmlError::invalid(
            "edXMLHeader holds more than one Signature",
        )),
    }
}

/// SHA-256 (hex) of the canonical SignedInfo of the package's signature: it covers the
/// MessageHeader, the body and every attachment through their digests, and not the trace list,
/// so a redelivery with more trace headers has the same digest (CONTRACTS §5).
pub fn content_digest(bytes: &[u8]) -> Result<String, EdxmlError> {
    let parsed = crate::xml::parse::parse(bytes, &crate::xml::Limits::default())?;
    digest_of(&parsed)
}

/// [`content_digest`] of an already parsed package.
pub(crate) fn digest_of(parsed: &crate::xml::parse::Parsed<'_>) -> Result<String, EdxmlError> {
    let sig = signature(parsed.doc.root_element())?;
    let (octets, _) = dsig::canonical_signed_info(parsed, sig)?;
    Ok(hex::encode(
        crate::pki::alg::DigestAlgorithm::Sha256.digest(&octets),
    ))
}

/// Appends `trace` as the last `TraceHeader` (before `Bussiness`) and returns the new bytes.
/// Nothing else changes: the bytes are spliced, so the signature (which never covers the trace
/// list) stays valid. A package without a `TraceHeaderList` gets one after `MessageHeader`.
pub fn append_trace(bytes: &[u8], trace: &TraceHeader) -> Result<Vec<u8>, EdxmlError> {
    let parsed = crate::xml::parse::parse(bytes, &crate::xml::Limits::default())?;
    super::package::expect_kind(&parsed.doc, super::schema::Kind::Package)?;
    splice_trace(&parsed, bytes, trace)
}

/// [`append_trace`] on the already parsed (and schema-checked) package `bytes`.
pub(crate) fn splice_trace(
    parsed: &crate::xml::parse::Parsed<'_>,
    bytes: &[u8],
    trace: &TraceHeader,
) -> Result<Vec<u8>, EdxmlError> {
    let text = parsed.text;
    let root = parsed.doc.root_element();
    let header = child(root, "edXMLEnvelope")
        .and_then(|e| child(e, "edXMLHeader"))
        .ok_or_else(|| EdxmlError::invalid("no edXMLEnvelope/edXMLHeader"))?;
    let mh =
        child(header, "MessageHeader").ok_or_else(|| EdxmlError::invalid("no MessageHeader"))?;
    let prefixed = |qname: &str, local: &str| match prefix_of(qname) {
        Some(p) => format!("{p}:{local}"),
        None => local.to_string(),
    };
    let list = child(header, "TraceHeaderList");
    let (at, insert) = match list {
        Some(list) => {
            let last_trace = children(list, "TraceHeader").last();
            let mut w = Writer(String::new());
            let (at, sibling) = match (last_trace, child(list, "Bussiness")) {
                (Some(t), _) => (t.range().end, t),
                (None, Some(b)) => (b.range().start, b),
                (None, None) => (list_content_end(text, list)?, list),
            };
            let name = prefixed(element_qname(text, sibling), "TraceHeader");
            w.trace(&name, trace);
            (at, w.0)
        }
        None => {
            let list = prefixed(element_qname(text, mh), "TraceHeaderList");
            let item = prefixed(element_qname(text, mh), "TraceHeader");
            let mut w = Writer(String::new());
            w.open(&list);
            w.trace(&item, trace);
            w.close(&list);
            (mh.range().end, w.0)
        }
    };
    // The splice must leave a schema-valid package with the same signed content. Everything
    // but the trace list is unchanged (and was validated with the package), so the new list
    // alone is parsed and checked, instead of the whole envelope again.
    let new_list = match list {
        Some(list) => {
            let r = list.range();
            [&text[r.start..at], &insert, &text[at..r.end]].concat()
        }
        None => insert.clone(),
    };
    check_trace_list(&new_list, header)?;
    let at = parsed.offset + at;
    let mut out = Vec::with_capacity(bytes.len() + insert.len());
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(insert.as_bytes());
    out.extend_from_slice(&bytes[at..]);
    Ok(out)
}

/// Parses `list` (the source of one `TraceHeaderList` element) with the namespaces in scope at
/// `scope` declared around it, and checks it against the schema's model of a trace list.
fn check_trace_list(list: &str, scope: Node<'_, '_>) -> Result<(), EdxmlError> {
    let mut wrapped = String::from("<scope");
    for ns in scope.namespaces().filter(|ns| ns.name() != Some("xml")) {
        match ns.name() {
            Some(prefix) => wrapped.push_str(&format!(" xmlns:{prefix}=\"")),
            None => wrapped.push_str(" xmlns=\""),
        }
        wrapped.push_str(&crate::xml::dsig::esc(ns.uri()));
        wrapped.push('"');
    }
    wrapped.push('>');
    wrapped.push_str(list);
    wrapped.push_str("</scope>");
    let parsed = crate::xml::parse::parse(wrapped.as_bytes(), &crate::xml::Limits::default())?;
    let mut elements = parsed
        .doc
        .root_element()
        .children()
        .filter(|c| c.is_element());
    match (elements.next(), elements.next()) {
        (Some(spliced), None) => Ok(super::schema::validate_trace_list(spliced)?),
        _ => Err(EdxmlError::invalid(
            "the spliced trace list is not one element",
        )),
    }
}

/// Where content goes at the end of `list` (before its end tag); a self-closing list is
/// refused rather than rewritten (signgate never writes one).
fn list_content_end(text: &str, list: Node<'_, '_>) -> Result<usize, EdxmlError> {
    let r = list.range();
    let source = &text[r.clone()];
    if source.ends_with("/>") {
        return Err(EdxmlError::invalid(
            "an empty self-closing TraceHeaderList cannot take a trace header",
        ));
    }
    source
        .rfind("</")
        .map(|i| r.start + i)
        .ok_or_else(|| EdxmlError::invalid("TraceHeaderList has no end tag"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_go_after_the_last_one_with_its_prefix() {
        let xml = super::super::package::tests::sample().to_xml();
        let t = TraceHeader {
            organ_id: "TEST.01.00.H99".into(),
            timestamp: time::macros::datetime!(2025-07-01 10:00:00 +7),
        };
        let out = append_trace(xml.as_bytes(), &t).unwrap();
        let p = super::super::parse(&out, &Default::default()).unwrap();
        assert_eq!(p.traces.len(), 2);
        assert_eq!(p.traces[1], t);
        let prefixed = xml
            .replace("<TraceHeader>", "<edXML:TraceHeader>")
            .replace("</TraceHeader>", "</edXML:TraceHeader>");
        let out = append_trace(prefixed.as_bytes(), &t).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("<edXML:TraceHeader><OrganId>TEST.01.00.H99"));
    }

    #[test]
    fn a_splice_the_schema_refuses_is_not_returned() {
        // A trace list that moves the default namespace elsewhere: its own (prefixed) content
        // is valid, but a TraceHeader's unprefixed children would land in that namespace.
        let mut package = super::super::package::tests::sample();
        package.traces.clear();
        let xml = package
            .to_xml()
            .replace(
                "<edXML:TraceHeaderList ",
                "<edXML:TraceHeaderList xmlns=\"urn:elsewhere\" ",
            )
            .replace("<Bussiness>", "<edXML:Bussiness>")
            .replace("</Bussiness>", "</edXML:Bussiness>")
            .replace("<BussinessDocType>", "<edXML:BussinessDocType>")
            .replace("</BussinessDocType>", "</edXML:BussinessDocType>");
        assert!(super::super::parse(xml.as_bytes(), &Default::default()).is_ok());
        let t = TraceHeader {
            organ_id: "TEST.01.00.H99".into(),
            timestamp: time::macros::datetime!(2025-07-01 10:00:00 +7),
        };
        let err = append_trace(xml.as_bytes(), &t).unwrap_err().to_string();
        assert!(err.contains("TraceHeader"), "{err}");
    }

    #[test]
    fn unsigned_packages_have_no_content_digest() {
        let xml = super::super::package::tests::sample().to_xml();
        assert!(content_digest(xml.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("not signed"));
    }
}
