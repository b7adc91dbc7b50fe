//! The web console's routing desk, stamp kinds and certificate log-in (issue 18, items 3-5):
//!
//! - the routing desk in Debian's `chromium` (the WebDriver client of [`crate::console`])
//!   over the demo network (`signgate route demo` on free ports: a province node and two
//!   commune nodes, real mutual TLS between them): a clerk of the province picks a commune
//!   from the directory by name, sends a signed PDF, the commune's clerk finds it in the inbox,
//!   downloads the attachment (byte-identical) and answers 03, and the province's desk shows
//!   the document's timeline reaching 03; another agency's clerk gets 404; each action is in
//!   the audit chain under the clerk's name; axe-core on each page, screenshots;
//! - the official's signature placed by a click on the stamp desk, then the agency's seal over
//!   its left third; both signatures pass `signgate verify` and `pdfsig`;
//! - log-in by client certificate over the gateway's TLS, with curl: a certificate bound to an
//!   account gets a `Secure` session, an unbound or revoked one does not.

use std::ffi::OsStr;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use signgate::pki::demo::{LeafProfile, LeafSpec};

use crate::common::*;
use crate::console::{add_officer, login_at, write, Browser};

const PASSWORD: &str = "clerk-password-1";

/// GET `url` with `cookie`: status and body bytes.
fn fetch(url: &str, cookie: &str) -> (u16, Vec<u8>) {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let r = match agent.get(url).set("Cookie", cookie).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let status = r.status();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut body).expect("read body");
    (status, body)
}

/// `text` percent-encoded for a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The demo network, set up with console accounts, then started; killed when dropped.
struct Network {
    _child: KillOnDrop,
    net: Value,
    env: std::collections::HashMap<String, String>,
}

impl Network {
    /// `signgate route demo --setup-only` in `dir` (free ports), `accounts` (node, user name,
    /// agency, role) added to the nodes' databases, then `signgate route demo` until ready.
    fn start(dir: &Path, accounts: &[(&str, &str, &str, &str)]) -> Network {
        let demo = |setup: bool| {
            let mut c = signgate(["route", "demo", "--dir"]);
            c.arg(dir)
                .env("SIGNGATE_DEMO_PORT_BASE", "0")
                .env_remove("SIGNGATE_KEY_PASSWORD")
                .env_remove("SIGNGATE_DATABASE_URL");
            if setup {
                c.arg("--setup-only");
            }
            c
        };
        run_ok(&mut demo(true));
        let net: Value =
            serde_json::from_slice(&std::fs::read(dir.join("network.json")).expect("network.json"))
                .expect("network JSON");
        let pw = dir.join("clerk.pw");
        std::fs::write(&pw, PASSWORD).expect("password file");
        for (node, user, agency, role) in accounts {
            let config = dir.join(node).join("signgate.toml");
            run_ok(
                signgate(["user", "add", "--config"])
                    .arg(&config)
                    .args(["--username", user, "--agency", agency, "--role", role])
                    .args(["--name", &format!("Cán bộ {user}"), "--password-file"])
                    .arg(&pw)
                    .env("SIGNGATE_KEY_PASSWORD", "demo")
                    .env_remove("SIGNGATE_DATABASE_URL"),
            );
        }
        let mut cmd = demo(false);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn route demo");
        let stdout = child.stdout.take().expect("stdout");
        let child = KillOnDrop(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("demo network ready") => break,
                Ok(_) => {}
                Err(e) => panic!("route demo did not become ready: {e}"),
            }
        }
        let mut env = std::collections::HashMap::new();
        let text = std::fs::read_to_string(dir.join("env")).expect("env file");
        for line in text.lines().filter(|l| l.starts_with("export ")) {
            for pair in line["export ".len()..].split(' ') {
                if let Some((k, v)) = pair.split_once('=') {
                    env.insert(k.to_string(), v.trim_matches('\'').to_string());
                }
            }
        }
        Network {
            _child: child,
            net,
            env,
        }
    }

    /// The node called `name`.
    fn node(&self, name: &str) -> &Value {
        self.net["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("node {name}"))
    }

    /// `http://HOST:API_PORT/` of node `name`.
    fn base(&self, name: &str, host: &str) -> String {
        format!("http://{host}:{}/", self.node(name)["api_port"])
    }
}

/// Reloads `url` in the browser until `css` matches, for at most `secs` seconds.
fn wait_for(b: &Browser, url: &str, css: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        b.goto(url);
        let found = b.exec(
            "return document.querySelector(arguments[0]) !== null;",
            json!([css]),
        );
        if found == json!(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{css} never appeared on {url}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Audit actions at `base` (the agency's token) by `client`.
fn audited(base: &str, token: &str, client: &str) -> Vec<String> {
    let audit = request("GET", &format!("{base}v1/audit"), Some(token), None).json();
    audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["client"] == client)
        .filter_map(|r| r["action"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn routing_desk_sends_a_document_between_two_nodes_and_follows_it_to_accepted() {
    let Some(b) = Browser::start() else { return };
    let tmp = tempdir();
    let dir = tmp.path().join("net");
    let net = Network::start(
        &dir,
        &[
            ("province", "clerk-p", "DEMO.H01", "clerk"),
            ("commune-a", "clerk-a", "DEMO.H01.00004", "clerk"),
            ("province", "clerk-b", "DEMO.H01.00008", "clerk"),
        ],
    );
    // The province and the commune on different host names, so their cookies stay apart.
    let province = net.base("province", "127.0.0.1");
    let commune = net.base("commune-a", "localhost");
    let pdf = dir.join("congvan.pdf");
    run_ok(
        signgate(["sign", "--key"])
            .arg(dir.join("pki/agency-province.p12"))
            .arg("--in")
            .arg(sample_pdf())
            .arg("--out")
            .arg(&pdf)
            .env("SIGNGATE_KEY_PASSWORD", "demo"),
    );
    let sent_pdf = std::fs::read(&pdf).expect("signed PDF");

    // The province's clerk logs in and opens the routing desk.
    b.goto(&format!("{province}route"));
    assert!(b.url().contains("/login"), "{}", b.url());
    b.type_into("#username", "clerk-p");
    b.type_into("#password", PASSWORD);
    b.click("form[action='/login'] button[type=submit]");
    b.find("ul.tabs");
    assert!(b.url().ends_with("/route"), "{}", b.url());
    b.axe("routing desk inbox");
    b.screenshots("route-inbox");

    // A recipient from the directory, found by name without diacritics.
    b.click("a.button[href='/route/new']");
    b.type_into("#q", "ngoc ha");
    b.click("#search");
    b.find("input[name='to'][value='DEMO.H01.00008']");
    assert_eq!(
        b.exec(
            "return document.querySelectorAll(\"input[name='to']\").length;",
            json!([])
        ),
        json!(1),
        "a name search finds one commune"
    );
    // By province: both communes of Hà Nội.
    b.goto(&format!("{province}route/new?q=&province=01"));
    b.find("input[name='to'][value='DEMO.H01.00004']");
    b.find("input[name='to'][value='DEMO.H01.00008']");
    b.goto(&format!("{province}route/new?q=ba+dinh"));
    b.click("input[name='to'][value='DEMO.H01.00004']");
    b.type_into("#number", "21");
    b.type_into("#notation", "UBND-VP");
    b.type_into("#subject", "Về việc thử nghiệm bàn văn thư");
    b.type_into("#place", "Hà Nội");
    b.type_into("#signer", "Nguyễn Văn Mẫu");
    b.type_into("#document", pdf.to_str().expect("path"));
    b.axe("routing desk: new document");
    b.screenshots("route-new");
    b.click("#send");
    let document_id = b.text("#sent-id");
    assert!(
        document_id.starts_with("DEMO.H01,") && document_id.ends_with(",21/UBND-VP"),
        "{document_id}"
    );
    assert_eq!(
        b.attribute("p[role=status] .status", "data-code")
            .as_deref(),
        Some("01")
    );
    b.axe("routing desk: sent");
    b.screenshots("route-sent");
    let enc = encode(&document_id);

    // The commune's clerk finds it in the inbox, downloads it and accepts it (03).
    b.goto(&format!("{commune}login?next=/route"));
    b.type_into("#username", "clerk-a");
    b.type_into("#password", PASSWORD);
    b.click("form[action='/login'] button[type=submit]");
    let row = format!("li.doc[data-document-id='{document_id}'] a");
    wait_for(&b, &format!("{commune}route"), &row, 90);
    b.axe("routing desk inbox with a document");
    b.click(&row);
    b.find("#ack-form");
    let attachment = b
        .attribute("a.attachment", "href")
        .expect("attachment link");
    let commune_cookie = format!("sg_session={}", b.cookie("sg_session").expect("session"));
    let (status, received) = fetch(
        &format!("{commune}{}", attachment.trim_start_matches('/')),
        &commune_cookie,
    );
    assert_eq!(status, 200);
    assert!(received == sent_pdf, "the attachment is byte-identical");
    let (status, envelope) = fetch(
        &format!("{commune}route/download?document_id={enc}"),
        &commune_cookie,
    );
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&envelope).contains("edXMLEnvelope"),
        "the envelope"
    );
    b.axe("routing desk: received document");
    b.screenshots("route-received");
    b.click("#ack");
    wait_for(
        &b,
        &format!("{commune}route/document?document_id={enc}"),
        ".recipients .state[data-state='accepted']",
        30,
    );

    // Back at the province: the timeline reaches 03, after 01.
    b.goto(&format!("{province}route/document?document_id={enc}"));
    wait_for(
        &b,
        &format!("{province}route/document?document_id={enc}"),
        ".timeline li[data-code='03']",
        90,
    );
    let codes = b.exec(
        "return Array.from(document.querySelectorAll('.timeline li[data-code]')).map(li => li.dataset.code);",
        json!([]),
    );
    let codes: Vec<&str> = codes
        .as_array()
        .expect("codes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let first = |c: &str| codes.iter().position(|x| *x == c);
    assert!(
        matches!((first("01"), first("03")), (Some(i), Some(j)) if i < j),
        "{codes:?}"
    );
    b.axe("routing desk: timeline");
    b.screenshots("route-timeline");
    // The sent list shows it, with its last status.
    b.goto(&format!("{province}route?view=sent"));
    b.find(&format!(
        "li.doc[data-document-id='{document_id}'] .status[data-code='03']"
    ));

    // Another agency's clerk on the province node: not found, as a missing document.
    let other = login_at(&province, "clerk-b", PASSWORD).expect("clerk-b logs in");
    let (status, page) = fetch(
        &format!("{province}route/document?document_id={enc}"),
        &other,
    );
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&page));
    let (status, _) = fetch(
        &format!("{province}route/download?document_id={enc}&n=0"),
        &other,
    );
    assert_eq!(status, 404);
    let (status, page) = fetch(&format!("{province}route?view=sent&state=all"), &other);
    assert_eq!(status, 200);
    assert!(
        !String::from_utf8_lossy(&page).contains(&document_id),
        "another agency's list shows the document"
    );
    // A form without the session's CSRF token is refused.
    let (body, content_type) = multipart(&[
        ("document_id", None, document_id.as_bytes()),
        ("status", None, b"04"),
    ]);
    let refused = match ureq::post(&format!("{commune}route/ack"))
        .set("Content-Type", &content_type)
        .set("Cookie", &commune_cookie)
        .send_bytes(&body)
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("ack: {e}"),
    };
    assert_eq!(refused, 403);

    // Every action is in the audit chain under the clerk's name.
    let sent = audited(&province, &net.env["PROVINCE_TOKEN"], "officer:clerk-p");
    assert!(sent.iter().any(|a| a == "route.send"), "{sent:?}");
    let acted = audited(&commune, &net.env["COMMUNE_A_TOKEN"], "officer:clerk-a");
    for action in ["route.download", "route.ack"] {
        assert!(acted.iter().any(|a| a == action), "{action}: {acted:?}");
    }
}

/// The `/Rect` arrays of the signature widgets in `pdf`, in file order.
fn widget_rects(pdf: &[u8]) -> Vec<[f64; 4]> {
    let text = String::from_utf8_lossy(pdf);
    text.split("/Rect")
        .skip(1)
        .filter_map(|r| {
            let nums: Vec<f64> = r
                .trim_start_matches([' ', '['])
                .split(']')
                .next()?
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            (nums.len() == 4).then(|| [nums[0], nums[1], nums[2], nums[3]])
        })
        .collect()
}

/// `signgate verify` and (when installed) `pdfsig` of `path`: `n` intact, valid signatures.
fn assert_signatures(path: &Path, n: usize) {
    let mut c = signgate(["verify", "--offline", "--trust"]);
    c.arg(repo_root().join("certs/demo/root-ca.pem")).arg(path);
    let out = run(&mut c);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify: {e}: {}", stderr_str(&out)));
    let sigs = report["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), n, "{report}");
    assert!(sigs.iter().all(|s| s["intact"] == true), "{report}");
    if require_tool("pdfsig").is_some() {
        let nss = NssDb::new(&repo_root().join("certs/demo/root-ca.pem"));
        let report = pdfsig(&nss, path);
        assert_eq!(report.signatures.len(), n, "{}", report.raw);
        assert!(
            report.signatures.iter().all(|s| s.signature_valid()),
            "{}",
            report.raw
        );
    }
}

/// Signs what the desk's form holds and downloads it; the signed bytes.
fn sign_and_download(b: &Browser, gw: &DemoGateway, cookie: &str) -> Vec<u8> {
    b.click("#sign");
    let href = b.attribute("#download", "href").expect("download link");
    let (status, pdf) = fetch(&gw.url(href.trim_start_matches('/')), cookie);
    assert_eq!(status, 200);
    assert!(pdf.starts_with(b"%PDF"), "not a PDF");
    pdf
}

#[test]
fn stamp_desk_places_the_officials_signature_by_click_then_the_seal_over_it() {
    let Some(b) = Browser::start() else { return };
    let gw = DemoGateway::start();
    add_officer(&gw);
    let dir = gw.dir.path();
    b.goto(&gw.url("login?next=/desk"));
    b.type_into("#username", "officer1");
    b.type_into("#password", crate::console::PASSWORD);
    b.click("form[action='/login'] button[type=submit]");
    b.find("#stampbox");
    let cookie = format!("sg_session={}", b.cookie("sg_session").expect("session"));

    // The official's signature, its box centred where the page box is clicked.
    b.type_into("#document", sample_pdf().to_str().expect("path"));
    b.click("#kind-signature");
    let image = repo_root().join("tests/data/images/signature.png");
    b.type_into("#signature_image", image.to_str().expect("path"));
    b.find("#stampbox[data-rendered='1'] canvas");
    b.click("#stampbox");
    let value = |css: &str| -> f64 {
        b.property(css, "value")
            .as_str()
            .unwrap_or("")
            .parse()
            .expect("a number")
    };
    let (x, y) = (value("#x"), value("#y"));
    b.axe("desk: the official's signature");
    b.screenshots("desk-signature");
    let signed = sign_and_download(&b, &gw, &cookie);
    let first = write(dir, "official.pdf", &signed);
    assert_signatures(&first, 1);
    let rects = widget_rects(&signed);
    let r = *rects.last().expect("a widget");
    let (w, h) = (r[2] - r[0], r[3] - r[1]);
    assert!(
        (w - 210.0).abs() < 1.0 && (h - 100.0).abs() < 1.0,
        "signature box {r:?}"
    );
    let (cx, cy) = ((r[0] + r[2]) / 2.0, (r[1] + r[3]) / 2.0);
    assert!(
        (cx - x).abs() < 2.0 && (cy - y).abs() < 2.0,
        "box at {r:?}, click at ({x}, {y})"
    );

    // The agency's seal over the left third of that signature, then both verify.
    b.goto(&gw.url("desk"));
    b.type_into("#document", first.to_str().expect("path"));
    b.click("#kind-seal-over");
    let sealed = sign_and_download(&b, &gw, &cookie);
    let second = write(dir, "official-sealed.pdf", &sealed);
    assert!(sealed.starts_with(&signed), "an incremental update");
    assert_signatures(&second, 2);
    let seal = *widget_rects(&sealed).last().expect("the seal's widget");
    assert!(
        (seal[2] - (r[0] + w / 3.0)).abs() < 1.0,
        "seal {seal:?} over the left third of {r:?}"
    );
    // The marks are audited with their kind under the officer's name.
    let audit = request(
        "GET",
        &gw.url("v1/audit?action=sign"),
        Some(&gw.token),
        None,
    )
    .json();
    let kinds: Vec<&str> = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["client"] == "officer:officer1")
        .filter_map(|r| r["record"]["subject"]["stamp"].as_str())
        .collect();
    assert_eq!(kinds, ["signature", "seal-over-signature"], "{audit}");
}

/// Runs curl with `args`; the HTTP status (0 without an HTTP exchange) and the headers.
fn curl(args: &[&OsStr], dir: &Path) -> (u16, String, String) {
    let headers = dir.join(format!("headers-{}", rand::random::<u32>()));
    let body = dir.join(format!("body-{}", rand::random::<u32>()));
    let out = Command::new("curl")
        .args(["-sS", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&headers)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        status,
        std::fs::read_to_string(&headers).unwrap_or_default(),
        std::fs::read_to_string(&body).unwrap_or_default(),
    )
}

#[test]
fn officers_log_in_with_a_client_certificate_bound_to_their_account() {
    if !require_tools(&["curl"]) {
        return;
    }
    let tmp = tempdir();
    let dir = tmp.path();
    let (pki_dir, mut pki) = generate_demo_pki("http://127.0.0.1:9/");
    let mut issue = |name: &str| {
        let leaf = pki
            .issue_leaf(
                &LeafSpec::new(&format!("console test {name}")).with_profile(LeafProfile::Node),
                &dir.join(format!("{name}.p12")),
            )
            .expect("issue leaf");
        leaf_pem_files(&leaf, dir, name)
    };
    let (server_key, server_cert) = issue("server");
    let bound = issue("bound");
    let unbound = issue("unbound");
    let revoked = issue("revoked");
    let root = pki_dir.path().join("root-ca.pem");
    let issuing = pki_dir.path().join("issuing-ca.pem");
    let chain = dir.join("server-chain.pem");
    let mut pem = std::fs::read(&server_cert).expect("server cert");
    pem.extend(std::fs::read(&issuing).expect("issuing CA"));
    std::fs::write(&chain, pem).expect("chain");
    let config = dir.join("signgate.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\noffline = true\n\
             trust = [{root:?}]\n\n[[keys]]\nname = \"demo-agency\"\nagency = \"demo\"\np12 = {p12:?}\n\
             password_env = \"SG_TEST_KEY_PASSWORD\"\n\n\
             [tls]\ncert = {chain:?}\nkey = {server_key:?}\nclient_ca = [{root:?}, {issuing:?}]\n",
            data = dir.join("data"),
            p12 = repo_root().join("certs/demo/agency-signer.p12"),
        ),
    )
    .expect("config");
    let pw = write(dir, "pw", PASSWORD.as_bytes());
    let admin = |args: &[&str]| {
        let mut c = signgate(["user"]);
        c.args(args)
            .arg("--config")
            .arg(&config)
            .env("SG_TEST_KEY_PASSWORD", "demo")
            .env_remove("SIGNGATE_DATABASE_URL");
        run_ok(&mut c)
    };
    admin(&[
        "add",
        "--username",
        "officer1",
        "--agency",
        "demo",
        "--name",
        "Lê Thị Bình",
        "--password-file",
        pw.to_str().expect("path"),
    ]);
    let cert_arg = |p: &PathBuf| p.to_str().expect("path").to_string();
    let out = admin(&["bind-cert", "officer1", "--cert", &cert_arg(&bound.1)]);
    assert!(
        stdout_str(&out).contains("cert_fingerprint"),
        "{}",
        stdout_str(&out)
    );
    admin(&["bind-cert", "officer1", "--cert", &cert_arg(&revoked.1)]);
    admin(&["revoke-cert", "officer1", "--cert", &cert_arg(&revoked.1)]);
    let server = SigngateServer::start(
        &[
            OsStr::new("serve"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[("SG_TEST_KEY_PASSWORD", "demo")],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let url = |path: &str| format!("https://127.0.0.1:{}/{path}", server.port);

    // Log-in with (key, cert), or with no certificate: the session cookie's header, if any.
    let attempt = |who: Option<&(PathBuf, PathBuf)>, name: &str| -> (u16, Option<String>) {
        let jar = dir.join(format!("jar-{name}"));
        let mut base: Vec<&OsStr> = vec![OsStr::new("--cacert"), root.as_os_str()];
        if let Some((key, cert)) = who {
            base.extend([
                OsStr::new("--cert"),
                cert.as_os_str(),
                OsStr::new("--key"),
                key.as_os_str(),
            ]);
        }
        let mut get = base.clone();
        let login = url("login");
        get.extend([OsStr::new("-c"), jar.as_os_str(), OsStr::new(&login)]);
        let (status, _, page) = curl(&get, dir);
        assert_eq!(status, 200, "login page");
        assert_eq!(
            page.contains("action=\"/login/certificate\""),
            who.is_some(),
            "the certificate button is offered only to a connection with a certificate"
        );
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("csrf field")
            .to_string();
        let field = format!("csrf={csrf}");
        let target = url("login/certificate");
        let mut post = base.clone();
        post.extend([
            OsStr::new("-b"),
            jar.as_os_str(),
            OsStr::new("-F"),
            OsStr::new(&field),
            OsStr::new(&target),
        ]);
        let (status, headers, _) = curl(&post, dir);
        let cookie = headers
            .lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with("set-cookie: sg_session=")
            })
            .map(str::to_string);
        (status, cookie)
    };

    let (status, cookie) = attempt(Some(&bound), "bound");
    assert_eq!(status, 303, "a bound certificate logs in");
    let cookie = cookie.expect("a session cookie");
    assert!(
        cookie.contains("; Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie
        .split_once(": ")
        .and_then(|(_, v)| v.split(';').next())
        .expect("cookie pair")
        .trim()
        .to_string();
    // The session opens the desk over TLS (no certificate needed any more).
    let (status, _, page) = curl(
        &[
            OsStr::new("--cacert"),
            root.as_os_str(),
            OsStr::new("-H"),
            OsStr::new(&format!("Cookie: {session}")),
            OsStr::new(&url("desk")),
        ],
        dir,
    );
    assert_eq!(status, 200, "{session}");
    assert!(
        page.contains("Lê Thị Bình"),
        "the officer's name on the page"
    );

    for (who, name) in [
        (Some(&unbound), "unbound"),
        (Some(&revoked), "revoked"),
        (None, "none"),
    ] {
        let (status, cookie) = attempt(who, name);
        assert_eq!(status, 401, "{name}");
        assert!(cookie.is_none(), "{name}: {cookie:?}");
    }
}
