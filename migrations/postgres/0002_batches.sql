-- Asynchronous batches (POST /v1/batches). Inputs and outputs live in the data folder
-- (batches/<id>/in, batches/<id>/out); these rows hold who asked, with what, and progress.
CREATE TABLE batches (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    agency          TEXT NOT NULL,
    idempotency_key TEXT,
    key_name        TEXT NOT NULL,
    options         TEXT NOT NULL,
    state           TEXT NOT NULL,
    total           BIGINT NOT NULL,
    created_at      TEXT NOT NULL,
    finished_at     TEXT,
    error           TEXT,
    UNIQUE (client_id, idempotency_key)
);
CREATE TABLE batch_documents (
    batch_id      TEXT NOT NULL REFERENCES batches(id),
    idx           BIGINT NOT NULL,
    name          TEXT NOT NULL,
    state         TEXT NOT NULL,
    output        TEXT,
    output_sha256 TEXT,
    audit_seq     BIGINT,
    code          TEXT,
    message       TEXT,
    PRIMARY KEY (batch_id, idx)
);
-- An event that may be reported twice (a batch document signed before a crash and seen again
-- on resume) carries a key here so that it is recorded once; NULL for everything else.
ALTER TABLE audit ADD COLUMN dedup TEXT;
CREATE UNIQUE INDEX audit_dedup ON audit (dedup);
