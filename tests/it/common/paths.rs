//! Paths of the repository, its test data and scratch space.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/data/`.
pub fn data_dir() -> PathBuf {
    repo_root().join("tests").join("data")
}

/// A file of the PDF corpus, `tests/data/pdfs/NAME` (see `make_corpus.sh` for the list).
pub fn corpus(name: &str) -> PathBuf {
    let p = data_dir().join("pdfs").join(name);
    assert!(p.exists(), "corpus file {} is missing", p.display());
    p
}

/// `tests/data/sample.pdf`: the one-page administrative decision used by examples.
pub fn sample_pdf() -> PathBuf {
    data_dir().join("sample.pdf")
}

/// The Python venv with pinned pyHanko (`SIGNGATE_TEST_VENV`, default `.venv/`), made by `tests/run`.
pub fn venv_dir() -> PathBuf {
    std::env::var_os("SIGNGATE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"))
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("signgate-test-")
        .tempdir()
        .expect("create temp dir")
}

/// A unique path under cargo's per-target scratch dir (for outputs that must outlive a call).
pub fn scratch_path(stem: &str, ext: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).expect("create CARGO_TARGET_TMPDIR");
    let n = N.fetch_add(1, Ordering::SeqCst);
    dir.join(format!("{stem}-{}-{n}.{ext}", std::process::id()))
}
