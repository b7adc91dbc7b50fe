//! Signature profiles: which element is signed, by which ID attribute, where the Signature
//! goes, which canonicalization and what signing-time property (vn-edoc-standards.md §a, §d).
//!
//! - `tax` (HTKK/eTax): `HSoThueDTu/HSoKhaiThue` by its `id`, Signature in `HSoThueDTu/CKyDTu`,
//!   inclusive C14N with comments, SigningTime object.
//! - `social-insurance` (BHXH): the whole `Hoso` (`URI=""`, enveloped), Signature in
//!   `Hoso/CKy_Dvi`, inclusive C14N, SigningTime object (the BHXH C14N is unconfirmed).
//! - `e-invoice` (Decree 123/2020): `HDon/DLHDon` by `Id`, Signature in `HDon/DSCKS/NBan`
//!   (the tax authority's `DSCKS/CQT` over `MCCQT` is accepted when verifying), SigningTime.
//! - `edxml` (QCVN 102:2016): Signature at the end of `edXMLHeader`, referencing `MessageHeader`,
//!   `edXMLBody` and every `AttachmentEncoded/Attachment` by `Id` with exclusive C14N, never
//!   `TraceHeaderList` (which grows at each hop). This rule is signgate's: the standard's own
//!   is unconfirmed.
//! - `enveloped`: generic, the whole document, Signature as the root's last child.

use roxmltree::{Node, NodeId};

use super::c14n::{self, Method};
use super::dsig::{IdIndex, PlannedReference, SignatureCheck, SignaturePlan, Splice, ENVELOPED};
use super::parse::Parsed;
use super::XmlError;

/// A signature profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Tax declarations (`HSoThueDTu`).
    Tax,
    /// Social-insurance filings (`Hoso`).
    SocialInsurance,
    /// E-invoices (`HDon`).
    EInvoice,
    /// edXML envelopes (QCVN 102:2016).
    Edxml,
    /// Generic enveloped signature over the whole document.
    Enveloped,
}

impl std::str::FromStr for Profile {
    type Err = crate::code::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "tax" => Self::Tax,
            "social-insurance" => Self::SocialInsurance,
            "e-invoice" => Self::EInvoice,
            "edxml" => Self::Edxml,
            "enveloped" => Self::Enveloped,
            _ => {
                return Err(crate::code::UnknownName::new(
                    "profile",
                    s,
                    "tax, social-insurance, e-invoice, edxml or enveloped",
                ))
            }
        })
    }
}

/// The QCVN 102:2016 edXML namespace.
pub const EDXML_NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";

impl Profile {
    /// The profile's name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tax => "tax",
            Self::SocialInsurance => "social-insurance",
            Self::EInvoice => "e-invoice",
            Self::Edxml => "edxml",
            Self::Enveloped => "enveloped",
        }
    }

    /// Picks the profile a document belongs to from its root element.
    pub fn detect(doc: &roxmltree::Document<'_>) -> Self {
        let root = doc.root_element();
        match root.tag_name().name() {
            "HSoThueDTu" => Self::Tax,
            "Hoso" => Self::SocialInsurance,
            "HDon" => Self::EInvoice,
            "edXML" if root.tag_name().namespace() == Some(EDXML_NS) => Self::Edxml,
            _ => Self::Enveloped,
        }
    }

    /// Unqualified attribute names that carry IDs.
    pub fn id_attributes(self) -> &'static [&'static str] {
        match self {
            Self::Tax => &["id"],
            _ => &["Id", "ID", "id"],
        }
    }

    fn c14n_uri(self) -> &'static str {
        match self {
            Self::Tax => c14n::C14N10_COMMENTS,
            Self::Edxml => c14n::EXC_C14N,
            _ => c14n::C14N10,
        }
    }

    /// Plans a new signature over `parsed` (IDs already indexed in `ids`).
    pub fn plan(self, parsed: &Parsed<'_>, ids: &IdIndex) -> Result<SignaturePlan, XmlError> {
        let root = parsed.doc.root_element();
        let mismatch =
            |why: Misplaced| XmlError::ProfileMismatch(format!("{} profile: {why}", self.name()));
        let expect_root = |name: &str| {
            if root.tag_name().name() == name {
                Ok(())
            } else {
                Err(mismatch(Misplaced(format!(
                    "the root element is {}, expected {name}",
                    root.tag_name().name()
                ))))
            }
        };
        let c14n_uri = self.c14n_uri().to_string();
        let enveloped = vec![ENVELOPED.to_string(), c14n_uri.clone()];
        let (container, references) = match self {
            Self::Tax => {
                expect_root("HSoThueDTu")?;
                let signed = only_child(root, "HSoKhaiThue").map_err(&mismatch)?;
                let id = signed
                    .attribute("id")
                    .ok_or_else(|| mismatch("HSoKhaiThue has no id attribute".into()))?;
                let container = only_child(root, "CKyDTu").map_err(&mismatch)?;
                (container, vec![reference(format!("#{id}"), enveloped)])
            }
            Self::SocialInsurance => {
                expect_root("Hoso")?;
                let container = only_child(root, "CKy_Dvi").map_err(&mismatch)?;
                (container, vec![reference(String::new(), enveloped)])
            }
            Self::EInvoice => {
                expect_root("HDon")?;
                let signed = only_child(root, "DLHDon").map_err(&mismatch)?;
                let id = id_of(signed, self).ok_or_else(|| mismatch("DLHDon has no Id".into()))?;
                let dscks = only_child(root, "DSCKS").map_err(&mismatch)?;
                let container = only_child(dscks, "NBan").map_err(&mismatch)?;
                (container, vec![reference(format!("#{id}"), enveloped)])
            }
            Self::Edxml => {
                if Self::detect(&parsed.doc) != Self::Edxml {
                    return Err(mismatch(
                        "the root is not edXML in the QCVN 102:2016 namespace".into(),
                    ));
                }
                let header = edxml_header(root).map_err(&mismatch)?;
                let mut refs = Vec::new();
                for node in edxml_signed(root).map_err(&mismatch)? {
                    let id = id_of(node, self).ok_or_else(|| {
                        mismatch(Misplaced(format!(
                            "{} has no Id to reference",
                            node.tag_name().name()
                        )))
                    })?;
                    refs.push(reference(format!("#{id}"), vec![c14n_uri.clone()]));
                }
                (header, refs)
            }
            Self::Enveloped => (root, vec![reference(String::new(), enveloped)]),
        };
        let signature_id = fresh_id(ids, "signgate-sig");
        let time_object_id = Some(fresh_id(ids, "signgate-signing-time"));
        Ok(SignaturePlan {
            splice: append_splice(parsed.text, container),
            references,
            c14n: Method::from_uri(&c14n_uri, Vec::new()).expect("profile C14N is known"),
            signature_id,
            time_object_id,
            object_transforms: vec![c14n_uri],
        })
    }

    /// Checks that a signature sits where the profile puts it and covers exactly what the
    /// profile signs. Returns the coverage (`whole_file`, `element_path`) or why it fails.
    pub fn check(
        self,
        parsed: &Parsed<'_>,
        signature: Node<'_, '_>,
        check: &SignatureCheck,
    ) -> (bool, Option<String>, Result<(), Misplaced>) {
        let doc_refs: Vec<_> = check
            .references
            .iter()
            .filter(|r| !r.inside_signature)
            .collect();
        let paths: Vec<String> = doc_refs
            .iter()
            .filter_map(|r| r.element_path.clone())
            .collect();
        let element_path = (!paths.is_empty()).then(|| paths.join(", "));
        let whole = doc_refs.iter().any(|r| r.whole_document);
        let root = parsed.doc.root_element();
        let parent = signature.parent_element();
        let targets: Vec<NodeId> = doc_refs.iter().filter_map(|r| r.target).collect();
        // Enveloping: content in a ds:Object of this signature (not its signed properties).
        let enveloped_objects = check.references.iter().any(|r| {
            r.inside_signature
                && r.target
                    .and_then(|t| parsed.doc.get_node(t))
                    .is_some_and(|t| {
                        t.has_tag_name((super::dsig::DSIG_NS, "Object"))
                            && t.parent_element().map(|p| p.id()) == Some(signature.id())
                            && !t
                                .descendants()
                                .any(|d| d.tag_name().name() == "SignedProperties")
                    })
        });
        let verdict = (|| -> Result<(), Misplaced> {
            if self == Self::Enveloped && doc_refs.is_empty() && enveloped_objects {
                return Ok(());
            }
            // Detached: every document reference is to content the caller supplied.
            if self == Self::Enveloped
                && !doc_refs.is_empty()
                && doc_refs.iter().all(|r| r.external)
            {
                return Ok(());
            }
            if doc_refs.is_empty() {
                return Err("the signature references no document content".into());
            }
            let parent = parent.ok_or("the signature has no parent element")?;
            let under = |p: Node<'_, '_>, name: &str, grand: Option<Node<'_, '_>>| {
                p.tag_name().name() == name
                    && p.parent_element().map(|g| g.id()) == grand.map(|g| g.id())
            };
            let single = |expected: Node<'_, '_>| {
                if targets.len() == 1 && targets[0] == expected.id() {
                    Ok(())
                } else {
                    Err(Misplaced(format!(
                        "the signature must cover exactly {}, it covers {}",
                        super::parse::element_path(expected),
                        element_path.clone().unwrap_or_default()
                    )))
                }
            };
            match self {
                Self::Tax => {
                    if !under(parent, "CKyDTu", Some(root)) {
                        return Err("the signature is not in HSoThueDTu/CKyDTu".into());
                    }
                    single(only_child(root, "HSoKhaiThue")?)
                }
                Self::SocialInsurance => {
                    if !under(parent, "CKy_Dvi", Some(root)) {
                        return Err("the signature is not in Hoso/CKy_Dvi".into());
                    }
                    single(root)
                }
                Self::EInvoice => {
                    let dscks = parent.parent_element();
                    let ok_place = dscks
                        .map(|d| under(d, "DSCKS", Some(root)))
                        .unwrap_or(false);
                    match parent.tag_name().name() {
                        "NBan" if ok_place => single(only_child(root, "DLHDon")?),
                        "CQT" if ok_place => single(only_child(root, "MCCQT")?),
                        _ => {
                            Err("the signature is not in HDon/DSCKS/NBan or HDon/DSCKS/CQT".into())
                        }
                    }
                }
                Self::Edxml => {
                    let header = edxml_header(root)?;
                    if parent.id() != header.id() {
                        return Err("the signature is not in edXMLHeader".into());
                    }
                    let mut expected: Vec<u32> =
                        edxml_signed(root)?.iter().map(|n| n.id().get()).collect();
                    let mut got: Vec<u32> = targets.iter().map(|t| t.get()).collect();
                    expected.sort();
                    got.sort();
                    if expected != got {
                        return Err("the signature must cover MessageHeader, edXMLBody and every attachment, each once, and nothing else".into());
                    }
                    Ok(())
                }
                Self::Enveloped => Ok(()),
            }
        })();
        (whole, element_path, verdict)
    }
}

impl Profile {
    /// The tax code (MST) the document declares for its filer, read from the signed element
    /// as complete text ([`signed_text`](super::signed_text): a comment splitting the value,
    /// which leaves the signature valid, does not truncate it). `None` when the profile has
    /// no such field or the document lacks it.
    ///
    /// - tax: the first `mst`/`MST` under `HSoKhaiThue/TTinChung` (HTKK puts it in
    ///   `TTinTKhaiThue/NNT/mst`);
    /// - e-invoice: the seller's `DLHDon/NDHDon/NBan/MST`;
    /// - social-insurance: `Hoso/TTinChung/MST`.
    pub fn declared_tax_code(self, doc: &roxmltree::Document<'_>) -> Option<String> {
        let root = doc.root_element();
        let node = match self {
            Self::Tax => only_child(only_child(root, "HSoKhaiThue").ok()?, "TTinChung")
                .ok()?
                .descendants()
                .find(|n| n.is_element() && n.tag_name().name().eq_ignore_ascii_case("mst"))?,
            Self::EInvoice => {
                let seller = only_child(
                    only_child(only_child(root, "DLHDon").ok()?, "NDHDon").ok()?,
                    "NBan",
                )
                .ok()?;
                only_child(seller, "MST").ok()?
            }
            Self::SocialInsurance => only_child(only_child(root, "TTinChung").ok()?, "MST").ok()?,
            Self::Edxml | Self::Enveloped => return None,
        };
        let code: String = super::signed_text(node)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        (!code.is_empty()).then_some(code)
    }
}

/// True when a declared tax code belongs to the certificate's: equal, or a dependent unit's
/// 13-digit code `NNNNNNNNNN-NNN` of the certificate's enterprise.
pub fn tax_code_matches(declared: &str, certificate: &str) -> bool {
    declared == certificate
        || declared
            .strip_prefix(certificate)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|branch| !branch.is_empty() && branch.bytes().all(|b| b.is_ascii_digit()))
}

fn reference(uri: String, transforms: Vec<String>) -> PlannedReference {
    PlannedReference { uri, transforms }
}

fn id_of<'a>(node: Node<'a, '_>, profile: Profile) -> Option<&'a str> {
    profile
        .id_attributes()
        .iter()
        .find_map(|n| node.attribute(*n))
}

/// Why a signature or document does not have the profile's layout (the profile's name is
/// added by the caller). XML_PROFILE_MISMATCH when raised as an [`XmlError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Misplaced(pub String);

impl From<&'static str> for Misplaced {
    fn from(why: &'static str) -> Self {
        Self(why.to_string())
    }
}

/// The one child element of `parent` with local name `name`.
fn only_child<'a, 'i>(parent: Node<'a, 'i>, name: &str) -> Result<Node<'a, 'i>, Misplaced> {
    let mut found = parent
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == name);
    match (found.next(), found.next()) {
        (Some(n), None) => Ok(n),
        (None, _) => Err(Misplaced(format!(
            "{} has no {name} element",
            parent.tag_name().name()
        ))),
        (Some(_), Some(_)) => Err(Misplaced(format!(
            "{} has more than one {name}",
            parent.tag_name().name()
        ))),
    }
}

fn edxml_header<'a, 'i>(root: Node<'a, 'i>) -> Result<Node<'a, 'i>, Misplaced> {
    only_child(only_child(root, "edXMLEnvelope")?, "edXMLHeader")
}

/// MessageHeader, edXMLBody and every attachment, in document order.
fn edxml_signed<'a, 'i>(root: Node<'a, 'i>) -> Result<Vec<Node<'a, 'i>>, Misplaced> {
    let envelope = only_child(root, "edXMLEnvelope")?;
    let mut out = vec![
        only_child(only_child(envelope, "edXMLHeader")?, "MessageHeader")?,
        only_child(envelope, "edXMLBody")?,
    ];
    for enc in root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "AttachmentEncoded")
    {
        out.extend(
            enc.children()
                .filter(|c| c.is_element() && c.tag_name().name() == "Attachment"),
        );
    }
    Ok(out)
}

fn fresh_id(ids: &IdIndex, base: &str) -> String {
    let mut n = 1;
    loop {
        let candidate = format!("{base}-{n}");
        if !ids.contains(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// Inserts as the last child of `container`; a self-closing container is opened.
fn append_splice(text: &str, container: Node<'_, '_>) -> Splice {
    let r = container.range();
    let source = &text[r.clone()];
    if source.ends_with("/>") && !container.has_children() {
        let qname = super::parse::element_qname(text, container);
        Splice {
            start: r.end - 2,
            end: r.end,
            before: ">".into(),
            after: format!("</{qname}>"),
        }
    } else {
        let at = source.rfind("</").map(|i| r.start + i).unwrap_or(r.end);
        Splice {
            start: at,
            end: at,
            before: String::new(),
            after: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_codes_match_exactly_or_as_a_branch() {
        assert!(tax_code_matches("0100686209", "0100686209"));
        assert!(tax_code_matches("0100686209-199", "0100686209"));
        assert!(!tax_code_matches("0100686209-", "0100686209"));
        assert!(!tax_code_matches("01006862099", "0100686209"));
        assert!(!tax_code_matches("0100686209-1a", "0100686209"));
        assert!(!tax_code_matches("01006", "0100686209"));
    }

    #[test]
    fn declared_tax_code_joins_text_split_by_comments() {
        let text = "<HSoThueDTu><HSoKhaiThue id=\"a\"><TTinChung><NNT><mst>01006<!-- x -->86209<?pi?>-199</mst></NNT></TTinChung></HSoKhaiThue><CKyDTu/></HSoThueDTu>";
        let doc = roxmltree::Document::parse(text).unwrap();
        assert_eq!(
            Profile::Tax.declared_tax_code(&doc).as_deref(),
            Some("0100686209-199")
        );
        assert_eq!(Profile::Enveloped.declared_tax_code(&doc), None);
    }
}
