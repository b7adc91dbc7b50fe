//! Running a batch: the engine on a blocking thread, one batch at a time, with the recorder
//! that writes each document's `sign` audit record (once, however many runs see it) and row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::{stored_name, StoredOptions};
use crate::batch::{AuditEvent, AuditSink, DocOutcome, DocStatus, Engine};
use crate::clock::now_rfc3339;
use crate::gateway::{Actor, AuditLog, GatewayError, Services};
use crate::keys::KeySource;
use crate::pki::alg::sha256_hex;
use crate::sign::TimeStamper;
use crate::store::{BatchRecord, Store, StoreError};

/// Runs batch `id` in the background; a failure to run marks it `failed`.
pub(super) fn spawn(services: Services, id: String) {
    tokio::spawn(async move {
        let result = run(&services, &id).await;
        services.metrics().batch_queued(-1);
        if let Err(e) = result {
            tracing::error!(batch = %id, error = %e, "batch stopped");
            let message = match &e {
                GatewayError::Domain(d) => format!("{}: {d}", d.code().as_str()),
                _ => "internal error; see the gateway log".into(),
            };
            let _ = services
                .store()
                .set_batch_state(&id, "failed", Some(&message), Some(&now_rfc3339()))
                .await;
        }
    });
}

async fn run(services: &Services, id: &str) -> Result<(), GatewayError> {
    let store = services.store().clone();
    let batch = store
        .batch(id)
        .await?
        .ok_or(GatewayError::NotFound("batch"))?;
    let options: StoredOptions =
        serde_json::from_str(&batch.options).map_err(|e| super::corrupt("decoding", e))?;
    let options = options.batch_options()?;
    let record = store
        .key(&batch.key_name)
        .await?
        .ok_or_else(|| crate::Error::Usage(format!("key '{}' is gone", batch.key_name)))?;
    let key: Arc<dyn KeySource> = services.signing_key(&record).await?;
    let docs = store.batch_documents(id).await?;
    let dir = services.batch_dir(id);
    let inputs: Vec<PathBuf> = docs
        .iter()
        .map(|d| dir.join("in").join(stored_name(d.index as usize, &d.name)))
        .collect();
    let timestamper = services
        .settings()
        .timestamper()
        .map(|t| Arc::new(t) as Arc<dyn TimeStamper>);
    let recorder = Arc::new(Recorder {
        handle: tokio::runtime::Handle::current(),
        store: store.clone(),
        audit: services.audit_log().clone(),
        batch: batch.clone(),
        index_of: inputs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i))
            .collect(),
        signed: Mutex::new(HashMap::new()),
        problems: Mutex::new(Vec::new()),
    });
    let services = services.clone();
    let id = id.to_string();
    crate::blocking::run(move || -> Result<(), GatewayError> {
        // One batch at a time: each already uses every core.
        let _slot = services
            .batch_slot()
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let handle = recorder.handle.clone();
        handle.block_on(store.set_batch_state(&id, "running", None, None))?;
        let mut engine = Engine::new(key, options)?.with_audit(recorder.clone());
        if let Some(tsa) = timestamper {
            engine = engine.with_timestamper(tsa);
        }
        let out = dir.join("out");
        // Owner-only like the rest of the data folder (the engine would make it 0755).
        crate::fsio::create_private_dir(&out)
            .map_err(|e| GatewayError::Io(format!("cannot create {}: {e}", out.display())))?;
        let summary = engine.run(inputs.into_iter(), &out, &mut |outcome| {
            if let Err(e) = recorder.outcome(outcome, &services) {
                recorder.problem(format!("document {}: {e}", outcome.index));
            }
        })?;
        let problems = recorder
            .problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (state_name, error) = match (&summary.aborted, problems.first()) {
            (Some((code, message)), _) => ("failed", Some(format!("{}: {message}", code.as_str()))),
            (None, Some(problem)) => {
                tracing::error!(batch = %id, problem = %problem, "batch bookkeeping failed");
                (
                    "failed",
                    Some(format!(
                        "{} documents could not be recorded; a restart resumes the batch",
                        problems.len()
                    )),
                )
            }
            (None, None) => ("done", None),
        };
        handle.block_on(store.set_batch_state(
            &id,
            state_name,
            error.as_deref(),
            Some(&now_rfc3339()),
        ))?;
        Ok(())
    })
    .await
}

/// The engine's audit sink and outcome handler for one batch: writes the `sign` audit record
/// (once per document, whatever the number of runs) and the document rows.
struct Recorder {
    handle: tokio::runtime::Handle,
    store: Store,
    audit: AuditLog,
    batch: BatchRecord,
    index_of: HashMap<PathBuf, usize>,
    /// Audit seq and output hash of documents signed in this run, until their outcome arrives.
    signed: Mutex<HashMap<usize, (i64, String)>>,
    problems: Mutex<Vec<String>>,
}

impl Recorder {
    fn problem(&self, text: String) {
        self.problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text);
    }

    /// Appends the `sign` record of document `index` unless it exists; returns its seq.
    fn audit(
        &self,
        index: usize,
        input_sha256: &str,
        output_sha256: &str,
    ) -> Result<i64, StoreError> {
        let actor = Actor {
            agency: self.batch.agency.clone(),
            client: self.batch.client_id.clone(),
        };
        let subject = json!({
            "batch": self.batch.id,
            "index": index,
            "key": self.batch.key_name,
            "input_sha256": input_sha256,
            "output_sha256": output_sha256,
        });
        let dedup = format!("batch:{}:{index}", self.batch.id);
        let record = self
            .handle
            .block_on(self.audit.append_once(&actor, "sign", subject, dedup))?;
        Ok(record.seq)
    }

    /// Brings the document row up to date with `outcome`.
    fn outcome(&self, outcome: &DocOutcome, services: &Services) -> Result<(), GatewayError> {
        let index = outcome.index as i64;
        let id = &self.batch.id;
        match &outcome.status {
            DocStatus::Signed | DocStatus::Skipped => {
                let output = outcome
                    .output
                    .as_ref()
                    .ok_or_else(|| GatewayError::Io("signed without an output".into()))?;
                let recorded = self
                    .signed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&outcome.index);
                let (seq, output_sha256) = match recorded {
                    Some(r) => {
                        services.metrics().signature(format_name(output));
                        r
                    }
                    // Signed by an earlier run (or its audit write failed): record it now.
                    None => {
                        let read = |p: &Path| {
                            std::fs::read(p).map_err(|e| {
                                GatewayError::Io(format!("cannot read {}: {e}", p.display()))
                            })
                        };
                        let output_sha256 = sha256_hex(&read(output)?);
                        let input_sha256 = sha256_hex(&read(&outcome.input)?);
                        let seq = self.audit(outcome.index, &input_sha256, &output_sha256)?;
                        (seq, output_sha256)
                    }
                };
                let name = output
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.handle.block_on(self.store.mark_document_signed(
                    id,
                    index,
                    &name,
                    &output_sha256,
                    seq,
                ))?;
            }
            DocStatus::Failed { code, message } => {
                self.handle.block_on(self.store.mark_document_failed(
                    id,
                    index,
                    code.as_str(),
                    message,
                ))?;
            }
        }
        Ok(())
    }
}

/// The format name of a signed output, for the metrics (reads its first bytes).
fn format_name(output: &Path) -> &'static str {
    use std::io::Read;
    let mut head = [0u8; 5];
    let n = std::fs::File::open(output)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let name = output.file_name().unwrap_or_default().to_string_lossy();
    crate::batch::output_format(&name, &head[..n]).name()
}

impl AuditSink for Recorder {
    fn signed(&self, event: &AuditEvent) {
        let Some(&index) = self.index_of.get(&event.input) else {
            self.problem(format!("unknown input {}", event.input.display()));
            return;
        };
        match self.audit(index, &event.input_sha256, &event.output_sha256) {
            Ok(seq) => {
                self.signed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(index, (seq, event.output_sha256.clone()));
            }
            // The outcome handler retries; a restart would too.
            Err(e) => {
                tracing::warn!(batch = %self.batch.id, index, error = %e, "audit write failed")
            }
        }
    }
}
