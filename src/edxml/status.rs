//! Status messages ("gói tin trạng thái"): what a receiving agency answers about a document.
//!
//! The root is `Status` in the QCVN namespace (the SOAP `Envelope/Header` wrapping seen in one
//! implementation is not used), signed by the sending node with an enveloped signature over
//! the whole message (profile `enveloped`). Codes 01–06 and 13 are medium-confidence facts;
//! the codes for agreeing to and refusing an update are unconfirmed and configurable
//! ([`StatusCodes`], default 15/16).

use time::OffsetDateTime;

use super::dates::format_timestamp;
use super::package::{
    child, element, read_organ, read_response_for, required, text_of, timestamp_of, Writer,
};
use super::schema::Kind;
use super::{EdxmlError, Limits, Organ, ResponseFor, NS};
use crate::keys::KeySource;
use crate::verify::{Indication, Policy, Report, ValidationContext};

/// What the receiver says about a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// 01: arrived (đã đến).
    Received,
    /// 02: refused / sent back (e.g. a failed check; the description says why).
    Rejected,
    /// 03: accepted into the registry (đã tiếp nhận).
    Accepted,
    /// 04: assigned (phân công).
    Assigned,
    /// 05: being processed (đang xử lý).
    Processing,
    /// 06: completed (hoàn thành).
    Completed,
    /// 13: recalled / withdrawn.
    Recalled,
    /// Agrees to an update or recall request (default 15, unconfirmed).
    UpdateAgreed,
    /// Refuses an update or recall request (default 16, unconfirmed).
    UpdateRefused,
}

/// The configurable part of the code table: the update agree/refuse codes, which no public
/// source confirms (vn-edoc-standards.md §a).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCodes {
    update_agreed: String,
    update_refused: String,
}

impl Default for StatusCodes {
    fn default() -> Self {
        Self {
            update_agreed: "15".into(),
            update_refused: "16".into(),
        }
    }
}

const FIXED: [(StatusCode, &str); 7] = [
    (StatusCode::Received, "01"),
    (StatusCode::Rejected, "02"),
    (StatusCode::Accepted, "03"),
    (StatusCode::Assigned, "04"),
    (StatusCode::Processing, "05"),
    (StatusCode::Completed, "06"),
    (StatusCode::Recalled, "13"),
];

impl StatusCode {
    /// The two-digit code of a status whose code is fixed by the standard (01 … 06, 13);
    /// `None` for the update codes, which a gateway configures ([`StatusCodes`]).
    pub fn fixed_code(self) -> Option<&'static str> {
        FIXED.iter().find(|(s, _)| *s == self).map(|(_, c)| *c)
    }
}

impl StatusCodes {
    /// A table with these update codes: two digits each, distinct, and not a fixed code.
    pub fn new(update_agreed: &str, update_refused: &str) -> Result<Self, EdxmlError> {
        for c in [update_agreed, update_refused] {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_digit()) {
                return Err(EdxmlError::Invalid(format!(
                    "status code '{c}' is not two digits"
                )));
            }
            if FIXED.iter().any(|(_, f)| *f == c) {
                return Err(EdxmlError::Invalid(format!(
                    "status code {c} already has a fixed meaning"
                )));
            }
        }
        if update_agreed == update_refused {
            return Err(EdxmlError::invalid(
                "the update agree and refuse codes must differ",
            ));
        }
        Ok(Self {
            update_agreed: update_agreed.into(),
            update_refused: update_refused.into(),
        })
    }

    /// The two-digit code of `status`.
    pub fn code(&self, status: StatusCode) -> &str {
        match status {
            StatusCode::UpdateAgreed => &self.update_agreed,
            StatusCode::UpdateRefused => &self.update_refused,
            fixed => fixed.fixed_code().unwrap_or_default(),
        }
    }

    /// The status a two-digit code means, `None` for a code not in the table.
    pub fn status(&self, code: &str) -> Option<StatusCode> {
        if code == self.update_agreed {
            return Some(StatusCode::UpdateAgreed);
        }
        if code == self.update_refused {
            return Some(StatusCode::UpdateRefused);
        }
        FIXED.iter().find(|(_, c)| *c == code).map(|(s, _)| *s)
    }
}

/// A status message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The document it is about.
    pub response_for: ResponseFor,
    /// The agency answering.
    pub from: Organ,
    /// What it says.
    pub code: StatusCode,
    /// Free text (for 02: the reason).
    pub description: Option<String>,
    /// When, written in Vietnam time; also the signature's signing time.
    pub timestamp: OffsetDateTime,
    /// The staff member who handled it (`StaffInfo/Staff`).
    pub staff: Option<String>,
}

impl Status {
    /// The unsigned message.
    pub fn to_xml(&self, codes: &StatusCodes) -> String {
        let mut w = Writer(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Status xmlns=\"{NS}\">"
        ));
        w.response_for(&self.response_for);
        w.organ("From", &self.from);
        w.el("StatusCode", codes.code(self.code));
        w.opt("Description", self.description.as_ref());
        w.el("Timestamp", &format_timestamp(self.timestamp));
        if let Some(staff) = &self.staff {
            w.open("StaffInfo");
            w.el("Staff", staff);
            w.close("StaffInfo");
        }
        w.0.push_str("</Status>\n");
        w.0
    }

    /// Builds the message and signs it with the sending node's key (enveloped, whole message).
    pub fn build_signed(
        &self,
        key: &dyn KeySource,
        codes: &StatusCodes,
    ) -> Result<Vec<u8>, EdxmlError> {
        let xml = self.to_xml(codes);
        super::package::check_schema(xml.as_bytes(), Kind::Status)?;
        super::package::sign(
            xml.as_bytes(),
            crate::xml::Profile::Enveloped,
            key,
            self.timestamp,
        )
    }
}

/// Schema-validates and parses a status message; no signature check (see [`verify_status`]).
pub fn parse_status(
    bytes: &[u8],
    codes: &StatusCodes,
    limits: &Limits,
) -> Result<Status, EdxmlError> {
    let parsed = crate::xml::parse::parse(bytes, &limits.xml())?;
    super::package::expect_kind(&parsed.doc, Kind::Status)?;
    read_status(&parsed, codes)
}

/// [`parse_status`] and [`verify_status`] over one parse of the message (a routing node does
/// both for every status it receives).
pub fn parse_verified_status(
    bytes: &[u8],
    codes: &StatusCodes,
    limits: &Limits,
    policy: &Policy,
    ctx: &ValidationContext,
) -> Result<(Status, StatusVerdict), EdxmlError> {
    let parsed = crate::xml::parse::parse(bytes, &limits.xml())?;
    super::package::expect_kind(&parsed.doc, Kind::Status)?;
    let status = read_status(&parsed, codes)?;
    let report = crate::verify::xml_document("Status", &parsed, policy, ctx)?;
    Ok((status, StatusVerdict::of(report)))
}

fn read_status(
    parsed: &crate::xml::parse::Parsed<'_>,
    codes: &StatusCodes,
) -> Result<Status, EdxmlError> {
    let root = parsed.doc.root_element();
    let code = required(root, "StatusCode")?;
    Ok(Status {
        response_for: read_response_for(element(root, "ResponseFor")?)?,
        from: read_organ(element(root, "From")?)?,
        code: codes
            .status(&code)
            .ok_or_else(|| EdxmlError::Invalid(format!("status code {code} is not known")))?,
        description: text_of(root, "Description"),
        timestamp: timestamp_of(root, "Timestamp")?,
        staff: child(root, "StaffInfo").and_then(|s| text_of(s, "Staff")),
    })
}

/// The verdict on a status message's signature.
#[derive(Debug, Clone)]
pub struct StatusVerdict {
    /// TOTAL_PASSED and the signature covers the whole message.
    pub passed: bool,
    /// Why not.
    pub reason: Option<String>,
    /// The validation report.
    pub report: Report,
}

/// Verifies a status message's signature (chain and revocation per `policy` and `ctx`); the
/// signature must cover the whole message.
pub fn verify_status(
    bytes: &[u8],
    policy: &Policy,
    ctx: &ValidationContext,
) -> Result<StatusVerdict, EdxmlError> {
    super::package::check_schema(bytes, Kind::Status)?;
    let report = crate::verify::document("Status", bytes, None, policy, ctx)?;
    Ok(StatusVerdict::of(report))
}

impl StatusVerdict {
    /// The verdict a validation report of a status message gives.
    fn of(report: Report) -> Self {
        let reason = if report.signatures.iter().any(|s| !s.coverage.whole_file) {
            Some("the signature does not cover the whole status message".to_string())
        } else if report.indication != Indication::TotalPassed {
            Some(super::verify::describe(&report))
        } else {
            None
        };
        Self {
            passed: reason.is_none(),
            reason,
            report,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    pub(crate) fn sample(code: StatusCode) -> Status {
        Status {
            response_for: ResponseFor {
                organ_id: "TEST.00.00.H99".into(),
                code: "123/UBND-VP".into(),
                promulgation_date: date!(2025 - 07 - 01),
                document_id: "TEST.00.00.H99,2025/07/01,123/UBND-VP".into(),
            },
            from: Organ::new("TEST.01.00.H99", "UBND huyện A"),
            code,
            description: Some("Đã nhận".into()),
            timestamp: datetime!(2025-07-01 10:00:00 +7),
            staff: Some("Văn thư".into()),
        }
    }

    #[test]
    fn every_code_round_trips_with_the_default_table() {
        let codes = StatusCodes::default();
        for (s, c) in FIXED {
            assert_eq!(codes.code(s), c);
        }
        assert_eq!(codes.code(StatusCode::UpdateAgreed), "15");
        assert_eq!(codes.code(StatusCode::UpdateRefused), "16");
        for code in [
            StatusCode::Received,
            StatusCode::Rejected,
            StatusCode::Recalled,
            StatusCode::UpdateAgreed,
            StatusCode::UpdateRefused,
        ] {
            let xml = sample(code).to_xml(&codes);
            assert_eq!(
                parse_status(xml.as_bytes(), &codes, &Limits::default()).unwrap(),
                sample(code)
            );
        }
    }

    #[test]
    fn a_status_answers_the_package_it_refers_to() {
        let header = super::super::package::tests::sample().header;
        assert_eq!(
            header.response_for(),
            sample(StatusCode::Received).response_for
        );
    }

    #[test]
    fn update_codes_are_configurable_and_checked() {
        let codes = StatusCodes::new("21", "22").unwrap();
        let xml = sample(StatusCode::UpdateRefused).to_xml(&codes);
        assert!(xml.contains("<StatusCode>22</StatusCode>"));
        assert!(
            parse_status(xml.as_bytes(), &StatusCodes::default(), &Limits::default())
                .unwrap_err()
                .to_string()
                .contains("not known")
        );
        assert!(StatusCodes::new("13", "16").is_err());
        assert!(StatusCodes::new("15", "15").is_err());
        assert!(StatusCodes::new("1", "16").is_err());
    }
}
