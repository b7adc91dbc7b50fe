//! Batches of the stamp desk: an officer's batch is an ordinary batch of the officer's agency,
//! recorded and audited under `officer:USERNAME` ([`Officer::actor`]) and signed by the same
//! runner; officers of the agency (and its API clients) see it, another agency's officers do
//! not.

use super::super::accounts::Officer;
use super::super::{GatewayError, Services};
use super::{BatchSpec, BatchView, NewBatch};
use crate::store::BatchRecord;

impl Services {
    /// Records `batch` (its documents `names` already in `in/`, see [`NewBatch::input_file`])
    /// for `officer`, signed with the agency's key `spec.key`, and starts signing it; returns
    /// its id. Another agency's key is unknown; a clerk may not sign. A refused upload's
    /// folder is removed.
    pub async fn officer_submit_batch(
        &self,
        officer: &Officer,
        batch: NewBatch,
        names: Vec<String>,
        spec: BatchSpec,
    ) -> Result<String, GatewayError> {
        let result = self
            .record_officer_batch(officer, &batch, names, spec)
            .await;
        if result.is_err() {
            let _ = tokio::fs::remove_dir_all(&batch.dir).await;
        }
        let id = result?;
        super::runner::kick(self);
        Ok(id)
    }

    async fn record_officer_batch(
        &self,
        officer: &Officer,
        batch: &NewBatch,
        names: Vec<String>,
        spec: BatchSpec,
    ) -> Result<String, GatewayError> {
        if !officer.role.may_sign() {
            return Err(GatewayError::Invalid(format!(
                "a {} may not sign",
                officer.role.as_str()
            )));
        }
        if names.is_empty() {
            return Err(GatewayError::Invalid("no document to sign".into()));
        }
        let record = match self.store().key(&spec.key).await? {
            Some(r) if r.agency == officer.agency => r,
            _ => return Err(GatewayError::UnknownKey(spec.key)),
        };
        let (id, _) = self
            .record_batch(&officer.actor(), record, None, "", &batch.id, names, spec)
            .await?;
        Ok(id)
    }

    /// Batch `id` if it is of the officer's agency, else not found.
    pub(super) async fn officer_batch(
        &self,
        officer: &Officer,
        id: &str,
    ) -> Result<BatchRecord, GatewayError> {
        match self.store().batch(id).await? {
            Some(b) if b.agency == officer.agency => Ok(b),
            _ => Err(GatewayError::NotFound("batch")),
        }
    }

    /// Batch `id` of the officer's agency and its documents (the desk's progress).
    pub async fn officer_batch_status(
        &self,
        officer: &Officer,
        id: &str,
    ) -> Result<BatchView, GatewayError> {
        let batch = self.officer_batch(officer, id).await?;
        let documents = self.store().batch_documents(id).await?;
        Ok(BatchView { batch, documents })
    }
}
