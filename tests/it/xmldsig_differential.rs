//! Differential test: signgate's cryptographic verdict on XML signatures equals xmlsec1's
//! (Debian 1.2.37, libxml2 C14N) on a few hundred seeded mutations of each profile's sample.
//!
//! Each sample is signed by signgate (RSA, SHA-256), then mutated deterministically (a
//! xorshift PRNG, fixed seeds): namespace re-declarations with the same and a different URI,
//! a prefix declared only on the root, `xml:lang`/`xml:space` on any element, attribute
//! reordering, whitespace between elements and inside text, text replaced by an equivalent
//! and by a different CDATA section, comments, character references, changed digits. One to
//! three edits per mutant. For every mutant, signgate's verdict (`signatures[0].intact`, or
//! "refused" with an XML error code) must equal `xmlsec1 --verify` success; disagreements
//! print the mutant. signgate runs in-process (the library the CLI calls); xmlsec1 is one
//! process per file, on two threads. `SIGNGATE_DIFF_MUTATIONS` sets the count per file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const EDXML_NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";
const DEFAULT_MUTATIONS: usize = 200;

/// Reviewed disagreements that are xmlsec1 strictness, not signgate bugs: (marker in
/// xmlsec1's error output, why). They apply only where signgate says intact and xmlsec1
/// fails; any other disagreement fails the test.
///
/// Both are about `KeyInfo`, which the signature does not cover. xmlsec1 loads every
/// `X509Data` child into its key manager before it verifies and gives up when one cannot be
/// read; signgate takes the signer's key from the certificate that decodes and records the
/// unreadable part as a format error in the report (so the verdict is not TOTAL_PASSED),
/// while the cryptographic `intact` stays true, because digests and SignatureValue verify.
const ALLOWED: &[(&str, &str)] = &[
    (
        "xmlSecKeyValueX509XmlReadBase64Blob",
        "an X509Certificate other than the signer's does not decode (unsigned KeyInfo); xmlsec1 aborts key loading",
    ),
    (
        "xmlSecOpenSSLX509CertDerRead",
        "an X509Certificate other than the signer's is valid base64 but not DER (unsigned KeyInfo); xmlsec1 aborts key loading",
    ),
    (
        "xmlSecOpenSSLX509NameRead",
        "X509SubjectName text changed into a name OpenSSL cannot encode (unsigned KeyInfo); signgate identifies the key by X509Certificate and does not parse X509SubjectName",
    ),
];

fn demo(name: &str) -> PathBuf {
    repo_root().join("certs/demo").join(name)
}

struct Sample {
    profile: &'static str,
    file: &'static str,
    /// xmlsec1 `--id-attr:NAME ns:Element` pairs.
    id_attrs: Vec<(&'static str, String)>,
}

fn samples() -> Vec<Sample> {
    vec![
        Sample {
            profile: "tax",
            file: "tax.xml",
            id_attrs: vec![(
                "id",
                "http://kekhaithue.gdt.gov.vn/TKhaiThue:HSoKhaiThue".into(),
            )],
        },
        Sample {
            profile: "social-insurance",
            file: "social.xml",
            id_attrs: vec![],
        },
        Sample {
            profile: "e-invoice",
            file: "einvoice.xml",
            id_attrs: vec![("Id", "DLHDon".into())],
        },
        Sample {
            profile: "edxml",
            file: "edxml.xml",
            id_attrs: ["MessageHeader", "edXMLBody", "Attachment"]
                .iter()
                .map(|n| ("Id", format!("{EDXML_NS}:{n}")))
                .collect(),
        },
        Sample {
            profile: "enveloped",
            file: "generic.xml",
            id_attrs: vec![],
        },
    ]
}

// ---------------------------------------------------------------------------------------
// Deterministic mutations
// ---------------------------------------------------------------------------------------

/// xorshift64*: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }
}

const KINDS: &[&str] = &[
    "ns-same",
    "ns-different",
    "root-prefix",
    "xml-attr",
    "attr-reorder",
    "ws-between",
    "ws-in-text",
    "cdata-same",
    "cdata-different",
    "comment",
    "char-ref",
    "digit",
];

/// A start tag's attribute spans (byte ranges of `name="value"`) and where `>`/`/>` begins.
fn start_tag(text: &str, start: usize) -> (Vec<(usize, usize)>, usize) {
    let b = text.as_bytes();
    let mut i = start + 1;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'/' && b[i] != b'>' {
        i += 1;
    }
    let mut spans = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] == b'/' || b[i] == b'>' {
            return (spans, i);
        }
        let a = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        i += 1;
        while i < b.len() && b[i] != b'"' && b[i] != b'\'' {
            i += 1;
        }
        let Some(&quote) = b.get(i) else {
            return (spans, i);
        };
        i += 1;
        while i < b.len() && b[i] != quote {
            i += 1;
        }
        i += 1;
        spans.push((a, i));
    }
}

/// Text nodes whose source is plain characters (no markup, references or CDATA), so any
/// character boundary is a safe edit point; (range, is whitespace only).
fn plain_texts(text: &str, doc: &roxmltree::Document<'_>) -> Vec<(usize, usize, bool)> {
    doc.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| {
            let r = n.range();
            let src = text.get(r.clone())?;
            if src.is_empty() || src.contains('<') || src.contains('&') {
                return None;
            }
            Some((r.start, r.end, src.trim().is_empty()))
        })
        .collect()
}

fn char_boundary(text: &str, start: usize, end: usize, rng: &mut Rng) -> usize {
    let bounds: Vec<usize> = (start..=end)
        .filter(|i| text.is_char_boundary(*i))
        .collect();
    *rng.pick(&bounds).unwrap_or(&start)
}

/// Applies one mutation of `kind`; `None` when the document offers no place for it.
fn mutate(text: &str, kind: &str, rng: &mut Rng) -> Option<(String, String)> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let elements: Vec<_> = doc.descendants().filter(|n| n.is_element()).collect();
    let el = *rng.pick(&elements)?;
    let path = signgate::xml::parse::element_path(el);
    let (spans, tag_end) = start_tag(text, el.range().start);
    let declared = |name: &str| {
        spans
            .iter()
            .any(|(a, b)| text[*a..*b].split('=').next().map(str::trim) == Some(name))
    };
    let insert = |at: usize, what: &str| format!("{}{what}{}", &text[..at], &text[at..]);
    let replace = |a: usize, b: usize, what: &str| format!("{}{what}{}", &text[..a], &text[b..]);
    let in_scope: Vec<(String, String)> = el
        .namespaces()
        .filter(|n| n.name() != Some("xml"))
        .map(|n| (n.name().unwrap_or("").to_string(), n.uri().to_string()))
        .collect();
    let decl = |p: &str, u: &str| {
        if p.is_empty() {
            format!(" xmlns=\"{u}\"")
        } else {
            format!(" xmlns:{p}=\"{u}\"")
        }
    };
    let decl_name = |p: &str| {
        if p.is_empty() {
            "xmlns".to_string()
        } else {
            format!("xmlns:{p}")
        }
    };
    match kind {
        "ns-same" => {
            let mut options = in_scope.clone();
            if !in_scope.iter().any(|(p, _)| p.is_empty()) {
                options.push((String::new(), String::new()));
            }
            let (p, u) = rng.pick(&options)?.clone();
            if declared(&decl_name(&p)) {
                return None;
            }
            let d = decl(&p, &u);
            Some((insert(tag_end, &d), format!("{kind}: {d} on {path}")))
        }
        "ns-different" => {
            let mut options: Vec<String> = in_scope.iter().map(|(p, _)| p.clone()).collect();
            options.push(String::new());
            let p = rng.pick(&options)?.clone();
            if declared(&decl_name(&p)) {
                return None;
            }
            let d = decl(&p, &format!("urn:mutant:{}", rng.below(3)));
            Some((insert(tag_end, &d), format!("{kind}: {d} on {path}")))
        }
        "root-prefix" => {
            let root = doc.root_element();
            let (root_spans, end) = start_tag(text, root.range().start);
            let prefix = format!("xmlns:mx{}", rng.below(3));
            if root_spans
                .iter()
                .any(|(a, b)| text[*a..*b].starts_with(&format!("{prefix}=")))
            {
                return None;
            }
            let d = format!(" {prefix}=\"urn:mutant:root\"");
            Some((insert(end, &d), format!("{kind}: {d} on the root")))
        }
        "xml-attr" => {
            let options = [
                ("xml:lang", "vi"),
                ("xml:lang", ""),
                ("xml:space", "preserve"),
                ("xml:space", "default"),
            ];
            let (n, v) = *rng.pick(&options)?;
            if declared(n) {
                return None;
            }
            let a = format!(" {n}=\"{v}\"");
            Some((insert(tag_end, &a), format!("{kind}: {a} on {path}")))
        }
        "attr-reorder" => {
            if spans.len() < 2 {
                return None;
            }
            let mut order: Vec<usize> = (0..spans.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            if order.iter().enumerate().all(|(i, o)| i == *o) {
                order.reverse();
            }
            let joined: Vec<&str> = order
                .iter()
                .map(|o| &text[spans[*o].0..spans[*o].1])
                .collect();
            let a = spans[0].0;
            let b = spans[spans.len() - 1].1;
            Some((
                replace(a, b, &joined.join(" ")),
                format!("{kind}: on {path}"),
            ))
        }
        "ws-between" => {
            let ws = *rng.pick(&[" ", "\n", "\t", "\n    ", "\r\n"])?;
            let at = if rng.below(2) == 0 {
                el.range().end
            } else {
                if text.as_bytes().get(tag_end) != Some(&b'>') {
                    return None;
                }
                tag_end + 1
            };
            Some((
                insert(at, ws),
                format!("{kind}: {ws:?} at {at} near {path}"),
            ))
        }
        "ws-in-text" | "comment" | "char-ref" | "digit" | "cdata-same" | "cdata-different" => {
            let texts: Vec<_> = plain_texts(text, &doc)
                .into_iter()
                .filter(|t| !t.2 || kind == "comment" || kind == "ws-in-text")
                .collect();
            let (a, b, _) = *rng.pick(&texts)?;
            let src = &text[a..b];
            let where_ = format!("in text {:?} at {a}", truncate(src));
            match kind {
                "ws-in-text" => {
                    let at = char_boundary(text, a, b, rng);
                    let ws = *rng.pick(&[" ", "\n", "\t"])?;
                    Some((insert(at, ws), format!("{kind}: {ws:?} {where_}")))
                }
                "comment" => {
                    let at = if rng.below(3) == 0 {
                        el.range().start
                    } else {
                        char_boundary(text, a, b, rng)
                    };
                    Some((
                        insert(at, "<!-- mutant -->"),
                        format!("{kind}: at {at} ({where_} or before {path})"),
                    ))
                }
                "char-ref" => {
                    let positions: Vec<usize> = src
                        .char_indices()
                        .filter(|(_, c)| c.is_ascii_alphanumeric())
                        .map(|(i, _)| a + i)
                        .collect();
                    let at = *rng.pick(&positions)?;
                    let c = text.as_bytes()[at];
                    let r = if rng.below(2) == 0 {
                        format!("&#{c};")
                    } else {
                        format!("&#x{c:X};")
                    };
                    Some((replace(at, at + 1, &r), format!("{kind}: {r} {where_}")))
                }
                "digit" => {
                    let positions: Vec<usize> = src
                        .char_indices()
                        .filter(|(_, c)| c.is_ascii_digit())
                        .map(|(i, _)| a + i)
                        .collect();
                    let at = *rng.pick(&positions)?;
                    let old = text.as_bytes()[at] - b'0';
                    let new = (old + 1 + rng.below(9) as u8) % 10;
                    Some((
                        replace(at, at + 1, &new.to_string()),
                        format!("{kind}: {old}->{new} {where_}"),
                    ))
                }
                _ => {
                    if src.contains("]]>") {
                        return None;
                    }
                    let body = if kind == "cdata-same" {
                        src.to_string()
                    } else {
                        format!("{src}X")
                    };
                    Some((
                        replace(a, b, &format!("<![CDATA[{body}]]>")),
                        format!("{kind}: {where_}"),
                    ))
                }
            }
        }
        _ => None,
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(24).collect()
}

/// One to three mutations; deterministic in `seed`.
fn mutant(signed: &str, seed: u64) -> Option<(String, Vec<String>, &'static str)> {
    let mut rng = Rng::new(seed);
    let n = 1 + rng.below(3);
    let mut text = signed.to_string();
    let mut what = Vec::new();
    let mut first_kind = "";
    for _ in 0..n {
        for _attempt in 0..20 {
            let kind = *rng.pick(KINDS)?;
            if let Some((t, w)) = mutate(&text, kind, &mut rng) {
                if first_kind.is_empty() {
                    first_kind = kind;
                }
                text = t;
                what.push(w);
                break;
            }
        }
    }
    (text != signed).then_some((text, what, first_kind))
}

/// Fixed mutants on the signature's own text values, which signgate must read whole (as
/// libxml2's `xmlNodeGetContent` does): a comment splitting DigestValue, SignatureValue and
/// X509Certificate, and SignatureValue as CDATA.
fn fixed_mutants(signed: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for tag in [
        "DigestValue",
        "SignatureValue",
        "X509Certificate",
        "SigningTime",
    ] {
        let open = format!("<{tag}>");
        let Some(a) = signed.find(&open).map(|i| i + open.len()) else {
            continue;
        };
        let Some(len) = signed[a..].find('<') else {
            continue;
        };
        let mid = a + len / 2;
        out.push((
            format!("{}<!-- split -->{}", &signed[..mid], &signed[mid..]),
            format!("comment splitting {tag}"),
        ));
        out.push((
            format!(
                "{}<![CDATA[{}]]>{}",
                &signed[..a],
                &signed[a..a + len],
                &signed[a + len..]
            ),
            format!("{tag} as CDATA"),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------
// The two verdicts
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Intact(bool),
    Refused(String),
}

impl Verdict {
    fn crypto_ok(&self) -> bool {
        matches!(self, Verdict::Intact(true))
    }
}

fn signgate_verdict(input: &[u8], ctx: &signgate::verify::ValidationContext) -> Verdict {
    match signgate::verify::document(
        "mutant.xml",
        input,
        None,
        &signgate::verify::Policy::default(),
        ctx,
    ) {
        Ok(report) => {
            let v = serde_json::to_value(&report).expect("report serializes");
            Verdict::Intact(v["signatures"][0]["intact"] == true)
        }
        Err(e) => Verdict::Refused(e.code().as_str().to_string()),
    }
}

fn xmlsec1_ok(file: &Path, id_attrs: &[(&str, String)]) -> (bool, String) {
    let mut cmd = Command::new("xmlsec1");
    // --insecure: the certificate path is not checked (signgate's `intact` is crypto only;
    // the path is judged separately in the report), the key still comes from X509Data.
    cmd.arg("--verify")
        .arg("--insecure")
        .arg("--trusted-pem")
        .arg(demo("root-ca.pem"))
        .arg("--untrusted-pem")
        .arg(demo("issuing-ca.pem"));
    for (attr, node) in id_attrs {
        cmd.arg(format!("--id-attr:{attr}")).arg(node);
    }
    let o = cmd.arg(file).output().expect("run xmlsec1");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

struct Case {
    profile: &'static str,
    seed: u64,
    kind: &'static str,
    what: Vec<String>,
    file: PathBuf,
    id_attrs: Vec<(&'static str, String)>,
    signgate: Verdict,
}

#[test]
fn signgate_and_xmlsec1_agree_on_every_mutation() {
    let Some(_) = require_tool("xmlsec1") else {
        return;
    };
    let per_file: usize = std::env::var("SIGNGATE_DIFF_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MUTATIONS);
    let dir = tempdir();
    let ctx = signgate::verify::ValidationContext {
        at: time::OffsetDateTime::now_utc(),
        trust_lists: vec![
            signgate::verify::TrustList::load("default", &demo("root-ca.pem")).unwrap(),
        ],
        fetcher: None,
    };
    let mut cases = Vec::new();
    for sample in samples() {
        let signed_path = dir.path().join(format!("{}-signed.xml", sample.profile));
        let o = run(signgate(["sign", "--key"])
            .arg(demo("organization.p12"))
            .arg("--in")
            .arg(repo_root().join("tests/data/xml").join(sample.file))
            .arg("--out")
            .arg(&signed_path)
            .args(["--profile", sample.profile, "--digest", "sha256"])
            .env("SIGNGATE_KEY_PASSWORD", "demo"));
        assert_exit(&o, 0, "signgate sign");
        let signed = std::fs::read_to_string(&signed_path).unwrap();
        // The unmutated baseline: both say intact.
        assert_eq!(
            signgate_verdict(signed.as_bytes(), &ctx),
            Verdict::Intact(true),
            "{}",
            sample.profile
        );
        let (ok, err) = xmlsec1_ok(&signed_path, &sample.id_attrs);
        assert!(
            ok,
            "{}: xmlsec1 rejects the baseline: {err}",
            sample.profile
        );

        for (i, (text, what)) in fixed_mutants(&signed).into_iter().enumerate() {
            let file = dir.path().join(format!("{}-fixed-{i}.xml", sample.profile));
            std::fs::write(&file, &text).unwrap();
            cases.push(Case {
                profile: sample.profile,
                seed: 0,
                kind: "fixed",
                what: vec![what],
                file,
                id_attrs: sample.id_attrs.clone(),
                signgate: signgate_verdict(text.as_bytes(), &ctx),
            });
        }
        let mut seen = std::collections::HashSet::new();
        let mut seed = 0u64;
        let mut made = 0;
        while made < per_file && seed < per_file as u64 * 4 {
            seed += 1;
            let Some((text, what, kind)) = mutant(&signed, seed ^ 0x5167_6761_7465) else {
                continue;
            };
            if !seen.insert(text.clone()) {
                continue;
            }
            let file = dir.path().join(format!("{}-{seed:04}.xml", sample.profile));
            std::fs::write(&file, &text).unwrap();
            cases.push(Case {
                profile: sample.profile,
                seed,
                kind,
                what,
                file,
                id_attrs: sample.id_attrs.clone(),
                signgate: signgate_verdict(text.as_bytes(), &ctx),
            });
            made += 1;
        }
        assert!(
            made >= per_file * 9 / 10,
            "{}: only {made} distinct mutants",
            sample.profile
        );
    }

    // xmlsec1: one process per file, two threads.
    let results: Vec<(bool, String)> = std::thread::scope(|s| {
        let halves: Vec<_> = cases
            .chunks(cases.len().div_ceil(2).max(1))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|c| xmlsec1_ok(&c.file, &c.id_attrs))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().expect("xmlsec1 worker"))
            .collect()
    });

    let mut kinds = std::collections::BTreeMap::new();
    for c in &cases {
        *kinds.entry(c.kind).or_insert(0) += 1;
    }
    eprintln!("mutants by first mutation kind: {kinds:?}");
    let mut failures = Vec::new();
    let mut allowed = 0;
    let (mut both_ok, mut both_fail, mut refused) = (0, 0, 0);
    for (c, (x_ok, x_err)) in cases.iter().zip(&results) {
        if let Verdict::Refused(code) = &c.signgate {
            refused += 1;
            eprintln!(
                "refused by signgate ({code}), xmlsec1 ok={x_ok}: {} seed {} {:?}",
                c.profile, c.seed, c.what
            );
        }
        if c.signgate.crypto_ok() == *x_ok {
            if *x_ok {
                both_ok += 1;
            } else {
                both_fail += 1;
            }
            continue;
        }
        let allowed_here = c.signgate == Verdict::Intact(true) && !*x_ok;
        if let Some((_, why)) = ALLOWED
            .iter()
            .find(|(marker, _)| allowed_here && x_err.contains(marker))
        {
            eprintln!(
                "allowed disagreement ({why}): {} seed {}",
                c.profile, c.seed
            );
            allowed += 1;
            continue;
        }
        let text = std::fs::read_to_string(&c.file).unwrap_or_default();
        failures.push(format!(
            "{} seed {}: signgate {:?}, xmlsec1 {}\n  mutations: {:?}\n  xmlsec1: {}\n  document:\n{}",
            c.profile,
            c.seed,
            c.signgate,
            if *x_ok { "OK" } else { "FAIL" },
            c.what,
            x_err.lines().filter(|l| !l.is_empty()).take(3).collect::<Vec<_>>().join(" | "),
            text
        ));
    }
    for f in &failures {
        eprintln!(
            "DISAGREE {}",
            f.lines().take(3).collect::<Vec<_>>().join(" ## ")
        );
    }
    eprintln!(
        "differential: {} mutants, {both_ok} intact by both, {both_fail} broken by both ({refused} refused by signgate), {allowed} allowed, {} disagreements",
        cases.len(),
        failures.len()
    );
    // Both outcomes must occur, or the mutations test nothing.
    assert!(both_ok > 0 && both_fail > 0, "mutations are one-sided");
    assert!(
        failures.is_empty(),
        "{} disagreements with xmlsec1:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
