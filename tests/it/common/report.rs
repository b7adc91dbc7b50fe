//! Validation reports of `signgate verify`: the JSON schema and a runner.

use std::ffi::OsStr;
use std::process::Output;

use super::{repo_root, run, signgate};

/// Asserts `report` is valid against `schemas/validation-report.v1.schema.json`.
pub fn assert_report_matches_schema(report: &serde_json::Value) {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let path = repo_root().join("schemas/validation-report.v1.schema.json");
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read schema"))
                .expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("schema compiles")
    });
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "report violates the schema: {errors:?}\n{report:#}"
    );
}

/// Runs `signgate verify ARGS… --format json`; returns the exit code and the report (JSON
/// `null` when stdout is not JSON, e.g. exit 3), after checking the report against the schema.
pub fn verify_json<S: AsRef<OsStr>>(args: &[S]) -> (Option<i32>, serde_json::Value, Output) {
    let mut cmd = signgate(["verify", "--format", "json"]);
    cmd.args(args);
    let out = run(&mut cmd);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    if !report.is_null() {
        assert_report_matches_schema(&report);
    }
    (out.status.code(), report, out)
}
