//! Webhook tables (`migrations/*/0850_route_webhooks.sql`): the agencies' subscriptions, the
//! routing events recorded for them and the delivery of each event to each subscription, with
//! leases. SQL only; what becomes an event is `routing::events`' rule, delivering and signing
//! is `gateway::webhooks`'.

use sqlx::Row;

use super::lease::LeaseTable;
use super::{with_pool, Store, StoreError};

/// The deliveries' leases (no fencing token: a worker's writes name its owner id).
const DELIVERY_LEASE: LeaseTable = LeaseTable {
    table: "route_webhook_deliveries",
    fenced: false,
};

/// A subscription: an agency's events of some kinds, POSTed to a URL.
#[derive(Clone, serde::Serialize)]
pub struct WebhookRow {
    /// Id (`wh_…`).
    pub id: String,
    /// The agency (edXML OrganId) whose events it receives.
    pub agency: String,
    /// Where they are POSTed.
    pub url: String,
    /// Event kinds, comma-separated (`document.received,status.received`).
    pub events: String,
    /// The HMAC-SHA256 key of its signatures (kept because signing needs it; never printed
    /// after the subscription is made, never logged).
    #[serde(skip)]
    pub secret: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

impl std::fmt::Debug for WebhookRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRow")
            .field("id", &self.id)
            .field("agency", &self.agency)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An event recorded for an agency, in the transaction that records what it reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteEvent {
    /// Id (`evt_…`): the same in every delivery of it.
    pub id: String,
    /// The agency it is for.
    pub agency: String,
    /// Its kind (`document.received`, `status.received`).
    pub kind: String,
    /// The DocumentId it concerns.
    pub document_id: String,
    /// The JSON body every delivery POSTs, byte for byte.
    pub body: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// A claimed delivery: the event's body, where it goes and the key that signs it.
#[derive(Clone)]
pub struct DueDelivery {
    /// Id (`EVENT:WEBHOOK`).
    pub id: String,
    /// The event id.
    pub event_id: String,
    /// The subscription.
    pub webhook_id: String,
    /// Failed attempts so far.
    pub attempts: i64,
    /// The subscription's URL.
    pub url: String,
    /// The subscription's HMAC key.
    pub secret: String,
    /// The event's body.
    pub body: String,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A delivery as the operator sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryView {
    /// The event id.
    pub event_id: String,
    /// The event kind.
    pub kind: String,
    /// The DocumentId.
    pub document_id: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Failed attempts so far.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// The event's time (RFC 3339 UTC).
    pub created_at: String,
}

const WEBHOOK_COLUMNS: &str = "id, agency, url, events, secret, created_at";

/// The SQL that fans an event out to the subscriptions of its agency and kind ($1 event id,
/// $2 now, $3 agency, $4 kind); both backends concatenate with `||`.
pub(crate) const FAN_OUT: &str = "INSERT INTO route_webhook_deliveries (id, event_id, webhook_id, state, attempts, next_attempt_ms, created_at) \
    SELECT CAST($1 AS TEXT) || ':' || id, $1, id, 'pending', 0, 0, $2 FROM route_webhooks \
    WHERE agency = $3 AND (',' || events || ',') LIKE ('%,' || CAST($4 AS TEXT) || ',%')";

/// Writes `events` and their deliveries on `conn` (inside the caller's transaction: an
/// acceptance, `Store::route_accept_group`).
macro_rules! insert_events {
    ($conn:expr, $events:expr) => {
        for e in $events {
            sqlx::query("INSERT INTO route_events (id, agency, kind, document_id, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&e.id).bind(&e.agency).bind(&e.kind).bind(&e.document_id).bind(&e.body).bind(&e.created_at)
                .execute(&mut *$conn).await?;
            sqlx::query($crate::store::webhooks::FAN_OUT)
                .bind(&e.id).bind(&e.created_at).bind(&e.agency).bind(&e.kind)
                .execute(&mut *$conn).await?;
        }
    };
}
pub(crate) use insert_events;

impl Store {
    /// Records a subscription.
    pub async fn webhook_add(&self, w: &WebhookRow) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO route_webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        );
        with_pool!(self, p => { sqlx::query(&sql).bind(&w.id).bind(&w.agency).bind(&w.url).bind(&w.events)
            .bind(&w.secret).bind(&w.created_at).execute(p).await?; });
        Ok(())
    }

    /// The subscriptions of `agency` (every agency's when `None`), oldest first.
    pub async fn webhook_list(&self, agency: Option<&str>) -> Result<Vec<WebhookRow>, StoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM route_webhooks WHERE ($1 IS NULL OR agency = $1) ORDER BY created_at, id");
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(agency).fetch_all(p).await?.iter().map(|r| WebhookRow {
            id: r.get(0), agency: r.get(1), url: r.get(2), events: r.get(3), secret: r.get(4), created_at: r.get(5),
        }).collect()),
        )
    }

    /// Removes subscription `id` (of `agency` only, when given) and its undelivered
    /// deliveries, in one transaction; false when there is no such subscription.
    pub async fn webhook_remove(&self, id: &str, agency: Option<&str>) -> Result<bool, StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("DELETE FROM route_webhooks WHERE id = $1 AND ($2 IS NULL OR agency = $2)")
                .bind(id).bind(agency).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query("DELETE FROM route_webhook_deliveries WHERE webhook_id = $1 AND state = 'pending'")
                .bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(true)
    }

    /// The deliveries to subscription `webhook_id`, newest first (at most `limit`).
    pub async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        let sql = "SELECT d.event_id, e.kind, e.document_id, d.state, d.attempts, d.last_error, e.created_at \
                   FROM route_webhook_deliveries d JOIN route_events e ON e.id = d.event_id \
                   WHERE d.webhook_id = $1 ORDER BY e.created_at DESC, d.id DESC LIMIT $2";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(webhook_id).bind(limit).fetch_all(p).await?.iter().map(|r| DeliveryView {
            event_id: r.get(0), kind: r.get(1), document_id: r.get(2), state: r.get(3), attempts: r.get(4),
            last_error: r.get(5), created_at: r.get(6),
        }).collect()),
        )
    }

    /// Claims up to `limit` due deliveries for `owner` until `lease_until_ms` (PostgreSQL skips
    /// rows another process is claiming); an expired lease is claimable again.
    pub async fn webhook_claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let claim = DELIVERY_LEASE.claim_sql(
            self,
            "state = 'pending' AND next_attempt_ms <= $2",
            "next_attempt_ms, created_at",
            "",
            "id",
        );
        let read = "SELECT d.id, d.event_id, d.webhook_id, d.attempts, w.url, w.secret, e.body FROM route_webhook_deliveries d \
                    JOIN route_webhooks w ON w.id = d.webhook_id JOIN route_events e ON e.id = d.event_id \
                    WHERE d.id = $1 AND d.lease_owner = $2";
        let mut out = Vec::new();
        with_pool!(self, p => {
            let ids: Vec<String> = sqlx::query(&claim).bind(owner).bind(now_ms).bind(lease_until_ms).bind(limit)
                .fetch_all(p).await?.iter().map(|r| r.get(0)).collect();
            for id in ids {
                if let Some(r) = sqlx::query(read).bind(&id).bind(owner).fetch_optional(p).await? {
                    out.push(DueDelivery {
                        id: r.get(0), event_id: r.get(1), webhook_id: r.get(2), attempts: r.get(3),
                        url: r.get(4), secret: r.get(5), body: r.get(6),
                    });
                }
            }
        });
        Ok(out)
    }

    /// Ends a delivery `owner` holds (`delivered` or `dead`); false when the lease was lost.
    pub async fn webhook_finish(
        &self,
        id: &str,
        owner: &str,
        state: &str,
        error: Option<&str>,
        now: &str,
    ) -> Result<bool, StoreError> {
        let sql = DELIVERY_LEASE.finish_sql();
        let n = with_pool!(self, p => sqlx::query(&sql).bind(state).bind(error).bind(now).bind(id).bind(owner)
            .execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Records a failed attempt and when to try again (releases the lease).
    pub async fn webhook_retry(
        &self,
        id: &str,
        owner: &str,
        attempts: i64,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<bool, StoreError> {
        let sql = DELIVERY_LEASE.retry_sql();
        let n = with_pool!(self, p => sqlx::query(&sql).bind(attempts).bind(next_attempt_ms).bind(error).bind(id).bind(owner)
            .execute(p).await?.rows_affected());
        Ok(n > 0)
    }
}
