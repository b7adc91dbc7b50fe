-- Idempotency keys (IETF draft-ietf-httpapi-idempotency-key-header), per client. A key is
-- claimed ('in_progress', by the request whose random `owner` token it holds) as soon as a
-- request arrives, and completed ('done': the request fingerprint and the answer to replay) in
-- the same transaction as the filing and its audit record. Rows expire at `expires_at`.
CREATE TABLE idempotency (
    client_id   TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    owner       TEXT NOT NULL,
    state       TEXT NOT NULL,
    fingerprint TEXT,
    response    TEXT,
    started_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    PRIMARY KEY (client_id, idem_key)
);
CREATE INDEX idempotency_expiry ON idempotency (expires_at);
-- The audit record a submission or batch was committed with (same transaction); NULL for
-- rows stored before this migration.
ALTER TABLE submissions ADD COLUMN audit_seq BIGINT;
ALTER TABLE batches ADD COLUMN audit_seq BIGINT;
