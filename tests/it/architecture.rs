//! The module layout as a test: reads every `crate::`/`super::` path in `src/` (comments and
//! string literals stripped), builds the graph between top-level modules and checks
//!
//! - that it has no cycle (each one is printed with a file per arrow);
//! - that arrows point down the layers documented in `src/lib.rs` (base, infrastructure,
//!   domain, use cases, application, adapters), sideways inside a layer at most;
//! - that the adapters (`cli`, `api`, `console`) never use `store` and start no task or
//!   thread of their own (`tokio::spawn`, `std::thread::spawn`, `spawn_blocking`, …): they
//!   parse, call the application layer and render. Blocking work goes through
//!   `crate::blocking::run`, called by the layer below.
//!
//! Only `std`: the analysis is small enough to read, and its own tests below show it finds
//! cycles, upward arrows and spawns in code written for the purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use modules of its own layer (no cycle) or of a
/// lower one. Modules listed that do not exist yet are skipped; a module that exists and is
/// not listed fails [`every_module_has_a_layer`].
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &["code", "clock", "ids", "blocking", "test_support"],
    ),
    ("infrastructure", &["pki", "fsio", "keys", "tls", "store"]),
    (
        "domain",
        &[
            "cms",
            "pdf",
            "xml",
            "verify",
            "tsa",
            "publish",
            "edxml",
            "directory",
        ],
    ),
    (
        "use cases",
        &["sign", "extend", "batch", "routing", "error"],
    ),
    ("application", &["gateway", "config"]),
    ("adapters", &["cli", "api", "console"]),
];

/// The adapters: thin edges over the application layer.
const ADAPTERS: &[&str] = &["cli", "api", "console"];

/// What starts a task or thread; an adapter contains none of these.
const SPAWNS: &[&str] = &[
    "tokio::spawn",
    "task::spawn(",
    "spawn_blocking",
    "thread::spawn",
    "thread::Builder",
    "thread::scope",
    "JoinSet",
];

/// One use of another top-level module: from `from` to `to`, in `file`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Arrow {
    from: String,
    to: String,
    file: String,
}

/// A source file as the analysis sees it.
struct Source {
    /// Path below `src/`, e.g. `routing/node.rs`.
    rel: String,
    /// Its module path, e.g. `["routing", "node"]`.
    module: Vec<String>,
    /// The text without comments, strings and character literals.
    code: String,
}

/// The crate root: its top-level modules and what its `pub use` items re-export.
struct Root {
    modules: BTreeSet<String>,
    reexports: BTreeMap<String, String>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a/b.rs` → `[a, b]`, `a/mod.rs` → `[a]`.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` without comments, string literals (normal, byte, raw) and character literals;
/// newlines kept. Lifetimes (`'a`) stay.
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && is_ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if !prev_ident && (c[i] == 'r' || (c[i] == 'b' && c.get(i + 1) == Some(&'r'))) {
            // A raw string `r#"…"#` / `br"…"`, or just an identifier starting with r/b.
            let start = if c[i] == 'b' { i + 2 } else { i + 1 };
            let mut j = start;
            while c.get(j) == Some(&'#') {
                j += 1;
            }
            if c.get(j) == Some(&'"') {
                let hashes = j - start;
                let mut k = j + 1;
                while k < c.len() {
                    if c[k] == '"' && (0..hashes).all(|h| c.get(k + 1 + h) == Some(&'#')) {
                        break;
                    }
                    k += 1;
                }
                out.push_str("\"\"");
                i = k + 1 + hashes;
            } else {
                out.push(c[i]);
                i += 1;
            }
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i += 1;
        } else if c[i] == '\'' {
            if c.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                out.push_str("' '");
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The leading identifiers of a `{a, b::c, d::{e}}` group starting at `open` (a `{`) and the
/// index after its closing brace.
fn group_heads(c: &[char], open: usize) -> (Vec<String>, usize) {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut i = open;
    let mut at_item_start = true;
    while i < c.len() {
        match c[i] {
            '{' => {
                depth += 1;
                at_item_start = depth == 1;
                i += 1;
            }
            '}' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                at_item_start = true;
                i += 1;
            }
            ch if ch.is_whitespace() => i += 1,
            ch if is_ident(ch) && at_item_start => {
                let start = i;
                while i < c.len() && is_ident(c[i]) {
                    i += 1;
                }
                heads.push(c[start..i].iter().collect());
                at_item_start = false;
            }
            _ => {
                at_item_start = false;
                i += 1;
            }
        }
    }
    (heads, i)
}

/// The identifier (or group heads) following `::` at `at`.
fn names_at(c: &[char], mut at: usize) -> Vec<String> {
    while at < c.len() && c[at].is_whitespace() {
        at += 1;
    }
    if c.get(at) == Some(&'{') {
        return group_heads(c, at).0;
    }
    let start = at;
    while at < c.len() && is_ident(c[at]) {
        at += 1;
    }
    if at > start {
        vec![c[start..at].iter().collect()]
    } else {
        Vec::new()
    }
}

fn starts_with_at(c: &[char], at: usize, word: &str) -> bool {
    word.chars()
        .enumerate()
        .all(|(k, w)| c.get(at + k) == Some(&w))
}

/// The top-level modules `source` names, each once per file.
fn uses(source: &Source, root: &Root) -> BTreeSet<String> {
    let c: Vec<char> = source.code.chars().collect();
    let mut found = BTreeSet::new();
    let top = |name: &str| -> Option<String> {
        if root.modules.contains(name) {
            Some(name.to_string())
        } else {
            root.reexports.get(name).cloned()
        }
    };
    // Inline modules (`mod tests { … }`) open a scope that `super::` climbs out of.
    let mut scopes: Vec<Option<String>> = Vec::new();
    let mut last_word = String::new();
    let mut before_last = String::new();
    let mut i = 0;
    while i < c.len() {
        let path_start = i == 0 || !(is_ident(c[i - 1]) || c[i - 1] == ':');
        if path_start && starts_with_at(&c, i, "crate::") {
            for name in names_at(&c, i + "crate::".len()) {
                found.extend(top(&name));
            }
            i += "crate::".len();
        } else if path_start && starts_with_at(&c, i, "super::") {
            let mut ups = 0;
            while starts_with_at(&c, i, "super::") {
                ups += 1;
                i += "super::".len();
                while i < c.len() && c[i].is_whitespace() {
                    i += 1;
                }
            }
            let mut here = source.module.clone();
            here.extend(scopes.iter().flatten().cloned());
            if ups <= here.len() {
                here.truncate(here.len() - ups);
                match here.first() {
                    Some(first) => {
                        found.insert(first.clone());
                    }
                    None => {
                        for name in names_at(&c, i) {
                            found.extend(top(&name));
                        }
                    }
                }
            }
        } else if c[i] == '{' {
            scopes.push((before_last == "mod").then(|| last_word.clone()));
            i += 1;
        } else if c[i] == '}' {
            scopes.pop();
            i += 1;
        } else if is_ident(c[i]) {
            let start = i;
            while i < c.len() && is_ident(c[i]) {
                i += 1;
            }
            before_last = std::mem::take(&mut last_word);
            last_word = c[start..i].iter().collect();
        } else {
            if !c[i].is_whitespace() {
                before_last.clear();
                last_word.clear();
            }
            i += 1;
        }
    }
    found.remove(&source.module[0]);
    found
}

fn read_root(lib_rs: &str) -> Root {
    let code = strip(lib_rs);
    let mut modules = BTreeSet::new();
    let mut reexports = BTreeMap::new();
    for statement in code.split(';') {
        let words: Vec<&str> = statement.split_whitespace().collect();
        if let Some(pos) = words.iter().position(|w| *w == "mod") {
            modules.extend(words.get(pos + 1).map(|m| m.to_string()));
        }
        let Some((_, path)) = statement.split_once("pub use ") else {
            continue;
        };
        let Some((module, rest)) = path.trim().split_once("::") else {
            continue;
        };
        let rest: Vec<char> = rest.trim().chars().collect();
        let names = if rest.first() == Some(&'{') {
            group_heads(&rest, 0).0
        } else {
            let text: String = rest.iter().collect();
            let last = text.rsplit("::").next().unwrap_or_default();
            vec![last
                .rsplit(" as ")
                .next()
                .unwrap_or(last)
                .trim()
                .to_string()]
        };
        for name in names {
            reexports.insert(name, module.trim().to_string());
        }
    }
    Root { modules, reexports }
}

fn load(src: &Path) -> (Root, Vec<Source>) {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let root = read_root(&lib);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let sources = files
        .into_iter()
        .filter_map(|path| {
            let rel = path
                .strip_prefix(src)
                .expect("below src")
                .to_string_lossy()
                .replace('\\', "/");
            if rel == "lib.rs" || rel == "main.rs" || rel.starts_with("bin/") {
                return None;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            Some(Source {
                module: module_of(&rel),
                code: strip(&text),
                rel,
            })
        })
        .collect();
    (root, sources)
}

fn arrows(root: &Root, sources: &[Source]) -> Vec<Arrow> {
    let mut all = BTreeMap::new();
    for source in sources {
        for to in uses(source, root) {
            all.entry((source.module[0].clone(), to.clone()))
                .or_insert_with(|| Arrow {
                    from: source.module[0].clone(),
                    to,
                    file: source.rel.clone(),
                });
        }
    }
    all.into_values().collect()
}

/// Every cycle's modules (strongly connected components of more than one module), each
/// printed as a closed walk `a -> b -> … -> a` with a file per arrow.
fn cycles(arrows: &[Arrow]) -> Vec<String> {
    let mut next: BTreeMap<&str, Vec<&Arrow>> = BTreeMap::new();
    for a in arrows {
        next.entry(&a.from).or_default().push(a);
    }
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for a in next.get(m.as_str()).into_iter().flatten() {
                if seen.insert(a.to.clone()) {
                    todo.push(a.to.clone());
                }
            }
        }
        seen
    };
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for start in next.keys() {
        if reported.contains(*start) || !reach(start).contains(*start) {
            continue;
        }
        // Shortest walk back to `start` (breadth first), for a readable message.
        let mut parent: BTreeMap<String, &Arrow> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.to_string()]);
        let mut closing = None;
        while let Some(m) = queue.pop_front() {
            for a in next.get(m.as_str()).into_iter().flatten() {
                if a.to == *start {
                    closing = Some(*a);
                    queue.clear();
                    break;
                }
                if !parent.contains_key(&a.to) {
                    parent.insert(a.to.clone(), a);
                    queue.push_back(a.to.clone());
                }
            }
        }
        let Some(last) = closing else { continue };
        let mut walk = vec![last];
        let mut at = last.from.clone();
        while at != *start {
            let a = parent[&at];
            walk.push(a);
            at = a.from.clone();
        }
        walk.reverse();
        let component: BTreeSet<String> = reach(start)
            .into_iter()
            .filter(|m| reach(m).contains(*start))
            .collect();
        reported.extend(component.iter().cloned());
        let steps: Vec<String> = walk
            .iter()
            .map(|a| format!("{} -> {} ({})", a.from, a.to, a.file))
            .collect();
        out.push(format!(
            "cycle among {{{}}}: {}",
            component.into_iter().collect::<Vec<_>>().join(", "),
            steps.join(", ")
        ));
    }
    out
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// Arrows from a module of `sources_in` layers that go up.
fn upward(arrows: &[Arrow], sources_in: impl Fn(usize) -> bool) -> Vec<String> {
    arrows
        .iter()
        .filter_map(|a| {
            let (from, to) = (layer_of(&a.from)?, layer_of(&a.to)?);
            (sources_in(from) && to > from).then(|| {
                format!(
                    "{} ({}) uses {} ({}) in {}",
                    a.from, LAYERS[from].0, a.to, LAYERS[to].0, a.file
                )
            })
        })
        .collect()
}

/// What the adapters do that they must not: use `store`, start tasks or threads.
fn adapter_faults(root: &Root, sources: &[Source]) -> Vec<String> {
    let mut faults = Vec::new();
    for source in sources {
        if !ADAPTERS.contains(&source.module[0].as_str()) {
            continue;
        }
        if uses(source, root).contains("store") {
            faults.push(format!("{} uses store", source.rel));
        }
        for spawn in SPAWNS {
            if source.code.contains(spawn) {
                faults.push(format!("{} starts work of its own ({spawn})", source.rel));
            }
        }
    }
    faults
}

#[test]
fn no_cycles_between_top_level_modules() {
    let (root, sources) = load(&src_dir());
    assert!(sources.len() > 50, "src/ not read: {} files", sources.len());
    let found = cycles(&arrows(&root, &sources));
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

#[test]
fn every_module_has_a_layer() {
    let (root, _) = load(&src_dir());
    let unplaced: Vec<&String> = root
        .modules
        .iter()
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules without a layer (add them to LAYERS and to src/lib.rs's Layout): {unplaced:?}"
    );
}

#[test]
fn library_arrows_point_down() {
    let (root, sources) = load(&src_dir());
    let application = layer_of("gateway").expect("application layer");
    let found = upward(&arrows(&root, &sources), |layer| layer < application);
    assert!(found.is_empty(), "upward arrows:\n{}", found.join("\n"));
}

#[test]
fn application_and_adapters_point_down_and_adapters_are_thin() {
    let (root, sources) = load(&src_dir());
    let application = layer_of("gateway").expect("application layer");
    let mut found = upward(&arrows(&root, &sources), |layer| layer >= application);
    found.extend(adapter_faults(&root, &sources));
    assert!(
        found.is_empty(),
        "{} faults:\n{}",
        found.len(),
        found.join("\n")
    );
}

// The analysis itself, on code written to be caught.

fn fixture(files: &[(&str, &str)]) -> (Root, Vec<Source>) {
    let root = read_root(
        "pub mod api; pub mod store; pub mod routing; pub mod code;\npub use code::ErrorCode;\n",
    );
    let sources = files
        .iter()
        .map(|(rel, text)| Source {
            rel: rel.to_string(),
            module: module_of(rel),
            code: strip(text),
        })
        .collect();
    (root, sources)
}

#[test]
fn a_cycle_is_found_and_printed() {
    let (root, sources) = fixture(&[
        ("routing/node.rs", "use crate::{api::Settings, code};"),
        (
            "api/mod.rs",
            "fn f() { let _ = super::routing::Node::new(); }",
        ),
        (
            "store/mod.rs",
            "// crate::api in a comment\nconst S: &str = \"crate::api\";",
        ),
    ]);
    let arrows = arrows(&root, &sources);
    let found = cycles(&arrows);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("api -> routing (api/mod.rs)"),
        "{}",
        found[0]
    );
    assert!(
        found[0].contains("routing -> api (routing/node.rs)"),
        "{}",
        found[0]
    );
    assert!(!arrows.iter().any(|a| a.from == "store"), "{arrows:?}");
}

#[test]
fn super_inside_an_inline_module_stays_in_its_file() {
    let (root, sources) = fixture(&[(
        "routing/node.rs",
        "mod tests {\n use super::super::store;\n fn f() { let c = '{'; }\n}\n\
         fn g() -> crate::ErrorCode { todo!() }\n",
    )]);
    let found = uses(&sources[0], &root);
    assert_eq!(found, BTreeSet::from(["code".to_string()]));
}

#[test]
fn adapters_using_store_or_spawning_are_caught() {
    let (root, sources) = fixture(&[
        ("api/mod.rs", "async fn f() { tokio::spawn(async {}); }"),
        ("api/db.rs", "use crate::store::Store;"),
        ("routing/worker.rs", "fn f() { std::thread::spawn(|| ()); }"),
    ]);
    let faults = adapter_faults(&root, &sources);
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults[0].contains("tokio::spawn") || faults[1].contains("tokio::spawn"));
}

#[test]
fn an_upward_arrow_is_caught() {
    let (root, sources) = fixture(&[
        ("store/mod.rs", "use crate::routing::Node;"),
        ("api/mod.rs", "use crate::store::Store;"),
    ]);
    let up = upward(&arrows(&root, &sources), |_| true);
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(
        up[0].starts_with("store (infrastructure) uses routing (use cases)"),
        "{up:?}"
    );
}
