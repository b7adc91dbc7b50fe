//! Batch rows: who submitted a batch, with which key and options, and how far each document
//! got. The documents themselves live in the data folder (see `api::batches`).

use sqlx::Row;

use super::{with_pool, Store, StoreError};

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

    /// Batches not finished yet (`queued` or `running`), oldest first: what a restart resumes.
    pub async fn unfinished_batches(&self) -> Result<Vec<BatchRecord>, StoreError> {
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE state IN ('queued', 'running') ORDER BY created_at, id"
        );
        Ok(
            with_pool!(self, p => sqlx::query(&sql).fetch_all(p).await?.iter().map(|r| batch_from_row!(r)).collect()),
        )
    }

    /// Moves batch `id` to `state`, with the reason for `failed` and the end time.
    pub async fn set_batch_state(
        &self,
        id: &str,
        state: &str,
        error: Option<&str>,
        finished_at: Option<&str>,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE batches SET state = $1, error = $2, finished_at = $3 WHERE id = $4";
        with_pool!(self, p => { sqlx::query(sql).bind(state).bind(error).bind(finished_at).bind(id).execute(p).await?; });
        Ok(())
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

    /// Records that document `index` of batch `id` was signed into `output`.
    pub async fn mark_document_signed(
        &self,
        id: &str,
        index: i64,
        output: &str,
        output_sha256: &str,
        audit_seq: i64,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE batch_documents SET state = 'signed', output = $1, output_sha256 = $2, audit_seq = $3, code = NULL, message = NULL WHERE batch_id = $4 AND idx = $5";
        with_pool!(self, p => { sqlx::query(sql).bind(output).bind(output_sha256).bind(audit_seq).bind(id).bind(index).execute(p).await?; });
        Ok(())
    }

    /// Records that document `index` of batch `id` failed with `code`.
    pub async fn mark_document_failed(
        &self,
        id: &str,
        index: i64,
        code: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE batch_documents SET state = 'failed', code = $1, message = $2 WHERE batch_id = $3 AND idx = $4";
        with_pool!(self, p => { sqlx::query(sql).bind(code).bind(message).bind(id).bind(index).execute(p).await?; });
        Ok(())
    }
}
