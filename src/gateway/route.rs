//! Routing services beside the node's own: building a document's envelope for an agency
//! ([`Services::compose_document`]: metadata and files → schema-checked, signed edXML) and
//! downloading what a node holds ([`Services::routed_envelope`], [`Services::routed_attachment`]).
//!
//! Who may see what follows [`crate::routing::Node::status_view_for`]: the sending agency sees
//! its document; a recipient sees it when a row here is addressed to it or held by it (a
//! directory merge); any other agency gets `ROUTE_NOT_FOUND`, as for a missing document.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{GatewayError, Services};
use crate::edxml::{self, DocumentSpec, FileSpec};
use crate::keys::KeySource;
use crate::routing::{Node, RoutingError};
use crate::store::routing::DocumentRow;
use crate::store::Client;

/// Which key signs a composed envelope.
pub enum SigningKey {
    /// A key registered with the gateway (`key add`, `[[keys]]`), by name.
    Registered(String),
    /// A key the caller opened (the command line's `--key FILE`).
    Opened(Arc<dyn KeySource>),
    /// The one key registered for the sending agency (granted to the client, over HTTP).
    AgencyDefault,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Registered(name) => f.debug_tuple("Registered").field(name).finish(),
            Self::Opened(_) => f.write_str("Opened(..)"),
            Self::AgencyDefault => f.write_str("AgencyDefault"),
        }
    }
}

/// A file a node hands out: the received envelope or one of its attachments.
#[derive(Debug, Clone)]
pub struct RoutedFile {
    /// A file name for it (the attachment's own name; `<DocumentId>.edxml` for the envelope).
    pub name: String,
    /// Its media type (`application/xml` for the envelope; the attachment's `ContentType`).
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl RoutedFile {
    /// The media type to serve it as: its own when a plain `type/subtype`, lowercased, else
    /// `application/octet-stream` (never sniffed).
    pub fn served_type(&self) -> String {
        if media_type_ok(&self.content_type) {
            self.content_type.to_ascii_lowercase()
        } else {
            "application/octet-stream".into()
        }
    }

    /// Its `Content-Disposition: attachment` value ([`content_disposition`]).
    pub fn content_disposition(&self) -> String {
        content_disposition(&self.name)
    }
}

/// A bare `type/subtype` of RFC 9110 token characters (no parameters).
pub fn media_type_ok(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    t.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

/// `attachment; filename="…"; filename*=UTF-8''…` for `name`: the ASCII fallback keeps
/// `[A-Za-z0-9._-]` (others become `_`, path separators included), the extended form
/// percent-encodes every other byte.
pub fn content_disposition(name: &str) -> String {
    let safe = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    let mut ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && safe(c as u8) {
                c
            } else {
                '_'
            }
        })
        .take(150)
        .collect();
    let trimmed = ascii.trim_start_matches('.').to_string();
    ascii = if trimmed.is_empty() {
        "download".into()
    } else {
        trimmed
    };
    let mut extended = String::new();
    for b in name.bytes() {
        if safe(b) {
            extended.push(b as char);
        } else {
            extended.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{extended}")
}

fn routing(e: RoutingError) -> GatewayError {
    GatewayError::Domain(crate::Error::Routing(e))
}

impl Services {
    /// Builds the envelope of `spec` with `files`, schema-checks it and signs it with `key`,
    /// for `caller` (over HTTP: its agency is the sender, and the key must be its agency's and
    /// granted to it) or for the node operator (`None`: the spec's sender, else `default_from`).
    /// Agency names missing from the spec come from the directory.
    pub async fn compose_document(
        &self,
        caller: Option<&Client>,
        default_from: Option<&str>,
        key: SigningKey,
        spec: DocumentSpec,
        files: Vec<FileSpec>,
    ) -> Result<Vec<u8>, GatewayError> {
        let from = match (caller, &spec.from) {
            (Some(c), Some(f)) if f.organ_id() != c.agency => {
                return Err(GatewayError::Invalid(format!(
                    "this client sends for agency {}, not {}",
                    c.agency,
                    f.organ_id()
                )))
            }
            (Some(c), _) => c.agency.clone(),
            (None, Some(f)) => f.organ_id().to_string(),
            (None, None) => default_from.map(String::from).ok_or_else(|| {
                GatewayError::Invalid("no sending agency: give from (an OrganId)".into())
            })?,
        };
        let key = self.composing_key(caller, &from, key).await?;
        let mut names = std::collections::HashMap::new();
        let directory = self.directory();
        for id in std::iter::once(from.clone()).chain(spec.organ_ids()) {
            if let Ok(r) = directory.resolve(&id).await {
                names.insert(id, crate::directory::committee_name(&r.unit));
            }
        }
        super::blocking(move || {
            let now = OffsetDateTime::now_utc();
            let mut package = spec.package(&from, files, now, &|id| names.get(id).cloned())?;
            // the sending node stamps the first hop itself (one trace header per hop)
            package.traces.clear();
            Ok(package.build_signed(key.as_ref(), now)?)
        })
        .await
    }

    async fn composing_key(
        &self,
        caller: Option<&Client>,
        agency: &str,
        key: SigningKey,
    ) -> Result<Arc<dyn KeySource>, GatewayError> {
        let record = match key {
            SigningKey::Opened(k) => return Ok(k),
            SigningKey::Registered(name) => match caller {
                Some(c) => self.granted_key(c, &name).await?,
                None => self
                    .store()
                    .key(&name)
                    .await?
                    .ok_or(GatewayError::UnknownKey(name))?,
            },
            SigningKey::AgencyDefault => {
                let mut mine = Vec::new();
                for k in self.store().list_keys().await? {
                    let granted = match caller {
                        Some(c) => self.store().is_granted(&c.id, &k.name).await?,
                        None => true,
                    };
                    if k.agency == agency && granted {
                        mine.push(k);
                    }
                }
                match mine.len() {
                    1 => mine.remove(0),
                    0 => {
                        return Err(GatewayError::Invalid(format!(
                            "no signing key registered for agency {agency}: give key"
                        )))
                    }
                    _ => {
                        return Err(GatewayError::Invalid(format!(
                            "agency {agency} has {} keys: give key ({})",
                            mine.len(),
                            mine.iter()
                                .map(|k| k.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )))
                    }
                }
            }
        };
        if record.agency != agency {
            return Err(GatewayError::ForeignKey(record.name));
        }
        let key: Arc<dyn KeySource> = self.signing_key(&record).await?;
        Ok(key)
    }

    /// The row of `document_id` whose envelope `agency` may download (any when `None`): a new
    /// document before a recall or update of the same id, delivered rows first, newest first.
    async fn routed_row(
        &self,
        node: &Node,
        document_id: &str,
        agency: Option<&str>,
    ) -> Result<DocumentRow, GatewayError> {
        let rows = node.store().route_documents(document_id).await?;
        let sent_by_agency = agency.is_some_and(|a| rows.iter().any(|r| r.sender_organ == a));
        let mut visible: Vec<DocumentRow> = rows
            .into_iter()
            .filter(|r| r.document_id == document_id)
            .filter(|r| match agency {
                None => true,
                Some(_) if sent_by_agency => true,
                Some(a) => r.next_node.is_none() && (r.recipient_organ == a || r.owner_organ == a),
            })
            .collect();
        visible.sort_by(|a, b| {
            (
                a.doc_type,
                a.next_node.is_some(),
                std::cmp::Reverse(&a.created_at),
            )
                .cmp(&(
                    b.doc_type,
                    b.next_node.is_some(),
                    std::cmp::Reverse(&b.created_at),
                ))
        });
        visible
            .into_iter()
            .next()
            .ok_or_else(|| routing(RoutingError::NotFound(document_id.into())))
    }

    /// The envelope of `document_id` as this node holds it (trace headers of the hops so far
    /// included), for `agency` (every agency when `None`: the node operator).
    pub async fn routed_envelope(
        &self,
        node: &Node,
        document_id: &str,
        agency: Option<&str>,
    ) -> Result<RoutedFile, GatewayError> {
        let row = self.routed_row(node, document_id, agency).await?;
        let envelope = node
            .store()
            .route_envelope(&row.envelope_id)
            .await?
            .ok_or_else(|| routing(RoutingError::NotFound(document_id.into())))?;
        Ok(RoutedFile {
            name: format!("{document_id}.edxml"),
            content_type: "application/xml".into(),
            bytes: envelope.bytes,
        })
    }

    /// Attachment `n` (0-based, in the envelope's order) of `document_id`, decoded, for
    /// `agency` as [`Services::routed_envelope`].
    pub async fn routed_attachment(
        &self,
        node: &Node,
        document_id: &str,
        n: usize,
        agency: Option<&str>,
    ) -> Result<RoutedFile, GatewayError> {
        let envelope = self.routed_envelope(node, document_id, agency).await?;
        let document_id = document_id.to_string();
        super::blocking(move || {
            let mut package = edxml::parse(&envelope.bytes, &edxml::Limits::default())?;
            if n >= package.attachments.len() {
                return Err(RoutingError::NotFound(format!(
                    "{document_id}: attachment {n} (it has {})",
                    package.attachments.len()
                ))
                .into());
            }
            let a = package.attachments.swap_remove(n);
            Ok(RoutedFile {
                name: a.name,
                content_type: a.content_type,
                bytes: a.data,
            })
        })
        .await
    }
}
