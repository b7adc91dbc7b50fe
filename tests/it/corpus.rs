//! The development corpus `../shared/corpus` (third-party signed documents with independent
//! verdicts in `manifest.tsv`): signgate's verifier runs over every row, in parallel, through
//! the library, and must agree with the row's `expect_intact`:
//!
//! - `yes`: a report, every signature in it intact, and none TOTAL_FAILED unless the row is
//!   tagged `modified-after-signing` (an intact signature failed by the revision analysis is
//!   the false positive of the class 8);
//! - `no`: never TOTAL_PASSED (a refusal is fine);
//! - `mixed`: at least one intact signature, and at least one signature that is not intact
//!   or TOTAL_FAILED, or a signature time-stamp whose bytes do not check out (HASH_FAILURE /
//!   SIG_CRYPTO_FAILURE);
//! - `unknown`: any verdict or refusal, without a panic, within [`TIME_LIMIT`].
//!
//! A disagreement passes only when `tests/data/corpus-allowlist.tsv` lists the path with a
//! one-line reason; a `yes` row of the failure classes 1–10 may never be listed, and
//! a listed row that agrees is reported as stale. The test prints the agreement per class.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use signgate::verify::{self, Policy, TrustList, ValidationContext};

/// The longest one file may take (debug build, two shared cores).
const TIME_LIMIT: Duration = Duration::from_secs(30);

/// One manifest row.
#[derive(Debug, Clone)]
struct Row {
    path: String,
    kind: String,
    expect: String,
    features: Vec<String>,
    content: Option<String>,
    note: String,
}

/// What signgate said about one row, reduced to what the rules need.
#[derive(Debug)]
struct Outcome {
    /// `Ok(report JSON)` or `Err(error code and message)`.
    result: Result<Value, String>,
    elapsed: Duration,
}

/// `../shared/corpus` (a test without it fails under CI=true, else is skipped).
pub(crate) fn corpus_dir() -> Option<PathBuf> {
    let dir = crate::common::repo_root().join("../shared/corpus");
    crate::common::require_file(&dir.join("manifest.tsv"), "the corpus ../shared/corpus")
        .then_some(dir)
}

fn read_manifest(dir: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(dir.join("manifest.tsv")).expect("read manifest.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("manifest has no {name} column"))
    };
    let (path, kind, expect, features, content, note) = (
        col("path"),
        col("kind"),
        col("expect_intact"),
        col("features"),
        col("content"),
        col("note"),
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let get = |i: usize| f.get(i).copied().unwrap_or("").to_string();
            Row {
                path: get(path),
                kind: get(kind),
                expect: get(expect),
                features: get(features)
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                content: Some(get(content)).filter(|c| !c.is_empty() && c != "-"),
                note: get(note),
            }
        })
        .collect()
}

/// The certificates under `trust/` that the row's note names (the README: "A few files need
/// a key or certificate from `trust/`"); keys and HMAC secrets are not trust anchors.
fn trust_for(dir: &Path, row: &Row) -> Vec<TrustList> {
    let mut lists = Vec::new();
    for (i, _) in row.note.match_indices("trust/") {
        let name: String = row.note[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "/._-".contains(*c))
            .collect();
        let name = name.trim_end_matches('.');
        if let Ok(list) = TrustList::load("corpus", &dir.join(name)) {
            lists.push(list);
        }
    }
    lists
}

fn verify_row(dir: &Path, row: &Row) -> Outcome {
    let started = Instant::now();
    let input = match std::fs::read(dir.join(&row.path)) {
        Ok(b) => b,
        Err(e) => {
            return Outcome {
                result: Err(format!("unreadable: {e}")),
                elapsed: started.elapsed(),
            }
        }
    };
    let content = row
        .content
        .as_ref()
        .map(|c| std::fs::read(dir.join(c)).expect("detached content is in the corpus"));
    let ctx = ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: trust_for(dir, row),
        fetcher: None,
    };
    let result = verify::document(
        &row.path,
        &input,
        content.as_deref(),
        &Policy::default(),
        &ctx,
    )
    .map(|r| serde_json::to_value(&r).expect("report serialises"))
    .map_err(|e| format!("{}: {e}", e.code().as_str()));
    Outcome {
        result,
        elapsed: started.elapsed(),
    }
}

/// Whether a signature entry's bytes failed (as opposed to trust or policy).
fn bytes_failed(sig: &Value) -> bool {
    sig["intact"] == Value::Bool(false)
}

/// Whether a signature's own time-stamp failed on its bytes.
fn timestamp_bytes_failed(sig: &Value) -> bool {
    matches!(
        sig["timestamp"]["sub_indication"].as_str(),
        Some("HASH_FAILURE" | "SIG_CRYPTO_FAILURE")
    )
}

/// The rule of the module doc; `Err` says why the row disagrees.
fn judge(row: &Row, outcome: &Outcome) -> Result<(), String> {
    if outcome.elapsed > TIME_LIMIT {
        return Err(format!("took {:?}", outcome.elapsed));
    }
    match (row.expect.as_str(), &outcome.result) {
        ("unknown", _) => Ok(()),
        ("no", Ok(report)) if report["indication"] == "TOTAL_PASSED" => {
            Err("TOTAL_PASSED on a known-bad file".into())
        }
        ("no", _) => Ok(()),
        // Issue 14, class 9: an HMAC signature has no signer, so it is never TOTAL_PASSED and is
        // reported as not verifiable (INDETERMINATE), whatever a keyed oracle said of its bytes.
        ("yes", Ok(report)) if row.features.iter().any(|f| f == "hmac") => {
            match report["indication"].as_str() {
                Some("INDETERMINATE") => Ok(()),
                other => Err(format!(
                    "an HMAC signature must be INDETERMINATE, got {other:?}"
                )),
            }
        }
        ("yes", Err(e)) => Err(format!("refused: {e}")),
        ("yes", Ok(report)) => {
            let sigs = report["signatures"].as_array().cloned().unwrap_or_default();
            let broken: Vec<String> = sigs
                .iter()
                .filter(|s| bytes_failed(s))
                .map(|s| {
                    format!(
                        "{} {} {}",
                        s["id"],
                        s["sub_indication"],
                        s["notes"].as_array().map(|n| n.len()).unwrap_or(0)
                    )
                })
                .collect();
            let modified = row.features.iter().any(|f| f == "modified-after-signing");
            let failed: Vec<String> = sigs
                .iter()
                .filter(|s| s["indication"] == "TOTAL_FAILED" && !modified)
                .map(|s| format!("{} {}", s["id"], s["changes"]))
                .collect();
            if sigs.is_empty() {
                Err("no signature reported".into())
            } else if !broken.is_empty() {
                Err(format!("not intact: {}", broken.join("; ")))
            } else if !failed.is_empty() {
                Err(format!("intact but TOTAL_FAILED: {}", failed.join("; ")))
            } else {
                Ok(())
            }
        }
        ("mixed", Err(e)) => Err(format!("refused: {e}")),
        ("mixed", Ok(report)) => {
            let sigs = report["signatures"].as_array().cloned().unwrap_or_default();
            let intact = sigs.iter().any(|s| !bytes_failed(s));
            let failed = sigs.iter().any(|s| {
                bytes_failed(s) || timestamp_bytes_failed(s) || s["indication"] == "TOTAL_FAILED"
            });
            match (intact, failed) {
                (true, true) => Ok(()),
                (false, _) => Err("no intact signature".into()),
                (true, false) => Err("no signature or time-stamp reported as altered".into()),
            }
        }
        (other, _) => Err(format!("unknown expect_intact value {other}")),
    }
}

/// The failure classes, 1 to 10.
const CLASS_NAMES: [&str; 10] = [
    "BER, signed attributes",
    "intact vs trust",
    "time-stamp tokens",
    "no signed attributes",
    "algorithms",
    "PDF sub-filters",
    "encrypted PDFs",
    "revision analysis",
    "XML-DSig variants",
    "counter-signatures",
];

/// The failure classes a row belongs to, from its features and kind.
fn classes(row: &Row) -> Vec<u8> {
    let has = |f: &[&str]| row.features.iter().any(|x| f.contains(&x.as_str()));
    let mut out = Vec::new();
    let table: [(u8, &[&str]); 9] = [
        (1, &["ber", "non-der-signed-attrs"]),
        (2, &["timestamp", "doc-timestamp", "timestamp-cert-missing"]),
        (
            3,
            &["timestamp", "archive-timestamp", "duplicated-timestamp"],
        ),
        (4, &["no-signed-attrs"]),
        (5, &["ecdsa", "pss", "sha3", "eddsa", "dsa"]),
        (
            6,
            &[
                "pkcs7-sha1",
                "pkcs7-detached",
                "pbad-subfilter",
                "adbe-revocation",
            ],
        ),
        (7, &["encrypted", "pubkey-encryption"]),
        (
            8,
            &[
                "incremental",
                "certification",
                "fieldmdp",
                "shared-signature-dict",
            ],
        ),
        (10, &["counter-signature"]),
    ];
    for (class, features) in table {
        if has(features) {
            out.push(class);
        }
    }
    if row.kind == "xml" {
        out.push(9);
    }
    out.sort_unstable();
    out
}

/// `tests/data/corpus-allowlist.tsv`: path TAB reason.
fn allow_list() -> BTreeMap<String, String> {
    let path = crate::common::repo_root().join("tests/data/corpus-allowlist.tsv");
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (p, reason) = l.split_once('\t').unwrap_or((l, ""));
            assert!(
                !reason.trim().is_empty(),
                "allow-list entry {p} has no reason"
            );
            (p.to_string(), reason.to_string())
        })
        .collect()
}

/// Runs every row on all cores; results in manifest order.
fn run_all(dir: &Path, rows: &[Row]) -> Vec<Outcome> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(row) = rows.get(i) else { break };
                let outcome =
                    std::panic::catch_unwind(|| verify_row(dir, row)).unwrap_or_else(|_| Outcome {
                        result: Err("PANIC".into()),
                        elapsed: Duration::ZERO,
                    });
                if tx.send((i, outcome)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
    });
    let mut outcomes: Vec<Option<Outcome>> = rows.iter().map(|_| None).collect();
    for (i, o) in rx {
        outcomes[i] = Some(o);
    }
    outcomes
        .into_iter()
        .map(|o| o.expect("every row ran"))
        .collect()
}

fn summary(report: &Result<Value, String>) -> String {
    match report {
        Err(e) => format!("error {e}"),
        Ok(r) => {
            let sigs: Vec<String> = r["signatures"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    format!(
                        "{}{}{}",
                        if s["intact"] == true { "I" } else { "X" },
                        s["indication"].as_str().map(|i| &i[..1]).unwrap_or("?"),
                        s["sub_indication"]
                            .as_str()
                            .map(|x| format!("/{x}"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            format!(
                "{} [{}]",
                r["indication"].as_str().unwrap_or("?"),
                sigs.join(" ")
            )
        }
    }
}

#[test]
fn corpus_verdicts_agree_with_the_independent_oracles() {
    let Some(dir) = corpus_dir() else { return };
    let rows = read_manifest(&dir);
    assert!(rows.len() > 100, "manifest has only {} rows", rows.len());
    let allowed = allow_list();
    let outcomes = run_all(&dir, &rows);

    let mut failures = Vec::new();
    let mut per_class: BTreeMap<u8, (usize, usize)> = BTreeMap::new();
    let mut decided = (0usize, 0usize);
    let mut per_expect: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (row, outcome) in rows.iter().zip(&outcomes) {
        let verdict = judge(row, outcome);
        let agrees = verdict.is_ok();
        println!(
            "{}\t{}\t{:?}\t{}\t{}",
            if agrees { "agree" } else { "DISAGREE" },
            row.expect,
            classes(row),
            row.path,
            summary(&outcome.result)
        );
        let e = per_expect.entry(row.expect.clone()).or_default();
        e.0 += agrees as usize;
        e.1 += 1;
        if row.expect == "yes" || row.expect == "no" {
            decided.0 += agrees as usize;
            decided.1 += 1;
            for c in classes(row) {
                let e = per_class.entry(c).or_default();
                e.0 += agrees as usize;
                e.1 += 1;
            }
        }
        match (verdict, allowed.get(&row.path)) {
            (Ok(()), Some(_)) => failures.push(format!(
                "{}: agrees now; remove it from the allow-list",
                row.path
            )),
            (Err(why), None) => failures.push(format!("{}: {why}", row.path)),
            (Err(_), Some(_)) if row.expect == "yes" && !classes(row).is_empty() => {
                failures.push(format!(
                    "{}: a `yes` row of classes {:?} may not be allow-listed",
                    row.path,
                    classes(row)
                ))
            }
            _ => {}
        }
    }
    println!(
        "decided rows (yes/no) agreeing: {} of {}",
        decided.0, decided.1
    );
    for (expect, (a, n)) in &per_expect {
        println!("expect_intact={expect}: {a} of {n} agree");
    }
    for (class, (a, n)) in &per_class {
        println!("class {class}: {a} of {n} decided rows agree");
    }
    // The table the README's "Signatures made by other tools" section shows.
    let mut table = format!(
        "| decided rows agreeing | {} of {} |\n",
        decided.0, decided.1
    );
    for (class, (a, n)) in &per_class {
        table.push_str(&format!(
            "| class {class} ({}) | {a} of {n} |\n",
            CLASS_NAMES[*class as usize - 1]
        ));
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("corpus-agreement.md");
    std::fs::write(&out, &table).expect("write the agreement table");
    println!("agreement table: {}", out.display());
    assert!(
        failures.is_empty(),
        "{} corpus rows disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The signed bytes of `row` with one byte flipped, and the content to verify with; `None`
/// when the row offers no place to flip that keeps the file readable.
fn flipped(dir: &Path, row: &Row) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let mut input = std::fs::read(dir.join(&row.path)).ok()?;
    let content = row
        .content
        .as_ref()
        .and_then(|c| std::fs::read(dir.join(c)).ok());
    match row.kind.as_str() {
        "pdf" => {
            // Inside the binary comment on the second line (ISO 32000 §7.5.2): covered by
            // every signature's first byte range, ignored by parsers.
            let eol = input
                .iter()
                .take(32)
                .position(|b| *b == b'\n' || *b == b'\r')?;
            let start = eol
                + input[eol..]
                    .iter()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
            if input.get(start) != Some(&b'%') || input.get(start + 1)? & 0x80 == 0 {
                return None;
            }
            input[start + 1] ^= 0x01;
            Some((input, content))
        }
        "cms" => match content {
            Some(mut c) if !c.is_empty() => {
                let mid = c.len() / 2;
                c[mid] ^= 0x01;
                Some((input, Some(c)))
            }
            _ => {
                let econtent = signgate::cms::parse_signed_data(&input).ok()?.econtent?;
                let probe = econtent.get(econtent.len() / 2..econtent.len() / 2 + 16)?;
                let at = input.windows(16).position(|w| w == probe)?;
                input[at + 8] ^= 0x01;
                Some((input, None))
            }
        },
        _ => None,
    }
}

#[test]
fn corpus_files_with_a_flipped_signed_byte_are_never_intact() {
    let Some(dir) = corpus_dir() else { return };
    let rows: Vec<Row> = read_manifest(&dir)
        .into_iter()
        .filter(|r| r.expect == "yes" && r.kind != "xml")
        .collect();
    let mut checked = 0;
    let mut problems = Vec::new();
    for row in &rows {
        let Some((input, content)) = flipped(&dir, row) else {
            continue;
        };
        checked += 1;
        let ctx = ValidationContext {
            at: time::OffsetDateTime::now_utc(),
            trust_lists: trust_for(&dir, row),
            fetcher: None,
        };
        let Ok(report) = verify::document(
            &row.path,
            &input,
            content.as_deref(),
            &Policy::default(),
            &ctx,
        ) else {
            continue; // Refused outright: not passed either.
        };
        let report = serde_json::to_value(&report).unwrap();
        let still_intact: Vec<String> = report["signatures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["kind"] != "counter_signature" && s["intact"] == true)
            .map(|s| s["id"].to_string())
            .collect();
        if !still_intact.is_empty() || report["indication"] != "TOTAL_FAILED" {
            problems.push(format!("{}: {}", row.path, summary(&Ok(report))));
        }
    }
    println!("flipped a signed byte in {checked} of {} rows", rows.len());
    assert!(checked >= 40, "only {checked} rows could be altered");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn xpath_filter2_covers_exactly_what_its_filters_keep() {
    let Some(dir) = corpus_dir() else { return };
    // The Filter 2.0 specification's example: ToBeSigned minus NotToBeSigned plus
    // ReallyToBeSigned (Baltimore's interop vector, verified by xmlsec1).
    let input = std::fs::read(dir.join("xml/xmlsec-merlin-xpath-filter2-sign-spec.xml")).unwrap();
    let text = String::from_utf8(input).unwrap();
    let verdict = |xml: &str| {
        let ctx = ValidationContext {
            at: time::OffsetDateTime::now_utc(),
            trust_lists: Vec::new(),
            fetcher: None,
        };
        let report =
            verify::document("f2.xml", xml.as_bytes(), None, &Policy::default(), &ctx).unwrap();
        serde_json::to_value(report).unwrap()["signatures"][0]["intact"] == true
    };
    assert!(verdict(&text), "the vector as published is intact");
    // A byte flipped in a kept element (the first <Data />, under ToBeSigned).
    assert!(!verdict(&text.replacen("<Data />", "<Dbta />", 1)));
    // In the re-included ReallyToBeSigned, inside the subtracted NotToBeSigned.
    let really = text.find("<ReallyToBeSigned>").unwrap();
    let mut changed = text.clone();
    changed.replace_range(
        really..really + 80,
        &text[really..really + 80].replacen("<Data />", "<Dbta />", 1),
    );
    assert!(!verdict(&changed));
    // Inside the second NotToBeSigned: not covered, still intact.
    let second = text.rfind("<NotToBeSigned>").unwrap();
    let mut outside = text.clone();
    outside.replace_range(
        second..second + 40,
        &text[second..second + 40].replacen("<Data />", "<Dbta />", 1),
    );
    assert!(verdict(&outside));
}

#[test]
fn relationship_transform_covers_only_the_selected_relationships() {
    let Some(dir) = corpus_dir() else { return };
    // xmlsec's OPC vector: the signature selects rId1 of a detached .rels part.
    let signature =
        std::fs::read(dir.join("xml/xmlsec-enveloping-sha256-rsa-sha256-relationship.xml"))
            .unwrap();
    let rels = std::fs::read_to_string(dir.join("xml/relationship/xml-base-input.xml")).unwrap();
    let intact = |content: &str| {
        let ctx = ValidationContext {
            at: time::OffsetDateTime::now_utc(),
            trust_lists: Vec::new(),
            fetcher: None,
        };
        let report = verify::document(
            "rels.xml",
            &signature,
            Some(content.as_bytes()),
            &Policy::default(),
            &ctx,
        )
        .unwrap();
        serde_json::to_value(report).unwrap()["signatures"][0]["intact"] == true
    };
    assert!(intact(&rels));
    // The selected relationship's target changed: not intact.
    assert!(!intact(
        &rels.replace("word/document.xml", "word/documenu.xml")
    ));
    // Another relationship changed: still intact (not covered).
    assert!(intact(
        &rels.replace("docProps/app.xml", "docProps/apq.xml")
    ));
}
