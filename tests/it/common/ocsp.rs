//! An OCSP/CRL responder over `openssl ocsp`, independent of signgate's own `pki serve`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{free_port, tempdir};

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

    /// The process id of its `openssl ocsp` child (to kill it at exit when the responder lives
    /// in a `static` and is never dropped).
    pub fn pid(&self) -> u32 {
        self.child.id()
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
