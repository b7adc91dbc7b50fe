//! Routing operations (issue 15), over networks of real `signgate serve` processes (the helpers
//! of [`crate::routing`]):
//!
//! - a revocation outage: a document arrives while its signer's OCSP/CRL service is down; it is
//!   held (01 with `held`, never 02), re-validated at its arrival time and delivered exactly
//!   once when the service is back, with no manual step; with a short deadline, it is answered
//!   02 with a readable reason and an alert instead;
//! - a clerk's inbox and sent list over HTTP: metadata, filters (state, sender, dates, text),
//!   cursor paging, `route ack` returning the new state;
//! - the signing certificate bound to the sending agency (directory `cert`), a recall whose
//!   signed header does not name its target, and a routing loop: each answered 02 with a
//!   readable reason, never dropped;
//! - a peer reaching a directory subtree (`serves_below`): delivery and the status back;
//! - signed directory updates from the province node reaching the district and, relayed, the
//!   commune; unsigned, wrongly signed, altered and older updates refused or without effect;
//! - the inbox listing at 200,000 rows in SQLite (timings printed).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use signgate::edxml::{Business, BusinessDocType};
use signgate::keys::KeySource;
use signgate::pki::demo::LeafSpec;
use time::macros::date;

use crate::common::*;
use crate::routing::{
    api, client_token, envelope_signed, pki, s, signed_pdf, wait_until, Links, Net,
};

/// The province P (TEST.P) and one commune node C (TEST.C1); P also routes TEST.OLD to C,
/// which does not serve it (a directory change only one node recorded).
fn pair() -> Vec<(&'static str, &'static str, Links)> {
    vec![
        ("P", "TEST.P", vec![("C", s(&["TEST.C1", "TEST.OLD"]))]),
        ("C", "TEST.C1", vec![("P", s(&["*"]))]),
    ]
}

fn open_key(p12: &Path) -> std::sync::Arc<dyn KeySource> {
    let opts = signgate::keys::OpenOptions {
        secret: Some("demo".to_string().into()),
        ..Default::default()
    };
    signgate::keys::open(p12.to_str().unwrap(), &opts).expect("open key")
}

/// SHA-256 of the certificate in a PKCS#12 file (password `demo`), hex.
fn p12_fingerprint(p12: &Path) -> String {
    let der = std::fs::read(p12).unwrap();
    let parsed = openssl::pkcs12::Pkcs12::from_der(&der)
        .unwrap()
        .parse2("demo")
        .unwrap();
    hex::encode(openssl::sha::sha256(
        &parsed.cert.unwrap().to_der().unwrap(),
    ))
}

/// The statuses `from` sent about `document_id`, as `node` recorded them.
fn statuses(net: &Net, node: &str, document_id: &str, from: &str) -> Vec<Value> {
    net.status(node, document_id)
        .map(|v| {
            v["statuses"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["from_organ"] == from)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn trace_details(net: &Net, node: &str, document_id: &str, event: &str) -> Vec<String> {
    net.status(node, document_id)
        .map(|v| {
            v["trace"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["event"] == event)
                .map(|e| e["detail"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Adds `line` to the `[routing]` table of node `name`'s configuration.
fn add_routing_setting(net: &Net, name: &str, line: &str) {
    let path = &net.nodes[name].config;
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(
        path,
        text.replacen("[routing]\n", &format!("[routing]\n{line}\n"), 1),
    )
    .unwrap();
}

#[test]
fn a_revocation_outage_holds_the_document_then_delivers_it_once() {
    // the agency's certificate comes from a PKI of its own, whose OCSP/CRL service we stop
    let port = free_port();
    let (tmp, _outage_pki) = generate_demo_pki(&format!("http://127.0.0.1:{port}/"));
    let dir = tmp.path().to_path_buf();
    let server = SigngateServer::pki_serve(&dir, port);
    let key = open_key(&dir.join("agency-signer.p12"));
    let extra = "revalidate_initial_ms = 300\nrevalidate_max_ms = 1000\n";
    let mut net = Net::with_trust("outage", &pair(), extra, None, &[dir.join("root-ca.pem")]);
    net.start("P");

    // 1. sent while the service is up; the commune's node is down
    let d1 = doc_id("TEST.P", "801");
    let env = |n: &str| {
        envelope_signed(
            key.as_ref(),
            "TEST.P",
            &["TEST.C1"],
            n,
            "Công văn gửi trong lúc mất OCSP",
            Business::default(),
        )
    };
    let sent = net.send("P", &env("801"));
    assert_eq!(
        (sent["status"].as_str(), sent["held"].is_null()),
        (Some("01"), true),
        "{sent}"
    );

    // 2. the service goes down, then the commune's node comes up and receives the document
    server.stop();
    net.start("C");
    let held_at_c = |state: &str| {
        net.status("C", &d1).is_some_and(|v| {
            v["held"]
                .as_array()
                .is_some_and(|h| h.iter().any(|p| p["state"] == state))
        })
    };
    wait_until(&net, Duration::from_secs(60), "d1 held at C", || {
        held_at_c("waiting")
    });
    wait_until(&net, Duration::from_secs(30), "P's row forwarded", || {
        net.rows("P", &d1, "TEST.C1", "forwarded") == 1
    });
    std::thread::sleep(Duration::from_secs(2)); // a few re-validations fail meanwhile
    assert_eq!(
        net.rows("C", &d1, "TEST.C1", "delivered"),
        0,
        "not delivered unverified"
    );
    assert!(statuses(&net, "P", &d1, "TEST.C1")
        .iter()
        .all(|s| s["code"] != "02"));
    assert!(
        net.log("C").contains("route_revocation_unavailable"),
        "{}",
        net.log("C")
    );
    let forwarded = trace_details(&net, "P", &d1, "forwarded").join("\n");
    assert!(forwarded.contains("held by the next hop"), "{forwarded}");

    // 3. the service is back: delivered exactly once, 01 back at P, no manual step
    let server = SigngateServer::pki_serve(&dir, port);
    wait_until(&net, Duration::from_secs(60), "d1 delivered at C", || {
        net.rows("C", &d1, "TEST.C1", "delivered") == 1
    });
    wait_until(&net, Duration::from_secs(60), "01 from C1 at P", || {
        net.has_status("P", &d1, "TEST.C1", "01")
    });
    let view = net.status("C", &d1).unwrap();
    assert_eq!(view["documents"].as_array().unwrap().len(), 1, "{view:#}");
    assert!(held_at_c("accepted"), "{view:#}");
    assert_eq!(
        trace_details(&net, "C", &d1, "revalidated").len(),
        1,
        "{view:#}"
    );

    // 4. a deadline: C restarted with 3 s, the service down when the next document arrives
    net.kill("C");
    let d2 = doc_id("TEST.P", "802");
    net.send("P", &env("802"));
    server.stop();
    add_routing_setting(&net, "C", "revalidate_deadline_secs = 3");
    net.start("C");
    wait_until(
        &net,
        Duration::from_secs(90),
        "02 from C1 at P for d2",
        || net.has_status("P", &d2, "TEST.C1", "02"),
    );
    let refusal = statuses(&net, "P", &d2, "TEST.C1")
        .into_iter()
        .find(|s| s["code"] == "02")
        .unwrap();
    let reason = refusal["description"].as_str().unwrap_or_default();
    assert!(
        reason.contains("revocation status") && !reason.contains("%20"),
        "readable reason: {reason}"
    );
    assert_eq!(net.rows("C", &d2, "TEST.C1", "delivered"), 0);
    assert!(
        net.log("C").contains("route_revocation_deadline"),
        "{}",
        net.log("C")
    );
    drop(tmp);
}

/// A document with the fields a clerk filters on: due date, type name, two attachments; a
/// follow-up names its target in the signed header only when its subject says "signed".
fn letter(
    key: &dyn KeySource,
    to: &str,
    number: &str,
    subject: &str,
    business: Business,
) -> Vec<u8> {
    let attachments = vec![
        test_attachment(1, "congvan.pdf", "application/pdf", signed_pdf()),
        test_attachment(2, "phuluc.txt", "text/plain", b"phu luc".to_vec()),
    ];
    TestEnvelope {
        sender_name: "UBND tỉnh Thử nghiệm".into(),
        business,
        due_date: Some(date!(2025 - 08 - 15)),
        signed_reference: subject.contains("signed"),
        ..TestEnvelope::new("TEST.P", &[to], number, subject, attachments)
    }
    .build(key)
}

fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn tomorrow() -> String {
    let d = time::OffsetDateTime::now_utc().date().next_day().unwrap();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn docs(body: &Value) -> Vec<Value> {
    body["documents"].as_array().cloned().unwrap_or_default()
}

#[test]
fn clerk_inbox_agency_certificates_and_loops() {
    let agency = pki().path("agency-signer.p12");
    let key_a = open_key(&agency);
    let other = pki().issue(
        &LeafSpec::new("agency B routing ops"),
        "agency-b-routing-ops",
    );
    let key_b = open_key(&other.p12_path);
    let fp_b = hex::encode(openssl::sha::sha256(&other.certificate.to_der().unwrap()));
    let mut net = Net::new("ops", &pair(), "", None);
    // C's directory: TEST.P signs with the agency certificate, TEST.B with the other one
    for (organ, fp) in [("TEST.P", p12_fingerprint(&agency)), ("TEST.B", fp_b)] {
        let mut cmd = signgate([
            "directory",
            "cert",
            "add",
            "--organ",
            organ,
            "--fingerprint",
        ]);
        cmd.arg(&fp)
            .arg("--config")
            .arg(&net.nodes["C"].config)
            .env("SIGNGATE_KEY_PASSWORD", "demo");
        assert_exit(&run(&mut cmd), 0, "directory cert add");
    }
    net.start_all(&["P", "C"]);

    // five letters to the commune
    let subjects = [
        "Kế hoạch phòng chống lụt bão",
        "Báo cáo tài chính quý 3",
        "Giấy mời họp giao ban",
        "Công văn về đất đai",
        "Quyết định khen thưởng",
    ];
    for (i, subject) in subjects.iter().enumerate() {
        let number = format!("9{i}1");
        let sent = net.send(
            "P",
            &letter(
                key_a.as_ref(),
                "TEST.C1",
                &number,
                subject,
                Business::default(),
            ),
        );
        assert_eq!(sent["status"], "01", "{sent}");
    }
    wait_until(&net, Duration::from_secs(60), "five letters at C", || {
        (0..5).all(|i| {
            net.rows(
                "C",
                &doc_id("TEST.P", &format!("9{i}1")),
                "TEST.C1",
                "delivered",
            ) == 1
        })
    });

    // the clerk's inbox over HTTP: metadata, paging, filters
    let clerk = client_token(&net, "C", "TEST.C1");
    let (code, page) = api(&net, "C", &clerk, "inbox?limit=2", None);
    assert_eq!(code, 200, "{page}");
    let first = docs(&page);
    assert_eq!(first.len(), 2, "{page:#}");
    let row = &first[0];
    assert_eq!(row["sender_name"], "UBND tỉnh Thử nghiệm", "{row:#}");
    assert_eq!(row["document_type_name"], "Công văn");
    assert_eq!(row["due_date"], "2025-08-15");
    assert!(row["doc_number"].as_str().unwrap().ends_with("/UBND-VP"));
    assert!(subjects.contains(&row["subject"].as_str().unwrap()));
    let names: Vec<&str> = row["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["congvan.pdf", "phuluc.txt"]);
    assert_eq!(row["attachments"][1]["size"], 7);
    let mut seen: Vec<String> = first
        .iter()
        .map(|d| d["document_id"].as_str().unwrap().to_string())
        .collect();
    let mut cursor = page["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let (code, page) = api(
            &net,
            "C",
            &clerk,
            &format!("inbox?limit=2&cursor={c}"),
            None,
        );
        assert_eq!(code, 200, "{page}");
        seen.extend(
            docs(&page)
                .iter()
                .map(|d| d["document_id"].as_str().unwrap().to_string()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        (seen.len(), unique.len()),
        (5, 5),
        "every letter once over the pages: {seen:?}"
    );
    let count = |query: &str| {
        let (code, body) = api(&net, "C", &clerk, &format!("inbox?{query}"), None);
        assert_eq!(code, 200, "{query}: {body}");
        docs(&body).len()
    };
    assert_eq!(count("q=t%C3%A0i%20ch%C3%ADnh"), 1, "text in the subject");
    assert_eq!(count("q=931%2FUBND"), 1, "text in the number");
    assert_eq!(count("sender=TEST.P"), 5);
    assert_eq!(count("sender=TEST.X"), 0);
    assert_eq!(count(&format!("from={}&to={}", today(), today())), 5);
    assert_eq!(count(&format!("from={}", tomorrow())), 0);
    let (code, _) = api(&net, "C", &clerk, "inbox?state=bogus", None);
    assert_eq!(code, 400);

    // route ack answers with the new state; the state filter sees it
    let d0 = doc_id("TEST.P", "901");
    let body = serde_json::json!({"document_id": d0, "status": "03"});
    let (code, acked) = api(
        &net,
        "C",
        &clerk,
        "ack",
        Some(body.to_string().into_bytes()),
    );
    assert_eq!(code, 200, "{acked}");
    assert_eq!(acked["acknowledged"][0]["state"], "accepted", "{acked:#}");
    assert_eq!(count("state=accepted"), 1);
    assert_eq!(count("state=delivered"), 4);

    // the province's sent list, with the last status from the commune
    let sender = client_token(&net, "P", "TEST.P");
    wait_until(&net, Duration::from_secs(60), "03 back at P", || {
        net.has_status("P", &d0, "TEST.C1", "03")
    });
    // The 03 travels back from the commune on its own: wait for it (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let acked_row = loop {
        let (code, sent) = api(&net, "P", &sender, "sent?limit=50", None);
        assert_eq!(code, 200, "{sent}");
        let rows = docs(&sent);
        assert_eq!(rows.len(), 5, "{sent:#}");
        let acked_row = rows
            .iter()
            .find(|r| r["document_id"] == d0.as_str())
            .unwrap()
            .clone();
        if acked_row["last_status"] == "03" || std::time::Instant::now() > deadline {
            break acked_row;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(acked_row["last_status"], "03", "{acked_row:#}");
    assert_eq!(acked_row["recipient_organ"], "TEST.C1");
    // the commune's status messages carry its name (here the one the envelope gives it, as
    // C's directory has no units), not its bare OrganId
    let url = signgate::store::Store::sqlite_url(&net.nodes["P"].dir.join("data"));
    let named = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = signgate::store::Store::open(&url)
            .await
            .expect("open P's db");
        let found = store.route_statuses(&d0).await.unwrap();
        store.close().await;
        found
            .iter()
            .filter(|s| s.from_organ == "TEST.C1")
            .all(|s| String::from_utf8_lossy(&s.bytes).contains("UBND TEST.C1"))
    });
    assert!(named, "statuses from TEST.C1 carry its name");

    // from TEST.P, signed with TEST.B's certificate: 02 at C with a readable reason
    let forged = doc_id("TEST.P", "950");
    net.send(
        "P",
        &letter(
            key_b.as_ref(),
            "TEST.C1",
            "950",
            "Văn bản ký sai",
            Business::default(),
        ),
    );
    wait_until(
        &net,
        Duration::from_secs(60),
        "the forged letter refused",
        || net.rows("P", &forged, "TEST.C1", "refused") == 1,
    );
    let why = trace_details(&net, "P", &forged, "refused-by-peer").join("\n");
    assert!(
        why.contains("signed with the certificate of agency TEST.B") && !why.contains("%20"),
        "{why}"
    );
    assert_eq!(net.rows("C", &forged, "TEST.C1", "delivered"), 0);

    // a recall whose signed header does not name the recalled document: refused at once
    let recall = letter(
        key_a.as_ref(),
        "TEST.C1",
        "901",
        "Thu hồi",
        Business {
            doc_type: BusinessDocType::Revoke,
            reason: Some("thu hồi".into()),
            document_id: Some(d0.clone()),
        },
    );
    let file = net.nodes["P"].dir.join("recall.xml");
    std::fs::write(&file, recall).unwrap();
    let o = net.route("P", &["send", "--envelope", file.to_str().unwrap()]);
    assert_exit(&o, 65, "unsigned recall");
    assert!(stdout_str(&o).contains("ResponseFor"), "{}", stdout_str(&o));
    // signed properly (ResponseFor names it), the recall goes through
    let recall = letter(
        key_a.as_ref(),
        "TEST.C1",
        "901",
        "Thu hồi signed",
        Business {
            doc_type: BusinessDocType::Revoke,
            reason: Some("thu hồi".into()),
            document_id: Some(d0.clone()),
        },
    );
    net.send("P", &recall);
    wait_until(&net, Duration::from_secs(60), "13 recalled at P", || {
        net.has_status("P", &d0, "TEST.C1", "13")
    });

    // a routing loop: P sends TEST.OLD through C, which sends it back; 02 and an alert
    let looped = doc_id("TEST.P", "960");
    net.send(
        "P",
        &letter(
            key_a.as_ref(),
            "TEST.OLD",
            "960",
            "Gửi đơn vị cũ",
            Business::default(),
        ),
    );
    wait_until(
        &net,
        Duration::from_secs(60),
        "the loop reported to P",
        || {
            statuses(&net, "P", &looped, "TEST.C1").iter().any(|s| {
                s["code"] == "02"
                    && s["description"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("routing loop")
            })
        },
    );
    assert!(net.log("P").contains("route_loop"), "{}", net.log("P"));
    assert_eq!(net.rows("C", &looped, "TEST.OLD", "refused"), 1);
}

#[test]
fn inbox_listing_at_200k_rows_in_sqlite() {
    use signgate::store::routing::{
        Acceptance, DocumentMeta, DocumentRow, EnvelopeRow, ListFilter, ListKind,
    };
    const ROWS: usize = 200_000;
    let dir = tempdir();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = signgate::store::Store::open(&signgate::store::Store::sqlite_url(dir.path()))
            .await
            .expect("open");
        let start = time::macros::datetime!(2026-01-01 00:00 UTC);
        let load = Instant::now();
        for batch in 0..ROWS / 1000 {
            let envelope = (batch == 0).then(|| EnvelopeRow {
                id: "env_0".into(),
                digest: "d".into(),
                bytes: b"<e/>".to_vec(),
                from_node: "peer".into(),
                received_at: "t".into(),
            });
            let documents = (batch * 1000..(batch + 1) * 1000)
                .map(|i| {
                    let at =
                        signgate::clock::rfc3339(start + time::Duration::seconds(40 * i as i64));
                    DocumentRow {
                        id: format!("rd_{i:07}"),
                        sender_organ: format!("S{:03}", i % 100),
                        document_id: format!("S{:03},2026/01/01,{i}/UBND", i % 100),
                        doc_type: 0,
                        recipient_organ: format!("ORG{:02}", i % 20),
                        owner_organ: format!("ORG{:02}", i % 20),
                        digest: "d".into(),
                        envelope_id: "env_0".into(),
                        target_document: String::new(),
                        state: if i % 7 == 0 { "completed" } else { "delivered" }.into(),
                        next_node: None,
                        created_at: at.clone(),
                        updated_at: at,
                    }
                })
                .collect();
            let a = Acceptance {
                envelope,
                documents,
                meta: Some(DocumentMeta {
                    subject: format!("Văn bản lô {batch:03}"),
                    sender_name: "UBND".into(),
                    doc_number: format!("{batch}/UBND"),
                    ..DocumentMeta::default()
                }),
                ..Acceptance::default()
            };
            assert!(store.route_accept(&a, "t").await.expect("load"));
        }
        eprintln!("loaded {ROWS} rows in {:?}", load.elapsed());
        let base = ListFilter {
            kind: ListKind::Inbox,
            agencies: vec!["ORG07".into()],
            states: vec!["delivered".into(), "accepted".into()],
            party: None,
            from: None,
            until: None,
            text: None,
            after: None,
            limit: 51,
        };
        let mut timings = Vec::new();
        let timed = |what: &'static str, f: ListFilter| {
            let store = store.clone();
            async move {
                let t = Instant::now();
                let rows = store.route_list(&f).await.expect("list");
                (what, t.elapsed(), rows)
            }
        };
        let (w, t, first) = timed("first page of one agency", base.clone()).await;
        timings.push((w, t));
        assert_eq!(first.len(), 51);
        assert!(first
            .iter()
            .all(|r| r.row.owner_organ == "ORG07" && r.row.state == "delivered"));
        assert!(first
            .windows(2)
            .all(|w| w[0].row.created_at >= w[1].row.created_at));
        let last = &first[49].row;
        let (w, t, next) = timed(
            "next page (cursor)",
            ListFilter {
                after: Some((last.created_at.clone(), last.id.clone())),
                ..base.clone()
            },
        )
        .await;
        timings.push((w, t));
        assert_eq!(
            next[0].row.id, first[50].row.id,
            "the next page starts right after the cursor"
        );
        let (w, t, by_sender) = timed(
            "one sender",
            ListFilter {
                party: Some("S047".into()),
                ..base.clone()
            },
        )
        .await;
        timings.push((w, t));
        assert!(!by_sender.is_empty() && by_sender.iter().all(|r| r.row.sender_organ == "S047"));
        let (w, t, by_text) = timed(
            "text in one batch",
            ListFilter {
                text: Some("lô 123".into()),
                ..base.clone()
            },
        )
        .await;
        timings.push((w, t));
        let expected = (123_000..124_000)
            .filter(|i| i % 20 == 7 && i % 7 != 0)
            .count();
        assert_eq!(by_text.len(), expected, "ORG07's open rows of batch 123");
        let (w, t, by_day) = timed(
            "one day",
            ListFilter {
                from: Some("2026-02-01".into()),
                until: Some("2026-02-02".into()),
                ..base.clone()
            },
        )
        .await;
        timings.push((w, t));
        assert!(
            !by_day.is_empty()
                && by_day
                    .iter()
                    .all(|r| r.row.created_at.starts_with("2026-02-01"))
        );
        for (what, t) in &timings {
            eprintln!("listing {what} at {ROWS} rows: {t:?}");
            assert!(*t < Duration::from_secs(3), "{what} took {t:?}");
        }
        store.close().await;
    });
}

#[test]
fn a_peer_serves_a_directory_subtree() {
    let spec: Vec<(&'static str, &str, Links)> = vec![
        ("P", "TEST.P", vec![("C", Vec::new())]),
        ("C", "TEST.CX", vec![("P", s(&["*"]))]),
    ];
    let mut net = Net::new("subtree", &spec, "", None);
    // P lists no OrganId for C, only the district whose subtree C reaches
    let config = &net.nodes["P"].config;
    let text = std::fs::read_to_string(config).unwrap();
    assert_eq!(text.matches("serves = []").count(), 1, "{text}");
    std::fs::write(
        config,
        text.replace("serves = []", "serves = []\nserves_below = [\"TEST.DX\"]"),
    )
    .unwrap();
    let dir = &net.nodes["P"].dir;
    let units = dir.join("units.csv");
    let codes = dir.join("codes.csv");
    std::fs::write(
        &units,
        "code,name,level,parent_code,type\n01,Một,province,,Tỉnh\n001,Hai,district,01,Huyện\n00001,Ba,commune,001,Xã\n",
    )
    .unwrap();
    std::fs::write(
        &codes,
        "gso_code,organ_id_qcvn102,organ_id_d20\n01,TEST.PR,\n001,TEST.DX,\n00001,TEST.CX,\n",
    )
    .unwrap();
    let mut cmd = signgate(["directory", "import", "--structure", "2024", "--units"]);
    cmd.arg(&units)
        .arg("--codes")
        .arg(&codes)
        .arg("--config")
        .arg(config)
        .env("SIGNGATE_KEY_PASSWORD", "demo");
    assert_exit(&run(&mut cmd), 0, "directory import");
    net.start_all(&["P", "C"]);
    let key = open_key(&pki().path("agency-signer.p12"));
    let d = doc_id("TEST.P", "970");
    let sent = net.send(
        "P",
        &letter(
            key.as_ref(),
            "TEST.CX",
            "970",
            "Gửi xã qua huyện",
            Business::default(),
        ),
    );
    assert_eq!(sent["status"], "01", "{sent}");
    wait_until(&net, Duration::from_secs(60), "delivered at C", || {
        net.rows("C", &d, "TEST.CX", "delivered") == 1
    });
    // the commune's 01 passes P's reverse-path rule through the same subtree
    wait_until(&net, Duration::from_secs(60), "01 back at P", || {
        net.has_status("P", &d, "TEST.CX", "01")
    });
}

/// `signgate directory ARGS --config` of node `name`: exit code and stdout.
fn directory_cli(net: &Net, name: &str, args: &[&str]) -> (i32, String) {
    let mut cmd = signgate(["directory"]);
    cmd.args(args)
        .arg("--config")
        .arg(&net.nodes[name].config)
        .env("SIGNGATE_KEY_PASSWORD", "demo");
    let o = run(&mut cmd);
    (o.status.code().unwrap_or(-1), stdout_str(&o))
}

/// The certificate of a PKCS#12 file (password `demo`) as a PEM file beside it.
fn p12_certificate_pem(p12: &Path, out: &Path) {
    let parsed = openssl::pkcs12::Pkcs12::from_der(&std::fs::read(p12).unwrap())
        .unwrap()
        .parse2("demo")
        .unwrap();
    std::fs::write(out, parsed.cert.unwrap().to_pem().unwrap()).unwrap();
}

/// Signed directory updates (issue 15, item 1) over a province → district → commune network:
/// a merge and a rename recorded at the province only reach the district and, relayed by it,
/// the commune; unsigned, wrongly signed and older updates change nothing.
#[test]
fn directory_updates_from_the_province_reach_every_node() {
    let spec: Vec<(&'static str, &str, Links)> = vec![
        (
            "P",
            "TEST.PR",
            vec![("D", s(&["TEST.DX", "TEST.CX", "TEST.CY"]))],
        ),
        (
            "D",
            "TEST.DX",
            vec![("P", s(&["*"])), ("C", s(&["TEST.CX", "TEST.CY"]))],
        ),
        ("C", "TEST.CX", vec![("D", s(&["*"]))]),
    ];
    let mut net = Net::new("dirsync", &spec, "", None);
    let authority = net.nodes["P"].dir.join("authority.pem");
    p12_certificate_pem(&pki().path("signer-dirsync-P.p12"), &authority);
    add_routing_setting(&net, "P", "directory_authority = true");
    for n in ["D", "C"] {
        add_routing_setting(
            &net,
            n,
            &format!("directory_authority_cert = {:?}", authority),
        );
    }
    let units = net.nodes["P"].dir.join("units.csv");
    let codes = net.nodes["P"].dir.join("codes.csv");
    std::fs::write(
        &units,
        "code,name,level,parent_code,type\n01,Một,province,,Tỉnh\n001,Hai,district,01,Huyện\n00001,Ba,commune,001,Xã\n00002,Bốn,commune,001,Xã\n",
    )
    .unwrap();
    std::fs::write(
        &codes,
        "gso_code,organ_id_qcvn102,organ_id_d20\n01,TEST.PR,\n001,TEST.DX,\n00001,TEST.CX,\n00002,TEST.CY,\n",
    )
    .unwrap();
    for n in ["P", "D", "C"] {
        let (code, out) = directory_cli(
            &net,
            n,
            &[
                "import",
                "--structure",
                "2024",
                "--units",
                units.to_str().unwrap(),
                "--codes",
                codes.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "import at {n}: {out}");
    }
    net.start_all(&["P", "D", "C"]);

    // recorded at the province only
    let (code, out) = directory_cli(
        &net,
        "P",
        &[
            "merge",
            "--structure",
            "2024",
            "00001",
            "--into",
            "00002",
            "--effective",
            "2025-07-01",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let resolved = |n: &str| {
        let (code, out) = directory_cli(&net, n, &["resolve", "TEST.CX"]);
        code == 0 && out.contains("\"organ_id\":\"TEST.CY\"")
    };
    for n in ["D", "C"] {
        wait_until(
            &net,
            Duration::from_secs(60),
            &format!("merge at {n}"),
            || resolved(n),
        );
    }
    let (code, out) = directory_cli(
        &net,
        "P",
        &[
            "rename",
            "--structure",
            "2024",
            "00002",
            "--name",
            "Năm",
            "--effective",
            "2025-08-01",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let renamed = |n: &str| {
        let (_, out) = directory_cli(&net, n, &["show", "--structure", "2024", "00002"]);
        out.contains("\"name\":\"Năm\"")
    };
    wait_until(&net, Duration::from_secs(60), "rename at C", || {
        renamed("C")
    });
    assert!(renamed("D"));
    assert!(
        net.log("C").contains("directory: signed update applied"),
        "{}",
        net.log("C")
    );

    // refused: unsigned, signed by another key; an older update changes nothing
    let update = |from: i64, to: i64, name: &str| signgate::directory::updates::Update {
        kind: signgate::directory::updates::UPDATE_TYPE.into(),
        from_version: from,
        to_version: to,
        issued_at: "2026-12-03T00:00:00Z".into(),
        changes: vec![signgate::directory::updates::Change {
            version: to,
            structure: "2024".into(),
            kind: "rename".into(),
            gso_code: "00002".into(),
            detail: serde_json::json!({"to": name}).to_string(),
            effective: "2025-09-01".into(),
        }],
    };
    let province_key = open_key(&pki().path("signer-dirsync-P.p12"));
    let other_key = open_key(&pki().path("agency-signer.p12"));
    let unsigned = serde_json::to_vec(&update(2, 3, "Giả")).unwrap();
    let forged =
        signgate::routing::directory_sync::sign(other_key.as_ref(), &update(2, 3, "Giả")).unwrap();
    let mut tampered: Value = serde_json::from_slice(
        &signgate::routing::directory_sync::sign(province_key.as_ref(), &update(2, 3, "Sáu"))
            .unwrap(),
    )
    .unwrap();
    tampered["payload"] = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        serde_json::to_vec(&update(2, 3, "Giả")).unwrap(),
    )
    .into();
    for (what, body) in [
        ("unsigned", unsigned),
        ("signed by another key", forged),
        ("altered", serde_json::to_vec(&tampered).unwrap()),
    ] {
        let (status, _, reason) = net.post_as("D", "C", "v1/route/directory", body);
        assert_eq!(status, 400, "{what}: {reason}");
        assert!(reason.contains("directory update"), "{what}: {reason}");
    }
    let older = signgate::routing::directory_sync::sign(province_key.as_ref(), &update(0, 1, "Cũ"))
        .unwrap();
    let (status, _, answer) = net.post_as("D", "C", "v1/route/directory", older);
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        (answer["version"].as_i64(), answer["applied"].as_i64()),
        (Some(2), Some(0))
    );
    assert!(renamed("C"), "nothing changed by refused or older updates");
    // from a node that is not a peer of C: refused before anything is read
    let (status, _, _) = net.post_as("P", "C", "v1/route/directory", b"{}".to_vec());
    assert_eq!(status, 403);
}

/// `signgate bench route` (issue 15 item 8) measures the floor for its envelope size in the same
/// run (`openssl speed`, durable writes) and prints the ratios the issue names, with every
/// document delivered (exit 0). The figures themselves are the release build's, in the README.
#[test]
fn bench_route_prints_the_floor_and_its_ratios() {
    let Some(_) = require_tool("openssl") else {
        return;
    };
    let out = run_ok(&mut signgate([
        "bench",
        "route",
        "--docs",
        "6",
        "--e2e-docs",
        "3",
        "--latency-docs",
        "2",
        "--concurrency",
        "3",
        "--attachment-size",
        "20000",
    ]));
    let text = stdout_str(&out);
    let number = |prefix: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line `{prefix}` in:\n{text}"));
        line[prefix.len()..]
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("`{line}`: {e}"))
    };
    let ratio = number("accept/floor ratio:");
    assert!(ratio > 0.0 && ratio.is_finite(), "{text}");
    let e2e = number("e2e/accept ratio:");
    assert!(e2e > 0.0 && e2e.is_finite(), "{text}");
    assert!(
        text.contains("openssl speed: SHA-256")
            && text.contains("signatures/s per core")
            && text.contains("written durably (one fdatasync per 3)"),
        "{text}"
    );
    assert!(
        text.contains("not saturated (one at a time, 2 documents)"),
        "{text}"
    );
}
