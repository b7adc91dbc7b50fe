//! The gateway's edXML schema, as a model checked without libxml2.
//!
//! `schemas/edxml-qcvn102.xsd` is the published form; [`validate`] applies the same rules to a
//! parsed document (a test feeds both the same corpus and requires the same verdicts from
//! this module and `xmllint --schema`). Element order and cardinalities follow the structure
//! observed in production implementations (vn-edoc-standards.md §a); the standard's own
//! cardinalities are unconfirmed, so the schema is the gateway's choice. Dates are accepted as
//! `yyyy/MM/dd` or `dd/MM/yyyy` (the pattern only; calendar validity is checked when parsing).
//!
//! The model is a tree of `static`s: every element is declared once with its attributes and
//! a sequence of children, so validation is one greedy pass (the schema has no ambiguous
//! particles) and its depth is bounded by the schema's, not the input's.

use roxmltree::Node;

use super::NS;
use crate::xml::dsig::DSIG_NS;

const XLINK_NS: &str = "http://www.w3.org/1999/xlink";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Where and how a document departs from the schema, e.g. `/Status/StatusCode: '1' is not a
/// valid status code`. EDXML_INVALID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaViolation(pub String);

/// The simple types of the schema.
#[derive(Debug, Clone, Copy)]
enum Text {
    /// `xs:string`.
    Any,
    /// `xs:string`, minLength 1.
    NonEmpty,
    /// `yyyy/MM/dd` or `dd/MM/yyyy`.
    Date,
    /// A date as above, a space and `HH:mm:ss`.
    DateTime,
    /// Two digits.
    StatusCode,
    /// One digit 0–3.
    DocType,
}

#[derive(Debug)]
enum Content {
    Text(Text),
    Complex(&'static Complex),
    /// Any element of the XML-DSig namespace, not checked (`processContents="skip"`).
    AnyDsig,
}

#[derive(Debug)]
struct Particle {
    name: &'static str,
    min: u32,
    max: u32,
    content: Content,
}

#[derive(Debug)]
struct Complex {
    /// Unqualified attributes: (name, required).
    attrs: &'static [(&'static str, bool)],
    /// Any attribute of the XLink namespace is allowed.
    xlink: bool,
    children: &'static [Particle],
}

const N: u32 = u32::MAX;

const fn t(name: &'static str, min: u32, max: u32, text: Text) -> Particle {
    Particle {
        name,
        min,
        max,
        content: Content::Text(text),
    }
}

const fn c(name: &'static str, min: u32, max: u32, complex: &'static Complex) -> Particle {
    Particle {
        name,
        min,
        max,
        content: Content::Complex(complex),
    }
}

const fn seq(children: &'static [Particle]) -> Complex {
    Complex {
        attrs: &[],
        xlink: false,
        children,
    }
}

use Text::*;

static ORGAN: Complex = seq(&[
    t("OrganId", 1, 1, NonEmpty),
    t("OrganizationInCharge", 0, 1, Any),
    t("OrganName", 1, 1, NonEmpty),
    t("OrganAdd", 0, 1, Any),
    t("Email", 0, 1, Any),
    t("Telephone", 0, 1, Any),
    t("Fax", 0, 1, Any),
    t("Website", 0, 1, Any),
]);
static CODE: Complex = seq(&[
    t("CodeNumber", 1, 1, NonEmpty),
    t("CodeNotation", 1, 1, Any),
]);
static PROMULGATION: Complex = seq(&[t("Place", 1, 1, Any), t("PromulgationDate", 1, 1, Date)]);
static DOCUMENT_TYPE: Complex = seq(&[
    t("Type", 1, 1, NonEmpty),
    t("TypeDetail", 0, 1, Any),
    t("TypeName", 0, 1, Any),
]);
static SIGNER: Complex = seq(&[
    t("Competence", 0, 1, Any),
    t("Position", 0, 1, Any),
    t("FullName", 1, 1, Any),
]);
static TO_PLACES: Complex = seq(&[t("Place", 0, N, Any)]);
static APPENDIXES: Complex = seq(&[t("Appendix", 0, N, Any)]);
static OTHER_INFO: Complex = seq(&[
    t("Priority", 0, 1, Any),
    t("SphereOfPromulgation", 0, 1, Any),
    t("TyperNotation", 0, 1, Any),
    t("PromulgationAmount", 0, 1, Any),
    t("PageAmount", 0, 1, Any),
    c("Appendixes", 0, 1, &APPENDIXES),
]);
static RESPONSE_FOR: Complex = seq(&[
    t("OrganId", 1, 1, NonEmpty),
    t("Code", 1, 1, Any),
    t("PromulgationDate", 1, 1, Date),
    t("DocumentId", 1, 1, NonEmpty),
]);
static MESSAGE_HEADER: Complex = Complex {
    attrs: &[("Id", false)],
    xlink: false,
    children: &[
        c("From", 1, 1, &ORGAN),
        c("To", 1, N, &ORGAN),
        c("Code", 1, 1, &CODE),
        c("PromulgationInfo", 1, 1, &PROMULGATION),
        c("DocumentType", 1, 1, &DOCUMENT_TYPE),
        t("Subject", 1, 1, NonEmpty),
        t("Content", 0, 1, Any),
        c("SignerInfo", 1, 1, &SIGNER),
        t("DueDate", 0, 1, Date),
        c("ToPlaces", 0, 1, &TO_PLACES),
        c("OtherInfo", 0, 1, &OTHER_INFO),
        c("ResponseFor", 0, 1, &RESPONSE_FOR),
        t("SteeringType", 0, 1, Any),
        t("DocumentId", 1, 1, NonEmpty),
    ],
};
static TRACE_HEADER: Complex = seq(&[t("OrganId", 1, 1, NonEmpty), t("Timestamp", 1, 1, DateTime)]);
static STAFF: Complex = seq(&[
    t("Department", 0, 1, Any),
    t("Staff", 0, 1, Any),
    t("Mobile", 0, 1, Any),
    t("Email", 0, 1, Any),
]);
static BUSINESS: Complex = seq(&[
    t("BussinessDocType", 1, 1, DocType),
    t("BussinessDocReason", 0, 1, Any),
    t("DocumentId", 0, 1, Any),
    c("StaffInfo", 0, 1, &STAFF),
    t("Paper", 0, 1, Any),
]);
static TRACE_LIST: Complex = Complex {
    attrs: &[
        ("id", false),
        ("version", false),
        ("mustUnderstand", false),
        ("actor", false),
    ],
    xlink: false,
    children: &[
        c("TraceHeader", 0, N, &TRACE_HEADER),
        c("Bussiness", 0, 1, &BUSINESS),
    ],
};
static HEADER: Complex = seq(&[
    c("MessageHeader", 1, 1, &MESSAGE_HEADER),
    c("TraceHeaderList", 0, 1, &TRACE_LIST),
    Particle {
        name: "Signature",
        min: 0,
        max: 1,
        content: Content::AnyDsig,
    },
]);
static REFERENCE: Complex = Complex {
    attrs: &[],
    xlink: true,
    children: &[
        t("Description", 0, 1, Any),
        t("AttachmentName", 1, 1, NonEmpty),
        t("ContentType", 0, 1, Any),
        t("ContentId", 1, 1, NonEmpty),
    ],
};
static MANIFEST: Complex = Complex {
    attrs: &[("version", false)],
    xlink: false,
    children: &[c("Reference", 0, N, &REFERENCE)],
};
static BODY: Complex = Complex {
    attrs: &[("Id", false)],
    xlink: false,
    children: &[c("edXMLManifest", 1, 1, &MANIFEST)],
};
static ENVELOPE: Complex = seq(&[c("edXMLHeader", 1, 1, &HEADER), c("edXMLBody", 1, 1, &BODY)]);
static ATTACHMENT: Complex = Complex {
    attrs: &[("Id", false)],
    xlink: false,
    children: &[
        t("ContentType", 1, 1, NonEmpty),
        t("ContentId", 1, 1, NonEmpty),
        t("Description", 0, 1, Any),
        t("ContentTransferEncoded", 1, 1, Any),
        t("AttachmentName", 1, 1, NonEmpty),
    ],
};
static ATTACHMENT_ENCODED: Complex = seq(&[c("Attachment", 1, N, &ATTACHMENT)]);
static ROOT: Complex = seq(&[
    c("edXMLEnvelope", 1, 1, &ENVELOPE),
    c("AttachmentEncoded", 0, 1, &ATTACHMENT_ENCODED),
]);
static STATUS: Complex = Complex {
    attrs: &[("Id", false)],
    xlink: false,
    children: &[
        c("ResponseFor", 1, 1, &RESPONSE_FOR),
        c("From", 1, 1, &ORGAN),
        t("StatusCode", 1, 1, StatusCode),
        t("Description", 0, 1, Any),
        t("Timestamp", 1, 1, DateTime),
        c("StaffInfo", 0, 1, &STAFF),
        Particle {
            name: "Signature",
            min: 0,
            max: 1,
            content: Content::AnyDsig,
        },
    ],
};

/// What a document is, by its root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A package (`edXML`).
    Package,
    /// A status message (`Status`).
    Status,
}

/// Checks `doc` against the schema; returns its kind, or the first violation with its path.
pub fn validate(doc: &roxmltree::Document<'_>) -> Result<Kind, SchemaViolation> {
    let root = doc.root_element();
    let (kind, model) = match (root.tag_name().namespace(), root.tag_name().name()) {
        (Some(NS), "edXML") => (Kind::Package, &ROOT),
        (Some(NS), "Status") => (Kind::Status, &STATUS),
        _ => {
            return Err(SchemaViolation(format!(
                "the root element {} is neither edXML nor Status in the QCVN 102:2016 namespace",
                qualified(root)
            )))
        }
    };
    complex(root, model)?;
    Ok(kind)
}

/// Checks one `TraceHeaderList` element (a routing hop's splice, see
/// [`splice_trace`](super::trace::splice_trace)) against the schema's model of it.
pub(crate) fn validate_trace_list(node: Node<'_, '_>) -> Result<(), SchemaViolation> {
    if node.tag_name().namespace() != Some(NS) || node.tag_name().name() != "TraceHeaderList" {
        return Err(SchemaViolation(format!(
            "{} is not a TraceHeaderList in the QCVN 102:2016 namespace",
            qualified(node)
        )));
    }
    complex(node, &TRACE_LIST)
}

fn qualified(node: Node<'_, '_>) -> String {
    match node.tag_name().namespace() {
        Some(ns) => format!("{{{ns}}}{}", node.tag_name().name()),
        None => node.tag_name().name().to_string(),
    }
}

fn path(node: Node<'_, '_>) -> String {
    crate::xml::parse::element_path(node)
}

fn attributes(node: Node<'_, '_>, model: &Complex) -> Result<(), SchemaViolation> {
    for a in node.attributes() {
        let allowed = match a.namespace() {
            None => model.attrs.iter().any(|(n, _)| *n == a.name()),
            Some(XLINK_NS) => model.xlink,
            Some(XSI_NS) => matches!(a.name(), "schemaLocation" | "noNamespaceSchemaLocation"),
            Some(_) => false,
        };
        if !allowed {
            return Err(SchemaViolation(format!(
                "{}: attribute {} is not allowed",
                path(node),
                a.name()
            )));
        }
    }
    for (name, required) in model.attrs {
        if *required && node.attribute(*name).is_none() {
            return Err(SchemaViolation(format!(
                "{}: attribute {name} is missing",
                path(node)
            )));
        }
    }
    Ok(())
}

fn complex(node: Node<'_, '_>, model: &Complex) -> Result<(), SchemaViolation> {
    attributes(node, model)?;
    let mut i = 0usize;
    let mut count = 0u32;
    for child in node.children() {
        if child.is_text() {
            let text = child.text().unwrap_or("");
            if !text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) {
                return Err(SchemaViolation(format!(
                    "{}: text is not allowed here",
                    path(node)
                )));
            }
            continue;
        }
        if !child.is_element() {
            continue;
        }
        loop {
            let Some(p) = model.children.get(i) else {
                return Err(SchemaViolation(format!(
                    "{}: element {} is not expected here",
                    path(node),
                    qualified(child)
                )));
            };
            let matches = match p.content {
                Content::AnyDsig => child.tag_name().namespace() == Some(DSIG_NS),
                _ => child.tag_name().namespace() == Some(NS) && child.tag_name().name() == p.name,
            };
            if matches && count < p.max {
                count += 1;
                match &p.content {
                    Content::Text(kind) => text(child, *kind)?,
                    Content::Complex(m) => complex(child, m)?,
                    Content::AnyDsig => {}
                }
                break;
            }
            if matches || count >= p.min {
                if matches {
                    return Err(SchemaViolation(format!(
                        "{}: too many {} elements (at most {})",
                        path(node),
                        p.name,
                        p.max
                    )));
                }
                i += 1;
                count = 0;
                continue;
            }
            return Err(SchemaViolation(format!(
                "{}: {} is missing before {}",
                path(node),
                p.name,
                qualified(child)
            )));
        }
    }
    while let Some(p) = model.children.get(i) {
        if count < p.min {
            return Err(SchemaViolation(format!(
                "{}: {} is missing",
                path(node),
                p.name
            )));
        }
        i += 1;
        count = 0;
    }
    Ok(())
}

fn text(node: Node<'_, '_>, kind: Text) -> Result<(), SchemaViolation> {
    if let Some(a) = node.attributes().next() {
        return Err(SchemaViolation(format!(
            "{}: attribute {} is not allowed",
            path(node),
            a.name()
        )));
    }
    if node.children().any(|c| c.is_element()) {
        return Err(SchemaViolation(format!(
            "{}: child elements are not allowed",
            path(node)
        )));
    }
    let value = crate::xml::signed_text(node);
    let ok = match kind {
        Any => true,
        NonEmpty => !value.is_empty(),
        Date => is_date(&value),
        DateTime => value
            .split_once(' ')
            .is_some_and(|(d, t)| is_date(d) && shape(t, "dd:dd:dd")),
        StatusCode => shape(&value, "dd"),
        DocType => matches!(value.as_str(), "0" | "1" | "2" | "3"),
    };
    if ok {
        Ok(())
    } else {
        Err(SchemaViolation(format!(
            "{}: '{}' is not a valid {}",
            path(node),
            value.chars().take(40).collect::<String>(),
            match kind {
                Any | NonEmpty => "non-empty value",
                Date => "date (yyyy/MM/dd or dd/MM/yyyy)",
                DateTime => "time (yyyy/MM/dd HH:mm:ss or dd/MM/yyyy HH:mm:ss)",
                StatusCode => "status code (two digits)",
                DocType => "BussinessDocType (0-3)",
            }
        )))
    }
}

/// `value` has the shape of `pattern`, where `d` is an ASCII digit and anything else is itself.
fn shape(value: &str, pattern: &str) -> bool {
    value.len() == pattern.len()
        && value.bytes().zip(pattern.bytes()).all(|(v, p)| {
            if p == b'd' {
                v.is_ascii_digit()
            } else {
                v == p
            }
        })
}

fn is_date(value: &str) -> bool {
    shape(value, "dddd/dd/dd") || shape(value, "dd/dd/dddd")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(xml: &str) -> Result<Kind, SchemaViolation> {
        validate(&roxmltree::Document::parse(xml).unwrap())
    }

    const STATUS_OK: &str = r#"<Status xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><ResponseFor><OrganId>A</OrganId><Code>1/X</Code><PromulgationDate>01/07/2025</PromulgationDate><DocumentId>A,2025/07/01,1/X</DocumentId></ResponseFor><From><OrganId>B</OrganId><OrganName>B</OrganName></From><StatusCode>01</StatusCode><Timestamp>2025/07/01 10:00:00</Timestamp></Status>"#;

    #[test]
    fn status_messages_follow_the_model() {
        assert_eq!(check(STATUS_OK), Ok(Kind::Status));
        let bad = STATUS_OK.replace("<StatusCode>01", "<StatusCode>1");
        assert!(check(&bad).unwrap_err().0.contains("status code"));
        let missing = STATUS_OK.replace("<StatusCode>01</StatusCode>", "");
        assert!(check(&missing)
            .unwrap_err()
            .0
            .contains("StatusCode is missing"));
        let twice = STATUS_OK.replace(
            "</From>",
            "</From><From><OrganId>C</OrganId><OrganName>C</OrganName></From>",
        );
        assert!(check(&twice).is_err());
        let date = STATUS_OK.replace("01/07/2025<", "2025-07-01<");
        assert!(check(&date).unwrap_err().0.contains("date"));
        let attr = STATUS_OK.replace("<From>", "<From x=\"1\">");
        assert!(check(&attr).unwrap_err().0.contains("attribute x"));
        let text = STATUS_OK.replace("<From>", "<From>hello");
        assert!(check(&text).unwrap_err().0.contains("text"));
    }

    #[test]
    fn foreign_roots_are_refused() {
        assert!(check("<edXML/>").is_err());
        assert!(check("<x:edXML xmlns:x=\"urn:other\"/>").is_err());
    }
}
