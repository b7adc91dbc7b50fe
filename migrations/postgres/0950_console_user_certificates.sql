-- Web console log-in by client certificate (issue 18 item 5): a certificate, by the SHA-256
-- fingerprint of its DER encoding, bound to one console account; a revoked binding logs no one in.
CREATE TABLE console_user_certs (
    fingerprint TEXT PRIMARY KEY,
    username    TEXT NOT NULL REFERENCES console_users(username),
    added_at    TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX console_user_certs_user ON console_user_certs (username);
