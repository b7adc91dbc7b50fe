//! Helpers for the crate's unit tests that call external tools (openssl, qpdf, poppler).
//!
//! The rule of the whole suite (the integration tests' `common::require_tool` is the same):
//! a test whose tool is missing prints why and skips locally, and fails under `CI=true`, where
//! `./tests/run` has installed every tool.

use std::path::Path;

/// True when the tests run in CI (`CI=true`): missing tools then fail instead of skipping.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether the executable `name` is on `PATH`. When it is not: panics under `CI=true`,
/// otherwise prints `skipping: NAME not installed` and returns false, so a test starts with
/// `if !require_tool("qpdf") { return; }`.
pub(crate) fn require_tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| is_executable(&dir.join(name))));
    if !found {
        assert!(
            !in_ci(),
            "required test tool `{name}` is not installed (CI=true: run ./tests/run, which installs it)"
        );
        eprintln!("skipping: {name} not installed (./tests/run installs it)");
    }
    found
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
