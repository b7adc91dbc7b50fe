-- Routing between gateway nodes (issue 8). Times: *_ms are Unix milliseconds; *_at RFC 3339 UTC.
-- An envelope as this node holds it (bytes include the trace headers appended so far).
CREATE TABLE route_envelopes (
    id          TEXT PRIMARY KEY,
    digest      TEXT NOT NULL,
    bytes       BLOB NOT NULL,
    from_node   TEXT NOT NULL,
    received_at TEXT NOT NULL
);
-- One row per idempotency key (CONTRACTS §5): sender organ, DocumentId, BussinessDocType, recipient organ.
CREATE TABLE route_documents (
    id              TEXT PRIMARY KEY,
    sender_organ    TEXT NOT NULL,
    document_id     TEXT NOT NULL,
    doc_type        INTEGER NOT NULL,
    recipient_organ TEXT NOT NULL,
    digest          TEXT NOT NULL,
    envelope_id     TEXT NOT NULL REFERENCES route_envelopes(id),
    target_document TEXT NOT NULL,
    state           TEXT NOT NULL,
    next_node       TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (sender_organ, document_id, doc_type, recipient_organ)
);
CREATE INDEX route_documents_doc ON route_documents (document_id);
CREATE INDEX route_documents_state ON route_documents (state, recipient_organ);
-- Work to hand to a peer: an envelope (for some of its recipients) or a signed status message.
CREATE TABLE route_outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    next_node       TEXT NOT NULL,
    document_id     TEXT NOT NULL,
    envelope_id     TEXT REFERENCES route_envelopes(id),
    recipients      TEXT NOT NULL,
    payload         BLOB,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  BIGINT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    done_at         TEXT
);
CREATE INDEX route_outbox_due ON route_outbox (state, next_attempt_ms);
-- Status messages received for documents (01..06, 13, update agreed/refused), once each.
CREATE TABLE route_statuses (
    id              TEXT PRIMARY KEY,
    document_id     TEXT NOT NULL,
    sender_organ    TEXT NOT NULL,
    from_organ      TEXT NOT NULL,
    code            TEXT NOT NULL,
    description     TEXT,
    at              TEXT NOT NULL,
    bytes           BLOB NOT NULL,
    UNIQUE (document_id, sender_organ, from_organ, code)
);
-- The history of each document at this node: received, forwarded, redirected, delivered, refused...
CREATE TABLE route_traces (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id  TEXT NOT NULL,
    sender_organ TEXT NOT NULL,
    at           TEXT NOT NULL,
    event        TEXT NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX route_traces_doc ON route_traces (document_id, seq);
