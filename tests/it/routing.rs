//! Routing between gateway nodes: test networks of real `signgate serve` processes, each with
//! its own SQLite database (or one shared PostgreSQL database), its own node certificate from
//! a live demo PKI and its own mutual-TLS port.
//!
//! - a 2024-structure network (province, two districts, three communes) and a 2025 one
//!   (province, two communes): documents reach every addressed agency, statuses flow back,
//!   `route status` shows the trace, and `xmlsec1 --verify` accepts the origin signature after
//!   the hops;
//! - faults: duplicate delivery, conflicting redelivery, tampered header, altered attachment,
//!   unknown node, a peer down then up, a node killed with SIGKILL with documents in flight,
//!   dead-lettering and `route retry`;
//! - operator views over HTTP restricted to the client's agency;
//! - two processes on one PostgreSQL database draining one outbox exactly once.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::common::*;
use base64::Engine as _;
use serde_json::Value;
use signgate::edxml::{Business, BusinessDocType};
use signgate::keys::KeySource;
use signgate::pki::demo::{LeafProfile, LeafSpec};

const NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub(crate) fn pki() -> &'static LivePki {
    static PKI: OnceLock<LivePki> = OnceLock::new();
    PKI.get_or_init(LivePki::start)
}

pub(crate) fn agency_key() -> Arc<dyn KeySource> {
    static KEY: OnceLock<Arc<dyn KeySource>> = OnceLock::new();
    KEY.get_or_init(|| {
        let opts = signgate::keys::OpenOptions {
            secret: Some("demo".to_string().into()),
            ..Default::default()
        };
        signgate::keys::open(pki().path("agency-signer.p12").to_str().unwrap(), &opts)
            .expect("open agency key")
    })
    .clone()
}

/// The sample PDF signed by the agency (the attachment of every test document, ~100 KB class).
pub(crate) fn signed_pdf() -> Vec<u8> {
    static PDF: OnceLock<Vec<u8>> = OnceLock::new();
    PDF.get_or_init(|| {
        let out = scratch_path("routing-attachment", "pdf");
        let o = run(signgate(["sign", "--key"])
            .arg(pki().path("agency-signer.p12"))
            .arg("--in")
            .arg(sample_pdf())
            .arg("--out")
            .arg(&out)
            .env("SIGNGATE_KEY_PASSWORD", "demo"));
        assert_exit(&o, 0, "signgate sign (attachment)");
        std::fs::read(&out).unwrap()
    })
    .clone()
}

/// A signed envelope from `from` to `to` (synthetic `TEST.*` agency ids).
pub(crate) fn envelope(
    from: &str,
    to: &[&str],
    number: &str,
    subject: &str,
    business: Business,
) -> Vec<u8> {
    envelope_signed(agency_key().as_ref(), from, to, number, subject, business)
}

/// [`envelope`] signed with `key`; a recall, update or replace names its target in the
/// signed header (`ResponseFor`), as a node requires by default.
pub(crate) fn envelope_signed(
    key: &dyn KeySource,
    from: &str,
    to: &[&str],
    number: &str,
    subject: &str,
    business: Business,
) -> Vec<u8> {
    let pdf = test_attachment(1, "congvan.pdf", "application/pdf", signed_pdf());
    TestEnvelope {
        business,
        ..TestEnvelope::new(from, to, number, subject, vec![pdf])
    }
    .build(key)
}

/// A node of a test network: its files, ports, certificate and (when running) process.
pub(crate) struct NodeInfo {
    pub(crate) config: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) tls_port: u16,
    pub(crate) p12: PathBuf,
    pub(crate) fingerprint: String,
    pub(crate) process: Option<NodeProcess>,
}

/// `signgate serve` as a child we can SIGKILL.
pub(crate) struct NodeProcess {
    child: Child,
    pub(crate) url: String,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peers of a node: (node name, agency ids reached through it).
pub(crate) type Links = Vec<(&'static str, Vec<String>)>;

pub(crate) struct Net {
    _tmp: tempfile::TempDir,
    pub(crate) nodes: HashMap<&'static str, NodeInfo>,
    database_url: Option<String>,
}

impl Net {
    /// Creates the nodes' identities and configurations; `extra` adds TOML lines to `[routing]`.
    pub(crate) fn new(
        test: &str,
        spec: &[(&'static str, &str, Links)],
        extra: &str,
        database_url: Option<String>,
    ) -> Net {
        Net::with_trust(test, spec, extra, database_url, &[])
    }

    /// [`Net::new`] with more trust anchors (PEM files) besides the shared PKI's root.
    pub(crate) fn with_trust(
        test: &str,
        spec: &[(&'static str, &str, Links)],
        extra: &str,
        database_url: Option<String>,
        more_trust: &[PathBuf],
    ) -> Net {
        let tmp = tempdir();
        let mut nodes = HashMap::new();
        for (name, _, _) in spec {
            let dir = tmp.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let leaf = pki().issue(
                &LeafSpec::new(&format!("node {test} {name}")).with_profile(LeafProfile::Node),
                &format!("node-{test}-{name}"),
            );
            let fingerprint =
                hex::encode(openssl::sha::sha256(&leaf.certificate.to_der().unwrap()));
            // status messages are signed with the node's document-signing certificate
            pki().issue(
                &LeafSpec::new(&format!("signer {test} {name}")),
                &format!("signer-{test}-{name}"),
            );
            nodes.insert(
                *name,
                NodeInfo {
                    config: dir.join("signgate.toml"),
                    dir,
                    tls_port: free_port(),
                    p12: leaf.p12_path.clone(),
                    fingerprint,
                    process: None,
                },
            );
        }
        let net = Net {
            _tmp: tmp,
            nodes,
            database_url,
        };
        for (name, organ, links) in spec {
            let n = &net.nodes[name];
            let trust: Vec<PathBuf> = std::iter::once(pki().root())
                .chain(more_trust.iter().cloned())
                .collect();
            let mut toml = format!(
                "data_dir = {:?}\ntrust = {:?}\n\n[fetch]\nallow = [\"127.0.0.1\"]\n\n[routing]\nnode_id = {name:?}\nserves = [{organ:?}]\n\
                 listen = \"127.0.0.1:{}\"\nidentity = {:?}\nsigning_key = {:?}\nmax_attempts = 30\nbackoff_initial_ms = 100\n\
                 backoff_max_ms = 600\nlease_secs = 3\npoll_ms = 100\npeer_timeout_secs = 20\n{extra}\n",
                n.dir.join("data"),
                trust,
                n.tls_port,
                n.p12,
                pki().path(&format!("signer-{test}-{name}.p12"))
            );
            for (peer, serves) in links {
                let p = &net.nodes[peer];
                toml.push_str(&format!(
                    "\n[[routing.peers]]\nnode_id = {peer:?}\nurl = \"https://127.0.0.1:{}/\"\ncert_fingerprint = {:?}\nserves = {:?}\n",
                    p.tls_port, p.fingerprint, serves
                ));
            }
            std::fs::write(&n.config, toml).unwrap();
        }
        net
    }

    pub(crate) fn envs(&self) -> Vec<(&'static str, String)> {
        let mut e = vec![("SIGNGATE_KEY_PASSWORD", "demo".to_string())];
        if let Some(url) = &self.database_url {
            e.push(("SIGNGATE_DATABASE_URL", url.clone()));
        }
        e
    }

    pub(crate) fn start(&mut self, name: &str) {
        let envs = self.envs();
        let node = self.nodes.get_mut(name).expect("node");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("stderr.log"))
            .unwrap();
        let mut cmd = Command::new(signgate_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&node.config)
            .env("SIGNGATE_LOG", "signgate=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (k, v) in &envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn signgate serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(|l| l.ok()));
            for _ in lines {}
        });
        let first = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
        let Some(url) = first
            .as_deref()
            .and_then(|l| l.strip_prefix("listening on "))
        else {
            let _ = child.kill();
            let log = std::fs::read_to_string(node.dir.join("stderr.log")).unwrap_or_default();
            panic!("node {name} did not start: {first:?}\n{log}");
        };
        assert!(
            wait_for_port(node.tls_port, Duration::from_secs(10)),
            "node {name}: TLS port"
        );
        node.process = Some(NodeProcess {
            url: url.to_string(),
            child,
        });
    }

    pub(crate) fn start_all(&mut self, names: &[&str]) {
        for n in names {
            self.start(n);
        }
    }

    /// SIGKILL (no clean shutdown).
    pub(crate) fn kill(&mut self, name: &str) {
        let node = self.nodes.get_mut(name).expect("node");
        if let Some(mut p) = node.process.take() {
            p.child.kill().expect("SIGKILL");
            let _ = p.child.wait();
        }
    }

    pub(crate) fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.nodes[name].dir.join("stderr.log")).unwrap_or_default()
    }

    /// `signgate route ARGS --config NODE`.
    pub(crate) fn route(&self, name: &str, args: &[&str]) -> std::process::Output {
        let mut cmd = signgate(["route"]);
        cmd.args(args).arg("--config").arg(&self.nodes[name].config);
        for (k, v) in self.envs() {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }

    pub(crate) fn send(&self, name: &str, envelope: &[u8]) -> Value {
        let file = self.nodes[name]
            .dir
            .join(format!("out-{}.xml", rand::random::<u32>()));
        std::fs::write(&file, envelope).unwrap();
        let o = self.route(name, &["send", "--envelope", file.to_str().unwrap()]);
        assert_exit(&o, 0, &format!("route send at {name}"));
        serde_json::from_str(&stdout_str(&o)).expect("send prints JSON")
    }

    /// `route status` at `name`, or `None` when the node knows nothing of the document.
    pub(crate) fn status(&self, name: &str, document_id: &str) -> Option<Value> {
        let o = self.route(name, &["status", "--document-id", document_id]);
        match o.status.code() {
            Some(0) => Some(serde_json::from_str(&stdout_str(&o)).expect("status JSON")),
            Some(66) => None,
            _ => panic!("route status at {name}: {}", stderr_str(&o)),
        }
    }

    pub(crate) fn ack(&self, name: &str, document_id: &str, code: &str) {
        let o = self.route(
            name,
            &["ack", "--document-id", document_id, "--status", code],
        );
        assert_exit(&o, 0, &format!("route ack {code} at {name}"));
    }

    /// Rows of `document_id` at `name` in `state`, for recipient `recipient`.
    pub(crate) fn rows(
        &self,
        name: &str,
        document_id: &str,
        recipient: &str,
        state: &str,
    ) -> usize {
        self.states(name, document_id, recipient, None)
            .iter()
            .filter(|s| *s == state)
            .count()
    }

    /// The states of the rows of `document_id` at `name` addressed to `recipient` (of
    /// BussinessDocType `doc_type` when given), oldest first.
    pub(crate) fn states(
        &self,
        name: &str,
        document_id: &str,
        recipient: &str,
        doc_type: Option<i64>,
    ) -> Vec<String> {
        self.status(name, document_id)
            .map(|v| {
                v["documents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| {
                        d["document_id"] == document_id
                            && d["recipient_organ"] == recipient
                            && doc_type.map_or(true, |t| d["doc_type"] == t)
                    })
                    .map(|d| d["state"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Statuses `code` from `from` recorded at `name` for `document_id`.
    pub(crate) fn has_status(&self, name: &str, document_id: &str, from: &str, code: &str) -> bool {
        self.status(name, document_id).is_some_and(|v| {
            v["statuses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["from_organ"] == from && s["code"] == code)
        })
    }

    /// The envelope bytes a node stored for `document_id` and `recipient`.
    pub(crate) fn stored_envelope(
        &self,
        name: &str,
        document_id: &str,
        recipient: &str,
    ) -> Vec<u8> {
        let url = match &self.database_url {
            Some(u) => u.clone(),
            None => signgate::store::Store::sqlite_url(&self.nodes[name].dir.join("data")),
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = signgate::store::Store::open(&url)
                .await
                .expect("open node db");
            let rows = store.route_documents(document_id).await.unwrap();
            let row = rows
                .iter()
                .find(|r| r.recipient_organ == recipient)
                .expect("row for recipient");
            let env = store
                .route_envelope(&row.envelope_id)
                .await
                .unwrap()
                .unwrap();
            store.close().await;
            env.bytes
        })
    }

    /// Posts `body` to `target`'s node endpoint `path` as node `as_node` (its certificate).
    pub(crate) fn post_as(
        &self,
        as_node: &str,
        target: &str,
        path: &str,
        body: Vec<u8>,
    ) -> (u16, Option<String>, String) {
        self.post_with(&self.nodes[as_node].p12, target, path, body)
    }

    pub(crate) fn post_with(
        &self,
        p12: &Path,
        target: &str,
        path: &str,
        body: Vec<u8>,
    ) -> (u16, Option<String>, String) {
        use signgate::routing::tls;
        let t = &self.nodes[target];
        let identity = tls::TlsIdentity::open(p12, "demo").expect("identity");
        let connector = tls::connector(&identity, &[pki().root()]).expect("connector");
        let url = format!("https://127.0.0.1:{}/{path}", t.tls_port);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let a = rt
            .block_on(tls::post(
                &connector,
                &url,
                &t.fingerprint,
                "application/xml",
                body,
                Duration::from_secs(30),
            ))
            .expect("post");
        let code = a
            .headers
            .get("signgate-route-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let reason = a
            .headers
            .get("signgate-route-reason")
            .and_then(|v| v.to_str().ok())
            .map(percent_decode)
            .unwrap_or_else(|| String::from_utf8_lossy(&a.body).into_owned());
        (a.status, code, reason)
    }
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `cond` until it holds; panics with `what` (and the logs) after `timeout`.
pub(crate) fn wait_until(net: &Net, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut logs = String::new();
    for name in net.nodes.keys() {
        let log = net.log(name);
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        logs.push_str(&format!(
            "--- {name}\n{}\n",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    panic!("timed out waiting for {what}\n{logs}");
}

pub(crate) fn xmlsec_verify(bytes: &[u8]) -> std::process::Output {
    let file = scratch_path("routing-xmlsec", "xml");
    std::fs::write(&file, bytes).unwrap();
    let mut cmd = Command::new("xmlsec1");
    cmd.arg("--verify")
        .arg("--trusted-pem")
        .arg(pki().root())
        .arg("--untrusted-pem")
        .arg(pki().path("issuing-ca.pem"));
    for n in ["MessageHeader", "edXMLBody", "Attachment"] {
        cmd.arg("--id-attr:Id").arg(format!("{NS}:{n}"));
    }
    run(cmd.arg(&file))
}

pub(crate) fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Province P (TEST.P), districts DA (communes C1, C2) and DB (commune C3): pre-2025.
fn structure_2024() -> Vec<(&'static str, &'static str, Links)> {
    vec![
        (
            "P",
            "TEST.P",
            vec![
                ("DA", s(&["TEST.DA", "TEST.C1", "TEST.C2"])),
                ("DB", s(&["TEST.DB", "TEST.C3"])),
            ],
        ),
        (
            "DA",
            "TEST.DA",
            vec![
                ("P", s(&["*"])),
                ("C1", s(&["TEST.C1"])),
                ("C2", s(&["TEST.C2"])),
            ],
        ),
        (
            "DB",
            "TEST.DB",
            vec![("P", s(&["*"])), ("C3", s(&["TEST.C3"]))],
        ),
        ("C1", "TEST.C1", vec![("DA", s(&["*"]))]),
        ("C2", "TEST.C2", vec![("DA", s(&["*"]))]),
        ("C3", "TEST.C3", vec![("DB", s(&["*"]))]),
    ]
}

#[test]
fn documents_reach_every_commune_and_statuses_flow_back() {
    if require_tool("xmlsec1").is_none() {
        return;
    }
    let mut spec = structure_2024();
    // the post-2025 structure: a province and its communes, no district level
    spec.push((
        "P2",
        "TEST.P2",
        vec![("K1", s(&["TEST.K1"])), ("K2", s(&["TEST.K2"]))],
    ));
    spec.push(("K1", "TEST.K1", vec![("P2", s(&["*"]))]));
    spec.push(("K2", "TEST.K2", vec![("P2", s(&["*"]))]));
    let mut net = Net::new("net", &spec, "", None);
    net.start_all(&["P", "DA", "DB", "C1", "C2", "C3", "P2", "K1", "K2"]);

    // 1. the province to a district and every commune
    let d1 = doc_id("TEST.P", "101");
    let sent = net.send(
        "P",
        &envelope(
            "TEST.P",
            &["TEST.DA", "TEST.C1", "TEST.C2", "TEST.C3"],
            "101",
            "Quyết định thử nghiệm",
            Business::default(),
        ),
    );
    assert_eq!(sent["status"], "01", "{sent}");
    for (node, organ) in [
        ("DA", "TEST.DA"),
        ("C1", "TEST.C1"),
        ("C2", "TEST.C2"),
        ("C3", "TEST.C3"),
    ] {
        wait_until(
            &net,
            Duration::from_secs(40),
            &format!("{d1} in {node}'s inbox"),
            || net.rows(node, &d1, organ, "delivered") == 1,
        );
    }
    // the commune answers: accepted, then completed; every recipient's 01 comes back too
    net.ack("C1", &d1, "03");
    net.ack("C1", &d1, "06");
    wait_until(
        &net,
        Duration::from_secs(40),
        "statuses back at the province",
        || {
            ["TEST.DA", "TEST.C1", "TEST.C2", "TEST.C3"]
                .iter()
                .all(|o| net.has_status("P", &d1, o, "01"))
                && net.has_status("P", &d1, "TEST.C1", "03")
                && net.has_status("P", &d1, "TEST.C1", "06")
        },
    );
    assert_eq!(net.rows("C1", &d1, "TEST.C1", "completed"), 1);
    let view = net.status("P", &d1).unwrap();
    let events: Vec<&str> = view["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for e in ["received", "queued", "forwarded", "status"] {
        assert!(events.contains(&e), "province trace lacks {e}: {events:?}");
    }
    let rows = view["documents"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        4,
        "one row per recipient at the origin: {view:#}"
    );
    assert!(rows.iter().all(|r| r["state"] == "forwarded"), "{view:#}");
    // the commune's copy carries the origin's, the province's, the district's and its own
    // trace headers, and the origin signature still verifies in xmlsec1
    let copy = net.stored_envelope("C3", &d1, "TEST.C3");
    let text = String::from_utf8(copy.clone()).unwrap();
    assert_eq!(
        text.matches("<TraceHeader>").count() + text.matches("<edXML:TraceHeader>").count(),
        4,
        "{}",
        &text[..2000.min(text.len())]
    );
    let o = xmlsec_verify(&copy);
    assert!(
        o.status.success(),
        "xmlsec1 after the hops: {}",
        stderr_str(&o)
    );

    // 2. commune to commune across districts: C1 -> DA -> P -> DB -> C3 (four transfers)
    let d2 = doc_id("TEST.C1", "7");
    net.send(
        "C1",
        &envelope(
            "TEST.C1",
            &["TEST.C3"],
            "7",
            "Báo cáo xã",
            Business::default(),
        ),
    );
    wait_until(&net, Duration::from_secs(40), "d2 at C3", || {
        net.rows("C3", &d2, "TEST.C3", "delivered") == 1
    });
    wait_until(&net, Duration::from_secs(40), "01 from C3 at C1", || {
        net.has_status("C1", &d2, "TEST.C3", "01")
    });
    let copy = net.stored_envelope("C3", &d2, "TEST.C3");
    let o = xmlsec_verify(&copy);
    assert!(
        o.status.success(),
        "xmlsec1 after four hops: {}",
        stderr_str(&o)
    );
    for transit in ["DA", "P", "DB"] {
        assert_eq!(
            net.rows(transit, &d2, "TEST.C3", "forwarded"),
            1,
            "{transit} forwarded d2 once"
        );
    }

    // 3. the post-2025 structure
    let d3 = doc_id("TEST.P2", "5");
    net.send(
        "P2",
        &envelope(
            "TEST.P2",
            &["TEST.K1", "TEST.K2"],
            "5",
            "Công văn sau sắp xếp",
            Business::default(),
        ),
    );
    for (node, organ) in [("K1", "TEST.K1"), ("K2", "TEST.K2")] {
        wait_until(&net, Duration::from_secs(40), "d3 at the communes", || {
            net.rows(node, &d3, organ, "delivered") == 1
        });
    }
    wait_until(&net, Duration::from_secs(40), "01s at P2", || {
        net.has_status("P2", &d3, "TEST.K1", "01") && net.has_status("P2", &d3, "TEST.K2", "01")
    });

    // 4. the same views over HTTP (bearer token of a client of the province's gateway)
    let mut cmd = signgate([
        "client", "add", "--agency", "TEST.P", "--name", "operator", "--config",
    ]);
    cmd.arg(&net.nodes["P"].config)
        .env("SIGNGATE_KEY_PASSWORD", "demo");
    let o = run(&mut cmd);
    assert_exit(&o, 0, "client add");
    let token = serde_json::from_str::<Value>(&stdout_str(&o)).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let base = net.nodes["P"].process.as_ref().unwrap().url.clone();
    let encoded: String = d1
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let resp = ureq::get(&format!("{base}v1/route/status?document_id={encoded}"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("GET /v1/route/status");
    let body: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
    assert_eq!(body["document_id"], d1);
    assert!(
        body["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["code"] == "06"),
        "{body:#}"
    );
    let counts: Value = serde_json::from_str(
        &ureq::get(&format!("{base}v1/route/outbox"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .expect("GET /v1/route/outbox")
            .into_string()
            .unwrap(),
    )
    .unwrap();
    assert!(
        counts["outbox"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s[0] == "delivered"),
        "{counts:#}"
    );
    // The node-wide outbox gauge is in the Prometheus exposition (no token needed).
    let metrics = ureq::get(&format!("{base}metrics"))
        .call()
        .expect("GET /metrics")
        .into_string()
        .unwrap();
    let delivered: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("signgate_route_outbox{state=\"delivered\"} "))
        .unwrap_or_else(|| panic!("no delivered outbox gauge in {metrics}"))
        .parse()
        .unwrap();
    assert!(delivered >= 1, "{metrics}");
    let err = ureq::get(&format!("{base}v1/route/inbox"))
        .call()
        .expect_err("no token");
    assert!(matches!(err, ureq::Error::Status(401, _)));
}

#[test]
fn faults_are_refused_or_survived_without_loss_or_duplicates() {
    let spec: Vec<(&'static str, &str, Links)> = vec![
        (
            "P",
            "TEST.P",
            vec![("DA", s(&["TEST.DA", "TEST.C1", "TEST.C9"]))],
        ),
        (
            "DA",
            "TEST.DA",
            vec![
                ("P", s(&["*"])),
                ("C1", s(&["TEST.C1"])),
                ("C9", s(&["TEST.C9"])),
            ],
        ),
        ("C1", "TEST.C1", vec![("DA", s(&["*"]))]),
        // C9 never runs: its documents are dead-lettered at DA
        ("C9", "TEST.C9", vec![("DA", s(&["*"]))]),
    ];
    let mut net = Net::new("faults", &spec, "", None);
    // a lower attempt limit for DA so the dead letter comes quickly
    let da = net.nodes["DA"].config.clone();
    let text = std::fs::read_to_string(&da)
        .unwrap()
        .replace("max_attempts = 30", "max_attempts = 20");
    std::fs::write(&da, text).unwrap();
    net.start_all(&["P", "DA", "C1"]);

    // duplicate delivery straight to DA (as P): acknowledged twice, stored and forwarded once
    let dup_id = doc_id("TEST.P", "201");
    let dup = envelope(
        "TEST.P",
        &["TEST.C1"],
        "201",
        "Gửi hai lần",
        Business::default(),
    );
    for _ in 0..2 {
        let (status, code, reason) =
            net.post_as("P", "DA", "v1/route/envelopes?to=TEST.C1", dup.clone());
        assert_eq!((status, code.as_deref()), (200, Some("01")), "{reason}");
    }
    wait_until(&net, Duration::from_secs(30), "duplicate at C1", || {
        net.rows("C1", &dup_id, "TEST.C1", "delivered") == 1
    });
    let da_view = net.status("DA", &dup_id).unwrap();
    assert_eq!(
        da_view["documents"].as_array().unwrap().len(),
        1,
        "{da_view:#}"
    );
    assert!(da_view["trace"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "duplicate"));
    let c1_view = net.status("C1", &dup_id).unwrap();
    assert!(
        !c1_view["trace"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "duplicate"),
        "forwarded once: {c1_view:#}"
    );

    // the same idempotency key with other content: 02 CONFLICTING_REDELIVERY
    let other = envelope(
        "TEST.P",
        &["TEST.C1"],
        "201",
        "Nội dung khác",
        Business::default(),
    );
    let (_, code, reason) = net.post_as("P", "DA", "v1/route/envelopes?to=TEST.C1", other);
    assert_eq!(code.as_deref(), Some("02"));
    assert!(reason.contains("CONFLICTING_REDELIVERY"), "{reason}");

    // tampered header, altered attachment: 02 with the reason, nothing stored
    let fresh = envelope(
        "TEST.P",
        &["TEST.C1"],
        "202",
        "Bản gốc",
        Business::default(),
    );
    let text = String::from_utf8(fresh.clone()).unwrap();
    let tampered = text.replace("Bản gốc", "Bản sửa");
    let (_, code, reason) = net.post_as("P", "DA", "v1/route/envelopes", tampered.into_bytes());
    assert_eq!(code.as_deref(), Some("02"));
    assert!(reason.contains("MessageHeader"), "{reason}");
    let pdf = signed_pdf();
    let mut altered = pdf.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 0x20;
    let swapped = text.replace(&B64.encode(&pdf), &B64.encode(&altered));
    let (_, code, reason) = net.post_as("P", "DA", "v1/route/envelopes", swapped.into_bytes());
    assert_eq!(code.as_deref(), Some("02"));
    assert!(
        reason.contains("congvan.pdf"),
        "names the attachment: {reason}"
    );
    assert_eq!(
        net.rows("DA", &doc_id("TEST.P", "202"), "TEST.C1", "forwarding")
            + net.rows("DA", &doc_id("TEST.P", "202"), "TEST.C1", "forwarded"),
        0
    );
    // a recipient the envelope does not address
    let (_, code, reason) = net.post_as("P", "DA", "v1/route/envelopes?to=TEST.X", fresh.clone());
    assert_eq!(code.as_deref(), Some("02"), "{reason}");

    // a configured peer delivering for an agency it does not route for: 02
    let (_, code, reason) = net.post_as("C1", "DA", "v1/route/envelopes", fresh.clone());
    assert_eq!(code.as_deref(), Some("02"));
    assert!(reason.contains("not authorized"), "{reason}");

    // an unknown node (valid certificate from the same CA, not a configured peer): 403
    let stranger = pki().issue(
        &LeafSpec::new("node faults stranger").with_profile(LeafProfile::Node),
        "node-faults-stranger",
    );
    let (status, _, body) = net.post_with(
        &stranger.p12_path,
        "DA",
        "v1/route/envelopes",
        fresh.clone(),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("ROUTE_PEER_UNKNOWN"), "{body}");

    // a peer down, then up: DA keeps retrying and delivers when C1 returns
    net.kill("C1");
    let down_id = doc_id("TEST.P", "203");
    net.send(
        "P",
        &envelope(
            "TEST.P",
            &["TEST.C1"],
            "203",
            "Khi xã mất kết nối",
            Business::default(),
        ),
    );
    wait_until(&net, Duration::from_secs(30), "203 waiting at DA", || {
        net.rows("DA", &down_id, "TEST.C1", "forwarding") == 1
    });
    std::thread::sleep(Duration::from_millis(800));
    net.start("C1");
    wait_until(
        &net,
        Duration::from_secs(40),
        "203 at C1 after it came back",
        || net.rows("C1", &down_id, "TEST.C1", "delivered") == 1,
    );
    wait_until(&net, Duration::from_secs(40), "01 back at P", || {
        net.has_status("P", &down_id, "TEST.C1", "01")
    });

    // SIGKILL of the district with documents in flight, then restart: none lost, none twice
    net.kill("C1");
    let ids: Vec<String> = (0..8)
        .map(|i| doc_id("TEST.P", &format!("3{i:02}")))
        .collect();
    for i in 0..8 {
        net.send(
            "P",
            &envelope(
                "TEST.P",
                &["TEST.C1"],
                &format!("3{i:02}"),
                "Khi huyện sập",
                Business::default(),
            ),
        );
    }
    wait_until(&net, Duration::from_secs(60), "all eight at DA", || {
        ids.iter()
            .all(|id| net.rows("DA", id, "TEST.C1", "forwarding") == 1)
    });
    net.start("C1");
    std::thread::sleep(Duration::from_millis(150));
    net.kill("DA");
    net.start("DA");
    for id in &ids {
        wait_until(
            &net,
            Duration::from_secs(60),
            &format!("{id} at C1 after the restart"),
            || net.rows("C1", id, "TEST.C1", "delivered") == 1,
        );
    }
    for id in &ids {
        let v = net.status("C1", id).unwrap();
        assert_eq!(
            v["documents"].as_array().unwrap().len(),
            1,
            "{id} stored once at C1"
        );
    }

    // a recipient whose node never answers: dead-lettered at DA after the attempt limit
    let dead_id = doc_id("TEST.P", "400");
    net.send(
        "P",
        &envelope(
            "TEST.P",
            &["TEST.C9"],
            "400",
            "Không tới được",
            Business::default(),
        ),
    );
    wait_until(&net, Duration::from_secs(60), "dead letter at DA", || {
        net.rows("DA", &dead_id, "TEST.C9", "dead") == 1
    });
    let v = net.status("DA", &dead_id).unwrap();
    assert!(
        v["trace"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "dead-letter"),
        "{v:#}"
    );
    assert!(net.log("DA").contains("route_dead_letter"), "alert logged");
}

#[test]
fn recall_before_its_original_is_held_then_applied() {
    let spec: Vec<(&'static str, &str, Links)> = vec![
        ("P", "TEST.P", vec![("C1", s(&["TEST.C1"]))]),
        ("C1", "TEST.C1", vec![("P", s(&["*"]))]),
    ];
    let mut net = Net::new("recall", &spec, "", None);
    net.start_all(&["P", "C1"]);
    let original = envelope(
        "TEST.P",
        &["TEST.C1"],
        "501",
        "Văn bản sẽ thu hồi",
        Business::default(),
    );
    let recall = envelope(
        "TEST.P",
        &["TEST.C1"],
        "501",
        "Thu hồi văn bản",
        Business {
            doc_type: BusinessDocType::Revoke,
            reason: Some("Ban hành nhầm".into()),
            document_id: Some(doc_id("TEST.P", "501")),
        },
    );
    let id = doc_id("TEST.P", "501");
    // the recall overtakes its original (sent straight to C1 as P)
    let (_, code, reason) = net.post_as("P", "C1", "v1/route/envelopes", recall);
    assert_eq!(code.as_deref(), Some("01"), "{reason}");
    let v = net.status("C1", &id).unwrap();
    assert!(
        v["documents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["doc_type"] == 1 && d["state"] == "held"),
        "{v:#}"
    );
    let (_, code, reason) = net.post_as("P", "C1", "v1/route/envelopes", original);
    assert_eq!(code.as_deref(), Some("01"), "{reason}");
    let v = net.status("C1", &id).unwrap();
    let docs = v["documents"].as_array().unwrap();
    assert!(
        docs.iter()
            .any(|d| d["doc_type"] == 0 && d["state"] == "recalled"),
        "{v:#}"
    );
    assert!(
        docs.iter()
            .any(|d| d["doc_type"] == 1 && d["state"] == "applied"),
        "{v:#}"
    );
    wait_until(
        &net,
        Duration::from_secs(30),
        "13 recalled back at P",
        || net.has_status("P", &id, "TEST.C1", "13"),
    );
    // nothing left in the inbox to act on
    let o = net.route("C1", &["inbox"]);
    assert!(
        !stdout_str(&o).contains("501/UBND-VP"),
        "{}",
        stdout_str(&o)
    );
}

/// A recall, update or replace from the province to TEST.C1 of its document `number`.
fn follow_up(number: &str, subject: &str, doc_type: BusinessDocType) -> Vec<u8> {
    envelope(
        "TEST.P",
        &["TEST.C1"],
        number,
        subject,
        Business {
            doc_type,
            reason: Some(subject.into()),
            document_id: Some(doc_id("TEST.P", number)),
        },
    )
}

/// The recall and update flows of the state machine (`src/routing/lifecycle.rs`) end to end
/// over province → district → commune, with the update codes configured to 21/22 on every
/// node: a recall of a delivered and accepted document (13 back at the province, gone from the
/// inbox); a recall sent before its original (held, then the original is delivered recalled at
/// once, a redelivery of it absorbed: one row each, never in the inbox); an update held before
/// its original, then agreed (21); an update refused (22, and the default 15 refused as not
/// configured); a replace (the original `replaced`, the replacement in the inbox).
#[test]
fn recall_and_update_flows_over_the_network() {
    let spec: Vec<(&'static str, &str, Links)> = vec![
        ("P", "TEST.P", vec![("DA", s(&["TEST.DA", "TEST.C1"]))]),
        (
            "DA",
            "TEST.DA",
            vec![("P", s(&["*"])), ("C1", s(&["TEST.C1"]))],
        ),
        ("C1", "TEST.C1", vec![("DA", s(&["*"]))]),
    ];
    let codes = "update_agreed_code = \"21\"\nupdate_refused_code = \"22\"";
    let mut net = Net::new("flows", &spec, codes, None);
    net.start_all(&["P", "DA", "C1"]);
    let back_at_p = |id: &str, code: &str| {
        wait_until(
            &net,
            Duration::from_secs(40),
            &format!("{code} from TEST.C1 at P for {id}"),
            || net.has_status("P", id, "TEST.C1", code),
        )
    };
    let inbox = |net: &Net| stdout_str(&net.route("C1", &["inbox"]));
    let new = |number: &str, subject: &str| {
        envelope("TEST.P", &["TEST.C1"], number, subject, Business::default())
    };
    // a follow-up sent once its original was received
    let after_original = |number: &str, subject: &str, doc_type: BusinessDocType| {
        let id = doc_id("TEST.P", number);
        net.send("P", &new(number, "Văn bản gốc"));
        back_at_p(&id, "01");
        net.send("P", &follow_up(number, subject, doc_type));
        id
    };
    // a follow-up sent before its original: held at the commune, nothing in the inbox
    let held_first = |number: &str, subject: &str, doc_type: BusinessDocType| {
        let id = doc_id("TEST.P", number);
        net.send("P", &follow_up(number, subject, doc_type));
        let kind = i64::from(doc_type.code());
        wait_until(
            &net,
            Duration::from_secs(40),
            &format!("{id} held at C1"),
            || net.states("C1", &id, "TEST.C1", Some(kind)) == ["held"],
        );
        assert!(!inbox(&net).contains(&id), "{}", inbox(&net));
        id
    };

    // (a) recall of a delivered, accepted document
    let a = doc_id("TEST.P", "601");
    net.send("P", &new("601", "Văn bản đã giao"));
    back_at_p(&a, "01");
    net.ack("C1", &a, "03");
    back_at_p(&a, "03");
    net.send(
        "P",
        &follow_up("601", "Thu hồi văn bản đã giao", BusinessDocType::Revoke),
    );
    back_at_p(&a, "13");
    assert_eq!(net.states("C1", &a, "TEST.C1", Some(0)), ["recalled"]);
    assert_eq!(net.states("C1", &a, "TEST.C1", Some(1)), ["applied"]);
    assert!(!inbox(&net).contains("601/UBND-VP"), "{}", inbox(&net));
    let o = net.route("C1", &["ack", "--document-id", &a, "--status", "05"]);
    assert_exit(&o, 66, "ack of a recalled document");

    // (b) the recall travels first: held at the commune, then the original arrives and is
    // recalled at once (01 then 13), never live in the inbox; a redelivery adds nothing
    let b = held_first("602", "Thu hồi trước", BusinessDocType::Revoke);
    let original = new("602", "Văn bản bị thu hồi trước khi đến");
    net.send("P", &original);
    back_at_p(&b, "13");
    assert_eq!(net.states("C1", &b, "TEST.C1", Some(0)), ["recalled"]);
    assert_eq!(net.states("C1", &b, "TEST.C1", Some(1)), ["applied"]);
    let (_, code, reason) = net.post_as("DA", "C1", "v1/route/envelopes?to=TEST.C1", original);
    assert_eq!(code.as_deref(), Some("01"), "{reason}");
    let v = net.status("C1", &b).unwrap();
    assert_eq!(v["documents"].as_array().unwrap().len(), 2, "{v:#}");
    let events: Vec<&str> = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"held-applied") && events.contains(&"duplicate"),
        "{events:?}"
    );
    assert!(!inbox(&net).contains("602/UBND-VP"), "{}", inbox(&net));

    // (c) an update held before its original, then agreed with the configured code 21
    let c = held_first("603", "Cập nhật trước", BusinessDocType::Update);
    net.send("P", &new("603", "Văn bản sẽ cập nhật"));
    wait_until(
        &net,
        Duration::from_secs(40),
        "603 update delivered after its original",
        || net.states("C1", &c, "TEST.C1", Some(2)) == ["delivered"],
    );
    assert_eq!(
        net.states("C1", &c, "TEST.C1", Some(0)),
        ["delivered"],
        "an update leaves the original"
    );
    net.ack("C1", &c, "21");
    back_at_p(&c, "21");
    assert_eq!(net.states("C1", &c, "TEST.C1", Some(2)), ["update-agreed"]);

    // an update refused (22); 15 is not an update code on these nodes, 21 not for a new document
    let d = after_original("604", "Cập nhật bị từ chối", BusinessDocType::Update);
    wait_until(&net, Duration::from_secs(40), "604 update at C1", || {
        net.states("C1", &d, "TEST.C1", Some(2)) == ["delivered"]
    });
    let o = net.route("C1", &["ack", "--document-id", &d, "--status", "15"]);
    assert_exit(&o, 64, "15 is not configured");
    net.ack("C1", &d, "22");
    back_at_p(&d, "22");
    assert_eq!(net.states("C1", &d, "TEST.C1", Some(2)), ["update-refused"]);
    assert_eq!(net.states("C1", &d, "TEST.C1", Some(0)), ["delivered"]);
    let o = net.route("C1", &["ack", "--document-id", &d, "--status", "21"]);
    assert_exit(&o, 66, "no open update left to answer");

    // a replace: the original is replaced, the replacement is what the inbox offers
    let e = after_original("605", "Văn bản thay thế", BusinessDocType::Replace);
    wait_until(&net, Duration::from_secs(40), "605 replaced at C1", || {
        net.states("C1", &e, "TEST.C1", Some(0)) == ["replaced"]
    });
    assert_eq!(net.states("C1", &e, "TEST.C1", Some(3)), ["delivered"]);
    net.ack("C1", &e, "03");
    assert_eq!(net.states("C1", &e, "TEST.C1", Some(3)), ["accepted"]);
    back_at_p(&e, "03");
    let listed: Vec<Value> = inbox(&net)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|d: &Value| d["document_id"] == e.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["doc_type"], 3, "{listed:?}");
}

/// Two gateway processes of one node share a PostgreSQL database and drain one outbox:
/// every document is delivered exactly once.
#[test]
fn two_processes_on_one_postgres_database_drain_the_outbox_once() {
    let Some(db) = PgDatabase::create("sg_route") else {
        return;
    };
    let url = db.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    {
        // P and C1 on SQLite; the district's two processes share PostgreSQL
        let spec: Vec<(&'static str, &str, Links)> = vec![
            ("P", "TEST.P", vec![("DA", s(&["TEST.DA", "TEST.C1"]))]),
            (
                "DA",
                "TEST.DA",
                vec![("P", s(&["*"])), ("C1", s(&["TEST.C1"]))],
            ),
            ("C1", "TEST.C1", vec![("DA", s(&["*"]))]),
        ];
        let mut net = Net::new("pg", &spec, "", None);
        // the second process of DA: same identity, node id and database, its own TLS port
        let da = &net.nodes["DA"];
        let second_dir = da.dir.join("second");
        std::fs::create_dir_all(&second_dir).unwrap();
        let second_port = free_port();
        let config = std::fs::read_to_string(&da.config).unwrap().replace(
            &format!("127.0.0.1:{}\"", da.tls_port),
            &format!("127.0.0.1:{second_port}\""),
        );
        let pg = |toml: String| {
            toml.replacen(
                "\n[routing]\n",
                &format!("\n[database]\nurl = {url:?}\n\n[routing]\n"),
                1,
            )
        };
        std::fs::write(&da.config, pg(std::fs::read_to_string(&da.config).unwrap())).unwrap();
        let second_config = second_dir.join("signgate.toml");
        std::fs::write(&second_config, pg(config)).unwrap();
        net.nodes.insert(
            "DA2",
            NodeInfo {
                config: second_config,
                dir: second_dir,
                tls_port: second_port,
                p12: net.nodes["DA"].p12.clone(),
                fingerprint: net.nodes["DA"].fingerprint.clone(),
                process: None,
            },
        );
        net.start_all(&["P", "DA", "DA2"]);
        let ids: Vec<String> = (0..12)
            .map(|i| doc_id("TEST.P", &format!("6{i:02}")))
            .collect();
        for i in 0..12 {
            net.send(
                "P",
                &envelope(
                    "TEST.P",
                    &["TEST.C1"],
                    &format!("6{i:02}"),
                    "Song song",
                    Business::default(),
                ),
            );
        }
        let pg_rows = |id: &str| -> usize {
            rt.block_on(async {
                let store = signgate::store::Store::open(&url).await.unwrap();
                let n = store
                    .route_documents(id)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|r| r.state == "forwarding")
                    .count();
                store.close().await;
                n
            })
        };
        wait_until(
            &net,
            Duration::from_secs(60),
            "all twelve queued in PostgreSQL",
            || ids.iter().all(|id| pg_rows(id) == 1),
        );
        net.start("C1");
        for id in &ids {
            wait_until(
                &net,
                Duration::from_secs(60),
                &format!("{id} at C1"),
                || net.rows("C1", id, "TEST.C1", "delivered") == 1,
            );
        }
        std::thread::sleep(Duration::from_millis(500));
        for id in &ids {
            let v = net.status("C1", id).unwrap();
            assert!(
                !v["trace"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["event"] == "duplicate"),
                "{id} delivered more than once: {v:#}"
            );
        }
        let states = rt.block_on(async {
            let store = signgate::store::Store::open(&url).await.unwrap();
            let s = store.route_outbox_states().await.unwrap();
            store.close().await;
            s
        });
        // both processes took part: the forwarding events name their workers
        let workers: std::collections::HashSet<String> = ids
            .iter()
            .flat_map(|id| {
                net.status("DA", id).unwrap()["trace"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["event"] == "forwarded")
                    .filter_map(|e| {
                        e["detail"]
                            .as_str()?
                            .rsplit_once("(worker ")
                            .map(|(_, w)| w.to_string())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(workers.len(), 2, "both DA processes delivered: {workers:?}");
        let delivered = states
            .iter()
            .find(|(s, _)| s == "delivered")
            .map(|(_, n)| *n)
            .unwrap_or(0);
        assert!(delivered >= 12, "{states:?}");
        assert!(
            !states.iter().any(|(s, _)| s == "dead" || s == "refused"),
            "{states:?}"
        );
    }
}

/// The 2025 merge of communes TEST.K4 and TEST.K5 into TEST.K3 (K5 served by K3's node) while
/// a document to K4 is in flight: the province's node resolves the old identifier through the
/// agency directory, delivers to the commune it was merged into and records the redirect;
/// nothing is lost or refused. At K3's node the successor holds what was addressed to the
/// merged communes — the document in flight, one delivered to K5 before the merge (reassigned
/// by `directory merge`), one sent to K5 after it — in its inbox, its status view (the original
/// addressee kept) and its acknowledgements, over HTTP and the CLI; K5's client sees nothing
/// left; a document addressed to both K4 and K3 is delivered to K3 once.
#[test]
fn directory_merge_redirects_documents_in_flight() {
    let spec: Vec<(&'static str, &str, Links)> = vec![
        ("K1", "TEST.K1", vec![("P3", s(&["*"]))]),
        (
            "P3",
            "TEST.P3",
            vec![
                ("K1", s(&["TEST.K1"])),
                ("K3", s(&["TEST.K3", "TEST.K5"])),
                ("K4", s(&["TEST.K4"])),
            ],
        ),
        ("K3", "TEST.K3", vec![("P3", s(&["*"]))]),
        ("K4", "TEST.K4", vec![("P3", s(&["*"]))]),
    ];
    let mut net = Net::new("merge", &spec, "", None);
    let k3 = net.nodes["K3"].config.clone();
    let text = std::fs::read_to_string(&k3).unwrap().replace(
        "serves = [\"TEST.K3\"]",
        "serves = [\"TEST.K3\", \"TEST.K5\"]",
    );
    std::fs::write(&k3, text).unwrap();
    // a synthetic directory (codes and names are not real) on the province's and the communes' nodes
    let dir = net.nodes["P3"].dir.clone();
    let units = dir.join("units.csv");
    let codes = dir.join("codes.csv");
    std::fs::write(&units, "code,name,level,parent_code,type\n91,Thử nghiệm,province,,Tỉnh\n91001,Một,commune,91,Xã\n91003,Ba,commune,91,Xã\n91004,Bốn,commune,91,Xã\n91005,Năm,commune,91,Xã\n").unwrap();
    std::fs::write(&codes, "gso_code,organ_id_qcvn102,organ_id_d20\n91,TEST.P3,H91.TEST\n91001,TEST.K1,H91.TEST.1\n91003,TEST.K3,H91.TEST.3\n91004,TEST.K4,H91.TEST.4\n91005,TEST.K5,H91.TEST.5\n").unwrap();
    let configs: HashMap<&str, PathBuf> = ["P3", "K3"]
        .iter()
        .map(|n| (*n, net.nodes[n].config.clone()))
        .collect();
    let directory = |node: &str, args: &[&str]| {
        let mut cmd = signgate(["directory"]);
        cmd.args(args)
            .arg("--config")
            .arg(&configs[node])
            .env("SIGNGATE_KEY_PASSWORD", "demo");
        let o = run(&mut cmd);
        assert_exit(&o, 0, &format!("directory {args:?} at {node}"));
    };
    for node in ["P3", "K3"] {
        directory(
            node,
            &[
                "import",
                "--structure",
                "2025",
                "--units",
                units.to_str().unwrap(),
                "--codes",
                codes.to_str().unwrap(),
            ],
        );
    }
    let from_k1 = |to: &[&str], number: &str, subject: &str| {
        envelope("TEST.K1", to, number, subject, Business::default())
    };
    // before the merge: a document delivered to TEST.K5 at K3's node
    net.start_all(&["K1", "K3", "P3"]);
    let before = doc_id("TEST.K1", "802");
    net.send(
        "K1",
        &from_k1(&["TEST.K5"], "802", "Gửi xã Năm trước sáp nhập"),
    );
    wait_until(&net, Duration::from_secs(40), "802 delivered to K5", || {
        net.has_status("K1", &before, "TEST.K5", "01")
    });
    // the province's node is down: the commune's document to TEST.K4 waits at K1
    net.kill("P3");
    let id = doc_id("TEST.K1", "801");
    net.send("K1", &from_k1(&["TEST.K4"], "801", "Gửi xã sắp sáp nhập"));
    wait_until(&net, Duration::from_secs(30), "801 queued at K1", || {
        net.rows("K1", &id, "TEST.K4", "forwarding") == 1
    });
    // meanwhile TEST.K4's and TEST.K5's communes are merged into TEST.K3
    for node in ["P3", "K3"] {
        directory(
            node,
            &[
                "merge",
                "--structure",
                "2025",
                "91004",
                "91005",
                "--into",
                "91003",
                "--effective",
                "2025-07-01",
            ],
        );
    }
    net.start("P3");
    wait_until(
        &net,
        Duration::from_secs(40),
        "801 in the merged commune's inbox",
        || net.rows("K3", &id, "TEST.K4", "delivered") == 1,
    );
    let v = net.status("P3", &id).unwrap();
    let redirect = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "redirected")
        .cloned();
    let redirect = redirect.unwrap_or_else(|| panic!("no redirect in the trace: {v:#}"));
    assert!(
        redirect["detail"].as_str().unwrap().contains("TEST.K3"),
        "{redirect}"
    );
    assert!(
        v["documents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["next_node"] == "K3"),
        "{v:#}"
    );
    wait_until(
        &net,
        Duration::from_secs(40),
        "01 from the merged commune back at K1",
        || net.has_status("K1", &id, "TEST.K3", "01"),
    );

    // after the merge: to TEST.K5 alone, and to both TEST.K4 and TEST.K3
    let after = doc_id("TEST.K1", "803");
    let both = doc_id("TEST.K1", "804");
    net.send(
        "K1",
        &from_k1(&["TEST.K5"], "803", "Gửi xã Năm sau sáp nhập"),
    );
    net.send(
        "K1",
        &from_k1(&["TEST.K4", "TEST.K3"], "804", "Gửi cả hai xã"),
    );
    wait_until(&net, Duration::from_secs(40), "803 and 804 at K3", || {
        net.rows("K3", &after, "TEST.K5", "delivered") == 1
            && net.rows("K3", &both, "TEST.K3", "delivered") == 1
    });
    assert_eq!(net.rows("K3", &both, "TEST.K4", "merged-duplicate"), 1);

    // the successor holds all four, each once, the original addressee kept
    let owner_of = |doc: &str, addressee: &str| {
        let v = net.status("K3", doc).unwrap();
        let row = v["documents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["recipient_organ"] == addressee && d["doc_type"] == 0)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {addressee}: {v:#}"));
        (row["owner_organ"].as_str().unwrap().to_string(), v)
    };
    for (doc, addressee) in [(&id, "TEST.K4"), (&before, "TEST.K5"), (&after, "TEST.K5")] {
        assert_eq!(owner_of(doc, addressee).0, "TEST.K3", "{doc}");
    }
    let (_, v) = owner_of(&before, "TEST.K5");
    assert!(
        v["trace"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "reassigned"
                && e["detail"]
                    .as_str()
                    .unwrap()
                    .contains("TEST.K5 merged into TEST.K3")),
        "{v:#}"
    );
    let successor = client_token(&net, "K3", "TEST.K3");
    let merged = client_token(&net, "K3", "TEST.K5");
    let (code, body) = api(&net, "K3", &successor, "inbox", None);
    assert_eq!(code, 200);
    let mut listed: Vec<&str> = body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["document_id"].as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [id.as_str(), before.as_str(), after.as_str(), both.as_str()],
        "{body:#}"
    );
    let (_, body) = api(&net, "K3", &merged, "inbox", None);
    assert_eq!(body["documents"], serde_json::json!([]), "{body:#}");
    let enc = signgate::routing::worker::encode;
    let (code, body) = api(
        &net,
        "K3",
        &successor,
        &format!("status?document_id={}", enc(&id)),
        None,
    );
    assert_eq!(code, 200, "{body:#}");
    assert_eq!(
        body["documents"][0]["recipient_organ"], "TEST.K4",
        "{body:#}"
    );
    assert_eq!(body["documents"][0]["owner_organ"], "TEST.K3", "{body:#}");
    // acknowledged by the successor: over HTTP for 801 and 802, with the CLI for 803
    for doc in [&id, &before] {
        let ack = serde_json::json!({"document_id": doc, "status": "03"})
            .to_string()
            .into_bytes();
        let (code, body) = api(&net, "K3", &successor, "ack", Some(ack));
        assert_eq!(code, 200, "{body:#}");
    }
    let o = net.route(
        "K3",
        &[
            "ack",
            "--document-id",
            &after,
            "--status",
            "05",
            "--recipient",
            "TEST.K3",
        ],
    );
    assert_exit(&o, 0, "route ack by the successor");
    for (doc, code) in [(&id, "03"), (&before, "03"), (&after, "05")] {
        wait_until(
            &net,
            Duration::from_secs(40),
            &format!("{code} from TEST.K3 back at K1 for {doc}"),
            || net.has_status("K1", doc, "TEST.K3", code),
        );
    }
}

/// A peer that answers 503 for a while: the sender retries with backoff (no refusal, no dead
/// letter) and delivers once the real node is back.
#[test]
fn a_peer_returning_errors_is_retried_then_delivered() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let spec: Vec<(&'static str, &str, Links)> = vec![
        ("P", "TEST.P", vec![("C1", s(&["TEST.C1"]))]),
        ("C1", "TEST.C1", vec![("P", s(&["*"]))]),
    ];
    let mut net = Net::new("errors", &spec, "", None);
    net.start("P");
    // a stand-in for C1 (its certificate, its port) that answers every delivery with 503
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    {
        use signgate::routing::tls;
        let c1 = &net.nodes["C1"];
        let identity = tls::TlsIdentity::open(&c1.p12, "demo").unwrap();
        let acceptor = tls::acceptor(&identity, &[pki().root()]).unwrap();
        let counter = hits.clone();
        let router = axum::Router::new().route(
            "/v1/route/envelopes",
            axum::routing::post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy") }
            }),
        );
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", c1.tls_port)))
            .unwrap();
        rt.spawn(tls::serve(listener, Arc::new(acceptor), router, async {
            let _ = stopped.await;
        }));
    }
    let id = doc_id("TEST.P", "901");
    net.send(
        "P",
        &envelope(
            "TEST.P",
            &["TEST.C1"],
            "901",
            "Khi xã báo lỗi",
            Business::default(),
        ),
    );
    wait_until(&net, Duration::from_secs(30), "three 503 answers", || {
        hits.load(Ordering::SeqCst) >= 3
    });
    assert_eq!(
        net.rows("P", &id, "TEST.C1", "forwarding"),
        1,
        "still queued, not refused"
    );
    let _ = stop.send(());
    rt.shutdown_timeout(Duration::from_secs(2));
    net.start("C1");
    wait_until(
        &net,
        Duration::from_secs(40),
        "901 delivered after the errors",
        || net.rows("C1", &id, "TEST.C1", "delivered") == 1,
    );
    wait_until(&net, Duration::from_secs(20), "901 forwarded at P", || {
        net.rows("P", &id, "TEST.C1", "forwarded") == 1
    });
}

/// A bearer token of a new API client of `agency` at node `name`.
pub(crate) fn client_token(net: &Net, name: &str, agency: &str) -> String {
    let mut cmd = signgate([
        "client", "add", "--agency", agency, "--name", "operator", "--config",
    ]);
    cmd.arg(&net.nodes[name].config)
        .env("SIGNGATE_KEY_PASSWORD", "demo");
    let o = run(&mut cmd);
    assert_exit(&o, 0, "client add");
    serde_json::from_str::<Value>(&stdout_str(&o)).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `METHOD /v1/route/PATH` at node `name` with `token`: the HTTP status and the JSON body.
pub(crate) fn api(
    net: &Net,
    name: &str,
    token: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let base = net.nodes[name].process.as_ref().unwrap().url.clone();
    let url = format!("{base}v1/route/{path}");
    let auth = format!("Bearer {token}");
    let result = match body {
        None => ureq::get(&url).set("Authorization", &auth).call(),
        Some(b) => ureq::post(&url)
            .set("Authorization", &auth)
            .set("Content-Type", "application/json")
            .send_bytes(&b),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Deliveries dead-lettered while the next node is down are put back to pending by
/// `route retry` (CLI) and `POST /v1/route/retry`, then delivered once; every operator view
/// over HTTP shows a client only its agency's documents (others answer 404).
#[test]
fn dead_letters_are_retried_and_operator_views_are_per_agency() {
    let spec: Vec<(&'static str, &str, Links)> = vec![
        ("P", "TEST.P", vec![("C1", s(&["TEST.C1"]))]),
        ("C1", "TEST.C1", vec![("P", s(&["*"]))]),
    ];
    let mut net = Net::new("retry", &spec, "", None);
    let p = net.nodes["P"].config.clone();
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("max_attempts = 30", "max_attempts = 2");
    std::fs::write(&p, text).unwrap();
    net.start("P");
    let a = doc_id("TEST.P", "951");
    let b = doc_id("TEST.P", "952");
    for (n, subject) in [
        ("951", "Thư chờ gửi lại"),
        ("952", "Thư chờ gửi lại qua API"),
    ] {
        let sent = net.send(
            "P",
            &envelope("TEST.P", &["TEST.C1"], n, subject, Business::default()),
        );
        assert_eq!(sent["status"], "01", "{sent}");
    }
    // C1 is down: both dead-lettered after two attempts
    for id in [&a, &b] {
        wait_until(&net, Duration::from_secs(30), "dead letters at P", || {
            net.rows("P", id, "TEST.C1", "dead") == 1
        });
    }
    let owner = client_token(&net, "P", "TEST.P");
    let other = client_token(&net, "P", "TEST.C9");
    let enc = signgate::routing::worker::encode;

    // another agency's client sees none of it and can act on none of it
    let (code, _) = api(
        &net,
        "P",
        &other,
        &format!("status?document_id={}", enc(&a)),
        None,
    );
    assert_eq!(code, 404);
    let (code, body) = api(&net, "P", &other, "outbox", None);
    assert_eq!(code, 200);
    assert_eq!(body["outbox"], serde_json::json!([]), "{body:#}");
    assert_eq!(body["documents"], serde_json::json!([]), "{body:#}");
    let retry_b = serde_json::json!({"document_id": b})
        .to_string()
        .into_bytes();
    let (code, _) = api(&net, "P", &other, "retry", Some(retry_b.clone()));
    assert_eq!(code, 404);
    let ack = serde_json::json!({"document_id": a, "status": "03"})
        .to_string()
        .into_bytes();
    let (code, _) = api(&net, "P", &other, "ack", Some(ack));
    assert_eq!(code, 404);
    // nor send for the province
    let base = net.nodes["P"].process.as_ref().unwrap().url.clone();
    let foreign = envelope("TEST.P", &["TEST.C1"], "953", "Gửi hộ", Business::default());
    let err = ureq::post(&format!("{base}v1/route/send"))
        .set("Authorization", &format!("Bearer {other}"))
        .send_bytes(&foreign)
        .expect_err("sending for another agency");
    let resp = match err {
        ureq::Error::Status(422, resp) => resp,
        other => panic!("{other:?}"),
    };
    let body: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
    assert_eq!(body["status"], "02");
    assert!(
        body["reason"].as_str().unwrap().contains("may not send"),
        "{body}"
    );

    // the province's client sees its documents and their dead letters
    let (code, body) = api(
        &net,
        "P",
        &owner,
        &format!("status?document_id={}", enc(&a)),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(body["documents"][0]["state"], "dead", "{body:#}");
    let (_, body) = api(&net, "P", &owner, "outbox", None);
    assert!(
        body["outbox"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s[0] == "dead" && s[1] == 2),
        "{body:#}"
    );

    // C1 is back: A retried by the CLI, B over HTTP; each delivered exactly once
    net.start("C1");
    let o = net.route(
        "P",
        &["retry", "--document-id", a.as_str(), "--to", "TEST.C1"],
    );
    assert_exit(&o, 0, "route retry");
    assert!(
        stdout_str(&o).contains("\"next_node\":\"C1\""),
        "{}",
        stdout_str(&o)
    );
    let (code, body) = api(&net, "P", &owner, "retry", Some(retry_b.clone()));
    assert_eq!(code, 200, "{body:#}");
    assert_eq!(body["requeued"].as_array().unwrap().len(), 1, "{body:#}");
    for id in [&a, &b] {
        wait_until(
            &net,
            Duration::from_secs(30),
            "retried delivery at C1",
            || net.rows("C1", id, "TEST.C1", "delivered") == 1,
        );
        wait_until(&net, Duration::from_secs(30), "forwarded at P", || {
            net.rows("P", id, "TEST.C1", "forwarded") == 1
        });
    }
    // nothing dead any more: a second retry finds nothing to do
    let o = net.route("P", &["retry", "--document-id", a.as_str()]);
    assert_exit(&o, 66, "route retry without a dead letter");
    let (code, _) = api(&net, "P", &owner, "retry", Some(retry_b));
    assert_eq!(code, 404);
    let v = net.status("P", &a).unwrap();
    let events: Vec<&str> = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let dead = events
        .iter()
        .position(|e| *e == "dead-letter")
        .expect("dead-letter");
    let retry = events.iter().position(|e| *e == "retry").expect("retry");
    let forwarded = events
        .iter()
        .rposition(|e| *e == "forwarded")
        .expect("forwarded");
    assert!(dead < retry && retry < forwarded, "{events:?}");

    // at C1: the commune's client has both in its inbox; the sender sees the document there,
    // another agency does not
    let commune = client_token(&net, "C1", "TEST.C1");
    let (_, body) = api(&net, "C1", &commune, "inbox", None);
    let ids: Vec<&str> = body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["document_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&a.as_str()) && ids.contains(&b.as_str()),
        "{body:#}"
    );
    let sender = client_token(&net, "C1", "TEST.P");
    let (_, body) = api(&net, "C1", &sender, "inbox", None);
    assert_eq!(body["documents"], serde_json::json!([]), "{body:#}");
    let (code, _) = api(
        &net,
        "C1",
        &sender,
        &format!("status?document_id={}", enc(&a)),
        None,
    );
    assert_eq!(code, 200);
    let stranger = client_token(&net, "C1", "TEST.C9");
    let (code, _) = api(
        &net,
        "C1",
        &stranger,
        &format!("status?document_id={}", enc(&a)),
        None,
    );
    assert_eq!(code, 404);
    let ack = serde_json::json!({"document_id": a, "status": "03"})
        .to_string()
        .into_bytes();
    let (code, _) = api(&net, "C1", &stranger, "ack", Some(ack.clone()));
    assert_eq!(code, 404);
    let (code, body) = api(&net, "C1", &commune, "ack", Some(ack));
    assert_eq!(code, 200, "{body:#}");
    wait_until(&net, Duration::from_secs(30), "03 back at P", || {
        net.has_status("P", &a, "TEST.C1", "03")
    });
}
