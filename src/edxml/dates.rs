//! edXML dates and times. Written `yyyy/MM/dd` and `yyyy/MM/dd HH:mm:ss` (Vietnam time); read
//! in that form and in `dd/MM/yyyy[ HH:mm:ss]`, which other implementations write
//! (vn-edoc-standards.md §a: "be lenient when parsing").

use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::clock::VIETNAM;

/// Writes `yyyy/MM/dd`.
pub fn format_date(d: Date) -> String {
    d.format(format_description!("[year]/[month]/[day]"))
        .unwrap_or_default()
}

/// Writes `yyyy/MM/dd HH:mm:ss` in Vietnam time.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    t.to_offset(VIETNAM)
        .format(format_description!(
            "[year]/[month]/[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

/// Reads `yyyy/MM/dd` or `dd/MM/yyyy` (a real calendar date; surrounding spaces ignored).
pub fn parse_date(text: &str) -> Option<Date> {
    let t = text.trim();
    Date::parse(t, format_description!("[year]/[month]/[day]"))
        .or_else(|_| Date::parse(t, format_description!("[day]/[month]/[year]")))
        .ok()
}

/// Reads `yyyy/MM/dd HH:mm:ss` or `dd/MM/yyyy HH:mm:ss` as Vietnam time.
pub fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    let t = text.trim();
    let (date, clock) = t.split_once(' ')?;
    let date = parse_date(date)?;
    let clock = time::Time::parse(
        clock.trim(),
        format_description!("[hour]:[minute]:[second]"),
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, clock).assume_offset(VIETNAM))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn both_orders_are_read_one_is_written() {
        assert_eq!(parse_date("2025/07/01"), Some(date!(2025 - 07 - 01)));
        assert_eq!(parse_date("01/07/2025"), Some(date!(2025 - 07 - 01)));
        assert_eq!(parse_date("2025-07-01"), None);
        assert_eq!(parse_date("2025/13/01"), None);
        assert_eq!(parse_date("31/02/2025"), None);
        assert_eq!(format_date(date!(2025 - 07 - 01)), "2025/07/01");
        let t = datetime!(2025-07-01 02:30:00 UTC);
        assert_eq!(format_timestamp(t), "2025/07/01 09:30:00");
        assert_eq!(parse_timestamp("2025/07/01 09:30:00"), Some(t));
        assert_eq!(parse_timestamp("01/07/2025 09:30:00"), Some(t));
        assert_eq!(parse_timestamp("01/07/2025"), None);
    }
}
