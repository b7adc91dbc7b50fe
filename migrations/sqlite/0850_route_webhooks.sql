-- Webhooks of routing events (issue 15, item 6). Times: *_ms Unix milliseconds; *_at RFC 3339 UTC.
-- A subscription of one agency: its events are POSTed to url, signed with HMAC-SHA256 under
-- secret (kept here because signing needs it; shown once when the subscription is made).
CREATE TABLE route_webhooks (
    id         TEXT PRIMARY KEY,
    agency     TEXT NOT NULL,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX route_webhooks_agency ON route_webhooks (agency);
-- An event for an agency, written in the transaction that records what it reports.
CREATE TABLE route_events (
    id          TEXT PRIMARY KEY,
    agency      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    document_id TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX route_events_agency ON route_events (agency, created_at);
-- One delivery of an event to one subscription (created with the event; id EVENT:WEBHOOK),
-- claimed with leases like the routing outbox.
CREATE TABLE route_webhook_deliveries (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  BIGINT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    done_at         TEXT,
    UNIQUE (event_id, webhook_id)
);
CREATE INDEX route_webhook_deliveries_due ON route_webhook_deliveries (state, next_attempt_ms);
CREATE INDEX route_webhook_deliveries_hook ON route_webhook_deliveries (webhook_id, state);
