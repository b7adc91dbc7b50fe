//! XML-DSig (<https://www.w3.org/TR/xmldsig-core1/>): checking one `ds:Signature` and building
//! one by splicing it into the unchanged input bytes.
//!
//! Supported: same-document references (`URI=""` and `URI="#id"`, resolved only through the
//! ID attributes the caller declares), the enveloped-signature transform (or its XPath form
//! `not(ancestor-or-self::ds:Signature)`) followed by at most one canonicalization, SHA-1
//! (reported weak), SHA-224/256/384/512, RSA PKCS#1 v1.5, RSASSA-PSS with MGF1 (RFC 9231
//! §2.3.10 identifiers), ECDSA and DSA (SignatureValue is r‖s, RFC 4050 / RFC 9231 §2.3.6),
//! X.509 certificates in KeyInfo/X509Data in any order (the signer's is the one whose key
//! verifies), certificates the caller supplies, and bare KeyValue keys (RSA, DSA, EC), which
//! prove integrity but name no signer. Other XPath, XSLT and base64 transforms and external
//! URIs are refused; HMAC has no signer and is reported as not verifiable, and HMAC output
//! truncation is refused. Trust, revocation and the profile rules are left to the callers
//! (`verify::xml`, [`super::profile`]).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::x509::X509;
use roxmltree::{Node, NodeId};
use time::OffsetDateTime;

use super::c14n::{self, Method, Subset};
use super::parse::{element_path, Parsed};
use super::XmlError;
use crate::pki::alg::{DigestAlgorithm, SignatureScheme};

/// The XML-DSig namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// The enveloped-signature transform.
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A DigestMethod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XmlDigest {
    /// SHA-1: verified but reported as weak.
    Sha1,
    /// SHA-224 (RFC 9231 §2.1.2).
    Sha224,
    /// A SHA-2 digest.
    Sha2(DigestAlgorithm),
}

impl XmlDigest {
    /// Recognises a DigestMethod URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        Some(match uri {
            "http://www.w3.org/2000/09/xmldsig#sha1" => Self::Sha1,
            "http://www.w3.org/2001/04/xmldsig-more#sha224" => Self::Sha224,
            "http://www.w3.org/2001/04/xmlenc#sha256" => Self::Sha2(DigestAlgorithm::Sha256),
            "http://www.w3.org/2001/04/xmldsig-more#sha384" => Self::Sha2(DigestAlgorithm::Sha384),
            "http://www.w3.org/2001/04/xmlenc#sha512" => Self::Sha2(DigestAlgorithm::Sha512),
            _ => return None,
        })
    }

    /// The URI of a SHA-2 DigestMethod.
    pub fn uri(d: DigestAlgorithm) -> &'static str {
        match d {
            DigestAlgorithm::Sha256 => "http://www.w3.org/2001/04/xmlenc#sha256",
            DigestAlgorithm::Sha384 => "http://www.w3.org/2001/04/xmldsig-more#sha384",
            DigestAlgorithm::Sha512 => "http://www.w3.org/2001/04/xmlenc#sha512",
        }
    }

    fn md(self) -> MessageDigest {
        match self {
            Self::Sha1 => MessageDigest::sha1(),
            Self::Sha224 => MessageDigest::sha224(),
            Self::Sha2(d) => d.message_digest(),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 | Self::Sha224 => openssl::hash::hash(self.md(), data)
                .map(|d| d.to_vec())
                .unwrap_or_default(),
            Self::Sha2(d) => d.digest(data),
        }
    }
}

/// A SignatureMethod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XmlSignatureMethod {
    /// RSASSA-PKCS1-v1_5.
    Rsa(XmlDigest),
    /// RSASSA-PSS, MGF1 with the same digest, salt as long as the digest.
    RsaPss(XmlDigest),
    /// ECDSA, value r‖s.
    Ecdsa(XmlDigest),
    /// DSA, value r‖s.
    Dsa(XmlDigest),
    /// HMAC: a shared secret, no signer; never verified.
    Hmac,
}

impl XmlSignatureMethod {
    /// Recognises a SignatureMethod URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        use DigestAlgorithm::*;
        let s2 = XmlDigest::Sha2;
        Some(match uri {
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1" => Self::Rsa(XmlDigest::Sha1),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => Self::Rsa(s2(Sha256)),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => Self::Rsa(s2(Sha384)),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => Self::Rsa(s2(Sha512)),
            "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1" => Self::RsaPss(s2(Sha256)),
            "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1" => Self::RsaPss(s2(Sha384)),
            "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1" => Self::RsaPss(s2(Sha512)),
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1" => Self::Ecdsa(XmlDigest::Sha1),
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => Self::Ecdsa(s2(Sha256)),
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => Self::Ecdsa(s2(Sha384)),
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512" => Self::Ecdsa(s2(Sha512)),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha224" => Self::Rsa(XmlDigest::Sha224),
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha224" => Self::Ecdsa(XmlDigest::Sha224),
            "http://www.w3.org/2000/09/xmldsig#dsa-sha1" => Self::Dsa(XmlDigest::Sha1),
            "http://www.w3.org/2009/xmldsig11#dsa-sha256" => Self::Dsa(s2(Sha256)),
            "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
            | "http://www.w3.org/2001/04/xmldsig-more#hmac-sha224"
            | "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
            | "http://www.w3.org/2001/04/xmldsig-more#hmac-sha384"
            | "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512" => Self::Hmac,
            _ => return None,
        })
    }

    /// The URI for a scheme signgate signs with.
    pub fn uri(scheme: SignatureScheme) -> &'static str {
        use DigestAlgorithm::*;
        match scheme {
            SignatureScheme::RsaPkcs1(Sha256) => {
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
            }
            SignatureScheme::RsaPkcs1(Sha384) => {
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
            }
            SignatureScheme::RsaPkcs1(Sha512) => {
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
            }
            SignatureScheme::RsaPss(Sha256) => {
                "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
            }
            SignatureScheme::RsaPss(Sha384) => {
                "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1"
            }
            SignatureScheme::RsaPss(Sha512) => {
                "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1"
            }
            SignatureScheme::Ecdsa(Sha256) => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            SignatureScheme::Ecdsa(Sha384) => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
            SignatureScheme::Ecdsa(Sha512) => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
        }
    }

    fn digest(self) -> XmlDigest {
        match self {
            Self::Rsa(d) | Self::RsaPss(d) | Self::Ecdsa(d) | Self::Dsa(d) => d,
            Self::Hmac => XmlDigest::Sha1,
        }
    }
}

/// ID attribute values → elements. Built once per document; a value seen twice is refused.
pub struct IdIndex {
    map: HashMap<String, NodeId>,
}

impl IdIndex {
    /// Indexes unqualified attributes named in `names` on any element, plus `Id` on XML-DSig
    /// elements (the schema types those as ID). Any value occurring twice → `XML_DUPLICATE_ID`.
    pub fn build(doc: &roxmltree::Document<'_>, names: &[&str]) -> Result<Self, XmlError> {
        let mut map = HashMap::new();
        for node in doc.descendants().filter(|n| n.is_element()) {
            let is_ds = node.tag_name().namespace() == Some(DSIG_NS);
            for a in node.attributes() {
                if a.namespace().is_some() {
                    continue;
                }
                if (names.contains(&a.name()) || (is_ds && a.name() == "Id"))
                    && map.insert(a.value().to_string(), node.id()).is_some()
                {
                    return Err(XmlError::DuplicateId(a.value().to_string()));
                }
            }
        }
        Ok(Self { map })
    }

    /// [`IdIndex::build`] for a verifier: a value occurring twice is left out of the index
    /// and returned, so that only a reference to it (an ambiguous target) is refused.
    pub fn build_tolerant(doc: &roxmltree::Document<'_>, names: &[&str]) -> (Self, Vec<String>) {
        let mut map = HashMap::new();
        let mut ambiguous = Vec::new();
        for node in doc.descendants().filter(|n| n.is_element()) {
            let is_ds = node.tag_name().namespace() == Some(DSIG_NS);
            for a in node.attributes() {
                if a.namespace().is_none()
                    && (names.contains(&a.name()) || (is_ds && a.name() == "Id"))
                    && map.insert(a.value().to_string(), node.id()).is_some()
                {
                    ambiguous.push(a.value().to_string());
                }
            }
        }
        for value in &ambiguous {
            map.remove(value);
        }
        (Self { map }, ambiguous)
    }

    /// The element carrying ID `value`.
    pub fn get(&self, value: &str) -> Option<NodeId> {
        self.map.get(value).copied()
    }

    /// True when `value` is already taken.
    pub fn contains(&self, value: &str) -> bool {
        self.map.contains_key(value)
    }
}

/// The outcome of one Reference.
#[derive(Debug, Clone)]
pub struct ReferenceCheck {
    /// The URI attribute as written.
    pub uri: String,
    /// The element referenced (the root element for `URI=""`).
    pub target: Option<NodeId>,
    /// `URI=""`: the whole document (minus the signature, when enveloped).
    pub whole_document: bool,
    /// Path of the referenced element, e.g. `/HSoThueDTu/HSoKhaiThue`.
    pub element_path: Option<String>,
    /// The target lies inside this signature (a signed property such as SigningTime).
    pub inside_signature: bool,
    /// The digest matches.
    pub digest_ok: bool,
    /// Why the reference could not be processed, if so.
    pub problem: Option<String>,
    /// The reference is to content outside the document, which the caller supplied.
    pub external: bool,
}

/// What checking one `ds:Signature` found (cryptography only; no trust, no profile).
#[derive(Debug)]
pub struct SignatureCheck {
    /// The Signature element.
    pub node: NodeId,
    /// Its `Id`, if any.
    pub id: Option<String>,
    /// Path of the Signature element.
    pub path: String,
    /// Every Reference, in order.
    pub references: Vec<ReferenceCheck>,
    /// The SignatureValue verifies over the canonical SignedInfo with the certificate's key.
    pub signature_ok: bool,
    /// The signer's certificate from KeyInfo/X509Data.
    pub certificate: Option<X509>,
    /// Every certificate in KeyInfo.
    pub embedded: Vec<X509>,
    /// A SigningTime covered by a valid reference.
    pub claimed_time: Option<OffsetDateTime>,
    /// Weak algorithms used.
    pub weak: Vec<String>,
    /// Structural problems.
    pub format_errors: Vec<String>,
    /// The decoded SignatureValue.
    pub signature_value: Vec<u8>,
    /// The value was checked with a bare KeyValue key: integrity is known, the signer is not.
    pub key_only: bool,
    /// Why the value cannot be checked at all (HMAC: a shared secret, no signer).
    pub unsupported: Option<String>,
}

impl SignatureCheck {
    /// Every reference's digest matches (and there is at least one).
    pub fn digests_ok(&self) -> bool {
        !self.references.is_empty() && self.references.iter().all(|r| r.digest_ok)
    }
}

/// The XML-DSig child `local` of `node` (first one).
pub fn ds_child<'a, 'i>(node: Node<'a, 'i>, local: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.has_tag_name((DSIG_NS, local)))
}

fn ds_children<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.has_tag_name((DSIG_NS, local)))
}

/// Every `ds:Signature` element of the document, in document order.
pub fn find_signatures<'a, 'i>(doc: &'a roxmltree::Document<'i>) -> Vec<Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.is_element() && n.has_tag_name((DSIG_NS, "Signature")))
        .collect()
}

fn is_inside(node: Node<'_, '_>, ancestor: NodeId) -> bool {
    node.ancestors().any(|a| a.id() == ancestor)
}

fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    B64.decode(clean).ok()
}

/// Processes one Reference: resolve, transform, canonicalize, hash. Returns the check and
/// the computed digest (the signer uses the digest; the verifier compares it).
pub fn process_reference(
    parsed: &Parsed<'_>,
    ids: &IdIndex,
    signature: Node<'_, '_>,
    reference: Node<'_, '_>,
) -> (ReferenceCheck, Option<Vec<u8>>) {
    process_reference_with(parsed, ids, signature, reference, None)
}

/// [`process_reference`] where a reference to anything but the document itself takes
/// `detached` (content the caller supplies; nothing is ever fetched) as its target.
pub fn process_reference_with(
    parsed: &Parsed<'_>,
    ids: &IdIndex,
    signature: Node<'_, '_>,
    reference: Node<'_, '_>,
    detached: Option<&[u8]>,
) -> (ReferenceCheck, Option<Vec<u8>>) {
    let uri = reference.attribute("URI").unwrap_or("").to_string();
    let mut check = ReferenceCheck {
        uri: uri.clone(),
        target: None,
        whole_document: false,
        element_path: None,
        inside_signature: false,
        digest_ok: false,
        problem: None,
        external: false,
    };
    let fail = |mut c: ReferenceCheck, why: String| {
        c.problem = Some(why);
        (c, None)
    };
    if reference.attribute("URI").is_none() {
        return fail(check, "Reference without URI is not supported".into());
    }
    let doc = &parsed.doc;
    // XML-DSig §4.4.3.3: `#xpointer(/)` and `#xpointer(id('ID'))` select what `""` and `#ID`
    // select, but keep the comment nodes in the node-set.
    let xpointer = xpointer_target(&uri);
    let keep_comments = xpointer.is_some();
    let target = if uri.is_empty() || xpointer == Some(XPointer::Root) {
        check.whole_document = true;
        doc.root_element()
    } else if let Some(id) = match xpointer {
        Some(XPointer::Id(id)) => Some(id),
        _ => uri
            .strip_prefix('#')
            .filter(|id| !id.starts_with("xpointer(")),
    } {
        match ids.get(id).and_then(|n| doc.get_node(n)) {
            Some(n) => n,
            None => return fail(check, format!("URI {uri} does not resolve to an element")),
        }
    } else if let (Some(content), false) = (detached, uri.starts_with('#')) {
        check.external = true;
        check.element_path = Some(uri.clone());
        return match detached_digest(reference, content) {
            Ok((claimed, computed)) => {
                check.digest_ok = claimed.as_deref() == Some(computed.as_slice());
                (check, Some(computed))
            }
            Err(why) => fail(check, why),
        };
    } else {
        return fail(
            check,
            format!("URI {uri} is not a same-document reference signgate accepts"),
        );
    };
    check.target = Some(target.id());
    check.element_path = Some(element_path(target));
    check.inside_signature = target.id() == signature.id() || is_inside(target, signature.id());

    let mut enveloped = false;
    let mut all_signatures_out = false;
    let mut base64 = false;
    let mut filters: Vec<super::filter2::Filters> = Vec::new();
    let mut method: Option<Method> = None;
    if let Some(transforms) = ds_child(reference, "Transforms") {
        for t in transforms.children().filter(|c| c.is_element()) {
            if !t.has_tag_name((DSIG_NS, "Transform")) {
                return fail(check, "unexpected element in Transforms".into());
            }
            let alg = t.attribute("Algorithm").unwrap_or("");
            if alg == ENVELOPED {
                if enveloped || method.is_some() {
                    return fail(check, "enveloped-signature transform out of order".into());
                }
                enveloped = true;
            } else if alg == super::filter2::ALGORITHM {
                if method.is_some() || base64 {
                    return fail(check, "XPath Filter 2.0 after canonicalization".into());
                }
                match super::filter2::Filters::read(t) {
                    Ok(f) => filters.push(f),
                    Err(why) => return fail(check, why.to_string()),
                }
            } else if alg == BASE64 {
                if base64 {
                    return fail(check, "more than one base64 transform".into());
                }
                base64 = true;
            } else if alg == XPATH {
                if method.is_some() || !excludes_signatures(t) {
                    return fail(
                        check,
                        "only the XPath not(ancestor-or-self::ds:Signature) is supported".into(),
                    );
                }
                all_signatures_out = true;
            } else if let Some(m) = Method::from_uri(alg, inclusive_prefixes(t)) {
                if method.is_some() {
                    return fail(check, "more than one canonicalization transform".into());
                }
                method = Some(m);
            } else {
                return fail(check, format!("transform {alg} is not supported"));
            }
        }
    }
    if base64 && (method.is_some() || enveloped || all_signatures_out) {
        return fail(
            check,
            "the base64 transform must be the only transform".into(),
        );
    }
    let method = method
        .unwrap_or_else(|| Method::from_uri(c14n::C14N10, Vec::new()).expect("C14N 1.0 is known"));
    let Some(digest_method) = ds_child(reference, "DigestMethod")
        .and_then(|d| d.attribute("Algorithm"))
        .and_then(XmlDigest::from_uri)
    else {
        return fail(check, "DigestMethod missing or not supported".into());
    };
    let claimed = ds_child(reference, "DigestValue")
        .map(super::signed_text)
        .and_then(|t| b64_decode(&t));
    if base64 {
        // The decoded text of the target (XML-DSig §6.6.2).
        let Some(octets) = b64_decode(&super::signed_text(target)) else {
            return fail(check, "the base64 transform's input is not base64".into());
        };
        let computed = digest_method.hash(&octets);
        check.digest_ok = claimed.as_deref() == Some(computed.as_slice());
        return (check, Some(computed));
    }
    let apex = if check.whole_document {
        doc.root()
    } else {
        target
    };
    let exclude = (enveloped && is_inside(signature, target.id())).then(|| signature.id());
    let mut all_signatures: Vec<NodeId> = Vec::new();
    if all_signatures_out {
        all_signatures.extend(
            apex.descendants()
                .filter(|n| n.is_element() && n.has_tag_name((DSIG_NS, "Signature")))
                .map(|n| n.id()),
        );
    }
    let octets = if enveloped && check.inside_signature {
        // The enveloped-signature transform removes the whole signature, and with it a
        // target inside it: nothing is left (XML-DSig §6.6.4).
        Ok(Vec::new())
    } else if filters.is_empty() {
        let subset = Subset {
            apex,
            exclude,
            comments: keep_comments,
        };
        c14n::canonicalize_excluding(parsed.text, subset, &method, &all_signatures)
    } else {
        all_signatures.extend(exclude);
        filtered_octets(
            parsed.text,
            apex,
            &all_signatures,
            &filters,
            &method,
            keep_comments,
        )
        .map(|(octets, heads)| {
            // What the reference really covers: the heads of the kept branches.
            check.inside_signature = !heads.is_empty()
                && heads
                    .iter()
                    .all(|h| h.id() == signature.id() || is_inside(*h, signature.id()));
            if !heads.is_empty() {
                check.whole_document = false;
                check.target = Some(heads[0].id());
                check.element_path = Some(
                    heads
                        .iter()
                        .map(|h| element_path(*h))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            octets
        })
    };
    let octets = match octets {
        Ok(o) => o,
        Err(e) => return fail(check, e.to_string()),
    };
    let computed = digest_method.hash(&octets);
    check.digest_ok = claimed.as_deref() == Some(computed.as_slice());
    (check, Some(computed))
}

/// A same-document XPointer reference of the two forms XML-DSig §4.4.3.3 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XPointer<'u> {
    /// `#xpointer(/)`: the whole document, comments included.
    Root,
    /// `#xpointer(id('ID'))`: the element with that ID, comments included.
    Id(&'u str),
}

/// Reads `uri` as one of the XPointer forms of [`XPointer`]; any other XPointer is refused
/// by the caller as an unsupported reference.
fn xpointer_target(uri: &str) -> Option<XPointer<'_>> {
    let inner = uri.strip_prefix("#xpointer(")?.strip_suffix(')')?;
    if inner == "/" {
        return Some(XPointer::Root);
    }
    let id = inner.strip_prefix("id(")?.strip_suffix(')')?;
    let id = id
        .strip_prefix('\'')
        .and_then(|i| i.strip_suffix('\''))
        .or_else(|| id.strip_prefix('"').and_then(|i| i.strip_suffix('"')))?;
    (!id.is_empty()).then_some(XPointer::Id(id))
}

/// The canonical form of the node-set that XPath Filter 2.0 `filters` leave of the subtree
/// of `apex` without the subtrees of `excluded`, and the elements that head its kept
/// branches.
fn filtered_octets<'a, 'i>(
    text: &str,
    apex: Node<'a, 'i>,
    excluded: &[NodeId],
    filters: &[super::filter2::Filters],
    method: &Method,
    comments: bool,
) -> Result<(Vec<u8>, Vec<Node<'a, 'i>>), XmlError> {
    let kept = |e: Node<'_, '_>| filters.iter().all(|f| f.keeps(e));
    let in_input = |e: Node<'_, '_>| !e.ancestors().any(|a| excluded.contains(&a.id()));
    if !in_input(apex) {
        // The enveloped signature took the whole input away (a reference into it).
        return Ok((Vec::new(), Vec::new()));
    }
    let elements: Vec<Node<'a, 'i>> = apex
        .descendants()
        .filter(|n| n.is_element() && in_input(*n))
        .collect();
    let omitted: Vec<NodeId> = elements
        .iter()
        .filter(|e| !kept(**e))
        .map(|e| e.id())
        .collect();
    let heads: Vec<Node<'a, 'i>> = elements
        .iter()
        .filter(|e| kept(**e))
        .filter(|e| {
            e.id() == apex.id()
                || match e.parent_element() {
                    None => true,
                    Some(p) => {
                        omitted.contains(&p.id())
                            || (p.id() != apex.id() && !is_inside(p, apex.id()))
                    }
                }
        })
        .copied()
        .collect();
    let subset = Subset {
        apex,
        exclude: None,
        comments,
    };
    let octets = c14n::canonicalize_filtered(text, subset, method, excluded, &omitted)?;
    Ok((octets, heads))
}

/// The OPC Relationship transform (ECMA-376 Part 2 §13.2.4.24).
const RELATIONSHIP_TRANSFORM: &str =
    "http://schemas.openxmlformats.org/package/2006/RelationshipTransform";
/// The OPC relationships namespace.
const RELATIONSHIPS_NS: &str = "http://schemas.openxmlformats.org/package/2006/relationships";

/// The canonical form of the Relationship transform's output over a `.rels` part: the
/// relationships the transform selects (by `SourceId` or `SourceType`), sorted by Id, with
/// `TargetMode="Internal"` made explicit and everything else (text, other elements) dropped.
fn relationship_transform(transform: Node<'_, '_>, content: &[u8]) -> Result<Vec<u8>, String> {
    let ids: Vec<&str> = transform
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "RelationshipReference")
        .filter_map(|c| c.attribute("SourceId"))
        .collect();
    let types: Vec<&str> = transform
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "RelationshipsGroupReference")
        .filter_map(|c| c.attribute("SourceType"))
        .collect();
    let parsed = super::parse::parse(content, &super::Limits::default())
        .map_err(|e| format!("relationships part: {e}"))?;
    let root = parsed.doc.root_element();
    if !root.has_tag_name((RELATIONSHIPS_NS, "Relationships")) {
        return Err("the Relationship transform's input is not a Relationships part".into());
    }
    let mut selected: Vec<Vec<(String, String)>> = Vec::new();
    for rel in root
        .children()
        .filter(|c| c.has_tag_name((RELATIONSHIPS_NS, "Relationship")))
    {
        let id = rel.attribute("Id").unwrap_or("");
        let kind = rel.attribute("Type").unwrap_or("");
        if !ids.contains(&id) && !types.contains(&kind) {
            continue;
        }
        if rel.attributes().any(|a| a.namespace().is_some()) {
            return Err("a Relationship with namespaced attributes is not supported".into());
        }
        let mut attrs: Vec<(String, String)> = rel
            .attributes()
            .map(|a| (a.name().to_string(), a.value().to_string()))
            .collect();
        if rel.attribute("TargetMode").is_none() {
            attrs.push(("TargetMode".into(), "Internal".into()));
        }
        attrs.sort();
        selected.push(attrs);
    }
    let id_of = |attrs: &Vec<(String, String)>| {
        attrs
            .iter()
            .find(|(n, _)| n == "Id")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    selected.sort_by_key(id_of);
    let mut out = format!("<Relationships xmlns=\"{RELATIONSHIPS_NS}\">").into_bytes();
    for attrs in selected {
        out.extend_from_slice(b"<Relationship");
        for (name, value) in attrs {
            out.extend_from_slice(format!(" {name}=\"").as_bytes());
            c14n::escape_attribute(&mut out, &value);
            out.push(b'"');
        }
        out.extend_from_slice(b"></Relationship>");
    }
    out.extend_from_slice(b"</Relationships>");
    Ok(out)
}

/// The base64 transform (XML-DSig §6.6.2).
const BASE64: &str = "http://www.w3.org/2000/09/xmldsig#base64";

/// (claimed, computed) digests of a reference to caller-supplied content: the bytes as
/// they are, or, after a canonicalization transform, the canonical form of them as XML.
fn detached_digest(
    reference: Node<'_, '_>,
    content: &[u8],
) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
    let mut method = None;
    let mut relationships = None;
    if let Some(transforms) = ds_child(reference, "Transforms") {
        for t in transforms.children().filter(|c| c.is_element()) {
            let alg = t.attribute("Algorithm").unwrap_or("");
            if alg == RELATIONSHIP_TRANSFORM && method.is_none() && relationships.is_none() {
                relationships = Some(t);
                continue;
            }
            match Method::from_uri(alg, inclusive_prefixes(t)) {
                Some(m) if method.is_none() => method = Some(m),
                _ => {
                    return Err(format!(
                        "transform {alg} on detached content is not supported"
                    ))
                }
            }
        }
    }
    if let Some(transform) = relationships {
        let digest = ds_child(reference, "DigestMethod")
            .and_then(|d| d.attribute("Algorithm"))
            .and_then(XmlDigest::from_uri)
            .ok_or("DigestMethod missing or not supported")?;
        let claimed = ds_child(reference, "DigestValue")
            .map(super::signed_text)
            .and_then(|t| b64_decode(&t));
        return Ok((
            claimed,
            digest.hash(&relationship_transform(transform, content)?),
        ));
    }
    let digest = ds_child(reference, "DigestMethod")
        .and_then(|d| d.attribute("Algorithm"))
        .and_then(XmlDigest::from_uri)
        .ok_or("DigestMethod missing or not supported")?;
    let octets = match method {
        None => content.to_vec(),
        Some(m) => {
            let doc = super::parse::parse(content, &super::Limits::default())
                .map_err(|e| format!("detached content: {e}"))?;
            let subset = Subset {
                apex: doc.doc.root(),
                exclude: None,
                comments: false,
            };
            c14n::canonicalize(doc.text, subset, &m).map_err(|e| e.to_string())?
        }
    };
    let claimed = ds_child(reference, "DigestValue")
        .map(super::signed_text)
        .and_then(|t| b64_decode(&t));
    Ok((claimed, digest.hash(&octets)))
}

/// The XPath 1.0 transform.
const XPATH: &str = "http://www.w3.org/TR/1999/REC-xpath-19991116";

/// Whether an XPath transform is `not(ancestor-or-self::P:Signature)` with `P` bound to the
/// XML-DSig namespace: every signature left out, the rest of the node-set kept.
fn excludes_signatures(transform: Node<'_, '_>) -> bool {
    let Some(xpath) = transform
        .children()
        .find(|c| c.is_element() && c.tag_name().name() == "XPath")
    else {
        return false;
    };
    let text: String = super::signed_text(xpath)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let Some(prefix) = text
        .strip_prefix("not(ancestor-or-self::")
        .and_then(|rest| rest.strip_suffix(":Signature)"))
    else {
        return false;
    };
    xpath.lookup_namespace_uri(Some(prefix)) == Some(DSIG_NS)
}

fn inclusive_prefixes(node: Node<'_, '_>) -> Vec<String> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == "InclusiveNamespaces")
        .and_then(|n| n.attribute("PrefixList"))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// Why a Signature's SignedInfo cannot be canonicalized or its value checked; recorded as a
/// format error of the signature, not raised.
#[derive(Debug, thiserror::Error)]
pub enum SignedInfoProblem {
    /// No SignedInfo element.
    #[error("no SignedInfo")]
    NoSignedInfo,
    /// More than one SignedInfo element.
    #[error("more than one SignedInfo")]
    SeveralSignedInfo,
    /// No CanonicalizationMethod element.
    #[error("no CanonicalizationMethod")]
    NoCanonicalizationMethod,
    /// A canonicalization algorithm this build does not implement.
    #[error("CanonicalizationMethod {0} is not supported")]
    Canonicalization(String),
    /// A signature algorithm this build does not implement.
    #[error("SignatureMethod {0} is not supported")]
    SignatureMethod(String),
    /// The signature algorithm does not fit the certificate's key type.
    #[error("SignatureMethod {0:?} does not fit the certificate's key")]
    KeyMismatch(XmlSignatureMethod),
    /// Canonicalizing the SignedInfo failed.
    #[error(transparent)]
    C14n(#[from] XmlError),
    /// OpenSSL refused the signature value or the verifier settings.
    #[error("{0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// The canonical SignedInfo and its SignatureMethod.
pub fn canonical_signed_info(
    parsed: &Parsed<'_>,
    signature: Node<'_, '_>,
) -> Result<(Vec<u8>, XmlSignatureMethod), SignedInfoProblem> {
    canonical_signed_info_filled(parsed, signature, &[])
}

/// [`canonical_signed_info`] with the empty elements of `fills` holding their text (see
/// [`c14n::canonicalize_filled`]).
fn canonical_signed_info_filled(
    parsed: &Parsed<'_>,
    signature: Node<'_, '_>,
    fills: &[(NodeId, &str)],
) -> Result<(Vec<u8>, XmlSignatureMethod), SignedInfoProblem> {
    let signed_info = ds_child(signature, "SignedInfo").ok_or(SignedInfoProblem::NoSignedInfo)?;
    if ds_children(signature, "SignedInfo").count() != 1 {
        return Err(SignedInfoProblem::SeveralSignedInfo);
    }
    let cm = ds_child(signed_info, "CanonicalizationMethod")
        .ok_or(SignedInfoProblem::NoCanonicalizationMethod)?;
    let cm_uri = cm.attribute("Algorithm").unwrap_or("");
    let method = Method::from_uri(cm_uri, inclusive_prefixes(cm))
        .ok_or_else(|| SignedInfoProblem::Canonicalization(cm_uri.to_string()))?;
    let sm_uri = ds_child(signed_info, "SignatureMethod")
        .and_then(|s| s.attribute("Algorithm"))
        .unwrap_or("");
    let sm = XmlSignatureMethod::from_uri(sm_uri)
        .ok_or_else(|| SignedInfoProblem::SignatureMethod(sm_uri.to_string()))?;
    let subset = Subset {
        apex: signed_info,
        exclude: None,
        comments: true,
    };
    let octets = c14n::canonicalize_filled(parsed.text, subset, &method, fills)?;
    Ok((octets, sm))
}

/// Checks one Signature element: references, SignedInfo signature value, KeyInfo certificate.
pub fn check_signature(
    parsed: &Parsed<'_>,
    ids: &IdIndex,
    signature: Node<'_, '_>,
) -> SignatureCheck {
    check_signature_with(parsed, ids, signature, &[], None)
}

/// [`check_signature`], looking for the signer's certificate also among `extra` (KeyInfo
/// that only names it: X509SKI, X509IssuerSerial, X509SubjectName, KeyName, a KeyValue),
/// with `detached` as the content of references outside the document.
pub fn check_signature_with(
    parsed: &Parsed<'_>,
    ids: &IdIndex,
    signature: Node<'_, '_>,
    extra: &[X509],
    detached: Option<&[u8]>,
) -> SignatureCheck {
    let mut check = SignatureCheck {
        node: signature.id(),
        id: signature.attribute("Id").map(String::from),
        path: element_path(signature),
        references: Vec::new(),
        signature_ok: false,
        certificate: None,
        embedded: Vec::new(),
        claimed_time: None,
        weak: Vec::new(),
        format_errors: Vec::new(),
        signature_value: Vec::new(),
        key_only: false,
        unsupported: None,
    };
    let signed_info = ds_child(signature, "SignedInfo");
    if let Some(si) = signed_info {
        for r in ds_children(si, "Reference") {
            let (rc, _) = process_reference_with(parsed, ids, signature, r, detached);
            if let Some(p) = &rc.problem {
                check
                    .format_errors
                    .push(format!("Reference {}: {p}", rc.uri));
            }
            if ds_child(r, "DigestMethod").and_then(|d| d.attribute("Algorithm"))
                == Some("http://www.w3.org/2000/09/xmldsig#sha1")
            {
                check.weak.push("digest algorithm SHA-1".into());
            }
            // XAdES signed properties belong to this signature; elsewhere they are a
            // wrapping attack's decoy or its hidden original.
            if r.attribute("Type")
                .is_some_and(|t| t.ends_with("#SignedProperties"))
                && rc.target.is_some()
                && !rc.inside_signature
            {
                check
                    .format_errors
                    .push("the SignedProperties reference points outside the signature".into());
            }
            check.references.push(rc);
        }
    }
    if check.references.is_empty() {
        check
            .format_errors
            .push("SignedInfo has no Reference".into());
    }
    let preferred;
    (check.embedded, preferred) = key_info_certificates(signature, &mut check.format_errors);
    check.signature_value = ds_child(signature, "SignatureValue")
        .map(super::signed_text)
        .and_then(|t| b64_decode(&t))
        .unwrap_or_default();
    let (octets, method) = match canonical_signed_info(parsed, signature) {
        Ok(v) => v,
        Err(why) => {
            check.format_errors.push(why.to_string());
            check.certificate = preferred;
            return check;
        }
    };
    check.claimed_time = signed_signing_time(parsed, signature, &check.references);
    if method == XmlSignatureMethod::Hmac {
        check.unsupported =
            Some("an HMAC signature has no signer: its value cannot be verified".into());
        let truncated = signed_info
            .and_then(|si| ds_child(si, "SignatureMethod"))
            .and_then(|m| ds_child(m, "HMACOutputLength"))
            .is_some();
        if truncated {
            check
                .format_errors
                .push("HMACOutputLength (a truncated HMAC) is refused".into());
        }
        return check;
    }
    if method.digest() == XmlDigest::Sha1 {
        check.weak.push(format!("signature algorithm {method:?}"));
    }
    // The signer's certificate is the one whose key verifies: KeyInfo's preferred one first,
    // then the other embedded certificates, then those the caller supplies.
    let mut candidates: Vec<X509> = preferred.iter().cloned().collect();
    candidates.extend(check.embedded.iter().cloned());
    candidates.extend(extra.iter().cloned());
    let mut last_error = None;
    for cert in &candidates {
        let Ok(key) = cert.public_key() else { continue };
        match verify_value(&key, method, &octets, &check.signature_value) {
            Ok(true) => {
                check.signature_ok = true;
                check.certificate = Some(cert.clone());
                break;
            }
            Ok(false) => {}
            Err(why) => last_error = Some(why),
        }
    }
    if check.certificate.is_none() {
        check.certificate = preferred;
    }
    if !check.signature_ok && check.embedded.is_empty() {
        if let Some(key) = ds_child(signature, "KeyInfo").and_then(key_value) {
            match verify_value(&key, method, &octets, &check.signature_value) {
                Ok(ok) => {
                    check.signature_ok = ok;
                    check.key_only = check.certificate.is_none();
                }
                Err(why) => last_error = Some(why),
            }
        }
    }
    if let Some(cert) = &check.certificate {
        if let Ok(key) = cert.public_key() {
            if key.id() == openssl::pkey::Id::RSA && key.bits() < 2048 {
                check.weak.push(format!("RSA key of {} bits", key.bits()));
            }
        }
    }
    if !check.signature_ok && (check.certificate.is_some() || check.key_only) {
        check
            .format_errors
            .extend(last_error.map(|e| e.to_string()));
    }
    check
}

/// The public key of a KeyInfo/KeyValue: RSAKeyValue, DSAKeyValue or (XML-DSig 1.1)
/// ECKeyValue with a named curve.
fn key_value(key_info: Node<'_, '_>) -> Option<PKey<Public>> {
    use openssl::bn::BigNum;
    let value = ds_child(key_info, "KeyValue")?;
    let inner = value.children().find(|c| c.is_element())?;
    let field = |name: &str| -> Option<BigNum> {
        let node = inner
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == name)?;
        BigNum::from_slice(&b64_decode(&super::signed_text(node))?).ok()
    };
    match inner.tag_name().name() {
        "RSAKeyValue" => {
            let rsa =
                openssl::rsa::Rsa::from_public_components(field("Modulus")?, field("Exponent")?)
                    .ok()?;
            PKey::from_rsa(rsa).ok()
        }
        "DSAKeyValue" => {
            let dsa = openssl::dsa::Dsa::from_public_components(
                field("P")?,
                field("Q")?,
                field("G")?,
                field("Y")?,
            )
            .ok()?;
            PKey::from_dsa(dsa).ok()
        }
        "ECKeyValue" => {
            let curve = inner
                .children()
                .find(|c| c.is_element() && c.tag_name().name() == "NamedCurve")?
                .attribute("URI")?;
            let nid = match curve.strip_prefix("urn:oid:")? {
                "1.2.840.10045.3.1.7" => openssl::nid::Nid::X9_62_PRIME256V1,
                "1.3.132.0.34" => openssl::nid::Nid::SECP384R1,
                "1.3.132.0.35" => openssl::nid::Nid::SECP521R1,
                _ => return None,
            };
            let group = openssl::ec::EcGroup::from_curve_name(nid).ok()?;
            let point_node = inner
                .children()
                .find(|c| c.is_element() && c.tag_name().name() == "PublicKey")?;
            let bytes = b64_decode(&super::signed_text(point_node))?;
            let mut ctx = openssl::bn::BigNumContext::new().ok()?;
            let point = openssl::ec::EcPoint::from_bytes(&group, &bytes, &mut ctx).ok()?;
            let key = openssl::ec::EcKey::from_public_key(&group, &point).ok()?;
            PKey::from_ec_key(key).ok()
        }
        _ => None,
    }
}

/// Certificates of KeyInfo/X509Data; the signer is the one that issued none of the others.
fn key_info_certificates(
    signature: Node<'_, '_>,
    errors: &mut Vec<String>,
) -> (Vec<X509>, Option<X509>) {
    let Some(key_info) = ds_child(signature, "KeyInfo") else {
        return (Vec::new(), None);
    };
    let mut certs = Vec::new();
    for data in ds_children(key_info, "X509Data") {
        for c in ds_children(data, "X509Certificate") {
            match b64_decode(&super::signed_text(c))
                .and_then(|der| crate::pki::certs::from_der(&der))
            {
                Some(cert) => certs.push(cert),
                None => errors.push("an X509Certificate cannot be decoded".into()),
            }
        }
    }
    let issued_another = |c: &X509| {
        certs.iter().any(|o| {
            !std::ptr::eq(o, c)
                && o.issuer_name().to_der().ok() == c.subject_name().to_der().ok()
                && o.subject_name().to_der().ok() != c.subject_name().to_der().ok()
        })
    };
    let signer = certs
        .iter()
        .find(|c| !issued_another(c))
        .or(certs.first())
        .cloned();
    (certs, signer)
}

fn verify_value(
    key: &PKey<Public>,
    method: XmlSignatureMethod,
    data: &[u8],
    value: &[u8],
) -> Result<bool, SignedInfoProblem> {
    use openssl::pkey::Id;
    let md = method.digest().md();
    let fits = matches!(
        (method, key.id()),
        (
            XmlSignatureMethod::Rsa(_) | XmlSignatureMethod::RsaPss(_),
            Id::RSA
        ) | (XmlSignatureMethod::Ecdsa(_), Id::EC)
            | (XmlSignatureMethod::Dsa(_), Id::DSA)
    );
    if !fits {
        return Err(SignedInfoProblem::KeyMismatch(method));
    }
    let der;
    let value = if let XmlSignatureMethod::Ecdsa(_) | XmlSignatureMethod::Dsa(_) = method {
        if value.is_empty() || value.len() % 2 != 0 {
            return Ok(false);
        }
        let (r, s) = value.split_at(value.len() / 2);
        let pair = openssl::bn::BigNum::from_slice(r)
            .and_then(|r| openssl::bn::BigNum::from_slice(s).map(|s| (r, s)));
        let sig = if let XmlSignatureMethod::Dsa(_) = method {
            pair.and_then(|(r, s)| openssl::dsa::DsaSig::from_private_components(r, s))
                .and_then(|s| s.to_der())
        } else {
            pair.and_then(|(r, s)| openssl::ecdsa::EcdsaSig::from_private_components(r, s))
                .and_then(|s| s.to_der())
        }?;
        der = sig;
        der.as_slice()
    } else {
        value
    };
    let mut v = openssl::sign::Verifier::new(md, key)?;
    match method {
        XmlSignatureMethod::Rsa(_) => v.set_rsa_padding(openssl::rsa::Padding::PKCS1),
        XmlSignatureMethod::RsaPss(_) => v
            .set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)
            .and_then(|_| v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(-2)))
            .and_then(|_| v.set_rsa_mgf1_md(md)),
        XmlSignatureMethod::Ecdsa(_) | XmlSignatureMethod::Dsa(_) => Ok(()),
        XmlSignatureMethod::Hmac => return Err(SignedInfoProblem::KeyMismatch(method)),
    }?;
    Ok(v.verify_oneshot(value, data).unwrap_or(false))
}

/// The first SigningTime inside the signature that a valid reference covers.
fn signed_signing_time(
    parsed: &Parsed<'_>,
    signature: Node<'_, '_>,
    refs: &[ReferenceCheck],
) -> Option<OffsetDateTime> {
    let covered: Vec<NodeId> = refs
        .iter()
        .filter(|r| r.digest_ok && r.inside_signature)
        .filter_map(|r| r.target)
        .collect();
    let _ = parsed;
    signature
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "SigningTime")
        .find(|n| n.ancestors().any(|a| covered.contains(&a.id())))
        .map(super::signed_text)
        .and_then(|t| parse_time(&t))
}

/// RFC 3339, or `YYYY-MM-DDTHH:MM:SS` without an offset, read as Vietnam time (+07:00).
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    let t = text.trim();
    if let Ok(v) = OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
        return Some(v);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(t.get(..19)?, &fmt)
        .ok()
        .map(|p| p.assume_offset(crate::clock::VIETNAM))
}

// ---------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------

/// Where the Signature goes: `input[start..end]` is replaced by `before + Signature + after`.
#[derive(Debug, Clone)]
pub struct Splice {
    /// Byte offset in the input.
    pub start: usize,
    /// End of the replaced bytes (= `start` for a pure insertion).
    pub end: usize,
    /// Text before the Signature (`>` when a self-closing container is opened).
    pub before: String,
    /// Text after the Signature (`</Container>` when a self-closing container is opened).
    pub after: String,
}

/// One Reference to build.
#[derive(Debug, Clone)]
pub struct PlannedReference {
    /// `""` or `#id`.
    pub uri: String,
    /// Transform URIs, in order.
    pub transforms: Vec<String>,
}

/// Everything needed to build one Signature.
#[derive(Debug, Clone)]
pub struct SignaturePlan {
    /// Where it goes.
    pub splice: Splice,
    /// Document references, in order (the SigningTime object reference is added after).
    pub references: Vec<PlannedReference>,
    /// SignedInfo canonicalization.
    pub c14n: Method,
    /// The signature's Id.
    pub signature_id: String,
    /// Id of the Object carrying SigningTime; `None` for no SigningTime.
    pub time_object_id: Option<String>,
    /// Transforms on the SigningTime object reference.
    pub object_transforms: Vec<String>,
}

/// Who signs and how: what [`prepare`] needs of the key without using it.
pub struct Signer<'a> {
    /// The signer's certificate.
    pub certificate: &'a openssl::x509::X509Ref,
    /// Intermediate certificates to embed.
    pub chain: &'a [openssl::x509::X509],
    /// The key's algorithm (ECDSA values are converted to fixed-width r‖s by its size).
    pub algorithm: crate::pki::alg::KeyAlgorithm,
    /// The signature scheme.
    pub scheme: SignatureScheme,
    /// The certificate texts of [`SignerText::of`] this certificate and chain, when the caller
    /// keeps them across documents (a batch); none computes them for each document.
    pub text: Option<Arc<SignerText>>,
}

/// What a Signature carries of the signer's certificates, as text: the subject name (RFC 4514)
/// and every certificate in base64. The same for every document one key signs.
#[derive(Debug)]
pub struct SignerText {
    subject: String,
    cert_b64: Vec<String>,
}

impl SignerText {
    /// The texts of `certificate` and `chain`.
    pub fn of(
        certificate: &openssl::x509::X509Ref,
        chain: &[openssl::x509::X509],
    ) -> Result<Arc<Self>, XmlError> {
        let cert_b64 = std::iter::once(certificate)
            .chain(chain.iter().map(|c| c.as_ref()))
            .map(|c| c.to_der().map(|d| B64.encode(d)))
            .collect::<Result<_, _>>()
            .map_err(|e| XmlError::Malformed(format!("certificate cannot be encoded: {e}")))?;
        Ok(Arc::new(Self {
            subject: rfc4514(certificate.subject_name()),
            cert_b64,
        }))
    }
}

/// A Signature laid out over a document with every reference digest computed, waiting for
/// its value: the key signs [`PreparedSignature::signed_info`] (the canonical SignedInfo)
/// and [`PreparedSignature::finish`] splices the value in. Owns its input, so
/// the batch engine can hand it from the preparing thread to the key pool and back.
pub struct PreparedSignature {
    input: Vec<u8>,
    plan: SignaturePlan,
    refs: Vec<PlannedReference>,
    scheme: SignatureScheme,
    key_bits: u32,
    text: Arc<SignerText>,
    time_text: String,
    digests: Vec<String>,
    signed_info: Vec<u8>,
    limits: super::parse::Limits,
    id_names: Vec<&'static str>,
}

impl std::fmt::Debug for PreparedSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedSignature")
            .field("len", &self.input.len())
            .field("signature_id", &self.plan.signature_id)
            .finish_non_exhaustive()
    }
}

/// Lays out the Signature of `plan` over `input` for `signer` and computes every digest.
///
/// Two passes over the same splice, so every digest and the SignedInfo are computed by the
/// same code that verifies them, over the final document: the layout with empty
/// DigestValues gives the digests and then the canonical SignedInfo with the digests filled
/// in; [`PreparedSignature::finish`] splices the signature value and checks the result.
pub fn prepare(
    input: &[u8],
    plan: &SignaturePlan,
    signer: &Signer<'_>,
    signing_time: OffsetDateTime,
    limits: &super::parse::Limits,
    id_names: &[&'static str],
) -> Result<PreparedSignature, XmlError> {
    let text = match &signer.text {
        Some(text) => text.clone(),
        None => SignerText::of(signer.certificate, signer.chain)?,
    };
    let mut refs = plan.references.clone();
    if let Some(obj) = &plan.time_object_id {
        refs.push(PlannedReference {
            uri: format!("#{obj}"),
            transforms: plan.object_transforms.clone(),
        });
    }
    let mut prepared = PreparedSignature {
        input: input.to_vec(),
        plan: plan.clone(),
        refs,
        scheme: signer.scheme,
        key_bits: match signer.algorithm {
            crate::pki::alg::KeyAlgorithm::Ec { bits } => bits,
            crate::pki::alg::KeyAlgorithm::Rsa { bits } => bits,
        },
        text,
        time_text: crate::clock::display_time(signing_time),
        digests: Vec::new(),
        signed_info: Vec::new(),
        limits: *limits,
        id_names: id_names.to_vec(),
    };

    // Pass 1: digests over the final document, then the SignedInfo they go into.
    let draft = prepared.render("");
    let parsed = super::parse::parse(&draft, limits)?;
    let ids = IdIndex::build(&parsed.doc, id_names)?;
    let sig = own_signature(&parsed, &ids, &plan.signature_id)?;
    let si = ds_child(sig, "SignedInfo").ok_or_else(|| internal("no SignedInfo"))?;
    let mut digest_values = Vec::new();
    for r in ds_children(si, "Reference") {
        let value = ds_child(r, "DigestValue")
            .ok_or_else(|| internal("no DigestValue"))?
            .id();
        match process_reference(&parsed, &ids, sig, r) {
            (_, Some(d)) => digest_values.push((value, B64.encode(d))),
            (c, None) => return Err(internal(c.problem.unwrap_or_default())),
        }
    }
    let fills: Vec<(NodeId, &str)> = digest_values
        .iter()
        .map(|(id, text)| (*id, text.as_str()))
        .collect();
    let signed_info = canonical_signed_info_filled(&parsed, sig, &fills)
        .map_err(internal)?
        .0;
    prepared.digests = digest_values.into_iter().map(|(_, text)| text).collect();
    prepared.signed_info = signed_info;
    Ok(prepared)
}

fn internal(why: impl std::fmt::Display) -> XmlError {
    XmlError::Internal(why.to_string())
}

impl PreparedSignature {
    /// The canonical SignedInfo: the message the private key signs.
    pub fn signed_info(&self) -> &[u8] {
        &self.signed_info
    }

    /// Splices in the signature value (`raw` as [`crate::keys::KeySource::sign_message`]
    /// returns it) and returns the signed document, after checking it verifies (pass 3).
    pub fn finish(self, raw: &[u8]) -> Result<Vec<u8>, XmlError> {
        self.finish_checked(raw, true)
    }

    /// [`Self::finish`], re-parsing and verifying the result only when `recheck`. The batch
    /// engine rechecks a sample: every document is laid out by the same code over a layout
    /// whose digests were computed on the final splice, and the re-parse would cost as much
    /// as a third of the key operation.
    pub fn finish_checked(self, raw: &[u8], recheck: bool) -> Result<Vec<u8>, XmlError> {
        let value = match self.scheme {
            SignatureScheme::Ecdsa(_) => {
                ecdsa_der_to_raw(raw, self.key_bits.div_ceil(8) as usize).map_err(internal)?
            }
            _ => raw.to_vec(),
        };
        let out = self.render(&B64.encode(&value));
        if recheck {
            let parsed = super::parse::parse(&out, &self.limits)?;
            let ids = IdIndex::build(&parsed.doc, &self.id_names)?;
            let sig = own_signature(&parsed, &ids, &self.plan.signature_id)?;
            let check = check_signature(&parsed, &ids, sig);
            if !(check.digests_ok() && check.signature_ok) {
                return Err(internal(format!(
                    "the new signature does not verify: {:?}",
                    check.format_errors
                )));
            }
        }
        Ok(out)
    }

    /// The document with the Signature spliced in, carrying the digests computed so far and
    /// `value` as SignatureValue.
    fn render(&self, value: &str) -> Vec<u8> {
        let plan = &self.plan;
        let mut s = String::new();
        s.push_str(&format!(
            "<Signature xmlns=\"{DSIG_NS}\" Id=\"{}\"><SignedInfo><CanonicalizationMethod Algorithm=\"{}\"/><SignatureMethod Algorithm=\"{}\"/>",
            esc(&plan.signature_id),
            plan.c14n.uri(),
            XmlSignatureMethod::uri(self.scheme)
        ));
        for (i, r) in self.refs.iter().enumerate() {
            s.push_str(&format!("<Reference URI=\"{}\">", esc(&r.uri)));
            if !r.transforms.is_empty() {
                s.push_str("<Transforms>");
                for t in &r.transforms {
                    s.push_str(&format!("<Transform Algorithm=\"{t}\"/>"));
                }
                s.push_str("</Transforms>");
            }
            s.push_str(&format!(
                "<DigestMethod Algorithm=\"{}\"/><DigestValue>{}</DigestValue></Reference>",
                XmlDigest::uri(self.scheme.digest()),
                self.digests.get(i).map(String::as_str).unwrap_or("")
            ));
        }
        s.push_str(&format!(
            "</SignedInfo><SignatureValue>{value}</SignatureValue><KeyInfo><X509Data><X509SubjectName>{}</X509SubjectName>",
            esc(&self.text.subject)
        ));
        for c in &self.text.cert_b64 {
            s.push_str(&format!("<X509Certificate>{c}</X509Certificate>"));
        }
        s.push_str("</X509Data></KeyInfo>");
        if let Some(obj) = &plan.time_object_id {
            s.push_str(&format!(
                "<Object Id=\"{}\"><SignatureProperties><SignatureProperty Target=\"#{}\"><SigningTime>{}</SigningTime></SignatureProperty></SignatureProperties></Object>",
                esc(obj),
                esc(&plan.signature_id),
                self.time_text
            ));
        }
        s.push_str("</Signature>");
        let input = &self.input;
        let offset = if input.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        let sp = &plan.splice;
        let mut out = Vec::with_capacity(input.len() + s.len() + 64);
        out.extend_from_slice(&input[..offset + sp.start]);
        out.extend_from_slice(sp.before.as_bytes());
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(sp.after.as_bytes());
        out.extend_from_slice(&input[offset + sp.end..]);
        out
    }
}

fn own_signature<'a, 'i>(
    parsed: &'a Parsed<'i>,
    ids: &IdIndex,
    id: &str,
) -> Result<Node<'a, 'i>, XmlError> {
    ids.get(id)
        .and_then(|n| parsed.doc.get_node(n))
        .ok_or_else(|| XmlError::Internal("inserted Signature not found".into()))
}

/// DER `ECDSA-Sig-Value` → fixed-width r‖s (XML-DSig, RFC 4050).
pub fn ecdsa_der_to_raw(der: &[u8], width: usize) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let sig = openssl::ecdsa::EcdsaSig::from_der(der)?;
    let r = sig.r().to_vec_padded(width as i32)?;
    let s = sig.s().to_vec_padded(width as i32)?;
    Ok([r, s].concat())
}

/// Escapes text for an attribute or element value.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A distinguished name as an RFC 4514 string (most specific RDN first).
pub fn rfc4514(name: &openssl::x509::X509NameRef) -> String {
    let mut parts: Vec<String> = name
        .entries()
        .map(|e| {
            let key = match e.object().nid().short_name() {
                Ok(k) => k.to_string(),
                Err(_) => e.object().to_string(),
            };
            let value = e.data().to_string().unwrap_or_default();
            let mut escaped = String::new();
            for (i, ch) in value.chars().enumerate() {
                if matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
                    || (i == 0 && (ch == '#' || ch == ' '))
                {
                    escaped.push('\\');
                }
                escaped.push(ch);
            }
            format!("{key}={escaped}")
        })
        .collect();
    parts.reverse();
    parts.join(",")
}

#[cfg(test)]
mod xpointer_tests {
    use super::{xpointer_target, XPointer};

    #[test]
    fn reads_the_two_xpointer_forms_and_nothing_else() {
        assert_eq!(xpointer_target("#xpointer(/)"), Some(XPointer::Root));
        assert_eq!(
            xpointer_target("#xpointer(id('a1'))"),
            Some(XPointer::Id("a1"))
        );
        assert_eq!(
            xpointer_target("#xpointer(id(\"a1\"))"),
            Some(XPointer::Id("a1"))
        );
        for other in [
            "#a1",
            "",
            "#xpointer(//x)",
            "#xpointer(id(a1))",
            "#xpointer(id(''))",
        ] {
            assert_eq!(xpointer_target(other), None, "{other}");
        }
    }
}
