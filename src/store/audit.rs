//! The audit trail: append-only, canonically serialized (RFC 8785) and hash-chained records.
//!
//! `hash = SHA-256(prev_hash ‖ canonical)`, hex; the first record's `prev_hash` is 64 zeros.
//! The head (`audit_head`, one row) is read and moved in the same transaction as the insert:
//! SQLite takes the write lock up front (`BEGIN IMMEDIATE`), PostgreSQL locks the head row
//! (`SELECT … FOR UPDATE`); `UNIQUE(prev_hash)` refuses a fork either way. The record is
//! committed before the caller answers its request; the gateway commits concurrent requests'
//! records together ([`Store::append_audit_group`], one log flush per group).

use serde_json::Value;
use sqlx::Row;

use super::batches::{INSERT_BATCH, INSERT_BATCH_DOCUMENT};
use super::idempotency::{Completion, COMPLETE};
use super::{BatchRecord, Store, StoreError, Submission, INSERT_SUBMISSION};
use crate::pki::alg::DigestAlgorithm;

/// `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What is being recorded (the store adds sequence number and time).
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Agency whose trail this belongs to (`-` for gateway-wide administration).
    pub agency: String,
    /// Client id, or `admin` for the command line.
    pub client: String,
    /// `sign`, `verify`, `submit`, `client.add`, …
    pub action: String,
    /// Details: subject hashes, key name, verdict. Strings and integers only.
    pub subject: Value,
}

/// One record to append: the entry, its time (RFC 3339), an optional deduplication key
/// (records with the same key are written once), and what is stored with it in the same
/// transaction.
#[derive(Debug, Clone)]
pub struct Append {
    /// What is recorded.
    pub entry: AuditEntry,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// Records with the same key are written once.
    pub dedup: Option<String>,
    /// The row this record is about, inserted with it (carrying its sequence number).
    pub with: Option<Companion>,
    /// The idempotency key whose answer this record's request gives, completed with it.
    pub completes: Option<Completion>,
}

/// A row that must never exist without its audit record: inserted in the transaction that
/// appends the record, with the record's sequence number in its `audit_seq` column.
#[derive(Debug, Clone)]
pub enum Companion {
    /// A filing (`submit`).
    Submission(Box<Submission>),
    /// A batch and its documents, all `pending` (`batch.submit`).
    Batch {
        /// The batch.
        record: Box<BatchRecord>,
        /// Its documents' names, by index.
        names: Vec<String>,
    },
}

/// A stored record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Hash of the previous record.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
    /// The canonical JSON that was hashed.
    pub canonical: String,
    /// RFC 3339 UTC.
    pub at: String,
    /// Agency.
    pub agency: String,
    /// Client.
    pub client: String,
    /// Action.
    pub action: String,
}

/// RFC 8785 (JCS) serialization of the shapes the gateway writes: objects with ASCII keys
/// (sorted by code unit), strings, integers, booleans, null and arrays. serde_json's string
/// escaping is the one JCS prescribes; floats are not used in audit records.
pub fn canonical_json(value: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// `SHA-256(prev_hash ‖ canonical)` as hex; `prev_hash` is taken as its hex text.
pub fn chain_hash(prev_hash: &str, canonical: &str) -> String {
    let mut h = DigestAlgorithm::Sha256.hasher();
    h.update(prev_hash.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finish())
}

/// The outcome of [`Store::verify_audit`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainCheck {
    /// Records read.
    pub records: i64,
    /// The last record's sequence number and hash.
    pub head: Option<(i64, String)>,
    /// The first problem found, or `None` when the chain is intact.
    pub problem: Option<String>,
    /// Stored things without their audit record: submissions without `submit`, batches
    /// without `batch.submit`, signed batch documents without `sign` (one line each).
    pub orphans: Vec<String>,
}

impl ChainCheck {
    /// Intact, with every stored submission, batch and signed batch document in the chain.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none() && self.orphans.is_empty()
    }
}

/// Reads an [`AuditRecord`] from a row of either backend.
macro_rules! record_from_row {
    ($r:expr) => {
        AuditRecord {
            seq: $r.get("seq"),
            prev_hash: $r.get("prev_hash"),
            hash: $r.get("hash"),
            canonical: $r.get("canonical"),
            at: $r.get("at"),
            agency: $r.get("agency"),
            client: $r.get("client"),
            action: $r.get("action"),
        }
    };
}

/// Inserts an [`AuditRecord`] with its deduplication key through `$executor`.
macro_rules! insert {
    ($record:expr, $dedup:expr, $executor:expr) => {
        sqlx::query(INSERT)
            .bind($record.seq)
            .bind(&$record.prev_hash)
            .bind(&$record.hash)
            .bind(&$record.canonical)
            .bind(&$record.at)
            .bind(&$record.agency)
            .bind(&$record.client)
            .bind(&$record.action)
            .bind($dedup)
            .execute($executor)
            .await?
    };
}

/// Inside a transaction holding the chain lock: reads the head with `$head_sql`, appends
/// `$items` (returning the existing record for a `dedup` key already recorded), moves the
/// head, and evaluates to the records. One body for both databases' connection types.
macro_rules! append_locked {
    ($items:expr, $head_sql:expr, $conn:expr) => {{
        let head = sqlx::query($head_sql).fetch_one($conn).await?;
        let (mut seq, mut hash) = (head.get::<i64, _>(0), head.get::<String, _>(1));
        let mut records = Vec::with_capacity($items.len());
        for item in $items {
            if let Some(key) = &item.dedup {
                let found = sqlx::query(BY_DEDUP)
                    .bind(key)
                    .fetch_optional($conn)
                    .await?;
                if let Some(r) = found {
                    records.push(record_from_row!(r));
                    continue;
                }
            }
            let record = build(&item.entry, seq + 1, &hash, &item.at);
            insert!(record, &item.dedup, $conn);
            match &item.with {
                Some(Companion::Submission(s)) => {
                    sqlx::query(INSERT_SUBMISSION)
                        .bind(&s.id)
                        .bind(&s.client_id)
                        .bind(&s.agency)
                        .bind(&s.idempotency_key)
                        .bind(&s.received_at)
                        .bind(&s.sha256)
                        .bind(s.size)
                        .bind(&s.indication)
                        .bind(&s.report)
                        .bind(&s.document)
                        .bind(&s.response)
                        .bind(record.seq)
                        .execute($conn)
                        .await?;
                }
                Some(Companion::Batch { record: b, names }) => {
                    sqlx::query(INSERT_BATCH)
                        .bind(&b.id)
                        .bind(&b.client_id)
                        .bind(&b.agency)
                        .bind(&b.idempotency_key)
                        .bind(&b.key_name)
                        .bind(&b.options)
                        .bind(&b.state)
                        .bind(b.total)
                        .bind(&b.created_at)
                        .bind(&b.finished_at)
                        .bind(&b.error)
                        .bind(record.seq)
                        .execute($conn)
                        .await?;
                    for (i, name) in names.iter().enumerate() {
                        sqlx::query(INSERT_BATCH_DOCUMENT)
                            .bind(&b.id)
                            .bind(i as i64)
                            .bind(name)
                            .execute($conn)
                            .await?;
                    }
                }
                None => {}
            }
            if let Some(c) = &item.completes {
                sqlx::query(COMPLETE)
                    .bind(&c.client_id)
                    .bind(&c.key)
                    .bind(&c.owner)
                    .bind(&c.fingerprint)
                    .bind(&c.response)
                    .bind(&c.at)
                    .bind(&c.expires_at)
                    .execute($conn)
                    .await?;
            }
            (seq, hash) = (record.seq, record.hash.clone());
            records.push(record);
        }
        sqlx::query(MOVE_HEAD)
            .bind(seq)
            .bind(&hash)
            .execute($conn)
            .await?;
        records
    }};
}

const INSERT: &str = "INSERT INTO audit (seq, prev_hash, hash, canonical, at, agency, client, action, dedup) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const BY_DEDUP: &str = "SELECT seq, prev_hash, hash, canonical, at, agency, client, action FROM audit WHERE dedup = $1";
const MOVE_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";

fn build(entry: &AuditEntry, seq: i64, prev: &str, at: &str) -> AuditRecord {
    let body = serde_json::json!({
        "seq": seq,
        "at": at,
        "agency": entry.agency,
        "client": entry.client,
        "action": entry.action,
        "subject": entry.subject,
    });
    let canonical = canonical_json(&body);
    AuditRecord {
        seq,
        prev_hash: prev.to_string(),
        hash: chain_hash(prev, &canonical),
        canonical,
        at: at.to_string(),
        agency: entry.agency.clone(),
        client: entry.client.clone(),
        action: entry.action.clone(),
    }
}

impl Store {
    /// Appends `items` in order in one transaction (one commit, one log flush: group
    /// commit) and returns one record per item. Nothing is appended if any insert fails. An
    /// item whose `dedup` key is already recorded is not appended again: the existing record
    /// is returned (the check runs under the chain lock, so it cannot race). The gateway's
    /// audit log is the only caller: one write path into the chain.
    pub async fn append_audit_group(
        &self,
        items: &[Append],
    ) -> Result<Vec<AuditRecord>, StoreError> {
        match self {
            Store::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                let result: Result<Vec<AuditRecord>, StoreError> = async {
                    Ok(append_locked!(
                        items,
                        "SELECT seq, hash FROM audit_head WHERE id = 1",
                        &mut *conn
                    ))
                }
                .await;
                match result {
                    Ok(records) => {
                        sqlx::query("COMMIT").execute(&mut *conn).await?;
                        Ok(records)
                    }
                    Err(e) => {
                        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                        Err(e)
                    }
                }
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let records = append_locked!(
                    items,
                    "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
                    &mut *tx
                );
                tx.commit().await?;
                Ok(records)
            }
        }
    }

    /// Records of `agency` after `after_seq`, oldest first, at most `limit`; `action` filters.
    pub async fn audit_for_agency(
        &self,
        agency: &str,
        after_seq: i64,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let sql = "SELECT seq, prev_hash, hash, canonical, at, agency, client, action FROM audit \
                   WHERE agency = $1 AND seq > $2 AND ($3 = '' OR action = $3) ORDER BY seq LIMIT $4";
        let action = action.unwrap_or("");
        Ok(
            super::with_pool!(self, p => sqlx::query(sql).bind(agency).bind(after_seq).bind(action).bind(limit)
            .fetch_all(p).await?.iter().map(|r| record_from_row!(r)).collect()),
        )
    }

    /// Agency `agency`'s own numbering of its records: `(n, record)` where `n` counts the
    /// agency's records from 1 in chain order; those numbered above `after` (and of `action`,
    /// if given), at most `limit`. The global sequence numbers stay out of the agency's view.
    pub async fn audit_numbered_for_agency(
        &self,
        agency: &str,
        after: i64,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(i64, AuditRecord)>, StoreError> {
        let sql = "SELECT n, seq, prev_hash, hash, canonical, at, agency, client, action FROM                    (SELECT ROW_NUMBER() OVER (ORDER BY seq) AS n, seq, prev_hash, hash, canonical, at, agency, client, action                     FROM audit WHERE agency = $1) numbered                    WHERE n > $2 AND ($3 = '' OR action = $3) ORDER BY seq LIMIT $4";
        let action = action.unwrap_or("");
        Ok(
            super::with_pool!(self, p => sqlx::query(sql).bind(agency).bind(after).bind(action).bind(limit)
            .fetch_all(p).await?.iter().map(|r| (r.get::<i64, _>("n"), record_from_row!(r))).collect()),
        )
    }

    /// The agency's own number of its record `seq`: how many of its records are at or
    /// before it in the chain.
    pub async fn audit_agency_number(&self, agency: &str, seq: i64) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM audit WHERE agency = $1 AND seq <= $2";
        Ok(super::with_pool!(self, p => {
            let r = sqlx::query(sql).bind(agency).bind(seq).fetch_one(p).await?;
            r.get::<i64, _>(0)
        }))
    }

    /// How many of the agency's records lie after `after` and at or before `upto` in the chain
    /// (global sequence numbers): the step between two of its own numbers, counted over the
    /// `(agency, seq)` index range between them only.
    pub async fn audit_agency_count_between(
        &self,
        agency: &str,
        after: i64,
        upto: i64,
    ) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM audit WHERE agency = $1 AND seq > $2 AND seq <= $3";
        Ok(super::with_pool!(self, p => {
            let r = sqlx::query(sql).bind(agency).bind(after).bind(upto).fetch_one(p).await?;
            r.get::<i64, _>(0)
        }))
    }

    /// [`Store::audit_agency_number`] of each of the agency's records from `first` to
    /// `last` (global sequence numbers, inclusive), as `(seq, n)`.
    pub async fn audit_agency_numbers(
        &self,
        agency: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let sql = "SELECT seq, n FROM (SELECT seq, ROW_NUMBER() OVER (ORDER BY seq) AS n                    FROM audit WHERE agency = $1 AND seq <= $3) numbered WHERE seq >= $2";
        Ok(
            super::with_pool!(self, p => sqlx::query(sql).bind(agency).bind(first).bind(last)
            .fetch_all(p).await?.iter().map(|r| (r.get::<i64, _>("seq"), r.get::<i64, _>("n"))).collect()),
        )
    }

    /// The head: last sequence number and hash.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        Ok(super::with_pool!(self, p => {
            let r = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(p).await?;
            (r.get(0), r.get(1))
        }))
    }

    /// Walks the whole chain: sequence gaps (deleted records), broken links, altered records,
    /// and, given a checkpoint `(seq, hash)`, a tail truncated below it or a rewritten history.
    pub async fn verify_audit(
        &self,
        checkpoint: Option<(i64, &str)>,
    ) -> Result<ChainCheck, StoreError> {
        let sql = "SELECT seq, prev_hash, hash, canonical, at, agency, client, action FROM audit ORDER BY seq";
        let records: Vec<AuditRecord> = super::with_pool!(self, p => sqlx::query(sql).fetch_all(p).await?.iter().map(|r| record_from_row!(r)).collect());
        let mut prev_hash = GENESIS.to_string();
        let mut expected_seq = 1;
        let mut problem = None;
        let mut checkpoint_seen = false;
        for r in &records {
            if r.seq != expected_seq {
                problem = Some(format!(
                    "record {expected_seq}{} missing (deleted): next present record is {}",
                    if r.seq > expected_seq + 1 {
                        format!("..{}", r.seq - 1)
                    } else {
                        String::new()
                    },
                    r.seq
                ));
                break;
            }
            if r.prev_hash != prev_hash {
                problem = Some(format!(
                    "broken link at record {}: prev_hash does not match record {}",
                    r.seq,
                    r.seq - 1
                ));
                break;
            }
            let recomputed = chain_hash(&r.prev_hash, &r.canonical);
            let fields_match = serde_json::from_str::<Value>(&r.canonical)
                .ok()
                .map(|v| {
                    v["seq"] == r.seq
                        && v["at"] == r.at.as_str()
                        && v["agency"] == r.agency.as_str()
                        && v["client"] == r.client.as_str()
                        && v["action"] == r.action.as_str()
                })
                .unwrap_or(false);
            if recomputed != r.hash || !fields_match {
                problem = Some(format!(
                    "record {} was modified: its content does not match its hash",
                    r.seq
                ));
                break;
            }
            if let Some((cp_seq, cp_hash)) = checkpoint {
                if r.seq == cp_seq {
                    checkpoint_seen = true;
                    if r.hash != cp_hash {
                        problem = Some(format!(
                            "record {} differs from the checkpoint: history was rewritten",
                            r.seq
                        ));
                        break;
                    }
                }
            }
            prev_hash = r.hash.clone();
            expected_seq += 1;
        }
        if problem.is_none() {
            if let Some((cp_seq, _)) = checkpoint {
                if !checkpoint_seen {
                    problem = Some(format!(
                        "truncated tail: the checkpoint covers record {cp_seq} but the chain ends at {}",
                        expected_seq - 1
                    ));
                }
            }
        }
        if problem.is_none() {
            let (head_seq, head_hash) = self.audit_head().await?;
            if head_seq != expected_seq - 1 || (head_seq > 0 && head_hash != prev_hash) {
                problem = Some(format!(
                    "truncated tail: the head says record {head_seq} but the chain ends at {}",
                    expected_seq - 1
                ));
            }
        }
        let orphans = self.orphans(&records).await?;
        Ok(ChainCheck {
            records: records.len() as i64,
            head: records.last().map(|r| (r.seq, r.hash.clone())),
            problem,
            orphans,
        })
    }

    /// The cross-check: stored submissions, batches and signed batch documents that no
    /// record of `records` names.
    async fn orphans(&self, records: &[AuditRecord]) -> Result<Vec<String>, StoreError> {
        use std::collections::HashSet;
        let (mut submissions, mut batches, mut signed) =
            (HashSet::new(), HashSet::new(), HashSet::new());
        for r in records {
            let Ok(v) = serde_json::from_str::<Value>(&r.canonical) else {
                continue;
            };
            let subject = &v["subject"];
            match r.action.as_str() {
                "submit" => {
                    if let Some(id) = subject["submission_id"].as_str() {
                        submissions.insert(id.to_string());
                    }
                }
                "batch.submit" => {
                    if let Some(id) = subject["batch"].as_str() {
                        batches.insert(id.to_string());
                    }
                }
                "sign" => {
                    if let (Some(id), Some(i)) =
                        (subject["batch"].as_str(), subject["index"].as_i64())
                    {
                        signed.insert((id.to_string(), i));
                    }
                }
                _ => {}
            }
        }
        let mut orphans = Vec::new();
        for id in self.submission_ids().await? {
            if !submissions.contains(&id) {
                orphans.push(format!("submission {id} has no submit audit record"));
            }
        }
        for id in self.batch_ids().await? {
            if !batches.contains(&id) {
                orphans.push(format!("batch {id} has no batch.submit audit record"));
            }
        }
        for (id, i) in self.signed_batch_documents().await? {
            if !signed.contains(&(id.clone(), i)) {
                orphans.push(format!(
                    "document {i} of batch {id} has no sign audit record"
                ));
            }
        }
        Ok(orphans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_is_compact() {
        let v = serde_json::json!({"b": 1, "a": {"z": "é\n", "y": [true, null]}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"y":[true,null],"z":"é\n"},"b":1}"#
        );
    }

    #[test]
    fn chain_hash_depends_on_previous() {
        assert_ne!(chain_hash(GENESIS, "{}"), chain_hash(&"1".repeat(64), "{}"));
    }
}
