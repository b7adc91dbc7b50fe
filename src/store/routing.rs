//! Routing tables (`migrations/*/0200_routing.sql`): envelopes held by this node, one row per
//! idempotency key, the outbox with leases, received status messages and each document's
//! trace. SQL only; the rules live in the `routing` module (above this one).

use sqlx::Row;

use super::lease::LeaseTable;
use super::{with_pool, Store, StoreError};

/// An envelope as this node holds it.
#[derive(Debug, Clone)]
pub struct EnvelopeRow {
    /// Id (`env_…`).
    pub id: String,
    /// Content digest (over the signed part; CONTRACTS §5).
    pub digest: String,
    /// The bytes, trace headers included.
    pub bytes: Vec<u8>,
    /// The node it came from (`local` for an envelope sent by an operator here).
    pub from_node: String,
    /// RFC 3339 UTC.
    pub received_at: String,
}

/// One idempotency key: (sender organ, DocumentId, BussinessDocType, recipient organ).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DocumentRow {
    /// Id (`rd_…`).
    pub id: String,
    /// Sender OrganId.
    pub sender_organ: String,
    /// DocumentId.
    pub document_id: String,
    /// BussinessDocType (0..3).
    pub doc_type: i64,
    /// Recipient OrganId, as the envelope addresses it (part of the idempotency key).
    pub recipient_organ: String,
    /// The agency that holds the document: the addressee, or its successor when the agency
    /// directory redirected it (a merge before or after arrival); for a row forwarded to a
    /// peer, the agency it is routed to. Inbox, acknowledgements and per-agency views go by it.
    pub owner_organ: String,
    /// Content digest.
    pub digest: String,
    /// The envelope.
    pub envelope_id: String,
    /// The DocumentId a revoke/update/replace acts on (its own id for a new document).
    pub target_document: String,
    /// `forwarding`, `forwarded`, `refused`, `dead`, `delivered`, `accepted`, ...
    pub state: String,
    /// The peer it goes to (none: delivered here).
    pub next_node: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// An outbox item.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Id (`ob_…`).
    pub id: String,
    /// `envelope` or `status`.
    pub kind: String,
    /// The peer to hand it to.
    pub next_node: String,
    /// The DocumentId it concerns.
    pub document_id: String,
    /// The envelope (kind `envelope`).
    pub envelope_id: Option<String>,
    /// JSON array of the recipient organs this hop is for.
    pub recipients: String,
    /// The signed status message (kind `status`).
    pub payload: Option<Vec<u8>>,
    /// Failed attempts so far.
    pub attempts: i64,
}

/// One event of a document's history at this node.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TraceEvent {
    /// DocumentId.
    pub document_id: String,
    /// Sender organ.
    pub sender_organ: String,
    /// RFC 3339 UTC.
    pub at: String,
    /// `received`, `forwarded`, `delivered`, `refused`, `duplicate`, `redirected`, `status`, ...
    pub event: String,
    /// Details (peer, recipient, reason).
    pub detail: String,
}

/// A status message received for a document.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusRow {
    /// Id (`st_…`).
    pub id: String,
    /// DocumentId it answers.
    pub document_id: String,
    /// The organ that sent the document.
    pub sender_organ: String,
    /// The organ that sends the status.
    pub from_organ: String,
    /// Status code (`01`..`06`, `13`, ...).
    pub code: String,
    /// Description.
    pub description: Option<String>,
    /// RFC 3339 UTC: when it was stored here.
    pub at: String,
    /// RFC 3339 UTC: when its issuer issued it (the message's own Timestamp); statuses are
    /// listed in this order.
    pub issued_at: Option<String>,
    /// The signed status message.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// Everything an accepted envelope writes, in one transaction.
#[derive(Debug, Default)]
pub struct Acceptance {
    /// The envelope.
    pub envelope: Option<EnvelopeRow>,
    /// New rows, one per recipient handled here.
    pub documents: Vec<DocumentRow>,
    /// State changes of existing rows (id, state).
    pub updates: Vec<(String, String)>,
    /// Outbox items to create.
    pub outbox: Vec<OutboxItem>,
    /// History events.
    pub traces: Vec<TraceEvent>,
    /// Status messages addressed to an agency served here (stored once each).
    pub statuses: Vec<StatusRow>,
    /// What the inbox shows of the envelope's document (written on each new row).
    pub meta: Option<DocumentMeta>,
    /// Webhook events for the agencies concerned (each fanned out to their subscriptions).
    pub events: Vec<super::webhooks::RouteEvent>,
    /// The outbox item this write ends: nothing of the acceptance is written (`false`) unless
    /// its holder still holds the item's lease.
    pub finish: Option<OutboxFinish>,
    /// A received status message, stored once: nothing of the acceptance is written (`false`)
    /// when the same one (document, sender, author, code) is already here (a redelivery).
    pub status_once: Option<StatusRow>,
}

/// The end of an outbox item, written with the trace that records it (one transaction).
#[derive(Debug, Clone)]
pub struct OutboxFinish {
    /// The item.
    pub id: String,
    /// Its lease holder.
    pub owner: String,
    /// `delivered`, `refused` or `dead`.
    pub state: String,
    /// Why it failed.
    pub error: Option<String>,
    /// For an envelope item: its envelope, whose rows for `next_node` go from `forwarding` to
    /// `rows_state`.
    pub envelope_id: Option<String>,
    /// The peer it went to.
    pub next_node: String,
    /// The new state of the rows it carried.
    pub rows_state: String,
}

/// An attachment as the inbox lists it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// `AttachmentName`.
    pub name: String,
    /// Media type.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
}

/// What a clerk's inbox shows of a document, from the envelope's signed `MessageHeader`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DocumentMeta {
    /// `Subject`.
    pub subject: String,
    /// The sender's `OrganName`.
    pub sender_name: String,
    /// Document number: `CodeNumber/CodeNotation`.
    pub doc_number: String,
    /// `DocumentType` (code).
    pub document_type: String,
    /// `TypeName`, when given.
    pub document_type_name: Option<String>,
    /// Promulgation date, `YYYY-MM-DD`.
    pub promulgation_date: Option<String>,
    /// Due date, `YYYY-MM-DD`.
    pub due_date: Option<String>,
    /// The attachments.
    pub attachments: Vec<AttachmentInfo>,
}

/// A row of the inbox or the sent list: the document row, its metadata and the last status
/// recorded here from its holder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListedDocument {
    /// The row.
    #[serde(flatten)]
    pub row: DocumentRow,
    /// The document's metadata.
    #[serde(flatten)]
    pub meta: DocumentMeta,
    /// The latest status (by issue time) from the holder or addressee recorded here.
    pub last_status: Option<String>,
}

/// Which list [`Store::route_list`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Rows delivered here (`next_node IS NULL`), by holder (`owner_organ`).
    Inbox,
    /// Rows by sender (`sender_organ`): the documents an agency sent.
    Sent,
}

/// Filters and paging of [`Store::route_list`].
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// Inbox or sent.
    pub kind: ListKind,
    /// Inbox: held by one of these agencies; sent: sent by one of them (empty: any).
    pub agencies: Vec<String>,
    /// Row states (empty: any).
    pub states: Vec<String>,
    /// Inbox: this sender; sent: this recipient (addressee or holder).
    pub party: Option<String>,
    /// Received here at or after this time (RFC 3339 or `YYYY-MM-DD`).
    pub from: Option<String>,
    /// Received here before this time (RFC 3339 or `YYYY-MM-DD`, exclusive).
    pub until: Option<String>,
    /// Text in the subject, document number, sender name or DocumentId (case-insensitive
    /// for ASCII).
    pub text: Option<String>,
    /// Only rows after this position (created_at, id) in the newest-first order.
    pub after: Option<(String, String)>,
    /// At most this many rows.
    pub limit: i64,
}

/// An envelope held while the revocation status of its signer cannot be obtained.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PendingRow {
    /// Id (`pv_…`).
    pub id: String,
    /// The node it came from (`local` for a submission here).
    pub from_node: String,
    /// The API client's agency that submitted it, for a local submission.
    pub agency: Option<String>,
    /// JSON array of this hop's recipients (empty: every `To`).
    pub recipients: String,
    /// Content digest.
    pub digest: String,
    /// Sender OrganId.
    pub sender_organ: String,
    /// DocumentId.
    pub document_id: String,
    /// The envelope as it arrived.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// Arrival time (RFC 3339 UTC): the validation time of every re-validation.
    pub received_at: String,
    /// After this (Unix ms) a still-unknown status is answered 02.
    pub deadline_ms: i64,
    /// Next re-validation (Unix ms).
    pub next_check_ms: i64,
    /// Re-validations so far.
    pub attempts: i64,
    /// Why the last validation was not final.
    pub last_reason: String,
    /// `waiting`, `accepted` or `refused`.
    pub state: String,
}

/// An outbox item as the operator sees it: where it goes and what went wrong.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxView {
    /// Id.
    pub id: String,
    /// `envelope` or `status`.
    pub kind: String,
    /// The peer.
    pub next_node: String,
    /// DocumentId.
    pub document_id: String,
    /// JSON array of recipients.
    pub recipients: String,
    /// `pending`, `delivered`, `refused` or `dead`.
    pub state: String,
    /// Failed attempts so far.
    pub attempts: i64,
    /// The last failure (peer down, pin mismatch, TLS error, refusal reason).
    pub last_error: Option<String>,
    /// Created (RFC 3339 UTC).
    pub created_at: String,
}

const DOC_COLUMNS: &str = "id, sender_organ, document_id, doc_type, recipient_organ, digest, envelope_id, target_document, state, next_node, created_at, updated_at, owner_organ";

fn document(r: &impl RowLike) -> DocumentRow {
    DocumentRow {
        id: r.s(0),
        sender_organ: r.s(1),
        document_id: r.s(2),
        doc_type: r.i(3),
        recipient_organ: r.s(4),
        digest: r.s(5),
        envelope_id: r.s(6),
        target_document: r.s(7),
        state: r.s(8),
        next_node: r.o(9),
        created_at: r.s(10),
        updated_at: r.s(11),
        owner_organ: r.s(12),
    }
}

/// Column access shared by both backends' rows.
trait RowLike {
    fn b(&self, i: usize) -> Option<Vec<u8>>;
    fn s(&self, i: usize) -> String;
    fn o(&self, i: usize) -> Option<String>;
    fn i(&self, i: usize) -> i64;
}

macro_rules! row_like {
    ($t:ty) => {
        impl RowLike for $t {
            fn b(&self, i: usize) -> Option<Vec<u8>> {
                self.get(i)
            }
            fn s(&self, i: usize) -> String {
                self.get(i)
            }
            fn o(&self, i: usize) -> Option<String> {
                self.get(i)
            }
            fn i(&self, i: usize) -> i64 {
                self.get(i)
            }
        }
    };
}
row_like!(sqlx::sqlite::SqliteRow);
row_like!(sqlx::postgres::PgRow);

fn outbox(r: &impl RowLike) -> OutboxItem {
    OutboxItem {
        id: r.s(0),
        kind: r.s(1),
        next_node: r.s(2),
        document_id: r.s(3),
        envelope_id: r.o(4),
        recipients: r.s(5),
        payload: r.b(6),
        attempts: r.i(7),
    }
}

/// The outbox's leases (no fencing token: a worker's writes name its owner id).
const OUTBOX_LEASE: LeaseTable = LeaseTable {
    table: "route_outbox",
    fenced: false,
};

/// Appends one history event: `$1` DocumentId, `$2` sender, `$3` when, `$4` event, `$5` detail.
const INSERT_TRACE: &str = "INSERT INTO route_traces (document_id, sender_organ, at, event, detail) VALUES ($1, $2, $3, $4, $5)";

/// The rows held for a target (`$1` sender, `$2` target, `$3` recipient, `$4` holder), found
/// by the `(sender_organ, target_document, state)` index; no ORDER BY, which would make
/// SQLite prefer the `(sender_organ, created_at)` index and read every row of the sender.
const HELD_WHERE: &str =
    "sender_organ = $1 AND target_document = $2 AND (recipient_organ = $3 OR owner_organ = $4) \
     AND state = 'held' AND doc_type <> 0 AND next_node IS NULL";

/// The rows of the first three parts of an idempotency key (`$1` sender, `$2` DocumentId,
/// `$3` BussinessDocType), by the key's index.
const KEY_PREFIX_WHERE: &str = "sender_organ = $1 AND document_id = $2 AND doc_type = $3";

/// The `forwarding` rows an outbox item carried (`$3` envelope, `$4` peer), by the
/// `(envelope_id, next_node)` index.
const CARRIED_WHERE: &str = "envelope_id = $3 AND next_node = $4 AND state = 'forwarding'";

/// Stores a status message once (nothing when the same one is here): `$1`..`$9` as
/// [`StatusRow`]'s fields (`$8` the bytes, `$9` when issued).
const INSERT_STATUS: &str = "INSERT INTO route_statuses (id, document_id, sender_organ, from_organ, code, description, at, bytes, issued_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";

const OUTBOX_COLUMNS: &str =
    "id, kind, next_node, document_id, envelope_id, recipients, payload, attempts";

/// Writes acceptance `$a` on connection `$c` (a transaction or a savepoint) at `$now`, with
/// `$finish` the outbox lease's finish statement; evaluates to `false`, having written part of
/// it at most (the caller rolls back), when one of its idempotency keys is already stored,
/// the lease of the item it ends was lost, or its status message is already here.
macro_rules! write_acceptance {
    ($c:ident, $a:expr, $now:expr, $finish:expr) => {
        'write: {
            let mut ok = true;
            if let Some(f) = &$a.finish {
                ok = sqlx::query(&$finish).bind(&f.state).bind(&f.error).bind(*$now).bind(&f.id).bind(&f.owner)
                    .execute(&mut *$c).await?.rows_affected() > 0;
                if let (true, Some(env)) = (ok, &f.envelope_id) {
                    sqlx::query(&format!("UPDATE route_documents SET state = $1, updated_at = $2 WHERE {CARRIED_WHERE}"))
                        .bind(&f.rows_state).bind(*$now).bind(env).bind(&f.next_node).execute(&mut *$c).await?;
                }
            }
            if let (true, Some(st)) = (ok, &$a.status_once) {
                ok = sqlx::query(INSERT_STATUS)
                    .bind(&st.id).bind(&st.document_id).bind(&st.sender_organ).bind(&st.from_organ)
                    .bind(&st.code).bind(&st.description).bind(&st.at).bind(&st.bytes).bind(&st.issued_at)
                    .execute(&mut *$c).await?.rows_affected() > 0;
            }
            if !ok {
                break 'write false;
            }
            if let Some(e) = &$a.envelope {
                sqlx::query("INSERT INTO route_envelopes (id, digest, bytes, from_node, received_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&e.id).bind(&e.digest).bind(&e.bytes).bind(&e.from_node).bind(&e.received_at)
                    .execute(&mut *$c).await?;
            }
            let meta = $a.meta.clone().unwrap_or_default();
            let attachments = serde_json::to_string(&meta.attachments).unwrap_or_else(|_| "[]".into());
            for d in &$a.documents {
                let n = sqlx::query("INSERT INTO route_documents (id, sender_organ, document_id, doc_type, recipient_organ, digest, envelope_id, target_document, state, next_node, created_at, updated_at, owner_organ, \
                                     subject, sender_name, doc_number, document_type, document_type_name, promulgation_date, due_date, attachments) \
                                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) ON CONFLICT DO NOTHING")
                    .bind(&d.id).bind(&d.sender_organ).bind(&d.document_id).bind(d.doc_type).bind(&d.recipient_organ)
                    .bind(&d.digest).bind(&d.envelope_id).bind(&d.target_document).bind(&d.state).bind(&d.next_node)
                    .bind(&d.created_at).bind(&d.updated_at).bind(&d.owner_organ)
                    .bind(&meta.subject).bind(&meta.sender_name).bind(&meta.doc_number).bind(&meta.document_type)
                    .bind(&meta.document_type_name).bind(&meta.promulgation_date).bind(&meta.due_date).bind(&attachments)
                    .execute(&mut *$c).await?.rows_affected();
                if n == 0 {
                    ok = false;
                    break;
                }
            }
            if !ok {
                break 'write false;
            }
            for (id, state) in &$a.updates {
                sqlx::query("UPDATE route_documents SET state = $1, updated_at = $2 WHERE id = $3")
                    .bind(state).bind(*$now).bind(id).execute(&mut *$c).await?;
            }
            for o in &$a.outbox {
                sqlx::query("INSERT INTO route_outbox (id, kind, next_node, document_id, envelope_id, recipients, payload, state, attempts, next_attempt_ms, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, 0, $8)")
                    .bind(&o.id).bind(&o.kind).bind(&o.next_node).bind(&o.document_id).bind(&o.envelope_id)
                    .bind(&o.recipients).bind(&o.payload).bind(*$now)
                    .execute(&mut *$c).await?;
            }
            for st in &$a.statuses {
                sqlx::query(INSERT_STATUS)
                    .bind(&st.id).bind(&st.document_id).bind(&st.sender_organ).bind(&st.from_organ)
                    .bind(&st.code).bind(&st.description).bind(&st.at).bind(&st.bytes).bind(&st.issued_at)
                    .execute(&mut *$c).await?;
            }
            // one statement for all of an acceptance's traces (in order): the writer runs
            // alone, and each statement is a round trip to it
            if !$a.traces.is_empty() {
                let mut insert = sqlx::QueryBuilder::new("INSERT INTO route_traces (document_id, sender_organ, at, event, detail) ");
                insert.push_values(&$a.traces, |mut row, t| {
                    row.push_bind(&t.document_id).push_bind(&t.sender_organ).push_bind(&t.at).push_bind(&t.event).push_bind(&t.detail);
                });
                insert.build().execute(&mut *$c).await?;
            }
            super::webhooks::insert_events!($c, &$a.events);
            true
        }
    };
}

impl Store {
    /// The row of one idempotency key.
    pub async fn route_document(
        &self,
        sender: &str,
        document_id: &str,
        doc_type: i64,
        recipient: &str,
    ) -> Result<Option<DocumentRow>, StoreError> {
        let sql = format!("SELECT {DOC_COLUMNS} FROM route_documents WHERE sender_organ = $1 AND document_id = $2 AND doc_type = $3 AND recipient_organ = $4");
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(sender).bind(document_id).bind(doc_type).bind(recipient)
            .fetch_optional(p).await?.map(|r| document(&r))),
        )
    }

    /// Rows held here for `target` (revoke/update/replace that arrived before their original)
    /// addressed to `recipient` or held by `owner`, oldest first.
    pub async fn route_held(
        &self,
        sender: &str,
        target: &str,
        recipient: &str,
        owner: &str,
    ) -> Result<Vec<DocumentRow>, StoreError> {
        // ordered here, not in SQL: an ORDER BY the (sender, created_at) index serves would
        // have SQLite read every row of the sender instead of the (sender, target, state) index
        let sql = format!("SELECT {DOC_COLUMNS} FROM route_documents WHERE {HELD_WHERE}");
        let mut rows: Vec<DocumentRow> = with_pool!(self, p => sqlx::query(&sql).bind(sender).bind(target).bind(recipient).bind(owner)
            .fetch_all(p).await?.iter().map(document).collect());
        rows.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(rows)
    }

    /// A row of (sender, DocumentId, BussinessDocType) delivered here and held by `owner`,
    /// whichever agency it was addressed to (the oldest).
    pub async fn route_owned(
        &self,
        sender: &str,
        document_id: &str,
        doc_type: i64,
        owner: &str,
    ) -> Result<Option<DocumentRow>, StoreError> {
        // the rows of the key's first three parts (one per addressee), by the idempotency
        // key's index, then filtered here: with the holder in SQL, SQLite took the inbox
        // index and read every row the holder has
        let sql = format!("SELECT {DOC_COLUMNS} FROM route_documents WHERE {KEY_PREFIX_WHERE}");
        let rows: Vec<DocumentRow> = with_pool!(self, p => sqlx::query(&sql).bind(sender).bind(document_id).bind(doc_type)
            .fetch_all(p).await?.iter().map(document).collect());
        Ok(rows
            .into_iter()
            .filter(|r| r.owner_organ == owner && r.next_node.is_none())
            .min_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id))))
    }

    /// The original (BussinessDocType 0) of `target` delivered here, addressed to `recipient`
    /// or else held by `owner` (its addressee was merged into `owner`, or the revoke/update
    /// names the successor while the original named the old agency).
    pub async fn route_original(
        &self,
        sender: &str,
        target: &str,
        recipient: &str,
        owner: &str,
    ) -> Result<Option<DocumentRow>, StoreError> {
        let sql = format!("SELECT {DOC_COLUMNS} FROM route_documents WHERE sender_organ = $1 AND document_id = $2 AND doc_type = 0 AND next_node IS NULL \
                           AND (recipient_organ = $3 OR owner_organ = $4) ORDER BY CASE WHEN recipient_organ = $3 THEN 0 ELSE 1 END, created_at, id LIMIT 1");
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(sender).bind(target).bind(recipient).bind(owner)
            .fetch_optional(p).await?.map(|r| document(&r))),
        )
    }

    /// All rows of a DocumentId (every sender, type and recipient), oldest first.
    pub async fn route_documents(&self, document_id: &str) -> Result<Vec<DocumentRow>, StoreError> {
        let sql = format!("SELECT {DOC_COLUMNS} FROM route_documents WHERE document_id = $1 OR target_document = $1 ORDER BY created_at, id");
        Ok(with_pool!(self, p => sqlx::query(&sql).bind(document_id)
            .fetch_all(p).await?.iter().map(document).collect()))
    }

    /// Documents delivered here in one of `states`, newest first.
    pub async fn route_inbox(&self, states: &[&str]) -> Result<Vec<DocumentRow>, StoreError> {
        let sql = format!("SELECT {DOC_COLUMNS} FROM route_documents WHERE next_node IS NULL ORDER BY created_at DESC, id");
        let rows: Vec<DocumentRow> = with_pool!(self, p => sqlx::query(&sql)
            .fetch_all(p).await?.iter().map(document).collect());
        Ok(rows
            .into_iter()
            .filter(|r| states.contains(&r.state.as_str()))
            .collect())
    }

    /// Counts of rows by state (for tests, metrics and the operator).
    pub async fn route_document_states(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT state, COUNT(*) FROM route_documents GROUP BY state ORDER BY state";
        Ok(
            with_pool!(self, p => sqlx::query(sql).fetch_all(p).await?.iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))).collect()),
        )
    }

    /// An envelope by id.
    pub async fn route_envelope(&self, id: &str) -> Result<Option<EnvelopeRow>, StoreError> {
        let sql =
            "SELECT id, digest, bytes, from_node, received_at FROM route_envelopes WHERE id = $1";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(id).fetch_optional(p).await?.map(|r| EnvelopeRow {
                id: r.get(0), digest: r.get(1), bytes: r.get(2), from_node: r.get(3), received_at: r.get(4),
            })),
        )
    }

    /// Writes an acceptance atomically; `Ok(false)` (nothing written) when one of its
    /// idempotency keys was stored meanwhile by a concurrent delivery.
    pub async fn route_accept(&self, a: &Acceptance, now: &str) -> Result<bool, StoreError> {
        Ok(self.route_accept_group(&[(a, now)]).await?[0])
    }

    /// Writes several acceptances in one transaction (one commit, one fsync), each in a
    /// savepoint of its own: the answer for each is [`Store::route_accept`]'s, and a refused
    /// one leaves no row while the others are written.
    pub async fn route_accept_group(
        &self,
        items: &[(&Acceptance, &str)],
    ) -> Result<Vec<bool>, StoreError> {
        let finish = OUTBOX_LEASE.finish_sql();
        with_pool!(self, p => {
            // the common case (no idempotency race, lost lease or redelivered status): one
            // transaction and no savepoints, two round trips to the writer fewer per acceptance
            let mut tx = p.begin().await?;
            let mut all = true;
            for (a, now) in items {
                if !write_acceptance!(tx, a, now, finish) {
                    all = false;
                    break;
                }
            }
            if all {
                tx.commit().await?;
                return Ok(vec![true; items.len()]);
            }
            tx.rollback().await?;
            // else again, each acceptance in a savepoint of its own
            let mut written = Vec::with_capacity(items.len());
            let mut tx = p.begin().await?;
            for (a, now) in items {
                let mut sp = sqlx::Connection::begin(&mut *tx).await?;
                if write_acceptance!(sp, a, now, finish) {
                    sp.commit().await?;
                    written.push(true);
                } else {
                    sp.rollback().await?;
                    written.push(false);
                }
            }
            tx.commit().await?;
            Ok(written)
        })
    }

    /// Claims up to `limit` due outbox items for `owner` until `lease_until_ms`. PostgreSQL
    /// skips rows another process is claiming (`FOR UPDATE SKIP LOCKED`); SQLite serves one
    /// process and claims in one `UPDATE … RETURNING`. An expired lease is claimable again, so
    /// a crashed worker's items are taken over.
    pub async fn route_claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let sql = OUTBOX_LEASE.claim_sql(
            self,
            "state = 'pending' AND next_attempt_ms <= $2",
            "next_attempt_ms, created_at",
            "",
            OUTBOX_COLUMNS,
        );
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(owner).bind(now_ms).bind(lease_until_ms).bind(limit)
            .fetch_all(p).await?.iter().map(outbox).collect()),
        )
    }

    /// Ends an item `owner` holds: `delivered`, `refused` or `dead`. False when the lease was
    /// lost (another worker took the item over), so the caller writes nothing else.
    pub async fn route_outbox_finish(
        &self,
        id: &str,
        owner: &str,
        state: &str,
        error: Option<&str>,
        now: &str,
    ) -> Result<bool, StoreError> {
        let sql = OUTBOX_LEASE.finish_sql();
        let n = with_pool!(self, p => sqlx::query(&sql).bind(state).bind(error).bind(now).bind(id).bind(owner)
            .execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Records a failed attempt and when to try again (releases the lease).
    pub async fn route_outbox_retry(
        &self,
        id: &str,
        owner: &str,
        attempts: i64,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<bool, StoreError> {
        let sql = OUTBOX_LEASE.retry_sql();
        let n = with_pool!(self, p => sqlx::query(&sql).bind(attempts).bind(next_attempt_ms).bind(error).bind(id).bind(owner)
            .execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Outbox counts by state.
    pub async fn route_outbox_states(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT state, COUNT(*) FROM route_outbox GROUP BY state ORDER BY state";
        Ok(
            with_pool!(self, p => sqlx::query(sql).fetch_all(p).await?.iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))).collect()),
        )
    }

    /// Outbox counts by state, of the items about documents `agency` sent, is addressed or holds.
    pub async fn route_outbox_states_for(
        &self,
        agency: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT o.state, COUNT(*) FROM route_outbox o WHERE EXISTS (SELECT 1 FROM route_documents d \
                   WHERE d.document_id = o.document_id AND (d.sender_organ = $1 OR d.recipient_organ = $1 OR d.owner_organ = $1)) \
                   GROUP BY o.state ORDER BY o.state";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(agency).fetch_all(p).await?.iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))).collect()),
        )
    }

    /// Counts of rows by state, of the rows `agency` sent, is addressed or holds.
    pub async fn route_document_states_for(
        &self,
        agency: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT state, COUNT(*) FROM route_documents WHERE sender_organ = $1 OR recipient_organ = $1 OR owner_organ = $1 \
                   GROUP BY state ORDER BY state";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(agency).fetch_all(p).await?.iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))).collect()),
        )
    }

    /// The dead-lettered outbox items of a DocumentId.
    pub async fn route_dead_items(&self, document_id: &str) -> Result<Vec<OutboxItem>, StoreError> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM route_outbox WHERE document_id = $1 AND state = 'dead' ORDER BY created_at, id");
        Ok(with_pool!(self, p => sqlx::query(&sql).bind(document_id)
            .fetch_all(p).await?.iter().map(outbox).collect()))
    }

    /// Puts a dead-lettered item back to `pending` (due now, attempts from zero) and its
    /// envelope's rows for that peer back to `forwarding`, in one transaction; false when the
    /// item is no longer dead (retried meanwhile).
    pub async fn route_requeue(&self, item: &OutboxItem, now: &str) -> Result<bool, StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE route_outbox SET state = 'pending', attempts = 0, next_attempt_ms = 0, done_at = NULL, \
                                 lease_owner = NULL, lease_until_ms = NULL WHERE id = $1 AND state = 'dead'")
                .bind(&item.id).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            if let Some(env) = &item.envelope_id {
                sqlx::query("UPDATE route_documents SET state = 'forwarding', updated_at = $1 WHERE envelope_id = $2 AND next_node = $3 AND state = 'dead'")
                    .bind(now).bind(env).bind(&item.next_node).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Sets the state of the rows `ids`.
    pub async fn route_set_state(
        &self,
        ids: &[String],
        state: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, p => {
            for id in ids {
                sqlx::query("UPDATE route_documents SET state = $1, updated_at = $2 WHERE id = $3")
                    .bind(state).bind(now).bind(id).execute(p).await?;
            }
        });
        Ok(())
    }

    /// Appends a history event.
    pub async fn route_trace(&self, t: &TraceEvent) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query(INSERT_TRACE)
                .bind(&t.document_id).bind(&t.sender_organ).bind(&t.at).bind(&t.event).bind(&t.detail)
                .execute(p).await?;
        });
        Ok(())
    }

    /// The history of a DocumentId at this node, in order.
    pub async fn route_traces(&self, document_id: &str) -> Result<Vec<TraceEvent>, StoreError> {
        let sql = "SELECT document_id, sender_organ, at, event, detail FROM route_traces WHERE document_id = $1 ORDER BY seq";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(document_id).fetch_all(p).await?.iter().map(|r| TraceEvent {
            document_id: r.get(0), sender_organ: r.get(1), at: r.get(2), event: r.get(3), detail: r.get(4),
        }).collect()),
        )
    }

    /// Stores a received status once; false when the same (document, sender, from, code) is
    /// already here (a redelivery).
    pub async fn route_add_status(&self, s: &StatusRow) -> Result<bool, StoreError> {
        let n = with_pool!(self, p => sqlx::query(INSERT_STATUS).bind(&s.id).bind(&s.document_id).bind(&s.sender_organ)
            .bind(&s.from_organ).bind(&s.code).bind(&s.description).bind(&s.at).bind(&s.bytes).bind(&s.issued_at)
            .execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Statuses received for a DocumentId, in the order they were issued (their own
    /// Timestamp; arrival time for those stored before it was kept).
    pub async fn route_statuses(&self, document_id: &str) -> Result<Vec<StatusRow>, StoreError> {
        let sql = "SELECT id, document_id, sender_organ, from_organ, code, description, at, bytes, issued_at FROM route_statuses WHERE document_id = $1 \
                   ORDER BY COALESCE(issued_at, at), at, code";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(document_id).fetch_all(p).await?.iter().map(|r| StatusRow {
            id: r.get(0), document_id: r.get(1), sender_organ: r.get(2), from_organ: r.get(3), code: r.get(4),
            description: r.get(5), at: r.get(6), bytes: r.get(7), issued_at: r.get(8),
        }).collect()),
        )
    }
}

const LIST_COLUMNS: &str = "d.id, d.sender_organ, d.document_id, d.doc_type, d.recipient_organ, d.digest, d.envelope_id, d.target_document, d.state, d.next_node, d.created_at, d.updated_at, d.owner_organ, \
    d.subject, d.sender_name, d.doc_number, d.document_type, d.document_type_name, d.promulgation_date, d.due_date, d.attachments, \
    (SELECT s.code FROM route_statuses s WHERE s.document_id = d.document_id AND s.sender_organ = d.sender_organ \
     AND (s.from_organ = d.owner_organ OR s.from_organ = d.recipient_organ) ORDER BY COALESCE(s.issued_at, s.at) DESC, s.at DESC, s.code DESC LIMIT 1)";

fn listed_of(r: &impl RowLike) -> ListedDocument {
    ListedDocument {
        row: document(r),
        meta: DocumentMeta {
            subject: r.s(13),
            sender_name: r.s(14),
            doc_number: r.s(15),
            document_type: r.s(16),
            document_type_name: r.o(17),
            promulgation_date: r.o(18),
            due_date: r.o(19),
            attachments: serde_json::from_str(&r.s(20)).unwrap_or_default(),
        },
        last_status: r.o(21),
    }
}

/// The held envelopes' leases.
const PENDING_LEASE: LeaseTable = LeaseTable {
    table: "route_pending",
    fenced: false,
};

const PENDING_COLUMNS: &str = "id, from_node, agency, recipients, digest, sender_organ, document_id, bytes, received_at, deadline_ms, next_check_ms, attempts, last_reason, state";

fn pending(r: &impl RowLike) -> PendingRow {
    PendingRow {
        id: r.s(0),
        from_node: r.s(1),
        agency: r.o(2),
        recipients: r.s(3),
        digest: r.s(4),
        sender_organ: r.s(5),
        document_id: r.s(6),
        bytes: r.b(7).unwrap_or_default(),
        received_at: r.s(8),
        deadline_ms: r.i(9),
        next_check_ms: r.i(10),
        attempts: r.i(11),
        last_reason: r.s(12),
        state: r.s(13),
    }
}

/// `text` for a `LIKE` pattern: `\`, `%` and `_` escaped (with `ESCAPE '\'`), lowercased.
fn like_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    /// The inbox or sent list, newest first, filtered and paged ([`ListFilter`]).
    pub async fn route_list(&self, f: &ListFilter) -> Result<Vec<ListedDocument>, StoreError> {
        fn arg(v: String, args: &mut Vec<String>) -> String {
            args.push(v);
            format!("${}", args.len())
        }
        let mut args: Vec<String> = Vec::new();
        let mut clauses: Vec<String> = Vec::new();
        let (who, party) = match f.kind {
            ListKind::Inbox => {
                clauses.push("d.next_node IS NULL".into());
                ("d.owner_organ", "d.sender_organ = {p}")
            }
            ListKind::Sent => (
                "d.sender_organ",
                "(d.recipient_organ = {p} OR d.owner_organ = {p})",
            ),
        };
        if !f.agencies.is_empty() {
            let list: Vec<String> = f
                .agencies
                .iter()
                .map(|a| arg(a.clone(), &mut args))
                .collect();
            clauses.push(format!("{who} IN ({})", list.join(", ")));
        }
        if !f.states.is_empty() {
            let list: Vec<String> = f.states.iter().map(|a| arg(a.clone(), &mut args)).collect();
            clauses.push(format!("d.state IN ({})", list.join(", ")));
        }
        if let Some(p) = &f.party {
            let p = arg(p.clone(), &mut args);
            clauses.push(party.replace("{p}", &p));
        }
        if let Some(from) = &f.from {
            clauses.push(format!("d.created_at >= {}", arg(from.clone(), &mut args)));
        }
        if let Some(until) = &f.until {
            clauses.push(format!("d.created_at < {}", arg(until.clone(), &mut args)));
        }
        if let Some(text) = f.text.as_deref().filter(|t| !t.is_empty()) {
            let p = arg(like_pattern(text), &mut args);
            clauses.push(format!(
                "(LOWER(d.subject) LIKE {p} ESCAPE '\\' OR LOWER(d.doc_number) LIKE {p} ESCAPE '\\' \
                 OR LOWER(d.sender_name) LIKE {p} ESCAPE '\\' OR LOWER(d.document_id) LIKE {p} ESCAPE '\\')"
            ));
        }
        if let Some((at, id)) = &f.after {
            let a1 = arg(at.clone(), &mut args);
            let a2 = arg(at.clone(), &mut args);
            let i = arg(id.clone(), &mut args);
            clauses.push(format!(
                "(d.created_at < {a1} OR (d.created_at = {a2} AND d.id < {i}))"
            ));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {LIST_COLUMNS} FROM route_documents d {filter} ORDER BY d.created_at DESC, d.id DESC LIMIT ${}",
            args.len() + 1
        );
        Ok(with_pool!(self, p => {
            let mut q = sqlx::query(&sql);
            for a in &args {
                q = q.bind(a);
            }
            q.bind(f.limit).fetch_all(p).await?.iter().map(listed_of).collect()
        }))
    }

    /// Holds an envelope for re-validation; false when the same one (node, digest,
    /// recipients) is already held.
    pub async fn route_hold(&self, r: &PendingRow, trace: &TraceEvent) -> Result<bool, StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(&format!("INSERT INTO route_pending ({PENDING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING"))
                .bind(&r.id).bind(&r.from_node).bind(&r.agency).bind(&r.recipients).bind(&r.digest).bind(&r.sender_organ)
                .bind(&r.document_id).bind(&r.bytes).bind(&r.received_at).bind(r.deadline_ms).bind(r.next_check_ms)
                .bind(r.attempts).bind(&r.last_reason).bind(&r.state)
                .execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                sqlx::query(INSERT_TRACE)
                    .bind(&trace.document_id).bind(&trace.sender_organ).bind(&trace.at).bind(&trace.event).bind(&trace.detail)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    /// Claims up to `limit` held envelopes due for re-validation, leased to `owner`.
    pub async fn route_pending_claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<PendingRow>, StoreError> {
        let sql = PENDING_LEASE.claim_sql(
            self,
            "state = 'waiting' AND next_check_ms <= $2",
            "next_check_ms",
            "",
            PENDING_COLUMNS,
        );
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(owner).bind(now_ms).bind(lease_until_ms).bind(limit)
            .fetch_all(p).await?.iter().map(pending).collect()),
        )
    }

    /// Schedules the next re-validation of a held envelope `owner` holds (releases the lease).
    pub async fn route_pending_reschedule(
        &self,
        id: &str,
        owner: &str,
        attempts: i64,
        next_check_ms: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE route_pending SET attempts = $1, next_check_ms = $2, last_reason = $3, lease_owner = NULL, lease_until_ms = NULL \
                   WHERE id = $4 AND lease_owner = $5 AND state = 'waiting'";
        let n = with_pool!(self, p => sqlx::query(sql).bind(attempts).bind(next_check_ms).bind(reason).bind(id).bind(owner)
            .execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Ends a held envelope `owner` holds: `accepted` or `refused` (with the reason).
    pub async fn route_pending_finish(
        &self,
        id: &str,
        owner: &str,
        state: &str,
        reason: &str,
        now: &str,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE route_pending SET state = $1, last_reason = $2, done_at = $3, lease_owner = NULL, lease_until_ms = NULL \
                   WHERE id = $4 AND lease_owner = $5 AND state = 'waiting'";
        let n = with_pool!(self, p => sqlx::query(sql).bind(state).bind(reason).bind(now).bind(id).bind(owner)
            .execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// The held envelopes of a DocumentId (every state), oldest first.
    pub async fn route_pending_of(&self, document_id: &str) -> Result<Vec<PendingRow>, StoreError> {
        let sql = format!("SELECT {PENDING_COLUMNS} FROM route_pending WHERE document_id = $1 ORDER BY received_at, id");
        Ok(with_pool!(self, p => sqlx::query(&sql).bind(document_id)
            .fetch_all(p).await?.iter().map(pending).collect()))
    }

    /// Held envelopes by state.
    pub async fn route_pending_states(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT state, COUNT(*) FROM route_pending GROUP BY state ORDER BY state";
        Ok(
            with_pool!(self, p => sqlx::query(sql).fetch_all(p).await?.iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))).collect()),
        )
    }

    /// The outbox items of a DocumentId, oldest first.
    pub async fn route_outbox_of(&self, document_id: &str) -> Result<Vec<OutboxView>, StoreError> {
        let sql = "SELECT id, kind, next_node, document_id, recipients, state, attempts, last_error, created_at FROM route_outbox \
                   WHERE document_id = $1 ORDER BY created_at, id";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(document_id).fetch_all(p).await?.iter().map(outbox_view).collect()),
        )
    }

    /// Outbox items that failed at least once (pending with a last error, refused or dead),
    /// newest first; only those about documents `agency` sent, is addressed or holds, when given.
    pub async fn route_outbox_failures(
        &self,
        agency: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxView>, StoreError> {
        let scope = "AND ($2 = '' OR EXISTS (SELECT 1 FROM route_documents d WHERE d.document_id = o.document_id \
             AND (d.sender_organ = $2 OR d.recipient_organ = $2 OR d.owner_organ = $2)))";
        let sql = format!("SELECT o.id, o.kind, o.next_node, o.document_id, o.recipients, o.state, o.attempts, o.last_error, o.created_at \
                   FROM route_outbox o WHERE o.last_error IS NOT NULL AND o.state <> 'delivered' {scope} \
                   ORDER BY o.created_at DESC, o.id DESC LIMIT $1");
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(limit).bind(agency.unwrap_or_default())
            .fetch_all(p).await?.iter().map(outbox_view).collect()),
        )
    }
}

fn outbox_view(r: &impl RowLike) -> OutboxView {
    OutboxView {
        id: r.s(0),
        kind: r.s(1),
        next_node: r.s(2),
        document_id: r.s(3),
        recipients: r.s(4),
        state: r.s(5),
        attempts: r.i(6),
        last_error: r.o(7),
        created_at: r.s(8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str) -> OutboxItem {
        OutboxItem {
            id: id.into(),
            kind: "status".into(),
            next_node: "peer".into(),
            document_id: "D/1,2".into(),
            envelope_id: None,
            recipients: "[]".into(),
            payload: Some(b"<Status/>".to_vec()),
            attempts: 0,
        }
    }

    #[tokio::test]
    async fn leases_fence_workers_and_expire_for_takeover() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&Store::sqlite_url(dir.path()))
            .await
            .expect("open");
        let a = Acceptance {
            outbox: vec![item("ob_1"), item("ob_2")],
            ..Acceptance::default()
        };
        assert!(store
            .route_accept(&a, "2026-01-01T00:00:00Z")
            .await
            .expect("accept"));
        let first = store.route_claim("A", 1000, 2000, 1).await.expect("claim");
        assert_eq!(first.len(), 1);
        let second = store.route_claim("B", 1000, 2000, 10).await.expect("claim");
        assert_eq!(second.len(), 1, "B gets only the item A does not hold");
        assert_ne!(first[0].id, second[0].id);
        assert!(store
            .route_claim("C", 1500, 2500, 10)
            .await
            .expect("claim")
            .is_empty());
        // A's lease expires: C takes the item over, and A can no longer finish it
        let taken = store.route_claim("C", 2001, 3000, 10).await.expect("claim");
        assert_eq!(
            taken
                .iter()
                .map(|i| i.id.as_str())
                .collect::<Vec<_>>()
                .len(),
            2
        );
        assert!(!store
            .route_outbox_finish(&first[0].id, "A", "delivered", None, "t")
            .await
            .expect("finish"));
        assert!(store
            .route_outbox_finish(&first[0].id, "C", "delivered", None, "t")
            .await
            .expect("finish"));
        // a retry releases the lease and sets when the item is due again
        assert!(store
            .route_outbox_retry(&second[0].id, "C", 1, 5000, "down")
            .await
            .expect("retry"));
        assert!(store
            .route_claim("D", 4999, 9000, 10)
            .await
            .expect("claim")
            .is_empty());
        let again = store.route_claim("D", 5000, 9000, 10).await.expect("claim");
        assert_eq!((again.len(), again[0].attempts), (1, 1));
        assert_eq!(
            store.route_outbox_states().await.expect("states"),
            vec![("delivered".into(), 1), ("pending".into(), 1)]
        );
    }

    #[tokio::test]
    async fn an_accepts_lookups_use_an_index_not_a_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&Store::sqlite_url(dir.path()))
            .await
            .expect("open");
        let Store::Sqlite(pool) = &store else {
            panic!("a SQLite store")
        };
        for (sql, index) in [
            (
                format!("SELECT {DOC_COLUMNS} FROM route_documents WHERE {HELD_WHERE}"),
                "route_documents_target",
            ),
            (
                format!("SELECT {DOC_COLUMNS} FROM route_documents WHERE {KEY_PREFIX_WHERE}"),
                "sqlite_autoindex_route_documents_2",
            ),
            (
                format!(
                    "UPDATE route_documents SET state = $1, updated_at = $2 WHERE {CARRIED_WHERE}"
                ),
                "route_documents_envelope",
            ),
        ] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut q = sqlx::query(&explain);
            for _ in 0..sql.matches('$').count() {
                q = q.bind("x");
            }
            let plan: Vec<String> = q
                .fetch_all(pool)
                .await
                .expect("plan")
                .iter()
                .map(|r| r.get::<String, _>(3))
                .collect();
            assert!(
                plan.iter().any(|p| p.contains(index))
                    && !plan.iter().any(|p| p.starts_with("SCAN")),
                "{sql}: {plan:?}"
            );
        }
    }

    #[tokio::test]
    async fn statuses_are_listed_in_the_order_they_were_issued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&Store::sqlite_url(dir.path()))
            .await
            .expect("open");
        // 06 arrives before 03 (another path was faster), but was issued after it
        for (code, at, issued) in [
            ("06", "2026-01-01T00:00:01Z", "2026-01-01T00:00:05Z"),
            ("03", "2026-01-01T00:00:09Z", "2026-01-01T00:00:04Z"),
        ] {
            let row = StatusRow {
                id: format!("st_{code}"),
                document_id: "D".into(),
                sender_organ: "S".into(),
                from_organ: "R".into(),
                code: code.into(),
                description: None,
                at: at.into(),
                issued_at: Some(issued.into()),
                bytes: b"<Status/>".to_vec(),
            };
            assert!(store.route_add_status(&row).await.expect("add"));
        }
        let codes: Vec<String> = store
            .route_statuses("D")
            .await
            .expect("list")
            .into_iter()
            .map(|s| s.code)
            .collect();
        assert_eq!(codes, ["03", "06"]);
    }

    #[tokio::test]
    async fn one_row_per_idempotency_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&Store::sqlite_url(dir.path()))
            .await
            .expect("open");
        let env = |id: &str| EnvelopeRow {
            id: id.into(),
            digest: "d1".into(),
            bytes: b"<e/>".to_vec(),
            from_node: "p".into(),
            received_at: "t".into(),
        };
        let row = |id: &str, env: &str| DocumentRow {
            id: id.into(),
            sender_organ: "S".into(),
            document_id: "S,2025/01/02,1/UBND".into(),
            doc_type: 0,
            recipient_organ: "R".into(),
            owner_organ: "R".into(),
            digest: "d1".into(),
            envelope_id: env.into(),
            target_document: "S,2025/01/02,1/UBND".into(),
            state: "delivered".into(),
            next_node: None,
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        let first = Acceptance {
            envelope: Some(env("e1")),
            documents: vec![row("r1", "e1")],
            ..Acceptance::default()
        };
        assert!(store.route_accept(&first, "t").await.expect("accept"));
        let again = Acceptance {
            envelope: Some(env("e2")),
            documents: vec![row("r2", "e2")],
            ..Acceptance::default()
        };
        assert!(
            !store.route_accept(&again, "t").await.expect("accept"),
            "same key refused"
        );
        assert!(
            store.route_envelope("e2").await.expect("read").is_none(),
            "rolled back"
        );
        let found = store
            .route_document("S", "S,2025/01/02,1/UBND", 0, "R")
            .await
            .expect("read")
            .expect("row");
        assert_eq!(found.id, "r1");
        assert_eq!(
            store
                .route_inbox(&["delivered"])
                .await
                .expect("inbox")
                .len(),
            1
        );
    }
}
