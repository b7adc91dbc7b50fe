//! Every fuzz target's function (`fuzz/src/lib.rs`) over its committed seeds in
//! `fuzz/seeds/TARGET/` and the regression inputs in `fuzz/regressions/TARGET/`, with the stable
//! toolchain: what CI runs in place of cargo-fuzz (SECURITY.md, "Fuzzing"). A panic is a
//! finding.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod bodies;

use std::path::Path;

use crate::common::repo_root;

/// The inputs of `target` under `fuzz/seeds` and `fuzz/regressions`.
fn inputs(target: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for folder in ["seeds", "regressions"] {
        let dir = repo_root().join("fuzz").join(folder).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        found.extend(entries.map(|e| e.expect("directory entry").path()));
    }
    found.sort();
    found
}

fn run(target: &str) {
    let inputs = inputs(target);
    assert!(
        !inputs.is_empty(),
        "no seeds for {target} in fuzz/seeds/{target}/"
    );
    for path in &inputs {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bodies::run(target, &data), "unknown target {target}");
        // Truncations and a flipped byte: cheap variations of each seed.
        for cut in [data.len() / 2, data.len().saturating_sub(1)] {
            bodies::run(target, &data[..cut]);
        }
        let mut flipped = data.clone();
        if let Some(b) = flipped.get_mut(data.len() / 3) {
            *b ^= 0x5a;
        }
        bodies::run(target, &flipped);
    }
}

#[test]
fn every_target_has_seeds_and_a_cargo_fuzz_binary() {
    let manifest = std::fs::read_to_string(repo_root().join("fuzz/Cargo.toml")).unwrap();
    for target in bodies::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no [[bin]] {target}"
        );
        assert!(
            Path::new(&repo_root().join(format!("fuzz/fuzz_targets/{target}.rs"))).is_file(),
            "fuzz/fuzz_targets/{target}.rs is missing"
        );
        assert!(!inputs(target).is_empty(), "no seeds for {target}");
    }
}

#[test]
fn pdf_verify_seeds() {
    run("pdf_verify");
}

#[test]
fn pdf_prepare_seeds() {
    run("pdf_prepare");
}

#[test]
fn cms_tsp_seeds() {
    run("cms_tsp");
}

#[test]
fn x509_revocation_seeds() {
    run("x509_revocation");
}

#[test]
fn revocation_signed_seeds() {
    run("revocation_signed");
}

#[test]
fn xml_c14n_seeds() {
    run("xml_c14n");
}

#[test]
fn edxml_zip_seeds() {
    run("edxml_zip");
}

#[test]
fn http_api_seeds() {
    run("http_api");
}

#[test]
fn revocation_signed_reaches_past_the_signature_check() {
    use signgate::verify::revocation::Status;
    let seed = |name: &str| {
        std::fs::read(repo_root().join("fuzz/seeds/revocation_signed").join(name)).unwrap()
    };
    // The re-signed OCSP response and CRL are accepted: their status decides (good).
    assert_eq!(
        bodies::revocation_signed_status(&seed("demo-good.ocsp")),
        Some(Status::Good)
    );
    assert_eq!(
        bodies::revocation_signed_status(&seed("pkits-trust-anchor.crl")),
        Some(Status::Good)
    );
    assert_eq!(bodies::revocation_signed_status(b"not DER"), None);
}
