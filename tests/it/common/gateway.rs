//! The gateway as the `gateway_*` tests drive it: a `signgate serve` child started in a given
//! working directory (stderr kept in a file, SIGTERM on request), the demo gateway started from
//! an empty folder with a client token, and plain HTTP requests and multipart bodies.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_port, run_ok, signgate, signgate_bin, tempdir};

/// An HTTP answer.
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Signgate-Audit-Id`.
    pub audit_id: Option<String>,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (panics with the body otherwise).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(400)])
            )
        })
    }

    /// The stable code of an error answer, after checking the error shape.
    pub fn error_code(&self) -> String {
        let v = self.json();
        assert!(v["error"]["request_id"].is_string(), "error shape: {v}");
        assert!(v["error"]["message"].is_string(), "error shape: {v}");
        v["error"]["code"].as_str().unwrap_or_default().to_string()
    }

    /// The error message.
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// `method url` with an optional bearer token and body.
pub fn request(method: &str, url: &str, token: Option<&str>, body: Option<&[u8]>) -> Reply {
    request_with(method, url, token, &[], body)
}

/// [`request`] with extra headers.
pub fn request_with(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut req = ureq::request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let content_type = response.header("content-type").map(String::from);
    let audit_id = response.header("signgate-audit-id").map(String::from);
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .expect("read body");
    Reply {
        status,
        content_type,
        audit_id,
        body,
    }
}

/// A `signgate serve` child run from a given working directory, its stderr in a file;
/// killed when dropped unless it was stopped with [`Server::terminate`].
pub struct Server {
    /// `http://127.0.0.1:PORT/`, as printed on the ready line.
    pub url: String,
    /// The port.
    pub port: u16,
    /// The stderr log.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts `signgate ARGS` in `dir` with `envs`; panics with its log if it prints no ready
    /// line within 30 s.
    pub fn start(dir: &Path, args: &[&OsStr], envs: &[(&str, &str)]) -> Server {
        Server::start_binary(&signgate_bin(), dir, args, envs)
    }

    /// [`Server::start`] of the signgate binary at `bin` (a bench may run a release build).
    pub fn start_binary(bin: &Path, dir: &Path, args: &[&OsStr], envs: &[(&str, &str)]) -> Server {
        let log = dir.join(format!("serve-{}.log", free_port()));
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(dir)
            .env_remove("SIGNGATE_DATABASE_URL")
            .env_remove("SIGNGATE_KEY_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn signgate");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(|l| l.ok()));
            for _ in lines {}
        });
        let first = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
        let Some(url) = first
            .as_deref()
            .and_then(|l| l.strip_prefix("listening on "))
            .map(str::to_string)
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "signgate {args:?} did not start: {first:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        let port = url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        Server {
            url,
            port,
            log,
            child: Some(child),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits (at most `limit`) for the exit; returns the exit code and how
    /// long it took, or `None` if it did not exit in time (it is then killed).
    pub fn terminate(&mut self, limit: Duration) -> Option<(Option<i32>, Duration)> {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        while started.elapsed() < limit {
            if let Ok(Some(exit)) = child.try_wait() {
                return Some((exit.code(), started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The stderr written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A demo gateway run from an empty working directory, with a client granted `demo-agency`.
pub struct DemoGateway {
    /// Working directory and data folder (`data/`).
    pub dir: tempfile::TempDir,
    /// The server.
    pub server: Server,
    /// A bearer token of agency `demo`, granted the demo key.
    pub token: String,
}

impl DemoGateway {
    /// Creates the client, then starts `signgate serve --listen 127.0.0.1:0 --data DIR/data`
    /// from `DIR`.
    pub fn start() -> DemoGateway {
        let dir = tempdir();
        let out = run_ok(&mut demo_admin(
            dir.path(),
            &[
                "client",
                "add",
                "--agency",
                "demo",
                "--name",
                "t",
                "--key",
                "demo-agency",
            ],
        ));
        let v: Value = serde_json::from_slice(&out.stdout).expect("client add prints JSON");
        let token = v["token"].as_str().expect("token").to_string();
        let data = dir.path().join("data");
        let server = Server::start(
            dir.path(),
            &[
                OsStr::new("serve"),
                OsStr::new("--listen"),
                OsStr::new("127.0.0.1:0"),
                OsStr::new("--data"),
                data.as_os_str(),
            ],
            &[],
        );
        DemoGateway { dir, server, token }
    }

    /// `URL/path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// POSTs `body` to `path` with the client's token.
    pub fn post(&self, path: &str, body: &[u8]) -> Reply {
        request("POST", &self.url(path), Some(&self.token), Some(body))
    }
}

/// `signgate ARGS --data DIR/data` in demo mode, run from `dir`, with no database or password
/// from the environment.
pub fn demo_admin(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = signgate(args);
    cmd.arg("--data")
        .arg(dir.join("data"))
        .current_dir(dir)
        .env_remove("SIGNGATE_DATABASE_URL")
        .env_remove("SIGNGATE_KEY_PASSWORD");
    cmd
}

/// A `multipart/form-data` body of `(name, file name, bytes)` parts and its content type.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (Vec<u8>, String) {
    let boundary = "sggateway7c1e0f";
    let mut form = Vec::new();
    for (name, file, bytes) in parts {
        let file = file
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        form.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        form.extend_from_slice(bytes);
        form.extend_from_slice(b"\r\n");
    }
    form.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (form, format!("multipart/form-data; boundary={boundary}"))
}
