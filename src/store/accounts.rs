//! Web console accounts: officers (`console_users`) and their sessions (`console_sessions`).
//! Rows only; password hashing, roles and expiry are `gateway::accounts`'s.

use sqlx::Row;

use super::{with_pool, Store, StoreError};

/// An officer's account as stored.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Login name (unique).
    pub username: String,
    /// The agency the officer acts for.
    pub agency: String,
    /// Full name, as the audit trail and the pages show it.
    pub name: String,
    /// `officer`, `clerk` or `admin`.
    pub role: String,
    /// Argon2id hash in PHC string form (never the password).
    pub password_hash: String,
    /// Disabled accounts cannot log in, and their sessions stop working.
    pub disabled: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// A console session as stored.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// SHA-256 of the session token, hex.
    pub token_sha256: String,
    /// Whose session it is.
    pub username: String,
    /// The session's CSRF token (compared with each form's hidden field).
    pub csrf: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC; the session is refused from then on.
    pub expires_at: String,
}

const USER_COLUMNS: &str = "username, agency, name, role, password_hash, disabled, created_at";

macro_rules! user_from_row {
    ($r:expr) => {
        UserRow {
            username: $r.get(0),
            agency: $r.get(1),
            name: $r.get(2),
            role: $r.get(3),
            password_hash: $r.get(4),
            disabled: $r.get::<i64, _>(5) != 0,
            created_at: $r.get(6),
        }
    };
}

impl Store {
    /// Adds an account; `Ok(false)` when the user name is taken.
    pub async fn add_console_user(&self, user: &UserRow) -> Result<bool, StoreError> {
        let sql = "INSERT INTO console_users (username, agency, name, role, password_hash, disabled, created_at) \
                   VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT DO NOTHING";
        let n = with_pool!(self, p => sqlx::query(sql)
            .bind(&user.username).bind(&user.agency).bind(&user.name).bind(&user.role)
            .bind(&user.password_hash).bind(&user.created_at)
            .execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// The account `username`.
    pub async fn console_user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM console_users WHERE username = $1");
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(username).fetch_optional(p).await?
            .map(|r| user_from_row!(r))),
        )
    }

    /// Every account, by agency then user name.
    pub async fn list_console_users(&self) -> Result<Vec<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM console_users ORDER BY agency, username");
        Ok(with_pool!(self, p => sqlx::query(&sql).fetch_all(p).await?
            .into_iter().map(|r| user_from_row!(r)).collect()))
    }

    /// Disables `username` and deletes its sessions; false when there is no such account.
    pub async fn disable_console_user(&self, username: &str) -> Result<bool, StoreError> {
        let n = with_pool!(self, p => sqlx::query("UPDATE console_users SET disabled = 1 WHERE username = $1")
            .bind(username).execute(p).await?.rows_affected());
        self.delete_console_sessions(username).await?;
        Ok(n > 0)
    }

    /// Replaces the password hash of `username` and deletes its sessions; false when there is
    /// no such account.
    pub async fn set_console_password(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let n = with_pool!(self, p => sqlx::query("UPDATE console_users SET password_hash = $1 WHERE username = $2")
            .bind(password_hash).bind(username).execute(p).await?.rows_affected());
        self.delete_console_sessions(username).await?;
        Ok(n > 0)
    }

    async fn delete_console_sessions(&self, username: &str) -> Result<(), StoreError> {
        with_pool!(self, p => { sqlx::query("DELETE FROM console_sessions WHERE username = $1")
            .bind(username).execute(p).await?; });
        Ok(())
    }

    /// Stores a new session.
    pub async fn add_console_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        let sql = "INSERT INTO console_sessions (token_sha256, username, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
        with_pool!(self, p => { sqlx::query(sql)
            .bind(&s.token_sha256).bind(&s.username).bind(&s.csrf)
            .bind(&s.created_at).bind(&s.expires_at).execute(p).await?; });
        Ok(())
    }

    /// The session whose token hash is `token_sha256`, with its account.
    pub async fn console_session(
        &self,
        token_sha256: &str,
    ) -> Result<Option<(SessionRow, UserRow)>, StoreError> {
        let sql = "SELECT u.username, u.agency, u.name, u.role, u.password_hash, u.disabled, u.created_at, \
                   s.token_sha256, s.csrf, s.created_at, s.expires_at \
                   FROM console_sessions s JOIN console_users u ON u.username = s.username \
                   WHERE s.token_sha256 = $1";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(token_sha256).fetch_optional(p).await?
            .map(|r| {
                let user = user_from_row!(r);
                let session = SessionRow {
                    token_sha256: r.get(7),
                    username: user.username.clone(),
                    csrf: r.get(8),
                    created_at: r.get(9),
                    expires_at: r.get(10),
                };
                (session, user)
            })),
        )
    }

    /// Deletes the session `token_sha256` (logout), and every session expired before `now`.
    pub async fn end_console_session(
        &self,
        token_sha256: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query("DELETE FROM console_sessions WHERE token_sha256 = $1 OR expires_at < $2")
                .bind(token_sha256).bind(now).execute(p).await?;
        });
        Ok(())
    }
}

impl Store {
    /// Binds the certificate of SHA-256 `fingerprint` to `username` (again, when it was
    /// revoked); `Ok(false)` when it is bound to another account.
    pub async fn bind_console_cert(
        &self,
        fingerprint: &str,
        username: &str,
        now: &str,
    ) -> Result<bool, StoreError> {
        let sql = "INSERT INTO console_user_certs (fingerprint, username, added_at, revoked_at) VALUES ($1, $2, $3, NULL) \
                   ON CONFLICT (fingerprint) DO UPDATE SET revoked_at = NULL, added_at = excluded.added_at \
                   WHERE console_user_certs.username = excluded.username";
        let n = with_pool!(self, p => sqlx::query(sql)
            .bind(fingerprint).bind(username).bind(now)
            .execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Revokes the binding of `fingerprint` to `username`; `Ok(false)` when there is none.
    pub async fn revoke_console_cert(
        &self,
        fingerprint: &str,
        username: &str,
        now: &str,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE console_user_certs SET revoked_at = $3 \
                   WHERE fingerprint = $1 AND username = $2 AND revoked_at IS NULL";
        let n = with_pool!(self, p => sqlx::query(sql)
            .bind(fingerprint).bind(username).bind(now)
            .execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// The account the certificate `fingerprint` is bound to and not revoked, if any.
    pub async fn console_user_by_cert(
        &self,
        fingerprint: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        let columns = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM console_user_certs c JOIN console_users u ON u.username = c.username \
             WHERE c.fingerprint = $1 AND c.revoked_at IS NULL"
        );
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(fingerprint).fetch_optional(p).await?
            .map(|r| user_from_row!(r))),
        )
    }
}
