//! SIGTERM drains a gateway that is also a routing node (issue 13 item 8): the API listener,
//! the routing listener and the outbox worker all stop, a client sending its request slowly
//! is closed when the drain limit runs out, and the process exits 0 within that limit.

use std::ffi::OsStr;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;

/// The drain limit configured for the test (`shutdown_timeout_secs`).
const DRAIN_SECS: u64 = 2;

#[test]
fn sigterm_stops_a_routing_node_within_the_drain_limit() {
    let tmp = tempdir();
    let demo = repo_root().join("certs/demo");
    let config = tmp.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\ntrust = [{root:?}]\nshutdown_timeout_secs = {DRAIN_SECS}\n\n\
             [routing]\nnode_id = \"P\"\nserves = [\"TEST.P\"]\nlisten = \"127.0.0.1:0\"\n\
             identity = {identity:?}\nsigning_key = {signer:?}\npoll_ms = 100\n",
            data = tmp.path().join("data"),
            root = demo.join("root-ca.pem"),
            identity = demo.join("node-province.p12"),
            signer = demo.join("agency-signer.p12"),
        ),
    )
    .expect("write config");
    let added = run_ok(
        signgate([
            "client", "add", "--agency", "a", "--name", "slow", "--config",
        ])
        .arg(&config)
        .env("SIGNGATE_KEY_PASSWORD", "demo")
        .env_remove("SIGNGATE_DATABASE_URL"),
    );
    let token: serde_json::Value = serde_json::from_slice(&added.stdout).expect("client JSON");
    let token = token["token"].as_str().expect("token").to_string();
    let mut server = Server::start(
        tmp.path(),
        &[
            OsStr::new("serve"),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[
            ("SIGNGATE_KEY_PASSWORD", "demo"),
            ("SIGNGATE_LOG", "signgate=info"),
        ],
    );
    let log = server.log();
    let routing_port: u16 = log
        .lines()
        .find_map(|l| {
            l.split("routing node P listening on https://127.0.0.1:")
                .nth(1)
        })
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no routing listen line in:\n{log}"));
    assert!(
        TcpStream::connect(("127.0.0.1", routing_port)).is_ok(),
        "routing listener"
    );
    let ready = request("GET", &format!("{}readyz", server.url), None, None);
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );

    // An authenticated client that sends the start of its document and then nothing: its
    // request is in flight when SIGTERM comes.
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    write!(
        slow,
        "POST /v1/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 100000\r\n\r\n%PDF-"
    )
    .expect("send part");
    std::thread::sleep(Duration::from_millis(200));

    let (code, took) = server
        .terminate(Duration::from_secs(DRAIN_SECS + 8))
        .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", server.log()));
    let log = server.log();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        took >= Duration::from_secs(DRAIN_SECS) - Duration::from_millis(300),
        "{took:?}: the slow request was not given the drain time"
    );
    assert!(took < Duration::from_secs(DRAIN_SECS + 5), "took {took:?}");
    assert!(log.contains("routing node P stopped"), "{log}");
    // Both listeners are closed.
    assert!(
        TcpStream::connect(("127.0.0.1", routing_port)).is_err(),
        "routing port still open"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", server.port)).is_err(),
        "API port still open"
    );
}
