//! The collector's half of a batch run, on the caller's thread: gives outputs their names,
//! writes their journal lines, makes both durable, and reports each document (summary,
//! audit event, progress).
//!
//! A durable run commits in groups, as a database commits transactions: workers hand over
//! outputs written but unnamed ([`StagedFile`]); one `syncfs` makes the content of every
//! output staged so far durable, then they get their names (`linkat` or `rename`) and their
//! journal lines (one `write`), and the next `syncfs` makes those durable before the
//! documents are reported. The syncs run on a thread of their own, back to back while
//! there is anything to sync, so a group is whatever arrived during the previous sync: small
//! on tmpfs, larger on a slow disk. After a crash or a power cut an output is therefore
//! complete under its final name or absent, and a document reported signed has its name
//! and journal line on disk. Without durability (benchmarks on scratch folders) outputs are
//! named and recorded as they arrive.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use time::OffsetDateTime;

use super::journal::{JournalEntry, JournalWriter};
use super::{
    failed, one_line, AuditEvent, BatchSummary, DocOutcome, DocStatus, FailedDoc, Report, Run,
};
use crate::code::ErrorCode;
use crate::fsio::{IoError, StagedFile};

/// A signed document on its way to the journal: its outcome, its journal line, and its
/// output still to be named (`None` for an earlier run's output checked on resume).
pub(super) struct SignedDoc {
    pub(super) outcome: DocOutcome,
    pub(super) entry: JournalEntry,
    pub(super) staged: Option<StagedFile>,
}

/// Runs `syncfs` on an output folder's file system when asked, on its own thread.
pub(super) struct Syncer {
    requests: Option<SyncSender<()>>,
    done: Receiver<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread for the file system of folder `dir`.
    pub(super) fn start(dir: &Path) -> Result<Self, IoError> {
        let folder = std::fs::File::open(dir).map_err(|e| IoError::Write {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let (requests, asked) = sync_channel::<()>(1);
        let (finished, done) = sync_channel(1);
        let thread = std::thread::spawn(move || {
            for () in asked.iter() {
                let result = rustix::fs::syncfs(&folder).map_err(io::Error::from);
                if finished.send(result).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            requests: Some(requests),
            done,
            thread: Some(thread),
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The collector's state (see the module documentation).
pub(super) struct Committer<'r, 'a> {
    run: &'r Run<'a>,
    writer: &'r mut JournalWriter,
    summary: &'r mut BatchSummary,
    on_outcome: &'r mut dyn FnMut(&DocOutcome),
    /// `None` when the run is not durable.
    syncer: Option<Syncer>,
    max_staged: usize,
    /// Staged, not covered by a sync yet.
    waiting: Vec<SignedDoc>,
    /// Staged before the sync in flight started.
    syncing: Vec<SignedDoc>,
    /// Named and journaled; reported once a sync started after that completes.
    named: Vec<SignedDoc>,
    in_flight: bool,
}

impl<'r, 'a> Committer<'r, 'a> {
    pub(super) fn new(
        run: &'r Run<'a>,
        writer: &'r mut JournalWriter,
        summary: &'r mut BatchSummary,
        on_outcome: &'r mut dyn FnMut(&DocOutcome),
        syncer: Option<Syncer>,
    ) -> Self {
        Self {
            max_staged: run.engine.options.max_staged.max(1),
            run,
            writer,
            summary,
            on_outcome,
            syncer,
            waiting: Vec::new(),
            syncing: Vec::new(),
            named: Vec::new(),
            in_flight: false,
        }
    }

    /// Takes every group of reports until the workers are done, then finishes the syncs.
    pub(super) fn collect(mut self, groups: Receiver<Vec<Report>>) {
        loop {
            if self.in_flight && self.waiting.len() >= self.max_staged {
                // Enough open files: the workers wait (bounded queue) until the sync ends.
                self.wait();
                continue;
            }
            let Ok(group) = groups.recv() else {
                break;
            };
            self.take(group);
            self.poll();
        }
        while self.in_flight || !self.waiting.is_empty() || !self.named.is_empty() {
            if self.in_flight {
                self.wait();
            } else {
                self.start_sync();
            }
        }
    }

    fn take(&mut self, group: Vec<Report>) {
        let mut signed = Vec::new();
        for report in group {
            match report {
                Report::Signed(doc) => signed.push(*doc),
                Report::Done(outcome) => self.report(&outcome),
                Report::Fatal(outcome, code, message) => {
                    self.abort(code, message);
                    self.report(&outcome);
                }
            }
        }
        if self.syncer.is_some() {
            self.waiting.append(&mut signed);
        } else {
            for doc in self.name(signed) {
                self.report_signed(doc);
            }
        }
    }

    /// Notes a finished sync without waiting, and starts the next one if anything is due.
    fn poll(&mut self) {
        if self.in_flight {
            let result = match self.syncer.as_ref().map(|s| s.done.try_recv()) {
                Some(Err(TryRecvError::Empty)) => return,
                Some(Ok(result)) => result,
                Some(Err(TryRecvError::Disconnected)) | None => Err(syncer_gone()),
            };
            self.synced(result);
        }
        self.start_sync();
    }

    fn wait(&mut self) {
        let result = match self.syncer.as_ref().map(|s| s.done.recv()) {
            Some(Ok(result)) => result,
            _ => Err(syncer_gone()),
        };
        self.synced(result);
        self.start_sync();
    }

    /// Starts a sync covering everything staged and named so far, unless one is running or
    /// nothing waits for one.
    fn start_sync(&mut self) {
        if self.in_flight || (self.waiting.is_empty() && self.named.is_empty()) {
            return;
        }
        let Some(requests) = self.syncer.as_ref().and_then(|s| s.requests.as_ref()) else {
            return;
        };
        self.syncing = std::mem::take(&mut self.waiting);
        if requests.send(()).is_ok() {
            self.in_flight = true;
        } else {
            self.synced(Err(syncer_gone()));
        }
    }

    /// A sync ended: what was named before it is durable and reported; what was staged
    /// before it gets its name.
    fn synced(&mut self, result: io::Result<()>) {
        self.in_flight = false;
        let (named, syncing) = (
            std::mem::take(&mut self.named),
            std::mem::take(&mut self.syncing),
        );
        for doc in named {
            self.report_signed(doc);
        }
        match result {
            Ok(()) => self.named = self.name(syncing),
            Err(e) => {
                let message = format!("cannot sync {}: {e}", self.run.out.path().display());
                self.abort(ErrorCode::OutputUnwritable, message.clone());
                for doc in syncing {
                    let SignedDoc { outcome, .. } = doc;
                    let code = ErrorCode::OutputUnwritable;
                    self.report(&failed(
                        outcome.index,
                        outcome.input,
                        None,
                        code,
                        message.clone(),
                    ));
                }
            }
        }
    }

    /// Gives each staged output its name, then writes the journal lines of those named (and
    /// of earlier outputs checked) in one `write`.
    fn name(&mut self, docs: Vec<SignedDoc>) -> Vec<SignedDoc> {
        let mut named = Vec::with_capacity(docs.len());
        for mut doc in docs {
            let result = match doc.staged.take() {
                Some(staged) => self
                    .run
                    .engine
                    .may_write(&self.run.out.path().join(&doc.entry.output))
                    .and_then(|()| Ok(self.run.out.commit(staged, &doc.entry.output)?)),
                None => Ok(()),
            };
            match result {
                Ok(()) => named.push(doc),
                Err(e) => {
                    let (code, message) = (e.code(), one_line(&e.to_string()));
                    self.abort(code, message.clone());
                    let outcome = doc.outcome;
                    self.report(&failed(outcome.index, outcome.input, None, code, message));
                }
            }
        }
        let entries: Vec<&JournalEntry> = named.iter().map(|d| &d.entry).collect();
        if let Err(e) = self.writer.append_all(&entries) {
            self.abort(e.code(), one_line(&e.to_string()));
        }
        named
    }

    /// Stops the workers and records why (the first reason wins).
    fn abort(&mut self, code: ErrorCode, message: String) {
        self.run.stop.store(true, Ordering::Relaxed);
        if self.summary.aborted.is_none() {
            self.summary.aborted = Some((code, message));
        }
    }

    /// Sends the audit event of a document signed in this run, then reports it.
    fn report_signed(&mut self, doc: SignedDoc) {
        if let (Some(audit), DocStatus::Signed) = (&self.run.engine.audit, &doc.outcome.status) {
            audit.signed(&AuditEvent {
                input: doc.outcome.input.clone(),
                output: doc.outcome.output.clone().unwrap_or_default(),
                input_sha256: doc.entry.input_sha256.clone(),
                output_sha256: doc.entry.output_sha256.clone(),
                cert_sha256: doc.entry.cert_sha256.clone(),
                at: OffsetDateTime::now_utc(),
            });
        }
        self.report(&doc.outcome);
    }

    /// Counts one outcome in the summary and passes it on.
    fn report(&mut self, outcome: &DocOutcome) {
        match &outcome.status {
            DocStatus::Signed => self.summary.signed += 1,
            DocStatus::Skipped => self.summary.skipped += 1,
            DocStatus::Failed { code, message } => self.summary.failed.push(FailedDoc {
                input: outcome.input.clone(),
                code: *code,
                message: message.clone(),
            }),
        }
        (self.on_outcome)(outcome);
    }
}

fn syncer_gone() -> io::Error {
    io::Error::other("the sync thread stopped")
}
