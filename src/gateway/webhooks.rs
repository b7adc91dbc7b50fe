//! Webhooks of the routing node: subscriptions per agency ([`subscribe`], [`subscriptions`],
//! [`unsubscribe`]) and the background worker ([`run`]) that delivers the events
//! [`crate::routing::events`] records.
//!
//! Delivery: each (event, subscription) pair is one row claimed with a lease (a process killed
//! mid-delivery loses it when the lease expires, and the restarted or another process takes it
//! over); the event's stored body is POSTed under the gateway's outbound fetch policy
//! ([`super::fetch::post_checked`]: `http://` only, every resolved address checked, loopback
//! and private addresses only when `[fetch] allow` names them, no redirects, a time-out),
//! signed per attempt ([`crate::routing::events::signature_header`]). A 2xx answer ends it;
//! anything else is retried after `webhook_backoff_initial_ms·2^(n-1)` capped at
//! `webhook_backoff_max_ms` (half of it random) until `webhook_max_attempts`, then the
//! delivery is `dead` and an `alert="route_webhook_dead"` error is logged. The secret and the
//! URL (which may carry a token) are never logged: the subscription id is.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::fetch::{post_checked, FetchPolicy, PostError};
use super::GatewayError;
use crate::clock::now_rfc3339;
use crate::ids::random_id;
use crate::routing::config::WebhookPolicy;
use crate::routing::events::{self, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::routing::{backoff, Node};
use crate::store::webhooks::{DeliveryView, DueDelivery, WebhookRow};
use crate::store::{Store, StoreError};

/// Deliveries claimed per round.
const BATCH: i64 = 16;

/// Longest webhook URL accepted.
const MAX_URL_LEN: usize = 2048;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Subscribes `agency` (served by `node`) to `events` (comma list, `all` or `None`: every
/// kind) at `url`; the returned row holds the secret, shown to the caller once.
pub async fn subscribe(
    node: &Node,
    agency: &str,
    url: &str,
    events: Option<&str>,
) -> Result<WebhookRow, GatewayError> {
    if !node.config.serves(agency) {
        return Err(GatewayError::Invalid(format!(
            "agency {agency} is not served by node {} (routing.serves)",
            node.config.node_id
        )));
    }
    let scheme_ok = url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    if !scheme_ok
        || url.len() > MAX_URL_LEN
        || url.len() <= 7
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(GatewayError::Invalid(format!(
            "webhook url must be an http:// URL of at most {MAX_URL_LEN} characters"
        )));
    }
    let events = events::parse_kinds(events).map_err(GatewayError::Invalid)?;
    let row = WebhookRow {
        id: random_id("wh_"),
        agency: agency.to_string(),
        url: url.to_string(),
        events,
        secret: events::new_secret(),
        created_at: now_rfc3339(),
    };
    node.store().webhook_add(&row).await?;
    Ok(row)
}

/// The subscriptions of `agency` (every agency's when `None`), secrets left out by their
/// serialization.
pub async fn subscriptions(
    node: &Node,
    agency: Option<&str>,
) -> Result<Vec<WebhookRow>, GatewayError> {
    Ok(node.store().webhook_list(agency).await?)
}

/// Removes subscription `id` (only `agency`'s, when given) and its undelivered deliveries.
pub async fn unsubscribe(node: &Node, id: &str, agency: Option<&str>) -> Result<(), GatewayError> {
    if node.store().webhook_remove(id, agency).await? {
        Ok(())
    } else {
        Err(GatewayError::NotFound("webhook"))
    }
}

/// The latest `limit` (1 to 500) deliveries to subscription `id`, newest first.
pub async fn deliveries(
    node: &Node,
    id: &str,
    limit: i64,
) -> Result<Vec<DeliveryView>, GatewayError> {
    Ok(node
        .store()
        .webhook_deliveries(id, limit.clamp(1, 500))
        .await?)
}

/// The webhook worker's settings: where and how it delivers.
#[derive(Debug, Clone)]
pub struct Deliverer {
    /// The database.
    pub store: Store,
    /// The outbound fetch policy deliveries go through.
    pub fetch: Arc<FetchPolicy>,
    /// Retries and time-out.
    pub policy: WebhookPolicy,
    /// Lease of a claimed delivery.
    pub lease: Duration,
    /// Poll interval when nothing is due.
    pub poll: Duration,
}

/// Runs the webhook worker until `shutdown` completes.
pub async fn run(deliverer: Deliverer, shutdown: impl Future<Output = ()>) {
    let owner = random_id("wk_");
    let deliverer = Arc::new(deliverer);
    tokio::pin!(shutdown);
    loop {
        let worked = match deliver_once(&deliverer, &owner).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: delivery round failed");
                0
            }
        };
        if worked == 0 {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(deliverer.poll) => {}
            }
        }
    }
}

/// Claims one batch of due deliveries and makes them (in parallel); returns how many.
pub async fn deliver_once(deliverer: &Arc<Deliverer>, owner: &str) -> Result<usize, StoreError> {
    let now = now_ms();
    let lease = deliverer.lease.as_millis() as i64;
    let due = deliverer
        .store
        .webhook_claim(owner, now, now + lease, BATCH)
        .await?;
    let n = due.len();
    let mut tasks = tokio::task::JoinSet::new();
    for d in due {
        let deliverer = deliverer.clone();
        let owner = owner.to_string();
        tasks.spawn(async move {
            if let Err(e) = deliver(&deliverer, &owner, d).await {
                tracing::warn!(error = %e, "webhooks: recording a delivery failed");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(n)
}

/// One attempt: POST, then record the outcome.
async fn deliver(deliverer: &Deliverer, owner: &str, d: DueDelivery) -> Result<(), StoreError> {
    let timestamp = now_ms() / 1000;
    let signature = events::signature_header(&d.secret, timestamp, d.body.as_bytes());
    let (fetch, timeout) = (deliverer.fetch.clone(), deliverer.policy.timeout);
    let (url, body, event_id) = (d.url.clone(), d.body.clone(), d.event_id.clone());
    let answer = tokio::task::spawn_blocking(move || {
        let ts = timestamp.to_string();
        let headers = [
            ("Content-Type", "application/json"),
            (ID_HEADER, event_id.as_str()),
            (TIMESTAMP_HEADER, ts.as_str()),
            (SIGNATURE_HEADER, signature.as_str()),
        ];
        post_checked(&fetch, &url, &headers, body.as_bytes(), timeout)
    })
    .await
    .unwrap_or_else(|e| Err(PostError::Failed(format!("delivery task failed: {e}"))));
    let now = now_rfc3339();
    let store = &deliverer.store;
    let error = match answer {
        Ok(code) if (200..300).contains(&code) => {
            store
                .webhook_finish(&d.id, owner, "delivered", None, &now)
                .await?;
            tracing::info!(webhook = %d.webhook_id, event = %d.event_id, attempts = d.attempts + 1, "webhooks: delivered");
            return Ok(());
        }
        Ok(code) => format!("HTTP {code}"),
        Err(e) => e.to_string(),
    };
    let attempts = d.attempts + 1;
    let policy = &deliverer.policy;
    if attempts >= i64::from(policy.max_attempts) {
        if store
            .webhook_finish(&d.id, owner, "dead", Some(&error), &now)
            .await?
        {
            tracing::error!(alert = "route_webhook_dead", webhook = %d.webhook_id, event = %d.event_id,
                attempts, error = %error, "webhooks: delivery given up after the attempt limit");
        }
        return Ok(());
    }
    let delay = backoff::delay(
        policy.backoff_initial,
        policy.backoff_max,
        attempts as u32,
        rand::random::<f64>(),
    );
    store
        .webhook_retry(
            &d.id,
            owner,
            attempts,
            now_ms() + delay.as_millis() as i64,
            &error,
        )
        .await?;
    tracing::warn!(webhook = %d.webhook_id, event = %d.event_id, attempts, retry_in_ms = delay.as_millis() as u64,
        error = %error, "webhooks: delivery failed, will retry");
    Ok(())
}
