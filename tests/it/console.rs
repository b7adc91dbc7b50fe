//! The web console in a real browser (issue 18): Debian's `chromium`, driven over the W3C
//! WebDriver protocol by `chromedriver` (a small client below, over `ureq`), against a real
//! `signgate serve` on a loopback port. It verifies a valid and a tampered PDF and reads the
//! verdicts from the page, fails a log-in, logs in, places the stamp by a click on the stamp
//! desk, signs and downloads, and checks the download with `signgate verify` and `pdfsig`.
//! axe-core (vendored from npm in `tests/e2e/axe-core/`, injected by the test only) must find
//! no serious or critical violation on any page; screenshots at desktop and phone widths go to
//! `target/console-screenshots/`. Forms without their CSRF token and session cookies on `/v1`
//! are refused (plain HTTP, no browser needed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::*;

mod desk_batch;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
pub(crate) const PASSWORD: &str = "officer-password-1";

/// A chromedriver child and one headless chromium session.
pub(crate) struct Browser {
    base: String,
    child: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a session; `None` (a skip, or a failure under `CI=true`) when
    /// chromium or chromedriver is missing.
    pub(crate) fn start() -> Option<Browser> {
        let chromium = require_tool("chromium")?;
        let driver = require_tool("chromedriver")?;
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        assert!(
            wait_for_port(port, Duration::from_secs(20)),
            "chromedriver did not listen"
        );
        let profile = tempdir();
        let mut browser = Browser {
            base: format!("http://127.0.0.1:{port}"),
            child,
            _profile: profile,
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", browser._profile.path().display())]
            }
        }}});
        let session = browser.call("POST", "/session", Some(caps));
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
            .to_string();
        browser.base = format!("{}/session/{id}", browser.base);
        // Generous limits: the machine running the tests may be loaded (axe takes seconds).
        browser.call(
            "POST",
            "/timeouts",
            Some(json!({"script": 180_000, "pageLoad": 180_000})),
        );
        Some(browser)
    }

    /// One WebDriver command; its `value`.
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = ureq::request(method, &url).timeout(Duration::from_secs(240));
        let result = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {url}: {e}"),
        };
        let status = response.status();
        let text = response.into_string().expect("WebDriver answer");
        let v: Value = serde_json::from_str(&text).expect("WebDriver answers JSON");
        assert!(status < 400, "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    pub(crate) fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The element `css` matches, waiting up to 60 s for it.
    pub(crate) fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.exec(
                "return document.querySelector(arguments[0]) !== null;",
                json!([css]),
            );
            if found == json!(true) {
                let v = self.call(
                    "POST",
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                );
                return v[ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("element id: {v}"))
                    .to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no element {css}: {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn click(&self, css: &str) {
        let id = self.find(css);
        // WebDriver clicks the centre of the element's part in view: bring all of it in.
        self.exec(
            "arguments[0].scrollIntoView({block: 'center', inline: 'center'});",
            json!([{ ELEMENT: id }]),
        );
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    pub(crate) fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/attribute/{name}"), None)
            .as_str()
            .map(str::to_string)
    }

    pub(crate) fn property(&self, css: &str, name: &str) -> Value {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/property/{name}"), None)
    }

    pub(crate) fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) fn exec(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The value of cookie `name` in the browser.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        let all = self.call("GET", "/cookie", None);
        all.as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["value"].as_str())
            .map(str::to_string)
    }

    /// Emulates a viewport of `width` CSS pixels (a phone when `mobile`).
    pub(crate) fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.call(
            "POST",
            "/goog/cdp/execute",
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}}),
            ),
        );
    }

    /// Screenshots of the current page at desktop and phone widths, as `NAME-desktop.png` and
    /// `NAME-phone.png` in `target/console-screenshots/`.
    pub(crate) fn screenshots(&self, name: &str) {
        let dir = repo_root().join("target/console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        for (suffix, width, height, mobile) in
            [("desktop", 1280, 900, false), ("phone", 390, 844, true)]
        {
            self.viewport(width, height, mobile);
            let png = self.call("GET", "/screenshot", None);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(png.as_str().expect("screenshot"))
                .expect("base64 PNG");
            assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
            std::fs::write(dir.join(format!("{name}-{suffix}.png")), bytes).expect("write PNG");
            if mobile {
                // The page fits the phone: no horizontal scrolling.
                let wide = self.exec(
                    "return document.documentElement.scrollWidth > window.innerWidth + 1;",
                    json!([]),
                );
                assert_eq!(wide, json!(false), "{name} scrolls sideways on a phone");
            }
        }
        self.viewport(1280, 900, false);
    }

    /// Runs axe-core on the current page; panics listing serious and critical violations.
    pub(crate) fn axe(&self, page: &str) {
        let axe = std::fs::read_to_string(repo_root().join("tests/e2e/axe-core/axe.min.js"))
            .expect("tests/e2e/axe-core/axe.min.js");
        self.exec(&format!("{axe}\nreturn true;"), json!([]));
        let script = "const done = arguments[arguments.length - 1];\
            axe.run(document).then(r => done(r.violations\
              .filter(v => v.impact === 'serious' || v.impact === 'critical')\
              .map(v => ({id: v.id, impact: v.impact, help: v.help,\
                          nodes: v.nodes.map(n => n.target.join(' '))}))),\
              e => done([{id: 'axe-error', help: String(e)}]));";
        let violations = self.call(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        );
        let ran = self.exec("return typeof axe === 'object';", json!([]));
        assert_eq!(ran, json!(true), "axe did not load on {page}");
        assert_eq!(
            violations,
            json!([]),
            "axe: serious or critical violations on {page}"
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::request("DELETE", &self.base)
            .timeout(Duration::from_secs(10))
            .call();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds the officer account of agency `demo` to the gateway's database.
pub(crate) fn add_officer(gw: &DemoGateway) {
    let pw = gw.dir.path().join("officer.pw");
    std::fs::write(&pw, PASSWORD).expect("password file");
    run_ok(&mut demo_admin(
        gw.dir.path(),
        &[
            "user",
            "add",
            "--username",
            "officer1",
            "--agency",
            "demo",
            "--name",
            "Nguyễn Văn An",
            "--role",
            "officer",
            "--password-file",
            pw.to_str().expect("utf-8 path"),
        ],
    ));
}

/// `signgate verify --offline` of `pdf` against the demo root: one intact signature.
fn assert_signgate_verifies(pdf: &Path) {
    let mut c = signgate(["verify", "--offline", "--trust"]);
    c.arg(repo_root().join("certs/demo/root-ca.pem")).arg(pdf);
    let out = run(&mut c);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify: {e}: {}", stderr_str(&out)));
    let sigs = report["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), 1, "{report}");
    assert_eq!(sigs[0]["intact"], true, "{report}");
    assert!(
        sigs[0]["signer"]["subject"].is_string(),
        "no signer: {report}"
    );
}

pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

#[test]
fn the_console_in_a_real_browser() {
    let Some(b) = Browser::start() else { return };
    let gw = DemoGateway::start();
    add_officer(&gw);
    let dir = gw.dir.path();
    let sample = std::fs::read(sample_pdf()).expect("sample.pdf");
    let signed = gw.post("v1/sign?key=demo-agency", &sample);
    assert_eq!(signed.status, 200);
    let valid = write(dir, "valid.pdf", &signed.body);
    // One byte of the signed range changed (inside the header's binary comment).
    let mut bytes = signed.body.clone();
    bytes[10] ^= 0x01;
    let tampered = write(dir, "tampered.pdf", &bytes);

    // Home, in Vietnamese by default; English on ?lang=en.
    b.goto(&gw.url(""));
    assert_eq!(b.attribute("html", "lang").as_deref(), Some("vi"));
    b.axe("home");
    b.screenshots("home");
    b.goto(&gw.url("?lang=en"));
    assert_eq!(b.attribute("html", "lang").as_deref(), Some("en"));
    b.goto(&gw.url("verify"));
    assert_eq!(
        b.attribute("html", "lang").as_deref(),
        Some("en"),
        "the choice is remembered"
    );
    b.goto(&gw.url("verify?lang=vi"));

    // The verify page: a valid document.
    b.axe("verify");
    b.screenshots("verify");
    b.type_into("#document", valid.to_str().expect("path"));
    // The pages are drawn in the browser with the signature field outlined.
    let deadline = Instant::now() + Duration::from_secs(60);
    let drawn = loop {
        let drawn = b.exec(
            "return document.getElementById('pages').dataset.drawn || null;",
            json!([]),
        );
        if !drawn.is_null() || Instant::now() > deadline {
            break drawn;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(drawn, json!("1"), "pages not drawn");
    b.find("#pages canvas");
    b.find("#pages .sigfield");
    b.click("form[action='/verify'] button[type=submit]");
    let verdict = b.text(".verdict.overall");
    assert_eq!(
        b.attribute(".verdict.overall", "data-indication")
            .as_deref(),
        Some("TOTAL_PASSED"),
        "{verdict}"
    );
    assert!(verdict.starts_with("Hợp lệ"), "{verdict}");
    let signer = b.text(".signature dl");
    assert!(
        signer.contains("Người ký") && signer.contains("Thời điểm ký"),
        "{signer}"
    );
    b.axe("verify result (valid)");
    b.screenshots("verify-valid");
    // The full report as a JSON download.
    let href = b.attribute("#report-json", "href").expect("report link");
    let encoded = href
        .strip_prefix("data:application/json;base64,")
        .expect("a JSON data URL");
    let report: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64"),
    )
    .expect("JSON report");
    assert_eq!(report["indication"], "TOTAL_PASSED", "{report}");

    // A tampered document.
    b.goto(&gw.url("verify"));
    b.type_into("#document", tampered.to_str().expect("path"));
    b.click("form[action='/verify'] button[type=submit]");
    let verdict = b.text(".signature .verdict");
    assert_eq!(
        b.attribute(".verdict.overall", "data-indication")
            .as_deref(),
        Some("TOTAL_FAILED"),
        "{verdict}"
    );
    assert!(verdict.starts_with("Không hợp lệ"), "{verdict}");
    b.axe("verify result (tampered)");
    b.screenshots("verify-tampered");

    // The stamp desk needs a log-in; a wrong password fails with a sentence.
    b.goto(&gw.url("desk"));
    assert!(b.url().contains("/login"), "{}", b.url());
    b.axe("login");
    b.screenshots("login");
    b.type_into("#username", "officer1");
    b.type_into("#password", "wrong password!");
    b.click("form[action='/login'] button[type=submit]");
    let alert = b.text(".alert");
    assert!(alert.contains("không đúng"), "{alert}");
    assert!(
        b.cookie("sg_session").is_none(),
        "no session after a failure"
    );
    b.type_into("#username", "officer1");
    b.type_into("#password", PASSWORD);
    b.click("form[action='/login'] button[type=submit]");
    b.find("#stampbox");
    assert!(b.url().ends_with("/desk"), "{}", b.url());
    let session = b.cookie("sg_session").expect("session cookie");

    // Place the stamp with a click on the page box (its centre: the middle of an A4 page).
    b.axe("desk");
    b.type_into("#document", sample_pdf().to_str().expect("path"));
    // pdf.js (served by the gateway, no eval) draws page 1 in the box: some pixels are ink.
    b.find("#stampbox[data-rendered='1'] canvas");
    let inked = b.exec(
        "const c = document.querySelector('#stampbox canvas');\
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;\
         let n = 0; for (let i = 0; i < d.length; i += 4) { if (d[i] < 128 && d[i + 3] > 0) n++; }\
         return n;",
        json!([]),
    );
    assert!(inked.as_u64().unwrap_or(0) > 100, "page not drawn: {inked}");
    b.click("#stampbox");
    let x: f64 = b
        .property("#x", "value")
        .as_str()
        .unwrap_or("")
        .parse()
        .expect("x");
    let y: f64 = b
        .property("#y", "value")
        .as_str()
        .unwrap_or("")
        .parse()
        .expect("y");
    assert!(
        (x - 297.5).abs() < 6.0 && (y - 421.0).abs() < 6.0,
        "click at the centre gave ({x}, {y})"
    );
    b.screenshots("desk");
    b.click("#sign");
    let href = b.attribute("#download", "href").expect("download link");
    b.axe("desk result");
    b.screenshots("desk-signed");
    let download = ureq::get(&gw.url(href.trim_start_matches('/')))
        .set("Cookie", &format!("sg_session={session}"))
        .call()
        .expect("download");
    let mut pdf = Vec::new();
    std::io::Read::read_to_end(&mut download.into_reader(), &mut pdf).expect("read");
    assert!(
        pdf.starts_with(b"%PDF") && pdf.len() > sample.len(),
        "not a signed PDF"
    );
    let out = write(dir, "desk-signed.pdf", &pdf);
    assert_signgate_verifies(&out);
    if require_tool("pdfsig").is_some() {
        let nss = NssDb::new(&repo_root().join("certs/demo/root-ca.pem"));
        let report = pdfsig(&nss, &out);
        assert_eq!(report.signatures.len(), 1, "{}", report.raw);
        assert!(report.signatures[0].signature_valid(), "{}", report.raw);
    }
    // The seal is centred on the click: its widget's rectangle is around (297.5, 421).
    let text = String::from_utf8_lossy(&pdf);
    let rect = text
        .split("/Rect")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .map(|r| {
            r.trim_start_matches([' ', '['])
                .split_whitespace()
                .filter_map(|n| n.parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .expect("a widget /Rect");
    assert_eq!(rect.len(), 4, "{rect:?}");
    let (cx, cy) = ((rect[0] + rect[2]) / 2.0, (rect[1] + rect[3]) / 2.0);
    assert!(
        (cx - x).abs() < 2.0 && (cy - y).abs() < 2.0,
        "seal at {rect:?}, click at ({x}, {y})"
    );
    // The signature is in the audit chain under the officer's name.
    let audit = request(
        "GET",
        &gw.url("v1/audit?action=sign"),
        Some(&gw.token),
        None,
    )
    .json();
    let records = audit["records"].as_array().expect("records");
    assert!(
        records.iter().any(|r| r["client"] == "officer:officer1"),
        "{audit}"
    );

    // Log out: the session cookie stops working.
    b.goto(&gw.url("desk"));
    b.click("form[action='/logout'] button");
    b.find("ul.cards");
    let after = ureq::AgentBuilder::new()
        .redirects(0)
        .build()
        .get(&gw.url("desk"))
        .set("Cookie", &format!("sg_session={session}"))
        .call()
        .expect("desk");
    assert_eq!(after.status(), 303, "the old session still opens the desk");
}

/// Plain HTTP: forms without their CSRF token are refused, a session cookie does not
/// authenticate `/v1`, failed log-ins are throttled, and every page has the strict CSP.
#[test]
fn csrf_sessions_and_headers_over_plain_http() {
    let gw = DemoGateway::start();
    add_officer(&gw);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let get = |path: &str| -> ureq::Response {
        match agent.get(&gw.url(path)).call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{path}: {e}"),
        }
    };
    let post = |path: &str, cookie: &str, parts: &[(&str, Option<&str>, &[u8])]| -> u16 {
        let (body, content_type) = multipart(parts);
        match agent
            .post(&gw.url(path))
            .set("Content-Type", &content_type)
            .set("Cookie", cookie)
            .send_bytes(&body)
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(e) => panic!("{path}: {e}"),
        }
    };
    for path in ["", "verify", "login"] {
        let r = get(path);
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{path}: {csp}"
        );
        let body = r.into_string().expect("page");
        assert!(!body.contains("<script>"), "inline script on {path}");
    }
    // The login form's CSRF cookie and token.
    let login = get("login");
    let set = login.header("set-cookie").unwrap_or_default().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let pre = set
        .split(';')
        .next()
        .and_then(|c| c.strip_prefix("sg_pre="))
        .expect("sg_pre cookie")
        .to_string();
    let cookie = format!("sg_pre={pre}");
    let creds: [(&str, Option<&str>, &[u8]); 2] = [
        ("username", None, b"officer1"),
        ("password", None, PASSWORD.as_bytes()),
    ];
    // Without the token, or with another one: 403, no session.
    assert_eq!(post("login", &cookie, &creds), 403);
    let wrong: Vec<_> = creds
        .iter()
        .copied()
        .chain([("csrf", None, &b"pre_0000000000000000"[..])])
        .collect();
    assert_eq!(post("login", &cookie, &wrong), 403);
    // With it: a session.
    let good: Vec<_> = creds
        .iter()
        .copied()
        .chain([("csrf", None, pre.as_bytes())])
        .collect();
    let (body, content_type) = multipart(&good);
    let r = agent
        .post(&gw.url("login"))
        .set("Content-Type", &content_type)
        .set("Cookie", &cookie)
        .send_bytes(&body)
        .expect("login");
    assert_eq!(r.status(), 303);
    let session = r
        .all("set-cookie")
        .into_iter()
        .find_map(|c| c.split(';').next()?.strip_prefix("sg_session="))
        .expect("session cookie")
        .to_string();
    let session_cookie = format!("sg_session={session}");
    // The stamp desk without the session's CSRF token: 403.
    let pdf = std::fs::read(sample_pdf()).expect("sample");
    let sign: [(&str, Option<&str>, &[u8]); 5] = [
        ("document", Some("a.pdf"), &pdf),
        ("key", None, b"demo-agency"),
        ("page", None, b"1"),
        ("x", None, b"300"),
        ("y", None, b"300"),
    ];
    assert_eq!(post("desk/sign", &session_cookie, &sign), 403);
    // The session cookie does not authenticate the API.
    let r = request_with(
        "POST",
        &gw.url("v1/verify"),
        None,
        &[("Cookie", &session_cookie)],
        Some(&pdf),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "UNAUTHORIZED");
    // The public verify page without its token: 403.
    assert_eq!(
        post("verify", &cookie, &[("document", Some("a.pdf"), &pdf)]),
        403
    );
    // Five failed log-ins, then refused for a while even with the right password.
    let bad: Vec<_> = [
        ("username", None, &b"officer1"[..]),
        ("password", None, b"not the password"),
        ("csrf", None, pre.as_bytes()),
    ]
    .to_vec();
    for _ in 0..5 {
        assert_eq!(post("login", &cookie, &bad), 401);
    }
    assert_eq!(post("login", &cookie, &good), 429);
    // The console's requests are counted by route in the metrics.
    let metrics = String::from_utf8(request("GET", &gw.url("metrics"), None, None).body)
        .expect("metrics text");
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("route=\"/login\"") && l.contains("429")),
        "{metrics}"
    );
}

/// Logs `username` in over plain HTTP; the session cookie (`sg_session=…`).
fn http_login(gw: &DemoGateway, username: &str, password: &str) -> Option<String> {
    login_at(&gw.url(""), username, password)
}

/// Logs `username` in at `base` (`http://host:port/`) over plain HTTP; the session cookie.
pub(crate) fn login_at(base: &str, username: &str, password: &str) -> Option<String> {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let page = agent
        .get(&format!("{base}login"))
        .call()
        .expect("login page");
    let pre = page
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("sg_pre cookie")
        .to_string();
    let token = pre.strip_prefix("sg_pre=").expect("sg_pre").to_string();
    let (body, content_type) = multipart(&[
        ("username", None, username.as_bytes()),
        ("password", None, password.as_bytes()),
        ("csrf", None, token.as_bytes()),
    ]);
    let r = match agent
        .post(&format!("{base}login"))
        .set("Content-Type", &content_type)
        .set("Cookie", &pre)
        .send_bytes(&body)
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("login: {e}"),
    };
    r.all("set-cookie")
        .into_iter()
        .find_map(|c| c.split(';').next().filter(|c| c.starts_with("sg_session=")))
        .map(str::to_string)
}

/// GET `path` with `cookie`: status and body.
fn get_with(gw: &DemoGateway, path: &str, cookie: &str) -> (u16, String) {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    match agent.get(&gw.url(path)).set("Cookie", cookie).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => (r.status(), r.into_string().unwrap_or_default()),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// The value of the first hidden `csrf` field of `page`.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a csrf field")
        .to_string()
}

/// Accounts belong to an agency and a role: another agency's officer neither sees nor signs
/// with this agency's key (404), a clerk may not open the stamp desk, and disabling an account
/// or resetting its password ends its sessions.
#[test]
fn agencies_roles_and_account_changes() {
    let gw = DemoGateway::start();
    let pw = gw.dir.path().join("pw");
    std::fs::write(&pw, PASSWORD).expect("password file");
    let pw = pw.to_str().expect("utf-8 path");
    for (user, agency, role) in [
        ("officer1", "demo", "officer"),
        ("clerk1", "demo", "clerk"),
        ("other1", "other-agency", "officer"),
    ] {
        run_ok(&mut demo_admin(
            gw.dir.path(),
            &[
                "user",
                "add",
                "--username",
                user,
                "--agency",
                agency,
                "--name",
                user,
                "--role",
                role,
                "--password-file",
                pw,
            ],
        ));
    }
    // A short password and an unknown role are refused.
    std::fs::write(gw.dir.path().join("short"), "short").expect("write");
    let o = run(demo_admin(
        gw.dir.path(),
        &[
            "user",
            "add",
            "--username",
            "x1",
            "--agency",
            "demo",
            "--name",
            "x",
            "--password-file",
        ],
    )
    .arg(gw.dir.path().join("short")));
    assert_exit(&o, 64, "a 5-character password");
    let o = run(&mut demo_admin(
        gw.dir.path(),
        &[
            "user",
            "add",
            "--username",
            "x2",
            "--agency",
            "demo",
            "--name",
            "x",
            "--role",
            "root",
            "--password-file",
            pw,
        ],
    ));
    assert_exit(&o, 64, "an unknown role");
    let list = run_ok(&mut demo_admin(gw.dir.path(), &["user", "list"]));
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(!list.contains("argon2"), "hashes are never listed: {list}");

    // Another agency's officer: the demo key is not offered, and signing with it is 404.
    let other = http_login(&gw, "other1", PASSWORD).expect("other1 logs in");
    let (status, desk) = get_with(&gw, "desk", &other);
    assert_eq!(status, 200);
    assert!(
        !desk.contains("demo-agency"),
        "another agency's key offered"
    );
    let pdf = std::fs::read(sample_pdf()).expect("sample");
    let csrf = csrf_of(&desk);
    let (body, content_type) = multipart(&[
        ("csrf", None, csrf.as_bytes()),
        ("document", Some("a.pdf"), &pdf),
        ("key", None, b"demo-agency"),
        ("kind", None, b"seal"),
        ("page", None, b"1"),
        ("x", None, b"300"),
        ("y", None, b"300"),
    ]);
    let status = match ureq::post(&gw.url("desk/sign"))
        .set("Content-Type", &content_type)
        .set("Cookie", &other)
        .send_bytes(&body)
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("desk/sign: {e}"),
    };
    assert_eq!(status, 404, "another agency's key");

    // A clerk may not open the stamp desk.
    let clerk = http_login(&gw, "clerk1", PASSWORD).expect("clerk1 logs in");
    assert_eq!(get_with(&gw, "desk", &clerk).0, 403);

    // Disabling ends the session and refuses the next log-in; a reset ends sessions too.
    let officer = http_login(&gw, "officer1", PASSWORD).expect("officer1 logs in");
    assert_eq!(get_with(&gw, "desk", &officer).0, 200);
    let new_pw = gw.dir.path().join("new-pw");
    std::fs::write(&new_pw, "another-password-2").expect("write");
    run_ok(&mut demo_admin(
        gw.dir.path(),
        &[
            "user",
            "reset-password",
            "officer1",
            "--password-file",
            new_pw.to_str().expect("path"),
        ],
    ));
    assert_eq!(
        get_with(&gw, "desk", &officer).0,
        303,
        "session after a reset"
    );
    assert!(
        http_login(&gw, "officer1", PASSWORD).is_none(),
        "old password"
    );
    let officer = http_login(&gw, "officer1", "another-password-2").expect("new password");
    run_ok(&mut demo_admin(
        gw.dir.path(),
        &["user", "disable", "officer1"],
    ));
    assert_eq!(
        get_with(&gw, "desk", &officer).0,
        303,
        "session after disabling"
    );
    assert!(
        http_login(&gw, "officer1", "another-password-2").is_none(),
        "disabled"
    );
    // The account changes are audited.
    let audit = request("GET", &gw.url("v1/audit"), Some(&gw.token), None).json();
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in [
        "user.add",
        "user.reset_password",
        "user.disable",
        "console.login",
        "console.login_failed",
    ] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
}

/// The accounts and sessions on PostgreSQL: an account added by `signgate user add` logs in
/// to a gateway over the same database, and disabling it ends its session.
#[test]
fn accounts_and_sessions_on_postgres() {
    let Some(db) = PgDatabase::create("console") else {
        return;
    };
    let tmp = tempdir();
    let dir = tmp.path();
    let pw = write(dir, "pw", PASSWORD.as_bytes());
    let data = dir.join("data");
    let admin = |args: &[&str]| {
        let mut c = signgate(args);
        c.arg("--data")
            .arg(&data)
            .current_dir(dir)
            .env("SIGNGATE_DATABASE_URL", &db.url)
            .env_remove("SIGNGATE_KEY_PASSWORD");
        c
    };
    run_ok(&mut admin(&[
        "user",
        "add",
        "--username",
        "officer1",
        "--agency",
        "demo",
        "--name",
        "An",
        "--password-file",
        pw.to_str().expect("utf-8 path"),
    ]));
    let server = Server::start(
        dir,
        &[
            std::ffi::OsStr::new("serve"),
            std::ffi::OsStr::new("--listen"),
            std::ffi::OsStr::new("127.0.0.1:0"),
            std::ffi::OsStr::new("--data"),
            data.as_os_str(),
        ],
        &[("SIGNGATE_DATABASE_URL", &db.url)],
    );
    let gw = DemoGateway {
        dir: tempdir(),
        server,
        token: String::new(),
    };
    assert!(http_login(&gw, "officer1", "wrong password").is_none());
    let session = http_login(&gw, "officer1", PASSWORD).expect("log-in on PostgreSQL");
    assert_eq!(get_with(&gw, "desk", &session).0, 200);
    run_ok(&mut admin(&["user", "disable", "officer1"]));
    assert_eq!(get_with(&gw, "desk", &session).0, 303);
}
