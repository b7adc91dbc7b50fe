//! The batch journal `OUT/.signgate-batch.jsonl`: one JSON line per finished output.
//!
//! Lines are appended in groups (one `write`, so a group survives the process being killed)
//! right after their outputs got their names; outputs and journal are made durable by the
//! engine's group syncs. A re-run reads the journal and skips an input when an entry has the
//! same input hash, certificate and options and the output on disk still has the recorded
//! hash. An output with no entry at all (named, then the run was killed before its line was
//! written) is checked instead: kept and recorded when it carries a valid signature by this
//! key over this input, signed again otherwise.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsio::IoError;

/// The journal's file name inside the output folder.
pub const JOURNAL_NAME: &str = ".signgate-batch.jsonl";

/// One finished output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalEntry {
    /// The input path as given.
    pub input: String,
    /// SHA-256 of the input bytes (hex).
    pub input_sha256: String,
    /// SHA-256 of the signer certificate's DER (hex).
    pub cert_sha256: String,
    /// SHA-256 of the signing options (hex), see `Engine::options_hash`.
    pub options_sha256: String,
    /// The output file name inside the output folder.
    pub output: String,
    /// SHA-256 of the output bytes (hex).
    pub output_sha256: String,
    /// When it was signed (RFC 3339 UTC).
    pub signed_at: String,
}

/// The entries of an existing journal, by output name (the last entry wins).
#[derive(Debug, Default)]
pub struct JournalIndex {
    entries: HashMap<String, JournalEntry>,
}

impl JournalIndex {
    /// Reads `dir/.signgate-batch.jsonl`; a missing file is an empty journal and a torn last
    /// line (the process was killed while writing it) is ignored.
    pub fn load(dir: &Path) -> Result<Self, IoError> {
        let path = dir.join(JOURNAL_NAME);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(IoError::Read {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        let mut entries = HashMap::new();
        for line in text.split(|b| *b == b'\n') {
            if let Ok(entry) = serde_json::from_slice::<JournalEntry>(line) {
                entries.insert(entry.output.clone(), entry);
            }
        }
        Ok(Self { entries })
    }

    /// The entry for output `name`, if any.
    pub fn get(&self, name: &str) -> Option<&JournalEntry> {
        self.entries.get(name)
    }

    /// Number of outputs recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Appends entries, one `write(2)` per group of lines. The engine makes outputs and journal
/// durable with its group syncs (see [`crate::batch`]); [`JournalWriter::sync`] is the last.
pub(crate) struct JournalWriter {
    dir: PathBuf,
    file: File,
    durable: bool,
}

impl JournalWriter {
    /// Opens (creating) the journal in `dir` for appending.
    pub(crate) fn open(dir: &Path, durable: bool) -> Result<Self, IoError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(JOURNAL_NAME);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| IoError::Write {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            durable,
        })
    }

    /// Records outputs already under their names, all lines in one `write(2)`: complete in
    /// the page cache even if the process is killed right after. A run killed between naming
    /// outputs and this write leaves them without a line; a re-run checks such an output
    /// (its signature, over the right input, by this key) and records it instead of signing
    /// again.
    pub(crate) fn append_all(&mut self, entries: &[&JournalEntry]) -> Result<(), IoError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::with_capacity(entries.len() * 512);
        for entry in entries {
            serde_json::to_writer(&mut lines, entry).map_err(|e| self.fail(e.to_string()))?;
            lines.push(b'\n');
        }
        self.file
            .write_all(&lines)
            .map_err(|e| self.fail(e.to_string()))
    }

    /// Makes everything written so far durable, waiting for it.
    pub(crate) fn sync(&mut self) -> Result<(), IoError> {
        if !self.durable {
            return Ok(());
        }
        rustix::fs::syncfs(&self.file).map_err(|e| self.fail(e.to_string()))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.file.sync_data().map_err(|e| self.fail(e.to_string()))
    }

    fn fail(&self, reason: String) -> IoError {
        IoError::Write {
            path: self.dir.join(JOURNAL_NAME),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(output: &str, hash: &str) -> JournalEntry {
        JournalEntry {
            input: format!("in/{output}"),
            input_sha256: "aa".into(),
            cert_sha256: "bb".into(),
            options_sha256: "cc".into(),
            output: output.into(),
            output_sha256: hash.into(),
            signed_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn append_then_load_ignores_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = JournalWriter::open(dir.path(), true).unwrap();
        w.append_all(&[&entry("a.pdf", "01"), &entry("b.pdf", "02")])
            .unwrap();
        w.append_all(&[&entry("a.pdf", "03")]).unwrap();
        w.sync().unwrap();
        drop(w);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_NAME))
            .unwrap();
        f.write_all(b"{\"input\":\"torn").unwrap();
        let index = JournalIndex::load(dir.path()).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.get("a.pdf").unwrap().output_sha256, "03");
        assert!(index.get("c.pdf").is_none());
    }
}
