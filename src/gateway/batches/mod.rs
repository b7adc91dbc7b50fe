//! Asynchronous batch signing: a batch is accepted (its documents already written into
//! `BATCH_DIR/<id>/in/` by the adapter), recorded, and signed in the background by
//! [`crate::batch::Engine`]. Each signed document gets one `sign` audit record, keyed by
//! `(batch, index)` so that it is written once even when another run sees the document again.
//!
//! Several gateway processes may share one PostgreSQL database and one batch folder
//! (`batch_dir` on shared storage): any of them answers for any batch, and each process's
//! scheduler claims unfinished batches under a lease (`batch_lease_secs`) with a fencing
//! token, renews it while it signs, and writes every row under it. A batch whose process died
//! is taken over by another once the lease expires; a process that lost its lease stops taking
//! documents and its late row writes are refused. One agency's batches run one after another,
//! different agencies' side by side (at most [`runner::MAX_RUNNING`] per process).
//!
//! Restart safety: the engine's journal in `out/` skips outputs that were signed and journaled
//! by an earlier run (their bytes stay as they were); for those the audit record is inserted
//! if absent and the document row is brought up to date.

mod archive;
mod officer;
mod runner;

pub use archive::{ArchiveBody, BatchArchive};
pub(crate) use runner::Scheduler;
pub use runner::MAX_RUNNING;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::idempotency::{Checked, Claim, Reservation};
use super::{Actor, GatewayError, Services};
use crate::batch::BatchOptions;
use crate::clock::now_rfc3339;
use crate::sign::{Format, Level};
use crate::store::audit::Companion;
use crate::store::{BatchDocument, BatchRecord, Client};

/// How a batch is to be signed, as the caller asked (`options` of `POST /v1/batches`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// The signing key.
    pub key: String,
    /// Container; none or `auto` chooses per document ([`crate::sign::select_format`]).
    #[serde(default, deserialize_with = "super::text::format_choice")]
    pub format: Option<Format>,
    /// XML-DSig profile for XML documents.
    #[serde(default, deserialize_with = "super::text::optional")]
    pub profile: Option<crate::xml::Profile>,
    /// Baseline level (default b-b).
    #[serde(default, deserialize_with = "super::text::optional")]
    pub level: Option<Level>,
    /// PDF /Reason.
    pub reason: Option<String>,
    /// PDF /Location.
    pub location: Option<String>,
}

/// The options as stored with the batch: what a resumed run needs to sign as the first did.
#[derive(Debug, Serialize, Deserialize)]
struct StoredOptions {
    format: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    level: String,
    reason: Option<String>,
    location: Option<String>,
    signing_time: String,
}

/// A stored batch option that this version cannot read back.
fn corrupt(what: &str, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Store(crate::store::StoreError::Corrupt(format!(
        "stored batch options: {what}: {e}"
    )))
}

impl StoredOptions {
    fn batch_options(&self) -> Result<BatchOptions, GatewayError> {
        let signing_time = OffsetDateTime::parse(&self.signing_time, &Rfc3339)
            .map_err(|e| corrupt("signing time", e))?;
        let mut options = BatchOptions::new(signing_time);
        options.format =
            Format::parse_choice(self.format.as_deref()).map_err(|e| corrupt("format", e))?;
        options.xml_profile = self
            .profile
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .transpose()
            .map_err(|e| corrupt("profile", e))?;
        options.level = self.level.parse().map_err(|e| corrupt("level", e))?;
        options.reason = self.reason.clone();
        options.location = self.location.clone();
        Ok(options)
    }
}

/// `in/NNNN-name`, `out/NNNN-name…`: the index prefix keeps equal upload names apart.
pub fn stored_name(index: usize, name: &str) -> String {
    format!("{index:04}-{name}")
}

/// A new batch's id and folder (`DATA/batches/<id>`), where the adapter writes the documents
/// as `in/`[`stored_name`] before [`Services::submit_batch`].
#[derive(Debug)]
pub struct NewBatch {
    /// `bat_…`.
    pub id: String,
    /// Its folder.
    pub dir: PathBuf,
}

impl NewBatch {
    /// `in/`, created owner-only if missing.
    async fn in_dir(&self) -> Result<PathBuf, GatewayError> {
        let in_dir = self.dir.join("in");
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&in_dir)
            .await
            .map_err(|e| GatewayError::Io(format!("cannot create {}: {e}", in_dir.display())))?;
        Ok(in_dir)
    }

    /// Creates input `index` named `name` (already made safe) in `in/` (owner-only), for the
    /// adapter to write the uploaded bytes into; returns it and its path.
    pub async fn input_file(
        &self,
        index: usize,
        name: &str,
    ) -> Result<(tokio::fs::File, PathBuf), GatewayError> {
        let in_dir = self.in_dir().await?;
        let io = |what: &str, path: &std::path::Path, e: std::io::Error| {
            GatewayError::Io(format!("{what} {}: {e}", path.display()))
        };
        let path = in_dir.join(stored_name(index, name));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(|e| io("cannot create", &path, e))?;
        Ok((file, path))
    }

    /// Makes the new directory entries durable (`in/*`, `<id>/in` and `batches/<id>`) before
    /// the batch is acknowledged: a restart must find every input. Each input file itself is
    /// synced by its writer.
    pub async fn sync_inputs(&self) -> Result<(), GatewayError> {
        let in_dir = self.in_dir().await?;
        for folder in [
            in_dir.as_path(),
            self.dir.as_path(),
            self.dir.parent().unwrap_or(&self.dir),
        ] {
            let handle = tokio::fs::File::open(folder)
                .await
                .map_err(|e| GatewayError::Io(format!("cannot open {}: {e}", folder.display())))?;
            handle
                .sync_all()
                .await
                .map_err(|e| GatewayError::Io(format!("cannot sync {}: {e}", folder.display())))?;
        }
        Ok(())
    }
}

/// A batch and its documents, as its owner sees them.
#[derive(Debug)]
pub struct BatchView {
    /// The batch.
    pub batch: BatchRecord,
    /// Its documents, by index.
    pub documents: Vec<BatchDocument>,
}

impl Services {
    fn batch_dir(&self, id: &str) -> PathBuf {
        self.settings().batch_dir.join(id)
    }

    /// A fresh batch id and its folder.
    pub fn new_batch(&self) -> NewBatch {
        let id = crate::ids::random_id("bat_");
        NewBatch {
            dir: self.batch_dir(&id),
            id,
        }
    }

    /// Records `batch` (its documents `names` already in `in/`) and starts signing it; for an
    /// `Idempotency-Key` already answered, answers the first batch when this is the same
    /// request (`fingerprint`, see [`super::idempotency::RequestDigest`]), else
    /// [`GatewayError::IdempotencyKeyReused`]. Returns the batch id and whether it is new. A
    /// refused, failed or replayed upload's folder is removed. The batch rows, the
    /// `batch.submit` audit record and the key's answer commit in one transaction.
    pub async fn submit_batch(
        &self,
        caller: &Client,
        claim: Option<Claim>,
        fingerprint: &str,
        batch: NewBatch,
        names: Vec<String>,
        spec: Option<BatchSpec>,
    ) -> Result<(String, bool), GatewayError> {
        let result = match Claim::check(claim, fingerprint) {
            Err(e) => Err(e),
            Ok(Checked::Replay(stored)) => serde_json::from_str::<serde_json::Value>(&stored)
                .ok()
                .and_then(|v| v["id"].as_str().map(|id| (id.to_string(), false)))
                .ok_or_else(|| corrupt("idempotency", "the stored answer has no batch id")),
            Ok(Checked::Proceed(reservation)) => {
                let result = self
                    .record_client_batch(
                        caller,
                        reservation.as_ref(),
                        fingerprint,
                        &batch.id,
                        names,
                        spec,
                    )
                    .await;
                if let Some(r) = reservation {
                    match &result {
                        Ok(_) => r.committed(),
                        Err(_) => r.release().await,
                    }
                }
                result
            }
        };
        if !matches!(result, Ok((_, true))) {
            let _ = tokio::fs::remove_dir_all(&batch.dir).await;
        }
        let (id, created) = result?;
        if created {
            runner::kick(self);
        }
        Ok((id, created))
    }

    async fn record_client_batch(
        &self,
        caller: &Client,
        reservation: Option<&Reservation>,
        fingerprint: &str,
        id: &str,
        names: Vec<String>,
        spec: Option<BatchSpec>,
    ) -> Result<(String, bool), GatewayError> {
        let spec = spec
            .ok_or_else(|| GatewayError::Invalid("multipart body has no 'options' part".into()))?;
        if names.is_empty() {
            return Err(GatewayError::Invalid(
                "multipart body has no 'document' part".into(),
            ));
        }
        let record = self.granted_key(caller, &spec.key).await?;
        self.record_batch(
            &Actor::of(caller),
            record,
            reservation,
            fingerprint,
            id,
            names,
            spec,
        )
        .await
    }

    /// Records batch `id` for `actor`, to be signed with `record` (already checked for the
    /// actor), with the `batch.submit` audit record and the idempotency answer.
    #[allow(clippy::too_many_arguments)]
    async fn record_batch(
        &self,
        actor: &Actor,
        record: crate::store::KeyRecord,
        reservation: Option<&Reservation>,
        fingerprint: &str,
        id: &str,
        names: Vec<String>,
        spec: BatchSpec,
    ) -> Result<(String, bool), GatewayError> {
        if spec.profile.is_some() && matches!(spec.format, Some(Format::Pdf | Format::Cms)) {
            return Err(GatewayError::Invalid(
                "profile applies to XML documents only".into(),
            ));
        }
        let level = spec.level.unwrap_or_default();
        if level == Level::BT && self.settings().tsa_url.is_none() {
            return Err(GatewayError::Invalid(
                "level b-t needs a time-stamp authority, and this gateway has no tsa_url".into(),
            ));
        }
        let options = StoredOptions {
            format: spec.format.map(|f| f.name().to_string()),
            profile: spec.profile.map(|p| p.name().to_string()),
            level: level.name().to_string(),
            reason: spec.reason,
            location: spec.location,
            signing_time: now_rfc3339(),
        };
        let batch = BatchRecord {
            id: id.to_string(),
            client_id: actor.client.clone(),
            agency: actor.agency.clone(),
            // The key lives in the idempotency table, where it expires.
            idempotency_key: None,
            key_name: record.name.clone(),
            options: serde_json::to_string(&options).map_err(|e| corrupt("encoding", e))?,
            state: "queued".into(),
            total: names.len() as i64,
            created_at: now_rfc3339(),
            finished_at: None,
            error: None,
        };
        let response = json!({"id": id, "state": "queued"}).to_string();
        let subject = json!({"batch": id, "key": record.name, "documents": batch.total});
        self.audit_log()
            .append_with(
                actor,
                "batch.submit",
                subject,
                Companion::Batch {
                    record: Box::new(batch),
                    names,
                },
                reservation.map(|r| r.completion(fingerprint, &response)),
            )
            .await?;
        Ok((id.to_string(), true))
    }

    /// The caller's agency's batch `id`, else not found.
    async fn own_batch(&self, caller: &Client, id: &str) -> Result<BatchRecord, GatewayError> {
        match self.store().batch(id).await? {
            Some(b) if b.agency == caller.agency => Ok(b),
            _ => Err(GatewayError::NotFound("batch")),
        }
    }

    /// Batch `id` of the caller's agency and its documents.
    pub async fn batch_status(&self, caller: &Client, id: &str) -> Result<BatchView, GatewayError> {
        let batch = self.own_batch(caller, id).await?;
        let documents = self.store().batch_documents(id).await?;
        Ok(BatchView { batch, documents })
    }

    /// The signed bytes of document `n` (0-based) of batch `id`, and their format.
    pub async fn batch_output(
        &self,
        caller: &Client,
        id: &str,
        n: i64,
    ) -> Result<(Vec<u8>, Format), GatewayError> {
        self.own_batch(caller, id).await?;
        let doc = self
            .store()
            .batch_document(id, n)
            .await?
            .ok_or(GatewayError::NotFound("document"))?;
        let output = match (doc.state.as_str(), &doc.output) {
            ("signed", Some(output)) => output.clone(),
            ("failed", _) => {
                return Err(GatewayError::NotSigned(format!(
                    "document {n} failed: {} {}",
                    doc.code.unwrap_or_default(),
                    doc.message.unwrap_or_default()
                )))
            }
            _ => {
                return Err(GatewayError::NotSigned(format!(
                    "document {n} is not signed yet"
                )))
            }
        };
        let path = self.batch_dir(id).join("out").join(&output);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| GatewayError::Io(format!("cannot read {}: {e}", path.display())))?;
        let format = crate::batch::output_format(&output, &bytes);
        Ok((bytes, format))
    }

    /// Starts this process's batch scheduler, which runs every unfinished batch whose lease is
    /// free (or expired) and the batches submitted later; returns how many are unfinished.
    /// `alone` (SQLite, no other process on the data folder) frees the leases first: no other
    /// process can hold one, so a batch cut off by a crash resumes at once.
    pub async fn resume_batches(&self, alone: bool) -> Result<i64, GatewayError> {
        if alone && self.store().is_sqlite() {
            self.store().release_batch_leases().await?;
        }
        let n = self.store().unfinished_batches().await?;
        if n > 0 {
            tracing::info!(batches = n, "unfinished batches to resume");
        }
        runner::kick(self);
        Ok(n)
    }
}
