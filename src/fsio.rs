//! Reading inputs and writing outputs atomically (temporary file in the target folder, then rename;
//! or, for many outputs into one folder, an unnamed `O_TMPFILE` file linked under its name).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, CWD};
use rustix::io::Errno;

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

/// Creates folder `path` and its missing parents readable by their owner only (0700); an
/// existing folder keeps its mode. The gateway's data folder and everything in it are made
/// this way, and its files 0600 (see [`write_output`], [`OutputDir`]).
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
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
/// `-` writes to standard output. On failure no file is left behind. A new file is readable
/// by its owner only (0600, the temporary file's mode).
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

/// Reads a whole regular file with one `openat`, one `statx` and (for a file that does not
/// change meanwhile) one `read`: the buffer is sized from the metadata, so no probing read
/// for the end of the file follows. Returns the bytes and the metadata.
pub fn read_whole(path: &Path) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let bytes = read_sized(&mut file, &meta)?;
    Ok((bytes, meta))
}

/// Reads `file` whose metadata is `meta`: exactly its size for a regular file (a file that
/// shrank meanwhile ends early), to its end for anything else (pipes report no size).
pub fn read_sized(file: &mut std::fs::File, meta: &std::fs::Metadata) -> std::io::Result<Vec<u8>> {
    let len = usize::try_from(meta.len()).unwrap_or(0);
    if !meta.is_file() || len == 0 {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    let mut bytes = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// An output folder held open, into which files appear atomically under their final names.
///
/// A file is first *staged*: written unnamed (`open(dir, O_TMPFILE)`), or under a temporary
/// name (prefix `temp_prefix`, which the caller cleans up after a crash) where the file system
/// or the sandbox refuses `O_TMPFILE` or `/proc`. [`OutputDir::commit`] then gives it its name
/// (`linkat("/proc/self/fd/N", dir, name, AT_SYMLINK_FOLLOW)`, or `rename`), so a killed
/// process leaves no partial file under a final name and, with `O_TMPFILE`, nothing at all.
/// An existing name is replaced through a temporary name and `rename`. Nothing is fsynced
/// here: a caller that needs durability runs [`OutputDir::sync`] after staging (the content
/// is durable before the name exists) and again after committing (the names).
pub struct OutputDir {
    path: PathBuf,
    fd: OwnedFd,
    temp_prefix: &'static str,
    unnamed: AtomicBool,
    counter: AtomicU64,
}

/// A file written into an [`OutputDir`] that has no final name yet. Dropped without
/// [`OutputDir::commit`], it disappears (an unnamed file is freed, a temporary one removed).
pub struct StagedFile {
    kind: Staged,
}

enum Staged {
    /// An `O_TMPFILE` file, open.
    Unnamed(std::fs::File),
    /// A file under a temporary name in the folder.
    Temp(tempfile::NamedTempFile),
}

impl StagedFile {
    /// A staged file from a temporary file the caller wrote itself, in the same folder.
    pub fn from_temp(file: tempfile::NamedTempFile) -> Self {
        Self {
            kind: Staged::Temp(file),
        }
    }
}

impl OutputDir {
    /// Opens the existing folder `path`.
    pub fn open(path: &Path, temp_prefix: &'static str) -> Result<Self, IoError> {
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| IoError::Write {
            path: path.to_path_buf(),
            reason: std::io::Error::from(e).to_string(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            fd,
            temp_prefix,
            // Naming an unnamed file goes through /proc; a sandbox without it uses temporary names.
            unnamed: AtomicBool::new(Path::new("/proc/self/fd").exists()),
            counter: AtomicU64::new(0),
        })
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` as `name` in this folder: complete under that name, or absent.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), IoError> {
        let staged = self.stage(name, bytes)?;
        self.commit(staged, name)
    }

    /// Writes `bytes` into a file without its final name (`name` only names errors): one
    /// `openat(O_TMPFILE)` and one `write`.
    pub fn stage(&self, name: &str, bytes: &[u8]) -> Result<StagedFile, IoError> {
        let fail = |e: std::io::Error| self.fail(name, e);
        if self.unnamed.load(Ordering::Relaxed) {
            let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
            match rustix::fs::openat(&self.fd, ".", flags, Mode::RUSR | Mode::WUSR) {
                Ok(fd) => {
                    let mut file = std::fs::File::from(fd);
                    file.write_all(bytes).map_err(fail)?;
                    return Ok(StagedFile {
                        kind: Staged::Unnamed(file),
                    });
                }
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => {
                    self.unnamed.store(false, Ordering::Relaxed)
                }
                Err(e) => return Err(fail(e.into())),
            }
        }
        let mut tmp = self.temp_file().map_err(fail)?;
        tmp.write_all(bytes).map_err(fail)?;
        Ok(StagedFile::from_temp(tmp))
    }

    /// A new empty file under a temporary name in this folder (mode 0600), for output
    /// written piece by piece; hand it back through [`StagedFile::from_temp`].
    pub fn temp_file(&self) -> std::io::Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix(self.temp_prefix)
            .suffix(".tmp")
            .tempfile_in(&self.path)
    }

    /// Gives `staged` its final `name` (replacing an existing file of that name): one
    /// `linkat` (and `close`), or `rename` for a temporary file.
    pub fn commit(&self, staged: StagedFile, name: &str) -> Result<(), IoError> {
        match staged.kind {
            Staged::Temp(tmp) => tmp
                .persist(self.path.join(name))
                .map(drop)
                .map_err(|e| self.fail(name, e.error)),
            Staged::Unnamed(file) => self.link(&file, name).map_err(|e| self.fail(name, e)),
        }
    }

    /// Links the unnamed `file` as `name`.
    fn link(&self, file: &std::fs::File, name: &str) -> std::io::Result<()> {
        let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let link = |to: &str| {
            rustix::fs::linkat(
                CWD,
                proc_path.as_str(),
                &self.fd,
                to,
                AtFlags::SYMLINK_FOLLOW,
            )
        };
        match link(name) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => loop {
                // Replacing an earlier output: link under a fresh temporary name, rename over.
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                let temp = format!("{}{}-{n}.tmp", self.temp_prefix, std::process::id());
                match link(&temp) {
                    Ok(()) => {
                        let renamed = rustix::fs::renameat(&self.fd, temp.as_str(), &self.fd, name);
                        if let Err(e) = renamed {
                            let _ = rustix::fs::unlinkat(&self.fd, temp.as_str(), AtFlags::empty());
                            return Err(e.into());
                        }
                        return Ok(());
                    }
                    Err(Errno::EXIST) => continue,
                    Err(e) => return Err(e.into()),
                }
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Makes everything written to this folder's file system so far durable: one
    /// `syncfs(2)`, which covers staged files, names given and other files alike.
    pub fn sync(&self) -> std::io::Result<()> {
        rustix::fs::syncfs(&self.fd).map_err(Into::into)
    }

    /// Names present in the folder now (one listing), for checks that would otherwise
    /// `stat` each output name before it exists.
    pub fn names(&self) -> std::collections::HashSet<std::ffi::OsString> {
        std::fs::read_dir(&self.path)
            .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default()
    }

    fn fail(&self, name: &str, e: std::io::Error) -> IoError {
        IoError::Write {
            path: self.path.join(name),
            reason: e.to_string(),
        }
    }
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
    fn output_dir_writes_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir::open(dir.path(), ".t-").unwrap();
        out.write("a.bin", b"first").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.bin")).unwrap(), b"first");
        out.write("a.bin", b"second").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.bin")).unwrap(), b"second");
        let names: Vec<_> = out.names().into_iter().collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.bin")]);
        let (bytes, meta) = read_whole(&dir.path().join("a.bin")).unwrap();
        assert_eq!((bytes.as_slice(), meta.len()), (&b"second"[..], 6));
    }

    #[test]
    fn private_folders_and_outputs_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_private_dir(&nested).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        write_output(&nested.join("f"), b"x").unwrap();
        assert_eq!(mode(&nested.join("f")), 0o600);
        let out = OutputDir::open(&nested, ".t-").unwrap();
        out.write("g", b"y").unwrap();
        assert_eq!(mode(&nested.join("g")), 0o600);
    }

    #[test]
    fn write_into_missing_folder_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("missing/out.bin");
        let err = write_output(&out, b"x").unwrap_err();
        assert_eq!(err.code(), ErrorCode::OutputUnwritable);
    }
}
