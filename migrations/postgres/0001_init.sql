-- signgate gateway schema (PostgreSQL). Times are RFC 3339 UTC text; flags are 0/1 integers.
CREATE TABLE clients (
    id           TEXT PRIMARY KEY,
    agency       TEXT NOT NULL,
    name         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    revoked      BIGINT NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL
);
CREATE TABLE keys (
    name         TEXT PRIMARY KEY,
    agency       TEXT NOT NULL,
    p12_path     TEXT NOT NULL,
    seal_path    TEXT,
    seal_size_mm DOUBLE PRECISION,
    created_at   TEXT NOT NULL
);
CREATE TABLE client_keys (
    client_id TEXT NOT NULL REFERENCES clients(id),
    key_name  TEXT NOT NULL REFERENCES keys(name),
    PRIMARY KEY (client_id, key_name)
);
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    prev_hash TEXT NOT NULL UNIQUE,
    hash      TEXT NOT NULL,
    canonical TEXT NOT NULL,
    at        TEXT NOT NULL,
    agency    TEXT NOT NULL,
    client    TEXT NOT NULL,
    action    TEXT NOT NULL
);
CREATE INDEX audit_agency ON audit (agency, seq);
CREATE TABLE submissions (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    agency          TEXT NOT NULL,
    idempotency_key TEXT,
    received_at     TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    size            BIGINT NOT NULL,
    indication      TEXT NOT NULL,
    report          TEXT NOT NULL,
    document        BYTEA NOT NULL,
    response        TEXT NOT NULL,
    UNIQUE (client_id, idempotency_key)
);
