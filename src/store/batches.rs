//! Batch rows: who submitted a batch, with which key and options, and how far each document
//! got. The documents themselves live in the data folder (see `api::batches`).

use sqlx::Row;

use super::lease::{Lease, LeaseTable};
use super::{with_pool, Store, StoreError};

/// Batch leases, fenced by `lease_gen`.
const BATCH_LEASE: LeaseTable = LeaseTable {
    table: "batches",
    fenced: true,
};

/// The holder's condition on the batch row: `$owner`/`$generation` placeholders given.
fn held(owner: &str, generation: &str) -> String {
    BATCH_LEASE.held(owner, generation)
}

/// A submitted batch.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    /// Id (`bat_…`).
    pub id: String,
    /// Submitting client.
    pub client_id: String,
    /// The client's agency; other agencies never see the batch.
    pub agency: String,
    /// `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// The signing key's name.
    pub key_name: String,
    /// The signing options as JSON (including the fixed signing time, so a resumed run signs
    /// exactly as the first one would have).
    pub options: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    /// Number of documents.
    pub total: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// When it ended (RFC 3339 UTC).
    pub finished_at: Option<String>,
    /// Why the batch stopped, for `failed`.
    pub error: Option<String>,
}

/// One document of a batch.
#[derive(Debug, Clone)]
pub struct BatchDocument {
    /// 0-based input index.
    pub index: i64,
    /// The (sanitized) file name it was uploaded with.
    pub name: String,
    /// `pending`, `signed` or `failed`.
    pub state: String,
    /// File name of the output inside the batch's `out` folder.
    pub output: Option<String>,
    /// SHA-256 of the output, hex.
    pub output_sha256: Option<String>,
    /// Sequence number of its `sign` audit record.
    pub audit_seq: Option<i64>,
    /// Stable error code when it failed.
    pub code: Option<String>,
    /// One-line reason when it failed.
    pub message: Option<String>,
}

/// `INSERT` of a [`BatchRecord`] with the sequence number of its `batch.submit` audit record
/// (`$12`); run by the audit writer in the transaction that appends that record.
pub(crate) const INSERT_BATCH: &str = "INSERT INTO batches (id, client_id, agency, idempotency_key, key_name, options, state, total, created_at, finished_at, error, audit_seq) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// `INSERT` of a `pending` batch document (`$1` batch, `$2` index, `$3` name).
pub(crate) const INSERT_BATCH_DOCUMENT: &str =
    "INSERT INTO batch_documents (batch_id, idx, name, state) VALUES ($1, $2, $3, 'pending')";

const BATCH_COLUMNS: &str = "id, client_id, agency, idempotency_key, key_name, options, state, total, created_at, finished_at, error";

/// Reads a [`BatchRecord`] from a row of either backend.
macro_rules! batch_from_row {
    ($r:expr) => {
        BatchRecord {
            id: $r.get(0),
            client_id: $r.get(1),
            agency: $r.get(2),
            idempotency_key: $r.get(3),
            key_name: $r.get(4),
            options: $r.get(5),
            state: $r.get(6),
            total: $r.get(7),
            created_at: $r.get(8),
            finished_at: $r.get(9),
            error: $r.get(10),
        }
    };
}

const DOCUMENT_COLUMNS: &str = "idx, name, state, output, output_sha256, audit_seq, code, message";

/// Reads a [`BatchDocument`] from a row of either backend.
macro_rules! document_from_row {
    ($r:expr) => {
        BatchDocument {
            index: $r.get(0),
            name: $r.get(1),
            state: $r.get(2),
            output: $r.get(3),
            output_sha256: $r.get(4),
            audit_seq: $r.get(5),
            code: $r.get(6),
            message: $r.get(7),
        }
    };
}

impl Store {
    /// Ids of every stored batch (the audit cross-check).
    pub async fn batch_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            with_pool!(self, p => sqlx::query("SELECT id FROM batches ORDER BY id").fetch_all(p).await?.iter().map(|r| r.get(0)).collect()),
        )
    }

    /// `(batch, index)` of every document recorded as signed (the audit cross-check).
    pub async fn signed_batch_documents(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT batch_id, idx FROM batch_documents WHERE state = 'signed' ORDER BY batch_id, idx";
        Ok(
            with_pool!(self, p => sqlx::query(sql).fetch_all(p).await?.iter().map(|r| (r.get(0), r.get(1))).collect()),
        )
    }

    /// The batch `id` (any agency: access control is the caller's job).
    pub async fn batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1");
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(id).fetch_optional(p).await?.map(|r| batch_from_row!(r))),
        )
    }

    /// Number of batches not finished yet (`queued` or `running`).
    pub async fn unfinished_batches(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM batches WHERE state IN ('queued', 'running')";
        Ok(with_pool!(self, p => sqlx::query(sql).fetch_one(p).await?.get(0)))
    }

    /// Claims the oldest unfinished batch whose lease is free or expired at `now_ms` for
    /// `owner` until `lease_until_ms` (moving it to `running` and incrementing its fencing
    /// token), skipping agencies that have a batch leased right now: one agency's batches run
    /// one after another, different agencies' side by side. `None` when nothing is due.
    pub async fn claim_batch(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<(BatchRecord, Lease)>, StoreError> {
        let due = "state IN ('queued', 'running') AND NOT EXISTS (SELECT 1 FROM batches o \
                   WHERE o.agency = batches.agency AND o.id <> batches.id \
                   AND o.state IN ('queued', 'running') AND o.lease_until_ms >= $2)";
        let columns = format!("{BATCH_COLUMNS}, lease_gen");
        let sql =
            BATCH_LEASE.claim_sql(self, due, "created_at, id", ", state = 'running'", &columns);
        let row = with_pool!(self, p => sqlx::query(&sql).bind(owner).bind(now_ms).bind(lease_until_ms).bind(1_i64)
        .fetch_optional(p).await?.map(|r| {
            let generation: i64 = r.get(11);
            (batch_from_row!(r), generation)
        }));
        Ok(row.map(|(batch, generation)| {
            (
                batch,
                Lease {
                    owner: owner.to_string(),
                    generation,
                },
            )
        }))
    }

    /// Extends `lease` on batch `id` to `lease_until_ms`; false when it was lost (taken over).
    pub async fn renew_batch_lease(
        &self,
        id: &str,
        lease: &Lease,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE batches SET lease_until_ms = $1 WHERE id = $2 AND state = 'running' AND {}",
            held("$3", "$4")
        );
        let n = with_pool!(self, p => sqlx::query(&sql).bind(lease_until_ms).bind(id).bind(&lease.owner).bind(lease.generation)
            .execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Frees the leases of unfinished batches, so they are claimable at once: at the start of
    /// a gateway on SQLite that is alone on its data folder (no other process can hold one).
    pub async fn release_batch_leases(&self) -> Result<u64, StoreError> {
        let sql = "UPDATE batches SET lease_until_ms = NULL WHERE state IN ('queued', 'running')";
        Ok(with_pool!(self, p => sqlx::query(sql).execute(p).await?.rows_affected()))
    }

    /// Ends batch `id` under `lease`: `done` or `failed` (with the reason), with the end time,
    /// and frees the lease; false when the lease was lost.
    pub async fn finish_batch(
        &self,
        id: &str,
        lease: &Lease,
        state: &str,
        error: Option<&str>,
        finished_at: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE batches SET state = $1, error = $2, finished_at = $3, lease_owner = NULL, lease_until_ms = NULL \
             WHERE id = $4 AND {}",
            held("$5", "$6")
        );
        let n = with_pool!(self, p => sqlx::query(&sql).bind(state).bind(error).bind(finished_at).bind(id)
            .bind(&lease.owner).bind(lease.generation).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// The documents of batch `id`, in input order.
    pub async fn batch_documents(&self, id: &str) -> Result<Vec<BatchDocument>, StoreError> {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM batch_documents WHERE batch_id = $1 ORDER BY idx"
        );
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(id).fetch_all(p).await?.iter().map(|r| document_from_row!(r)).collect()),
        )
    }

    /// Document `index` of batch `id`.
    pub async fn batch_document(
        &self,
        id: &str,
        index: i64,
    ) -> Result<Option<BatchDocument>, StoreError> {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM batch_documents WHERE batch_id = $1 AND idx = $2"
        );
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(id).bind(index).fetch_optional(p).await?.map(|r| document_from_row!(r))),
        )
    }

    /// Records that document `index` of batch `id` was signed into `output`, if `lease` still
    /// holds the batch (else false: the write is fenced off).
    pub async fn mark_document_signed(
        &self,
        id: &str,
        lease: &Lease,
        index: i64,
        output: &str,
        output_sha256: &str,
        audit_seq: i64,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE batch_documents SET state = 'signed', output = $1, output_sha256 = $2, audit_seq = $3, code = NULL, message = NULL \
             WHERE batch_id = $4 AND idx = $5 AND EXISTS (SELECT 1 FROM batches WHERE id = $4 AND {})",
            held("$6", "$7")
        );
        let n = with_pool!(self, p => sqlx::query(&sql).bind(output).bind(output_sha256).bind(audit_seq).bind(id).bind(index)
            .bind(&lease.owner).bind(lease.generation).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Records that document `index` of batch `id` failed with `code`, if `lease` still holds
    /// the batch (else false).
    pub async fn mark_document_failed(
        &self,
        id: &str,
        lease: &Lease,
        index: i64,
        code: &str,
        message: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE batch_documents SET state = 'failed', code = $1, message = $2 \
             WHERE batch_id = $3 AND idx = $4 AND EXISTS (SELECT 1 FROM batches WHERE id = $3 AND {})",
            held("$5", "$6")
        );
        let n = with_pool!(self, p => sqlx::query(&sql).bind(code).bind(message).bind(id).bind(index)
            .bind(&lease.owner).bind(lease.generation).execute(p).await?.rows_affected());
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts a queued batch `id` of `agency` with one pending document.
    async fn batch(store: &Store, id: &str, agency: &str, created_at: &str) {
        with_pool!(store, p => {
            sqlx::query(INSERT_BATCH)
                .bind(id).bind("cl_1").bind(agency).bind(None::<String>).bind("k").bind("{}")
                .bind("queued").bind(1_i64).bind(created_at).bind(None::<String>).bind(None::<String>).bind(1_i64)
                .execute(p).await.expect("insert batch");
            sqlx::query(INSERT_BATCH_DOCUMENT).bind(id).bind(0_i64).bind("a.pdf")
                .execute(p).await.expect("insert document");
        });
    }

    #[tokio::test]
    async fn batch_leases_serialize_an_agency_and_fence_a_stale_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&Store::sqlite_url(dir.path()))
            .await
            .expect("open");
        batch(&store, "bat_x1", "x", "2026-01-01T00:00:01Z").await;
        batch(&store, "bat_x2", "x", "2026-01-01T00:00:02Z").await;
        batch(&store, "bat_y1", "y", "2026-01-01T00:00:03Z").await;
        // A takes X's oldest; B skips X's second (X has a leased batch) and takes Y's
        let (first, a) = store
            .claim_batch("A", 1000, 2000)
            .await
            .expect("claim")
            .expect("due");
        assert_eq!(
            (first.id.as_str(), first.state.as_str(), a.generation),
            ("bat_x1", "running", 1)
        );
        let (second, _) = store
            .claim_batch("B", 1000, 2000)
            .await
            .expect("claim")
            .expect("due");
        assert_eq!(
            second.id, "bat_y1",
            "another agency's batch runs side by side"
        );
        assert!(store
            .claim_batch("B", 1500, 2500)
            .await
            .expect("claim")
            .is_none());
        assert!(store
            .renew_batch_lease("bat_x1", &a, 2600)
            .await
            .expect("renew"));
        // A stalls past its lease: B takes X's first batch over with the next generation
        let (taken, b) = store
            .claim_batch("B", 2601, 4000)
            .await
            .expect("claim")
            .expect("due");
        assert_eq!((taken.id.as_str(), b.generation), ("bat_x1", 2));
        // A's late writes are refused; B's go through
        assert!(!store
            .renew_batch_lease("bat_x1", &a, 5000)
            .await
            .expect("renew"));
        assert!(!store
            .mark_document_signed("bat_x1", &a, 0, "out.pdf", "aa", 7)
            .await
            .expect("mark"));
        assert!(!store
            .mark_document_failed("bat_x1", &a, 0, "INTERNAL", "m")
            .await
            .expect("mark"));
        assert!(!store
            .finish_batch("bat_x1", &a, "done", None, "t")
            .await
            .expect("finish"));
        let doc = store
            .batch_document("bat_x1", 0)
            .await
            .expect("doc")
            .expect("row");
        assert_eq!(doc.state, "pending");
        // the same owner with a stale generation is refused too
        let stale_b = Lease {
            owner: "B".into(),
            generation: 1,
        };
        assert!(!store
            .mark_document_signed("bat_x1", &stale_b, 0, "out.pdf", "aa", 7)
            .await
            .expect("mark"));
        assert!(store
            .mark_document_signed("bat_x1", &b, 0, "out.pdf", "bb", 8)
            .await
            .expect("mark"));
        assert!(store
            .finish_batch("bat_x1", &b, "done", None, "t")
            .await
            .expect("finish"));
        let done = store.batch("bat_x1").await.expect("batch").expect("row");
        assert_eq!(done.state, "done");
        assert_eq!(store.unfinished_batches().await.expect("count"), 2);
        // X's second batch is due now that X has none leased
        let (next, _) = store
            .claim_batch("A", 4001, 6000)
            .await
            .expect("claim")
            .expect("due");
        assert_eq!(next.id, "bat_x2");
        // a lone SQLite gateway's restart frees the leases at once
        assert_eq!(store.release_batch_leases().await.expect("release"), 2);
        assert!(store
            .claim_batch("C", 4002, 6000)
            .await
            .expect("claim")
            .is_some());
    }
}
