//! The agency directory: the full 2024 and 2025 unit files imported (counts as checked in
//! data/vn-admin/README.md), a synthetic identifier mapping, a commune merge redirecting
//! `resolve` and passing documents already delivered to the successor, rename and dissolve,
//! on SQLite and on PostgreSQL (a fresh database per run on the `DATABASE_URL` server), and the
//! `signgate directory` command line on the same data.

use crate::common;

use std::time::Instant;

use signgate::directory::{Directory, Structure};
use signgate::store::routing::{Acceptance, DocumentRow, EnvelopeRow};
use signgate::store::Store;
use time::macros::date;

fn units(structure: &str) -> String {
    std::fs::read_to_string(
        common::repo_root().join(format!("data/vn-admin/{structure}/units.csv")),
    )
    .expect("unit file")
}

/// The first two communes of province `province` in the 2025 file, and the province itself.
fn two_communes(text: &str, province: &str) -> (String, String) {
    let mut found = text
        .lines()
        .filter(|l| l.contains(",commune,") && l.split(',').nth(3) == Some(province))
        .map(|l| l.split(',').next().unwrap().to_string());
    (found.next().unwrap(), found.next().unwrap())
}

/// A clearly synthetic mapping (`TEST.` prefix, `H99`): not real agency codes.
fn synthetic_codes(province: &str, a: &str, b: &str) -> String {
    format!(
        "gso_code,organ_id_qcvn102,organ_id_d20\n{province},TEST.00.00.H99,H99.TEST\n{a},TEST.00.01.H99,H99.TEST.01\n{b},TEST.00.02.H99,H99.TEST.02\n"
    )
}

async fn exercise(store: Store) {
    let backend = match &store {
        Store::Sqlite(_) => "SQLite",
        Store::Postgres(_) => "PostgreSQL",
    };
    let dir = Directory::new(store.clone());
    let t = Instant::now();
    let s2024 = dir
        .import(
            Structure::S2024,
            &units("2024"),
            Some("gso_code,organ_id_qcvn102,organ_id_d20\n00001,TEST.24.01.H99,\n"),
        )
        .await
        .unwrap();
    let t2024 = t.elapsed();
    assert_eq!(
        (s2024.provinces, s2024.districts, s2024.communes),
        (63, 696, 10_035)
    );
    let text = units("2025");
    let (a, b) = two_communes(&text, "01");
    let codes = synthetic_codes("01", &a, &b);
    let t = Instant::now();
    let s2025 = dir
        .import(Structure::S2025, &text, Some(&codes))
        .await
        .unwrap();
    eprintln!(
        "{backend} import: 2024 (10,794 units) in {t2024:?}, 2025 (3,355 units) in {:?}",
        t.elapsed()
    );
    assert_eq!(
        (s2025.provinces, s2025.districts, s2025.communes),
        (34, 0, 3_321)
    );
    assert_eq!(s2025.with_organ_ids, 3);
    let counts = dir.counts(Structure::S2024).await.unwrap();
    assert_eq!(
        counts,
        vec![
            ("commune".into(), 10_035),
            ("district".into(), 696),
            ("province".into(), 63)
        ]
    );
    // Same code, different structure, different area.
    let old = dir.unit(Structure::S2024, "00004").await.unwrap();
    let new = dir.unit(Structure::S2025, "00004").await.unwrap();
    assert_eq!(old.level, "commune");
    assert_eq!(old.parent_code.as_deref(), Some("001"));
    assert_eq!(new.parent_code.as_deref(), Some("01"));
    // An identifier already held by another unit is refused, and nothing of that import stays.
    let clash = "gso_code,organ_id_qcvn102,organ_id_d20\n04,TEST.00.01.H99,\n";
    let e = dir
        .import(Structure::S2025, &text, Some(clash))
        .await
        .unwrap_err();
    assert_eq!(e.code().as_str(), "DIRECTORY_INVALID", "{e}");
    assert_eq!(
        dir.unit(Structure::S2025, "04")
            .await
            .unwrap()
            .organ_id_qcvn102,
        None
    );
    // Importing again is idempotent and keeps the identifiers.
    dir.import(Structure::S2025, &text, None).await.unwrap();
    assert_eq!(
        dir.unit(Structure::S2025, &a)
            .await
            .unwrap()
            .organ_id_qcvn102
            .as_deref(),
        Some("TEST.00.01.H99")
    );

    let r = dir.resolve("TEST.00.01.H99").await.unwrap();
    assert_eq!(
        (r.organ_id.as_str(), r.redirected_from.as_deref()),
        ("TEST.00.01.H99", None)
    );
    // Documents already delivered at this node to the commune that merges (in either
    // identifier form) pass to its successor; one forwarded to a peer stays as it is.
    store
        .route_accept(&delivered_rows(), "2025-12-01T00:00:00Z")
        .await
        .unwrap();
    dir.merge(
        Structure::S2025,
        std::slice::from_ref(&a),
        &b,
        date!(2026 - 01 - 01),
    )
    .await
    .unwrap();
    let r = dir.resolve("TEST.00.01.H99").await.unwrap();
    assert_eq!(r.organ_id, "TEST.00.02.H99");
    let owners: Vec<(String, String, String)> = store
        .route_documents("TEST.S,2025/12/01,1/UBND")
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.recipient_organ, d.owner_organ))
        .collect();
    let expect =
        |id: &str, addressee: &str, owner: &str| (id.into(), addressee.into(), owner.into());
    assert_eq!(
        owners,
        vec![
            expect("rd_q", "TEST.00.01.H99", "TEST.00.02.H99"),
            expect("rd_d", "H99.TEST.01", "H99.TEST.02"),
            expect("rd_f", "TEST.00.01.H99", "TEST.00.01.H99"),
        ],
        "addressee kept, holder moved for local rows only"
    );
    let reassigned = store
        .route_traces("TEST.S,2025/12/01,1/UBND")
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.event == "reassigned")
        .map(|t| t.detail)
        .collect::<Vec<_>>();
    assert_eq!(reassigned.len(), 2, "{reassigned:?}");
    assert!(
        reassigned[0].contains("TEST.00.01.H99 merged into TEST.00.02.H99 from 2026-01-01"),
        "{reassigned:?}"
    );
    let before = dir
        .resolve_on("TEST.00.01.H99", Some(date!(2025 - 12 - 31)))
        .await
        .unwrap();
    assert_eq!(
        (before.organ_id.as_str(), before.redirected_from),
        ("TEST.00.01.H99", None),
        "a merge is not in force before its effective date"
    );
    let on = dir
        .resolve_on("TEST.00.01.H99", Some(date!(2026 - 01 - 01)))
        .await
        .unwrap();
    assert_eq!(on.organ_id, "TEST.00.02.H99");
    assert_eq!(r.redirected_from.as_deref(), Some("TEST.00.01.H99"));
    assert_eq!(r.unit.gso_code, b);
    let r = dir.resolve("H99.TEST.01").await.unwrap();
    assert_eq!(
        r.organ_id, "H99.TEST.02",
        "the Decision 20 form resolves to the same form"
    );
    let merged = dir.unit(Structure::S2025, &a).await.unwrap();
    assert_eq!(
        (merged.state.as_str(), merged.successor.as_deref()),
        ("merged", Some(b.as_str()))
    );
    assert_eq!(merged.effective_from.as_deref(), Some("2026-01-01"));
    let changes = dir.changes(Structure::S2025, Some(&a)).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, "merge");
    // A merged unit cannot merge again; levels must match; unknown codes are NotFound.
    assert!(dir
        .merge(
            Structure::S2025,
            std::slice::from_ref(&a),
            &b,
            date!(2026 - 01 - 02)
        )
        .await
        .is_err());
    assert_eq!(
        dir.merge(
            Structure::S2025,
            std::slice::from_ref(&b),
            "01",
            date!(2026 - 01 - 02)
        )
        .await
        .unwrap_err()
        .code()
        .as_str(),
        "DIRECTORY_INVALID"
    );
    assert_eq!(
        dir.resolve("TEST.99.99.H99")
            .await
            .unwrap_err()
            .code()
            .as_str(),
        "DIRECTORY_NOT_FOUND"
    );
    // Rename keeps the identifier; dissolve refuses a unit with active children.
    dir.rename(Structure::S2025, &b, "Hợp Nhất", date!(2026 - 01 - 01))
        .await
        .unwrap();
    assert_eq!(
        dir.unit(Structure::S2025, &b).await.unwrap().name,
        "Hợp Nhất"
    );
    assert!(dir
        .dissolve(Structure::S2025, "01", date!(2026 - 01 - 01))
        .await
        .is_err());
    // A dissolved unit resolves to nothing from its effective date on.
    dir.dissolve(Structure::S2024, "00001", date!(2025 - 02 - 01))
        .await
        .unwrap();
    let e = dir.resolve("TEST.24.01.H99").await.unwrap_err();
    assert_eq!(e.code().as_str(), "DIRECTORY_INVALID");
    assert!(e.to_string().contains("dissolved on 2025-02-01"), "{e}");
    let before = dir
        .resolve_on("TEST.24.01.H99", Some(date!(2025 - 01 - 31)))
        .await
        .unwrap();
    assert_eq!(before.unit.gso_code, "00001");
    assert_eq!(
        dir.changes(Structure::S2024, Some("00001")).await.unwrap()[0].kind,
        "dissolve"
    );
    // Merging a district moves its communes under the successor.
    let children_before = dir
        .list(Structure::S2024, Some("002"), None)
        .await
        .unwrap()
        .len();
    assert!(children_before > 0);
    dir.merge(
        Structure::S2024,
        &["002".into()],
        "001",
        date!(2025 - 03 - 01),
    )
    .await
    .unwrap();
    assert!(dir
        .list(Structure::S2024, Some("002"), None)
        .await
        .unwrap()
        .is_empty());
    let under_001 = dir.list(Structure::S2024, Some("001"), None).await.unwrap();
    assert!(under_001.iter().any(|u| u.gso_code == old.gso_code));
    assert!(under_001.len() > children_before);
    store.close().await;
}

/// Three rows of one document at a node: delivered here to the commune's QCVN 102 and
/// Decision 20 identifiers, and forwarded to a peer for the former.
fn delivered_rows() -> Acceptance {
    let id = "TEST.S,2025/12/01,1/UBND";
    let row = |rid: &str, recipient: &str, doc_type: i64, next_node: Option<&str>| DocumentRow {
        id: rid.into(),
        sender_organ: "TEST.S".into(),
        document_id: id.into(),
        doc_type,
        recipient_organ: recipient.into(),
        owner_organ: recipient.into(),
        digest: "d".into(),
        envelope_id: "env_1".into(),
        target_document: id.into(),
        state: if next_node.is_some() {
            "forwarded"
        } else {
            "delivered"
        }
        .into(),
        next_node: next_node.map(str::to_string),
        created_at: format!("2025-12-01T00:00:0{doc_type}Z"),
        updated_at: "2025-12-01T00:00:00Z".into(),
    };
    Acceptance {
        envelope: Some(EnvelopeRow {
            id: "env_1".into(),
            digest: "d".into(),
            bytes: b"<e/>".to_vec(),
            from_node: "peer".into(),
            received_at: "2025-12-01T00:00:00Z".into(),
        }),
        documents: vec![
            row("rd_q", "TEST.00.01.H99", 0, None),
            row("rd_d", "H99.TEST.01", 1, None),
            row("rd_f", "TEST.00.01.H99", 2, Some("peer")),
        ],
        ..Acceptance::default()
    }
}

#[test]
fn directory_on_sqlite() {
    let tmp = common::tempdir();
    let url = format!("sqlite://{}", tmp.path().join("dir.db").display());
    common::block_on(async {
        let store = Store::open(&url).await.unwrap();
        exercise(store).await;
    });
}

#[test]
fn directory_on_postgres() {
    let Some(db) = common::PgDatabase::create("sg_dir") else {
        return;
    };
    common::block_on(async {
        let store = Store::open(&db.url).await.unwrap();
        exercise(store).await;
    });
}

#[test]
fn directory_command_line() {
    let data = common::tempdir();
    let codes = data.path().join("codes.csv");
    let text = units("2025");
    let (a, b) = two_communes(&text, "04");
    std::fs::write(&codes, synthetic_codes("04", &a, &b)).unwrap();
    let cmd = |args: &[&str]| {
        let mut c = common::signgate(["directory"]);
        c.args(args)
            .arg("--data")
            .arg(data.path())
            .current_dir(common::repo_root());
        common::run(&mut c)
    };
    let o = cmd(&[
        "import",
        "--structure",
        "2025",
        "--units",
        "data/vn-admin/2025/units.csv",
        "--codes",
        codes.to_str().unwrap(),
    ]);
    common::assert_exit(&o, 0, "directory import");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["imported"]["communes"], 3321);
    let o = cmd(&[
        "merge",
        "--structure",
        "2025",
        &a,
        "--into",
        &b,
        "--effective",
        "2026-01-01",
    ]);
    common::assert_exit(&o, 0, "directory merge");
    let o = cmd(&["resolve", "TEST.00.01.H99"]);
    common::assert_exit(&o, 0, "directory resolve");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["organ_id"], "TEST.00.02.H99");
    assert_eq!(r["redirected_from"], "TEST.00.01.H99");
    let o = cmd(&["resolve", "TEST.00.01.H99", "--on", "2025-12-31"]);
    common::assert_exit(&o, 0, "directory resolve --on");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["organ_id"], "TEST.00.01.H99");
    assert!(r["redirected_from"].is_null());
    let o = cmd(&["show", "--structure", "2025", &a]);
    common::assert_exit(&o, 0, "directory show");
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["unit"]["state"], "merged");
    assert_eq!(shown["changes"][0]["kind"], "merge");
    let o = cmd(&["list", "--structure", "2025", "--level", "province"]);
    common::assert_exit(&o, 0, "directory list");
    assert_eq!(common::stdout_str(&o).lines().count(), 34);
    let o = cmd(&["resolve", "TEST.77.77.H99"]);
    common::assert_exit(&o, 66, "directory resolve of an unknown agency");
    assert!(common::stderr_str(&o).contains("DIRECTORY_NOT_FOUND"));
    let o = cmd(&[
        "merge",
        "--structure",
        "2025",
        &a,
        "--into",
        &b,
        "--effective",
        "2026-13-01",
    ]);
    common::assert_exit(&o, 64, "bad date");
}
