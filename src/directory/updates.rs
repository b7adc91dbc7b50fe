//! Directory updates (issue 15, item 1): the changes recorded at the directory authority (the
//! province node) since a version, as every other node replays them. A version is the id of
//! the authority's last change included. Replaying is idempotent: a change whose effect is
//! already there (a unit already merged into the same successor, already so named, already
//! dissolved) is skipped, so a node that recorded a merge by hand, or an update applied twice,
//! ends in the same state. Signing and transport are `crate::routing::directory_sync`'s.

use serde::{Deserialize, Serialize};
use time::Date;

use super::{Directory, DirectoryError, Structure};
use crate::store::ChangeRow;

/// Most changes one update carries (the rest follow in the next one).
pub const MAX_CHANGES: usize = 10_000;

/// One change of the authority's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Its version (the authority's change id).
    pub version: i64,
    /// `2024` or `2025`.
    pub structure: String,
    /// `merge`, `rename` or `dissolve`.
    pub kind: String,
    /// The unit changed.
    pub gso_code: String,
    /// What changed (JSON: `{"into"}` for a merge, `{"to"}` for a rename).
    pub detail: String,
    /// When it takes effect (`YYYY-MM-DD`).
    pub effective: String,
}

/// The changes after `from_version` up to `to_version`, as the authority issued them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// Always `signgate-directory-update`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The version it starts from (the receiver must be at least there).
    pub from_version: i64,
    /// The version it brings the receiver to.
    pub to_version: i64,
    /// When it was issued (RFC 3339 UTC).
    pub issued_at: String,
    /// The changes, oldest first.
    pub changes: Vec<Change>,
}

/// The `type` of an [`Update`].
pub const UPDATE_TYPE: &str = "signgate-directory-update";

impl Update {
    /// Checks the update's own consistency: its type, versions in order and within
    /// `(from_version, to_version]`, at most [`MAX_CHANGES`].
    pub fn check(&self) -> Result<(), DirectoryError> {
        let bad = |m: &str| Err(DirectoryError::Invalid(format!("directory update: {m}")));
        if self.kind != UPDATE_TYPE {
            return bad("not a signgate directory update");
        }
        if self.from_version < 0 || self.to_version <= self.from_version {
            return bad("its versions are not increasing");
        }
        if self.changes.len() > MAX_CHANGES {
            return bad("too many changes");
        }
        let mut last = self.from_version;
        for c in &self.changes {
            if c.version <= last || c.version > self.to_version {
                return bad("its changes are not in version order");
            }
            last = c.version;
        }
        Ok(())
    }
}

fn day(text: &str) -> Result<Date, DirectoryError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, &format)
        .map_err(|_| DirectoryError::Invalid(format!("directory update: bad date {text:?}")))
}

fn detail_field(c: &Change, field: &str) -> Result<String, DirectoryError> {
    serde_json::from_str::<serde_json::Value>(&c.detail)
        .ok()
        .and_then(|v| v.get(field).and_then(|f| f.as_str()).map(str::to_string))
        .ok_or_else(|| {
            DirectoryError::Invalid(format!(
                "directory update: change {} ({}) has no {field}",
                c.version, c.kind
            ))
        })
}

impl Directory {
    /// The changes recorded here after `version`, oldest first (at most [`MAX_CHANGES`]).
    pub async fn changes_after(&self, version: i64) -> Result<Vec<Change>, DirectoryError> {
        Ok(self
            .store
            .unit_changes_after(version, MAX_CHANGES as i64)
            .await?
            .into_iter()
            .map(|(id, c): (i64, ChangeRow)| Change {
                version: id,
                structure: c.structure,
                kind: c.kind,
                gso_code: c.gso_code,
                detail: c.detail,
                effective: c.effective,
            })
            .collect())
    }

    /// The version of the latest change recorded here (0: none).
    pub async fn last_change(&self) -> Result<i64, DirectoryError> {
        Ok(self.store.last_unit_change().await?)
    }

    /// Replays one change of the authority; false when its effect was already there.
    pub async fn apply_change(&self, c: &Change) -> Result<bool, DirectoryError> {
        let structure: Structure = c
            .structure
            .parse()
            .map_err(|e: crate::code::UnknownName| DirectoryError::Invalid(e.to_string()))?;
        let effective = day(&c.effective)?;
        let unit = self.unit(structure, &c.gso_code).await?;
        match c.kind.as_str() {
            "merge" => {
                let into = detail_field(c, "into")?;
                if unit.state == "merged" && unit.successor.as_deref() == Some(into.as_str()) {
                    return Ok(false);
                }
                self.merge(
                    structure,
                    std::slice::from_ref(&c.gso_code),
                    &into,
                    effective,
                )
                .await?;
            }
            "rename" => {
                let to = detail_field(c, "to")?;
                if unit.name == to.trim() {
                    return Ok(false);
                }
                self.rename(structure, &c.gso_code, &to, effective).await?;
            }
            "dissolve" => {
                if unit.state == "dissolved" {
                    return Ok(false);
                }
                self.dissolve(structure, &c.gso_code, effective).await?;
            }
            other => {
                return Err(DirectoryError::Invalid(format!(
                    "directory update: unknown change kind {other:?}"
                )))
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(versions: &[i64], from: i64, to: i64) -> Update {
        Update {
            kind: UPDATE_TYPE.into(),
            from_version: from,
            to_version: to,
            issued_at: "2026-12-03T00:00:00Z".into(),
            changes: versions
                .iter()
                .map(|v| Change {
                    version: *v,
                    structure: "2024".into(),
                    kind: "dissolve".into(),
                    gso_code: "00001".into(),
                    detail: "{}".into(),
                    effective: "2025-07-01".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn updates_are_checked_for_order() {
        assert!(update(&[3, 4], 2, 4).check().is_ok());
        assert!(update(&[4, 3], 2, 4).check().is_err());
        assert!(update(&[2], 2, 4).check().is_err());
        assert!(update(&[5], 2, 4).check().is_err());
        assert!(update(&[], 4, 4).check().is_err());
        let mut other = update(&[3], 2, 3);
        other.kind = "x".into();
        assert!(other.check().is_err());
    }

    #[tokio::test]
    async fn replaying_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(&crate::store::Store::sqlite_url(dir.path()))
            .await
            .expect("open");
        let d = Directory::new(store);
        let units = "code,name,level,parent_code,type\n01,Một,province,,Tỉnh\n00001,Ba,commune,01,Xã\n00002,Bốn,commune,01,Xã\n";
        d.import(Structure::S2025, units, None)
            .await
            .expect("import");
        let merge = Change {
            version: 7,
            structure: "2025".into(),
            kind: "merge".into(),
            gso_code: "00001".into(),
            detail: r#"{"into":"00002"}"#.into(),
            effective: "2025-07-01".into(),
        };
        assert!(d.apply_change(&merge).await.expect("merge"));
        assert!(!d.apply_change(&merge).await.expect("again"));
        let rename = Change {
            kind: "rename".into(),
            gso_code: "00002".into(),
            detail: r#"{"from":"Bốn","to":"Năm"}"#.into(),
            ..merge.clone()
        };
        assert!(d.apply_change(&rename).await.expect("rename"));
        assert!(!d.apply_change(&rename).await.expect("again"));
        assert_eq!(
            d.unit(Structure::S2025, "00002").await.expect("unit").name,
            "Năm"
        );
    }
}
