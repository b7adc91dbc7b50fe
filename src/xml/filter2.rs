//! The XPath Filter 2.0 transform (<https://www.w3.org/TR/xmldsig-filter2/>) for the location
//! paths signers use in practice: `/`, `//name`, `//p:name`, `//*[@Id='x']/p:a/p:b` (child
//! and descendant steps, name tests, `*`, one `[@attr='value']` predicate per step). Any other
//! expression is refused, never approximated.
//!
//! Each filter selects the subtrees of the nodes its expression selects; the filter node-set
//! starts as the whole document and is intersected, reduced or extended by each filter in
//! order, and the transform's output is the input node-set intersected with it (§3.2). A
//! subtree choice per element describes every such node-set exactly: text, attributes and
//! namespaces follow their element.

use std::collections::HashSet;

use roxmltree::{Node, NodeId};

/// The filter2 namespace.
pub const NS: &str = "http://www.w3.org/2002/06/xmldsig-filter2";
/// The transform's Algorithm URI.
pub const ALGORITHM: &str = "http://www.w3.org/2002/06/xmldsig-filter2";

/// One `XPath` element of the transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Intersect,
    Subtract,
    Union,
}

/// Why an XPath Filter 2.0 transform is refused (a format failure of the reference).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A child of the transform other than `XPath`.
    #[error("unexpected element in an XPath Filter 2.0 transform")]
    UnexpectedElement,
    /// A `Filter` attribute other than intersect, subtract or union.
    #[error("XPath Filter {0:?} is not defined")]
    UnknownOperation(Option<String>),
    /// The transform has no `XPath` child.
    #[error("an XPath Filter 2.0 transform without XPath")]
    NoXPath,
    /// An expression beyond the simple location paths this build evaluates.
    #[error("XPath expression {0:?} is not supported")]
    UnsupportedExpression(String),
}

/// The filters of one transform, evaluated: each operation with the roots of the subtrees
/// its expression selects.
pub struct Filters {
    steps: Vec<(Op, HashSet<NodeId>, bool)>,
}

impl Filters {
    /// Reads and evaluates the `XPath` children of a filter2 `Transform` element.
    pub fn read(transform: Node<'_, '_>) -> Result<Self, FilterError> {
        let mut steps = Vec::new();
        for xpath in transform.children().filter(|c| c.is_element()) {
            if !xpath.has_tag_name((NS, "XPath")) {
                return Err(FilterError::UnexpectedElement);
            }
            let op = match xpath.attribute("Filter") {
                Some("intersect") => Op::Intersect,
                Some("subtract") => Op::Subtract,
                Some("union") => Op::Union,
                other => return Err(FilterError::UnknownOperation(other.map(str::to_string))),
            };
            let expr = super::signed_text(xpath);
            let (selected, whole) = evaluate(xpath, expr.trim())?;
            steps.push((op, selected, whole));
        }
        if steps.is_empty() {
            return Err(FilterError::NoXPath);
        }
        Ok(Self { steps })
    }

    /// Whether `element` is in the filter node-set.
    pub fn keeps(&self, element: Node<'_, '_>) -> bool {
        let mut kept = true;
        for (op, selected, whole) in &self.steps {
            let inside = *whole || element.ancestors().any(|a| selected.contains(&a.id()));
            kept = match op {
                Op::Intersect => kept && inside,
                Op::Subtract => kept && !inside,
                Op::Union => kept || inside,
            };
        }
        kept
    }
}

/// Evaluates a location path from the document root: the selected elements, and whether the
/// root node itself (`/`, the whole document) is selected.
fn evaluate(context: Node<'_, '_>, expr: &str) -> Result<(HashSet<NodeId>, bool), FilterError> {
    let unsupported = || FilterError::UnsupportedExpression(expr.to_string());
    if expr == "/" {
        return Ok((HashSet::new(), true));
    }
    let doc_root = context.document().root();
    let mut current: Vec<Node<'_, '_>> = vec![doc_root];
    let mut rest = expr;
    while !rest.is_empty() {
        let descendant = if let Some(r) = rest.strip_prefix("//") {
            rest = r;
            true
        } else if let Some(r) = rest.strip_prefix('/') {
            rest = r;
            false
        } else {
            return Err(unsupported());
        };
        let end = step_end(rest);
        let (step, tail) = rest.split_at(end);
        rest = tail;
        let test = NameTest::parse(context, step).ok_or_else(unsupported)?;
        let mut next = Vec::new();
        let mut seen = HashSet::new();
        for node in &current {
            let candidates: Vec<Node<'_, '_>> = if descendant {
                node.descendants().skip(1).collect()
            } else {
                node.children().collect()
            };
            for c in candidates {
                if c.is_element() && test.matches(c) && seen.insert(c.id()) {
                    next.push(c);
                }
            }
        }
        current = next;
    }
    Ok((current.iter().map(|n| n.id()).collect(), false))
}

/// Where a step ends: at the next `/` outside a predicate.
fn step_end(s: &str) -> usize {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.saturating_sub(1),
            (None, '/') if depth == 0 => return i,
            _ => {}
        }
    }
    s.len()
}

/// `*`, `name` or `p:name`, with an optional `[@attr='value']`.
struct NameTest {
    /// `None` for `*`: (namespace, local name) otherwise.
    name: Option<(Option<String>, String)>,
    predicate: Option<(String, String)>,
}

impl NameTest {
    fn parse(context: Node<'_, '_>, step: &str) -> Option<Self> {
        let (name, predicate) = match step.split_once('[') {
            Some((n, p)) => (n.trim(), Some(p.strip_suffix(']')?.trim())),
            None => (step.trim(), None),
        };
        let name = if name == "*" {
            None
        } else {
            let (prefix, local) = match name.split_once(':') {
                Some((p, l)) => (Some(p), l),
                None => (None, name),
            };
            if !is_ncname(local) || prefix.is_some_and(|p| !is_ncname(p)) {
                return None;
            }
            // XPath 1.0: an unprefixed name test is in no namespace.
            let ns = match prefix {
                Some(p) => Some(context.lookup_namespace_uri(Some(p))?.to_string()),
                None => None,
            };
            Some((ns, local.to_string()))
        };
        let predicate = match predicate {
            None => None,
            Some(p) => {
                let (attr, value) = p.strip_prefix('@')?.split_once('=')?;
                let value = value.trim();
                let unquoted = value
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))?;
                if !is_ncname(attr.trim()) || unquoted.contains(['\'', '"']) {
                    return None;
                }
                Some((attr.trim().to_string(), unquoted.to_string()))
            }
        };
        Some(Self { name, predicate })
    }

    fn matches(&self, node: Node<'_, '_>) -> bool {
        let name_ok = match &self.name {
            None => true,
            Some((ns, local)) => {
                node.tag_name().name() == local && node.tag_name().namespace() == ns.as_deref()
            }
        };
        name_ok
            && self.predicate.as_ref().map_or(true, |(attr, value)| {
                node.attributes()
                    .any(|a| a.namespace().is_none() && a.name() == attr && a.value() == value)
            })
    }
}

fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_paths_select_and_filters_combine() {
        let xml = r#"<r xmlns:e="urn:e"><a Id="x"><e:b><e:c/></e:b></a><n><k/></n><m/></r>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let root = doc.root_element();
        let (sel, whole) = evaluate(root, "//*[@Id='x']/e:b/e:c").unwrap();
        assert!(!whole);
        assert_eq!(sel.len(), 1);
        assert!(evaluate(root, "/").unwrap().1);
        assert_eq!(evaluate(root, "//k").unwrap().0.len(), 1);
        for bad in ["count(//a)", "//a | //b", "a", "//a[1]", "//x:a"] {
            assert!(evaluate(root, bad).is_err(), "{bad}");
        }
        let with_transform = format!(
            r#"<r><n><k/></n><m/><T xmlns="{NS}"><XPath Filter="intersect">//n</XPath><XPath Filter="subtract">//k</XPath><XPath Filter="union">//m</XPath></T></r>"#
        );
        let doc = roxmltree::Document::parse(&with_transform).unwrap();
        let by_name = |n: &str| {
            doc.descendants()
                .find(|d| d.tag_name().name() == n)
                .unwrap()
        };
        let filters = Filters::read(by_name("T")).unwrap();
        assert!(filters.keeps(by_name("n")));
        assert!(!filters.keeps(by_name("k")));
        assert!(filters.keeps(by_name("m")));
        assert!(!filters.keeps(by_name("r")));
    }
}
