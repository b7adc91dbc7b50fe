//! External dependencies of the tests (tools, PostgreSQL): present, or skipped with a printed
//! reason locally and a failure under `CI=true`, where `./tests/run` has installed everything.

use std::path::{Path, PathBuf};

use super::venv_dir;

/// True when running in CI (`CI=true`): missing tools then fail tests instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Finds executable `name` on PATH or in the test venv's `bin/`.
/// Missing: panics when `CI=true` (tests must fail, never skip, in CI); otherwise prints
/// `skipping: NAME not installed` and returns `None` (`let Some(_) = require_tool(..) else { return };`).
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = find_tool(name);
    if found.is_none() {
        missing(&format!("test tool `{name}`"));
    }
    found
}

/// The PostgreSQL server for tests that need one: `DATABASE_URL` (`./tests/run` sets it).
/// Unset: panics when `CI=true`; otherwise prints `skipping: …` and returns `None`
/// (`let Some(url) = require_database() else { return };`). See [`super::PgDatabase`].
pub fn require_database() -> Option<String> {
    let url = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        missing("PostgreSQL server (DATABASE_URL)");
    }
    url
}

/// A file a test needs that a package installs (e.g. the SoftHSM2 PKCS#11 module), with
/// [`require_tool`]'s rule: true when present; missing, a panic under `CI=true`, else a skip.
pub fn require_file(path: &Path, what: &str) -> bool {
    let found = path.exists();
    if !found {
        missing(&format!("{what} ({})", path.display()));
    }
    found
}

/// Reports a missing dependency: panics under `CI=true` (tests fail, never skip, in CI),
/// otherwise prints why the calling test is skipped.
fn missing(what: &str) {
    assert!(
        !in_ci(),
        "required {what} is missing (CI=true: run ./tests/run, which installs and starts it)"
    );
    eprintln!("skipping: {what} is missing (./tests/run installs and starts it)");
}

/// [`require_tool`] for several tools; true when all are present.
pub fn require_tools(names: &[&str]) -> bool {
    names.iter().all(|n| require_tool(n).is_some())
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push(venv_dir().join("bin"));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
