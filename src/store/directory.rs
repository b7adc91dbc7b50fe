//! The agency directory's tables (`directory_units`, `directory_changes`): rows in and out.
//! The rules (what a merge may do, how an identifier resolves) are the `directory` module's
//! (above this one).

use sqlx::Row;

use super::{with_pool, Store, StoreError};

/// One administrative unit's People's Committee as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnitRow {
    /// `2024` or `2025`.
    pub structure: String,
    /// GSO statistical code (2, 3 or 5 digits, as text).
    pub gso_code: String,
    /// Short name without the unit type (`Ba Đình`).
    pub name: String,
    /// Unit type (`Tỉnh`, `Huyện`, `Phường`, …).
    pub unit_type: String,
    /// `province`, `district` or `commune`.
    pub level: String,
    /// The parent unit's GSO code.
    pub parent_code: Option<String>,
    /// The agency's QCVN 102 (dotted) e-identifier, from the codes mapping.
    pub organ_id_qcvn102: Option<String>,
    /// The agency's Decision 20/2020 e-identifier, from the codes mapping.
    pub organ_id_d20: Option<String>,
    /// `active`, `merged` or `dissolved`.
    pub state: String,
    /// The unit it was merged into (same structure).
    pub successor: Option<String>,
    /// The date of its last change (`YYYY-MM-DD`).
    pub effective_from: Option<String>,
}

/// One recorded directory change.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChangeRow {
    /// `2024` or `2025`.
    pub structure: String,
    /// `merge`, `rename` or `dissolve`.
    pub kind: String,
    /// The unit changed.
    pub gso_code: String,
    /// What changed (JSON).
    pub detail: String,
    /// When it takes effect (`YYYY-MM-DD`).
    pub effective: String,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
}

/// Documents delivered at this node to an agency that a directory change merged away: they
/// pass to its successor (`route_documents.owner_organ`), with a `reassigned` trace event each.
#[derive(Debug, Clone)]
pub struct OwnerMove {
    /// The merged agency's identifier.
    pub from: String,
    /// The successor's identifier (same form when it has one).
    pub to: String,
    /// The trace event's detail.
    pub note: String,
    /// RFC 3339 UTC.
    pub at: String,
}

const UNIT_COLUMNS: &str = "structure, gso_code, name, unit_type, level, parent_code, organ_id_qcvn102, organ_id_d20, state, successor, effective_from";
/// Rows per INSERT: 11 binds each stays well under SQLite's and PostgreSQL's bind limits.
const BATCH: usize = 400;

fn unit(r: &impl UnitGet) -> UnitRow {
    UnitRow {
        structure: r.s(0),
        gso_code: r.s(1),
        name: r.s(2),
        unit_type: r.s(3),
        level: r.s(4),
        parent_code: r.o(5),
        organ_id_qcvn102: r.o(6),
        organ_id_d20: r.o(7),
        state: r.s(8),
        successor: r.o(9),
        effective_from: r.o(10),
    }
}

/// Column access shared by the two backends' rows.
trait UnitGet {
    fn s(&self, i: usize) -> String;
    fn o(&self, i: usize) -> Option<String>;
}

impl UnitGet for sqlx::sqlite::SqliteRow {
    fn s(&self, i: usize) -> String {
        self.get(i)
    }
    fn o(&self, i: usize) -> Option<String> {
        self.get(i)
    }
}

impl UnitGet for sqlx::postgres::PgRow {
    fn s(&self, i: usize) -> String {
        self.get(i)
    }
    fn o(&self, i: usize) -> Option<String> {
        self.get(i)
    }
}

impl Store {
    /// Inserts or updates `units` in one transaction, in multi-row batches. An existing unit
    /// keeps its state and successor; its organ ids are replaced only by non-empty ones.
    pub async fn upsert_units(&self, units: &[UnitRow]) -> Result<(), StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            for chunk in units.chunks(BATCH) {
                let mut sql = format!("INSERT INTO directory_units ({UNIT_COLUMNS}) VALUES ");
                for i in 0..chunk.len() {
                    if i > 0 {
                        sql.push(',');
                    }
                    let b = i * 11;
                    sql.push('(');
                    sql.push_str(&(1..=11).map(|k| format!("${}", b + k)).collect::<Vec<_>>().join(","));
                    sql.push(')');
                }
                sql.push_str(" ON CONFLICT (structure, gso_code) DO UPDATE SET name = excluded.name, unit_type = excluded.unit_type, level = excluded.level, parent_code = excluded.parent_code, \
                    organ_id_qcvn102 = COALESCE(excluded.organ_id_qcvn102, directory_units.organ_id_qcvn102), organ_id_d20 = COALESCE(excluded.organ_id_d20, directory_units.organ_id_d20)");
                let mut q = sqlx::query(&sql);
                for u in chunk {
                    q = q.bind(&u.structure).bind(&u.gso_code).bind(&u.name).bind(&u.unit_type)
                        .bind(&u.level).bind(&u.parent_code).bind(&u.organ_id_qcvn102)
                        .bind(&u.organ_id_d20).bind(&u.state).bind(&u.successor).bind(&u.effective_from);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The unit `(structure, gso_code)`.
    pub async fn unit(
        &self,
        structure: &str,
        gso_code: &str,
    ) -> Result<Option<UnitRow>, StoreError> {
        let sql = format!(
            "SELECT {UNIT_COLUMNS} FROM directory_units WHERE structure = $1 AND gso_code = $2"
        );
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(structure).bind(gso_code).fetch_optional(p).await?.map(|r| unit(&r))),
        )
    }

    /// Units carrying `organ_id` in either identifier form, any structure.
    pub async fn units_by_organ_id(&self, organ_id: &str) -> Result<Vec<UnitRow>, StoreError> {
        let sql = format!("SELECT {UNIT_COLUMNS} FROM directory_units WHERE organ_id_qcvn102 = $1 OR organ_id_d20 = $1 ORDER BY structure DESC, gso_code");
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(organ_id).fetch_all(p).await?.iter().map(unit).collect()),
        )
    }

    /// Units of `structure`, optionally only the children of `parent` and/or one `level`.
    pub async fn list_units(
        &self,
        structure: &str,
        parent: Option<&str>,
        level: Option<&str>,
    ) -> Result<Vec<UnitRow>, StoreError> {
        let sql = format!("SELECT {UNIT_COLUMNS} FROM directory_units WHERE structure = $1 AND ($2 IS NULL OR parent_code = $2) AND ($3 IS NULL OR level = $3) ORDER BY gso_code");
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(structure).bind(parent).bind(level).fetch_all(p).await?.iter().map(unit).collect()),
        )
    }

    /// Number of units per level in `structure`: (level, count), ordered by level.
    pub async fn count_units(&self, structure: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT level, COUNT(*) FROM directory_units WHERE structure = $1 GROUP BY level ORDER BY level";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(structure).fetch_all(p).await?.into_iter().map(|r| (r.get(0), r.get(1))).collect()),
        )
    }

    /// Applies one directory change in a transaction: sets the units' state, successor, name
    /// and effective date (`None` keeps a column), moves children of `reparent_from` under
    /// `reparent_to`, and records `change`.
    pub async fn apply_unit_change(
        &self,
        units: &[UnitRow],
        reparent: Option<(&[String], &str)>,
        change: &[ChangeRow],
        owners: &[OwnerMove],
    ) -> Result<(), StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            for u in units {
                sqlx::query("UPDATE directory_units SET name = $3, state = $4, successor = $5, effective_from = $6 WHERE structure = $1 AND gso_code = $2")
                    .bind(&u.structure).bind(&u.gso_code).bind(&u.name).bind(&u.state)
                    .bind(&u.successor).bind(&u.effective_from)
                    .execute(&mut *tx).await?;
            }
            if let Some((from, to)) = reparent {
                let structure = units.first().map(|u| u.structure.clone()).unwrap_or_default();
                for old in from {
                    sqlx::query("UPDATE directory_units SET parent_code = $3 WHERE structure = $1 AND parent_code = $2")
                        .bind(&structure).bind(old).bind(to).execute(&mut *tx).await?;
                }
            }
            for c in change {
                sqlx::query("INSERT INTO directory_changes (structure, kind, gso_code, detail, effective, recorded_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&c.structure).bind(&c.kind).bind(&c.gso_code).bind(&c.detail)
                    .bind(&c.effective).bind(&c.recorded_at)
                    .execute(&mut *tx).await?;
            }
            for m in owners {
                sqlx::query("INSERT INTO route_traces (document_id, sender_organ, at, event, detail) \
                             SELECT document_id, sender_organ, $2, 'reassigned', $3 FROM route_documents WHERE owner_organ = $1 AND next_node IS NULL ORDER BY created_at, id")
                    .bind(&m.from).bind(&m.at).bind(&m.note).execute(&mut *tx).await?;
                sqlx::query("UPDATE route_documents SET owner_organ = $2, updated_at = $3 WHERE owner_organ = $1 AND next_node IS NULL")
                    .bind(&m.from).bind(&m.to).bind(&m.at).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The recorded changes of `structure` (all units, or one), oldest first.
    pub async fn unit_changes(
        &self,
        structure: &str,
        gso_code: Option<&str>,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        let sql = "SELECT structure, kind, gso_code, detail, effective, recorded_at FROM directory_changes WHERE structure = $1 AND ($2 IS NULL OR gso_code = $2) ORDER BY id";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(structure).bind(gso_code).fetch_all(p).await?.into_iter().map(|r| ChangeRow {
            structure: r.get(0), kind: r.get(1), gso_code: r.get(2), detail: r.get(3), effective: r.get(4), recorded_at: r.get(5),
        }).collect()),
        )
    }
}

/// A signed directory update this node holds.
#[derive(Debug, Clone)]
pub struct UpdateRow {
    /// The version before it.
    pub from_version: i64,
    /// The version it brings.
    pub to_version: i64,
    /// The signed update, as it travels.
    pub bytes: Vec<u8>,
}

impl Store {
    /// The recorded changes after `version` (their ids), oldest first, at most `limit`.
    pub async fn unit_changes_after(
        &self,
        version: i64,
        limit: i64,
    ) -> Result<Vec<(i64, ChangeRow)>, StoreError> {
        let sql = "SELECT id, structure, kind, gso_code, detail, effective, recorded_at FROM directory_changes WHERE id > $1 ORDER BY id LIMIT $2";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(version).bind(limit).fetch_all(p).await?.into_iter().map(|r| (r.get::<i64, _>(0), ChangeRow {
            structure: r.get(1), kind: r.get(2), gso_code: r.get(3), detail: r.get(4), effective: r.get(5), recorded_at: r.get(6),
        })).collect()),
        )
    }

    /// The id of the latest recorded change (0: none).
    pub async fn last_unit_change(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COALESCE(MAX(id), 0) FROM directory_changes";
        Ok(with_pool!(self, p => sqlx::query(sql).fetch_one(p).await?.get::<i64, _>(0)))
    }

    /// Keeps a signed update (once per `to_version`).
    pub async fn directory_update_add(&self, u: &UpdateRow, now: &str) -> Result<(), StoreError> {
        let sql = "INSERT INTO directory_updates (to_version, from_version, bytes, recorded_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        with_pool!(self, p => { sqlx::query(sql).bind(u.to_version).bind(u.from_version).bind(&u.bytes).bind(now).execute(p).await?; });
        Ok(())
    }

    /// The signed updates bringing a version after `version`, oldest first.
    pub async fn directory_updates_after(
        &self,
        version: i64,
    ) -> Result<Vec<UpdateRow>, StoreError> {
        let sql = "SELECT from_version, to_version, bytes FROM directory_updates WHERE to_version > $1 ORDER BY to_version";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(version).fetch_all(p).await?.into_iter().map(|r| UpdateRow {
            from_version: r.get(0), to_version: r.get(1), bytes: r.get(2),
        }).collect()),
        )
    }

    /// The latest version of the updates held (0: none).
    pub async fn directory_last_update(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COALESCE(MAX(to_version), 0) FROM directory_updates";
        Ok(with_pool!(self, p => sqlx::query(sql).fetch_one(p).await?.get::<i64, _>(0)))
    }

    /// A recorded version (`applied`, `peer:NODE`); 0 when none is.
    pub async fn directory_version(&self, name: &str) -> Result<i64, StoreError> {
        let sql = "SELECT version FROM directory_versions WHERE name = $1";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(name).fetch_optional(p).await?.map(|r| r.get::<i64, _>(0)).unwrap_or(0)),
        )
    }

    /// Records a version.
    pub async fn directory_set_version(&self, name: &str, version: i64) -> Result<(), StoreError> {
        let sql = "INSERT INTO directory_versions (name, version) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET version = excluded.version";
        with_pool!(self, p => { sqlx::query(sql).bind(name).bind(version).execute(p).await?; });
        Ok(())
    }
}

/// One certificate identity recorded for an agency (`directory_agency_certs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgencyCertRow {
    /// The agency (edXML OrganId).
    pub organ_id: String,
    /// `organization`, `tax_code` or `fingerprint`.
    pub kind: String,
    /// The value (organization name, tax code, lowercase hex SHA-256).
    pub value: String,
}

impl Store {
    /// Records a certificate identity for an agency (again: no change).
    pub async fn add_agency_cert(&self, row: &AgencyCertRow, now: &str) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query("INSERT INTO directory_agency_certs (organ_id, kind, value, added_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                .bind(&row.organ_id).bind(&row.kind).bind(&row.value).bind(now).execute(p).await?;
        });
        Ok(())
    }

    /// Removes a certificate identity; false when it was not recorded.
    pub async fn remove_agency_cert(&self, row: &AgencyCertRow) -> Result<bool, StoreError> {
        let n = with_pool!(self, p => sqlx::query("DELETE FROM directory_agency_certs WHERE organ_id = $1 AND kind = $2 AND value = $3")
            .bind(&row.organ_id).bind(&row.kind).bind(&row.value).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// The certificate identities recorded for `organ_id`.
    pub async fn agency_certs(&self, organ_id: &str) -> Result<Vec<AgencyCertRow>, StoreError> {
        let sql = "SELECT organ_id, kind, value FROM directory_agency_certs WHERE organ_id = $1 ORDER BY kind, value";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(organ_id).fetch_all(p).await?.into_iter().map(|r| AgencyCertRow {
            organ_id: r.get(0), kind: r.get(1), value: r.get(2),
        }).collect()),
        )
    }

    /// The identities recorded for `organ_id`, and those of other agencies among `identities`
    /// (`(kind, value)` pairs), in one statement, ordered by agency, kind and value.
    pub async fn agency_certs_and_matches(
        &self,
        organ_id: &str,
        identities: &[(String, String)],
    ) -> Result<Vec<AgencyCertRow>, StoreError> {
        let mut sql = String::from(
            "SELECT organ_id, kind, value FROM directory_agency_certs WHERE organ_id = $1",
        );
        for i in 0..identities.len() {
            sql.push_str(&format!(
                " OR (kind = ${} AND value = ${})",
                2 * i + 2,
                2 * i + 3
            ));
        }
        sql.push_str(" ORDER BY organ_id, kind, value");
        Ok(with_pool!(self, p => {
            let mut q = sqlx::query(&sql).bind(organ_id);
            for (kind, value) in identities {
                q = q.bind(kind).bind(value);
            }
            q.fetch_all(p).await?.into_iter().map(|r| AgencyCertRow {
                organ_id: r.get(0), kind: r.get(1), value: r.get(2),
            }).collect()
        }))
    }
}
