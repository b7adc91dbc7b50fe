//! Webhooks of the routing node (issue 15, item 6), with real `signgate serve` nodes (the
//! networks of [`crate::routing`]) and a real HTTP receiver on loopback:
//!
//! - a document arrives at the commune → its agency's webhook gets `document.received`, and
//!   the province's gets `status.received` (01); each signature is checked with `openssl dgst
//!   -hmac` over `"{t}.{body}"`, as the README tells receivers to;
//! - the receiver down → the deliveries are retried with backoff (attempts and last error
//!   shown by `route webhook deliveries`) and delivered once it is back;
//! - the commune's node SIGKILLed with deliveries pending, then restarted: every event arrives,
//!   once, under the id it was recorded with (no event lost, none re-created);
//! - subscriptions over HTTP per agency (`POST`/`GET`/`DELETE /v1/route/webhooks`), and the
//!   refusals (https, an agency not served here, an unknown event kind).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use signgate::edxml::Business;

use crate::common::*;
use crate::routing::{api, client_token, envelope, s, wait_until, Links, Net};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// An HTTP receiver on a fixed loopback port that answers 204 and records every request;
/// it can be stopped (the port then refuses connections) and started again on the same port.
struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

fn read_request(stream: &mut TcpStream) -> Option<Hit> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Hit {
        path,
        headers,
        body,
    })
}

impl Receiver {
    fn new(port: u16) -> Self {
        Receiver {
            port,
            hits: Arc::default(),
            running: None,
        }
    }

    fn start(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind receiver");
        let stop = Arc::new(AtomicBool::new(false));
        let (hits, flag) = (self.hits.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                if let Some(hit) = read_request(&mut stream) {
                    hits.lock().unwrap().push(hit);
                    let _ = stream.write_all(
                        b"HTTP/1.1 204 No Content\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                    );
                }
            }
        });
        self.running = Some((stop, handle));
    }

    fn stop(&mut self) {
        if let Some((flag, handle)) = self.running.take() {
            flag.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            handle.join().unwrap();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn hits(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == format!("/{path}"))
            .cloned()
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `HMAC-SHA256(secret, "{t}.{body}")` by the `openssl` command (not signgate's code).
fn openssl_hmac(secret: &str, t: &str, body: &[u8]) -> String {
    let file = scratch_path("webhook-signed", "bin");
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    std::fs::write(&file, signed).unwrap();
    let o = run(std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-r"])
        .arg(&file));
    assert_exit(&o, 0, "openssl dgst -hmac");
    stdout_str(&o)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Checks a delivery's headers and signature as a receiver would.
fn assert_signed(hit: &Hit, secret: &str) {
    let sig = &hit.headers["signgate-webhook-signature"];
    let t = &hit.headers["signgate-webhook-timestamp"];
    let (t_part, v1) = sig.split_once(",v1=").expect("t=…,v1=…");
    assert_eq!(t_part, format!("t={t}"), "{sig}");
    assert_eq!(
        v1,
        openssl_hmac(secret, t, &hit.body),
        "signature of {hit:?}"
    );
    assert_ne!(
        v1,
        openssl_hmac(secret, t, &[&hit.body[..], &b" "[..]].concat()),
        "the signature covers the body"
    );
    assert_eq!(hit.headers["signgate-webhook-id"], hit.json()["id"]);
    assert_eq!(hit.headers["content-type"], "application/json");
    assert!(
        !String::from_utf8_lossy(&hit.body).contains(secret),
        "secret in body"
    );
}

fn add_webhook(net: &Net, node: &str, agency: &str, url: &str, events: &str) -> Value {
    let o = net.route(
        node,
        &[
            "webhook", "add", "--agency", agency, "--url", url, "--events", events,
        ],
    );
    assert_exit(&o, 0, "route webhook add");
    serde_json::from_str(&stdout_str(&o)).expect("webhook add prints JSON")
}

fn deliveries(net: &Net, node: &str, id: &str) -> Vec<Value> {
    let o = net.route(node, &["webhook", "deliveries", "--id", id]);
    assert_exit(&o, 0, "route webhook deliveries");
    stdout_str(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn pair() -> Vec<(&'static str, &'static str, Links)> {
    vec![
        ("P", "TEST.P", vec![("C", s(&["TEST.C1"]))]),
        ("C", "TEST.C1", vec![("P", s(&["*"]))]),
    ]
}

#[test]
fn webhooks_are_signed_retried_and_survive_a_restart() {
    if require_tool("openssl").is_none() {
        return;
    }
    let extra = "webhook_backoff_initial_ms = 200\nwebhook_backoff_max_ms = 1000\nwebhook_timeout_secs = 5\nwebhook_max_attempts = 200\n";
    let mut net = Net::new("webhooks", &pair(), extra, None);
    let mut receiver = Receiver::new(free_port());
    receiver.start();

    // subscriptions, and what is refused
    let c_hook = add_webhook(
        &net,
        "C",
        "TEST.C1",
        &receiver.url("hook/c?token=x"),
        "document.received",
    );
    let p_hook = add_webhook(
        &net,
        "P",
        "TEST.P",
        &receiver.url("hook/p"),
        "status.received",
    );
    let c_secret = c_hook["secret"].as_str().unwrap().to_string();
    let p_secret = p_hook["secret"].as_str().unwrap().to_string();
    assert!(c_secret.starts_with("whsec_") && c_secret != p_secret);
    for (agency, url, events) in [
        ("TEST.C1", "https://127.0.0.1:1/hook", "all"),
        ("TEST.X", "http://127.0.0.1:1/hook", "all"),
        ("TEST.C1", "http://127.0.0.1:1/hook", "document.sent"),
    ] {
        let o = net.route(
            "C",
            &[
                "webhook", "add", "--agency", agency, "--url", url, "--events", events,
            ],
        );
        assert_exit(&o, 64, &format!("webhook add {agency} {url} {events}"));
    }
    let listed = net.route("C", &["webhook", "list"]);
    assert_exit(&listed, 0, "route webhook list");
    assert!(
        stdout_str(&listed).contains(c_hook["id"].as_str().unwrap())
            && !stdout_str(&listed).contains(&c_secret),
        "{}",
        stdout_str(&listed)
    );
    net.start_all(&["P", "C"]);

    // 1. a document arrives: both webhooks, signed
    let d1 = doc_id("TEST.P", "901");
    net.send(
        "P",
        &envelope(
            "TEST.P",
            &["TEST.C1"],
            "901",
            "Webhook 1",
            Business::default(),
        ),
    );
    wait_until(&net, Duration::from_secs(60), "webhooks for d1", || {
        !receiver.hits("hook/c?token=x").is_empty() && !receiver.hits("hook/p").is_empty()
    });
    let hit = &receiver.hits("hook/c?token=x")[0];
    assert_signed(hit, &c_secret);
    let event = hit.json();
    assert_eq!(event["type"], "document.received", "{event:#}");
    assert_eq!(event["agency"], "TEST.C1");
    assert_eq!(event["data"]["document_id"], d1.as_str());
    assert_eq!(event["data"]["meta"]["subject"], "Webhook 1");
    let status = &receiver.hits("hook/p")[0];
    assert_signed(status, &p_secret);
    assert_eq!(status.json()["type"], "status.received");
    assert_eq!(status.json()["data"]["code"], "01");
    assert_eq!(status.json()["data"]["from_organ"], "TEST.C1");
    assert!(
        !net.log("C").contains(&c_secret) && !net.log("P").contains(&p_secret),
        "a secret in a log"
    );

    // 2. the receiver is down: d2's delivery is retried (attempts, last error)
    receiver.stop();
    let hook_id = c_hook["id"].as_str().unwrap();
    let d2 = doc_id("TEST.P", "902");
    net.send(
        "P",
        &envelope(
            "TEST.P",
            &["TEST.C1"],
            "902",
            "Webhook 2",
            Business::default(),
        ),
    );
    wait_until(&net, Duration::from_secs(60), "d2 retried", || {
        deliveries(&net, "C", hook_id)
            .iter()
            .any(|d| d["document_id"] == d2.as_str() && d["attempts"].as_i64() >= Some(2))
    });
    let pending = deliveries(&net, "C", hook_id);
    let d2_delivery = pending
        .iter()
        .find(|d| d["document_id"] == d2.as_str())
        .unwrap();
    assert_eq!(d2_delivery["state"], "pending", "{d2_delivery}");
    assert!(
        d2_delivery["last_error"]
            .as_str()
            .is_some_and(|e| !e.contains("token=x")),
        "last error without the URL: {d2_delivery}"
    );

    // 3. the node is killed with d2 pending, restarted, and d3 arrives meanwhile
    net.kill("C");
    let d3 = doc_id("TEST.P", "903");
    net.send(
        "P",
        &envelope(
            "TEST.P",
            &["TEST.C1"],
            "903",
            "Webhook 3",
            Business::default(),
        ),
    );
    net.start("C");
    wait_until(&net, Duration::from_secs(60), "d3 delivered at C", || {
        net.rows("C", &d3, "TEST.C1", "delivered") == 1
    });
    receiver.start();
    wait_until(
        &net,
        Duration::from_secs(90),
        "webhooks for d2 and d3",
        || {
            let docs: Vec<Value> = receiver
                .hits("hook/c?token=x")
                .iter()
                .map(|h| h.json()["data"]["document_id"].clone())
                .collect();
            docs.contains(&Value::from(d2.as_str())) && docs.contains(&Value::from(d3.as_str()))
        },
    );
    std::thread::sleep(Duration::from_secs(2)); // a duplicate would arrive meanwhile

    // one event per document, each delivered once under its recorded id, all signed
    let hits = receiver.hits("hook/c?token=x");
    let mut ids: Vec<String> = hits
        .iter()
        .map(|h| h.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hits.len(), 3, "{hits:#?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "{hits:#?}");
    for hit in &hits {
        assert_signed(hit, &c_secret);
    }
    let recorded = deliveries(&net, "C", hook_id);
    assert_eq!(recorded.len(), 3, "{recorded:#?}");
    for d in &recorded {
        assert_eq!(d["state"], "delivered", "{d}");
        assert!(ids.contains(&d["event_id"].as_str().unwrap().to_string()));
    }
    assert!(
        recorded
            .iter()
            .find(|d| d["document_id"] == d2.as_str())
            .unwrap()["attempts"]
            .as_i64()
            >= Some(2),
        "{recorded:#?}"
    );
    wait_until(&net, Duration::from_secs(60), "status events at P", || {
        receiver.hits("hook/p").len() >= 3
    });

    // 4. subscriptions over HTTP are per agency
    let token = client_token(&net, "C", "TEST.C1");
    let other = client_token(&net, "C", "TEST.P");
    let url = receiver.url("hook/api");
    let (code, made) = api(
        &net,
        "C",
        &token,
        "webhooks",
        Some(
            serde_json::json!({"url": url, "events": "all"})
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(code, 201, "{made}");
    assert!(made["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("whsec_")));
    let (code, listed) = api(&net, "C", &token, "webhooks", None);
    assert_eq!(code, 200);
    let listed = listed["webhooks"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert!(listed.iter().all(|w| w.get("secret").is_none()));
    let (code, body) = api(
        &net,
        "C",
        &token,
        "webhooks",
        Some(br#"{"url":"ftp://127.0.0.1/x"}"#.to_vec()),
    );
    assert_eq!(code, 400, "{body}");
    let base = net.nodes["C"].process.as_ref().unwrap().url.clone();
    let delete =
        |token: &str, id: &str| match ureq::delete(&format!("{base}v1/route/webhooks/{id}"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => c,
            Err(e) => panic!("{e}"),
        };
    let made_id = made["id"].as_str().unwrap();
    assert_eq!(delete(&other, made_id), 404, "another agency's");
    assert_eq!(delete(&token, made_id), 204);
    assert_eq!(delete(&token, made_id), 404);
}
