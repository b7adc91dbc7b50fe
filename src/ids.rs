//! Fresh identifiers and bearer tokens. Bottom layer: no crate imports.

use base64::Engine;

/// A fresh random id with `prefix` (128 bits), e.g. `sub_3f…`.
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
    let hash = hex::encode(openssl::sha::sha256(token.as_bytes()));
    (token, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_fresh() {
        let a = random_id("sub_");
        assert!(a.starts_with("sub_") && a.len() == 4 + 32, "{a}");
        assert_ne!(a, random_id("sub_"));
    }

    #[test]
    fn token_hash_is_its_sha256() {
        let (token, hash) = new_token();
        assert!(token.starts_with("sg_"));
        assert_eq!(hash, hex::encode(openssl::sha::sha256(token.as_bytes())));
    }
}
