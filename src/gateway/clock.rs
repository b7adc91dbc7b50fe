//! The gateway's clock and identifiers: one place that reads the time and draws random ids,
//! so every record, receipt and log line formats them the same way.

use base64::Engine as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Now, RFC 3339 UTC to the second (the form stored in every record).
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// `at` as RFC 3339 UTC to the second.
pub fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_default()
}

/// A fresh random id with `prefix` (128 bits).
pub fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// A new bearer token (256 bits, shown once) and its SHA-256 hex for the database.
pub fn new_token() -> (String, String) {
    let raw: [u8; 32] = rand::random();
    let token = format!(
        "sg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let hash = crate::pki::alg::sha256_hex(token.as_bytes());
    (token, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_to_the_second() {
        let at = time::macros::datetime!(2025-07-01 09:30:00.25 +07:00);
        assert_eq!(rfc3339(at), "2025-07-01T02:30:00Z");
    }

    #[test]
    fn ids_and_tokens_are_fresh() {
        assert_ne!(random_id("x_"), random_id("x_"));
        let (token, hash) = new_token();
        assert!(token.starts_with("sg_"));
        assert_eq!(hash, crate::pki::alg::sha256_hex(token.as_bytes()));
    }
}
