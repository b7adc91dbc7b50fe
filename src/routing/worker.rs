//! The outbox worker: claims due items with a lease, hands each to its peer over mutual TLS,
//! and records the outcome. A peer's 01 ends the item (`delivered`); a 02 or a 4xx answer is a
//! refusal (`refused`, the document stays here with the reason); anything else (no answer, 5xx)
//! is retried with exponential backoff and jitter until `max_attempts`, then dead-lettered with
//! an alert in the log. A worker that dies mid-item loses its lease when it expires, and another
//! worker (or the restarted process) takes the item over; receivers are idempotent, so the
//! rare second delivery is acknowledged and not stored twice.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::lifecycle::{OutboxKind, OutboxState, RowState};
use super::node::Node;
use super::{backoff, RoutingError};
use crate::clock::now_rfc3339;
use crate::edxml::StatusCode;
use crate::ids::random_id;
use crate::store::routing::{Acceptance, OutboxFinish, OutboxItem, TraceEvent};

/// Most items in flight (claimed and being delivered) at once.
const BATCH: usize = 16;

/// How often signed directory updates are issued and sent to the peers lacking them.
const DIRECTORY_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Header carrying the hop's status code on `POST /v1/route/envelopes` answers.
pub const STATUS_HEADER: &str = "signgate-route-status";

/// Header carrying the refusal reason (percent-encoded UTF-8, as HTTP headers are ASCII)
/// beside a status 02; the sender decodes it ([`decode`]) before recording it.
pub const REASON_HEADER: &str = "signgate-route-reason";

/// Header beside a status 01 when the receiver holds the envelope without a verdict yet (the
/// revocation status of its signer could not be obtained; percent-encoded note).
pub const HELD_HEADER: &str = "signgate-route-held";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How one delivery attempt ended.
#[derive(Debug)]
enum Outcome {
    Delivered(String),
    Refused(String),
    Retry(String),
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded header value ([`encode`]); invalid escapes are kept as written.
pub fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the worker until `shutdown` completes. Deliveries are pipelined: up to [`BATCH`]
/// items are in flight, more are claimed once half of them have ended, and the worker wakes
/// as soon as a write queues items ([`Node::outbox_queued`]) rather than at its next poll.
pub async fn run(node: Arc<Node>, shutdown: impl Future<Output = ()>) {
    let owner = random_id("w_");
    tokio::pin!(shutdown);
    let poll = node.config.delivery.poll;
    let mut last_sync: Option<std::time::Instant> = None;
    let mut last_revalidation: Option<std::time::Instant> = None;
    let mut revalidated = 0;
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        if last_sync.map_or(true, |t| t.elapsed() >= DIRECTORY_SYNC_EVERY) {
            node.sync_directory().await;
            last_sync = Some(std::time::Instant::now());
        }
        let claimed = if in_flight.len() <= BATCH / 2 {
            match claim(&node, &owner, BATCH - in_flight.len(), &mut in_flight).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "routing worker round failed");
                    0
                }
            }
        } else {
            0
        };
        // held envelopes: every poll, and at once again while there were some due
        if revalidated > 0 || last_revalidation.map_or(true, |t| t.elapsed() >= poll) {
            revalidated = match node.revalidate_due(&owner).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "routing: re-validation round failed");
                    0
                }
            };
            last_revalidation = Some(std::time::Instant::now());
        }
        if claimed > 0 || revalidated > 0 {
            continue;
        }
        let (busy, room) = (!in_flight.is_empty(), in_flight.len() <= BATCH / 2);
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = in_flight.join_next(), if busy => {}
            _ = node.outbox_queued(), if room => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
    // the items in flight end (each bounded by the peer timeout) before the worker does
    while in_flight.join_next().await.is_some() {}
}

/// Claims up to `limit` due items and starts delivering each; returns how many were claimed.
async fn claim(
    node: &Arc<Node>,
    owner: &str,
    limit: usize,
    in_flight: &mut tokio::task::JoinSet<()>,
) -> Result<usize, RoutingError> {
    let now = now_ms();
    let lease = node.config.delivery.lease.as_millis() as i64;
    let items = node
        .store()
        .route_claim(owner, now, now + lease, limit as i64)
        .await?;
    let n = items.len();
    for item in items {
        let node = node.clone();
        let owner = owner.to_string();
        in_flight.spawn(async move {
            if let Err(e) = handle(&node, &owner, item).await {
                tracing::warn!(error = %e, "routing: recording a delivery failed");
            }
        });
    }
    Ok(n)
}

async fn attempt(node: &Node, item: &OutboxItem) -> Result<Outcome, RoutingError> {
    let Some(peer) = node.config.peer(&item.next_node) else {
        return Ok(Outcome::Refused(format!(
            "node {} is no longer a peer",
            item.next_node
        )));
    };
    let timeout = node.config.delivery.peer_timeout;
    let kind: OutboxKind = item.kind.parse()?;
    let (url, body, content_type) = if kind == OutboxKind::Envelope {
        let envelope_id = item.envelope_id.clone().unwrap_or_default();
        let Some(envelope) = node.store().route_envelope(&envelope_id).await? else {
            return Ok(Outcome::Refused(format!(
                "envelope {envelope_id} is missing"
            )));
        };
        let recipients: Vec<String> = serde_json::from_str(&item.recipients).unwrap_or_default();
        let query: Vec<String> = recipients
            .iter()
            .map(|r| format!("to={}", encode(r)))
            .collect();
        (
            format!("{}v1/route/envelopes?{}", peer.url, query.join("&")),
            envelope.bytes,
            "application/xml",
        )
    } else {
        (
            format!("{}v1/route/statuses", peer.url),
            item.payload.clone().unwrap_or_default(),
            "application/xml",
        )
    };
    let answer = match node
        .peers()
        .post(&url, &peer.fingerprint, content_type, body, timeout)
        .await
    {
        Ok(a) => a,
        Err(RoutingError::PeerUnavailable(m)) => return Ok(Outcome::Retry(m)),
        Err(RoutingError::PeerUnknown(m)) => return Ok(Outcome::Retry(m)),
        Err(e) => return Ok(Outcome::Retry(e.to_string())),
    };
    let text = String::from_utf8_lossy(&answer.body)
        .chars()
        .take(300)
        .collect::<String>();
    Ok(match answer.status {
        200 if kind == OutboxKind::Status => Outcome::Delivered("status accepted".into()),
        200 => {
            let header = |name: &str| {
                answer
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            match header(STATUS_HEADER).as_deref() {
                Some(code) if StatusCode::Received.fixed_code() == Some(code) => {
                    match header(HELD_HEADER) {
                        Some(note) => Outcome::Delivered(format!(
                            "01 received, held by the next hop: {}",
                            decode(&note)
                        )),
                        None => Outcome::Delivered("01 received".into()),
                    }
                }
                Some(code) => Outcome::Refused(format!(
                    "{code}: {}",
                    header(REASON_HEADER).map(|r| decode(&r)).unwrap_or(text)
                )),
                None => Outcome::Retry("answer without a route status".into()),
            }
        }
        400..=499 if answer.status != 408 && answer.status != 429 => {
            Outcome::Refused(format!("HTTP {}: {text}", answer.status))
        }
        s => Outcome::Retry(format!("HTTP {s}: {text}")),
    })
}

async fn handle(node: &Node, owner: &str, item: OutboxItem) -> Result<(), RoutingError> {
    let outcome = attempt(node, &item).await?;
    let now = now_rfc3339();
    let what = if item.kind.parse::<OutboxKind>()? == OutboxKind::Envelope {
        format!("envelope for {}", item.recipients)
    } else {
        "status".to_string()
    };
    // the item's end, the state of the rows it carried and the trace: one write, shared with
    // concurrent ones (group commit), and nothing of it when the lease was lost
    let end =
        |state: OutboxState, error: Option<&str>, rows: RowState, event: &str, detail| Acceptance {
            finish: Some(OutboxFinish {
                id: item.id.clone(),
                owner: owner.to_string(),
                state: state.as_str().into(),
                error: error.map(str::to_string),
                envelope_id: item.envelope_id.clone(),
                next_node: item.next_node.clone(),
                rows_state: rows.as_str().into(),
            }),
            traces: vec![TraceEvent {
                document_id: item.document_id.clone(),
                sender_organ: String::new(),
                at: now.clone(),
                event: String::from(event),
                detail,
            }],
            ..Acceptance::default()
        };
    match outcome {
        Outcome::Delivered(detail) => {
            let detail = format!(
                "{what} to node {}: {detail} (worker {owner})",
                item.next_node
            );
            let a = end(
                OutboxState::Delivered,
                None,
                RowState::Forwarded,
                "forwarded",
                detail,
            );
            if node.commit(a, now.clone()).await? {
                node.counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
        Outcome::Refused(reason) => {
            let detail = format!("{what} by node {}: {reason}", item.next_node);
            let a = end(
                OutboxState::Refused,
                Some(&reason),
                RowState::Refused,
                "refused-by-peer",
                detail,
            );
            if node.commit(a, now.clone()).await? {
                tracing::warn!(document_id = %item.document_id, peer = %item.next_node, reason = %reason, "routing: refused by the next hop; the document stays here");
                if let Some(env) = &item.envelope_id {
                    // the sender, upstream, learns of it (status 02 from this node)
                    node.report_refusal(env, &reason).await?;
                }
            }
        }
        Outcome::Retry(error) => {
            let attempts = item.attempts + 1;
            let policy = &node.config.delivery;
            if attempts >= i64::from(policy.max_attempts) {
                let detail = format!(
                    "{what} to node {} after {attempts} attempts: {error}",
                    item.next_node
                );
                let a = end(
                    OutboxState::Dead,
                    Some(&error),
                    RowState::Dead,
                    "dead-letter",
                    detail,
                );
                if node.commit(a, now.clone()).await? {
                    node.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(alert = "route_dead_letter", document_id = %item.document_id, peer = %item.next_node,
                        attempts, error = %error, "routing: dead-lettered after the attempt limit");
                }
            } else {
                let delay = backoff::delay(
                    policy.backoff_initial,
                    policy.backoff_max,
                    attempts as u32,
                    rand::random::<f64>(),
                );
                let next = now_ms() + delay.as_millis() as i64;
                node.store()
                    .route_outbox_retry(&item.id, owner, attempts, next, &error)
                    .await?;
                node.counters
                    .delivery_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(document_id = %item.document_id, peer = %item.next_node, attempts, retry_in_ms = delay.as_millis() as u64,
                    error = %error, "routing: delivery to the next hop failed, will retry");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("000.00.00.H01"), "000.00.00.H01");
        assert_eq!(encode("a/b,c d"), "a%2Fb%2Cc%20d");
        let reason = "attachment 'công văn.pdf' was altered after signing";
        assert_eq!(decode(&encode(reason)), reason);
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
    }
}
