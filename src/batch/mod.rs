//! The batch-signing engine: many documents, one key, limited by the private-key operation.
//!
//! When the key is in this process and the level is B-B, the work is CPU-bound: each of
//! `jobs` workers takes the next input from a shared, locked iterator (no feeder thread)
//! and a document through prepare, sign and finish itself, and hands its outcomes to the
//! collector in groups of 32 (one wake-up per group). A document costs about eight system
//! calls: `openat`, `statx`, `read`, `close` for the input; `openat(O_TMPFILE)`, `write`,
//! `linkat`, `close` for the output. Otherwise (a token with few sessions, or a TSA round
//! trip per signature) documents flow through a pipeline of plain threads joined by bounded
//! channels, so the slow stage never idles the others. Memory stays flat however long the
//! batch:
//!
//! ```text
//! inputs ─▶ prepare (read, hash, skip check, PDF or XML-DSig layout, digest) × prepare_threads
//!        ─▶ sign    (CMS signed attributes, the key operation)               × jobs (key pool)
//!        ─▶ finish  (B-T time-stamp, patch /Contents or SignatureValue, write unnamed) × finish_threads
//!        ─▶ collector (sync, name, journal, audit event, progress)  × 1 (the caller's thread)
//! ```
//!
//! Outputs are written unnamed and get their names from the collector after a group sync
//! ([`commit`]): complete under the final name or absent, even after a power cut. Journal
//! lines follow in one `write` per group; an output a killed run named without its line is
//! checked on resume (an intact signature by this key over this input) rather than signed
//! again. Per-document failures are reported and the batch goes on; a key failure (token
//! removed, PIN locked) stops it cleanly and a re-run resumes from the [journal].
//! PDFs above [`pdf::STREAMING_THRESHOLD`] are never read whole: their original bytes stream
//! into the temporary output during prepare, and finish appends the update. The key pool is
//! capped to what the key allows ([`KeySource::max_concurrent_signatures`]).
//! The engine is sync; async callers run it on a blocking thread.

mod commit;
pub mod journal;
pub mod sample;
pub mod zip;

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::cms::{PendingSignature, SignedDataBuilder, SignerTemplate};
use crate::code::ErrorCode;
use crate::error::Error;
use crate::fsio::{IoError, OutputDir, StagedFile};
use crate::keys::KeySource;
use crate::pdf::{self, PdfSignOptions, PreparedPdf, PreparedPdfFile};
use crate::pki::alg::{sha256_hex, DigestAlgorithm, Hasher, RsaPadding, SignatureScheme};
use crate::sign::{Format, Level, TimeStamper};

use commit::{Committer, SignedDoc, Syncer};
use journal::{JournalEntry, JournalIndex, JournalWriter};

/// Prefix of the engine's temporary files in the output folder (stale ones are removed at start).
const TEMP_PREFIX: &str = ".signgate-batch-";

/// The format of an output the engine wrote: `NAME.p7s` is CMS; PAdES and XML-DSig outputs
/// keep their input's name, so their content tells them apart.
pub fn output_format(name: &str, content: &[u8]) -> Format {
    if name.ends_with(".p7s") {
        Format::Cms
    } else if content.starts_with(b"%PDF-") {
        Format::Pdf
    } else {
        Format::Xml
    }
}

/// How a batch signs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Container; `None` picks it per document by [`crate::sign::select_format`].
    pub format: Option<Format>,
    /// Baseline level; B-T needs a time-stamper.
    pub level: Level,
    /// Digest algorithm.
    pub digest: DigestAlgorithm,
    /// RSA padding.
    pub rsa_padding: RsaPadding,
    /// Claimed signing time of every signature in the batch.
    pub signing_time: OffsetDateTime,
    /// XML-DSig profile; `None` picks it from each document's root element.
    pub xml_profile: Option<crate::xml::Profile>,
    /// PDF /Reason.
    pub reason: Option<String>,
    /// PDF /Location.
    pub location: Option<String>,
    /// Concurrent private-key operations (token sessions); 0 = number of cores.
    pub jobs: usize,
    /// Pipeline only: threads that read, parse and hash; 0 = number of cores.
    pub prepare_threads: usize,
    /// Pipeline only: threads that time-stamp, finish and write; 0 = cores for B-B,
    /// 8 × cores for B-T. (An in-process key at B-B runs `jobs` workers doing every stage.)
    pub finish_threads: usize,
    /// Capacity of each queue between stages.
    pub queue_depth: usize,
    /// Outputs written and waiting for a sync before they get their names, at most (each
    /// holds a file descriptor until it is named); signing waits when there are this many.
    pub max_staged: usize,
    /// Whether to sync outputs and journal at all (off only for benchmarks on scratch disks):
    /// with it, an output's content is durable before its name exists and its name and
    /// journal line before it is reported.
    pub durable: bool,
}

impl BatchOptions {
    /// B-B, SHA-256, PKCS#1 v1.5, format from content, pools sized to the machine.
    pub fn new(signing_time: OffsetDateTime) -> Self {
        Self {
            format: None,
            level: Level::BB,
            digest: DigestAlgorithm::Sha256,
            rsa_padding: RsaPadding::Pkcs1,
            signing_time,
            xml_profile: None,
            reason: None,
            location: None,
            jobs: 0,
            prepare_threads: 0,
            finish_threads: 0,
            queue_depth: 64,
            max_staged: 256,
            durable: true,
        }
    }

    /// A stable hash of everything that shapes the output except the time (journal `options_sha256`).
    pub fn options_hash(&self) -> String {
        let mut text = format!(
            "signgate-batch-v1|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.format, self.level, self.digest, self.rsa_padding, self.reason, self.location
        );
        // Appended only when set, so journals written before profiles existed still match.
        if let Some(profile) = self.xml_profile {
            text.push_str(&format!("|{profile:?}"));
        }
        sha256_hex(text.as_bytes())
    }
}

/// One signed document, as the service persists it in its audit log.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// The input path.
    pub input: PathBuf,
    /// The output path.
    pub output: PathBuf,
    /// SHA-256 of the input (hex).
    pub input_sha256: String,
    /// SHA-256 of the output (hex).
    pub output_sha256: String,
    /// SHA-256 of the signer certificate (hex).
    pub cert_sha256: String,
    /// When the output was written (UTC).
    pub at: OffsetDateTime,
}

/// Receives one event per signed document (called on the collector thread, in completion order).
pub trait AuditSink: Send + Sync {
    /// A document was signed and its output renamed into place.
    fn signed(&self, event: &AuditEvent);
}

/// What happened to one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocStatus {
    /// Signed and written.
    Signed,
    /// Already signed by an earlier run with the same input, key and options.
    Skipped,
    /// Not signed.
    Failed {
        /// The stable error code.
        code: ErrorCode,
        /// One-line reason.
        message: String,
    },
}

/// The outcome for one input.
#[derive(Debug, Clone)]
pub struct DocOutcome {
    /// 0-based position in the input stream.
    pub index: usize,
    /// The input path.
    pub input: PathBuf,
    /// The output path (also for skipped documents).
    pub output: Option<PathBuf>,
    /// What happened.
    pub status: DocStatus,
}

/// A failed input in the summary.
#[derive(Debug, Clone)]
pub struct FailedDoc {
    /// The input path.
    pub input: PathBuf,
    /// The stable error code.
    pub code: ErrorCode,
    /// One-line reason.
    pub message: String,
}

/// The result of a batch.
#[derive(Debug, Default)]
pub struct BatchSummary {
    /// Documents signed in this run.
    pub signed: usize,
    /// Documents skipped because an earlier run signed them.
    pub skipped: usize,
    /// Documents that failed, in completion order.
    pub failed: Vec<FailedDoc>,
    /// Wall time.
    pub elapsed: Duration,
    /// Set when the batch stopped early (key or output folder unusable); a re-run resumes.
    pub aborted: Option<(ErrorCode, String)>,
}

impl BatchSummary {
    /// Signed documents per second of wall time.
    pub fn docs_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.signed as f64 / s
        } else {
            0.0
        }
    }
}

/// Whether this run may still put an output under its name (a gateway's batch lease).
pub type WriteGuard = Arc<dyn Fn() -> bool + Send + Sync>;

/// Signs batches with one key.
pub struct Engine {
    key: Arc<dyn KeySource>,
    timestamper: Option<Arc<dyn TimeStamper>>,
    audit: Option<Arc<dyn AuditSink>>,
    /// Asked just before each output is put under its name (see [`Engine::with_write_guard`]).
    write_guard: Option<WriteGuard>,
    options: BatchOptions,
    scheme: SignatureScheme,
    cert_sha256: String,
    options_sha256: String,
    /// The signer's certificates converted once for every CMS of the batch.
    template: SignerTemplate,
    /// The PAdES options of every PDF, with `/Contents` sized to this key's signature.
    pdf_options: PdfSignOptions,
    /// The certificate texts of every XML Signature (none if they cannot be encoded: each
    /// document then reports the error).
    xml_text: Option<Arc<crate::xml::dsig::SignerText>>,
}

/// The threads of a batch run (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `workers` threads, each taking a document through prepare, sign and finish.
    WorkerPerCore {
        /// Threads, one key operation each at a time.
        workers: usize,
    },
    /// Three pools joined by bounded queues.
    Pipeline {
        /// Threads that read, parse, hash and lay out (prepare).
        readers: usize,
        /// Threads doing the key operation (the key pool).
        signers: usize,
        /// Threads that time-stamp, finish and write.
        writers: usize,
    },
}

/// What the threads of one run share: the engine, the output folder, the journal's index
/// of earlier outputs, and the stop flag a fatal error raises.
struct Run<'a> {
    engine: &'a Engine,
    out: &'a OutputDir,
    /// The output folder's names when the run started (one listing): an output name not
    /// among them cannot be an input, so no `stat` per document asks.
    existing: &'a HashSet<OsString>,
    index: &'a JournalIndex,
    stop: AtomicBool,
}

/// The inputs not yet taken, shared by the threads that take them (no feeder thread, no
/// queue: a thread locks, takes one and names its output).
struct Feed<I> {
    inputs: std::iter::Enumerate<I>,
    names: HashSet<String>,
}

/// What a thread took from the [`Feed`].
enum Taken {
    /// A document to work on.
    Job(InputJob),
    /// An input refused before any work (no file name, or a duplicate output name).
    Refused(DocOutcome),
}

impl<I: Iterator<Item = PathBuf>> Feed<I> {
    /// Takes the next input; `None` when there are no more.
    fn take(&mut self) -> Option<Taken> {
        let (index, input) = self.inputs.next()?;
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.is_empty() || !self.names.insert(name.clone()) {
            let message = if name.is_empty() {
                "input has no file name".to_string()
            } else {
                format!("another input already writes an output named {name}")
            };
            return Some(Taken::Refused(failed(
                index,
                input,
                None,
                ErrorCode::Usage,
                message,
            )));
        }
        Some(Taken::Job(InputJob { index, input, name }))
    }
}

/// Reports a worker collects before it hands them to the collector in one send: one wake-up
/// of the collector and one journal `write` per this many documents instead of per document.
const REPORT_BATCH: usize = 32;

/// A worker's reports not yet handed over.
struct Outbox {
    tx: SyncSender<Vec<Report>>,
    pending: Vec<Report>,
}

impl Outbox {
    fn new(tx: SyncSender<Vec<Report>>) -> Self {
        Self {
            tx,
            pending: Vec::with_capacity(REPORT_BATCH),
        }
    }

    /// Queues `report`, handing the group over when it is full or the report is fatal;
    /// `false` when the collector is gone.
    fn push(&mut self, report: Report) -> bool {
        let urgent = matches!(report, Report::Fatal(..));
        self.pending.push(report);
        if urgent || self.pending.len() >= REPORT_BATCH {
            return self.flush();
        }
        true
    }

    fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let group = std::mem::replace(&mut self.pending, Vec::with_capacity(REPORT_BATCH));
        self.tx.send(group).is_ok()
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Run<'_> {
    /// Starts the threads of `layout`, and hands the stream of reports to
    /// `collect` on this thread until every document is reported.
    fn threads<I: Iterator<Item = PathBuf> + Send>(
        &self,
        layout: Layout,
        inputs: I,
        collect: &mut dyn FnMut(Receiver<Vec<Report>>),
    ) {
        let depth = self.engine.options.queue_depth.max(1);
        let feed = Mutex::new(Feed {
            inputs: inputs.enumerate(),
            names: HashSet::new(),
        });
        let (sign_tx, sign_rx) = sync_channel::<SignJob>(depth);
        let (fin_tx, fin_rx) = sync_channel::<FinishJob>(depth);
        // Groups in flight to the collector: a durable run's reports hold open staged files.
        let groups = match layout {
            Layout::WorkerPerCore { workers } => 2 * workers,
            Layout::Pipeline { .. } => depth,
        };
        allow_open_files(
            2 * self.engine.options.max_staged.max(1) + (groups + 8) * REPORT_BATCH + 256,
        );
        let (rep_tx, rep_rx) = sync_channel::<Vec<Report>>(groups);
        let (sign_rx, fin_rx) = (Mutex::new(sign_rx), Mutex::new(fin_rx));
        std::thread::scope(|scope| {
            match layout {
                Layout::WorkerPerCore { workers } => {
                    for _ in 0..workers {
                        let (rep_tx, feed) = (rep_tx.clone(), &feed);
                        scope.spawn(move || self.work(feed, Outbox::new(rep_tx)));
                    }
                }
                Layout::Pipeline {
                    readers,
                    signers,
                    writers,
                } => {
                    for _ in 0..readers {
                        let (rep_tx, sign_tx, feed) = (rep_tx.clone(), sign_tx.clone(), &feed);
                        scope.spawn(move || self.read(feed, sign_tx, rep_tx));
                    }
                    for _ in 0..signers {
                        let (rep_tx, fin_tx, sign_rx) = (rep_tx.clone(), fin_tx.clone(), &sign_rx);
                        scope.spawn(move || self.sign(sign_rx, fin_tx, rep_tx));
                    }
                    for _ in 0..writers {
                        let (rep_tx, fin_rx) = (rep_tx.clone(), &fin_rx);
                        scope.spawn(move || self.write(fin_rx, rep_tx));
                    }
                }
            }
            // Every sender left is a thread's: the stages end as their inputs run dry.
            drop((sign_tx, fin_tx, rep_tx));
            collect(rep_rx);
        });
    }

    /// The next input for this thread, unless the batch stopped or the inputs ran out.
    fn next_input<I: Iterator<Item = PathBuf>>(&self, feed: &Mutex<Feed<I>>) -> Option<Taken> {
        if self.stopped() {
            return None;
        }
        feed.lock().ok()?.take()
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// [`Layout::WorkerPerCore`]: every stage of each document on this thread.
    /// Reports go to the collector in groups of [`REPORT_BATCH`].
    fn work<I: Iterator<Item = PathBuf>>(&self, feed: &Mutex<Feed<I>>, mut outbox: Outbox) {
        let engine = self.engine;
        while let Some(taken) = self.next_input(feed) {
            let job = match taken {
                Taken::Job(job) => job,
                Taken::Refused(outcome) => {
                    outbox.push(Report::Done(outcome));
                    continue;
                }
            };
            let report = match engine.prepare(job, self) {
                Ok(Prepared::Sign(job)) => match engine.sign_or_report(job, &self.stop) {
                    Ok(job) => engine.finish(job, self.out),
                    Err(report) => *report,
                },
                Ok(Prepared::Recorded(doc)) => Report::Signed(doc),
                Ok(Prepared::Skip(outcome)) | Err(outcome) => Report::Done(outcome),
            };
            if !outbox.push(report) {
                break;
            }
        }
    }

    /// Pipeline, first stage: read, hash, skip check, layout, digest.
    fn read<I: Iterator<Item = PathBuf>>(
        &self,
        feed: &Mutex<Feed<I>>,
        sign_tx: SyncSender<SignJob>,
        rep_tx: SyncSender<Vec<Report>>,
    ) {
        while let Some(taken) = self.next_input(feed) {
            let job = match taken {
                Taken::Job(job) => job,
                Taken::Refused(outcome) => {
                    let _ = rep_tx.send(vec![Report::Done(outcome)]);
                    continue;
                }
            };
            match self.engine.prepare(job, self) {
                Ok(Prepared::Sign(job)) => {
                    if sign_tx.send(job).is_err() {
                        break;
                    }
                }
                Ok(Prepared::Recorded(doc)) => {
                    let _ = rep_tx.send(vec![Report::Signed(doc)]);
                }
                Ok(Prepared::Skip(outcome)) | Err(outcome) => {
                    let _ = rep_tx.send(vec![Report::Done(outcome)]);
                }
            }
        }
    }

    /// Pipeline, second stage: the key operation.
    fn sign(
        &self,
        sign_rx: &Mutex<Receiver<SignJob>>,
        fin_tx: SyncSender<FinishJob>,
        rep_tx: SyncSender<Vec<Report>>,
    ) {
        while let Some(job) = next(sign_rx) {
            if self.stopped() {
                continue;
            }
            let sent = match self.engine.sign_or_report(job, &self.stop) {
                Ok(job) => fin_tx.send(job).is_ok(),
                Err(report) => rep_tx.send(vec![*report]).is_ok(),
            };
            if !sent {
                break;
            }
        }
    }

    /// Pipeline, third stage: time-stamp, finish, write.
    fn write(&self, fin_rx: &Mutex<Receiver<FinishJob>>, rep_tx: SyncSender<Vec<Report>>) {
        while let Some(job) = next(fin_rx) {
            if self.stopped() {
                continue;
            }
            if rep_tx
                .send(vec![self.engine.finish(job, self.out)])
                .is_err()
            {
                break;
            }
        }
    }
}

struct InputJob {
    index: usize,
    input: PathBuf,
    name: String,
}

enum Body {
    /// An in-memory PDF, with the output's SHA-256 so far (the input and the update up to the
    /// `/Contents` hole), so finish hashes only the rest.
    Pdf(PreparedPdf, Box<Hasher>),
    /// An XML-DSig Signature laid out, waiting for its value.
    Xml(Box<crate::xml::dsig::PreparedSignature>),
    /// A large PDF: its original bytes are already in the temporary output file.
    PdfFile(Box<LargePdf>),
    Cms,
}

struct SignJob {
    index: usize,
    input: PathBuf,
    output_name: String,
    input_sha256: String,
    /// The content digest the CMS signs (PDF and CMS bodies); empty for XML, whose key
    /// operation signs the prepared SignedInfo.
    digest: Vec<u8>,
    body: Body,
}

struct FinishJob {
    job: SignJob,
    signature: Signature,
}

/// A large PDF between prepare and finish: its update, and the temporary output holding
/// the original bytes so far (hashed as written).
struct LargePdf {
    prepared: PreparedPdfFile,
    out: HashingWriter<std::io::BufWriter<tempfile::NamedTempFile>>,
}

/// What the key pool produced for one document.
enum Signature {
    /// A CMS SignedData (PDF and CMS bodies), still open for a B-T time-stamp.
    Cms(PendingSignature),
    /// The raw signature value (XML-DSig's SignatureValue).
    Raw(Vec<u8>),
}

/// What a worker hands the collector for one document.
enum Report {
    /// Signed (or an earlier run's output checked): to be named, journaled and reported.
    Signed(Box<SignedDoc>),
    /// Skipped or failed: only reported.
    Done(DocOutcome),
    /// Failed in a way that stops the batch (key or output folder unusable).
    Fatal(DocOutcome, ErrorCode, String),
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Engine {
    /// An engine signing with `key` as `options` say; checks the certificate once, here.
    pub fn new(key: Arc<dyn KeySource>, options: BatchOptions) -> Result<Self, Error> {
        crate::pki::check_signing_certificate(key.certificate(), options.signing_time)?;
        let scheme = SignatureScheme::for_key(key.algorithm(), options.digest, options.rsa_padding);
        let der = key
            .certificate()
            .to_der()
            .map_err(|e| Error::Usage(format!("signer certificate cannot be encoded: {e}")))?;
        let template = SignerTemplate::new(key.as_ref(), options.digest, true)?;
        let pdf_options = PdfSignOptions {
            field_name: None,
            reason: options.reason.clone(),
            location: options.location.clone(),
            name: crate::pki::subject_common_name(key.certificate()),
            contact_info: None,
            signing_time: options.signing_time,
            contents_size: contents_size(key.as_ref(), scheme, options.level)?,
            visible: None,
        };
        Ok(Self {
            cert_sha256: sha256_hex(&der),
            options_sha256: options.options_hash(),
            xml_text: crate::xml::dsig::SignerText::of(key.certificate(), key.chain()).ok(),
            key,
            timestamper: None,
            audit: None,
            write_guard: None,
            options,
            scheme,
            template,
            pdf_options,
        })
    }

    /// Adds the time-stamp authority for B-T.
    pub fn with_timestamper(mut self, tsa: Arc<dyn TimeStamper>) -> Self {
        self.timestamper = Some(tsa);
        self
    }

    /// Adds the audit sink that receives one event per signed document.
    pub fn with_audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Asks `guard` just before each output is put under its name; when it answers false the
    /// output is dropped and the run stops (`OUTPUT_UNWRITABLE`): a gateway whose batch lease
    /// was taken over by another process writes nothing more into the shared batch folder.
    pub fn with_write_guard(mut self, guard: WriteGuard) -> Self {
        self.write_guard = Some(guard);
        self
    }

    /// Fails when the write guard refuses the output at `path`.
    fn may_write(&self, path: &Path) -> Result<(), Error> {
        match &self.write_guard {
            Some(guard) if !guard() => Err(IoError::Write {
                path: path.to_path_buf(),
                reason: "this run no longer holds the batch (lease lost)".into(),
            }
            .into()),
            _ => Ok(()),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &BatchOptions {
        &self.options
    }

    /// How [`Engine::run`] lays out its threads: one worker per core doing every stage when
    /// the key is in this process and the level is B-B (the key operation is cheap, nothing
    /// waits), else the three-stage pipeline sized by the options, the key's session limit
    /// and the level (B-T waits on the TSA in the write stage).
    pub fn layout(&self) -> Layout {
        let n = cores();
        let pick = |v: usize, default: usize| if v == 0 { default } else { v };
        let mut jobs = pick(self.options.jobs, n);
        let cap = self.key.max_concurrent_signatures();
        if let Some(cap) = cap.filter(|cap| jobs > *cap) {
            tracing::warn!(
                requested = jobs,
                cap,
                "key pool capped to the token's session limit"
            );
            jobs = cap;
        }
        if self.options.level == Level::BB && cap.is_none() {
            return Layout::WorkerPerCore { workers: jobs };
        }
        let writers_default = if self.options.level == Level::BT {
            8 * n
        } else {
            n
        };
        Layout::Pipeline {
            readers: pick(self.options.prepare_threads, n),
            signers: jobs,
            writers: pick(self.options.finish_threads, writers_default),
        }
    }

    /// Signs every input into `out_dir` (created if missing), calling `on_outcome` for each.
    ///
    /// Returns an error only when the batch cannot start (output folder unusable, B-T without
    /// a TSA); per-document failures are in the summary.
    pub fn run(
        &self,
        inputs: impl Iterator<Item = PathBuf> + Send,
        out_dir: &Path,
        on_outcome: &mut dyn FnMut(&DocOutcome),
    ) -> Result<BatchSummary, Error> {
        let started = Instant::now();
        if self.options.level == Level::BT && self.timestamper.is_none() {
            return Err(Error::Usage(
                "level b-t needs a time-stamp authority (--tsa URL)".into(),
            ));
        }
        std::fs::create_dir_all(out_dir).map_err(|e| IoError::Write {
            path: out_dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        remove_stale_temp_files(out_dir);
        let out = OutputDir::open(out_dir, TEMP_PREFIX)?;
        let existing = out.names();
        let index = JournalIndex::load(out_dir)?;
        let mut writer = JournalWriter::open(out_dir, self.options.durable)?;
        let mut syncer = if self.options.durable {
            Some(Syncer::start(out_dir)?)
        } else {
            None
        };
        let run = Run {
            engine: self,
            out: &out,
            existing: &existing,
            index: &index,
            stop: AtomicBool::new(false),
        };
        let mut summary = BatchSummary::default();
        run.threads(self.layout(), inputs, &mut |reports| {
            Committer::new(&run, &mut writer, &mut summary, on_outcome, syncer.take())
                .collect(reports)
        });
        writer.sync()?;
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    /// Reads a document (`openat`, `statx`, one `read` for a small one), checks the journal
    /// and lays the signature out up to the digest the key signs.
    fn prepare(&self, job: InputJob, run: &Run<'_>) -> Result<Prepared, DocOutcome> {
        let (out_dir, index) = (run.out.path(), run.index);
        let fail = |output: Option<PathBuf>, e: Error| {
            failed(
                job.index,
                job.input.clone(),
                output,
                e.code(),
                one_line(&e.to_string()),
            )
        };
        let read_fail = |e: std::io::Error| {
            fail(
                None,
                IoError::Read {
                    path: job.input.clone(),
                    reason: e.to_string(),
                }
                .into(),
            )
        };
        let mut source = std::fs::File::open(&job.input).map_err(read_fail)?;
        let meta = source.metadata().map_err(read_fail)?;
        let large = meta.is_file() && meta.len() > pdf::STREAMING_THRESHOLD;
        if large && self.options.format.unwrap_or(Format::Pdf) == Format::Pdf {
            if let Some(prepared) = self.prepare_large(&job, source, &meta, run)? {
                return Ok(prepared);
            }
            source = std::fs::File::open(&job.input).map_err(read_fail)?;
        }
        let bytes = crate::fsio::read_sized(&mut source, &meta).map_err(read_fail)?;
        drop(source);
        let input_name = job.input.file_name().map(|n| n.to_string_lossy());
        let format = crate::sign::select_format(
            &bytes,
            &crate::sign::FormatHints {
                explicit: self.options.format,
                input_name: input_name.as_deref(),
                output_name: None,
            },
        )
        .map_err(|e| fail(None, e.into()))?;
        let output_name = match format {
            Format::Pdf => job.name.clone(),
            Format::Cms => format!("{}.p7s", job.name),
            Format::Xml => job.name.clone(),
        };
        let output = out_dir.join(&output_name);
        let mut output_hash = DigestAlgorithm::Sha256.hasher();
        output_hash.update(&bytes);
        let input_sha256 = hex::encode(output_hash.clone().finish());
        if self.already_signed(index, &output_name, &input_sha256, &output) {
            return Ok(Prepared::Skip(DocOutcome {
                index: job.index,
                input: job.input,
                output: Some(output),
                status: DocStatus::Skipped,
            }));
        }
        if run.same_file(&meta, &output_name) {
            return Err(fail(
                None,
                Error::Usage(format!(
                    "output {} would overwrite its input",
                    output.display()
                )),
            ));
        }
        if index.get(&output_name).is_none()
            && run.existing.contains(std::ffi::OsStr::new(&output_name))
        {
            if let Some(output_sha256) = self.earlier_output(format, &bytes, &output) {
                let entry =
                    self.journal_entry(&job.input, input_sha256, output_name, output_sha256);
                return Ok(Prepared::Recorded(Box::new(SignedDoc {
                    outcome: DocOutcome {
                        index: job.index,
                        input: job.input,
                        output: Some(output),
                        status: DocStatus::Skipped,
                    },
                    entry,
                    staged: None,
                })));
            }
        }
        let (digest, body) = match format {
            Format::Xml => {
                let prepared = self.prepare_xml(&bytes).map_err(|e| fail(None, e))?;
                (Vec::new(), Body::Xml(Box::new(prepared)))
            }
            Format::Cms => (self.options.digest.digest(&bytes), Body::Cms),
            Format::Pdf => {
                let input_len = bytes.len();
                let prepared = pdf::prepare_owned(bytes, &self.pdf_options)
                    .map_err(|e| fail(None, e.into()))?;
                // The output's hash continues from the input's; SHA-256 documents take their
                // signed digest from the same pass.
                let ranges = prepared.digest_continuing(&mut output_hash, input_len);
                let digest = if self.options.digest == DigestAlgorithm::Sha256 {
                    ranges
                } else {
                    prepared.digest(self.options.digest)
                };
                (digest, Body::Pdf(prepared, Box::new(output_hash)))
            }
        };
        Ok(Prepared::Sign(SignJob {
            index: job.index,
            input: job.input,
            output_name,
            input_sha256,
            digest,
            body,
        }))
    }

    /// The private-key operation for one document: a CMS SignedData for PDF and CMS bodies,
    /// the bare signature value for XML-DSig.
    fn sign(&self, job: &SignJob) -> Result<Signature, Error> {
        match &job.body {
            Body::Xml(prepared) => Ok(Signature::Raw(
                self.key.sign_message(self.scheme, prepared.signed_info())?,
            )),
            Body::Pdf(..) | Body::PdfFile(_) | Body::Cms => {
                SignedDataBuilder::new(self.key.as_ref(), self.scheme, job.digest.clone())
                    .with_template(&self.template)
                    .sign()
                    .map(Signature::Cms)
                    .map_err(Error::from)
            }
        }
    }

    /// [`Self::sign`] for one prepared document, or the report of its failure. A key that
    /// cannot sign (token removed, PIN locked) sets `stop`: every later document would fail too.
    fn sign_or_report(&self, job: SignJob, stop: &AtomicBool) -> Result<FinishJob, Box<Report>> {
        match self.sign(&job) {
            Ok(signature) => Ok(FinishJob { job, signature }),
            Err(e) => {
                let (code, message) = (e.code(), one_line(&e.to_string()));
                let outcome = failed(job.index, job.input, None, code, message.clone());
                let fatal = matches!(
                    code,
                    ErrorCode::KeyUnavailable | ErrorCode::KeyPasswordWrong | ErrorCode::KeyInvalid
                );
                if fatal {
                    stop.store(true, Ordering::Relaxed);
                    Err(Box::new(Report::Fatal(outcome, code, message)))
                } else {
                    Err(Box::new(Report::Done(outcome)))
                }
            }
        }
    }

    /// Prepares a PDF above [`pdf::STREAMING_THRESHOLD`] without reading it into memory: the
    /// update is laid out from the objects the signature touches and the original bytes are
    /// streamed into the temporary output while hashed. The input's SHA-256 (for the journal)
    /// is that of the output's prefix, so the file is read once; a re-run therefore checks
    /// the journal after that copy. `Ok(None)` when the file is not a PDF after all.
    fn prepare_large(
        &self,
        job: &InputJob,
        mut source: std::fs::File,
        meta: &std::fs::Metadata,
        run: &Run<'_>,
    ) -> Result<Option<Prepared>, DocOutcome> {
        let (out_dir, index) = (run.out.path(), run.index);
        let fail = |e: Error| {
            failed(
                job.index,
                job.input.clone(),
                None,
                e.code(),
                one_line(&e.to_string()),
            )
        };
        let read_fail = |e: std::io::Error| {
            fail(
                IoError::Read {
                    path: job.input.clone(),
                    reason: e.to_string(),
                }
                .into(),
            )
        };
        let output = out_dir.join(&job.name);
        let write_fail = |e: std::io::Error| {
            fail(
                IoError::Write {
                    path: output.clone(),
                    reason: e.to_string(),
                }
                .into(),
            )
        };
        let mut head = [0u8; 5];
        let is_pdf = std::io::Read::read_exact(&mut source, &mut head).is_ok() && &head == b"%PDF-";
        if !is_pdf && self.options.format.is_none() {
            return Ok(None);
        }
        if run.same_file(meta, &job.name) {
            return Err(fail(Error::Usage(format!(
                "output {} would overwrite its input",
                output.display()
            ))));
        }
        let prepared =
            pdf::prepare_file(&mut source, &self.pdf_options).map_err(|e| fail(e.into()))?;
        let tmp = run.out.temp_file().map_err(write_fail)?;
        let mut out = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, tmp));
        let digest = prepared
            .copy_and_digest(&mut source, &mut out, self.options.digest)
            .map_err(|e| match e {
                pdf::CopyError::Read(e) => read_fail(e),
                pdf::CopyError::Write(e) => write_fail(e),
            })?;
        let input_sha256 = hex::encode(out.hasher.clone().finish());
        if self.already_signed(index, &job.name, &input_sha256, &output) {
            return Ok(Some(Prepared::Skip(DocOutcome {
                index: job.index,
                input: job.input.clone(),
                output: Some(output),
                status: DocStatus::Skipped,
            })));
        }
        Ok(Some(Prepared::Sign(SignJob {
            index: job.index,
            input: job.input.clone(),
            output_name: job.name.clone(),
            input_sha256,
            digest,
            body: Body::PdfFile(Box::new(LargePdf { prepared, out })),
        })))
    }

    /// Lays out the XML-DSig Signature of one document (profile from the options, else from
    /// its root element), up to the digest the key signs.
    fn prepare_xml(&self, bytes: &[u8]) -> Result<crate::xml::dsig::PreparedSignature, Error> {
        if self.options.level != Level::BB {
            return Err(Error::Usage(
                "XML signatures are B-B only for now (no XAdES time-stamp)".into(),
            ));
        }
        let profile = match self.options.xml_profile {
            Some(p) => p,
            None => crate::xml::parse::parse(bytes, &crate::xml::Limits::default())
                .map(|p| crate::xml::Profile::detect(&p.doc))?,
        };
        let signer = crate::xml::dsig::Signer {
            certificate: self.key.certificate(),
            chain: self.key.chain(),
            algorithm: self.key.algorithm(),
            scheme: self.scheme,
            text: self.xml_text.clone(),
        };
        Ok(crate::xml::prepare(
            bytes,
            profile,
            &signer,
            self.options.signing_time,
        )?)
    }

    /// Whether the journal records `output_name` as signed from this input with this key and
    /// these options, and the output on disk is still what was written.
    fn already_signed(
        &self,
        index: &JournalIndex,
        output_name: &str,
        input_sha256: &str,
        output: &Path,
    ) -> bool {
        index.get(output_name).is_some_and(|entry| {
            entry.input_sha256 == input_sha256
                && entry.cert_sha256 == self.cert_sha256
                && entry.options_sha256 == self.options_sha256
                && sha256_file(output).is_ok_and(|existing| existing == entry.output_sha256)
        })
    }

    /// Completes one document (B-T time-stamp, `/Contents` or SignatureValue) and writes its
    /// output, unnamed: the collector names it (see [`commit`]).
    fn finish(&self, job: FinishJob, out: &OutputDir) -> Report {
        let FinishJob { job, signature } = job;
        let output = out.path().join(&job.output_name);
        let name = job.output_name.as_str();
        let result = (|| -> Result<(StagedFile, String), Error> {
            let (mut pending, body) = match (signature, job.body) {
                (Signature::Raw(value), Body::Xml(prepared)) => {
                    let recheck = job.index % XML_RECHECK_EVERY == 0;
                    let bytes = prepared.finish_checked(&value, recheck)?;
                    return Ok((out.stage(name, &bytes)?, sha256_hex(&bytes)));
                }
                (Signature::Cms(pending), body) => (pending, body),
                (Signature::Raw(_), _) => {
                    return Err(Error::Usage("a raw signature for a CMS body".into()))
                }
            };
            if self.options.level == Level::BT {
                let tsa = self
                    .timestamper
                    .as_ref()
                    .ok_or_else(|| Error::Usage("level b-t needs a time-stamp authority".into()))?;
                let digest = pending.digest_algorithm();
                let token = tsa.timestamp(digest, &digest.digest(pending.signature_value()))?;
                pending.add_timestamp_token(&token)?;
            }
            let cms = pending.to_der()?;
            match body {
                Body::Xml(_) => Err(Error::Usage("a CMS signature for an XML body".into())),
                Body::Pdf(prepared, hash) => {
                    let (bytes, output_sha256) = prepared.finish_hashed(&cms, *hash)?;
                    Ok((out.stage(name, &bytes)?, hex::encode(output_sha256)))
                }
                Body::Cms => Ok((out.stage(name, &cms)?, sha256_hex(&cms))),
                Body::PdfFile(large) => {
                    let LargePdf { prepared, mut out } = *large;
                    let fail = |e: std::io::Error| IoError::Write {
                        path: output.clone(),
                        reason: e.to_string(),
                    };
                    out.write_all(&prepared.finish(&cms)?).map_err(fail)?;
                    let (file, hasher) = out.into_parts();
                    let file = file.into_inner().map_err(|e| fail(e.into_error()))?;
                    Ok((StagedFile::from_temp(file), hex::encode(hasher.finish())))
                }
            }
        })();
        match result {
            Ok((staged, output_sha256)) => {
                let entry = self.journal_entry(
                    &job.input,
                    job.input_sha256,
                    job.output_name,
                    output_sha256,
                );
                Report::Signed(Box::new(SignedDoc {
                    outcome: DocOutcome {
                        index: job.index,
                        input: job.input,
                        output: Some(output),
                        status: DocStatus::Signed,
                    },
                    entry,
                    staged: Some(staged),
                }))
            }
            Err(e) => {
                let code = e.code();
                let message = one_line(&e.to_string());
                let outcome = failed(job.index, job.input, None, code, message.clone());
                if code == ErrorCode::OutputUnwritable {
                    Report::Fatal(outcome, code, message)
                } else {
                    Report::Done(outcome)
                }
            }
        }
    }

    /// The journal line of output `output_name` made from `input` by this engine.
    fn journal_entry(
        &self,
        input: &Path,
        input_sha256: String,
        output_name: String,
        output_sha256: String,
    ) -> JournalEntry {
        JournalEntry {
            input: input.display().to_string(),
            input_sha256,
            cert_sha256: self.cert_sha256.clone(),
            options_sha256: self.options_sha256.clone(),
            output: output_name,
            output_sha256,
            signed_at: rfc3339(OffsetDateTime::now_utc()),
        }
    }

    /// Checks an output an earlier run left under `output` with no journal line (it was
    /// killed between naming the output and writing the line): it is kept when it carries
    /// an intact signature by this engine's certificate over `input` — a PDF that is
    /// `input` plus an update whose signature covers the whole file; XML that is `input`
    /// with a Signature inserted; a detached CMS over `input`. Returns its SHA-256, or
    /// `None` when it has to be signed again (partial, foreign, or over another input).
    fn earlier_output(&self, format: Format, input: &[u8], output: &Path) -> Option<String> {
        let (signed, _) = crate::fsio::read_whole(output).ok()?;
        let cert = self.key.certificate();
        let intact = match format {
            Format::Pdf => {
                signed.len() > input.len()
                    && signed.starts_with(input)
                    && crate::verify::recheck::pdf_signed_by(&signed, cert)
            }
            Format::Cms => crate::verify::recheck::cms_signed_by(&signed, input, cert),
            Format::Xml => inserted_range(input, &signed).is_some_and(|within| {
                crate::verify::recheck::xml_signed_by(
                    &signed,
                    cert,
                    within,
                    self.options.xml_profile,
                )
            }),
        };
        intact.then(|| sha256_hex(&signed))
    }
}

/// Where `output` is `input` with bytes inserted at one place, the bytes of `output` that
/// may be the inserted ones: from the earliest to the latest insertion point that explains
/// `output` (they differ when the inserted bytes begin or end like the input around them).
/// `None` when `output` is anything else.
fn inserted_range(input: &[u8], output: &[u8]) -> Option<std::ops::Range<usize>> {
    let inserted = output.len().checked_sub(input.len()).filter(|n| *n > 0)?;
    let common = |a: &mut dyn Iterator<Item = (&u8, &u8)>| a.take_while(|(x, y)| x == y).count();
    let prefix = common(&mut input.iter().zip(output));
    let suffix = common(&mut input.iter().rev().zip(output.iter().rev()));
    let earliest = input.len().saturating_sub(suffix);
    (earliest <= prefix).then_some(earliest..prefix + inserted)
}

/// XML-DSig outputs are re-parsed and verified before they are written for the first input
/// and every this many after it (a canary on the layout code; see
/// [`crate::xml::dsig::PreparedSignature::finish_checked`]).
const XML_RECHECK_EVERY: usize = 64;

/// Bytes left free in a B-B `/Contents` beyond the CMS length bound.
const CONTENTS_SLACK: usize = 32;

/// The `/Contents` reservation: for B-B what this key's CMS can take, so no output carries
/// (and hashes, and writes) kilobytes of unused zeros; B-T keeps room for the token.
fn contents_size(
    key: &dyn KeySource,
    scheme: SignatureScheme,
    level: Level,
) -> Result<usize, Error> {
    match level {
        Level::BB => {
            let digest = vec![0; scheme.digest().output_len()];
            let bound = SignedDataBuilder::new(key, scheme, digest).encoded_len_bound()?;
            Ok(bound + CONTENTS_SLACK)
        }
        Level::BT => Ok(crate::sign::pdf_contents_size(level)),
    }
}

enum Prepared {
    Sign(SignJob),
    Skip(DocOutcome),
    /// An output an earlier run named but did not record, checked: to be recorded.
    Recorded(Box<SignedDoc>),
}

fn failed(
    index: usize,
    input: PathBuf,
    output: Option<PathBuf>,
    code: ErrorCode,
    message: String,
) -> DocOutcome {
    DocOutcome {
        index,
        input,
        output,
        status: DocStatus::Failed { code, message },
    }
}

/// Raises this process's soft limit of open files to `needed` (at most the hard limit): a
/// durable run holds each staged output open until the group sync that precedes its name.
fn allow_open_files(needed: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let needed = needed as u64;
    let limit = getrlimit(Resource::Nofile);
    // `None` is no limit.
    match limit.current {
        Some(current) if current < needed => {}
        _ => return,
    }
    let current = limit.maximum.map_or(needed, |maximum| maximum.min(needed));
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(current),
            maximum: limit.maximum,
        },
    );
}

/// Takes the next job from a queue shared by a pool; `None` once the queue is closed and empty.
fn next<T>(rx: &Mutex<Receiver<T>>) -> Option<T> {
    rx.lock().ok()?.recv().ok()
}

impl Run<'_> {
    /// Whether output `name` is the very file whose metadata is `input`: a `stat` only for
    /// a name that was in the output folder when the run started.
    fn same_file(&self, input: &std::fs::Metadata, name: &str) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.existing.contains(std::ffi::OsStr::new(name))
            && std::fs::metadata(self.out.path().join(name))
                .is_ok_and(|o| o.dev() == input.dev() && o.ino() == input.ino())
    }
}

/// SHA-256 (hex) of a file, read in chunks.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = DigestAlgorithm::Sha256.hasher();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finish()))
}

/// A writer that hashes everything written through it with SHA-256.
struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: DigestAlgorithm::Sha256.hasher(),
        }
    }

    fn into_parts(self) -> (W, Hasher) {
        (self.inner, self.hasher)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Removes temporary files a killed run left behind.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::inserted_range;

    #[test]
    fn inserted_range_covers_every_insertion_point_that_explains_the_output() {
        assert_eq!(inserted_range(b"<a>x</a>", b"<a>xS</a>"), Some(4..5));
        // "<S/>" begins and ends like the input around it ("<", ">"): the window covers
        // every insertion point that explains the output ("<a" + "><S/" + "></a>" too).
        assert_eq!(inserted_range(b"<a></a>", b"<a><S/></a>"), Some(2..8));
        assert_eq!(inserted_range(b"<a><</a>", b"<a><<S/></a>"), Some(4..9));
        assert_eq!(inserted_range(b"abc", b"abc"), None);
        assert_eq!(inserted_range(b"abc", b"ab"), None);
        assert_eq!(inserted_range(b"abc", b"xbcd"), None);
        assert_eq!(inserted_range(b"", b"xy"), Some(0..2));
    }
}
