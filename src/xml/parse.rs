//! The hardened XML parser: roxmltree with DTDs refused and every dimension bounded.
//!
//! Any DOCTYPE is refused (`XML_DTD_FORBIDDEN`), so no entity is ever expanded and nothing is
//! read from disk or network. Size, nesting depth, attributes per element, attribute length
//! and node count are capped ([`Limits`]), in the spirit of webpki's `Budget`. Input must be
//! UTF-8 (an optional BOM is allowed); other encodings are refused rather than guessed.

use super::XmlError;

/// Caps on the work one document may cause. The defaults fit filings and edXML packages
/// with base64 attachments (tens of MB) while refusing pathological shapes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest document, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Most attributes on one element (namespace declarations included).
    pub max_attributes: usize,
    /// Longest attribute value, in bytes.
    pub max_attribute_len: usize,
    /// Most nodes (elements, texts, comments, PIs) in the document.
    pub max_nodes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 256,
            max_attributes: 256,
            max_attribute_len: 64 * 1024,
            max_nodes: 2_000_000,
        }
    }
}

/// A parsed document plus the source text it points into.
pub struct Parsed<'a> {
    /// The source text (without a leading BOM).
    pub text: &'a str,
    /// Bytes of BOM skipped before `text` in the original input (0 or 3).
    pub offset: usize,
    /// The tree.
    pub doc: roxmltree::Document<'a>,
}

/// Returns `input` as text, refusing invalid UTF-8 and non-UTF-8 declared encodings.
pub fn as_text<'a>(input: &'a [u8], limits: &Limits) -> Result<(&'a str, usize), XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::LimitExceeded(format!(
            "document of {} bytes exceeds the limit of {}",
            input.len(),
            limits.max_bytes
        )));
    }
    let (body, offset) = match input.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, 3),
        None => (input, 0),
    };
    if input.starts_with(b"\xFE\xFF") || input.starts_with(b"\xFF\xFE") {
        return Err(XmlError::Malformed(
            "UTF-16 documents are not accepted; send UTF-8".into(),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        XmlError::Malformed(format!(
            "invalid UTF-8 at byte {}",
            e.valid_up_to() + offset
        ))
    })?;
    if let Some(decl) = text.strip_prefix("<?xml") {
        let end = decl.find("?>").unwrap_or(0);
        let decl = &decl[..end];
        if let Some(pos) = decl.find("encoding") {
            let value: String = decl[pos + 8..]
                .trim_start_matches([' ', '=', '\t', '\r', '\n'])
                .chars()
                .skip(1)
                .take_while(|c| *c != '"' && *c != '\'')
                .collect();
            if !value.eq_ignore_ascii_case("utf-8") && !value.eq_ignore_ascii_case("utf8") {
                return Err(XmlError::Malformed(format!(
                    "declared encoding {value} is not accepted; send UTF-8"
                )));
            }
        }
    }
    Ok((text, offset))
}

/// Parses `input` under `limits`.
pub fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, XmlError> {
    let (text, offset) = as_text(input, limits)?;
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: limits.max_nodes,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => {
            XmlError::DtdForbidden("the document has a DOCTYPE; DTDs are refused".into())
        }
        roxmltree::Error::NodesLimitReached => {
            XmlError::LimitExceeded(format!("more than {} nodes", limits.max_nodes))
        }
        roxmltree::Error::EntityReferenceLoop(_) | roxmltree::Error::UnknownEntityReference(..) => {
            XmlError::DtdForbidden(format!("entity reference refused: {e}"))
        }
        other => XmlError::Malformed(other.to_string()),
    })?;
    check_shape(&doc, limits)?;
    Ok(Parsed { text, offset, doc })
}

/// Depth, attribute count and attribute length, walked without recursion.
fn check_shape(doc: &roxmltree::Document<'_>, limits: &Limits) -> Result<(), XmlError> {
    let mut stack = vec![(doc.root(), 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > limits.max_depth {
            return Err(XmlError::LimitExceeded(format!(
                "elements nested deeper than {}",
                limits.max_depth
            )));
        }
        if node.is_element() {
            let attrs = node.attributes();
            if attrs.len() > limits.max_attributes {
                return Err(XmlError::LimitExceeded(format!(
                    "element {} has more than {} attributes",
                    node.tag_name().name(),
                    limits.max_attributes
                )));
            }
            for a in attrs {
                if a.value().len() > limits.max_attribute_len {
                    return Err(XmlError::LimitExceeded(format!(
                        "attribute {} is longer than {} bytes",
                        a.name(),
                        limits.max_attribute_len
                    )));
                }
            }
        }
        for child in node.children().filter(|c| c.is_element()) {
            stack.push((child, depth + 1));
        }
    }
    Ok(())
}

/// The element's qualified name exactly as written in the source (`ds:Signature`).
pub fn element_qname<'a>(text: &'a str, node: roxmltree::Node<'_, '_>) -> &'a str {
    let start = node.range().start + 1;
    let rest = text.get(start..).unwrap_or("");
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The prefix of a qualified name (`ds` of `ds:Signature`), `None` when unprefixed.
pub fn prefix_of(qname: &str) -> Option<&str> {
    qname.split_once(':').map(|(p, _)| p)
}

/// `/Root/Child/…` by local names, for reports.
pub fn element_path(node: roxmltree::Node<'_, '_>) -> String {
    let mut names: Vec<&str> = node
        .ancestors()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    names.reverse();
    format!("/{}", names.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(input: &[u8]) -> &'static str {
        match parse(input, &Limits::default()) {
            Ok(_) => "OK",
            Err(e) => e.code().as_str(),
        }
    }

    #[test]
    fn refuses_dtds_and_bad_text() {
        assert_eq!(
            code(b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>"),
            "XML_DTD_FORBIDDEN"
        );
        assert_eq!(
            code(b"<!DOCTYPE a SYSTEM \"file:///etc/passwd\"><a/>"),
            "XML_DTD_FORBIDDEN"
        );
        assert_eq!(code(b"<a>&x;</a>"), "XML_DTD_FORBIDDEN");
        assert_eq!(code(b"<a>\xff</a>"), "XML_MALFORMED");
        assert_eq!(code(b"<a><b></a>"), "XML_MALFORMED");
        assert_eq!(code(b"\xEF\xBB\xBF<a/>"), "OK");
    }

    #[test]
    fn bounds_depth_and_attributes() {
        let deep = format!("{}{}", "<a>".repeat(300), "</a>".repeat(300));
        assert_eq!(code(deep.as_bytes()), "XML_LIMIT_EXCEEDED");
        let attrs: String = (0..300).map(|i| format!(" a{i}=\"x\"")).collect();
        assert_eq!(
            code(format!("<a{attrs}/>").as_bytes()),
            "XML_LIMIT_EXCEEDED"
        );
        let huge = format!("<a b=\"{}\"/>", "x".repeat(100_000));
        assert_eq!(code(huge.as_bytes()), "XML_LIMIT_EXCEEDED");
    }

    #[test]
    fn qname_keeps_the_literal_prefix() {
        let text = "<a xmlns:p='u' xmlns:q='u'><q:b/></a>";
        let doc = roxmltree::Document::parse(text).unwrap();
        let b = doc.root_element().first_element_child().unwrap();
        assert_eq!(element_qname(text, b), "q:b");
        assert_eq!(element_path(b), "/a/b");
    }
}
