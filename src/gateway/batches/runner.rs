//! Running batches: this process's scheduler claims unfinished batches from the database
//! under a lease (at most [`MAX_RUNNING`] at a time, one agency's batches one after another,
//! see [`crate::store::Store::claim_batch`]), runs each through the engine on a blocking
//! thread while a task renews its lease, and the recorder writes each document's `sign` audit
//! record (once, however many runs see it) and its row, fenced by the lease's generation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Notify;

use super::{stored_name, StoredOptions};
use crate::batch::{AuditEvent, AuditSink, DocOutcome, DocStatus, Engine};
use crate::clock::now_rfc3339;
use crate::gateway::{Actor, AuditLog, GatewayError, Services};
use crate::keys::KeySource;
use crate::pki::alg::sha256_hex;
use crate::sign::TimeStamper;
use crate::store::{BatchRecord, Lease, Store, StoreError};

/// Batches one process signs at the same time (each of a different agency); each engine
/// uses every core, so more would only split the CPU further.
pub const MAX_RUNNING: usize = 4;

/// This process's batch scheduler: its lease owner id, how many batches it runs, and the
/// signal that wakes it (a new batch, a batch ended).
pub(crate) struct Scheduler {
    owner: String,
    running: AtomicUsize,
    wake: Notify,
    started: OnceLock<()>,
}

impl Scheduler {
    /// A scheduler with a fresh owner id; its loop starts at the first [`kick`].
    pub(crate) fn new() -> Self {
        Self {
            owner: crate::ids::random_id("bw_"),
            running: AtomicUsize::new(0),
            wake: Notify::new(),
            started: OnceLock::new(),
        }
    }
}

/// Wakes the scheduler of `services`, starting its loop on first use (inside the runtime).
pub(super) fn kick(services: &Services) {
    let scheduler = services.batch_scheduler();
    if scheduler.started.set(()).is_ok() {
        tokio::spawn(schedule(services.clone()));
    }
    scheduler.wake.notify_one();
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Whether a run still holds its batch: not lost (a fenced write, a failed renewal, a
/// refused output), and renewed recently enough by this process's own monotonic clock that
/// no other process can have taken the batch over yet (a process paused past its lease finds
/// it expired before it writes anything more).
struct Held {
    lost: AtomicBool,
    renewed: Mutex<Instant>,
    /// The lease minus a margin for the renewal's own round trip and clock skew.
    valid_for: Duration,
}

impl Held {
    fn new(length: Duration) -> Self {
        Self {
            lost: AtomicBool::new(false),
            renewed: Mutex::new(Instant::now()),
            valid_for: length.mul_f64(0.8),
        }
    }

    fn renewed_at(&self, at: Instant) {
        *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Gives the lease up: nothing more is written.
    fn lose(&self) -> bool {
        self.lost.swap(true, Ordering::SeqCst)
    }

    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// True while this run may write; false from the first refusal on.
    fn valid(&self) -> bool {
        if self.is_lost() {
            return false;
        }
        let renewed = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        if renewed.elapsed() < self.valid_for {
            return true;
        }
        self.lose();
        false
    }
}

/// Claims and starts due batches while a slot is free; then waits for a wake-up or the poll
/// interval (a third of the lease, 0.2–5 s: how soon an expired lease is taken over). Ends
/// when the store is closed.
async fn schedule(services: Services) {
    let scheduler = services.batch_scheduler();
    let lease = services.settings().batch_lease;
    let poll = (lease / 3).clamp(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        if services.store().is_closed() {
            return;
        }
        while scheduler.running.load(Ordering::SeqCst) < MAX_RUNNING {
            let now = now_ms();
            let until = now + lease.as_millis() as i64;
            match services
                .store()
                .claim_batch(&scheduler.owner, now, until)
                .await
            {
                Ok(Some((batch, lease))) => {
                    tracing::info!(batch = %batch.id, generation = lease.generation, "batch claimed");
                    scheduler.running.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(run_claimed(services.clone(), batch, lease));
                }
                Ok(None) => break,
                Err(e) => {
                    if !services.store().is_closed() {
                        tracing::warn!(error = %e, "claiming a batch failed");
                    }
                    break;
                }
            }
        }
        if let Ok(n) = services.store().unfinished_batches().await {
            services.metrics().set_batches_unfinished(n);
        }
        tokio::select! {
            _ = scheduler.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// Runs a claimed batch; a failure to run marks it `failed` (if the lease still holds).
async fn run_claimed(services: Services, batch: BatchRecord, lease: Lease) {
    let id = batch.id.clone();
    let result = run(&services, batch, &lease).await;
    if let Err(e) = result {
        tracing::error!(batch = %id, error = %e, "batch stopped");
        let message = match &e {
            GatewayError::Domain(d) => format!("{}: {d}", d.code().as_str()),
            _ => "internal error; see the gateway log".into(),
        };
        let _ = services
            .store()
            .finish_batch(&id, &lease, "failed", Some(&message), &now_rfc3339())
            .await;
    }
    if let Ok(n) = services.store().unfinished_batches().await {
        services.metrics().set_batches_unfinished(n);
    }
    let scheduler = services.batch_scheduler();
    scheduler.running.fetch_sub(1, Ordering::SeqCst);
    scheduler.wake.notify_one();
}

/// Renews `lease` on batch `id` every third of the lease until `done`; marks `held` lost when
/// the batch was taken over (or when its time ran out without a renewal, see [`Held::valid`]).
async fn keep_lease(
    store: Store,
    id: String,
    lease: Lease,
    length: Duration,
    held: Arc<Held>,
    mut done: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut done => return,
            _ = tokio::time::sleep(length / 3) => {}
        }
        if !held.valid() {
            return;
        }
        let asked = Instant::now();
        match store
            .renew_batch_lease(&id, &lease, now_ms() + length.as_millis() as i64)
            .await
        {
            Ok(true) => held.renewed_at(asked),
            Ok(false) => {
                held.lose();
                return;
            }
            Err(e) => tracing::warn!(batch = %id, error = %e, "renewing the batch lease failed"),
        }
    }
}

async fn run(services: &Services, batch: BatchRecord, lease: &Lease) -> Result<(), GatewayError> {
    let held = Arc::new(Held::new(services.settings().batch_lease));
    let store = services.store().clone();
    let id = batch.id.clone();
    let dir = services.batch_dir(&id);
    if !tokio::fs::try_exists(dir.join("in")).await.unwrap_or(false) {
        // Received by a process whose batch folder this one does not see: leave the batch
        // alone (the lease runs out unrenewed) rather than fail documents that exist elsewhere.
        tracing::error!(batch = %id, "batch folder not found under batch_dir: every gateway process of one database needs the same batch_dir");
        return Ok(());
    }
    let options: StoredOptions =
        serde_json::from_str(&batch.options).map_err(|e| super::corrupt("decoding", e))?;
    let options = options.batch_options()?;
    let record = store
        .key(&batch.key_name)
        .await?
        .ok_or_else(|| crate::Error::Usage(format!("key '{}' is gone", batch.key_name)))?;
    let key: Arc<dyn KeySource> = services.signing_key(&record).await?;
    let docs = store.batch_documents(&id).await?;
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
        batch,
        lease: lease.clone(),
        held: held.clone(),
        index_of: inputs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i))
            .collect(),
        signed: Mutex::new(HashMap::new()),
        problems: Mutex::new(Vec::new()),
    });
    let (done, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(keep_lease(
        store.clone(),
        id.clone(),
        lease.clone(),
        services.settings().batch_lease,
        held.clone(),
        done_rx,
    ));
    let services = services.clone();
    let lease = lease.clone();
    let result = crate::blocking::run(move || -> Result<(), GatewayError> {
        let handle = recorder.handle.clone();
        let guard = held.clone();
        let mut engine = Engine::new(key, options)?
            .with_audit(recorder.clone())
            .with_write_guard(Arc::new(move || guard.valid()));
        if let Some(tsa) = timestamper {
            engine = engine.with_timestamper(tsa);
        }
        let out = dir.join("out");
        // Owner-only like the rest of the data folder (the engine would make it 0755).
        crate::fsio::create_private_dir(&out)
            .map_err(|e| GatewayError::Io(format!("cannot create {}: {e}", out.display())))?;
        // A lost lease stops the feed: only the documents in flight finish (their rows fenced).
        let feed = {
            let held = held.clone();
            inputs.into_iter().take_while(move |_| held.valid())
        };
        let summary = engine.run(feed, &out, &mut |outcome| {
            if let Err(e) = recorder.outcome(outcome, &services) {
                recorder.problem(format!("document {}: {e}", outcome.index));
            }
        })?;
        if held.is_lost() {
            tracing::warn!(batch = %id, generation = lease.generation, "batch lease lost: another gateway process took the batch over; this run stopped");
            return Ok(());
        }
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
        if !handle.block_on(store.finish_batch(
            &id,
            &lease,
            state_name,
            error.as_deref(),
            &now_rfc3339(),
        ))? {
            tracing::warn!(batch = %id, generation = lease.generation, "batch lease lost: another gateway process took the batch over; its end was not recorded by this one");
        }
        Ok(())
    })
    .await;
    let _ = done.send(());
    result
}

/// The engine's audit sink and outcome handler for one batch: writes the `sign` audit record
/// (once per document, whatever the number of runs) and the document rows.
struct Recorder {
    handle: tokio::runtime::Handle,
    store: Store,
    audit: AuditLog,
    batch: BatchRecord,
    /// The lease this run holds: every row write names it.
    lease: Lease,
    /// Whether the run still holds the batch.
    held: Arc<Held>,
    index_of: HashMap<PathBuf, usize>,
    /// Audit seq and output hash of documents signed in this run, until their outcome arrives.
    signed: Mutex<HashMap<usize, (i64, String)>>,
    problems: Mutex<Vec<String>>,
}

impl Recorder {
    /// Notes a row write refused by the fence (`held` false): the lease is lost.
    fn fenced(&self, held: bool, index: i64) {
        if !held && !self.held.lose() {
            tracing::warn!(batch = %self.batch.id, index, generation = self.lease.generation,
                "batch write refused: the lease is held by another gateway process");
        }
    }

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
                let held = self.handle.block_on(self.store.mark_document_signed(
                    id,
                    &self.lease,
                    index,
                    &name,
                    &output_sha256,
                    seq,
                ))?;
                self.fenced(held, index);
            }
            DocStatus::Failed { code, message } => {
                let held = self.handle.block_on(self.store.mark_document_failed(
                    id,
                    &self.lease,
                    index,
                    code.as_str(),
                    message,
                ))?;
                self.fenced(held, index);
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
