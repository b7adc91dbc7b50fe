//! Time as the gateway writes it: the one RFC 3339 UTC form for JSON, databases and logs, and
//! the one Vietnam-time form shown to people (CONTRACTS.md §1). Bottom layer: no crate imports.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Vietnam's offset: claimed signing times and times shown to people use it (CONTRACTS.md §1).
pub const VIETNAM: UtcOffset = time::macros::offset!(+7);

/// `t` as RFC 3339 in UTC to the second (`2025-07-01T02:30:00Z`), as every time in JSON is.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Now, RFC 3339 UTC to the second.
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// `unix` seconds as [`rfc3339`]; `None` outside the representable range.
pub fn unix_rfc3339(unix: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix).ok().map(rfc3339)
}

/// `t` in Vietnam time for people (visible signatures, stamps, signing-time properties): ISO
/// 8601 with its offset, to the second (`2025-07-01T09:30:00+07:00`).
pub fn display_time(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
    );
    let t = t.to_offset(VIETNAM);
    t.format(&format).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn utc_to_the_second() {
        let t = datetime!(2025-07-01 09:30:00.123456 +07:00);
        assert_eq!(rfc3339(t), "2025-07-01T02:30:00Z");
        assert_eq!(unix_rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(unix_rfc3339(i64::MAX), None);
    }

    #[test]
    fn people_see_vietnam_time() {
        let t = datetime!(2025-07-01 02:30:00.5 UTC);
        assert_eq!(display_time(t), "2025-07-01T09:30:00+07:00");
    }
}
