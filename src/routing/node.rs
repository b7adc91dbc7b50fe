//! One gateway node: what happens when an envelope or a status message arrives, and what an
//! operator can do here (send, acknowledge, look up).
//!
//! Receipt of an envelope, in order: schema and signature checks and this hop's trace header
//! (appended outside the signature), over one parse ([`crate::edxml::verify_for_hop`], with the
//! node's trust anchors and one revocation fetcher whose caches serve every receipt); the
//! idempotency key of each recipient handled at this hop (CONTRACTS §5: the same key with the
//! same digest is acknowledged again and not stored, with another digest refused as
//! `CONFLICTING_REDELIVERY`); a route for each recipient (local inbox or a peer); then one
//! transaction writes the envelope, the rows, the outbox items and the history — shared with
//! concurrent receipts ([`super::commit`]) — and, once it has committed, the caller gets a
//! status 01 signed by this node. A failed check answers 02 with the reason, and nothing is
//! stored: the sender keeps the document.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use time::OffsetDateTime;

use super::commit::GroupCommit;
use super::config::{Hop, RoutingConfig};
use super::lifecycle::{self, business_of, OutboxKind, RowState};
use super::tls::{PeerClient, TlsIdentity};
use super::RoutingError;
use crate::blocking::run as blocking;
use crate::clock::{now_rfc3339, rfc3339};
use crate::code::ErrorCode;
use crate::directory::SignerFacts;
use crate::edxml::{
    self, BusinessDocType, Organ, ResponseFor, Status, StatusCode, StatusCodes, TraceHeader,
};
use crate::ids::random_id;
use crate::keys::Pkcs12Key;
pub use crate::store::routing::ListKind;
use crate::store::routing::{
    Acceptance, AttachmentInfo, DocumentMeta, DocumentRow, EnvelopeRow, ListFilter, ListedDocument,
    OutboxItem, PendingRow, StatusRow, TraceEvent,
};
use crate::store::Store;
use crate::verify::{Fetcher, TrustList, ValidationContext};

/// The `from_node` of an envelope submitted at this node (an operator's or API client's
/// `route send`) rather than delivered by a peer.
pub const LOCAL: &str = "local";

/// The answer to a delivered envelope: status 01 or 02 and, to a peer, the signed status message.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// [`StatusCode::Received`] (01) or [`StatusCode::Rejected`] (02).
    pub code: StatusCode,
    /// Why it was refused.
    pub reason: Option<String>,
    /// The status message, signed by this node, for a peer that delivered the envelope;
    /// `None` for a `local` submission (an operator's `route send`), whose answer is the code
    /// and reason alone: no status message goes anywhere, so none is signed.
    pub message: Option<Vec<u8>>,
    /// The DocumentId.
    pub document_id: String,
    /// Set when the envelope is held here, not yet validated: the revocation status of its
    /// signer could not be obtained (why, and until when it is re-validated). The code is 01:
    /// the envelope is stored, this node owns its re-validation and answers 02 later if it fails.
    pub held: Option<String>,
}

impl Receipt {
    /// The two-digit code as it goes over the wire: `01` or `02`.
    pub fn code_text(&self) -> &'static str {
        self.code.fixed_code().unwrap_or_default()
    }
}

/// Counters for `/metrics` and the operator.
#[derive(Debug, Default)]
pub struct RouteCounters {
    /// Envelopes accepted (new rows written).
    pub accepted: AtomicU64,
    /// Redeliveries acknowledged without storing.
    pub duplicates: AtomicU64,
    /// Envelopes refused with status 02.
    pub refused: AtomicU64,
    /// Outbox items handed to a peer.
    pub delivered: AtomicU64,
    /// Outbox items dead-lettered.
    pub dead_letters: AtomicU64,
    /// Envelopes held because the revocation status of their signer was unavailable.
    pub held: AtomicU64,
    /// Held envelopes accepted after a re-validation.
    pub revalidated: AtomicU64,
    /// Held envelopes answered 02 at the deadline (alert `route_revocation_deadline`).
    pub held_expired: AtomicU64,
    /// Routing loops detected (alert `route_loop`).
    pub loops: AtomicU64,
    /// Outbound delivery attempts that failed (peer down, pin mismatch, TLS, 5xx).
    pub delivery_failures: AtomicU64,
}

impl RouteCounters {
    /// The counters in the Prometheus text format (`signgate_route_events_total{event=…}`).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP signgate_route_events_total Routing events since start.\n# TYPE signgate_route_events_total counter\n",
        );
        for (name, v) in [
            ("accepted", &self.accepted),
            ("duplicate", &self.duplicates),
            ("refused", &self.refused),
            ("delivered", &self.delivered),
            ("dead_letter", &self.dead_letters),
            ("held_revocation", &self.held),
            ("revalidated", &self.revalidated),
            ("held_expired", &self.held_expired),
            ("loop", &self.loops),
            ("delivery_failure", &self.delivery_failures),
        ] {
            out.push_str(&format!(
                "signgate_route_events_total{{event=\"{name}\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out
    }

    /// The counters as JSON (the outbox view's `since_start`).
    pub fn json(&self) -> serde_json::Value {
        let l = |v: &AtomicU64| v.load(Ordering::Relaxed);
        serde_json::json!({
            "accepted": l(&self.accepted), "duplicates": l(&self.duplicates),
            "refused": l(&self.refused), "delivered": l(&self.delivered),
            "dead_letters": l(&self.dead_letters), "held_revocation": l(&self.held),
            "revalidated": l(&self.revalidated), "held_expired": l(&self.held_expired),
            "loops": l(&self.loops), "delivery_failures": l(&self.delivery_failures),
        })
    }
}

/// The node: configuration, database, keys and TLS client.
pub struct Node {
    /// `[routing]`, validated.
    pub config: RoutingConfig,
    store: Store,
    /// Trust anchors, loaded once.
    trust: Vec<TrustList>,
    /// One fetcher for the node's life, so its OCSP (5 minutes) and CRL caches serve every
    /// receipt instead of one live request per envelope; `None` when offline.
    fetcher: Option<Arc<dyn Fetcher>>,
    /// Concurrent receipts share a transaction.
    commits: GroupCommit,
    /// Woken when a write queued outbox items, so the worker hands them on at once instead
    /// of at its next poll.
    outbox_ready: tokio::sync::Notify,
    signer: Arc<Pkcs12Key>,
    /// Mutual-TLS client of the peers, with its open connections.
    peers: PeerClient,
    identity: TlsIdentity,
    codes: StatusCodes,
    limits: edxml::Limits,
    /// Counters.
    pub counters: RouteCounters,
    /// The directory authority's certificate, when this node takes its updates.
    pub(super) authority_cert: Option<openssl::x509::X509>,
    /// When each peer is next sent directory updates (after a failure, with backoff).
    pub(super) directory_retry:
        std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

/// What the checks found in an envelope.
struct Checked {
    package: edxml::Package,
    digest: String,
    /// The envelope with this hop's trace header.
    stamped: Vec<u8>,
    /// The signing certificate's facts, for the agency binding.
    signer: Option<SignerFacts>,
}

/// The facts of a document that statuses refer to.
#[derive(Debug, Clone)]
struct DocRef {
    sender: String,
    document_id: String,
    code: String,
    promulgation_date: time::Date,
    /// (OrganId, OrganName) of the addressees, as the envelope names them.
    names: Vec<(String, String)>,
}

impl DocRef {
    fn of(package: &edxml::Package) -> Self {
        let h = &package.header;
        Self {
            sender: h.from.organ_id.clone(),
            document_id: h.document_id.clone(),
            code: format!("{}/{}", h.code_number, h.code_notation),
            promulgation_date: h.promulgation_date,
            names: h
                .to
                .iter()
                .map(|o| (o.organ_id.clone(), o.organ_name.clone()))
                .collect(),
        }
    }
}

/// What the inbox shows of `package` (its signed header and attachments).
fn meta_of(package: &edxml::Package) -> DocumentMeta {
    let h = &package.header;
    let day = |d: time::Date| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    DocumentMeta {
        subject: h.subject.clone(),
        sender_name: h.from.organ_name.clone(),
        doc_number: format!("{}/{}", h.code_number, h.code_notation),
        document_type: h.document_type.clone(),
        document_type_name: h.document_type_name.clone(),
        promulgation_date: Some(day(h.promulgation_date)),
        due_date: h.due_date.map(day),
        attachments: package
            .attachments
            .iter()
            .map(|a| AttachmentInfo {
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                size: a.data.len() as u64,
            })
            .collect(),
    }
}

/// The signing certificate of an envelope: the `X509Certificate` of its signature whose
/// serial number is `serial` (lowercase hex, as the validation report gives it).
fn signer_facts(bytes: &[u8], serial: &str) -> Option<SignerFacts> {
    use base64::Engine as _;
    const TAG: &[u8] = b"X509Certificate>";
    // searched in the bytes (vectorized), not in a UTF-8 copy of the whole envelope
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&bytes[from..], TAG).map(|i| from + i) {
        let before = &bytes[from..i];
        from = i + TAG.len();
        let Some(k) = memchr::memrchr(b'<', before) else {
            continue;
        };
        let Ok(prefix) = std::str::from_utf8(&before[k + 1..]) else {
            continue;
        };
        let opening = prefix.is_empty()
            || (prefix.ends_with(':')
                && !prefix.starts_with('/')
                && !prefix.contains(char::is_whitespace));
        if !opening {
            continue;
        }
        let rest = &bytes[from..];
        let end = memchr::memchr(b'<', rest).unwrap_or(rest.len());
        let Ok(text) = std::str::from_utf8(&rest[..end]) else {
            continue;
        };
        let b64: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            continue;
        };
        let Some(cert) = crate::pki::certs::from_der(&der) else {
            continue;
        };
        let hex = cert
            .serial_number()
            .to_bn()
            .and_then(|b| b.to_hex_str().map(|s| s.to_lowercase()))
            .unwrap_or_default();
        if hex == serial {
            return Some(SignerFacts::of_certificate(&cert));
        }
    }
    None
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn trace(doc: &DocRef, event: &str, detail: String) -> TraceEvent {
    TraceEvent {
        document_id: doc.document_id.clone(),
        sender_organ: doc.sender.clone(),
        at: now_rfc3339(),
        event: event.into(),
        detail,
    }
}

impl Node {
    /// Opens the node's identity and builds its TLS client; envelopes and statuses are
    /// validated under `validation`'s trust lists and fetcher (its time is not used: each
    /// receipt is checked at its own now).
    pub fn new(
        config: RoutingConfig,
        store: Store,
        validation: ValidationContext,
    ) -> Result<Self, RoutingError> {
        use secrecy::ExposeSecret;
        let password = config.identity_password.expose_secret();
        let identity = TlsIdentity::open(&config.identity, password)?;
        let connector = super::tls::connector(&identity, &config.peer_trust)?;
        let signer = Pkcs12Key::open(&config.signing_key, password)
            .map_err(|e| RoutingError::Config(format!("routing.signing_key: {e}")))?;
        let codes = config.status_codes.clone();
        let authority_cert = match &config.directory_authority_cert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    RoutingError::Config(format!(
                        "routing.directory_authority_cert {}: {e}",
                        path.display()
                    ))
                })?;
                Some(openssl::x509::X509::from_pem(&pem).map_err(|e| {
                    RoutingError::Config(format!(
                        "routing.directory_authority_cert {}: not a PEM certificate: {e}",
                        path.display()
                    ))
                })?)
            }
            None => None,
        };
        Ok(Self {
            authority_cert,
            directory_retry: Default::default(),
            config,
            store,
            trust: validation.trust_lists,
            fetcher: validation.fetcher.map(Arc::from),
            commits: GroupCommit::default(),
            outbox_ready: tokio::sync::Notify::new(),
            signer: Arc::new(signer),
            peers: PeerClient::new(connector),
            identity,
            codes,
            limits: edxml::Limits::default(),
            counters: RouteCounters::default(),
        })
    }

    /// The key that signs this node's status messages (and, at the directory authority, its
    /// directory updates).
    pub(super) fn signer(&self) -> &Arc<Pkcs12Key> {
        &self.signer
    }

    /// Writes `a` in one transaction, shared with concurrent writes ([`GroupCommit`]); as
    /// [`Store::route_accept`], `Ok(false)` when nothing of it was written (an idempotency
    /// key stored meanwhile, a lost lease, a status already here). Wakes the outbox worker
    /// when it queued items.
    pub(super) async fn commit(&self, a: Acceptance, now: String) -> Result<bool, RoutingError> {
        let queued = !a.outbox.is_empty();
        let written = self.commits.accept(&self.store, a, now).await?;
        if written && queued {
            self.outbox_ready.notify_one();
        }
        Ok(written)
    }

    /// Completes when a write has queued outbox items since the last call (or at once when
    /// one did before it).
    pub(super) async fn outbox_queued(&self) {
        self.outbox_ready.notified().await
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The client of the peers (node certificate, peer trust, open connections).
    pub fn peers(&self) -> &PeerClient {
        &self.peers
    }

    /// The node's TLS identity.
    pub fn identity(&self) -> &TlsIdentity {
        &self.identity
    }

    /// The peer (node id) behind a verified client certificate, or `PeerUnknown`.
    pub fn peer_for_certificate(&self, fingerprint: &str) -> Result<String, RoutingError> {
        self.config
            .peer_by_fingerprint(fingerprint)
            .map(|p| p.node_id.clone())
            .ok_or_else(|| {
                RoutingError::PeerUnknown(format!(
                    "certificate {fingerprint} is not a configured peer of node {}",
                    self.config.node_id
                ))
            })
    }

    /// The validation context of one receipt: now, the node's trust anchors and its shared
    /// fetcher.
    fn context(&self) -> ValidationContext {
        self.context_at(OffsetDateTime::now_utc())
    }

    /// The validation context at `at` (an envelope's arrival, for its re-validation).
    fn context_at(&self, at: OffsetDateTime) -> ValidationContext {
        ValidationContext {
            at,
            trust_lists: self.trust.clone(),
            fetcher: self
                .fetcher
                .clone()
                .map(|f| Box::new(f) as Box<dyn Fetcher>),
        }
    }

    /// Schema, signature and trace of an envelope, validated at `at` (its arrival): passed,
    /// failed for good, or INDETERMINATE/TRY_LATER with every signed part intact (the
    /// revocation status could not be obtained: [`Check::Temporary`]).
    async fn check(&self, bytes: Arc<Vec<u8>>, at: OffsetDateTime) -> Result<Check, RoutingError> {
        use crate::verify::SubIndication;
        let ctx = self.context_at(at);
        let header = TraceHeader {
            organ_id: self.config.trace_organ().to_string(),
            timestamp: OffsetDateTime::now_utc(),
        };
        blocking(move || {
            let hop =
                edxml::verify_for_hop(&bytes, &crate::verify::Policy::default(), &ctx, &header)?;
            let serial = hop
                .verdict
                .report
                .signatures
                .first()
                .and_then(|s| s.signer.as_ref())
                .map(|s| s.serial.clone());
            match hop.stamped {
                Some(stamped) if hop.verdict.passed => Ok(Check::Passed(Checked {
                    signer: serial.and_then(|s| signer_facts(&bytes, &s)),
                    package: hop.package,
                    digest: hop.verdict.content_digest,
                    stamped,
                })),
                _ => {
                    let report = &hop.verdict.report;
                    let temporary = report.sub_indication == Some(SubIndication::TryLater)
                        && report.signatures.iter().all(|s| s.intact)
                        && hop.verdict.attachments.iter().all(|a| a.intact);
                    let reason = hop
                        .verdict
                        .reason
                        .unwrap_or_else(|| "the signature does not verify".into());
                    if temporary {
                        return Ok(Check::Temporary {
                            package: hop.package,
                            digest: hop.verdict.content_digest,
                            reason,
                        });
                    }
                    Ok(Check::Failed {
                        package: hop.package,
                        reason,
                    })
                }
            }
        })
        .await
    }

    /// The name of agency `organ` for the status messages it sends: its People's Committee in
    /// the agency directory, else the name the envelope gives it, else its id.
    async fn agency_name(&self, doc: &DocRef, organ: &str) -> Result<String, RoutingError> {
        let units = self.store.units_by_organ_id(organ).await?;
        if let Some(unit) = units.first() {
            return Ok(crate::directory::committee_name(unit));
        }
        Ok(doc
            .names
            .iter()
            .find(|(id, _)| id == organ)
            .map(|(_, name)| name.clone())
            .unwrap_or_else(|| organ.to_string()))
    }

    /// Signs a status about `doc` from `from` (an agency served here, or this node).
    async fn status(
        &self,
        doc: &DocRef,
        from: &str,
        code: StatusCode,
        description: Option<String>,
    ) -> Result<Vec<u8>, RoutingError> {
        let status = Status {
            response_for: ResponseFor {
                organ_id: doc.sender.clone(),
                code: doc.code.clone(),
                promulgation_date: doc.promulgation_date,
                document_id: doc.document_id.clone(),
            },
            from: Organ::new(from, self.agency_name(doc, from).await?),
            code,
            description,
            timestamp: OffsetDateTime::now_utc(),
            staff: None,
        };
        let signer = self.signer.clone();
        let codes = self.codes.clone();
        blocking(move || Ok(status.build_signed(signer.as_ref(), &codes)?)).await
    }

    /// The status this node answers a delivery from `from_node` with, signed; `None` for a
    /// `local` submission, which gets no status message ([`Receipt::message`]).
    async fn receipt_message(
        &self,
        from_node: &str,
        doc: &DocRef,
        code: StatusCode,
        description: Option<String>,
    ) -> Result<Option<Vec<u8>>, RoutingError> {
        if from_node == LOCAL {
            return Ok(None);
        }
        self.status(doc, self.config.trace_organ(), code, description)
            .await
            .map(Some)
    }

    /// Handles an envelope from `from_node` (`local` for an operator's `route send`) for
    /// `hop_recipients` (all of `To` when `None`).
    pub async fn receive(
        &self,
        from_node: &str,
        bytes: Vec<u8>,
        hop_recipients: Option<Vec<String>>,
    ) -> Result<Receipt, RoutingError> {
        self.receive_for(from_node, bytes, hop_recipients, None)
            .await
    }

    /// An operator's `route send` on behalf of `agency` (an API client's): as
    /// [`Node::receive`] from `local`, refused with 02 unless the envelope's sender is
    /// `agency`.
    pub async fn send_as(&self, agency: &str, bytes: Vec<u8>) -> Result<Receipt, RoutingError> {
        self.receive_for(LOCAL, bytes, None, Some(agency)).await
    }

    async fn receive_for(
        &self,
        from_node: &str,
        bytes: Vec<u8>,
        hop_recipients: Option<Vec<String>>,
        agency: Option<&str>,
    ) -> Result<Receipt, RoutingError> {
        let arrival = OffsetDateTime::now_utc();
        let bytes = Arc::new(bytes);
        let checked = self.check(bytes.clone(), arrival).await?;
        let hop = hop_recipients.clone();
        match self
            .decide(from_node, checked, hop_recipients, agency, When::Arrival)
            .await?
        {
            Decision::Answer(receipt) => Ok(receipt),
            Decision::Temporary {
                doc,
                digest,
                reason,
            } => {
                self.hold(
                    from_node, &bytes, hop, agency, &doc, digest, reason, arrival,
                )
                .await
            }
        }
    }

    /// The checks that do not need the signature's verdict, then the verdict: refusal,
    /// acceptance, or (revocation unavailable) not yet decidable.
    async fn decide(
        &self,
        from_node: &str,
        checked: Check,
        hop_recipients: Option<Vec<String>>,
        agency: Option<&str>,
        when: When,
    ) -> Result<Decision, RoutingError> {
        let package = checked.package();
        let doc = DocRef::of(package);
        let answer = |r: Receipt| Ok(Decision::Answer(r));
        if let Check::Failed { reason, .. } = &checked {
            return answer(self.refuse(&doc, from_node, reason.clone(), when).await?);
        }
        let to: Vec<String> = package
            .header
            .to
            .iter()
            .map(|o| o.organ_id.clone())
            .collect();
        let recipients = match hop_recipients {
            Some(list) if !list.is_empty() => {
                if let Some(stray) = list.iter().find(|r| !to.contains(r)) {
                    let reason = format!("recipient {stray} is not addressed by the envelope");
                    return answer(self.refuse(&doc, from_node, reason, when).await?);
                }
                list
            }
            _ => to,
        };
        let business = package.business.doc_type;
        if let Some(why) = self.looped(&doc, business, &recipients, from_node).await? {
            self.counters.loops.fetch_add(1, Ordering::Relaxed);
            tracing::error!(alert = "route_loop", document_id = %doc.document_id, from = %from_node,
                reason = %why, "routing: a document came back to this node (routing loop), answered 02");
            return answer(self.refuse(&doc, from_node, why.to_string(), when).await?);
        }
        if let Some(reason) = self.unauthorized(from_node, &doc.sender).await? {
            return answer(self.refuse(&doc, from_node, reason, when).await?);
        }
        if let Some(agency) = agency.filter(|a| *a != doc.sender) {
            let reason = format!(
                "a client of agency {agency} may not send for agency {}",
                doc.sender
            );
            return answer(self.refuse(&doc, from_node, reason, when).await?);
        }
        let target = package
            .business
            .document_id
            .clone()
            .unwrap_or_else(|| doc.document_id.clone());
        if let Some(reason) = self.unsigned_reference(package, business, &target) {
            return answer(self.refuse(&doc, from_node, reason, when).await?);
        }
        let (package, digest, stamped, signer) = match checked {
            Check::Passed(c) => (c.package, c.digest, c.stamped, c.signer),
            Check::Temporary {
                package,
                digest,
                reason,
            } => {
                // a redelivery of what is already here needs no verdict: same signed content
                if !self
                    .all_duplicates(&doc, business, &recipients, &digest)
                    .await?
                {
                    return Ok(Decision::Temporary {
                        doc,
                        digest,
                        reason,
                    });
                }
                (package, digest, Vec::new(), None)
            }
            Check::Failed { reason, .. } => {
                return answer(self.refuse(&doc, from_node, reason, when).await?)
            }
        };
        if !stamped.is_empty() {
            if let Some(reason) = self.wrong_signer(&doc.sender, signer.as_ref()).await? {
                return answer(self.refuse(&doc, from_node, reason, when).await?);
            }
        }
        for _ in 0..3 {
            match self
                .accept(
                    from_node,
                    &stamped,
                    &package,
                    &doc,
                    &digest,
                    business,
                    &target,
                    &recipients,
                    when,
                )
                .await?
            {
                Accepted::Done(receipt) => return answer(receipt),
                Accepted::Refused(why) => {
                    return answer(self.refuse(&doc, from_node, why.to_string(), when).await?);
                }
                Accepted::Raced => continue,
            }
        }
        Err(RoutingError::Invalid(format!(
            "document {} keeps racing with concurrent deliveries",
            doc.document_id
        )))
    }

    /// A recall, update or replace whose signed header does not name its target (when
    /// `signed_recall_reference`): the `Bussiness` element is outside the signature, so only
    /// `ResponseFor` in the signed `MessageHeader` shows the agency meant to act on `target`.
    fn unsigned_reference(
        &self,
        package: &edxml::Package,
        business: BusinessDocType,
        target: &str,
    ) -> Option<String> {
        if business == BusinessDocType::New || !self.config.signed_recall_reference {
            return None;
        }
        let h = &package.header;
        match &h.response_for {
            Some(r) if r.document_id == target && r.organ_id == h.from.organ_id => None,
            _ => Some(format!(
                "a {} (BussinessDocType {}) must name document {target} of {} in the signed MessageHeader (ResponseFor): the agency's signature does not cover the document type",
                business_name(business),
                business.code(),
                h.from.organ_id
            )),
        }
    }

    /// A routing loop: the document for one of `recipients` came back from `from_node`, the
    /// node this node forwarded it to (e.g. a node that has not recorded a directory merge
    /// routes the redirected document back up the path).
    async fn looped(
        &self,
        doc: &DocRef,
        business: BusinessDocType,
        recipients: &[String],
        from_node: &str,
    ) -> Result<Option<Refusal>, RoutingError> {
        if from_node == LOCAL {
            return Ok(None);
        }
        for r in recipients {
            let row = self
                .store
                .route_document(&doc.sender, &doc.document_id, i64::from(business.code()), r)
                .await?;
            if row.is_some_and(|row| row.next_node.as_deref() == Some(from_node)) {
                return Ok(Some(Refusal::Loop {
                    document_id: doc.document_id.clone(),
                    recipient: r.clone(),
                    node: from_node.to_string(),
                }));
            }
        }
        Ok(None)
    }

    /// Whether every recipient already has this document here with this digest.
    async fn all_duplicates(
        &self,
        doc: &DocRef,
        business: BusinessDocType,
        recipients: &[String],
        digest: &str,
    ) -> Result<bool, RoutingError> {
        for r in recipients {
            match self
                .store
                .route_document(&doc.sender, &doc.document_id, i64::from(business.code()), r)
                .await?
            {
                Some(row) if row.digest == digest => {}
                _ => return Ok(false),
            }
        }
        Ok(!recipients.is_empty())
    }

    /// The agency binding of the signing certificate (agency directory): `Some(reason)` when
    /// the certificate is not `sender`'s.
    async fn wrong_signer(
        &self,
        sender: &str,
        signer: Option<&SignerFacts>,
    ) -> Result<Option<String>, RoutingError> {
        use crate::directory::{Directory, DirectoryError, SignerBinding};
        let directory = Directory::new(self.store.clone());
        let Some(facts) = signer else {
            let recorded = directory
                .certificate_identities(sender)
                .await
                .map_err(|e| match e {
                    DirectoryError::Store(s) => RoutingError::Store(s),
                    other => RoutingError::Invalid(other.to_string()),
                })?;
            return Ok((!recorded.is_empty()).then(|| {
                format!("the signing certificate cannot be read, and agency {sender} has recorded certificates")
            }));
        };
        let binding = directory
            .check_signer(sender, facts)
            .await
            .map_err(|e| match e {
                DirectoryError::Store(s) => RoutingError::Store(s),
                other => RoutingError::Invalid(other.to_string()),
            })?;
        Ok(match binding {
            SignerBinding::Matches | SignerBinding::Unrecorded => None,
            SignerBinding::Mismatch { recorded_for } if recorded_for.is_empty() => Some(format!(
                "the envelope is from agency {sender}, but its signing certificate ({}) is not one recorded for {sender} in the agency directory",
                facts.describe()
            )),
            SignerBinding::Mismatch { recorded_for } => Some(format!(
                "the envelope is from agency {sender}, but it is signed with the certificate of agency {} ({})",
                recorded_for.join(", "),
                facts.describe()
            )),
        })
    }

    /// Holds an envelope whose signer's revocation status could not be obtained: stored
    /// durably, answered 01 with `held`, re-validated by [`Node::revalidate_due`].
    #[allow(clippy::too_many_arguments)]
    async fn hold(
        &self,
        from_node: &str,
        bytes: &[u8],
        hop_recipients: Option<Vec<String>>,
        agency: Option<&str>,
        doc: &DocRef,
        digest: String,
        reason: String,
        arrival: OffsetDateTime,
    ) -> Result<Receipt, RoutingError> {
        let policy = &self.config.delivery;
        let now = now_ms();
        let deadline = now + policy.revalidate_deadline.as_millis() as i64;
        let first = super::backoff::delay(
            policy.revalidate_initial,
            policy.revalidate_max,
            1,
            rand::random::<f64>(),
        );
        let deadline_text = crate::clock::unix_rfc3339(deadline / 1000).unwrap_or_default();
        let row = PendingRow {
            id: random_id("pv_"),
            from_node: from_node.into(),
            agency: agency.map(str::to_string),
            recipients: serde_json::to_string(&hop_recipients.unwrap_or_default())
                .unwrap_or_else(|_| "[]".into()),
            digest,
            sender_organ: doc.sender.clone(),
            document_id: doc.document_id.clone(),
            bytes: bytes.to_vec(),
            received_at: rfc3339(arrival),
            deadline_ms: deadline,
            next_check_ms: now + first.as_millis() as i64,
            attempts: 0,
            last_reason: reason.clone(),
            state: "waiting".into(),
        };
        let note = format!(
            "held: the revocation status of the signer cannot be obtained now ({reason}); stored, re-validated as of its arrival {} until {deadline_text}",
            row.received_at
        );
        let event = trace(doc, "held-revocation", format!("from {from_node}: {note}"));
        if self.store.route_hold(&row, &event).await? {
            self.counters.held.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(alert = "route_revocation_unavailable", document_id = %doc.document_id, from = %from_node,
                reason = %reason, deadline = %deadline_text, "routing: envelope held until its signer's revocation status can be obtained");
        }
        let message = self
            .receipt_message(from_node, doc, StatusCode::Received, Some(note.clone()))
            .await?;
        Ok(Receipt {
            code: StatusCode::Received,
            reason: None,
            message,
            document_id: doc.document_id.clone(),
            held: Some(note),
        })
    }

    /// Re-validates the held envelopes that are due (at their arrival time): accepted as if
    /// they arrived now when the verdict passes, answered 02 (a status message to the
    /// sender) when it fails or when the deadline passed, else tried again later. Returns how
    /// many were handled.
    pub async fn revalidate_due(&self, owner: &str) -> Result<usize, RoutingError> {
        let now = now_ms();
        let lease = self.config.delivery.lease.as_millis() as i64;
        let due = self
            .store
            .route_pending_claim(owner, now, now + lease, 8)
            .await?;
        let n = due.len();
        for p in due {
            if let Err(e) = self.revalidate(owner, &p).await {
                tracing::warn!(document_id = %p.document_id, error = %e, "routing: re-validating a held envelope failed");
            }
        }
        Ok(n)
    }

    async fn revalidate(&self, owner: &str, p: &PendingRow) -> Result<(), RoutingError> {
        let arrival = time::OffsetDateTime::parse(
            &p.received_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| RoutingError::Invalid(format!("held envelope {}: {e}", p.id)))?;
        let checked = self.check(Arc::new(p.bytes.clone()), arrival).await?;
        let recipients: Vec<String> = serde_json::from_str(&p.recipients).unwrap_or_default();
        let hop = (!recipients.is_empty()).then_some(recipients);
        let decision = self
            .decide(
                &p.from_node,
                checked,
                hop,
                p.agency.as_deref(),
                When::Revalidation,
            )
            .await?;
        let now = now_rfc3339();
        match decision {
            Decision::Answer(r) if r.code == StatusCode::Received => {
                if self
                    .store
                    .route_pending_finish(&p.id, owner, "accepted", "validated", &now)
                    .await?
                {
                    self.counters.revalidated.fetch_add(1, Ordering::Relaxed);
                    self.store
                        .route_trace(&TraceEvent {
                            document_id: p.document_id.clone(),
                            sender_organ: p.sender_organ.clone(),
                            at: now.clone(),
                            event: "revalidated".into(),
                            detail: format!(
                                "validated as of its arrival {} after {} re-validation(s); accepted",
                                p.received_at,
                                p.attempts + 1
                            ),
                        })
                        .await?;
                    tracing::warn!(document_id = %p.document_id, "routing: held envelope validated and accepted");
                }
            }
            Decision::Answer(r) => {
                let reason = r.reason.unwrap_or_default();
                self.store
                    .route_pending_finish(&p.id, owner, "refused", &reason, &now)
                    .await?;
            }
            Decision::Temporary { doc, reason, .. } if now_ms() >= p.deadline_ms => {
                let why = format!(
                    "the revocation status of the signer could not be obtained from its arrival {} until the deadline: {reason}",
                    p.received_at
                );
                self.counters.held_expired.fetch_add(1, Ordering::Relaxed);
                tracing::error!(alert = "route_revocation_deadline", document_id = %p.document_id, from = %p.from_node,
                    reason = %reason, "routing: held envelope answered 02 at its deadline");
                self.refuse(&doc, &p.from_node, why.clone(), When::Revalidation)
                    .await?;
                self.store
                    .route_pending_finish(&p.id, owner, "refused", &why, &now)
                    .await?;
            }
            Decision::Temporary { reason, .. } => {
                let policy = &self.config.delivery;
                let attempts = p.attempts + 1;
                let delay = super::backoff::delay(
                    policy.revalidate_initial,
                    policy.revalidate_max,
                    attempts as u32 + 1,
                    rand::random::<f64>(),
                );
                let next = (now_ms() + delay.as_millis() as i64).min(p.deadline_ms.max(now_ms()));
                self.store
                    .route_pending_reschedule(&p.id, owner, attempts, next, &reason)
                    .await?;
            }
        }
        Ok(())
    }

    /// The reverse-path rule: a peer may deliver what this node would route back through it
    /// for `organ` (a document's sender, a status's author); `None` when allowed.
    async fn unauthorized(
        &self,
        from_node: &str,
        organ: &str,
    ) -> Result<Option<String>, RoutingError> {
        if from_node == LOCAL {
            return Ok(None);
        }
        Ok(match self.next_hop(organ).await? {
            Some(Hop::Peer(p)) if p == from_node => None,
            _ => Some(format!(
                "node {from_node} is not authorized to deliver for agency {organ}"
            )),
        })
    }

    /// The routing table with the agency directory: local when served here, else the peer
    /// that lists `organ`, else the peer whose `serves_below` names `organ` or its nearest
    /// ancestor in the directory, else the default route (`*`); `None` when no route exists.
    pub async fn next_hop(&self, organ: &str) -> Result<Option<Hop>, RoutingError> {
        if self.config.serves(organ) {
            return Ok(Some(Hop::Local));
        }
        if let Some(p) = self.config.listed_peer(organ) {
            return Ok(Some(Hop::Peer(p.node_id.clone())));
        }
        if self.config.has_subtrees() {
            let directory = crate::directory::Directory::new(self.store.clone());
            let mut chain = vec![organ.to_string()];
            chain.extend(directory.ancestors(organ).await.map_err(|e| match e {
                crate::directory::DirectoryError::Store(s) => RoutingError::Store(s),
                other => RoutingError::Invalid(other.to_string()),
            })?);
            for a in &chain {
                if let Some(p) = self.config.subtree_peer(a) {
                    return Ok(Some(Hop::Peer(p.node_id.clone())));
                }
            }
        }
        Ok(self
            .config
            .default_peer()
            .map(|p| Hop::Peer(p.node_id.clone())))
    }

    /// Refuses an envelope with 02 and `reason`: in the answer on arrival; after a
    /// re-validation (the sender was told the envelope is held) as a status 02 message from
    /// this node to the document's sender.
    async fn refuse(
        &self,
        doc: &DocRef,
        from_node: &str,
        reason: String,
        when: When,
    ) -> Result<Receipt, RoutingError> {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(document_id = %doc.document_id, from = %from_node, reason = %reason, "envelope refused (status 02)");
        let message = match when {
            When::Arrival => {
                self.store
                    .route_trace(&trace(
                        doc,
                        "refused",
                        format!("from {from_node}: {reason}"),
                    ))
                    .await?;
                self.receipt_message(from_node, doc, StatusCode::Rejected, Some(reason.clone()))
                    .await?
            }
            When::Revalidation => {
                let mut a = Acceptance::default();
                a.traces.push(trace(
                    doc,
                    "refused",
                    format!("held envelope from {from_node}: {reason}"),
                ));
                let from = self.config.trace_organ().to_string();
                self.queue_status(
                    &mut a,
                    doc,
                    &from,
                    StatusCode::Rejected,
                    Some(reason.clone()),
                )
                .await?;
                self.commit(a, now_rfc3339()).await?;
                None
            }
        };
        Ok(Receipt {
            code: StatusCode::Rejected,
            reason: Some(reason),
            message,
            document_id: doc.document_id.clone(),
            held: None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn accept(
        &self,
        from_node: &str,
        stamped: &[u8],
        package: &edxml::Package,
        doc: &DocRef,
        digest: &str,
        business: BusinessDocType,
        target: &str,
        recipients: &[String],
        when: When,
    ) -> Result<Accepted, RoutingError> {
        let now = now_rfc3339();
        let doc_type = i64::from(business.code());
        let mut fresh = Vec::new();
        let mut duplicates = Vec::new();
        for r in recipients {
            match self
                .store
                .route_document(&doc.sender, &doc.document_id, doc_type, r)
                .await?
            {
                Some(row) if row.digest == digest => duplicates.push(r.clone()),
                Some(_) => {
                    return Ok(Accepted::Refused(Refusal::ConflictingRedelivery {
                        document_id: doc.document_id.clone(),
                        recipient: r.clone(),
                    }))
                }
                None => fresh.push(r.clone()),
            }
        }
        let mut a = Acceptance {
            meta: Some(meta_of(package)),
            ..Acceptance::default()
        };
        if !duplicates.is_empty() {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            a.traces.push(trace(
                doc,
                "duplicate",
                format!(
                    "from {from_node} for {}: already here, acknowledged again",
                    duplicates.join(", ")
                ),
            ));
        }
        if !fresh.is_empty() {
            let mut routes = Vec::new();
            for r in &fresh {
                let to = match self.resolve(r).await? {
                    Resolved::MergedInto(successor) => {
                        a.traces.push(trace(
                            doc,
                            "redirected",
                            format!("{r} now delivers to {successor} (agency directory)"),
                        ));
                        successor
                    }
                    Resolved::Stands => r.clone(),
                    Resolved::Closed(why) => return Ok(Accepted::Refused(why)),
                };
                match self.next_hop(&to).await? {
                    Some(hop) => routes.push((r.clone(), to, hop)),
                    None => return Ok(Accepted::Refused(Refusal::NoRoute(to))),
                }
            }
            // an addressee that was not redirected first: it keeps the document when the
            // envelope also names an agency merged into it
            routes.sort_by_key(|(r, to, _)| r != to);
            let envelope_id = random_id("env_");
            a.envelope = Some(EnvelopeRow {
                id: envelope_id.clone(),
                digest: digest.into(),
                bytes: stamped.to_vec(),
                from_node: from_node.into(),
                received_at: now.clone(),
            });
            a.traces.push(trace(
                doc,
                "received",
                format!(
                    "from {from_node} at node {} ({} trace headers before this hop)",
                    self.config.node_id,
                    package.traces.len()
                ),
            ));
            let mut by_peer: Vec<(String, Vec<String>)> = Vec::new();
            for (r, to, hop) in routes {
                let mut row = DocumentRow {
                    id: random_id("rd_"),
                    sender_organ: doc.sender.clone(),
                    document_id: doc.document_id.clone(),
                    doc_type,
                    recipient_organ: r.clone(),
                    owner_organ: to.clone(),
                    digest: digest.into(),
                    envelope_id: envelope_id.clone(),
                    target_document: target.into(),
                    state: RowState::Forwarding.as_str().into(),
                    next_node: None,
                    created_at: now.clone(),
                    updated_at: now.clone(),
                };
                match hop {
                    Hop::Peer(peer) => {
                        row.next_node = Some(peer.clone());
                        match by_peer.iter_mut().find(|(p, _)| *p == peer) {
                            Some((_, list)) => list.push(r.clone()),
                            None => by_peer.push((peer, vec![r.clone()])),
                        }
                    }
                    Hop::Local if self.held_twice(&a, doc, doc_type, &to).await? => {
                        row.state = RowState::MergedDuplicate.as_str().into();
                        a.traces.push(trace(
                            doc,
                            RowState::MergedDuplicate.as_str(),
                            format!("for {r}: {to} already holds this document here, not delivered twice"),
                        ));
                    }
                    Hop::Local => {
                        self.deliver_locally(&mut a, &mut row, &to, doc, business, target)
                            .await?;
                    }
                }
                a.documents.push(row);
            }
            for (peer, list) in by_peer {
                a.traces.push(trace(
                    doc,
                    "queued",
                    format!("for {} via node {peer}", list.join(", ")),
                ));
                a.outbox.push(OutboxItem {
                    id: random_id("ob_"),
                    kind: OutboxKind::Envelope.as_str().into(),
                    next_node: peer,
                    document_id: doc.document_id.clone(),
                    envelope_id: Some(envelope_id.clone()),
                    recipients: serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()),
                    payload: None,
                    attempts: 0,
                });
            }
        }
        if !self.commit(a, now).await? {
            return Ok(Accepted::Raced);
        }
        if !fresh.is_empty() {
            self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        }
        let message = match when {
            When::Arrival => {
                self.receipt_message(from_node, doc, StatusCode::Received, None)
                    .await?
            }
            When::Revalidation => None,
        };
        Ok(Accepted::Done(Receipt {
            code: StatusCode::Received,
            reason: None,
            message,
            document_id: doc.document_id.clone(),
            held: None,
        }))
    }

    /// Whether `owner` already holds this document (same sender, DocumentId and type) here
    /// under another addressee: the envelope (or an earlier one) addressed both an agency and
    /// the agency it was merged into.
    async fn held_twice(
        &self,
        a: &Acceptance,
        doc: &DocRef,
        doc_type: i64,
        owner: &str,
    ) -> Result<bool, RoutingError> {
        if a.documents
            .iter()
            .any(|d| d.next_node.is_none() && d.owner_organ == owner)
        {
            return Ok(true);
        }
        Ok(self
            .store
            .route_owned(&doc.sender, &doc.document_id, doc_type, owner)
            .await?
            .is_some())
    }

    /// Applies the recall/update state machine to a row delivered here and queues the status
    /// the recipient's node sends back.
    async fn deliver_locally(
        &self,
        a: &mut Acceptance,
        row: &mut DocumentRow,
        agency: &str,
        doc: &DocRef,
        business: BusinessDocType,
        target: &str,
    ) -> Result<(), RoutingError> {
        let recipient = row.recipient_organ.clone();
        let original = if business == BusinessDocType::New {
            None
        } else {
            self.store
                .route_original(&doc.sender, target, &recipient, agency)
                .await?
        };
        let original_state = match &original {
            Some(o) => Some(o.state.parse::<RowState>()?),
            None => None,
        };
        let outcome = lifecycle::on_arrival(business, original_state);
        row.state = outcome.row_state.as_str().into();
        a.traces.push(trace(
            doc,
            "delivered",
            format!("to the inbox of {agency} ({})", outcome.row_state),
        ));
        if let (Some(o), Some(state)) = (&original, outcome.original_state) {
            a.updates.push((o.id.clone(), state.as_str().into()));
            a.traces.push(trace(
                doc,
                state.as_str(),
                format!("{target} for {recipient}"),
            ));
        }
        self.queue_status(a, doc, agency, outcome.status, None)
            .await?;
        if business == BusinessDocType::New {
            // revoke/update/replace rows that arrived before this original
            let mut state = outcome.row_state;
            for held in self
                .store
                .route_held(&doc.sender, &doc.document_id, &recipient, agency)
                .await?
            {
                let kind = business_of(held.doc_type)?;
                let replay = lifecycle::on_arrival(kind, Some(state));
                a.updates
                    .push((held.id.clone(), replay.row_state.as_str().into()));
                if let Some(s) = replay.original_state {
                    state = s;
                }
                a.traces.push(trace(
                    doc,
                    "held-applied",
                    format!(
                        "{} (type {}) now {} ; original {state}",
                        held.document_id, held.doc_type, replay.row_state
                    ),
                ));
                if replay.status != StatusCode::Received {
                    self.queue_status(a, doc, agency, replay.status, None)
                        .await?;
                }
            }
            row.state = state.as_str().into();
        }
        let meta = a.meta.clone().unwrap_or_default();
        a.events.push(super::events::document_received(row, &meta));
        Ok(())
    }

    /// Follows the agency directory for `organ`: merged away, standing (or unknown to the
    /// directory), or closed to deliveries (dissolved).
    async fn resolve(&self, organ: &str) -> Result<Resolved, RoutingError> {
        use crate::directory::{Directory, DirectoryError};
        match Directory::new(self.store.clone()).resolve(organ).await {
            Ok(r) => Ok(match r.redirected_from {
                Some(_) => Resolved::MergedInto(r.organ_id),
                None => Resolved::Stands,
            }),
            Err(DirectoryError::NotFound(_)) => Ok(Resolved::Stands),
            Err(DirectoryError::Store(e)) => Err(RoutingError::Store(e)),
            Err(e) => Ok(Resolved::Closed(Refusal::RecipientClosed {
                recipient: organ.to_string(),
                why: e.to_string(),
            })),
        }
    }

    /// Queues (or, when the sender is served here, stores) a status from `from` about `doc`.
    async fn queue_status(
        &self,
        a: &mut Acceptance,
        doc: &DocRef,
        from: &str,
        status: StatusCode,
        description: Option<String>,
    ) -> Result<(), RoutingError> {
        let code = self.codes.code(status).to_string();
        let Some(hop) = self.next_hop(&doc.sender).await? else {
            // nowhere to send it: not signed at all
            a.traces.push(trace(
                doc,
                "status-unroutable",
                format!("no route to {} for status {code}", doc.sender),
            ));
            return Ok(());
        };
        let bytes = self.status(doc, from, status, description.clone()).await?;
        a.traces
            .push(trace(doc, "status-sent", format!("{code} from {from}")));
        match hop {
            Hop::Local => {
                let row = StatusRow {
                    id: random_id("st_"),
                    document_id: doc.document_id.clone(),
                    sender_organ: doc.sender.clone(),
                    from_organ: from.into(),
                    code,
                    description,
                    at: now_rfc3339(),
                    issued_at: Some(now_rfc3339()),
                    bytes,
                };
                a.events.push(super::events::status_received(&row));
                a.statuses.push(row);
            }
            Hop::Peer(peer) => a.outbox.push(status_item(peer, doc, bytes)),
        }
        Ok(())
    }

    /// Handles a signed status message from `from_node`: verified, stored once, passed on
    /// toward the document's sender.
    pub async fn receive_status(
        &self,
        from_node: &str,
        bytes: Vec<u8>,
    ) -> Result<bool, RoutingError> {
        let codes = self.codes.clone();
        let limits = self.limits;
        let ctx = self.context();
        let bytes = Arc::new(bytes);
        let status = {
            let bytes = bytes.clone();
            blocking(move || {
                let (status, verdict) = edxml::parse_verified_status(
                    &bytes,
                    &codes,
                    &limits,
                    &crate::verify::Policy::default(),
                    &ctx,
                )?;
                if !verdict.passed {
                    let why = verdict.reason.unwrap_or_else(|| "does not verify".into());
                    if verdict.report.sub_indication == Some(crate::verify::SubIndication::TryLater)
                        && verdict.report.signatures.iter().all(|s| s.intact)
                    {
                        // the sender keeps it and tries again: a status is never lost to an outage
                        return Err(RoutingError::RevocationUnavailable(format!(
                            "status message signature: {why}"
                        )));
                    }
                    return Err(RoutingError::Invalid(format!(
                        "status message signature: {why}"
                    )));
                }
                Ok(status)
            })
            .await?
        };
        if let Some(reason) = self.unauthorized(from_node, &status.from.organ_id).await? {
            return Err(RoutingError::PeerUnknown(reason));
        }
        let code = self.codes.code(status.code).to_string();
        let doc = DocRef {
            sender: status.response_for.organ_id.clone(),
            document_id: status.response_for.document_id.clone(),
            code: status.response_for.code.clone(),
            promulgation_date: status.response_for.promulgation_date,
            names: Vec::new(),
        };
        let mut a = Acceptance::default();
        a.traces.push(trace(
            &doc,
            "status",
            format!(
                "{code} from {} via {from_node}{}",
                status.from.organ_id,
                status
                    .description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        ));
        let local = match self.next_hop(&doc.sender).await? {
            Some(Hop::Local) => true,
            Some(Hop::Peer(peer)) => {
                a.outbox.push(status_item(peer, &doc, bytes.to_vec()));
                false
            }
            None => return Err(RoutingError::Invalid(format!("no route to {}", doc.sender))),
        };
        let row = StatusRow {
            id: random_id("st_"),
            document_id: doc.document_id.clone(),
            sender_organ: doc.sender.clone(),
            from_organ: status.from.organ_id.clone(),
            code,
            description: status.description.clone(),
            at: now_rfc3339(),
            issued_at: Some(rfc3339(status.timestamp)),
            bytes: bytes.to_vec(),
        };
        if local {
            a.events.push(super::events::status_received(&row));
        }
        // stored once with what it queues, in one transaction: a redelivery writes nothing
        // (already stored and passed on)
        a.status_once = Some(row);
        self.commit(a, now_rfc3339()).await
    }

    /// An operator's status (03..06, or the update codes) for `document_id` delivered here,
    /// for the agency `recipient` (every local recipient when `None`): the rows it holds,
    /// including those addressed to an agency merged into it; the status is sent from the
    /// holder. Returns the rows acknowledged.
    pub async fn acknowledge(
        &self,
        document_id: &str,
        recipient: Option<&str>,
        code: &str,
        description: Option<String>,
    ) -> Result<Vec<DocumentRow>, RoutingError> {
        let status = self.codes.status(code);
        let Some((status, new_state)) =
            status.and_then(|s| lifecycle::state_for_status(s).map(|state| (s, state)))
        else {
            return Err(RoutingError::Invalid(format!(
                "status {code} cannot be sent by an operator (use {})",
                self.config.operator_codes()
            )));
        };
        let answers_update = matches!(new_state, RowState::UpdateAgreed | RowState::UpdateRefused);
        let mut rows = Vec::new();
        for r in self.store.route_documents(document_id).await? {
            if r.document_id != document_id
                || r.next_node.is_some()
                || recipient.is_some_and(|x| x != r.owner_organ)
            {
                continue;
            }
            let open = r.state.parse::<RowState>()?.is_open();
            let update = business_of(r.doc_type)? == BusinessDocType::Update;
            if open && update == answers_update {
                rows.push(r);
            }
        }
        if rows.is_empty() {
            return Err(RoutingError::NotFound(format!(
                "{document_id}: nothing in this node's inbox to answer with {code}"
            )));
        }
        let mut a = Acceptance::default();
        for row in &rows {
            let envelope = self
                .store
                .route_envelope(&row.envelope_id)
                .await?
                .ok_or_else(|| RoutingError::NotFound(row.envelope_id.clone()))?;
            let limits = self.limits;
            let package =
                blocking(move || Ok::<_, RoutingError>(edxml::parse(&envelope.bytes, &limits)?))
                    .await?;
            let doc = DocRef::of(&package);
            a.updates.push((row.id.clone(), new_state.as_str().into()));
            self.queue_status(&mut a, &doc, &row.owner_organ, status, description.clone())
                .await?;
        }
        let now = now_rfc3339();
        self.commit(a, now.clone()).await?;
        for row in &mut rows {
            row.state = new_state.as_str().into();
            row.updated_at = now.clone();
        }
        Ok(rows)
    }

    /// Everything this node knows of `document_id`: rows, history and statuses received.
    pub async fn status_view(&self, document_id: &str) -> Result<serde_json::Value, RoutingError> {
        self.status_view_for(document_id, None).await
    }

    /// [`Node::status_view`] as `agency` sees it (every agency when `None`): the sender sees
    /// everything; a recipient (the addressee, or the agency holding the row after a directory
    /// merge) sees its rows, the statuses their addressees and holders sent and the history
    /// here (its envelope names the other recipients anyway); a document `agency` neither sent
    /// nor receives is `NotFound`, as a missing one.
    pub async fn status_view_for(
        &self,
        document_id: &str,
        agency: Option<&str>,
    ) -> Result<serde_json::Value, RoutingError> {
        let mut rows = self.store.route_documents(document_id).await?;
        let traces = self.store.route_traces(document_id).await?;
        let mut statuses = self.store.route_statuses(document_id).await?;
        if let Some(agency) = agency {
            let sender = rows.iter().any(|r| r.sender_organ == agency)
                || statuses.iter().any(|s| s.sender_organ == agency);
            if !sender {
                rows.retain(|r| r.recipient_organ == agency || r.owner_organ == agency);
                statuses.retain(|s| {
                    rows.iter()
                        .any(|r| s.from_organ == r.recipient_organ || s.from_organ == r.owner_organ)
                });
                if rows.is_empty() {
                    return Err(RoutingError::NotFound(document_id.into()));
                }
            }
        }
        let held = self.store.route_pending_of(document_id).await?;
        let outbox = self.store.route_outbox_of(document_id).await?;
        if rows.is_empty() && traces.is_empty() && statuses.is_empty() && held.is_empty() {
            return Err(RoutingError::NotFound(document_id.into()));
        }
        let parties: Vec<&str> = rows
            .iter()
            .flat_map(|r| {
                [
                    r.sender_organ.as_str(),
                    r.recipient_organ.as_str(),
                    r.owner_organ.as_str(),
                ]
            })
            .collect();
        let held: Vec<&PendingRow> = held
            .iter()
            .filter(|p| {
                agency.map_or(true, |a| {
                    p.agency.as_deref() == Some(a) || p.sender_organ == a || parties.contains(&a)
                })
            })
            .collect();
        Ok(serde_json::json!({
            "node": self.config.node_id,
            "document_id": document_id,
            "documents": rows,
            "held": held,
            "outbox": outbox,
            "trace": traces,
            "statuses": statuses,
        }))
    }
}

/// The inbox and sent-list filters as a client writes them (`GET /v1/route/inbox?…`,
/// `route inbox --…`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Row states, comma-separated, or `all` (default: the inbox's open states; every state
    /// for the sent list).
    pub state: Option<String>,
    /// Inbox: only documents from this sender (OrganId).
    pub sender: Option<String>,
    /// Sent list: only documents to this recipient (OrganId, addressee or holder).
    pub recipient: Option<String>,
    /// Received here on or after this day (`YYYY-MM-DD`) or time (RFC 3339).
    pub from: Option<String>,
    /// Received here on or before this day (`YYYY-MM-DD`), or before this time (RFC 3339).
    pub to: Option<String>,
    /// Text in the subject, document number, sender name or DocumentId.
    pub q: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `YYYY-MM-DD` (`next_day`: the day after, for an inclusive end) or RFC 3339, as the
/// comparable text of `created_at`.
fn bound(value: &str, next_day: bool) -> Result<String, RoutingError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(day) = time::Date::parse(value, &format) {
        let day = if next_day {
            day.next_day().unwrap_or(day)
        } else {
            day
        };
        return Ok(format!(
            "{:04}-{:02}-{:02}",
            day.year(),
            u8::from(day.month()),
            day.day()
        ));
    }
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(rfc3339)
        .map_err(|_| {
            RoutingError::Invalid(format!(
                "'{value}' is not a date (YYYY-MM-DD) or an RFC 3339 time"
            ))
        })
}

impl ListParams {
    /// The store filter of these parameters for `kind`, over `agencies` (empty: every one).
    pub fn filter(
        &self,
        kind: ListKind,
        agencies: Vec<String>,
    ) -> Result<ListFilter, RoutingError> {
        let states = match self.state.as_deref().map(str::trim) {
            Some("all") => Vec::new(),
            Some(list) if !list.is_empty() => {
                list.split(',').map(|s| s.trim().to_string()).collect()
            }
            _ if kind == ListKind::Inbox => lifecycle::inbox_state_names()
                .into_iter()
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        };
        let party = match kind {
            ListKind::Inbox => self.sender.clone(),
            ListKind::Sent => self.recipient.clone(),
        };
        Ok(ListFilter {
            kind,
            agencies,
            states,
            party,
            from: self.from.as_deref().map(|v| bound(v, false)).transpose()?,
            until: self.to.as_deref().map(|v| bound(v, true)).transpose()?,
            text: self.q.clone(),
            after: None,
            limit: self.limit.unwrap_or(50),
        })
    }
}

impl Node {
    /// The inbox (documents delivered here, by holder) or the sent list (by sender), newest
    /// first, filtered and paged; returns the rows and the cursor of the next page (`None`
    /// on the last page). `cursor` is a value this function returned.
    pub async fn list(
        &self,
        mut filter: ListFilter,
        cursor: Option<&str>,
    ) -> Result<(Vec<ListedDocument>, Option<String>), RoutingError> {
        if let Some(c) = cursor {
            filter.after = Some(decode_cursor(c).ok_or_else(|| {
                RoutingError::Invalid(format!("cursor '{c}' is not one this node returned"))
            })?);
        }
        for state in &filter.states {
            state
                .parse::<RowState>()
                .map_err(|_| RoutingError::Invalid(format!("unknown document state '{state}'")))?;
        }
        filter.limit = filter.limit.clamp(1, 500);
        let limit = filter.limit;
        filter.limit += 1; // one more tells whether there is a next page
        let mut rows = self.store.route_list(&filter).await?;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|r| encode_cursor(&r.row.created_at, &r.row.id))
        } else {
            None
        };
        Ok((rows, next))
    }

    /// Documents delivered here and still open (`lifecycle::INBOX_STATES`), newest first;
    /// only those `agency` holds when given (addressed to it, or to an agency merged into it).
    pub async fn inbox(&self, agency: Option<&str>) -> Result<Vec<DocumentRow>, RoutingError> {
        let mut rows = self
            .store
            .route_inbox(&lifecycle::inbox_state_names())
            .await?;
        if let Some(agency) = agency {
            rows.retain(|r| r.owner_organ == agency);
        }
        Ok(rows)
    }

    /// Puts the dead-lettered deliveries of `document_id` back to pending (attempts from
    /// zero, due now): those carrying recipient `to` when given, else all of them; an item
    /// carrying several recipients goes again as a whole. With `agency`, only a document that
    /// agency sent or receives (else `NotFound`). Returns the items requeued.
    pub async fn retry(
        &self,
        document_id: &str,
        to: Option<&str>,
        agency: Option<&str>,
    ) -> Result<Vec<OutboxItem>, RoutingError> {
        if let Some(agency) = agency {
            let party = self
                .store
                .route_documents(document_id)
                .await?
                .iter()
                .any(|r| {
                    r.sender_organ == agency
                        || r.recipient_organ == agency
                        || r.owner_organ == agency
                });
            if !party {
                return Err(RoutingError::NotFound(document_id.into()));
            }
        }
        let mut requeued = Vec::new();
        for item in self.store.route_dead_items(document_id).await? {
            let recipients: Vec<String> =
                serde_json::from_str(&item.recipients).unwrap_or_default();
            if to.is_some_and(|t| !recipients.iter().any(|r| r == t)) {
                continue;
            }
            let now = now_rfc3339();
            if self.store.route_requeue(&item, &now).await? {
                self.store
                    .route_trace(&TraceEvent {
                        document_id: document_id.into(),
                        sender_organ: String::new(),
                        at: now,
                        event: "retry".into(),
                        detail: format!(
                            "{} for {} to node {} put back to pending after a dead letter",
                            item.kind,
                            recipients.join(", "),
                            item.next_node
                        ),
                    })
                    .await?;
                requeued.push(item);
            }
        }
        if requeued.is_empty() {
            return Err(RoutingError::NotFound(format!(
                "{document_id}: no dead-lettered delivery{} to retry",
                to.map(|t| format!(" for {t}")).unwrap_or_default()
            )));
        }
        Ok(requeued)
    }
}

impl Node {
    /// Tells the sender of an envelope that came from a peer that the next hop refused it: a
    /// status 02 from this node with the next hop's reason (a local sender sees the refusal in
    /// `route status`).
    pub async fn report_refusal(
        &self,
        envelope_id: &str,
        reason: &str,
    ) -> Result<(), RoutingError> {
        let Some(env) = self.store.route_envelope(envelope_id).await? else {
            return Ok(());
        };
        if env.from_node == LOCAL {
            return Ok(());
        }
        let limits = self.limits;
        let package =
            blocking(move || Ok::<_, RoutingError>(edxml::parse(&env.bytes, &limits)?)).await?;
        let doc = DocRef::of(&package);
        let mut a = Acceptance::default();
        let from = self.config.trace_organ().to_string();
        self.queue_status(
            &mut a,
            &doc,
            &from,
            StatusCode::Rejected,
            Some(format!("refused by the next hop: {reason}")),
        )
        .await?;
        self.commit(a, now_rfc3339()).await?;
        Ok(())
    }
}

impl Node {
    /// The outbox view: items and document rows by state, held envelopes by state, the items
    /// that failed (peer down, pin mismatch, TLS error, refusal) with their last error, and
    /// the counters since start; of `agency`'s documents when given (the counters are the
    /// node's totals, no document in them).
    pub async fn outbox_view(
        &self,
        agency: Option<&str>,
    ) -> Result<serde_json::Value, RoutingError> {
        let s = &self.store;
        let (outbox, documents, held) = match agency {
            Some(a) => (
                s.route_outbox_states_for(a).await?,
                s.route_document_states_for(a).await?,
                None,
            ),
            None => (
                s.route_outbox_states().await?,
                s.route_document_states().await?,
                Some(s.route_pending_states().await?),
            ),
        };
        Ok(serde_json::json!({
            "node": self.config.node_id,
            "agency": agency,
            "outbox": outbox,
            "documents": documents,
            "held": held,
            "failures": s.route_outbox_failures(agency, 50).await?,
            "since_start": self.counters.json(),
        }))
    }
}

/// The opaque paging cursor of a row position (created_at, id).
fn encode_cursor(created_at: &str, id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at}\n{id}"))
}

fn decode_cursor(cursor: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('\n')?;
    Some((at.to_string(), id.to_string()))
}

/// An outbox item carrying a signed status message toward `doc`'s sender.
fn status_item(peer: String, doc: &DocRef, bytes: Vec<u8>) -> OutboxItem {
    OutboxItem {
        id: random_id("ob_"),
        kind: OutboxKind::Status.as_str().into(),
        next_node: peer,
        document_id: doc.document_id.clone(),
        envelope_id: None,
        recipients: serde_json::to_string(&[&doc.sender]).unwrap_or_default(),
        payload: Some(bytes),
        attempts: 0,
    }
}

/// What became of one attempt to accept an envelope.
enum Accepted {
    Done(Receipt),
    Refused(Refusal),
    /// A concurrent delivery of the same document committed first: try again.
    Raced,
}

/// The verdict on an envelope's schema, signature and trace before anything is stored.
enum Check {
    Passed(Checked),
    /// INDETERMINATE/TRY_LATER: the revocation status could not be obtained now.
    Temporary {
        package: edxml::Package,
        digest: String,
        reason: String,
    },
    Failed {
        package: edxml::Package,
        reason: String,
    },
}

impl Check {
    fn package(&self) -> &edxml::Package {
        match self {
            Check::Passed(c) => &c.package,
            Check::Temporary { package, .. } | Check::Failed { package, .. } => package,
        }
    }
}

/// What became of an envelope: an answer, or not yet decidable (revocation unavailable).
enum Decision {
    Answer(Receipt),
    Temporary {
        doc: DocRef,
        digest: String,
        reason: String,
    },
}

/// How an envelope is being decided: on arrival (the sender waits for the answer) or on a
/// re-validation of a held envelope (the sender was told it is held; a refusal goes back as
/// a status 02 message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Arrival,
    Revalidation,
}

/// What the agency directory says of a recipient.
enum Resolved {
    /// It receives under its own identifier (or the directory does not know it).
    Stands,
    /// It was merged into this agency.
    MergedInto(String),
    /// It can no longer receive.
    Closed(Refusal),
}

/// Why an envelope that passed its checks is refused (answered 02 with this as the reason).
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// The same idempotency key arrived with other content (CONTRACTS §5).
    #[error(
        "{}: document {document_id} for {recipient} was already received with other content",
        ErrorCode::ConflictingRedelivery
    )]
    ConflictingRedelivery {
        document_id: String,
        recipient: String,
    },
    /// The directory closes the recipient to deliveries.
    #[error("recipient {recipient}: {why}")]
    RecipientClosed { recipient: String, why: String },
    /// No route to the recipient.
    #[error("no route to recipient {0}")]
    NoRoute(String),
    /// The document came back from the node this node forwarded it to.
    #[error(
        "routing loop: document {document_id} for {recipient} came back from node {node}, to which this node forwarded it (do both nodes record the same agency directory changes?)"
    )]
    Loop {
        document_id: String,
        recipient: String,
        node: String,
    },
}

/// `new`, `revoke`, `update` or `replace`.
fn business_name(b: BusinessDocType) -> &'static str {
    match b {
        BusinessDocType::New => "new document",
        BusinessDocType::Revoke => "revoke",
        BusinessDocType::Update => "update",
        BusinessDocType::Replace => "replace",
    }
}
