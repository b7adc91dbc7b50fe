//! Canonical XML over a document subset: Canonical XML 1.0 and 1.1 (inclusive, with or
//! without comments) and Exclusive XML Canonicalization 1.0 with an InclusiveNamespaces
//! PrefixList.
//!
//! The subsets XML-DSig needs without XPath are supported: the whole document, or one element
//! and its descendants, optionally minus one element subtree (the `ds:Signature` removed by
//! the enveloped-signature transform). Prefixes are taken from the source text, because the
//! parser keeps only the namespace URI of a name (two prefixes may map to one URI).
//!
//! References: <https://www.w3.org/TR/2001/REC-xml-c14n-20010315>,
//! <https://www.w3.org/TR/xml-exc-c14n/>, <https://www.w3.org/TR/xml-c14n11/>.

use std::collections::BTreeMap;

use roxmltree::{Node, NodeId, NodeType};

use super::parse::{element_qname, prefix_of};
use super::XmlError;

/// The XML namespace, never declared in canonical output.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Canonical XML 1.0 (inclusive).
pub const C14N10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
/// Canonical XML 1.0 with comments.
pub const C14N10_COMMENTS: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments";
/// Canonical XML 1.1.
pub const C14N11: &str = "http://www.w3.org/2006/12/xml-c14n11";
/// Canonical XML 1.1 with comments.
pub const C14N11_COMMENTS: &str = "http://www.w3.org/2006/12/xml-c14n11#WithComments";
/// Exclusive XML Canonicalization 1.0.
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// Exclusive XML Canonicalization 1.0 with comments.
pub const EXC_C14N_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";

/// The family of canonicalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Canonical XML 1.0: all in-scope namespaces, inherited `xml:*` attributes.
    Inclusive10,
    /// Canonical XML 1.1: like 1.0 but `xml:id` is not inherited (and `xml:base` is fixed up).
    Inclusive11,
    /// Exclusive C14N: only visibly utilized namespaces, nothing inherited.
    Exclusive,
}

/// A canonicalization method as named by its URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// The family.
    pub algorithm: Algorithm,
    /// Comments are kept (when the node-set has them).
    pub with_comments: bool,
    /// Exclusive only: prefixes treated as in inclusive C14N (`#default` = default namespace).
    pub inclusive_prefixes: Vec<String>,
}

impl Method {
    /// Recognises a canonicalization URI; `prefixes` is the InclusiveNamespaces PrefixList.
    pub fn from_uri(uri: &str, prefixes: Vec<String>) -> Option<Self> {
        let (algorithm, with_comments) = match uri {
            C14N10 => (Algorithm::Inclusive10, false),
            C14N10_COMMENTS => (Algorithm::Inclusive10, true),
            C14N11 => (Algorithm::Inclusive11, false),
            C14N11_COMMENTS => (Algorithm::Inclusive11, true),
            EXC_C14N => (Algorithm::Exclusive, false),
            EXC_C14N_COMMENTS => (Algorithm::Exclusive, true),
            _ => return None,
        };
        let inclusive_prefixes = if algorithm == Algorithm::Exclusive {
            prefixes
        } else {
            Vec::new()
        };
        Some(Self {
            algorithm,
            with_comments,
            inclusive_prefixes,
        })
    }

    /// The method's URI.
    pub fn uri(&self) -> &'static str {
        match (self.algorithm, self.with_comments) {
            (Algorithm::Inclusive10, false) => C14N10,
            (Algorithm::Inclusive10, true) => C14N10_COMMENTS,
            (Algorithm::Inclusive11, false) => C14N11,
            (Algorithm::Inclusive11, true) => C14N11_COMMENTS,
            (Algorithm::Exclusive, false) => EXC_C14N,
            (Algorithm::Exclusive, true) => EXC_C14N_COMMENTS,
        }
    }
}

/// Which nodes are canonicalized.
#[derive(Debug, Clone, Copy)]
pub struct Subset<'a, 'input> {
    /// The document root (whole document) or an element (that element's subtree).
    pub apex: Node<'a, 'input>,
    /// An element whose whole subtree is left out (enveloped-signature transform).
    pub exclude: Option<NodeId>,
    /// Comments are in the node-set (false for `URI=""` and `#id` references).
    pub comments: bool,
}

/// Canonicalizes `subset` of the document whose source text is `text`.
pub fn canonicalize(
    text: &str,
    subset: Subset<'_, '_>,
    method: &Method,
) -> Result<Vec<u8>, XmlError> {
    canonicalize_filled(text, subset, method, &[])
}

/// [`canonicalize`] as if each element of `fills`, empty in the document, held the given
/// text: the canonical form of a document that differs only there, without parsing it.
/// A signer lays out SignedInfo with empty DigestValues, digests, then canonicalizes it
/// with the digests filled in.
pub fn canonicalize_filled(
    text: &str,
    subset: Subset<'_, '_>,
    method: &Method,
    fills: &[(NodeId, &str)],
) -> Result<Vec<u8>, XmlError> {
    write_subset(text, subset, method, fills, &[], &[])
}

/// [`canonicalize`] leaving out the subtrees of `also` as well as `subset.exclude` (the XPath
/// `not(ancestor-or-self::ds:Signature)` leaves out every signature).
pub fn canonicalize_excluding(
    text: &str,
    subset: Subset<'_, '_>,
    method: &Method,
    also: &[NodeId],
) -> Result<Vec<u8>, XmlError> {
    write_subset(text, subset, method, &[], also, &[])
}

/// [`canonicalize_excluding`] where the elements of `omitted` are not in the node-set but
/// their descendants may be: their tags, attributes and text are left out, their element
/// children are visited (an XPath Filter 2.0 node-set, where a subtree can be taken out and
/// part of it put back).
pub fn canonicalize_filtered(
    text: &str,
    subset: Subset<'_, '_>,
    method: &Method,
    also: &[NodeId],
    omitted: &[NodeId],
) -> Result<Vec<u8>, XmlError> {
    write_subset(text, subset, method, &[], also, omitted)
}

fn write_subset(
    text: &str,
    subset: Subset<'_, '_>,
    method: &Method,
    fills: &[(NodeId, &str)],
    also: &[NodeId],
    omitted: &[NodeId],
) -> Result<Vec<u8>, XmlError> {
    let mut exclude: Vec<NodeId> = subset.exclude.into_iter().collect();
    exclude.extend_from_slice(also);
    let mut w = Writer {
        text,
        method,
        comments: subset.comments && method.with_comments,
        exclude,
        omitted: omitted.iter().copied().collect(),
        fills,
        out: Vec::with_capacity(subset.apex.range().len()),
    };
    let apex = subset.apex;
    if apex.node_type() == NodeType::Root {
        let mut seen_root = false;
        for child in apex.children() {
            match child.node_type() {
                NodeType::Element => {
                    if !w.exclude.contains(&child.id()) {
                        w.element(child, &BTreeMap::new(), false)?;
                    }
                    seen_root = true;
                }
                NodeType::Comment | NodeType::PI => {
                    if child.is_comment() && !w.comments {
                        continue;
                    }
                    if seen_root {
                        w.out.push(b'\n');
                    }
                    w.leaf(child);
                    if !seen_root {
                        w.out.push(b'\n');
                    }
                }
                _ => {}
            }
        }
    } else if apex.is_element() {
        if method.algorithm == Algorithm::Inclusive11
            && apex
                .ancestors()
                .skip(1)
                .any(|a| a.attribute((XML_NS, "base")).is_some())
        {
            return Err(XmlError::Unsupported(
                "xml:base on an ancestor of the signed element (C14N 1.1 fix-up) is not supported"
                    .into(),
            ));
        }
        w.element(apex, &BTreeMap::new(), true)?;
    } else {
        return Err(XmlError::Malformed(
            "canonicalization apex is not an element".into(),
        ));
    }
    Ok(w.out)
}

struct Writer<'t, 'm> {
    text: &'t str,
    method: &'m Method,
    comments: bool,
    exclude: Vec<NodeId>,
    omitted: std::collections::HashSet<NodeId>,
    fills: &'m [(NodeId, &'m str)],
    out: Vec<u8>,
}

impl Writer<'_, '_> {
    /// Writes `node` and its subtree. Namespace prefixes and URIs, attribute names and values
    /// are borrowed from the parsed document (`rendered`: the declarations already in the
    /// output, prefix to URI), so that an element costs no string copies.
    fn element<'a>(
        &mut self,
        node: Node<'a, '_>,
        rendered: &BTreeMap<&'a str, &'a str>,
        apex: bool,
    ) -> Result<(), XmlError> {
        if self.omitted.contains(&node.id()) {
            // Not in the node-set: only its element descendants may be, each rendered as
            // the first output element of its branch (inheriting xml:* like an apex).
            for child in node.children() {
                if child.is_element() && !self.exclude.contains(&child.id()) {
                    self.element(child, rendered, true)?;
                }
            }
            return Ok(());
        }
        let (text, method) = (self.text, self.method);
        let qname = element_qname(text, node);
        let in_scope: BTreeMap<&'a str, &'a str> = node
            .namespaces()
            .filter(|ns| ns.name() != Some("xml"))
            .map(|ns| (ns.name().unwrap_or(""), ns.uri()))
            .collect();
        let ctx_default = rendered.get("").copied().unwrap_or("");
        let mut decls: BTreeMap<&'a str, &'a str> = BTreeMap::new();
        match method.algorithm {
            Algorithm::Inclusive10 | Algorithm::Inclusive11 => {
                for (p, u) in in_scope.iter().filter(|(p, _)| !p.is_empty()) {
                    if rendered.get(p) != Some(u) {
                        decls.insert(p, u);
                    }
                }
                let default = in_scope.get("").copied().unwrap_or("");
                if default != ctx_default {
                    decls.insert("", default);
                }
            }
            Algorithm::Exclusive => {
                let mut used: Vec<&str> = vec![prefix_of(qname).unwrap_or("")];
                for a in node.attributes() {
                    if let Some(p) = prefix_of(&text[a.range_qname()]) {
                        if p != "xml" {
                            used.push(p);
                        }
                    }
                }
                for p in &method.inclusive_prefixes {
                    used.push(if p == "#default" { "" } else { p });
                }
                for p in used {
                    if p.is_empty() {
                        let default = in_scope.get("").copied().unwrap_or("");
                        if default != ctx_default {
                            decls.insert("", default);
                        }
                    } else if let Some((p, u)) = in_scope.get_key_value(p) {
                        if rendered.get(p) != Some(u) {
                            decls.insert(p, u);
                        }
                    }
                }
            }
        }

        // Attributes: own, plus inherited xml:* on the apex for inclusive methods.
        let mut attrs: Vec<(&str, &str, std::borrow::Cow<'_, str>, &str)> = node
            .attributes()
            .map(|a| {
                (
                    a.namespace().unwrap_or(""),
                    a.name(),
                    std::borrow::Cow::Borrowed(&text[a.range_qname()]),
                    a.value(),
                )
            })
            .collect();
        if apex && method.algorithm != Algorithm::Exclusive {
            let inherit: &[&str] = match method.algorithm {
                Algorithm::Inclusive11 => &["lang", "space"],
                _ => &["lang", "space", "base", "id"],
            };
            for anc in node.ancestors().skip(1).filter(|a| a.is_element()) {
                for a in anc.attributes().filter(|a| a.namespace() == Some(XML_NS)) {
                    let local = a.name();
                    if inherit.contains(&local)
                        && !attrs
                            .iter()
                            .any(|(ns, n, _, _)| *ns == XML_NS && *n == local)
                    {
                        attrs.push((
                            XML_NS,
                            local,
                            std::borrow::Cow::Owned(format!("xml:{local}")),
                            a.value(),
                        ));
                    }
                }
            }
        }
        attrs.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));

        self.out.push(b'<');
        self.out.extend_from_slice(qname.as_bytes());
        for (p, u) in &decls {
            if p.is_empty() {
                self.out.extend_from_slice(b" xmlns=\"");
            } else {
                self.out.extend_from_slice(b" xmlns:");
                self.out.extend_from_slice(p.as_bytes());
                self.out.extend_from_slice(b"=\"");
            }
            escape_attr(&mut self.out, u);
            self.out.push(b'"');
        }
        for (_, _, q, v) in &attrs {
            self.out.push(b' ');
            self.out.extend_from_slice(q.as_bytes());
            self.out.extend_from_slice(b"=\"");
            escape_attr(&mut self.out, v);
            self.out.push(b'"');
        }
        self.out.push(b'>');

        let next_ctx;
        let ctx = if decls.is_empty() {
            rendered
        } else {
            let mut c = rendered.clone();
            c.extend(decls.iter().map(|(p, u)| (*p, *u)));
            next_ctx = c;
            &next_ctx
        };
        if !node.has_children() {
            if let Some((_, fill)) = self.fills.iter().find(|(id, _)| *id == node.id()) {
                escape_text(&mut self.out, fill);
            }
        }
        for child in node.children() {
            match child.node_type() {
                NodeType::Element if !self.exclude.contains(&child.id()) => {
                    self.element(child, ctx, false)?;
                }
                NodeType::Text => escape_text(&mut self.out, child.text().unwrap_or("")),
                NodeType::Comment if self.comments => self.leaf(child),
                NodeType::PI => self.leaf(child),
                _ => {}
            }
        }
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(qname.as_bytes());
        self.out.push(b'>');
        Ok(())
    }

    /// A comment or processing instruction.
    fn leaf(&mut self, node: Node<'_, '_>) {
        if node.is_comment() {
            self.out.extend_from_slice(b"<!--");
            self.out
                .extend_from_slice(node.text().unwrap_or("").replace('\r', "").as_bytes());
            self.out.extend_from_slice(b"-->");
            return;
        }
        // From the source, so trailing whitespace in the data survives as C14N requires.
        let r = node.range();
        let inner = self
            .text
            .get(r.start + 2..r.end.saturating_sub(2))
            .unwrap_or("");
        let split = inner
            .find(|c: char| c.is_whitespace())
            .unwrap_or(inner.len());
        let (target, data) = inner.split_at(split);
        let data = data.trim_start().replace("\r\n", "\n");
        self.out.extend_from_slice(b"<?");
        self.out.extend_from_slice(target.as_bytes());
        if !data.is_empty() {
            self.out.push(b' ');
            self.out.extend_from_slice(data.as_bytes());
        }
        self.out.extend_from_slice(b"?>");
    }
}

fn escape_text(out: &mut Vec<u8>, s: &str) {
    escape(out, s, |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'\r' => Some(b"&#xD;"),
        _ => None,
    })
}

/// Escapes an attribute value as canonical XML writes it (C14N 1.0 §2.3).
pub fn escape_attribute(out: &mut Vec<u8>, value: &str) {
    escape_attr(out, value)
}

fn escape_attr(out: &mut Vec<u8>, s: &str) {
    escape(out, s, |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'"' => Some(b"&quot;"),
        b'\t' => Some(b"&#x9;"),
        b'\n' => Some(b"&#xA;"),
        b'\r' => Some(b"&#xD;"),
        _ => None,
    })
}

/// Copies `s` to `out` with each byte `entity` names replaced, in runs: a text node is mostly
/// bytes that need nothing (an attachment's base64 is all of them), so they are copied as
/// slices rather than pushed one by one.
fn escape(out: &mut Vec<u8>, s: &str, entity: impl Fn(u8) -> Option<&'static [u8]>) {
    let bytes = s.as_bytes();
    // Most text (all of an attachment's base64) holds no byte that either table above
    // escapes: vectorized scans for those bytes prove it, instead of a match per byte. A line
    // feed only rules the shortcut out where it is escaped (attribute values).
    if memchr::memchr3(b'&', b'<', b'>', bytes).is_none()
        && memchr::memchr3(b'\r', b'"', b'\t', bytes).is_none()
        && (memchr::memchr(b'\n', bytes).is_none() || entity(b'\n').is_none())
    {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(bytes.len());
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(replacement) = entity(b) {
            out.extend_from_slice(&bytes[run..i]);
            out.extend_from_slice(replacement);
            run = i + 1;
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(text: &str, path: &[&str], uri: &str, prefixes: &[&str]) -> String {
        let doc = roxmltree::Document::parse(text).unwrap();
        let mut apex = doc.root();
        for name in path {
            apex = apex
                .descendants()
                .find(|n| n.is_element() && n.tag_name().name() == *name)
                .unwrap();
        }
        let m = Method::from_uri(uri, prefixes.iter().map(|s| s.to_string()).collect()).unwrap();
        let subset = Subset {
            apex,
            exclude: None,
            comments: true,
        };
        String::from_utf8(canonicalize(text, subset, &m).unwrap()).unwrap()
    }

    #[test]
    fn exclusive_vs_inclusive_on_a_subtree() {
        // Exclusive C14N spec §2.2.
        let doc = "<n0:local xmlns:n0=\"foo:bar\" xmlns:n3=\"ftp://example.org\">\n  <n1:elem2 xmlns:n1=\"http://example.net\" xml:lang=\"en\">\n    <n3:stuff xmlns:n3=\"ftp://example.org\"/>\n  </n1:elem2>\n</n0:local>";
        assert_eq!(
            c14n(doc, &["elem2"], C14N10, &[]),
            "<n1:elem2 xmlns:n0=\"foo:bar\" xmlns:n1=\"http://example.net\" xmlns:n3=\"ftp://example.org\" xml:lang=\"en\">\n    <n3:stuff></n3:stuff>\n  </n1:elem2>"
        );
        assert_eq!(
            c14n(doc, &["elem2"], EXC_C14N, &[]),
            "<n1:elem2 xmlns:n1=\"http://example.net\" xml:lang=\"en\">\n    <n3:stuff xmlns:n3=\"ftp://example.org\"></n3:stuff>\n  </n1:elem2>"
        );
        assert_eq!(
            c14n(doc, &["elem2"], EXC_C14N, &["n0"]),
            "<n1:elem2 xmlns:n0=\"foo:bar\" xmlns:n1=\"http://example.net\" xml:lang=\"en\">\n    <n3:stuff xmlns:n3=\"ftp://example.org\"></n3:stuff>\n  </n1:elem2>"
        );
    }

    #[test]
    fn two_prefixes_for_one_uri_keep_their_spelling() {
        let doc = "<a xmlns:p=\"u\" xmlns:q=\"u\"><q:b p:x=\"1\"/></a>";
        assert_eq!(
            c14n(doc, &["b"], EXC_C14N, &[]),
            "<q:b xmlns:p=\"u\" xmlns:q=\"u\" p:x=\"1\"></q:b>"
        );
    }

    #[test]
    fn default_namespace_undeclared_when_needed() {
        let doc = "<a xmlns=\"u\"><b xmlns=\"\"><c/></b></a>";
        assert_eq!(
            c14n(doc, &[], C14N10, &[]),
            "<a xmlns=\"u\"><b xmlns=\"\"><c></c></b></a>"
        );
        assert_eq!(c14n(doc, &["b"], C14N10, &[]), "<b><c></c></b>");
    }

    #[test]
    fn c14n11_does_not_inherit_xml_id() {
        let doc = "<a xml:id=\"i\" xml:lang=\"vi\"><b/></a>";
        assert_eq!(
            c14n(doc, &["b"], C14N10, &[]),
            "<b xml:id=\"i\" xml:lang=\"vi\"></b>"
        );
        assert_eq!(c14n(doc, &["b"], C14N11, &[]), "<b xml:lang=\"vi\"></b>");
    }
}
