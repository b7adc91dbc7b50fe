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
use crate::clock::now_rfc3339;
use crate::code::ErrorCode;
use crate::edxml::{
    self, BusinessDocType, Organ, ResponseFor, Status, StatusCode, StatusCodes, TraceHeader,
};
use crate::ids::random_id;
use crate::keys::Pkcs12Key;
use crate::store::routing::{
    Acceptance, DocumentRow, EnvelopeRow, OutboxItem, StatusRow, TraceEvent,
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
    signer: Arc<Pkcs12Key>,
    /// Mutual-TLS client of the peers, with its open connections.
    peers: PeerClient,
    identity: TlsIdentity,
    codes: StatusCodes,
    limits: edxml::Limits,
    /// Counters.
    pub counters: RouteCounters,
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
}

/// The facts of a document that statuses refer to.
#[derive(Debug, Clone)]
struct DocRef {
    sender: String,
    document_id: String,
    code: String,
    promulgation_date: time::Date,
}

impl DocRef {
    fn of(package: &edxml::Package) -> Self {
        let h = &package.header;
        Self {
            sender: h.from.organ_id.clone(),
            document_id: h.document_id.clone(),
            code: format!("{}/{}", h.code_number, h.code_notation),
            promulgation_date: h.promulgation_date,
        }
    }
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
        Ok(Self {
            config,
            store,
            trust: validation.trust_lists,
            fetcher: validation.fetcher.map(Arc::from),
            commits: GroupCommit::default(),
            signer: Arc::new(signer),
            peers: PeerClient::new(connector),
            identity,
            codes,
            limits: edxml::Limits::default(),
            counters: RouteCounters::default(),
        })
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
        ValidationContext {
            at: OffsetDateTime::now_utc(),
            trust_lists: self.trust.clone(),
            fetcher: self
                .fetcher
                .clone()
                .map(|f| Box::new(f) as Box<dyn Fetcher>),
        }
    }

    async fn check(&self, bytes: Arc<Vec<u8>>) -> Result<Check, RoutingError> {
        let ctx = self.context();
        let header = TraceHeader {
            organ_id: self.config.trace_organ().to_string(),
            timestamp: OffsetDateTime::now_utc(),
        };
        blocking(move || {
            let hop =
                edxml::verify_for_hop(&bytes, &crate::verify::Policy::default(), &ctx, &header)?;
            match hop.stamped {
                Some(stamped) if hop.verdict.passed => Ok(Check::Passed(Checked {
                    package: hop.package,
                    digest: hop.verdict.content_digest,
                    stamped,
                })),
                _ => {
                    let reason = hop
                        .verdict
                        .reason
                        .unwrap_or_else(|| "the signature does not verify".into());
                    Ok(Check::Failed {
                        package: hop.package,
                        reason,
                    })
                }
            }
        })
        .await
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
            from: Organ::new(from, from),
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
        let bytes = Arc::new(bytes);
        let (package, digest, stamped) = match self.check(bytes).await? {
            Check::Passed(c) => (c.package, c.digest, c.stamped),
            Check::Failed { package, reason } => {
                return self.refuse(&DocRef::of(&package), from_node, reason).await
            }
        };
        let doc = DocRef::of(&package);
        if let Some(reason) = self.unauthorized(from_node, &doc.sender) {
            return self.refuse(&doc, from_node, reason).await;
        }
        if let Some(agency) = agency.filter(|a| *a != doc.sender) {
            let reason = format!(
                "a client of agency {agency} may not send for agency {}",
                doc.sender
            );
            return self.refuse(&doc, from_node, reason).await;
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
                    return self.refuse(&doc, from_node, reason).await;
                }
                list
            }
            _ => to,
        };
        let business = package.business.doc_type;
        let target = package
            .business
            .document_id
            .clone()
            .unwrap_or_else(|| doc.document_id.clone());
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
                )
                .await?
            {
                Accepted::Done(receipt) => return Ok(receipt),
                Accepted::Refused(why) => {
                    return self.refuse(&doc, from_node, why.to_string()).await
                }
                Accepted::Raced => continue,
            }
        }
        Err(RoutingError::Invalid(format!(
            "document {} keeps racing with concurrent deliveries",
            doc.document_id
        )))
    }

    /// The reverse-path rule: a peer may deliver what this node would route back through it
    /// for `organ` (a document's sender, a status's author); `None` when allowed.
    fn unauthorized(&self, from_node: &str, organ: &str) -> Option<String> {
        if from_node == LOCAL {
            return None;
        }
        match self.config.next_hop(organ) {
            Some(Hop::Peer(p)) if p == from_node => None,
            _ => Some(format!(
                "node {from_node} is not authorized to deliver for agency {organ}"
            )),
        }
    }

    async fn refuse(
        &self,
        doc: &DocRef,
        from_node: &str,
        reason: String,
    ) -> Result<Receipt, RoutingError> {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(document_id = %doc.document_id, from = %from_node, reason = %reason, "envelope refused (status 02)");
        self.store
            .route_trace(&trace(
                doc,
                "refused",
                format!("from {from_node}: {reason}"),
            ))
            .await?;
        let message = self
            .receipt_message(from_node, doc, StatusCode::Rejected, Some(reason.clone()))
            .await?;
        Ok(Receipt {
            code: StatusCode::Rejected,
            reason: Some(reason),
            message,
            document_id: doc.document_id.clone(),
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
        let mut a = Acceptance::default();
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
                match self.config.next_hop(&to) {
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
        if !self.commits.accept(&self.store, a, now).await? {
            return Ok(Accepted::Raced);
        }
        if !fresh.is_empty() {
            self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        }
        let message = self
            .receipt_message(from_node, doc, StatusCode::Received, None)
            .await?;
        Ok(Accepted::Done(Receipt {
            code: StatusCode::Received,
            reason: None,
            message,
            document_id: doc.document_id.clone(),
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
        let Some(hop) = self.config.next_hop(&doc.sender) else {
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
            Hop::Local => a.statuses.push(StatusRow {
                id: random_id("st_"),
                document_id: doc.document_id.clone(),
                sender_organ: doc.sender.clone(),
                from_organ: from.into(),
                code,
                description,
                at: now_rfc3339(),
                bytes,
            }),
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
                    return Err(RoutingError::Invalid(format!(
                        "status message signature: {}",
                        verdict.reason.unwrap_or_else(|| "does not verify".into())
                    )));
                }
                Ok(status)
            })
            .await?
        };
        if let Some(reason) = self.unauthorized(from_node, &status.from.organ_id) {
            return Err(RoutingError::PeerUnknown(reason));
        }
        let code = self.codes.code(status.code).to_string();
        let doc = DocRef {
            sender: status.response_for.organ_id.clone(),
            document_id: status.response_for.document_id.clone(),
            code: status.response_for.code.clone(),
            promulgation_date: status.response_for.promulgation_date,
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
        match self.config.next_hop(&doc.sender) {
            Some(Hop::Local) => {}
            Some(Hop::Peer(peer)) => a.outbox.push(status_item(peer, &doc, bytes.to_vec())),
            None => return Err(RoutingError::Invalid(format!("no route to {}", doc.sender))),
        }
        let row = StatusRow {
            id: random_id("st_"),
            document_id: doc.document_id.clone(),
            sender_organ: doc.sender.clone(),
            from_organ: status.from.organ_id.clone(),
            code,
            description: status.description.clone(),
            at: now_rfc3339(),
            bytes: bytes.to_vec(),
        };
        if !self.store.route_add_status(&row).await? {
            return Ok(false); // a redelivery: already stored and passed on
        }
        self.store.route_accept(&a, &now_rfc3339()).await?;
        Ok(true)
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
        self.store.route_accept(&a, &now_rfc3339()).await?;
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
        if rows.is_empty() && traces.is_empty() && statuses.is_empty() {
            return Err(RoutingError::NotFound(document_id.into()));
        }
        Ok(serde_json::json!({
            "node": self.config.node_id,
            "document_id": document_id,
            "documents": rows,
            "trace": traces,
            "statuses": statuses,
        }))
    }
}

impl Node {
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
    Failed {
        package: edxml::Package,
        reason: String,
    },
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
}
