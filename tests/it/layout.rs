//! The layout of the integration tests stays what `main.rs` promises: one test binary whose
//! modules are every file of `tests/it/`, and no test that changes the shared process.

use std::path::{Path, PathBuf};

use crate::common::repo_root;

/// The `.rs` files directly in `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files
}

/// A file in `tests/it/` that `main.rs` does not declare is never compiled, so its tests would
/// silently not run; a file directly in `tests/` is a test binary of its own, linked again.
#[test]
fn every_test_file_is_a_module_of_the_one_binary() {
    let it = repo_root().join("tests/it");
    let main = std::fs::read_to_string(it.join("main.rs")).expect("read tests/it/main.rs");
    let declared: Vec<&str> = main
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let mut modules: Vec<String> = rust_files(&it)
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .filter(|m| m != "main")
        .collect();
    modules.push("common".into());
    let undeclared: Vec<&String> = modules
        .iter()
        .filter(|m| !declared.contains(&m.as_str()))
        .collect();
    assert!(
        undeclared.is_empty(),
        "add `mod NAME;` to tests/it/main.rs for {undeclared:?}"
    );
    let separate = rust_files(&repo_root().join("tests"));
    assert!(
        separate.is_empty(),
        "move {separate:?} into tests/it/ as modules of the one test binary"
    );
}

/// All tests share one process and run on parallel threads: none may change the environment
/// or the working directory (a child `Command` takes `.env(..)`/`.current_dir(..)`; a test
/// that needs its own environment runs through `common::run_in_child`).
#[test]
fn no_test_changes_the_shared_process() {
    let it = repo_root().join("tests/it");
    let forbidden = [
        concat!("set_", "var("),
        concat!("remove_", "var("),
        concat!("set_current_", "dir("),
    ];
    let mut files = rust_files(&it);
    files.extend(rust_files(&it.join("common")));
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read a test file");
        for (n, line) in text.lines().enumerate() {
            if forbidden.iter().any(|f| line.contains(f)) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
