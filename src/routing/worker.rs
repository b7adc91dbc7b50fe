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
use crate::store::routing::{OutboxItem, TraceEvent};

/// Items claimed per round.
const BATCH: i64 = 16;

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

/// Runs the worker until `shutdown` completes.
pub async fn run(node: Arc<Node>, shutdown: impl Future<Output = ()>) {
    let owner = random_id("w_");
    tokio::pin!(shutdown);
    let mut last_sync: Option<std::time::Instant> = None;
    loop {
        if last_sync.map_or(true, |t| t.elapsed() >= DIRECTORY_SYNC_EVERY) {
            node.sync_directory().await;
            last_sync = Some(std::time::Instant::now());
        }
        let worked = match drain_once(&node, &owner).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "routing worker round failed");
                0
            }
        };
        let revalidated = match node.revalidate_due(&owner).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "routing: re-validation round failed");
                0
            }
        };
        let worked = worked + revalidated;
        if worked == 0 {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(node.config.delivery.poll) => {}
            }
        }
    }
}

/// Claims one batch and delivers it (items in parallel); returns how many were claimed.
pub async fn drain_once(node: &Arc<Node>, owner: &str) -> Result<usize, RoutingError> {
    let now = now_ms();
    let lease = node.config.delivery.lease.as_millis() as i64;
    let items = node
        .store()
        .route_claim(owner, now, now + lease, BATCH)
        .await?;
    let n = items.len();
    let mut tasks = Vec::new();
    for item in items {
        let node = node.clone();
        let owner = owner.to_string();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = handle(&node, &owner, item).await {
                tracing::warn!(error = %e, "routing: recording a delivery failed");
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
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
    let store = node.store();
    let now = now_rfc3339();
    let event = |event: &str, detail: String| TraceEvent {
        document_id: item.document_id.clone(),
        sender_organ: String::new(),
        at: now_rfc3339(),
        event: event.into(),
        detail,
    };
    let what = if item.kind.parse::<OutboxKind>()? == OutboxKind::Envelope {
        format!("envelope for {}", item.recipients)
    } else {
        "status".to_string()
    };
    match outcome {
        Outcome::Delivered(detail) => {
            if store
                .route_outbox_finish(&item.id, owner, OutboxState::Delivered.as_str(), None, &now)
                .await?
            {
                node.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(env) = &item.envelope_id {
                    store
                        .route_set_state_sent(
                            env,
                            &item.next_node,
                            RowState::Forwarded.as_str(),
                            &now,
                        )
                        .await?;
                }
                store
                    .route_trace(&event(
                        "forwarded",
                        format!(
                            "{what} to node {}: {detail} (worker {owner})",
                            item.next_node
                        ),
                    ))
                    .await?;
            }
        }
        Outcome::Refused(reason) => {
            if store
                .route_outbox_finish(
                    &item.id,
                    owner,
                    OutboxState::Refused.as_str(),
                    Some(&reason),
                    &now,
                )
                .await?
            {
                if let Some(env) = &item.envelope_id {
                    store
                        .route_set_state_sent(
                            env,
                            &item.next_node,
                            RowState::Refused.as_str(),
                            &now,
                        )
                        .await?;
                }
                tracing::warn!(document_id = %item.document_id, peer = %item.next_node, reason = %reason, "routing: refused by the next hop; the document stays here");
                store
                    .route_trace(&event(
                        "refused-by-peer",
                        format!("{what} by node {}: {reason}", item.next_node),
                    ))
                    .await?;
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
                if store
                    .route_outbox_finish(
                        &item.id,
                        owner,
                        OutboxState::Dead.as_str(),
                        Some(&error),
                        &now,
                    )
                    .await?
                {
                    node.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
                    if let Some(env) = &item.envelope_id {
                        store
                            .route_set_state_sent(
                                env,
                                &item.next_node,
                                RowState::Dead.as_str(),
                                &now,
                            )
                            .await?;
                    }
                    tracing::error!(alert = "route_dead_letter", document_id = %item.document_id, peer = %item.next_node,
                        attempts, error = %error, "routing: dead-lettered after the attempt limit");
                    store
                        .route_trace(&event(
                            "dead-letter",
                            format!(
                                "{what} to node {} after {attempts} attempts: {error}",
                                item.next_node
                            ),
                        ))
                        .await?;
                }
            } else {
                let delay = backoff::delay(
                    policy.backoff_initial,
                    policy.backoff_max,
                    attempts as u32,
                    rand::random::<f64>(),
                );
                let next = now_ms() + delay.as_millis() as i64;
                store
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
