//! A package's XML form: [`Package::build_signed`] writes and signs it, [`parse`] reads it back
//! after the schema check.
//!
//! Layout: `edXML` (default namespace and prefix `edXML` both the QCVN namespace) holds
//! `edXMLEnvelope` (`edXMLHeader` with `MessageHeader`, `TraceHeaderList` and the Signature;
//! `edXMLBody` with the manifest) and, beside it, `AttachmentEncoded`. The Ids the signature
//! references are `MessageHeader`, `edXMLBody` and `attachment-N`.

use base64::Engine as _;
use roxmltree::Node;
use time::OffsetDateTime;

use super::dates::{format_date, format_timestamp, parse_date, parse_timestamp};
use super::schema::{self, Kind};
use super::{
    Attachment, Business, BusinessDocType, EdxmlError, Limits, MessageHeader, Organ, Package,
    ResponseFor, SignerInfo, TraceHeader, NS,
};
use crate::keys::KeySource;
use crate::xml::dsig::esc;

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;
const XLINK_NS: &str = "http://www.w3.org/1999/xlink";
/// The SOAP actor TraceHeaderList carries in production implementations.
const ACTOR_NEXT: &str = "http://schemas.xmlsoap.org/soap/actor/next";

/// A small XML writer for the elements edXML uses (text content only, escaped).
pub(crate) struct Writer(pub(crate) String);

impl Writer {
    pub(crate) fn open(&mut self, qname: &str) {
        self.0.push('<');
        self.0.push_str(qname);
        self.0.push('>');
    }
    pub(crate) fn close(&mut self, qname: &str) {
        self.0.push_str("</");
        self.0.push_str(qname);
        self.0.push('>');
    }
    pub(crate) fn el(&mut self, qname: &str, value: &str) {
        self.open(qname);
        self.0.push_str(&esc(value));
        self.close(qname);
    }
    pub(crate) fn opt(&mut self, qname: &str, value: Option<&String>) {
        if let Some(v) = value {
            self.el(qname, v);
        }
    }
    pub(crate) fn organ(&mut self, qname: &str, o: &Organ) {
        self.open(qname);
        self.el("OrganId", &o.organ_id);
        self.opt("OrganizationInCharge", o.organization_in_charge.as_ref());
        self.el("OrganName", &o.organ_name);
        self.opt("OrganAdd", o.organ_add.as_ref());
        self.opt("Email", o.email.as_ref());
        self.opt("Telephone", o.telephone.as_ref());
        self.opt("Fax", o.fax.as_ref());
        self.opt("Website", o.website.as_ref());
        self.close(qname);
    }
    pub(crate) fn response_for(&mut self, r: &ResponseFor) {
        self.open("ResponseFor");
        self.el("OrganId", &r.organ_id);
        self.el("Code", &r.code);
        self.el("PromulgationDate", &format_date(r.promulgation_date));
        self.el("DocumentId", &r.document_id);
        self.close("ResponseFor");
    }
    pub(crate) fn trace(&mut self, qname: &str, t: &TraceHeader) {
        self.open(qname);
        self.el("OrganId", &t.organ_id);
        self.el("Timestamp", &format_timestamp(t.timestamp));
        self.close(qname);
    }
}

impl Package {
    /// The unsigned envelope (what [`Package::build_signed`] signs).
    pub fn to_xml(&self) -> String {
        let h = &self.header;
        let mut w = Writer(String::with_capacity(
            4096 + self
                .attachments
                .iter()
                .map(|a| a.data.len() * 4 / 3 + 512)
                .sum::<usize>(),
        ));
        w.0.push_str(&format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edXML xmlns=\"{NS}\" xmlns:edXML=\"{NS}\" xmlns:xlink=\"{XLINK_NS}\">\n<edXML:edXMLEnvelope>\n<edXML:edXMLHeader>\n<edXML:MessageHeader Id=\"MessageHeader\">"
        ));
        w.organ("From", &h.from);
        for to in &h.to {
            w.organ("To", to);
        }
        w.open("Code");
        w.el("CodeNumber", &h.code_number);
        w.el("CodeNotation", &h.code_notation);
        w.close("Code");
        w.open("PromulgationInfo");
        w.el("Place", &h.promulgation_place);
        w.el("PromulgationDate", &format_date(h.promulgation_date));
        w.close("PromulgationInfo");
        w.open("DocumentType");
        w.el("Type", &h.document_type);
        w.opt("TypeName", h.document_type_name.as_ref());
        w.close("DocumentType");
        w.el("Subject", &h.subject);
        w.opt("Content", h.content.as_ref());
        w.open("SignerInfo");
        w.opt("Competence", h.signer.competence.as_ref());
        w.opt("Position", h.signer.position.as_ref());
        w.el("FullName", &h.signer.full_name);
        w.close("SignerInfo");
        if let Some(d) = h.due_date {
            w.el("DueDate", &format_date(d));
        }
        if !h.to_places.is_empty() {
            w.open("ToPlaces");
            for p in &h.to_places {
                w.el("Place", p);
            }
            w.close("ToPlaces");
        }
        if let Some(r) = &h.response_for {
            w.response_for(r);
        }
        w.opt("SteeringType", h.steering_type.as_ref());
        w.el("DocumentId", &h.document_id);
        w.0.push_str(&format!(
            "</edXML:MessageHeader>\n<edXML:TraceHeaderList id=\"TraceHeaderList\" version=\"1.0\" mustUnderstand=\"1\" actor=\"{ACTOR_NEXT}\">"
        ));
        for t in &self.traces {
            w.0.push('\n');
            w.trace("TraceHeader", t);
        }
        w.0.push('\n');
        w.open("Bussiness");
        w.el(
            "BussinessDocType",
            &self.business.doc_type.code().to_string(),
        );
        w.opt("BussinessDocReason", self.business.reason.as_ref());
        w.opt("DocumentId", self.business.document_id.as_ref());
        w.close("Bussiness");
        w.0.push_str("\n</edXML:TraceHeaderList>\n</edXML:edXMLHeader>\n<edXML:edXMLBody Id=\"edXMLBody\"><edXML:edXMLManifest version=\"1.0\">");
        for a in &self.attachments {
            w.0.push_str(&format!(
                "\n<edXML:Reference xlink:href=\"cid:{}\" xlink:role=\"attachment\" xlink:type=\"simple\">",
                esc(&a.content_id)
            ));
            w.opt("Description", a.description.as_ref());
            w.el("AttachmentName", &a.name);
            w.el("ContentType", &a.content_type);
            w.el("ContentId", &a.content_id);
            w.close("edXML:Reference");
        }
        w.0.push_str("\n</edXML:edXMLManifest></edXML:edXMLBody>\n</edXML:edXMLEnvelope>\n");
        if !self.attachments.is_empty() {
            w.open("AttachmentEncoded");
            for (i, a) in self.attachments.iter().enumerate() {
                w.0.push_str(&format!("\n<Attachment Id=\"attachment-{}\">", i + 1));
                w.el("ContentType", &a.content_type);
                w.el("ContentId", &a.content_id);
                w.opt("Description", a.description.as_ref());
                w.open("ContentTransferEncoded");
                B64.encode_string(&a.data, &mut w.0);
                w.close("ContentTransferEncoded");
                w.el("AttachmentName", &a.name);
                w.close("Attachment");
            }
            w.0.push('\n');
            w.close("AttachmentEncoded");
            w.0.push('\n');
        }
        w.0.push_str("</edXML>\n");
        w.0
    }

    /// Builds the envelope and signs it with the agency key (XML-DSig, `edxml` profile:
    /// MessageHeader, edXMLBody and every attachment, never the trace list). The envelope is
    /// checked against the schema first, so an empty required field is refused, not sent.
    pub fn build_signed(
        &self,
        key: &dyn KeySource,
        signing_time: OffsetDateTime,
    ) -> Result<Vec<u8>, EdxmlError> {
        let xml = self.to_xml();
        check_schema(xml.as_bytes(), Kind::Package)?;
        sign(
            xml.as_bytes(),
            crate::xml::Profile::Edxml,
            key,
            signing_time,
        )
    }
}

/// Signs `xml` under `profile` with SHA-256 and the key's own algorithm (RSA PKCS#1 v1.5 or
/// ECDSA), after checking the key's certificate may sign at `at`.
pub(crate) fn sign(
    xml: &[u8],
    profile: crate::xml::Profile,
    key: &dyn KeySource,
    at: OffsetDateTime,
) -> Result<Vec<u8>, EdxmlError> {
    use crate::pki::alg::{DigestAlgorithm, RsaPadding, SignatureScheme};
    crate::pki::check_signing_certificate(key.certificate(), at)?;
    let scheme =
        SignatureScheme::for_key(key.algorithm(), DigestAlgorithm::Sha256, RsaPadding::Pkcs1);
    Ok(crate::xml::sign(xml, profile, key, scheme, at)?)
}

/// Parses and schema-checks `bytes`, which must be of `kind`.
pub(crate) fn check_schema(bytes: &[u8], kind: Kind) -> Result<(), EdxmlError> {
    let parsed = crate::xml::parse::parse(bytes, &crate::xml::Limits::default())?;
    expect_kind(&parsed.doc, kind)
}

pub(crate) fn expect_kind(doc: &roxmltree::Document<'_>, kind: Kind) -> Result<(), EdxmlError> {
    match schema::validate(doc) {
        Ok(k) if k == kind => Ok(()),
        Ok(Kind::Status) => Err(EdxmlError::invalid(
            "this is a status message, not a package",
        )),
        Ok(Kind::Package) => Err(EdxmlError::invalid(
            "this is a package, not a status message",
        )),
        Err(why) => Err(why.into()),
    }
}

/// Schema-validates and parses an envelope under `limits`; no signature check (see
/// [`verify`](super::verify)). Attachments are decoded, matched one-to-one with the manifest,
/// and zipped ones inspected within the zip limits.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Package, EdxmlError> {
    let parsed = parse_bounded(bytes, limits)?;
    read_parsed(&parsed, limits)
}

/// The XML parse of an envelope within `limits` (its size first).
pub(crate) fn parse_bounded<'i>(
    bytes: &'i [u8],
    limits: &Limits,
) -> Result<crate::xml::parse::Parsed<'i>, EdxmlError> {
    if bytes.len() > limits.max_envelope_bytes {
        return Err(EdxmlError::LimitExceeded(format!(
            "envelope of {} bytes exceeds {}",
            bytes.len(),
            limits.max_envelope_bytes
        )));
    }
    Ok(crate::xml::parse::parse(bytes, &limits.xml())?)
}

/// [`parse`] on an already parsed document: schema check, then the package.
pub(crate) fn read_parsed(
    parsed: &crate::xml::parse::Parsed<'_>,
    limits: &Limits,
) -> Result<Package, EdxmlError> {
    expect_kind(&parsed.doc, Kind::Package)?;
    read(parsed.doc.root_element(), limits)
}

/// The child element `name` (QCVN namespace) of `node`.
pub(crate) fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.has_tag_name((NS, name)))
}

pub(crate) fn children<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.has_tag_name((NS, name)))
}

pub(crate) fn text_of(node: Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name).map(crate::xml::signed_text)
}

pub(crate) fn required(node: Node<'_, '_>, name: &str) -> Result<String, EdxmlError> {
    text_of(node, name).ok_or_else(|| {
        EdxmlError::Invalid(format!(
            "{}: {name} is missing",
            crate::xml::parse::element_path(node)
        ))
    })
}

/// The text of `node` without ASCII whitespace (base64 is often wrapped in lines), borrowed
/// from the document when it is a single text node without any: an attachment's base64 is
/// most of an envelope, and copying it twice cost more than decoding it.
fn base64_text<'a>(node: Node<'a, '_>) -> std::borrow::Cow<'a, [u8]> {
    let mut texts = node
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text());
    match (texts.next(), texts.next()) {
        (None, _) => std::borrow::Cow::Borrowed(&[]),
        (Some(only), None) if !has_ascii_whitespace(only.as_bytes()) => {
            std::borrow::Cow::Borrowed(only.as_bytes())
        }
        _ => std::borrow::Cow::Owned(
            crate::xml::signed_text(node)
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect(),
        ),
    }
}

/// Whether `bytes` hold a space, tab, line feed, form feed or carriage return (vectorized:
/// the text scanned is an attachment's whole base64).
fn has_ascii_whitespace(bytes: &[u8]) -> bool {
    memchr::memchr3(b' ', b'\n', b'\r', bytes).is_some()
        || memchr::memchr2(b'\t', b'\x0c', bytes).is_some()
}

pub(crate) fn element<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Result<Node<'a, 'i>, EdxmlError> {
    child(node, name).ok_or_else(|| {
        EdxmlError::Invalid(format!(
            "{}: {name} is missing",
            crate::xml::parse::element_path(node)
        ))
    })
}

pub(crate) fn date_of(node: Node<'_, '_>, name: &str) -> Result<time::Date, EdxmlError> {
    let text = required(node, name)?;
    parse_date(&text).ok_or_else(|| {
        EdxmlError::Invalid(format!(
            "{}/{name}: '{text}' is not a calendar date",
            crate::xml::parse::element_path(node)
        ))
    })
}

pub(crate) fn timestamp_of(node: Node<'_, '_>, name: &str) -> Result<OffsetDateTime, EdxmlError> {
    let text = required(node, name)?;
    parse_timestamp(&text).ok_or_else(|| {
        EdxmlError::Invalid(format!(
            "{}/{name}: '{text}' is not a valid time",
            crate::xml::parse::element_path(node)
        ))
    })
}

pub(crate) fn read_organ(node: Node<'_, '_>) -> Result<Organ, EdxmlError> {
    Ok(Organ {
        organ_id: required(node, "OrganId")?,
        organ_name: required(node, "OrganName")?,
        organization_in_charge: text_of(node, "OrganizationInCharge"),
        organ_add: text_of(node, "OrganAdd"),
        email: text_of(node, "Email"),
        telephone: text_of(node, "Telephone"),
        fax: text_of(node, "Fax"),
        website: text_of(node, "Website"),
    })
}

pub(crate) fn read_response_for(node: Node<'_, '_>) -> Result<ResponseFor, EdxmlError> {
    Ok(ResponseFor {
        organ_id: required(node, "OrganId")?,
        code: required(node, "Code")?,
        promulgation_date: date_of(node, "PromulgationDate")?,
        document_id: required(node, "DocumentId")?,
    })
}

fn bounded(what: &str, n: usize, max: usize) -> Result<(), EdxmlError> {
    if n > max {
        return Err(EdxmlError::LimitExceeded(format!(
            "{n} {what} exceed the limit of {max}"
        )));
    }
    Ok(())
}

/// Reads a schema-valid `edXML` root.
fn read(root: Node<'_, '_>, limits: &Limits) -> Result<Package, EdxmlError> {
    let envelope = element(root, "edXMLEnvelope")?;
    let header_el = element(envelope, "edXMLHeader")?;
    let mh = element(header_el, "MessageHeader")?;
    let to: Vec<Organ> = children(mh, "To")
        .map(read_organ)
        .collect::<Result<_, _>>()?;
    bounded("recipients", to.len(), limits.max_list)?;
    let code = element(mh, "Code")?;
    let prom = element(mh, "PromulgationInfo")?;
    let doc_type = element(mh, "DocumentType")?;
    let signer = element(mh, "SignerInfo")?;
    let header = MessageHeader {
        from: read_organ(element(mh, "From")?)?,
        to,
        document_id: required(mh, "DocumentId")?,
        code_number: required(code, "CodeNumber")?,
        code_notation: required(code, "CodeNotation")?,
        promulgation_place: required(prom, "Place")?,
        promulgation_date: date_of(prom, "PromulgationDate")?,
        document_type: required(doc_type, "Type")?,
        document_type_name: text_of(doc_type, "TypeName"),
        subject: required(mh, "Subject")?,
        content: text_of(mh, "Content"),
        signer: SignerInfo {
            competence: text_of(signer, "Competence"),
            position: text_of(signer, "Position"),
            full_name: required(signer, "FullName")?,
        },
        due_date: child(mh, "DueDate")
            .map(|_| date_of(mh, "DueDate"))
            .transpose()?,
        to_places: child(mh, "ToPlaces")
            .map(|p| children(p, "Place").map(crate::xml::signed_text).collect())
            .unwrap_or_default(),
        steering_type: text_of(mh, "SteeringType"),
        response_for: child(mh, "ResponseFor")
            .map(read_response_for)
            .transpose()?,
    };
    let mut traces = Vec::new();
    let mut business = Business::default();
    if let Some(list) = child(header_el, "TraceHeaderList") {
        for t in children(list, "TraceHeader") {
            traces.push(TraceHeader {
                organ_id: required(t, "OrganId")?,
                timestamp: timestamp_of(t, "Timestamp")?,
            });
            bounded("trace headers", traces.len(), limits.max_list)?;
        }
        if let Some(b) = child(list, "Bussiness") {
            let code = required(b, "BussinessDocType")?;
            business = Business {
                doc_type: BusinessDocType::from_code(&code).ok_or_else(|| {
                    EdxmlError::Invalid(format!("BussinessDocType '{code}' is not 0-3"))
                })?,
                reason: text_of(b, "BussinessDocReason"),
                document_id: text_of(b, "DocumentId"),
            };
        }
    }
    let manifest = element(element(envelope, "edXMLBody")?, "edXMLManifest")?;
    let attachments = read_attachments(root, manifest, limits)?;
    Ok(Package {
        header,
        business,
        traces,
        attachments,
    })
}

fn read_attachments(
    root: Node<'_, '_>,
    manifest: Node<'_, '_>,
    limits: &Limits,
) -> Result<Vec<Attachment>, EdxmlError> {
    let nodes: Vec<Node<'_, '_>> = child(root, "AttachmentEncoded")
        .map(|e| children(e, "Attachment").collect())
        .unwrap_or_default();
    bounded("attachments", nodes.len(), limits.max_attachments)?;
    let mut referenced = std::collections::HashSet::new();
    for r in children(manifest, "Reference") {
        let cid = required(r, "ContentId")?;
        if let Some(href) = r.attribute((XLINK_NS, "href")) {
            if href.strip_prefix("cid:") != Some(cid.as_str()) {
                return Err(EdxmlError::Invalid(format!(
                    "manifest reference {href} does not name its ContentId {cid}"
                )));
            }
        }
        if !referenced.insert(cid.clone()) {
            return Err(EdxmlError::Invalid(format!(
                "the manifest references {cid} twice"
            )));
        }
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(nodes.len());
    let mut seen = std::collections::HashSet::new();
    for node in nodes {
        let content_id = required(node, "ContentId")?;
        let name = required(node, "AttachmentName")?;
        if !seen.insert(content_id.clone()) {
            return Err(EdxmlError::Invalid(format!(
                "two attachments have ContentId {content_id}"
            )));
        }
        if !referenced.contains(&content_id) {
            return Err(EdxmlError::Invalid(format!(
                "attachment '{name}' ({content_id}) is not in the manifest"
            )));
        }
        let encoded = base64_text(element(node, "ContentTransferEncoded")?);
        let estimate = encoded.len() / 4 * 3;
        if estimate > limits.max_attachment_bytes + 3 {
            return Err(EdxmlError::LimitExceeded(format!(
                "attachment '{name}' of about {estimate} bytes exceeds {}",
                limits.max_attachment_bytes
            )));
        }
        let data = B64
            .decode(&*encoded)
            .map_err(|_| EdxmlError::Invalid(format!("attachment '{name}' is not valid base64")))?;
        bounded("attachment bytes", data.len(), limits.max_attachment_bytes)?;
        total += data.len();
        bounded(
            "attachment bytes in total",
            total,
            limits.max_total_attachment_bytes,
        )?;
        let content_type = required(node, "ContentType")?;
        if super::zip::is_zip(&content_type, &data) {
            super::zip::inspect(&data, limits).map_err(|why| EdxmlError::Zip {
                attachment: name.clone(),
                why,
            })?;
        }
        out.push(Attachment {
            content_id,
            name,
            content_type,
            description: text_of(node, "Description"),
            data,
        });
    }
    if let Some(missing) = referenced.iter().find(|c| !seen.contains(*c)) {
        return Err(EdxmlError::Invalid(format!(
            "the manifest references {missing}, which is not attached"
        )));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::{date, datetime};

    /// A complete package with synthetic agencies (`TEST.*` identifiers are not real codes).
    pub(crate) fn sample() -> Package {
        Package {
            header: MessageHeader {
                from: Organ::new("TEST.00.00.H99", "UBND tỉnh Thử nghiệm"),
                to: vec![
                    Organ::new("TEST.01.00.H99", "UBND huyện A"),
                    Organ::new("TEST.02.00.H99", "UBND huyện B & C"),
                ],
                document_id: "TEST.00.00.H99,2025/07/01,123/UBND-VP".into(),
                code_number: "123".into(),
                code_notation: "UBND-VP".into(),
                promulgation_place: "Thử nghiệm".into(),
                promulgation_date: date!(2025 - 07 - 01),
                document_type: "18".into(),
                document_type_name: Some("Công văn".into()),
                subject: "Về việc <thử nghiệm> liên thông".into(),
                content: None,
                signer: SignerInfo {
                    competence: Some("TM. UBND".into()),
                    position: Some("Chủ tịch".into()),
                    full_name: "Nguyễn Văn Mẫu".into(),
                },
                due_date: Some(date!(2025 - 07 - 15)),
                to_places: vec!["Như trên".into()],
                steering_type: None,
                response_for: None,
            },
            business: Business::default(),
            traces: vec![TraceHeader {
                organ_id: "TEST.00.00.H99".into(),
                timestamp: datetime!(2025-07-01 09:30:00 +7),
            }],
            attachments: vec![Attachment {
                content_id: "att1".into(),
                name: "congvan.pdf".into(),
                content_type: "application/pdf".into(),
                description: Some("Văn bản".into()),
                data: b"%PDF-1.4\n% synthetic\n".to_vec(),
            }],
        }
    }

    #[test]
    fn unsigned_envelope_round_trips() {
        let p = sample();
        let xml = p.to_xml();
        let back = parse(xml.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn manifest_and_attachments_must_match() {
        let xml = sample().to_xml();
        let orphan = xml.replace(
            "<ContentId>att1</ContentId></edXML:Reference>",
            "<ContentId>att2</ContentId></edXML:Reference>",
        );
        let orphan = orphan.replace("cid:att1", "cid:att2");
        let e = parse(orphan.as_bytes(), &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("not in the manifest"), "{e}");
        let href = xml.replace("cid:att1", "cid:other");
        assert!(parse(href.as_bytes(), &Limits::default()).is_err());
    }

    #[test]
    fn limits_are_enforced() {
        let xml = sample().to_xml();
        let small = Limits {
            max_attachment_bytes: 4,
            ..Limits::default()
        };
        let e = parse(xml.as_bytes(), &small).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::EdxmlLimitExceeded);
        let few = Limits {
            max_list: 1,
            ..Limits::default()
        };
        assert_eq!(
            parse(xml.as_bytes(), &few).unwrap_err().code(),
            crate::ErrorCode::EdxmlLimitExceeded
        );
        let tiny = Limits {
            max_envelope_bytes: 100,
            ..Limits::default()
        };
        assert!(parse(xml.as_bytes(), &tiny).is_err());
    }

    #[test]
    fn an_unreadable_zip_is_invalid_not_over_a_limit() {
        let mut p = sample();
        p.attachments[0].name = "hoso.zip".into();
        p.attachments[0].content_type = "application/zip".into();
        p.attachments[0].data = b"PK\x03\x04 not really an archive".to_vec();
        let e = parse(p.to_xml().as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::EdxmlInvalid, "{e}");
        assert!(e.to_string().contains("attachment 'hoso.zip'"), "{e}");
        p.attachments[0].data = super::super::zip::tests::zip(&[("a.txt", b"abc")]);
        let few = Limits {
            max_zip_entries: 0,
            ..Limits::default()
        };
        let e = parse(p.to_xml().as_bytes(), &few).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::EdxmlLimitExceeded, "{e}");
    }

    #[test]
    fn calendar_dates_are_checked_after_the_pattern() {
        let xml = sample().to_xml().replace("2025/07/15", "2025/02/30");
        let e = parse(xml.as_bytes(), &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("calendar date"), "{e}");
        let dmy = sample().to_xml().replace("2025/07/15", "15/07/2025");
        assert_eq!(
            parse(dmy.as_bytes(), &Limits::default())
                .unwrap()
                .header
                .due_date,
            Some(date!(2025 - 07 - 15))
        );
    }
}
