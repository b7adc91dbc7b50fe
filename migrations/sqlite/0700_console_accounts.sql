-- Web console accounts (issue 18): officers who log in with a password (argon2id PHC string),
-- one agency and one role each, and their sessions (only the SHA-256 of a session token is kept).
CREATE TABLE console_users (
    username      TEXT PRIMARY KEY,
    agency        TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BIGINT NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);
CREATE TABLE console_sessions (
    token_sha256 TEXT PRIMARY KEY,
    username     TEXT NOT NULL REFERENCES console_users(username),
    csrf         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (username);
