//! Building a package from what a clerk or an e-office system knows: a document's metadata
//! ([`DocumentSpec`], from command-line flags or a small JSON/TOML file) and its files.
//!
//! [`DocumentSpec::package`] fills a [`Package`] (DocumentId in the form used in practice,
//! `{sender},{yyyy/MM/dd},{number}/{notation}`, unless given; `cid:` content ids `att1`,
//! `att2`, …; media types from the content or the file name; one trace header from the
//! sender, which a gateway sending it through its own node drops: the node stamps that hop); [`Package::build_signed`] then schema-checks and signs it. Agency names come from
//! the caller (the gateway looks them up in its directory); an agency without one is named by
//! its identifier, as the schema needs a non-empty `OrganName`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{
    parse_date, Attachment, Business, EdxmlError, MessageHeader, Organ, Package, SignerInfo,
    TraceHeader,
};

/// An agency named in a [`DocumentSpec`]: its OrganId alone, or with its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OrganSpec {
    /// `"DEMO.H24.07210"`.
    Id(String),
    /// `{ organ_id = "…", organ_name = "…" }`.
    Named {
        /// The OrganId.
        organ_id: String,
        /// Its name.
        organ_name: Option<String>,
    },
}

impl OrganSpec {
    /// The OrganId.
    pub fn organ_id(&self) -> &str {
        match self {
            Self::Id(id) | Self::Named { organ_id: id, .. } => id,
        }
    }

    /// The name, when given.
    pub fn organ_name(&self) -> Option<&str> {
        match self {
            Self::Id(_) => None,
            Self::Named { organ_name, .. } => organ_name.as_deref().filter(|n| !n.is_empty()),
        }
    }
}

/// A document's metadata: what [`DocumentSpec::package`] needs beside the files. Dates are
/// `yyyy/MM/dd`, `dd/MM/yyyy` or `yyyy-MM-dd`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSpec {
    /// The sending agency (default: the caller's agency).
    #[serde(default)]
    pub from: Option<OrganSpec>,
    /// The recipients (at least one).
    #[serde(default)]
    pub to: Vec<OrganSpec>,
    /// Document number (`Code/CodeNumber`), e.g. `12`.
    #[serde(default)]
    pub number: String,
    /// Notation (`Code/CodeNotation`), e.g. `UBND-VP`.
    #[serde(default)]
    pub notation: String,
    /// `DocumentType/Type`, a numeric code (the official table is unconfirmed; 18 is used for
    /// a công văn in public implementations).
    #[serde(default, rename = "type")]
    pub document_type: String,
    /// `DocumentType/TypeName`, e.g. `Công văn`.
    #[serde(default)]
    pub type_name: Option<String>,
    /// Subject (trích yếu).
    #[serde(default)]
    pub subject: String,
    /// Content summary.
    #[serde(default)]
    pub content: Option<String>,
    /// Promulgation date.
    #[serde(default)]
    pub date: String,
    /// Place of promulgation.
    #[serde(default)]
    pub place: String,
    /// The paper signer's full name.
    #[serde(default)]
    pub signer: String,
    /// The paper signer's position, e.g. `Chủ tịch`.
    #[serde(default)]
    pub position: Option<String>,
    /// The signing competence, e.g. `TM. UBND`.
    #[serde(default)]
    pub competence: Option<String>,
    /// Deadline for processing.
    #[serde(default)]
    pub due_date: Option<String>,
    /// `SteeringType` (kept as given; the code table is unconfirmed).
    #[serde(default)]
    pub steering_type: Option<String>,
    /// Places it is addressed to (nơi nhận), as text.
    #[serde(default)]
    pub to_places: Vec<String>,
    /// The DocumentId (default `{sender},{yyyy/MM/dd},{number}/{notation}`).
    #[serde(default)]
    pub document_id: Option<String>,
}

/// A file to attach: its name, bytes and (optionally) media type and description.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// The file name as it travels (`AttachmentName`).
    pub name: String,
    /// The bytes.
    pub data: Vec<u8>,
    /// The media type (default: from the content, else the name's extension).
    pub content_type: Option<String>,
    /// A description.
    pub description: Option<String>,
}

/// The media type of a file: `%PDF-` or `PK` content first, then the name's extension, else
/// `application/octet-stream`.
pub fn media_type(name: &str, data: &[u8]) -> &'static str {
    if data.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "xml" | "edxml" => "application/xml",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "doc" => "application/msword",
        "xls" => "application/vnd.ms-excel",
        "odt" => "application/vnd.oasis.opendocument.text",
        "zip" => "application/zip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "tif" | "tiff" => "image/tiff",
        "txt" => "text/plain",
        _ if data.starts_with(b"PK\x03\x04") => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Reads a date as [`parse_date`] does, or `yyyy-MM-dd`.
fn date(field: &str, text: &str) -> Result<time::Date, EdxmlError> {
    parse_date(text)
        .or_else(|| parse_date(&text.trim().replace('-', "/")))
        .ok_or_else(|| {
            EdxmlError::invalid(format!(
                "{field} '{text}' is not a date (yyyy/MM/dd, dd/MM/yyyy or yyyy-MM-dd)"
            ))
        })
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, EdxmlError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(EdxmlError::invalid(format!("{field} is missing")));
    }
    Ok(v)
}

impl DocumentSpec {
    /// Reads a spec from a JSON or TOML file's text (JSON when it starts with `{`).
    pub fn from_text(text: &str) -> Result<Self, EdxmlError> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text)
                .map_err(|e| EdxmlError::invalid(format!("document metadata (JSON): {e}")))
        } else {
            toml::from_str(text).map_err(|e| {
                EdxmlError::invalid(format!("document metadata (TOML): {}", e.message()))
            })
        }
    }

    /// Fills the fields `other` sets (command-line flags over a file); lists replace lists
    /// when not empty.
    pub fn overlay(mut self, other: DocumentSpec) -> Self {
        fn set<T>(into: &mut T, from: T, empty: bool) {
            if !empty {
                *into = from;
            }
        }
        let DocumentSpec {
            from,
            to,
            number,
            notation,
            document_type,
            type_name,
            subject,
            content,
            date,
            place,
            signer,
            position,
            competence,
            due_date,
            steering_type,
            to_places,
            document_id,
        } = other;
        set(&mut self.from, from.clone(), from.is_none());
        set(&mut self.to, to.clone(), to.is_empty());
        set(&mut self.number, number.clone(), number.is_empty());
        set(&mut self.notation, notation.clone(), notation.is_empty());
        set(
            &mut self.document_type,
            document_type.clone(),
            document_type.is_empty(),
        );
        set(&mut self.type_name, type_name.clone(), type_name.is_none());
        set(&mut self.subject, subject.clone(), subject.is_empty());
        set(&mut self.content, content.clone(), content.is_none());
        set(&mut self.date, date.clone(), date.is_empty());
        set(&mut self.place, place.clone(), place.is_empty());
        set(&mut self.signer, signer.clone(), signer.is_empty());
        set(&mut self.position, position.clone(), position.is_none());
        set(
            &mut self.competence,
            competence.clone(),
            competence.is_none(),
        );
        set(&mut self.due_date, due_date.clone(), due_date.is_none());
        set(
            &mut self.steering_type,
            steering_type.clone(),
            steering_type.is_none(),
        );
        set(&mut self.to_places, to_places.clone(), to_places.is_empty());
        set(
            &mut self.document_id,
            document_id.clone(),
            document_id.is_none(),
        );
        self
    }

    /// The OrganIds this spec names (sender first, when given), for a directory look-up.
    pub fn organ_ids(&self) -> Vec<String> {
        self.from
            .iter()
            .chain(self.to.iter())
            .map(|o| o.organ_id().to_string())
            .collect()
    }

    /// The package of this document from `from` (used when the spec names no sender) with
    /// `files`, at `now`. `name_of` gives an agency's name when the spec has none (else the
    /// OrganId stands for it). Unsigned: [`Package::build_signed`] checks and signs it.
    pub fn package(
        &self,
        from: &str,
        files: Vec<FileSpec>,
        now: OffsetDateTime,
        name_of: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Package, EdxmlError> {
        let organ = |o: &OrganSpec| -> Result<Organ, EdxmlError> {
            let id = required("agency identifier (OrganId)", o.organ_id())?;
            let name = o
                .organ_name()
                .map(String::from)
                .or_else(|| name_of(id))
                .unwrap_or_else(|| id.to_string());
            Ok(Organ::new(id, name))
        };
        let from = organ(
            self.from
                .as_ref()
                .unwrap_or(&OrganSpec::Id(from.to_string())),
        )?;
        if self.to.is_empty() {
            return Err(EdxmlError::invalid(
                "no recipient: give at least one OrganId (to)",
            ));
        }
        let to = self.to.iter().map(organ).collect::<Result<Vec<_>, _>>()?;
        let number = required("document number", &self.number)?.to_string();
        let notation = self.notation.trim().to_string();
        let promulgation_date = date("promulgation date", required("date", &self.date)?)?;
        let document_id = match &self.document_id {
            Some(id) => required("document_id", id)?.to_string(),
            None if notation.is_empty() => format!(
                "{},{},{number}",
                from.organ_id,
                super::format_date(promulgation_date)
            ),
            None => format!(
                "{},{},{number}/{notation}",
                from.organ_id,
                super::format_date(promulgation_date)
            ),
        };
        let due_date = self
            .due_date
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(|d| date("due date", d))
            .transpose()?;
        if files.is_empty() {
            return Err(EdxmlError::invalid(
                "no attachment: a document travels with at least one file",
            ));
        }
        let attachments = files
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let name = required("attachment name", &f.name)?.to_string();
                if f.data.is_empty() {
                    return Err(EdxmlError::invalid(format!("attachment '{name}' is empty")));
                }
                Ok(Attachment {
                    content_id: format!("att{}", i + 1),
                    content_type: f
                        .content_type
                        .unwrap_or_else(|| media_type(&name, &f.data).to_string()),
                    name,
                    description: f.description,
                    data: f.data,
                })
            })
            .collect::<Result<Vec<_>, EdxmlError>>()?;
        let opt = |v: &Option<String>| v.as_ref().filter(|s| !s.trim().is_empty()).cloned();
        Ok(Package {
            header: MessageHeader {
                to,
                document_id,
                code_number: number,
                code_notation: notation,
                promulgation_place: required("place", &self.place)?.to_string(),
                promulgation_date,
                document_type: required("type", &self.document_type)?.to_string(),
                document_type_name: opt(&self.type_name),
                subject: required("subject", &self.subject)?.to_string(),
                content: opt(&self.content),
                signer: SignerInfo {
                    competence: opt(&self.competence),
                    position: opt(&self.position),
                    full_name: required("signer", &self.signer)?.to_string(),
                },
                due_date,
                to_places: self.to_places.clone(),
                steering_type: opt(&self.steering_type),
                response_for: None,
                from: from.clone(),
            },
            business: Business::default(),
            traces: vec![TraceHeader {
                organ_id: from.organ_id,
                timestamp: now,
            }],
            attachments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn spec() -> DocumentSpec {
        DocumentSpec::from_text(
            r#"
            to = ["DEMO.H24.07210", { organ_id = "DEMO.H24.07228", organ_name = "UBND xã B" }]
            number = "12"
            notation = "UBND-VP"
            type = "18"
            type_name = "Công văn"
            subject = "Về việc thử nghiệm"
            date = "2025-07-01"
            place = "Bắc Ninh"
            signer = "Nguyễn Văn Mẫu"
            position = "Chủ tịch"
            due_date = "15/07/2025"
            steering_type = "1"
            "#,
        )
        .expect("toml spec")
    }

    fn pdf() -> FileSpec {
        FileSpec {
            name: "congvan.pdf".into(),
            data: b"%PDF-1.4\n%synthetic\n".to_vec(),
            content_type: None,
            description: None,
        }
    }

    #[test]
    fn a_spec_becomes_a_schema_valid_package() {
        let names = |id: &str| (id == "DEMO.H24").then(|| "UBND tỉnh Demo".to_string());
        let p = spec()
            .package(
                "DEMO.H24",
                vec![pdf()],
                datetime!(2025-07-01 09:00 +7),
                &names,
            )
            .expect("package");
        assert_eq!(p.header.document_id, "DEMO.H24,2025/07/01,12/UBND-VP");
        assert_eq!(p.header.from.organ_name, "UBND tỉnh Demo");
        assert_eq!(p.header.to[0].organ_name, "DEMO.H24.07210");
        assert_eq!(p.header.to[1].organ_name, "UBND xã B");
        assert_eq!(p.header.due_date, Some(date!(2025 - 07 - 15)));
        assert_eq!(p.attachments[0].content_type, "application/pdf");
        assert_eq!(p.attachments[0].content_id, "att1");
        let xml = p.to_xml();
        super::super::package::check_schema(xml.as_bytes(), super::super::schema::Kind::Package)
            .expect("schema");
        let back = super::super::parse(xml.as_bytes(), &super::super::Limits::default()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn missing_fields_are_named() {
        let names = |_: &str| None;
        let now = datetime!(2025-07-01 09:00 +7);
        let mut s = spec();
        s.subject.clear();
        let e = s.package("DEMO.H24", vec![pdf()], now, &names).unwrap_err();
        assert!(e.to_string().contains("subject is missing"), "{e}");
        let mut s = spec();
        s.to.clear();
        assert!(s.package("DEMO.H24", vec![pdf()], now, &names).is_err());
        let e = spec().package("DEMO.H24", vec![], now, &names).unwrap_err();
        assert!(e.to_string().contains("no attachment"), "{e}");
        let mut s = spec();
        s.date = "2025/02/30".into();
        let e = s.package("DEMO.H24", vec![pdf()], now, &names).unwrap_err();
        assert!(e.to_string().contains("not a date"), "{e}");
    }

    #[test]
    fn flags_override_the_file_and_json_reads_too() {
        let json = DocumentSpec::from_text(r#"{"number": "7", "subject": "A", "to": ["X"]}"#)
            .expect("json");
        let merged = spec().overlay(json);
        assert_eq!(merged.number, "7");
        assert_eq!(merged.subject, "A");
        assert_eq!(merged.to, vec![OrganSpec::Id("X".into())]);
        assert_eq!(merged.notation, "UBND-VP");
        assert!(DocumentSpec::from_text("bogus = 1").is_err());
    }

    #[test]
    fn media_types_come_from_content_then_name() {
        assert_eq!(media_type("x.bin", b"%PDF-1.7"), "application/pdf");
        assert_eq!(
            media_type("Phu-luc.DOCX", b"PK\x03\x04"),
            media_type("a.docx", b"")
        );
        assert_eq!(media_type("a", b"PK\x03\x04"), "application/zip");
        assert_eq!(media_type("a", b"x"), "application/octet-stream");
    }
}
