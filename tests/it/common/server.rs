//! signgate servers in child processes: `serve`, `pki serve`, `tsa serve`.

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{signgate_bin, LivePki};

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

/// A live generated PKI (`signgate pki serve`) and a `signgate tsa serve` over its TSA key:
/// what signing B-T and verifying online need. Keep one per test module in a `static OnceLock`.
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

/// A TSA front that holds every request for `delay` before passing it to `target`: a slow
/// time-stamp authority, so that a batch is still running when the test kills the gateway.
pub fn slow_tsa(target: String, delay: std::time::Duration) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let target = target.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut query = vec![0u8; length];
                if reader.read_exact(&mut query).is_err() {
                    return;
                }
                std::thread::sleep(delay);
                let Ok(reply) = ureq::post(&target)
                    .set("Content-Type", "application/timestamp-query")
                    .send_bytes(&query)
                else {
                    return;
                };
                let mut body = Vec::new();
                let _ = reply.into_reader().read_to_end(&mut body);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            });
        }
    });
    url
}
