//! Shared helpers for signgate's integration tests (`mod common;` in each `tests/*.rs`).
//!
//! Owns: finding external tools (fail in CI, skip locally), running commands, the
//! interop oracles (poppler `pdfsig` with an NSS database, pyHanko via
//! `tests/support/pyhanko_validate.py`, `openssl cms -verify`), an OCSP/CRL test server
//! over `openssl ocsp`, a throwaway OpenSSL CA ([`TestPki`]) for bad-certificate cases,
//! SoftHSM2 tokens holding the demo keys ([`softhsm_token`], [`softhsm_import`]),
//! and page rendering (`pdftoppm`) with a PNG pixel reader for visual checks.
//! Leaves to the tests: what to sign and what to assert.
//!
//! Typical use:
//! ```ignore
//! mod common;
//! let Some(_) = common::require_tool("pdfsig") else { return };
//! let nss = common::NssDb::new(&pki.join("root-ca.pem"));
//! let report = common::pdfsig(&nss, &signed);
//! assert!(report.signatures[0].signature_valid(), "{}", report.raw);
//! ```
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufWriter, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;

// ---------------------------------------------------------------------------------------
// Paths and environment
// ---------------------------------------------------------------------------------------

/// Repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/data/`.
pub fn data_dir() -> PathBuf {
    repo_root().join("tests").join("data")
}

/// A file of the PDF corpus, `tests/data/pdfs/NAME` (see `make_corpus.sh` for the list).
pub fn corpus(name: &str) -> PathBuf {
    let p = data_dir().join("pdfs").join(name);
    assert!(p.exists(), "corpus file {} is missing", p.display());
    p
}

/// `tests/data/sample.pdf`: the one-page administrative decision used by examples.
pub fn sample_pdf() -> PathBuf {
    data_dir().join("sample.pdf")
}

/// True when running in CI (`CI=true`): missing tools then fail tests instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// The Python venv with pinned pyHanko (`SIGNGATE_TEST_VENV`, default `.venv/`), made by `tests/run`.
pub fn venv_dir() -> PathBuf {
    std::env::var_os("SIGNGATE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"))
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("signgate-test-")
        .tempdir()
        .expect("create temp dir")
}

/// A unique path under cargo's per-target scratch dir (for outputs that must outlive a call).
pub fn scratch_path(stem: &str, ext: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).expect("create CARGO_TARGET_TMPDIR");
    let n = N.fetch_add(1, Ordering::SeqCst);
    dir.join(format!("{stem}-{}-{n}.{ext}", std::process::id()))
}

// ---------------------------------------------------------------------------------------
// Tools and processes
// ---------------------------------------------------------------------------------------

/// Finds executable `name` on PATH or in the test venv's `bin/`.
/// Missing: panics when `CI=true` (tests must fail, never skip, in CI); otherwise prints
/// `skipping: NAME not installed` and returns `None` (`let Some(_) = require_tool(..) else { return };`).
pub fn require_tool(name: &str) -> Option<PathBuf> {
    if let Some(p) = find_tool(name) {
        return Some(p);
    }
    if in_ci() {
        panic!("required test tool `{name}` is not installed (CI=true: run ./tests/run, which installs it)");
    }
    eprintln!("skipping: {name} not installed (./tests/run installs it)");
    None
}

/// [`require_tool`] for several tools; true when all are present.
pub fn require_tools(names: &[&str]) -> bool {
    names.iter().all(|n| require_tool(n).is_some())
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push(venv_dir().join("bin"));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Path of the `signgate` binary built for this test run.
pub fn signgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_signgate"))
}

/// A `Command` for the signgate binary with `args`.
pub fn signgate<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(signgate_bin());
    c.args(args);
    c
}

/// Runs `cmd` to completion with stdout/stderr captured (stdin empty). Panics only if it can't start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd` and asserts exit code `code`, printing the command, stdout and stderr otherwise.
pub fn run_expect(cmd: &mut Command, code: i32) -> Output {
    let out = run(cmd);
    assert_exit(&out, code, &format!("{cmd:?}"));
    out
}

/// Runs `cmd` and asserts it succeeded (exit 0).
pub fn run_ok(cmd: &mut Command) -> Output {
    run_expect(cmd, 0)
}

/// Asserts `out` exited with `code`; on mismatch panics with `what`, stdout and stderr.
pub fn assert_exit(out: &Output, code: i32, what: &str) {
    if out.status.code() != Some(code) {
        panic!(
            "{what}: expected exit code {code}, got {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// stdout as (lossy) UTF-8.
pub fn stdout_str(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as (lossy) UTF-8.
pub fn stderr_str(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A currently free TCP port on 127.0.0.1 (bound then released; tiny race, fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Waits until `127.0.0.1:port` accepts TCP connections; false after `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// A child process killed (and reaped) on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------
// OCSP / CRL responder
// ---------------------------------------------------------------------------------------

/// OCSP + CRL test server for a PKI directory laid out like the demo PKI
/// (CONTRACTS §2: `index.txt`, `issuing-ca.pem`, `ocsp.pem`, `ocsp.key`, `*.crl`).
///
/// Listens on `127.0.0.1:port` and
/// - forwards OCSP requests (POST to any path, or GET `/ocsp/<base64>`/`/<base64>`) to an
///   `openssl ocsp -index DIR/index.txt -CA DIR/issuing-ca.pem -rsigner DIR/ocsp.pem
///   -rkey DIR/ocsp.key -port INTERNAL -ignore_err -nrequest 1000 -ndays 7` child
///   (openssl answers POST on any path, but GET only at `/`, hence this small proxy);
/// - serves `GET .../NAME.crl|.cer|.crt|.der|.pem` from files of the same name in DIR
///   (so the CRL DP `{base}crl/issuing-ca.crl` works).
///
/// Counts requests so tests can prove a verifier consulted it. openssl reads `index.txt`
/// at start: restart the responder after revoking.
pub struct OcspResponder {
    port: u16,
    child: Child,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<String>>>,
    ocsp_count: Arc<AtomicUsize>,
    file_count: Arc<AtomicUsize>,
    _logdir: tempfile::TempDir,
}

impl OcspResponder {
    /// Starts serving `pki_dir` on `127.0.0.1:port`; returns once the port accepts connections.
    pub fn start(pki_dir: &Path, port: u16) -> OcspResponder {
        let for_pki = |f: &str| pki_dir.join(f);
        for f in ["index.txt", "issuing-ca.pem", "ocsp.pem", "ocsp.key"] {
            assert!(
                for_pki(f).exists(),
                "OcspResponder: {} missing",
                for_pki(f).display()
            );
        }
        let logdir = tempdir();
        let logfile = logdir.path().join("openssl-ocsp.log");
        let internal = free_port();
        let log_out = std::fs::File::create(&logfile).expect("create ocsp log");
        let log_err = log_out.try_clone().expect("clone log handle");
        let mut child = Command::new("openssl")
            .arg("ocsp")
            .arg("-index")
            .arg(for_pki("index.txt"))
            .arg("-CA")
            .arg(for_pki("issuing-ca.pem"))
            .arg("-rsigner")
            .arg(for_pki("ocsp.pem"))
            .arg("-rkey")
            .arg(for_pki("ocsp.key"))
            .args([
                "-port",
                &internal.to_string(),
                "-ignore_err",
                "-nrequest",
                "1000",
            ])
            .args(["-ndays", "7"])
            .stdin(Stdio::null())
            .stdout(log_out)
            .stderr(log_err)
            .spawn()
            .expect("spawn openssl ocsp");
        // Readiness from its log, not a probe connection: openssl ocsp 3.0 wedges on a
        // connection closed without a request (measured), so never connect-and-close to it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&logfile).unwrap_or_default();
            if text.contains("waiting for OCSP client connections") {
                break;
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("openssl ocsp did not start on port {internal}: {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("OcspResponder: bind 127.0.0.1:{port}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let ocsp_count = Arc::new(AtomicUsize::new(0));
        let file_count = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, log) = (stop.clone(), log.clone());
            let (oc, fc) = (ocsp_count.clone(), file_count.clone());
            let dir = pki_dir.to_path_buf();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                            if let Err(e) = proxy_one(s, internal, &dir, &log, &oc, &fc) {
                                log.lock().unwrap().push(format!("error: {e}"));
                            }
                        }
                        Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        OcspResponder {
            port,
            child,
            stop,
            thread: Some(thread),
            log,
            ocsp_count,
            file_count,
            _logdir: logdir,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/` — the `--base-url` for `signgate pki demo`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Number of OCSP requests answered so far.
    pub fn ocsp_requests(&self) -> usize {
        self.ocsp_count.load(Ordering::SeqCst)
    }

    /// Number of CRL/certificate file downloads served so far.
    pub fn file_requests(&self) -> usize {
        self.file_count.load(Ordering::SeqCst)
    }

    /// Request lines seen (`"POST /ocsp"`, `"GET /crl/issuing-ca.crl"`, errors), for diagnostics.
    pub fn request_log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one HTTP/1.x message (head + Content-Length body) from `s`; `None` on early EOF.
fn read_http_message(s: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find_subslice(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 || buf.len() > 1 << 16 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, body)))
}

/// Handles one HTTP/1.x request on `s` (one request per connection, then close).
fn proxy_one(
    mut s: TcpStream,
    internal: u16,
    dir: &Path,
    log: &Mutex<Vec<String>>,
    ocsp_count: &AtomicUsize,
    file_count: &AtomicUsize,
) -> std::io::Result<()> {
    let Some((head, body)) = read_http_message(&mut s)? else {
        return Ok(());
    };
    let mut first = head.split("\r\n").next().unwrap_or("").split_whitespace();
    let (method, path) = (
        first.next().unwrap_or("").to_string(),
        first.next().unwrap_or("/").to_string(),
    );
    log.lock().unwrap().push(format!("{method} {path}"));

    // static files: CRLs and certificates by last path segment
    let last = path.rsplit('/').next().unwrap_or("");
    let is_file = [".crl", ".cer", ".crt", ".der", ".pem"]
        .iter()
        .any(|e| last.ends_with(e));
    if method == "GET" && is_file {
        let file = dir.join(last);
        let safe_name = !last.contains("..") && !last.is_empty();
        return match std::fs::read(&file) {
            Ok(data) if safe_name => {
                file_count.fetch_add(1, Ordering::SeqCst);
                let ct = if last.ends_with(".crl") {
                    "application/pkix-crl"
                } else {
                    "application/pkix-cert"
                };
                write_response(&mut s, "200 OK", ct, &data)
            }
            _ => write_response(&mut s, "404 Not Found", "text/plain", b"not found"),
        };
    }
    let upstream_req = match method.as_str() {
        "POST" => {
            let mut r = format!(
                "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            r
        }
        "GET" => {
            let rest = path
                .strip_prefix("/ocsp/")
                .unwrap_or(path.trim_start_matches('/'));
            format!("GET /{rest} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .into_bytes()
        }
        _ => return write_response(&mut s, "405 Method Not Allowed", "text/plain", b""),
    };
    ocsp_count.fetch_add(1, Ordering::SeqCst);
    let mut up = TcpStream::connect(("127.0.0.1", internal))?;
    up.set_read_timeout(Some(Duration::from_secs(10)))?;
    up.write_all(&upstream_req)?;
    // openssl may keep the connection open: read exactly one response, then close
    let Some((resp_head, resp_body)) = read_http_message(&mut up)? else {
        return write_response(
            &mut s,
            "502 Bad Gateway",
            "text/plain",
            b"no answer from openssl ocsp",
        );
    };
    s.write_all(resp_head.as_bytes())?;
    s.write_all(&resp_body)?;
    let _ = s.shutdown(Shutdown::Both);
    Ok(())
}

fn write_response(s: &mut TcpStream, status: &str, ct: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let _ = s.shutdown(Shutdown::Both);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Throwaway OpenSSL CA (for certificates the demo PKI deliberately doesn't ship)
// ---------------------------------------------------------------------------------------

/// A throwaway two-level CA made with the openssl CLI, in the demo PKI's file layout
/// (`root-ca.pem`, `issuing-ca.pem`, `issuing-ca.crl` (DER), `index.txt`, `ocsp.pem`/`ocsp.key`),
/// so [`OcspResponder`] serves it. Leaves carry AIA OCSP `{base}ocsp` and CRL DP
/// `{base}crl/issuing-ca.crl`. Use for expired / not-yet-valid / revoked / wrong-usage cases.
pub struct TestPki {
    /// Directory holding all files.
    pub dir: PathBuf,
    /// Base URL written into AIA/CRL DP (`http://127.0.0.1:PORT/`).
    pub base_url: String,
    _tmp: Option<tempfile::TempDir>,
}

/// Options for [`TestPki::issue`].
#[derive(Clone, Debug)]
pub struct LeafOptions {
    /// `notBefore`, as `YYYYMMDDHHMMSSZ`; `None` = now.
    pub not_before: Option<String>,
    /// `notAfter`, as `YYYYMMDDHHMMSSZ`; `None` = in 10 years.
    pub not_after: Option<String>,
    /// OpenSSL `keyUsage` value.
    pub key_usage: String,
    /// OpenSSL `extendedKeyUsage` value, if any.
    pub ext_key_usage: Option<String>,
    /// `openssl req -newkey` argument, e.g. `rsa:2048`, `ec -pkeyopt ec_paramgen_curve:P-256` is not
    /// accepted here: use `rsa:N` or `ec:P-256` (the latter handled specially).
    pub key: String,
    /// Signing digest for the certificate (`sha256`, `sha1`).
    pub md: String,
}

impl Default for LeafOptions {
    fn default() -> Self {
        LeafOptions {
            not_before: None,
            not_after: None,
            key_usage: "critical,digitalSignature,nonRepudiation".into(),
            ext_key_usage: None,
            key: "rsa:2048".into(),
            md: "sha256".into(),
        }
    }
}

/// A certificate issued by [`TestPki::issue`].
#[derive(Clone, Debug)]
pub struct Leaf {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (unencrypted).
    pub key: PathBuf,
    /// PKCS#12 with key, certificate and chain, password `demo`.
    pub p12: PathBuf,
    /// Serial number in upper-case hex, as in `index.txt`.
    pub serial: String,
}

fn openssl(args: &[&str], cwd: &Path) -> Output {
    run_ok(Command::new("openssl").args(args).current_dir(cwd))
}

impl TestPki {
    /// Generates a PKI in a new temp dir; `base_url` like `http://127.0.0.1:PORT/`.
    pub fn new(base_url: &str) -> TestPki {
        let tmp = tempdir();
        let mut pki = TestPki::generate(tmp.path(), base_url);
        pki._tmp = Some(tmp);
        pki
    }

    /// Generates a PKI into `dir` (created if needed).
    pub fn generate(dir: &Path, base_url: &str) -> TestPki {
        std::fs::create_dir_all(dir.join("newcerts")).expect("create pki dir");
        let d = dir.to_str().expect("utf-8 temp path");
        let cnf = format!(
            r#"[ca]
default_ca = CA_default
[CA_default]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/newcerts
serial = {d}/serial
crlnumber = {d}/crlnumber
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
preserve = yes
default_days = 3650
default_crl_days = 3650
[policy_any]
commonName = supplied
organizationName = optional
countryName = optional
[req]
distinguished_name = dn
[dn]
[v3_root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_ica]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_ocsp]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,OCSPSigning
noCheck = ignored
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"#
        );
        std::fs::write(dir.join("openssl.cnf"), cnf).expect("write openssl.cnf");
        std::fs::write(dir.join("index.txt"), "").expect("write index.txt");
        std::fs::write(dir.join("serial"), "1000\n").expect("write serial");
        std::fs::write(dir.join("crlnumber"), "01\n").expect("write crlnumber");
        let c = ["-config", "openssl.cnf"];
        let subj = |cn: &str| format!("/C=VN/O=signgate TEST ONLY/CN={cn}");
        openssl(
            &[
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "root-ca.key",
                ][..],
                &[
                    "-out",
                    "root-ca.pem",
                    "-days",
                    "7300",
                    "-subj",
                    &subj("Test Root CA"),
                ],
                &c,
                &["-extensions", "v3_root"],
            ]
            .concat(),
            dir,
        );
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "issuing-ca.key",
                "-out",
                "issuing-ca.csr",
                "-subj",
                &subj("Test Issuing CA"),
                "-config",
                "openssl.cnf",
            ],
            dir,
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "issuing-ca.csr",
                "-CA",
                "root-ca.pem",
                "-CAkey",
                "root-ca.key",
                "-set_serial",
                "0x0100",
                "-days",
                "7300",
                "-extfile",
                "openssl.cnf",
                "-extensions",
                "v3_ica",
                "-out",
                "issuing-ca.pem",
            ],
            dir,
        );
        let pki = TestPki {
            dir: dir.to_path_buf(),
            base_url: base_url.to_string(),
            _tmp: None,
        };
        // OCSP responder certificate, issued through the CA database like any leaf
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ocsp.key",
                "-out",
                "ocsp.csr",
                "-subj",
                &subj("Test OCSP Responder"),
                "-config",
                "openssl.cnf",
            ],
            dir,
        );
        openssl(
            &[
                "ca",
                "-batch",
                "-config",
                "openssl.cnf",
                "-cert",
                "issuing-ca.pem",
                "-keyfile",
                "issuing-ca.key",
                "-extensions",
                "v3_ocsp",
                "-notext",
                "-in",
                "ocsp.csr",
                "-out",
                "ocsp.pem",
            ],
            dir,
        );
        pki.write_crl();
        pki
    }

    /// Path of a file in the PKI directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The root CA certificate (`root-ca.pem`): the trust anchor.
    pub fn root(&self) -> PathBuf {
        self.path("root-ca.pem")
    }

    /// Issues a leaf named `name` (files `NAME.pem`, `NAME.key`, `NAME.p12`).
    pub fn issue(&self, name: &str, opts: &LeafOptions) -> Leaf {
        let dir = &self.dir;
        let base = &self.base_url;
        let ext_name = format!("v3_{name}");
        let mut ext = format!(
            "\n[{ext_name}]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = {}\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\nauthorityInfoAccess = OCSP;URI:{base}ocsp,caIssuers;URI:{base}issuing-ca.der\ncrlDistributionPoints = URI:{base}crl/issuing-ca.crl\n",
            opts.key_usage
        );
        if let Some(eku) = &opts.ext_key_usage {
            ext.push_str(&format!("extendedKeyUsage = {eku}\n"));
        }
        let mut cnf = std::fs::read_to_string(dir.join("openssl.cnf")).expect("read openssl.cnf");
        cnf.push_str(&ext);
        std::fs::write(dir.join("openssl.cnf"), cnf).expect("write openssl.cnf");
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let subj = format!("/C=VN/O=signgate TEST ONLY/CN={name}");
        if let Some(curve) = opts.key.strip_prefix("ec:") {
            openssl(
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    &format!("ec_paramgen_curve:{curve}"),
                    "-out",
                    &key,
                ],
                dir,
            );
            openssl(
                &[
                    "req",
                    "-new",
                    "-key",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &subj,
                    "-config",
                    "openssl.cnf",
                ],
                dir,
            );
        } else {
            openssl(
                &[
                    "req",
                    "-newkey",
                    &opts.key,
                    "-nodes",
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &subj,
                    "-config",
                    "openssl.cnf",
                ],
                dir,
            );
        }
        let serial = std::fs::read_to_string(dir.join("serial"))
            .expect("read serial")
            .trim()
            .to_string();
        let cert = format!("{name}.pem");
        let mut args: Vec<String> = [
            "ca",
            "-batch",
            "-config",
            "openssl.cnf",
            "-cert",
            "issuing-ca.pem",
            "-keyfile",
            "issuing-ca.key",
            "-extensions",
            &ext_name,
            "-notext",
            "-md",
            &opts.md,
            "-in",
            &csr,
            "-out",
            &cert,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(nb) = &opts.not_before {
            args.extend(["-startdate".into(), nb.clone()]);
        }
        if let Some(na) = &opts.not_after {
            args.extend(["-enddate".into(), na.clone()]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        openssl(&argv, dir);
        let chain = format!("{name}-chain.pem");
        let chain_pem = [
            std::fs::read(dir.join("issuing-ca.pem")).expect("read issuing-ca.pem"),
            std::fs::read(dir.join("root-ca.pem")).expect("read root-ca.pem"),
        ]
        .concat();
        std::fs::write(dir.join(&chain), chain_pem).expect("write chain");
        let p12 = format!("{name}.p12");
        openssl(
            &[
                "pkcs12",
                "-export",
                "-inkey",
                &key,
                "-in",
                &cert,
                "-certfile",
                &chain,
                "-out",
                &p12,
                "-passout",
                "pass:demo",
                "-name",
                name,
            ],
            dir,
        );
        Leaf {
            cert: dir.join(cert),
            key: dir.join(key),
            p12: dir.join(p12),
            serial,
        }
    }

    /// Revokes `leaf` in `index.txt` and rewrites `issuing-ca.crl` (restart an [`OcspResponder`] after).
    pub fn revoke(&self, leaf: &Leaf) {
        let cert = leaf.cert.to_str().expect("utf-8 path");
        openssl(
            &[
                "ca",
                "-config",
                "openssl.cnf",
                "-cert",
                "issuing-ca.pem",
                "-keyfile",
                "issuing-ca.key",
                "-revoke",
                cert,
                "-crl_reason",
                "keyCompromise",
            ],
            &self.dir,
        );
        self.write_crl();
    }

    /// (Re)writes `issuing-ca.crl` (DER) from the CA database, plus `issuing-ca.der`.
    pub fn write_crl(&self) {
        openssl(
            &[
                "ca",
                "-gencrl",
                "-config",
                "openssl.cnf",
                "-cert",
                "issuing-ca.pem",
                "-keyfile",
                "issuing-ca.key",
                "-out",
                "issuing-ca.crl.pem",
            ],
            &self.dir,
        );
        openssl(
            &[
                "crl",
                "-in",
                "issuing-ca.crl.pem",
                "-outform",
                "DER",
                "-out",
                "issuing-ca.crl",
            ],
            &self.dir,
        );
        openssl(
            &[
                "x509",
                "-in",
                "issuing-ca.pem",
                "-outform",
                "DER",
                "-out",
                "issuing-ca.der",
            ],
            &self.dir,
        );
    }
}

// ---------------------------------------------------------------------------------------
// NSS database + pdfsig (poppler)
// ---------------------------------------------------------------------------------------

/// A temporary NSS certificate database trusting one root (for `pdfsig -nssdir`).
pub struct NssDb {
    dir: tempfile::TempDir,
}

impl NssDb {
    /// Creates `sql:DIR` with an empty password and imports `root_pem` as trusted CA (`CT,C,C`).
    pub fn new(root_pem: &Path) -> NssDb {
        let db = NssDb::empty();
        db.add_cert("root", root_pem, "CT,C,C");
        db
    }

    /// A database with no trusted certificates (everything reads as untrusted).
    pub fn empty() -> NssDb {
        let dir = tempdir();
        run_ok(
            Command::new("certutil")
                .arg("-N")
                .arg("-d")
                .arg(format!("sql:{}", dir.path().display()))
                .arg("--empty-password"),
        );
        NssDb { dir }
    }

    /// Imports a certificate (PEM or DER) under `nickname` with NSS trust flags (e.g. `CT,C,C`, `,,`).
    pub fn add_cert(&self, nickname: &str, cert: &Path, trust: &str) {
        run_ok(
            Command::new("certutil")
                .args(["-A", "-d", &self.spec(), "-n", nickname, "-t", trust, "-i"])
                .arg(cert),
        );
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `sql:DIR`, the `-nssdir` argument.
    pub fn spec(&self) -> String {
        format!("sql:{}", self.dir.path().display())
    }
}

/// One signature as reported by `pdfsig` (poppler 22.12).
#[derive(Clone, Debug, Default)]
pub struct PdfsigSignature {
    /// `Signature Field Name`.
    pub field_name: Option<String>,
    /// `Signer Certificate Common Name`.
    pub signer_cn: Option<String>,
    /// `Signer full Distinguished Name`.
    pub signer_dn: Option<String>,
    /// `Signing Time` (poppler's text, e.g. `Nov 26 2026 06:10:29`).
    pub signing_time: Option<String>,
    /// `Signing Hash Algorithm` (e.g. `SHA-256`).
    pub hash_algorithm: Option<String>,
    /// `Signature Type` (e.g. `adbe.pkcs7.detached`, `ETSI.CAdES.detached`, `ETSI.RFC3161`).
    pub signature_type: Option<String>,
    /// `Signed Ranges` as (start, end) byte offsets.
    pub signed_ranges: Vec<(u64, u64)>,
    /// `Total document signed` (true) vs `Not total document signed` (false).
    pub total_document_signed: bool,
    /// `Signature Validation` text, e.g. `Signature is Valid.`, `Digest Mismatch.`.
    pub signature_validation: String,
    /// `Certificate Validation` text, e.g. `Certificate is Trusted.`,
    /// `Certificate issuer isn't Trusted.`, `Certificate has been Revoked.`.
    pub certificate_validation: String,
}

impl PdfsigSignature {
    /// `Signature is Valid.`
    pub fn signature_valid(&self) -> bool {
        self.signature_validation == "Signature is Valid."
    }

    /// `Certificate is Trusted.`
    pub fn certificate_trusted(&self) -> bool {
        self.certificate_validation == "Certificate is Trusted."
    }
}

/// Parsed `pdfsig` output.
#[derive(Clone, Debug)]
pub struct PdfsigReport {
    /// pdfsig's exit code (0 ok, 2 no signatures, 1 error reading the file).
    pub exit_code: Option<i32>,
    /// Signatures in document order.
    pub signatures: Vec<PdfsigSignature>,
    /// stdout + stderr, for assertion messages.
    pub raw: String,
}

/// `pdfsig -nssdir sql:DIR PDF` (with OCSP checking via the certificate's AIA, poppler's default).
pub fn pdfsig(nss: &NssDb, pdf: &Path) -> PdfsigReport {
    pdfsig_args(nss, pdf, &[])
}

/// `pdfsig` with extra options, e.g. `["-aia"]`, `["-nocert"]`, `["-dump"]`.
/// Beware `-no-ocsp`: poppler 22.12 then reports "Unknown issue with Certificate or
/// corrupted data." even for trusted chains (measured). Without it, a certificate with an
/// AIA OCSP URL needs a running responder ([`OcspResponder`]), else the same "Unknown issue".
pub fn pdfsig_args(nss: &NssDb, pdf: &Path, extra: &[&str]) -> PdfsigReport {
    let out = run(Command::new("pdfsig")
        .arg("-nssdir")
        .arg(nss.spec())
        .args(extra)
        .arg(pdf));
    let raw = format!("{}{}", stdout_str(&out), stderr_str(&out));
    PdfsigReport {
        exit_code: out.status.code(),
        signatures: parse_pdfsig(&stdout_str(&out)),
        raw,
    }
}

/// Parses pdfsig's text output (`Signature #N:` blocks of `  - Key: value` lines).
pub fn parse_pdfsig(text: &str) -> Vec<PdfsigSignature> {
    let mut sigs: Vec<PdfsigSignature> = Vec::new();
    for line in text.lines() {
        if line.starts_with("Signature #") {
            sigs.push(PdfsigSignature::default());
            continue;
        }
        let Some(sig) = sigs.last_mut() else { continue };
        let Some(item) = line.trim_start().strip_prefix("- ") else {
            continue;
        };
        match item {
            "Total document signed" => sig.total_document_signed = true,
            "Not total document signed" => sig.total_document_signed = false,
            _ => {
                let Some((k, v)) = item.split_once(": ") else {
                    continue;
                };
                let v = v.trim().to_string();
                match k {
                    "Signature Field Name" => sig.field_name = Some(v),
                    "Signer Certificate Common Name" => sig.signer_cn = Some(v),
                    "Signer full Distinguished Name" => sig.signer_dn = Some(v),
                    "Signing Time" => sig.signing_time = Some(v),
                    "Signing Hash Algorithm" => sig.hash_algorithm = Some(v),
                    "Signature Type" => sig.signature_type = Some(v),
                    "Signed Ranges" => sig.signed_ranges = parse_ranges(&v),
                    "Signature Validation" => sig.signature_validation = v,
                    "Certificate Validation" => sig.certificate_validation = v,
                    _ => {}
                }
            }
        }
    }
    sigs
}

fn parse_ranges(v: &str) -> Vec<(u64, u64)> {
    // "[0 - 1446], [9086 - 9755]"
    v.split(']')
        .filter_map(|part| {
            let inner = part.trim_start_matches([',', ' ', '[']);
            let (a, b) = inner.split_once(" - ")?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// pyHanko
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// OpenSSL CMS
// ---------------------------------------------------------------------------------------

/// Verifies a detached DER CMS signature over `content`, trusting `root_pem`
/// (`openssl cms -verify -binary -inform DER -purpose any`). True when openssl says OK.
pub fn openssl_cms_verify(p7s: &Path, content: &Path, root_pem: &Path) -> bool {
    openssl_cms_verify_output(p7s, content, root_pem)
        .status
        .success()
}

/// [`openssl_cms_verify`] returning the full output (stderr says why it failed).
pub fn openssl_cms_verify_output(p7s: &Path, content: &Path, root_pem: &Path) -> Output {
    run(Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(p7s)
        .arg("-content")
        .arg(content)
        .arg("-CAfile")
        .arg(root_pem)
        .args(["-purpose", "any", "-out", "/dev/null"]))
}

// ---------------------------------------------------------------------------------------
// Rendering and text
// ---------------------------------------------------------------------------------------

/// Renders page `page` (1-based) of `pdf` at `dpi` to a PNG (pdftoppm); returns its path
/// (under `CARGO_TARGET_TMPDIR`, kept for inspection after a failure).
pub fn render_page_png(pdf: &Path, page: u32, dpi: u32) -> PathBuf {
    let png = scratch_path("page", "png");
    let prefix = png.with_extension("");
    let p = page.to_string();
    run_ok(
        Command::new("pdftoppm")
            .args([
                "-png",
                "-r",
                &dpi.to_string(),
                "-f",
                &p,
                "-l",
                &p,
                "-singlefile",
            ])
            .arg(pdf)
            .arg(&prefix),
    );
    assert!(png.exists(), "pdftoppm wrote no {}", png.display());
    png
}

/// Text of `pdf` as UTF-8 (`pdftotext -enc UTF-8 PDF -`); panics if pdftotext fails.
pub fn pdftotext(pdf: &Path) -> String {
    stdout_str(&run_ok(
        Command::new("pdftotext")
            .args(["-enc", "UTF-8"])
            .arg(pdf)
            .arg("-"),
    ))
}

/// `qpdf --check`: true when qpdf finds no errors (exit 0, or 3 = warnings only).
pub fn qpdf_check(pdf: &Path) -> bool {
    matches!(
        run(Command::new("qpdf").arg("--check").arg(pdf))
            .status
            .code(),
        Some(0) | Some(3)
    )
}

/// An 8-bit RGB image read from a PNG.
#[derive(Clone, Debug)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major pixels, top-left first.
    pub pixels: Vec<[u8; 3]>,
}

/// Reads a PNG (gray, gray+alpha, RGB, RGBA, palette; 8 or 16 bit) into RGB (alpha dropped).
pub fn read_png_rgb(path: &Path) -> RgbImage {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().expect("read PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("decode PNG");
    let data = &buf[..info.buffer_size()];
    let (ct, _) = reader.output_color_type();
    let step = match ct {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => panic!("indexed PNG not expanded"),
    };
    let pixels = data
        .chunks_exact(step)
        .map(|c| {
            if step <= 2 {
                [c[0], c[0], c[0]]
            } else {
                [c[0], c[1], c[2]]
            }
        })
        .collect();
    RgbImage {
        width: info.width,
        height: info.height,
        pixels,
    }
}

impl RgbImage {
    /// Pixel at (x, y), origin top-left.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        self.pixels[(y * self.width + x) as usize]
    }

    /// Number of pixels in the rectangle `[x0, x1) × [y0, y1)` (clipped) matching `pred`.
    pub fn count_in(
        &self,
        x0: u32,
        y0: u32,
        x1: u32,
        y1: u32,
        pred: impl Fn([u8; 3]) -> bool,
    ) -> usize {
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        let mut n = 0;
        for y in y0..y1 {
            for x in x0..x1 {
                if pred(self.pixel(x, y)) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Converts a PDF rectangle `[llx, lly, urx, ury]` in points (unrotated page, origin
    /// bottom-left) to pixel bounds `(x0, y0, x1, y1)` (origin top-left) at `dpi`.
    pub fn pdf_rect_to_px(&self, rect: [f64; 4], dpi: u32) -> (u32, u32, u32, u32) {
        let s = dpi as f64 / 72.0;
        let h = self.height as f64;
        let x0 = (rect[0] * s).floor().max(0.0) as u32;
        let x1 = (rect[2] * s).ceil().max(0.0) as u32;
        let y0 = (h - rect[3] * s).floor().max(0.0) as u32;
        let y1 = (h - rect[1] * s).ceil().max(0.0) as u32;
        (x0, y0, x1, y1)
    }

    /// Number of "red" pixels ([`is_red`]) in a PDF-point rectangle of an unrotated page.
    pub fn red_pixels_in_pdf_rect(&self, rect: [f64; 4], dpi: u32) -> usize {
        let (x0, y0, x1, y1) = self.pdf_rect_to_px(rect, dpi);
        self.count_in(x0, y0, x1, y1, is_red)
    }
}

/// Clearly red: strong red channel, weak green and blue (stamp ink, anti-aliasing tolerant).
pub fn is_red(p: [u8; 3]) -> bool {
    p[0] >= 150 && p[1] <= 110 && p[2] <= 110
}

/// Not white-ish (any ink).
pub fn is_ink(p: [u8; 3]) -> bool {
    p.iter().any(|&c| c < 200)
}

// ---------------------------------------------------------------------------------------
// signgate servers (pki serve, tsa serve) and a live generated demo PKI
// ---------------------------------------------------------------------------------------

/// A `signgate … serve` child started with `--listen 127.0.0.1:PORT`, ready once it printed
/// `listening on http://127.0.0.1:PORT/` (CONTRACTS §1).
///
/// The server runs under a tiny `sh` watchdog that kills it when its stdin closes, so it also
/// dies when the test process exits without dropping it (e.g. held in a `static OnceLock`).
pub struct SigngateServer {
    /// `http://127.0.0.1:PORT/`, as printed by the server.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
}

impl SigngateServer {
    /// The process id of the signgate server itself (not its `sh` watchdog), for reading
    /// `/proc/PID/status`.
    pub fn pid(&self) -> u32 {
        let sh = self.child.as_ref().expect("running").id();
        let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
            .expect("read /proc children");
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the watchdog has a child")
    }

    /// Starts `signgate ARGS…` (which must include `--listen`) with `envs` set; panics with the
    /// server's stderr if it does not print its listening line within 30 s.
    pub fn start(args: &[&OsStr], envs: &[(&str, &str)]) -> SigngateServer {
        use std::io::BufRead;
        let script = r#"bin="$1"; shift; "$bin" "$@" </dev/null & pid=$!; cat >/dev/null; kill $pid 2>/dev/null; wait $pid"#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg("sh")
            .arg(signgate_bin())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn signgate server");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(|l| l.ok()));
            for _ in lines {} // keep draining so the server never blocks on a full pipe
        });
        let first = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
        let Some(url) = first
            .as_deref()
            .and_then(|l| l.strip_prefix("listening on "))
            .map(str::to_string)
        else {
            drop(stdin);
            let _ = child.kill();
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            let _ = child.wait();
            panic!("signgate {args:?} did not start: first line {first:?}, stderr: {err}");
        };
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let port = url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"));
        SigngateServer {
            url,
            port,
            child: Some(child),
            stdin,
        }
    }

    /// `signgate pki serve --dir DIR --listen 127.0.0.1:PORT` (responder key DIR/ocsp.p12, `demo`).
    pub fn pki_serve(dir: &Path, port: u16) -> SigngateServer {
        let listen = format!("127.0.0.1:{port}");
        SigngateServer::start(
            &[
                "pki".as_ref(),
                "serve".as_ref(),
                "--dir".as_ref(),
                dir.as_os_str(),
                "--listen".as_ref(),
                listen.as_ref(),
            ],
            &[("SIGNGATE_KEY_PASSWORD", "demo")],
        )
    }

    /// `signgate tsa serve --key P12 --listen 127.0.0.1:0` (password `demo`).
    pub fn tsa_serve(p12: &Path) -> SigngateServer {
        SigngateServer::start(
            &[
                "tsa".as_ref(),
                "serve".as_ref(),
                "--key".as_ref(),
                p12.as_os_str(),
                "--listen".as_ref(),
                "127.0.0.1:0".as_ref(),
            ],
            &[("SIGNGATE_KEY_PASSWORD", "demo")],
        )
    }

    /// Stops the server and waits until it has exited (its port is then closed).
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Kills the server with SIGKILL (no graceful shutdown: a crash) and waits until it exited.
    pub fn kill_hard(mut self) {
        if let Some(child) = &self.child {
            // The server is the watchdog shell's only child.
            let watchdog = child.id();
            let children =
                std::fs::read_to_string(format!("/proc/{watchdog}/task/{watchdog}/children"))
                    .expect("read the watchdog's children");
            let pid = children
                .split_whitespace()
                .next()
                .expect("the server process");
            let status = Command::new("kill")
                .args(["-KILL", pid])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -KILL {pid} failed");
        }
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stdin.take()); // the watchdog kills the server and exits
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SigngateServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Generates a demo PKI (CONTRACTS §2, CA keys RSA-2048 for speed) into a fresh temp dir,
/// with `base_url` in its CRL DP / AIA URLs.
pub fn generate_demo_pki(base_url: &str) -> (tempfile::TempDir, signgate::pki::demo::DemoPki) {
    use signgate::pki::demo::{generate, DemoOptions};
    let tmp = tempdir();
    let opts = DemoOptions {
        root_key_bits: 2048,
        issuing_key_bits: 2048,
        ..DemoOptions::with_base_url(base_url)
    };
    let pki = generate(tmp.path(), &opts).expect("generate demo PKI");
    (tmp, pki)
}

/// A generated demo PKI served live by `signgate pki serve` on its base-url port (OCSP, CRLs,
/// CA certificates), so signatures by its leaves can reach TOTAL_PASSED. Keep one per test
/// binary in a `static OnceLock` (generation takes 1-3 s).
pub struct LivePki {
    /// The PKI, able to issue more leaves ([`LivePki::issue`]).
    pub pki: Mutex<signgate::pki::demo::DemoPki>,
    /// Its folder (`root-ca.pem`, `issuing-ca.pem`, `tsa.p12`, `agency-signer.p12`, …).
    pub dir: PathBuf,
    /// The publication server.
    pub server: SigngateServer,
    _tmp: tempfile::TempDir,
}

impl LivePki {
    /// Generates the PKI for a free port and starts `signgate pki serve` on it.
    pub fn start() -> LivePki {
        let port = free_port();
        let (tmp, pki) = generate_demo_pki(&format!("http://127.0.0.1:{port}/"));
        let dir = tmp.path().to_path_buf();
        let server = SigngateServer::pki_serve(&dir, port);
        LivePki {
            pki: Mutex::new(pki),
            dir,
            server,
            _tmp: tmp,
        }
    }

    /// A file of the PKI folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `root-ca.pem`, the trust anchor.
    pub fn root(&self) -> PathBuf {
        self.path("root-ca.pem")
    }

    /// Issues a leaf per `spec` into `DIR/FILE.p12` (password `demo`); subjects must be unique.
    pub fn issue(
        &self,
        spec: &signgate::pki::demo::LeafSpec,
        file: &str,
    ) -> signgate::pki::demo::IssuedLeaf {
        let p12 = self.path(&format!("{file}.p12"));
        self.pki
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .issue_leaf(spec, &p12)
            .unwrap_or_else(|e| panic!("issue {file}: {e}"))
    }
}

/// Writes `leaf`'s key and certificate as PEM files `DIR/FILE.key` / `DIR/FILE.pem`
/// (for `openssl cms -sign` and pyHanko); returns (key, cert).
pub fn leaf_pem_files(
    leaf: &signgate::pki::demo::IssuedLeaf,
    dir: &Path,
    file: &str,
) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{file}.key"));
    let cert = dir.join(format!("{file}.pem"));
    std::fs::write(&key, leaf.key.private_key_to_pem_pkcs8().expect("key PEM")).unwrap();
    std::fs::write(&cert, leaf.certificate.to_pem().expect("cert PEM")).unwrap();
    (key, cert)
}

/// Extracts key and certificate of a PKCS#12 file (password `demo`) as PEM into `dir`
/// with the openssl CLI; returns (key, cert).
pub fn p12_to_pem(p12: &Path, dir: &Path, file: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{file}.key"));
    let cert = dir.join(format!("{file}.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "pkcs12",
                "-nodes",
                "-nocerts",
                "-passin",
                "pass:demo",
                "-in",
            ])
            .arg(p12)
            .arg("-out")
            .arg(&key),
    );
    run_ok(
        Command::new("openssl")
            .args([
                "pkcs12",
                "-clcerts",
                "-nokeys",
                "-passin",
                "pass:demo",
                "-in",
            ])
            .arg(p12)
            .arg("-out")
            .arg(&cert),
    );
    (key, cert)
}

/// Re-exports a PKCS#12 file (password `demo`) with OpenSSL's legacy RC2/3DES encryption
/// (`openssl pkcs12 -export -legacy`), as old Windows and token tools write them; the CA
/// certificates of the original stay in the file.
pub fn legacy_p12(p12: &Path, dir: &Path, file: &str) -> PathBuf {
    let (key, cert) = p12_to_pem(p12, dir, &format!("{file}-src"));
    let chain = dir.join(format!("{file}-src-chain.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "pkcs12",
                "-cacerts",
                "-nokeys",
                "-passin",
                "pass:demo",
                "-in",
            ])
            .arg(p12)
            .arg("-out")
            .arg(&chain),
    );
    let out = dir.join(format!("{file}.p12"));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "pkcs12",
        "-export",
        "-legacy",
        "-passout",
        "pass:demo",
        "-inkey",
    ])
    .arg(&key)
    .arg("-in")
    .arg(&cert)
    .arg("-out")
    .arg(&out);
    if std::fs::metadata(&chain)
        .map(|m| m.len() > 0)
        .unwrap_or(false)
    {
        cmd.arg("-certfile").arg(&chain);
    }
    run_ok(&mut cmd);
    out
}

// ---------------------------------------------------------------------------------------
// Validation reports
// ---------------------------------------------------------------------------------------

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

/// A live generated PKI (`signgate pki serve`) and a `signgate tsa serve` over its TSA key:
/// what signing B-T and verifying online need. Keep one per test binary in a `static OnceLock`.
pub struct LiveServices {
    /// The PKI and its publication server.
    pub pki: LivePki,
    /// The time-stamp authority.
    pub tsa: SigngateServer,
}

impl LiveServices {
    /// Starts both.
    pub fn start() -> LiveServices {
        let pki = LivePki::start();
        let tsa = SigngateServer::tsa_serve(&pki.path("tsa.p12"));
        LiveServices { pki, tsa }
    }
}

// ---------------------------------------------------------------------------------------
// SoftHSM2 tokens
// ---------------------------------------------------------------------------------------

fn tool(cmd: &mut Command) {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", stderr_str(&out));
}

/// Runs `openssl ARGS` with `input` on stdin and returns its stdout.
fn openssl_filter(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?}");
    out.stdout
}

/// A SoftHSM2 token `T` (user PIN 1234) under `tmp/tokens`, holding the demo agency key and
/// certificate as `object=agency`, `id=%01`. Returns the `SOFTHSM2_CONF` file, or `None` when
/// the tools are missing outside CI.
pub fn softhsm_token(tmp: &tempfile::TempDir) -> Option<PathBuf> {
    let module = Path::new(signgate::keys::DEFAULT_MODULE);
    if !require_tools(&["softhsm2-util", "pkcs11-tool"]) || !module.exists() {
        return None;
    }
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    tool(
        Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "T",
                "--pin",
                "1234",
                "--so-pin",
                "5678",
            ])
            .env("SOFTHSM2_CONF", &conf),
    );
    softhsm_import(
        &conf,
        &repo_root().join("certs/demo/agency-signer.p12"),
        "agency",
        "01",
        false,
    );
    Some(conf)
}

/// Imports the key and certificate of a demo PKCS#12 file (password `demo`) into token `T`
/// of `conf` as `object=LABEL`, `id=ID` (hex); `always_auth` marks the private key
/// `CKA_ALWAYS_AUTHENTICATE` (a PIN for each signature).
pub fn softhsm_import(conf: &Path, p12: &Path, label: &str, id: &str, always_auth: bool) {
    let module = signgate::keys::DEFAULT_MODULE;
    let der = std::fs::read(p12).unwrap();
    let dir = conf.parent().unwrap();
    let key_der = dir.join(format!("{label}.key.der"));
    let cert_der = dir.join(format!("{label}.cert.der"));
    let p12_args = ["pkcs12", "-passin", "pass:demo", "-nodes"];
    let pem = openssl_filter(&[&p12_args[..], &["-nocerts"]].concat(), &der);
    std::fs::write(&key_der, openssl_filter(&["pkey", "-outform", "DER"], &pem)).unwrap();
    let pem = openssl_filter(&[&p12_args[..], &["-clcerts", "-nokeys"]].concat(), &der);
    std::fs::write(
        &cert_der,
        openssl_filter(&["x509", "-outform", "DER"], &pem),
    )
    .unwrap();
    for (file, kind) in [(&key_der, "privkey"), (&cert_der, "cert")] {
        let mut c = Command::new("pkcs11-tool");
        c.args([
            "--module",
            module,
            "--token-label",
            "T",
            "--login",
            "--pin",
            "1234",
        ])
        .args([
            "--type",
            kind,
            "--id",
            id,
            "--label",
            label,
            "--write-object",
        ])
        .arg(file)
        .env("SOFTHSM2_CONF", conf);
        if always_auth && kind == "privkey" {
            c.arg("--always-auth");
        }
        tool(&mut c);
    }
}

// ---------------------------------------------------------------------------------------
// Large PDFs (streaming-path tests)
// ---------------------------------------------------------------------------------------

/// A file written in order, remembering where each object starts.
struct PdfWriter {
    out: BufWriter<std::fs::File>,
    at: u64,
    offsets: Vec<(usize, u64)>,
}

impl PdfWriter {
    fn put(&mut self, bytes: &[u8]) {
        self.out.write_all(bytes).unwrap();
        self.at += bytes.len() as u64;
    }

    fn object(&mut self, n: usize, body: &str) {
        self.offsets.push((n, self.at));
        self.put(format!("{n} 0 obj\n{body}\nendobj\n").as_bytes());
    }
}

/// Writes a PDF of `pages` pages, each an uncompressed, incompressible `side` × `side` RGB
/// image (3·side² bytes), streaming (never held in memory), with a classic cross-reference
/// table; returns its length.
pub fn write_large_pdf(path: &Path, pages: usize, side: usize) -> u64 {
    let mut w = PdfWriter {
        out: BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap()),
        at: 0,
        offsets: Vec::new(),
    };
    w.put(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n");
    w.object(1, "<< /Type /Catalog /Pages 2 0 R >>");
    let kids: Vec<String> = (0..pages).map(|p| format!("{} 0 R", 3 + 3 * p)).collect();
    w.object(
        2,
        &format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        ),
    );
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let len = side * side * 3;
    let mut chunk = vec![0u8; 1 << 20];
    for p in 0..pages {
        let (page, contents, image) = (3 + 3 * p, 4 + 3 * p, 5 + 3 * p);
        w.object(page, &format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 {image} 0 R >> >> /Contents {contents} 0 R >>"
        ));
        let draw = "q 595 0 0 842 0 0 cm /Im0 Do Q\n";
        w.object(
            contents,
            &format!("<< /Length {} >>\nstream\n{draw}endstream", draw.len()),
        );
        w.offsets.push((image, w.at));
        w.put(format!(
            "{image} 0 obj\n<< /Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length {len} >>\nstream\n"
        ).as_bytes());
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            for word in chunk[..n].chunks_mut(8) {
                // xorshift64: fast, and incompressible as photographs are.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let bytes = state.to_le_bytes();
                word.copy_from_slice(&bytes[..word.len()]);
            }
            w.put(&chunk[..n]);
            left -= n;
        }
        w.put(b"\nendstream\nendobj\n");
    }
    let size = 3 + 3 * pages;
    let xref = w.at;
    let mut offsets = w.offsets.clone();
    offsets.sort();
    let mut table = format!("xref\n0 {size}\n0000000000 65535 f \n");
    for (_, off) in offsets {
        table.push_str(&format!("{off:010} 00000 n \n"));
    }
    table.push_str(&format!(
        "trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ));
    w.put(table.as_bytes());
    w.out.flush().unwrap();
    w.at
}
