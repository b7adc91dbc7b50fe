//! Finding agencies in the directory for a person picking recipients: by name (without
//! regard to case or Vietnamese diacritics: `ba dinh` finds `Phường Ba Đình`) and by province.
//! Only active units that have an agency identifier are offered.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use super::{committee_name, Directory, DirectoryError, Structure};
use crate::store::UnitRow;

/// Most agencies one search returns.
pub const MAX_RESULTS: usize = 100;
/// Longest search text considered (characters).
const MAX_QUERY_CHARS: usize = 100;

/// An agency a document can be addressed to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgencyChoice {
    /// Its agency identifier (QCVN 102 form when it has one).
    pub organ_id: String,
    /// Its People's Committee's name (`UBND Phường Ba Đình`).
    pub name: String,
    /// `province`, `district` or `commune`.
    pub level: String,
    /// The province's name (`Hà Nội`); its own name for a province.
    pub province: String,
    /// `2024` or `2025`.
    pub structure: String,
}

/// A province to filter by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Province {
    /// GSO code.
    pub gso_code: String,
    /// Name with its type (`Thành phố Hà Nội`).
    pub name: String,
}

/// `text` lowercased, without diacritics (`đ` → `d`), spaces collapsed: what names are
/// compared on.
pub fn fold(text: &str) -> String {
    let stripped: String = text
        .chars()
        .take(MAX_QUERY_CHARS * 2)
        .flat_map(|c| c.to_lowercase())
        .map(|c| match c {
            'đ' => 'd',
            c => c,
        })
        .nfd()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .collect();
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The province (GSO code) a unit belongs to, following parents within its structure.
fn province_of<'a>(unit: &'a UnitRow, by_code: &HashMap<&str, &'a UnitRow>) -> &'a UnitRow {
    let mut at = unit;
    for _ in 0..4 {
        match at
            .parent_code
            .as_deref()
            .and_then(|p| by_code.get(p).copied())
        {
            Some(up) => at = up,
            None => break,
        }
    }
    at
}

impl Directory {
    /// Provinces of both structures (deduplicated by code), by name.
    pub async fn provinces(&self) -> Result<Vec<Province>, DirectoryError> {
        let mut out: Vec<Province> = Vec::new();
        for structure in [Structure::S2025, Structure::S2024] {
            for u in self.list(structure, None, Some("province")).await? {
                if u.state == "active" && !out.iter().any(|p| p.gso_code == u.gso_code) {
                    out.push(Province {
                        gso_code: u.gso_code.clone(),
                        name: format!("{} {}", u.unit_type, u.name),
                    });
                }
            }
        }
        out.sort_by_cached_key(|p| fold(&p.name));
        Ok(out)
    }

    /// Active agencies whose name contains `text` (folded, see [`fold`]; empty: any) in
    /// province `province` (a GSO code; `None`: any), provinces first then by name, at most
    /// [`MAX_RESULTS`]; an identifier in both structures is listed once (the 2025 one).
    pub async fn search(
        &self,
        text: &str,
        province: Option<&str>,
    ) -> Result<Vec<AgencyChoice>, DirectoryError> {
        let wanted = fold(&text.chars().take(MAX_QUERY_CHARS).collect::<String>());
        let mut out: Vec<AgencyChoice> = Vec::new();
        for structure in [Structure::S2025, Structure::S2024] {
            let units = self.list(structure, None, None).await?;
            let by_code: HashMap<&str, &UnitRow> =
                units.iter().map(|u| (u.gso_code.as_str(), u)).collect();
            for unit in &units {
                let Some(organ_id) = unit
                    .organ_id_qcvn102
                    .clone()
                    .or_else(|| unit.organ_id_d20.clone())
                else {
                    continue;
                };
                if unit.state != "active" || out.iter().any(|a| a.organ_id == organ_id) {
                    continue;
                }
                let top = province_of(unit, &by_code);
                if province.is_some_and(|p| p != top.gso_code) {
                    continue;
                }
                let name = committee_name(unit);
                if !wanted.is_empty() && !fold(&name).contains(&wanted) {
                    continue;
                }
                out.push(AgencyChoice {
                    organ_id,
                    name,
                    level: unit.level.clone(),
                    province: top.name.clone(),
                    structure: structure.as_str().into(),
                });
            }
        }
        let rank = |level: &str| match level {
            "province" => 0,
            "district" => 1,
            _ => 2,
        };
        out.sort_by_cached_key(|a| (rank(&a.level), fold(&a.name)));
        out.truncate(MAX_RESULTS);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn agencies_by_name_without_diacritics_and_by_province() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&Store::sqlite_url(dir.path()))
            .await
            .expect("open");
        let d = Directory::new(store);
        let units = "code,name,level,parent_code,type\n01,Hà Nội,province,,Thành phố\n\
                     00004,Ba Đình,commune,01,Phường\n00008,Ngọc Hà,commune,01,Phường\n\
                     02,Hà Giang,province,,Tỉnh\n00100,Hà Giang 1,commune,02,Phường\n00200,Không mã,commune,02,Xã\n";
        let codes = "gso_code,organ_id_qcvn102,organ_id_d20\n01,T.H01,\n00004,T.H01.4,\n00008,T.H01.8,\n02,T.H02,\n00100,T.H02.1,\n";
        d.import(Structure::S2025, units, Some(codes))
            .await
            .expect("import");
        let ids = |v: Vec<AgencyChoice>| v.into_iter().map(|a| a.organ_id).collect::<Vec<_>>();
        assert_eq!(
            ids(d.search("ba dinh", None).await.expect("search")),
            ["T.H01.4"]
        );
        assert_eq!(
            ids(d.search("", Some("01")).await.expect("search")),
            ["T.H01", "T.H01.4", "T.H01.8"],
            "the province first, then its communes by name"
        );
        // A unit without an agency identifier is not offered.
        assert_eq!(
            ids(d.search("", Some("02")).await.expect("search")),
            ["T.H02", "T.H02.1"]
        );
        let ha = d.search("HÀ", None).await.expect("search");
        assert_eq!(ha.len(), 4, "{ha:?}");
        assert_eq!(ha[2].province, "Hà Giang");
        let provinces = d.provinces().await.expect("provinces");
        assert_eq!(provinces.len(), 2);
    }

    #[test]
    fn folding_ignores_case_diacritics_and_spacing() {
        assert_eq!(fold("UBND Phường  Ba Đình"), "ubnd phuong ba dinh");
        assert_eq!(fold("Ngọc Hà"), fold("ngoc ha"));
        assert!(fold("Thành phố Hà Nội").contains(&fold("HA NOI")));
    }
}
