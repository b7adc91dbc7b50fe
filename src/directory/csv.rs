//! The directory's CSV inputs (RFC 4180: comma separated, optional double-quoted fields).

use std::collections::{HashMap, HashSet};

use super::{DirectoryError, Structure};
use crate::store::UnitRow;

/// Splits one CSV line into fields (quotes, doubled quotes inside quotes).
/// `None` for an unterminated quoted field.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if cur.is_empty() => quoted = true,
            (false, ',') => out.push(std::mem::take(&mut cur)),
            (_, c) => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    out.push(cur);
    Some(out)
}

fn invalid(why: impl Into<String>) -> DirectoryError {
    DirectoryError::Invalid(why.into())
}

/// One data row: its 1-based line number and its fields by header name.
type Row = (usize, HashMap<String, String>);

/// The rows of `text`; `expected` are the required columns.
fn rows(text: &str, expected: &[&str]) -> Result<Vec<Row>, DirectoryError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .ok_or_else(|| invalid("the CSV file is empty"))?;
    let header = fields(header.1.trim_end_matches('\r'))
        .ok_or_else(|| invalid("line 1: unterminated quoted field"))?;
    for col in expected {
        if !header.iter().any(|h| h == col) {
            return Err(invalid(format!(
                "the CSV header lacks column {col} (expected {})",
                expected.join(",")
            )));
        }
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let values = fields(line)
            .ok_or_else(|| invalid(format!("line {}: unterminated quoted field", i + 1)))?;
        if values.len() != header.len() {
            return Err(invalid(format!(
                "line {}: {} fields, the header has {}",
                i + 1,
                values.len(),
                header.len()
            )));
        }
        out.push((i + 1, header.iter().cloned().zip(values).collect()));
    }
    Ok(out)
}

fn get<'a>(row: &'a HashMap<String, String>, col: &str) -> &'a str {
    row.get(col).map(String::as_str).unwrap_or("").trim()
}

/// Parses and checks a unit file of `structure`.
pub(super) fn units(structure: Structure, text: &str) -> Result<Vec<UnitRow>, DirectoryError> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (line, row) in rows(text, &["code", "name", "level", "parent_code", "type"])? {
        let code = get(&row, "code");
        let level = get(&row, "level");
        let digits = match (structure, level) {
            (_, "province") => 2,
            (Structure::S2024, "district") => 3,
            (_, "commune") => 5,
            _ => {
                return Err(invalid(format!(
                    "line {line}: level '{level}' does not exist in the {} structure",
                    structure.as_str()
                )))
            }
        };
        if code.len() != digits || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!(
                "line {line}: code '{code}' is not {digits} digits as a {level} code is"
            )));
        }
        let name = get(&row, "name");
        let unit_type = get(&row, "type");
        if name.is_empty() || unit_type.is_empty() {
            return Err(invalid(format!("line {line}: name or type is empty")));
        }
        let parent = get(&row, "parent_code");
        if (level == "province") != parent.is_empty() {
            return Err(invalid(format!(
                "line {line}: a {level} must {}have a parent",
                if level == "province" { "not " } else { "" }
            )));
        }
        if seen.insert(code.to_string(), level.to_string()).is_some() {
            return Err(invalid(format!("line {line}: code {code} occurs twice")));
        }
        out.push(UnitRow {
            structure: structure.as_str().into(),
            gso_code: code.into(),
            name: name.into(),
            unit_type: unit_type.into(),
            level: level.into(),
            parent_code: (!parent.is_empty()).then(|| parent.to_string()),
            organ_id_qcvn102: None,
            organ_id_d20: None,
            state: "active".into(),
            successor: None,
            effective_from: None,
        });
    }
    for u in &out {
        let Some(parent) = &u.parent_code else {
            continue;
        };
        let expected = match (structure, u.level.as_str()) {
            (Structure::S2024, "commune") => "district",
            _ => "province",
        };
        match seen.get(parent) {
            Some(l) if l == expected => {}
            Some(l) => {
                return Err(invalid(format!(
                    "unit {}: parent {parent} is a {l}, expected a {expected}",
                    u.gso_code
                )))
            }
            None => {
                return Err(invalid(format!(
                    "unit {}: parent {parent} is not in the file",
                    u.gso_code
                )))
            }
        }
    }
    Ok(out)
}

/// An agency e-identifier as Decision 20/2020 writes them: at most 35 characters of `0-9`,
/// `A-Z` and `.`; the older QCVN 102 form fits the same alphabet.
fn valid_organ_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 35
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase() || b == b'.')
}

/// Applies a codes mapping to `units`; returns how many units got an identifier.
pub(super) fn apply_codes(units: &mut [UnitRow], text: &str) -> Result<usize, DirectoryError> {
    let index: HashMap<String, usize> = units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.gso_code.clone(), i))
        .collect();
    let mut ids = HashSet::new();
    let mut mapped = 0;
    for (line, row) in rows(text, &["gso_code", "organ_id_qcvn102", "organ_id_d20"])? {
        let code = get(&row, "gso_code");
        let &i = index.get(code).ok_or_else(|| {
            invalid(format!(
                "codes line {line}: unit {code} is not in the unit file"
            ))
        })?;
        let mut any = false;
        for (col, slot) in [("organ_id_qcvn102", 0), ("organ_id_d20", 1)] {
            let id = get(&row, col);
            if id.is_empty() {
                continue;
            }
            if !valid_organ_id(id) {
                return Err(invalid(format!(
                    "codes line {line}: {col} '{id}' is not an agency identifier (at most 35 of 0-9 A-Z .)"
                )));
            }
            if !ids.insert((slot, id.to_string())) {
                return Err(invalid(format!(
                    "codes line {line}: {col} {id} is given twice"
                )));
            }
            let target = if slot == 0 {
                &mut units[i].organ_id_qcvn102
            } else {
                &mut units[i].organ_id_d20
            };
            if target.is_some() {
                return Err(invalid(format!(
                    "codes line {line}: unit {code} is mapped twice"
                )));
            }
            *target = Some(id.to_string());
            any = true;
        }
        if any {
            mapped += 1;
        }
    }
    Ok(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNITS: &str = "code,name,level,parent_code,type\n01,Thử,province,,Tỉnh\n001,Một,district,01,Huyện\n00001,\"Đạ M'ri, \"\"A\"\"\",commune,001,Xã\n";

    #[test]
    fn units_are_checked() {
        let u = units(Structure::S2024, UNITS).unwrap();
        assert_eq!(u.len(), 3);
        assert_eq!(u[2].name, "Đạ M'ri, \"A\"");
        assert!(units(Structure::S2025, UNITS)
            .unwrap_err()
            .to_string()
            .contains("district"));
        let orphan = UNITS.replace(",commune,001,", ",commune,002,");
        assert!(units(Structure::S2024, &orphan)
            .unwrap_err()
            .to_string()
            .contains("not in the file"));
        let short = UNITS.replace("00001,", "0001,");
        assert!(units(Structure::S2024, &short).is_err());
        let twice = format!("{UNITS}01,Hai,province,,Tỉnh\n");
        assert!(units(Structure::S2024, &twice)
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }

    #[test]
    fn codes_are_opaque_but_well_formed() {
        let mut u = units(Structure::S2024, UNITS).unwrap();
        let codes = "gso_code,organ_id_qcvn102,organ_id_d20\n01,TEST.00.00.H99,H99.TEST\n00001,TEST.01.01.H99,\n";
        assert_eq!(apply_codes(&mut u, codes).unwrap(), 2);
        assert_eq!(u[0].organ_id_d20.as_deref(), Some("H99.TEST"));
        let mut u = units(Structure::S2024, UNITS).unwrap();
        assert!(apply_codes(&mut u, "gso_code,organ_id_qcvn102,organ_id_d20\n99,X,\n").is_err());
        let mut u = units(Structure::S2024, UNITS).unwrap();
        assert!(apply_codes(
            &mut u,
            "gso_code,organ_id_qcvn102,organ_id_d20\n01,bad id,\n"
        )
        .is_err());
        let mut u = units(Structure::S2024, UNITS).unwrap();
        assert!(apply_codes(
            &mut u,
            "gso_code,organ_id_qcvn102,organ_id_d20\n01,A.1,\n001,A.1,\n"
        )
        .is_err());
    }
}
