-- Routing operations (issue 15). Times: *_ms Unix milliseconds; *_at RFC 3339 UTC.
-- Envelopes received while the revocation status of their signer could not be obtained
-- (INDETERMINATE/TRY_LATER): held durably here, answered as held (01), re-validated at the time
-- of arrival (received_at) with backoff until deadline_ms, then accepted or answered 02.
CREATE TABLE route_pending (
    id             TEXT PRIMARY KEY,
    from_node      TEXT NOT NULL,
    agency         TEXT,
    recipients     TEXT NOT NULL,
    digest         TEXT NOT NULL,
    sender_organ   TEXT NOT NULL,
    document_id    TEXT NOT NULL,
    bytes          BYTEA NOT NULL,
    received_at    TEXT NOT NULL,
    deadline_ms    BIGINT NOT NULL,
    next_check_ms  BIGINT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    last_reason    TEXT NOT NULL,
    state          TEXT NOT NULL,
    lease_owner    TEXT,
    lease_until_ms BIGINT,
    done_at        TEXT,
    UNIQUE (from_node, digest, recipients)
);
CREATE INDEX route_pending_due ON route_pending (state, next_check_ms);
CREATE INDEX route_pending_doc ON route_pending (document_id);
-- What a clerk's inbox shows of each document (from the envelope's signed MessageHeader).
ALTER TABLE route_documents ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE route_documents ADD COLUMN sender_name TEXT NOT NULL DEFAULT '';
ALTER TABLE route_documents ADD COLUMN doc_number TEXT NOT NULL DEFAULT '';
ALTER TABLE route_documents ADD COLUMN document_type TEXT NOT NULL DEFAULT '';
ALTER TABLE route_documents ADD COLUMN document_type_name TEXT;
ALTER TABLE route_documents ADD COLUMN promulgation_date TEXT;
ALTER TABLE route_documents ADD COLUMN due_date TEXT;
ALTER TABLE route_documents ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';
-- Inbox (held here, by holder, newest first) and sent lists (by sender, newest first).
CREATE INDEX route_documents_inbox ON route_documents (owner_organ, created_at, id) WHERE next_node IS NULL;
CREATE INDEX route_documents_sent ON route_documents (sender_organ, created_at, id);
-- Statuses in the order they were issued (their own Timestamp), not arrival order.
ALTER TABLE route_statuses ADD COLUMN issued_at TEXT;
-- The certificate identities recorded for an agency: subject organization (O), tax code (UID
-- MST:…) or the SHA-256 fingerprint of the certificate. An envelope from the agency must be
-- signed with a certificate that matches one of them.
CREATE TABLE directory_agency_certs (
    organ_id TEXT NOT NULL,
    kind     TEXT NOT NULL,
    value    TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (organ_id, kind, value)
);
CREATE INDEX directory_agency_certs_value ON directory_agency_certs (kind, value);
