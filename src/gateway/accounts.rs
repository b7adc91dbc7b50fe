//! Web console accounts: officers with a password (argon2id), one agency and one role each;
//! their sessions (only the SHA-256 of a session token is stored, with its CSRF token and
//! expiry); the keys an officer may pick; and signing for an officer. Every change and every
//! log-in is recorded in the audit chain under the officer's name (`officer:USERNAME`).
//!
//! What is left to the console adapter: cookies, forms, throttling of attempts per address.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::body::Bytes;
use secrecy::ExposeSecret;
use serde_json::json;
use time::OffsetDateTime;

use super::signing::{Document, Mark, SignSpec, Signed};
use super::{blocking, Actor, GatewayError, Secret, Services};
use crate::clock;
use crate::pki::alg::sha256_hex;
use crate::store::{KeyRecord, SessionRow, UserRow};

/// How long a console session lasts after log-in.
pub const SESSION_LIFETIME: time::Duration = time::Duration::hours(8);

/// Shortest password accepted for an account.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// What an account may do in the console, within its agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Signs and stamps documents with the agency's keys (the stamp desk).
    Officer,
    /// Handles documents without signing (the routing desk).
    Clerk,
    /// An officer who may also administer the agency's accounts.
    Admin,
}

impl Role {
    /// The role's name as stored and typed (`officer`, `clerk`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Clerk => "clerk",
            Role::Admin => "admin",
        }
    }

    /// May this role sign with the agency's keys?
    pub fn may_sign(self) -> bool {
        matches!(self, Role::Officer | Role::Admin)
    }
}

impl std::str::FromStr for Role {
    type Err = GatewayError;

    fn from_str(s: &str) -> Result<Self, GatewayError> {
        match s {
            "officer" => Ok(Role::Officer),
            "clerk" => Ok(Role::Clerk),
            "admin" => Ok(Role::Admin),
            other => Err(GatewayError::Invalid(format!(
                "role '{other}' is not one of officer, clerk, admin"
            ))),
        }
    }
}

/// An account as the console and the command line see it (never its password hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Officer {
    /// Login name.
    pub username: String,
    /// The agency the officer acts for.
    pub agency: String,
    /// Full name.
    pub name: String,
    /// Role in the agency.
    pub role: Role,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
}

impl Officer {
    /// The audit actor of this officer: the agency, and `officer:USERNAME` as client.
    pub fn actor(&self) -> Actor {
        Actor {
            agency: self.agency.clone(),
            client: format!("officer:{}", self.username),
        }
    }

    pub(super) fn from_row(row: &UserRow) -> Result<Self, GatewayError> {
        Ok(Self {
            username: row.username.clone(),
            agency: row.agency.clone(),
            name: row.name.clone(),
            role: row.role.parse().map_err(|_| {
                GatewayError::Io(format!("account '{}' has an unknown role", row.username))
            })?,
            disabled: row.disabled,
        })
    }
}

/// A new account.
#[derive(Debug)]
pub struct NewUser {
    /// Login name: 3-64 characters of `[A-Za-z0-9._-]`.
    pub username: String,
    /// The agency.
    pub agency: String,
    /// Full name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The password (hashed with argon2id; never stored or logged).
    pub password: Secret,
}

/// A session just opened: the token goes into the cookie and is never stored.
#[derive(Debug)]
pub struct LoggedIn {
    /// Who logged in.
    pub officer: Officer,
    /// The session token (cookie value); the database keeps its SHA-256.
    pub token: Secret,
    /// The session's CSRF token.
    pub csrf: String,
}

/// A valid session, as a request presents it.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// Whose session.
    pub officer: Officer,
    /// The CSRF token each form of this session must carry.
    pub csrf: String,
    /// SHA-256 of the session token (for log-out).
    token_sha256: String,
}

fn hash_password(password: &str) -> Result<String, crate::Error> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| crate::Error::Usage(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| crate::Error::Usage(format!("password hash: {e}")))
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash checked against when the user name is unknown, so that a wrong name takes as
/// long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password never used").unwrap_or_default())
}

fn check_username(username: &str) -> Result<(), GatewayError> {
    let ok = (3..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(GatewayError::Invalid(
            "a user name is 3-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'".into(),
        ))
    }
}

fn check_password(password: &Secret) -> Result<(), GatewayError> {
    if password.expose_secret().chars().count() < MIN_PASSWORD_CHARS {
        return Err(GatewayError::Invalid(format!(
            "a password has at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

impl Services {
    /// Adds an account (`signgate user add`).
    pub async fn add_user(&self, new: NewUser) -> Result<Officer, GatewayError> {
        check_username(&new.username)?;
        check_password(&new.password)?;
        if new.name.trim().is_empty() || new.agency.trim().is_empty() {
            return Err(GatewayError::Invalid(
                "an account needs a name and an agency".into(),
            ));
        }
        let password = new.password.expose_secret().to_string();
        let password_hash = blocking(move || hash_password(&password)).await?;
        let row = UserRow {
            username: new.username.clone(),
            agency: new.agency.clone(),
            name: new.name.clone(),
            role: new.role.as_str().into(),
            password_hash,
            disabled: false,
            created_at: clock::now_rfc3339(),
        };
        if !self.store().add_console_user(&row).await? {
            return Err(GatewayError::Invalid(format!(
                "user name '{}' is taken",
                new.username
            )));
        }
        self.audit(
            &Actor::admin(&new.agency),
            "user.add",
            json!({"username": new.username, "name": new.name, "role": new.role.as_str()}),
        )
        .await?;
        Officer::from_row(&row)
    }

    /// Every account (never password hashes).
    pub async fn list_users(&self) -> Result<Vec<Officer>, GatewayError> {
        self.store()
            .list_console_users()
            .await?
            .iter()
            .map(Officer::from_row)
            .collect()
    }

    pub(super) async fn user(&self, username: &str) -> Result<Officer, GatewayError> {
        let row = self
            .store()
            .console_user(username)
            .await?
            .ok_or(GatewayError::NotFound("user"))?;
        Officer::from_row(&row)
    }

    /// Disables an account; its sessions end at once.
    pub async fn disable_user(&self, username: &str) -> Result<Officer, GatewayError> {
        let officer = self.user(username).await?;
        self.store().disable_console_user(username).await?;
        self.audit(
            &Actor::admin(&officer.agency),
            "user.disable",
            json!({"username": username}),
        )
        .await?;
        Ok(officer)
    }

    /// Sets a new password; the account's sessions end at once.
    pub async fn reset_password(
        &self,
        username: &str,
        password: Secret,
    ) -> Result<Officer, GatewayError> {
        check_password(&password)?;
        let officer = self.user(username).await?;
        let password = password.expose_secret().to_string();
        let hash = blocking(move || hash_password(&password)).await?;
        self.store().set_console_password(username, &hash).await?;
        self.audit(
            &Actor::admin(&officer.agency),
            "user.reset_password",
            json!({"username": username}),
        )
        .await?;
        Ok(officer)
    }

    /// Checks a password and opens a session; `None` for a wrong name or password or a
    /// disabled account (the same answer for each). A failure on a known account is audited.
    pub async fn login(
        &self,
        username: &str,
        password: Secret,
    ) -> Result<Option<LoggedIn>, GatewayError> {
        let row = self.store().console_user(username).await?;
        let hash = row
            .as_ref()
            .map(|r| r.password_hash.clone())
            .unwrap_or_else(|| decoy_hash().to_string());
        let password = password.expose_secret().to_string();
        let matches = blocking(move || Ok(password_matches(&password, &hash))).await?;
        let Some(row) = row else { return Ok(None) };
        let officer = Officer::from_row(&row)?;
        if !matches || officer.disabled {
            self.audit(
                &officer.actor(),
                "console.login_failed",
                json!({"username": officer.username, "disabled": officer.disabled}),
            )
            .await?;
            return Ok(None);
        }
        self.open_session(officer, json!({})).await.map(Some)
    }

    /// Opens a session for `officer` and records the log-in (`console.login`, with `how`'s
    /// fields added).
    pub(super) async fn open_session(
        &self,
        officer: Officer,
        how: serde_json::Value,
    ) -> Result<LoggedIn, GatewayError> {
        let (token, token_sha256) = crate::ids::new_token();
        let csrf = crate::ids::random_id("csrf_");
        let now = OffsetDateTime::now_utc();
        self.store()
            .add_console_session(&SessionRow {
                token_sha256,
                username: officer.username.clone(),
                csrf: csrf.clone(),
                created_at: clock::rfc3339(now),
                expires_at: clock::rfc3339(now + SESSION_LIFETIME),
            })
            .await?;
        let mut subject = json!({"username": officer.username, "name": officer.name});
        if let (Some(s), Some(extra)) = (subject.as_object_mut(), how.as_object()) {
            s.extend(extra.clone());
        }
        self.audit(&officer.actor(), "console.login", subject)
            .await?;
        Ok(LoggedIn {
            officer,
            token: Secret::from(token),
            csrf,
        })
    }

    /// The session of cookie value `token`, if it exists, has not expired and its account
    /// is enabled.
    pub async fn console_session(
        &self,
        token: &str,
    ) -> Result<Option<ConsoleSession>, GatewayError> {
        let token_sha256 = sha256_hex(token.as_bytes());
        let Some((session, user)) = self.store().console_session(&token_sha256).await? else {
            return Ok(None);
        };
        if user.disabled || session.expires_at <= clock::now_rfc3339() {
            return Ok(None);
        }
        Ok(Some(ConsoleSession {
            officer: Officer::from_row(&user)?,
            csrf: session.csrf,
            token_sha256: session.token_sha256,
        }))
    }

    /// Ends `session` (and sweeps expired ones).
    pub async fn logout(&self, session: &ConsoleSession) -> Result<(), GatewayError> {
        self.store()
            .end_console_session(&session.token_sha256, &clock::now_rfc3339())
            .await?;
        self.audit(
            &session.officer.actor(),
            "console.logout",
            json!({"username": session.officer.username}),
        )
        .await?;
        Ok(())
    }

    /// The keys of the officer's agency (the stamp desk's choice).
    pub async fn officer_keys(&self, officer: &Officer) -> Result<Vec<KeyRecord>, GatewayError> {
        Ok(self
            .store()
            .list_keys()
            .await?
            .into_iter()
            .filter(|k| k.agency == officer.agency)
            .collect())
    }

    /// Signs `document` for `officer` with one of the agency's keys, recorded under the
    /// officer's name. Another agency's key is unknown; a clerk may not sign.
    pub async fn officer_sign(
        &self,
        officer: &Officer,
        spec: SignSpec,
        document: Bytes,
    ) -> Result<Signed, GatewayError> {
        self.officer_stamp(officer, spec, None, document).await
    }

    /// [`Services::officer_sign`] with the visible mark the officer picked at the stamp desk
    /// (`None`: the one `spec` implies).
    pub async fn officer_stamp(
        &self,
        officer: &Officer,
        spec: SignSpec,
        mark: Option<Mark>,
        document: Bytes,
    ) -> Result<Signed, GatewayError> {
        if !officer.role.may_sign() {
            return Err(GatewayError::Invalid(format!(
                "a {} may not sign",
                officer.role.as_str()
            )));
        }
        let record = match self.store().key(&spec.key).await? {
            Some(r) if r.agency == officer.agency => r,
            _ => return Err(GatewayError::UnknownKey(spec.key)),
        };
        self.sign_marked(
            &officer.actor(),
            record,
            spec,
            mark,
            Document::Memory(document),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_its_own_hash_only() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse batterY", &hash));
        assert!(!password_matches("correct horse battery", "not a hash"));
    }

    #[test]
    fn user_names_and_roles_are_checked() {
        assert!(check_username("officer.1").is_ok());
        assert!(check_username("ab").is_err());
        assert!(check_username("a b c").is_err());
        assert_eq!("clerk".parse::<Role>().ok(), Some(Role::Clerk));
        assert!("root".parse::<Role>().is_err());
        assert!(!Role::Clerk.may_sign() && Role::Officer.may_sign());
    }
}
