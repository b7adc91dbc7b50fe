//! The agency directory: one People's Committee per administrative unit, in the three-level
//! structure before 1 July 2025 (`2024`) and the two-level one after it (`2025`), with the
//! reorganisations that change it (merge, rename, dissolve) and the redirection of agency
//! identifiers that follows (`resolve`).
//!
//! Units come from the GSO unit files (`data/vn-admin/`); agency e-identifiers come only from
//! a separate mapping (`gso_code,organ_id_qcvn102,organ_id_d20`), stored as opaque strings:
//! signgate ships no identifier of its own invention. The SQL is in [`crate::store`].

pub mod certs;
mod csv;
pub mod search;
pub mod updates;

use time::Date;

use crate::clock::now_rfc3339;
use crate::code::ErrorCode;
pub use certs::{CertIdentityKind, SignerBinding, SignerFacts};
pub use search::{AgencyChoice, Province};

use crate::store::{ChangeRow, OwnerMove, Store, StoreError, UnitRow};

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// No such unit or agency identifier.
    #[error("{0}")]
    NotFound(String),
    /// The input or the requested change is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DirectoryError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::DirectoryNotFound,
            Self::Invalid(_) => ErrorCode::DirectoryInvalid,
            Self::Store(_) => ErrorCode::Internal,
        }
    }
}

/// Which administrative structure a code belongs to (a commune code names a different area in
/// each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Structure {
    /// Province / district / commune, as of 1 March 2025 (the last state before the reform).
    S2024,
    /// Province / commune, from 1 July 2025 (Decision 19/2025/QĐ-TTg).
    S2025,
}

impl Structure {
    /// `2024` or `2025`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S2024 => "2024",
            Self::S2025 => "2025",
        }
    }
}

impl std::str::FromStr for Structure {
    type Err = crate::code::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "2024" => Ok(Self::S2024),
            "2025" => Ok(Self::S2025),
            _ => Err(crate::code::UnknownName::new(
                "structure",
                s,
                "2024 or 2025",
            )),
        }
    }
}

/// What an import stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    /// Provinces.
    pub provinces: usize,
    /// Districts (2024 only).
    pub districts: usize,
    /// Communes, wards, townships and special zones.
    pub communes: usize,
    /// Units given an agency identifier by the codes mapping.
    pub with_organ_ids: usize,
}

/// An agency identifier after following the directory's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The identifier to deliver to now (the current successor's, in the form asked for when
    /// it has one).
    pub organ_id: String,
    /// The unit that now holds it.
    pub unit: UnitRow,
    /// The identifier asked for, when it was redirected (merged away).
    pub redirected_from: Option<String>,
}

/// The agency directory over a [`Store`].
#[derive(Debug, Clone)]
pub struct Directory {
    store: Store,
}

/// The longest chain of merges followed by [`Directory::resolve`].
const MAX_HOPS: usize = 16;

fn date_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The identifier of `unit` in the Decision 20/2020 form when `wants_d20`, else in the QCVN 102
/// form; the other form when it lacks that one.
fn identifier(unit: &UnitRow, wants_d20: bool) -> Option<String> {
    let (preferred, other) = if wants_d20 {
        (&unit.organ_id_d20, &unit.organ_id_qcvn102)
    } else {
        (&unit.organ_id_qcvn102, &unit.organ_id_d20)
    };
    preferred.clone().or_else(|| other.clone())
}

/// The agency name of a unit's People's Committee (`UBND Phường Ba Đình`).
pub fn committee_name(unit: &UnitRow) -> String {
    format!("UBND {} {}", unit.unit_type, unit.name)
}

impl Directory {
    /// The directory in `store` (its tables are created by the store's migrations).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The agency identifiers of the units above `organ_id`'s unit(s), nearest first (for
    /// each structure that knows it; its parent, the parent's parent, …); empty when the
    /// directory does not know it.
    pub async fn ancestors(&self, organ_id: &str) -> Result<Vec<String>, DirectoryError> {
        let mut out: Vec<String> = Vec::new();
        for unit in self.store.units_by_organ_id(organ_id).await? {
            let mut parent = unit.parent_code.clone();
            let mut hops = 0;
            while let Some(code) = parent.take() {
                hops += 1;
                let Some(up) = self.store.unit(&unit.structure, &code).await? else {
                    break;
                };
                for id in [&up.organ_id_qcvn102, &up.organ_id_d20]
                    .into_iter()
                    .flatten()
                {
                    if !out.contains(id) {
                        out.push(id.clone());
                    }
                }
                if hops < MAX_HOPS {
                    parent = up.parent_code.clone();
                }
            }
        }
        Ok(out)
    }

    /// Imports a GSO unit file (`code,name,level,parent_code,type`) and, optionally, an
    /// identifier mapping (`gso_code,organ_id_qcvn102,organ_id_d20`) for `structure`, in one
    /// transaction. Checks before writing: codes unique, code length fits the level, levels fit
    /// the structure, every parent present with the level above; every mapped code present,
    /// identifiers of at most 35 characters `0-9 A-Z .` (Decision 20/2020) and unique.
    /// Importing again updates names and links and keeps states.
    pub async fn import(
        &self,
        structure: Structure,
        units_csv: &str,
        codes_csv: Option<&str>,
    ) -> Result<ImportSummary, DirectoryError> {
        let mut units = csv::units(structure, units_csv)?;
        let mut summary = ImportSummary::default();
        if let Some(codes) = codes_csv {
            summary.with_organ_ids = csv::apply_codes(&mut units, codes)?;
        }
        for u in &units {
            match u.level.as_str() {
                "province" => summary.provinces += 1,
                "district" => summary.districts += 1,
                _ => summary.communes += 1,
            }
        }
        self.store.upsert_units(&units).await.map_err(|e| match &e {
            StoreError::Db(db)
                if db
                    .as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                DirectoryError::Invalid(
                    "an agency identifier of the mapping is already held by another unit of this structure".into(),
                )
            }
            _ => DirectoryError::Store(e),
        })?;
        Ok(summary)
    }

    /// The unit `(structure, gso_code)`.
    pub async fn unit(
        &self,
        structure: Structure,
        gso_code: &str,
    ) -> Result<UnitRow, DirectoryError> {
        self.store
            .unit(structure.as_str(), gso_code)
            .await?
            .ok_or_else(|| {
                DirectoryError::NotFound(format!(
                    "no unit {gso_code} in the {} structure",
                    structure.as_str()
                ))
            })
    }

    /// Units of `structure`, optionally the children of `parent` or one level only.
    pub async fn list(
        &self,
        structure: Structure,
        parent: Option<&str>,
        level: Option<&str>,
    ) -> Result<Vec<UnitRow>, DirectoryError> {
        Ok(self
            .store
            .list_units(structure.as_str(), parent, level)
            .await?)
    }

    /// Units per level: (level, count).
    pub async fn counts(&self, structure: Structure) -> Result<Vec<(String, i64)>, DirectoryError> {
        Ok(self.store.count_units(structure.as_str()).await?)
    }

    /// The recorded changes of `structure` (or of one unit), oldest first.
    pub async fn changes(
        &self,
        structure: Structure,
        gso_code: Option<&str>,
    ) -> Result<Vec<ChangeRow>, DirectoryError> {
        Ok(self
            .store
            .unit_changes(structure.as_str(), gso_code)
            .await?)
    }

    /// Where a document addressed to `organ_id` goes, with every recorded change applied
    /// (including changes whose effective date is still ahead): [`Directory::resolve_on`] with
    /// no date limit.
    pub async fn resolve(&self, organ_id: &str) -> Result<Resolved, DirectoryError> {
        self.resolve_on(organ_id, None).await
    }

    /// Where a document addressed to `organ_id` goes on `on`: the agency itself while active
    /// (or while its merge or dissolution is not yet effective), else the unit it was merged
    /// into (following successive merges). Unknown identifiers are `NotFound`; a dissolved
    /// unit is `Invalid` (nothing to deliver to). When the identifier exists in both
    /// structures, the active unit wins.
    pub async fn resolve_on(
        &self,
        organ_id: &str,
        on: Option<Date>,
    ) -> Result<Resolved, DirectoryError> {
        let on = on.map(date_text);
        let in_force = |u: &UnitRow| match (&on, &u.effective_from) {
            (Some(on), Some(from)) => from <= on,
            _ => true,
        };
        let found = self.store.units_by_organ_id(organ_id).await?;
        let start = found
            .iter()
            .find(|u| u.state == "active")
            .or(found.first())
            .cloned()
            .ok_or_else(|| {
                DirectoryError::NotFound(format!("no agency {organ_id} in the directory"))
            })?;
        let wants_d20 = start.organ_id_d20.as_deref() == Some(organ_id)
            && start.organ_id_qcvn102.as_deref() != Some(organ_id);
        let mut unit = start;
        for _ in 0..MAX_HOPS {
            let state = if in_force(&unit) {
                unit.state.as_str()
            } else {
                "active"
            };
            match state {
                "active" => {
                    let id = identifier(&unit, wants_d20).ok_or_else(|| {
                        DirectoryError::Invalid(format!(
                            "{organ_id} was merged into unit {} ({}), which has no agency identifier",
                            unit.gso_code,
                            committee_name(&unit)
                        ))
                    })?;
                    let redirected_from = (id != organ_id).then(|| organ_id.to_string());
                    return Ok(Resolved {
                        organ_id: id,
                        unit,
                        redirected_from,
                    });
                }
                "merged" => {
                    let next = unit.successor.clone().ok_or_else(|| {
                        DirectoryError::Invalid(format!(
                            "unit {} is merged without successor",
                            unit.gso_code
                        ))
                    })?;
                    unit = self
                        .store
                        .unit(&unit.structure, &next)
                        .await?
                        .ok_or_else(|| {
                            DirectoryError::Invalid(format!("successor {next} is missing"))
                        })?;
                }
                _ => {
                    return Err(DirectoryError::Invalid(format!(
                        "agency {organ_id} ({}) was dissolved on {}",
                        committee_name(&unit),
                        unit.effective_from.as_deref().unwrap_or("an unknown date")
                    )))
                }
            }
        }
        Err(DirectoryError::Invalid(format!(
            "more than {MAX_HOPS} merges from {organ_id}"
        )))
    }

    /// Merges the units `old` into `into` (all active, same level, same structure) from
    /// `effective`: they become `merged` with `into` as successor, their children move under
    /// `into`, and one change is recorded per unit. Documents addressed to them resolve to
    /// `into` from then on, and those already delivered to them at this node pass to `into`
    /// (its identifier in the same form) in the same transaction, so the successor's inbox and
    /// acknowledgements include them; each gets a `reassigned` trace event.
    pub async fn merge(
        &self,
        structure: Structure,
        old: &[String],
        into: &str,
        effective: Date,
    ) -> Result<(), DirectoryError> {
        if old.is_empty() {
            return Err(DirectoryError::Invalid("nothing to merge".into()));
        }
        let target = self.active(structure, into).await?;
        let mut changed = Vec::new();
        let mut records = Vec::new();
        let mut owners = Vec::new();
        let when = date_text(effective);
        let now = now_rfc3339();
        for code in old {
            if code == into || changed.iter().any(|u: &UnitRow| &u.gso_code == code) {
                return Err(DirectoryError::Invalid(format!(
                    "unit {code} is named twice or merged into itself"
                )));
            }
            let mut u = self.active(structure, code).await?;
            if u.level != target.level {
                return Err(DirectoryError::Invalid(format!(
                    "unit {code} is a {}, {into} a {}: only units of one level merge",
                    u.level, target.level
                )));
            }
            u.state = "merged".into();
            u.successor = Some(into.to_string());
            u.effective_from = Some(when.clone());
            records.push(ChangeRow {
                structure: structure.as_str().into(),
                kind: "merge".into(),
                gso_code: code.clone(),
                detail: serde_json::json!({"into": into, "organ_id_qcvn102": u.organ_id_qcvn102, "organ_id_d20": u.organ_id_d20}).to_string(),
                effective: when.clone(),
                recorded_at: now.clone(),
            });
            for (from, wants_d20) in [(&u.organ_id_qcvn102, false), (&u.organ_id_d20, true)] {
                if let (Some(from), Some(to)) = (from, identifier(&target, wants_d20)) {
                    owners.push(OwnerMove {
                        note: format!(
                            "{from} merged into {to} from {when} (agency directory): now held by {to}"
                        ),
                        from: from.clone(),
                        to,
                        at: now.clone(),
                    });
                }
            }
            changed.push(u);
        }
        self.store
            .apply_unit_change(&changed, Some((old, into)), &records, &owners)
            .await?;
        Ok(())
    }

    /// Renames an active unit from `effective` (its codes and identifiers stay).
    pub async fn rename(
        &self,
        structure: Structure,
        gso_code: &str,
        new_name: &str,
        effective: Date,
    ) -> Result<(), DirectoryError> {
        if new_name.trim().is_empty() {
            return Err(DirectoryError::Invalid("the new name is empty".into()));
        }
        let mut u = self.active(structure, gso_code).await?;
        let record = ChangeRow {
            structure: structure.as_str().into(),
            kind: "rename".into(),
            gso_code: gso_code.into(),
            detail: serde_json::json!({"from": u.name, "to": new_name}).to_string(),
            effective: date_text(effective),
            recorded_at: now_rfc3339(),
        };
        u.name = new_name.trim().to_string();
        u.effective_from = Some(date_text(effective));
        self.store
            .apply_unit_change(&[u], None, &[record], &[])
            .await?;
        Ok(())
    }

    /// Dissolves an active unit with no active units below it (merge or dissolve those first).
    pub async fn dissolve(
        &self,
        structure: Structure,
        gso_code: &str,
        effective: Date,
    ) -> Result<(), DirectoryError> {
        let mut u = self.active(structure, gso_code).await?;
        let children = self.list(structure, Some(gso_code), None).await?;
        if let Some(c) = children.iter().find(|c| c.state == "active") {
            return Err(DirectoryError::Invalid(format!(
                "unit {gso_code} still has the active unit {} below it",
                c.gso_code
            )));
        }
        u.state = "dissolved".into();
        u.effective_from = Some(date_text(effective));
        let record = ChangeRow {
            structure: structure.as_str().into(),
            kind: "dissolve".into(),
            gso_code: gso_code.into(),
            detail: "{}".into(),
            effective: date_text(effective),
            recorded_at: now_rfc3339(),
        };
        self.store
            .apply_unit_change(&[u], None, &[record], &[])
            .await?;
        Ok(())
    }

    async fn active(&self, structure: Structure, code: &str) -> Result<UnitRow, DirectoryError> {
        let u = self.unit(structure, code).await?;
        if u.state != "active" {
            return Err(DirectoryError::Invalid(format!(
                "unit {code} is already {}",
                u.state
            )));
        }
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ancestors_are_the_units_above_nearest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&Store::sqlite_url(dir.path()))
            .await
            .expect("open");
        let d = Directory::new(store);
        let units = "code,name,level,parent_code,type\n01,Một,province,,Tỉnh\n001,Hai,district,01,Huyện\n00001,Ba,commune,001,Xã\n";
        let codes = "gso_code,organ_id_qcvn102,organ_id_d20\n01,T.P,\n001,T.D,\n00001,T.C,\n";
        d.import(Structure::S2024, units, Some(codes))
            .await
            .expect("import");
        assert_eq!(d.ancestors("T.C").await.expect("chain"), ["T.D", "T.P"]);
        assert_eq!(
            d.ancestors("T.P").await.expect("chain"),
            Vec::<String>::new()
        );
        assert!(d.ancestors("UNKNOWN").await.expect("chain").is_empty());
    }
}
