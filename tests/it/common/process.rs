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

/// A TCP port on 127.0.0.1 that is free now and stays free for a process started later.
///
/// The port is released before the process that listens on it starts, so it must not be one
/// the kernel may hand out meanwhile: a port from `127.0.0.1:0` is in the ephemeral range,
/// where any concurrent test's outbound connection or `:0` listener can take it (a fresh-clone
/// CI run lost a routing node's start that way: "Address already in use"). So the port is
/// picked at random below the ephemeral range (`ip_local_port_range`), is bindable when
/// picked, and is never handed out twice in this test run. Where the range leaves no room
/// below it, the kernel's choice is the fallback.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, RandomState};
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const LOW: u16 = 20000;
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    if ephemeral_start > LOW + 1000 {
        let random = RandomState::new();
        for attempt in 0u32..2000 {
            let span = u64::from(ephemeral_start - LOW);
            let port = LOW + (random.hash_one(attempt) % span) as u16;
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.insert(port);
                return port;
            }
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port();
    given.insert(port);
    port
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
