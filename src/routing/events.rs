//! Webhook events of the routing node (issue 15, item 6): what e-office systems and citizen
//! portals are told instead of polling, and how each delivery is signed so they can check it.
//!
//! An event is written in the same transaction as what it reports (a document delivered to an
//! agency's inbox here, a status recorded for a document an agency here sent), with an id
//! (`evt_…`) and a JSON body fixed at that moment; every delivery of it, retries included,
//! POSTs that body byte for byte under the same id, so a receiver deduplicates by id.
//!
//! **Signature** ([`signature`]): `HMAC-SHA256(secret, "{timestamp}.{body}")` in lowercase hex,
//! where `secret` is the subscription's secret (its UTF-8 bytes, `whsec_…` included) and
//! `timestamp` the Unix time in seconds of this attempt; sent as
//! `Signgate-Webhook-Signature: t={timestamp},v1={hex}` beside `Signgate-Webhook-Id` (the event
//! id) and `Signgate-Webhook-Timestamp`. A receiver recomputes it over the raw body, compares in
//! constant time ([`verify`]) and refuses a timestamp too far from its clock (replay).
//!
//! Storage is `crate::store::webhooks`; delivery (the fetch policy, backoff) is
//! `crate::gateway::webhooks`.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use crate::clock::now_rfc3339;
use crate::ids::random_id;
use crate::store::routing::{DocumentMeta, DocumentRow, StatusRow};
use crate::store::webhooks::RouteEvent;

/// Header carrying the event id (the same on every retry).
pub const ID_HEADER: &str = "Signgate-Webhook-Id";
/// Header carrying the Unix time (seconds) of this attempt, also inside the signature.
pub const TIMESTAMP_HEADER: &str = "Signgate-Webhook-Timestamp";
/// Header carrying `t={timestamp},v1={hex HMAC-SHA256}`.
pub const SIGNATURE_HEADER: &str = "Signgate-Webhook-Signature";

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A document was delivered to the agency's inbox at this node.
    DocumentReceived,
    /// A status (01 received … 06 completed, 13, 02 with its reason) was recorded for a
    /// document the agency sent.
    StatusReceived,
}

impl EventKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [EventKind; 2] = [EventKind::DocumentReceived, EventKind::StatusReceived];

    /// Its name in subscriptions and bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DocumentReceived => "document.received",
            Self::StatusReceived => "status.received",
        }
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text.trim())
            .ok_or_else(|| {
                format!(
                    "unknown webhook event {text:?} (known: {})",
                    Self::ALL.map(EventKind::as_str).join(", ")
                )
            })
    }
}

/// Parses a comma-separated list of kinds (`all` or empty: every kind) into the form stored.
pub fn parse_kinds(text: Option<&str>) -> Result<String, String> {
    let text = text.map(str::trim).unwrap_or("all");
    if text.is_empty() || text == "all" {
        return Ok(EventKind::ALL.map(EventKind::as_str).join(","));
    }
    let mut kinds: Vec<&'static str> = Vec::new();
    for part in text.split(',') {
        let k = part.parse::<EventKind>()?.as_str();
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    Ok(kinds.join(","))
}

fn event(agency: &str, kind: EventKind, document_id: &str, data: serde_json::Value) -> RouteEvent {
    let id = random_id("evt_");
    let created_at = now_rfc3339();
    let body = serde_json::json!({
        "id": id,
        "type": kind.as_str(),
        "agency": agency,
        "created_at": created_at,
        "data": data,
    });
    RouteEvent {
        id,
        agency: agency.to_string(),
        kind: kind.as_str().into(),
        document_id: document_id.to_string(),
        body: body.to_string(),
        created_at,
    }
}

/// `document.received` for the agency holding `row` here, with what its inbox shows.
pub fn document_received(row: &DocumentRow, meta: &DocumentMeta) -> RouteEvent {
    let data = serde_json::json!({
        "document_id": row.document_id,
        "sender_organ": row.sender_organ,
        "recipient_organ": row.recipient_organ,
        "owner_organ": row.owner_organ,
        "doc_type": row.doc_type,
        "state": row.state,
        "meta": meta,
    });
    event(
        &row.owner_organ,
        EventKind::DocumentReceived,
        &row.document_id,
        data,
    )
}

/// `status.received` for the agency that sent the document `status` answers.
pub fn status_received(status: &StatusRow) -> RouteEvent {
    let data = serde_json::json!({
        "document_id": status.document_id,
        "from_organ": status.from_organ,
        "code": status.code,
        "description": status.description,
        "issued_at": status.issued_at,
    });
    event(
        &status.sender_organ,
        EventKind::StatusReceived,
        &status.document_id,
        data,
    )
}

/// A fresh subscription secret: `whsec_` and 256 random bits in hex.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", hex::encode(bytes))
}

/// `HMAC-SHA256(secret, "{timestamp}.{body}")`, lowercase hex.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let key = PKey::hmac(secret.as_bytes())?;
        let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
        signer.update(timestamp.to_string().as_bytes())?;
        signer.update(b".")?;
        signer.update(body)?;
        signer.sign_to_vec()
    };
    hex::encode(mac().expect("HMAC-SHA256 with an in-memory key does not fail"))
}

/// The `Signgate-Webhook-Signature` value of one attempt.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", signature(secret, timestamp, body))
}

/// What a receiver does: parses `header`, checks that its time is within `tolerance_secs` of
/// `now` and that its `v1` matches the body (constant-time comparison).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut given = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => given.push(v.to_string()),
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return false;
    };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let expected = signature(secret, t, body);
    given.iter().any(|g| {
        g.len() == expected.len() && openssl::memcmp::eq(g.as_bytes(), expected.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let secret = new_secret();
        let body = br#"{"id":"evt_1"}"#;
        let header = signature_header(&secret, 1_700_000_000, body);
        assert!(verify(&secret, &header, body, 1_700_000_010, 300));
        assert!(!verify(
            &secret,
            &header,
            b"{\"id\":\"evt_2\"}",
            1_700_000_010,
            300
        ));
        assert!(!verify("whsec_other", &header, body, 1_700_000_010, 300));
        assert!(
            !verify(&secret, &header, body, 1_700_001_000, 300),
            "replay"
        );
        assert!(!verify(&secret, "v1=00", body, 1_700_000_000, 300));
    }

    #[test]
    fn a_known_answer() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec_k",b"1.{}",hashlib.sha256).hexdigest())'
        assert_eq!(
            signature("whsec_k", 1, b"{}"),
            "3e55f0b5839e8ec0fb44b2f4f4153484f384cbc5344451738bfc77fe78d0d531"
        );
    }

    #[test]
    fn kinds_parse() {
        assert_eq!(
            parse_kinds(None).unwrap(),
            "document.received,status.received"
        );
        assert_eq!(
            parse_kinds(Some("status.received, status.received")).unwrap(),
            "status.received"
        );
        assert!(parse_kinds(Some("document.sent")).is_err());
    }
}
