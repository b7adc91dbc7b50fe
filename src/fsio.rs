//! Reading inputs and writing outputs atomically (temporary file in the target folder, then rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::code::ErrorCode;

/// An input could not be read or an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The input does not exist or cannot be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The output cannot be created or written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The path that failed.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
}

impl IoError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Read { .. } => ErrorCode::InputMissing,
            Self::Write { .. } => ErrorCode::OutputUnwritable,
        }
    }
}

/// Reads a whole file, or standard input for `-`.
pub fn read_input(path: &Path) -> Result<Vec<u8>, IoError> {
    let fail = |e: std::io::Error| IoError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map_err(fail)?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(fail)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, then renamed.
///
/// `-` writes to standard output. On failure no file is left behind.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_output_with(path, |out| {
        out.write_all(bytes).map_err(|e| IoError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    })
}

/// Like [`write_output`], for output produced piece by piece: `write` gets a buffered writer
/// (to the temporary file, or standard output for `-`). If it fails, nothing is left behind.
pub fn write_output_with<E: From<IoError>>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    let fail = |e: std::io::Error| IoError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if path == Path::new("-") {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        write(&mut out)?;
        return Ok(out.flush().map_err(fail)?);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".signgate-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(fail)?;
    {
        let mut out = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut out)?;
        out.flush().map_err(fail)?;
    }
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_is_atomic_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        write_output(&out, b"hello").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"hello");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn write_into_missing_folder_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("missing/out.bin");
        let err = write_output(&out, b"x").unwrap_err();
        assert_eq!(err.code(), ErrorCode::OutputUnwritable);
    }
}
