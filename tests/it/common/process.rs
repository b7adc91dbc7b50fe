//! Running the signgate binary and other commands, ports, child processes.

use std::ffi::OsStr;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Set in a child made by [`run_in_child`] to the name of the test it runs.
const CHILD_TEST: &str = "SIGNGATE_IT_CHILD_TEST";

/// True in the process [`run_in_child`] started for test `name`.
pub fn is_child(name: &str) -> bool {
    std::env::var_os(CHILD_TEST).is_some_and(|t| t == name)
}

/// Runs test `name` (its full name, e.g. `pkcs11_always_auth::token_signs`) alone in a new
/// process of this test binary with `envs` set there, and fails unless it ran and passed. For
/// a test that needs process-wide state (environment variables a C library reads, the working
/// directory) which the other tests' threads of the shared process must not see:
/// ```ignore
/// const NAME: &str = "m::t";
/// if !common::is_child(NAME) {
///     let conf = /* prepare */;
///     common::run_in_child(NAME, &[("SOFTHSM2_CONF", conf.as_os_str())]);
///     return;
/// }
/// // the body, in the child, with the environment set
/// ```
pub fn run_in_child(name: &str, envs: &[(&str, &OsStr)]) {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_TEST, name);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let stdout = stdout_str(&out);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} in a child process: exit {:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        out.status.code(),
        stderr_str(&out)
    );
}
