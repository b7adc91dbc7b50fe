//! Test edXML envelopes (synthetic `TEST.*` agencies): one parameterized fixture,
//! [`TestEnvelope`], for the routing tests (`routing`, `routing_ops`, `route_webhooks`).
//! DocumentIds are written as e-office systems write them ([`doc_id`]).

use signgate::edxml::{
    Attachment, Business, BusinessDocType, MessageHeader, Organ, Package, ResponseFor, SignerInfo,
    TraceHeader,
};
use signgate::keys::KeySource;
use time::macros::date;
use time::Date;

/// `{organ},2025/07/01,{number}/UBND-VP`.
pub fn doc_id(from: &str, number: &str) -> String {
    format!("{from},2025/07/01,{number}/UBND-VP")
}

/// An attachment `name` of media type `content_type`, content id `att{n}`.
pub fn test_attachment(n: usize, name: &str, content_type: &str, data: Vec<u8>) -> Attachment {
    Attachment {
        content_id: format!("att{n}"),
        name: name.into(),
        content_type: content_type.into(),
        description: None,
        data,
    }
}

/// What varies between the test documents; [`TestEnvelope::new`] gives the defaults (sender
/// name `UBND {from}`, a new document, no due date, the signed recall reference).
#[derive(Debug, Clone)]
pub struct TestEnvelope {
    /// Sender OrganId.
    pub from: String,
    /// Sender OrganName.
    pub sender_name: String,
    /// Recipients (their names are `UBND {id}`).
    pub to: Vec<String>,
    /// CodeNumber (CodeNotation is `UBND-VP`).
    pub number: String,
    /// Subject.
    pub subject: String,
    /// BussinessDocType and its target.
    pub business: Business,
    /// DueDate.
    pub due_date: Option<Date>,
    /// The attachments, in order.
    pub attachments: Vec<Attachment>,
    /// Whether a recall, update or replace names its target in the signed header
    /// (`ResponseFor`), as a node requires by default.
    pub signed_reference: bool,
}

impl TestEnvelope {
    /// A new document from `from` to `to`, numbered `number`, with `attachments`.
    pub fn new(
        from: &str,
        to: &[&str],
        number: &str,
        subject: &str,
        attachments: Vec<Attachment>,
    ) -> Self {
        Self {
            from: from.into(),
            sender_name: format!("UBND {from}"),
            to: to.iter().map(|t| t.to_string()).collect(),
            number: number.into(),
            subject: subject.into(),
            business: Business::default(),
            due_date: None,
            attachments,
            signed_reference: true,
        }
    }

    /// The package, signed with `key` now.
    pub fn build(self, key: &dyn KeySource) -> Vec<u8> {
        let from = self.from;
        let response_for = self
            .business
            .document_id
            .clone()
            .filter(|_| self.business.doc_type != BusinessDocType::New && self.signed_reference)
            .map(|target| ResponseFor {
                organ_id: from.clone(),
                code: format!(
                    "{}/UBND-VP",
                    target
                        .rsplit(',')
                        .next()
                        .unwrap_or_default()
                        .split('/')
                        .next()
                        .unwrap_or_default()
                ),
                promulgation_date: date!(2025 - 07 - 01),
                document_id: target,
            });
        Package {
            header: MessageHeader {
                from: Organ::new(&from, self.sender_name),
                to: self
                    .to
                    .iter()
                    .map(|t| Organ::new(t, format!("UBND {t}")))
                    .collect(),
                document_id: doc_id(&from, &self.number),
                code_number: self.number,
                code_notation: "UBND-VP".into(),
                promulgation_place: "Thử nghiệm".into(),
                promulgation_date: date!(2025 - 07 - 01),
                document_type: "18".into(),
                document_type_name: Some("Công văn".into()),
                subject: self.subject,
                content: None,
                signer: SignerInfo {
                    competence: Some("TM. UBND".into()),
                    position: Some("Chủ tịch".into()),
                    full_name: "Nguyễn Văn Mẫu".into(),
                },
                due_date: self.due_date,
                to_places: vec!["Như trên".into()],
                steering_type: None,
                response_for,
            },
            business: self.business,
            traces: vec![TraceHeader {
                organ_id: from,
                timestamp: time::OffsetDateTime::now_utc(),
            }],
            attachments: self.attachments,
        }
        .build_signed(key, time::OffsetDateTime::now_utc())
        .expect("build envelope")
    }
}
