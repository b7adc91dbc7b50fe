//! pyHanko (pinned in `tests/requirements.txt`, in the venv `./tests/run` makes) as an oracle
//! and as an independent signer.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use super::{repo_root, require_tool, run, run_ok, stderr_str, stdout_str};

/// One signature as judged by pyHanko (see `tests/support/pyhanko_validate.py`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PyhankoSignature {
    /// Signature field name.
    pub field: Option<String>,
    /// `signature`, `document_timestamp`, or `error` (validation raised; see `error`).
    pub kind: String,
    /// Digest matches and the signature value verifies.
    pub intact: bool,
    /// Cryptographically valid.
    pub valid: bool,
    /// Chains to a given trust root (and revocation ok per the mode).
    pub trusted: bool,
    /// pyHanko's overall verdict.
    pub bottom_line: bool,
    /// `ENTIRE_FILE`, `ENTIRE_REVISION`, `CONTIGUOUS_BLOCK_FROM_START`, `UNCLEAR`.
    pub coverage: Option<String>,
    /// `NONE`, `LTA_UPDATES`, `FORM_FILLING`, `ANNOTATIONS`, `OTHER`.
    pub modification_level: Option<String>,
    /// Changes are allowed by the DocMDP/FieldMDP policy.
    pub docmdp_ok: Option<bool>,
    /// DocMDP level of a certification signature (`NO_CHANGES`, `FILL_FORMS`, `ANNOTATE`).
    pub docmdp_level: Option<String>,
    /// Signature time-stamp (or the document time-stamp itself) intact and valid; `None` if absent.
    pub timestamp_valid: Option<bool>,
    /// Time-stamp's TSA chains to a trust root.
    pub timestamp_trusted: Option<bool>,
    /// Time-stamp genTime (ISO 8601).
    pub timestamp_time: Option<String>,
    /// Signer certificate subject, human-readable.
    pub signer_subject: Option<String>,
    /// Digest algorithm, e.g. `sha256`.
    pub md_algorithm: Option<String>,
    /// Signature mechanism, e.g. `sha256_rsa`, `ecdsa`.
    pub mechanism: Option<String>,
    /// Signer-reported signing time.
    pub signing_time: Option<String>,
    /// Trust problem indication (e.g. `NO_CERTIFICATE_CHAIN_FOUND`, `REVOKED`).
    pub trust_problem: Option<String>,
    /// pyHanko's one-line summary, e.g. `INTACT:TRUSTED,UNTOUCHED`.
    pub summary: Option<String>,
    /// pyHanko's pretty-printed details (for assertion messages).
    pub details: Option<String>,
    /// Exception text when validation raised.
    pub error: Option<String>,
}

/// Parsed output of `pyhanko_validate.py`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PyhankoReport {
    /// Signatures and document time-stamps in file order.
    pub signatures: Vec<PyhankoSignature>,
    /// Raw JSON + stderr (not from JSON), for assertion messages.
    #[serde(skip)]
    pub raw: String,
}

/// Python interpreter of the test venv (panics in CI / `None` locally when pyHanko is missing).
pub fn pyhanko_python() -> Option<PathBuf> {
    let pyhanko = require_tool("pyhanko")?;
    let py = pyhanko.parent().expect("bin dir").join("python");
    Some(if py.exists() {
        py
    } else {
        PathBuf::from("python3")
    })
}

/// Validates all signatures of `pdf` with pyHanko trusting `root_pem`, no fetching,
/// soft-fail revocation. Panics if pyHanko can't read the file (use
/// [`pyhanko_validate_args`] and check `Err` for bad-input cases).
pub fn pyhanko_validate(pdf: &Path, root_pem: &Path) -> PyhankoReport {
    let root = root_pem.to_str().expect("utf-8 path");
    pyhanko_validate_args(pdf, &["--trust", root]).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `pyhanko_validate.py PDF ARGS...` (see the script for options, e.g.
/// `--allow-fetching`, `--revocation-mode hard-fail`, `--validation-time`, `--no-strict`).
/// `Err(stderr)` when pyHanko could not read the file.
pub fn pyhanko_validate_args(pdf: &Path, args: &[&str]) -> Result<PyhankoReport, String> {
    let py = pyhanko_python().expect("pyhanko is not installed (run ./tests/run)");
    let script = repo_root().join("tests/support/pyhanko_validate.py");
    let out = run(Command::new(py).arg(script).arg(pdf).args(args));
    if out.status.code() != Some(0) {
        return Err(format!(
            "pyhanko_validate {} failed: {}",
            pdf.display(),
            stderr_str(&out)
        ));
    }
    let mut report: PyhankoReport = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON from pyhanko_validate.py ({e}): {}",
            stdout_str(&out)
        )
    });
    report.raw = format!("{}{}", stdout_str(&out), stderr_str(&out));
    Ok(report)
}

/// Signs `input` with pyHanko (`pyhanko sign addsig --field FIELD pemder --no-pass`), to make
/// reference PDFs signed by an independent implementation. `extra` goes before `pemder`
/// (e.g. `["--use-pades", "--timestamp-url", url]`).
pub fn pyhanko_sign(
    input: &Path,
    output: &Path,
    key: &Path,
    cert: &Path,
    chain: &[&Path],
    field: &str,
    extra: &[&str],
) {
    let pyhanko = require_tool("pyhanko").expect("pyhanko is not installed (run ./tests/run)");
    let mut cmd = Command::new(pyhanko);
    cmd.args(["sign", "addsig", "--field", field])
        .args(extra)
        .arg("pemder");
    cmd.arg("--key")
        .arg(key)
        .arg("--cert")
        .arg(cert)
        .arg("--no-pass");
    for c in chain {
        cmd.arg("--chain").arg(c);
    }
    cmd.arg(input).arg(output);
    run_ok(&mut cmd);
}
