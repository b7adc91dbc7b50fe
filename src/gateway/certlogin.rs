//! Console log-in by client certificate: an administrator binds a certificate (by the
//! SHA-256 fingerprint of its DER encoding) to a console account, and an officer whose TLS
//! connection to the gateway presented that certificate (verified by the TLS layer against
//! `[tls] client_ca`) gets a session without a password. A revoked binding, an unbound
//! certificate or a disabled account logs no one in. Binding, revoking and each log-in are in
//! the audit chain.

use serde_json::json;

use super::accounts::{LoggedIn, Officer};
use super::admin::certificate_fingerprint;
use super::{Actor, GatewayError, Services};
use crate::clock;

impl Services {
    /// Binds the PEM certificate `pem` to account `username`; returns its
    /// fingerprint. A certificate bound to another account is refused.
    pub async fn bind_user_certificate(
        &self,
        username: &str,
        pem: &[u8],
    ) -> Result<String, GatewayError> {
        let officer = self.user(username).await?;
        let fingerprint = certificate_fingerprint(pem)?;
        if !self
            .store()
            .bind_console_cert(&fingerprint, username, &clock::now_rfc3339())
            .await?
        {
            return Err(GatewayError::Invalid(
                "this certificate is bound to another account".into(),
            ));
        }
        self.audit(
            &Actor::admin(&officer.agency),
            "user.bind_certificate",
            json!({"username": username, "cert_fingerprint": fingerprint}),
        )
        .await?;
        Ok(fingerprint)
    }

    /// Revokes the binding of certificate `pem` to account `username`: it logs no one in
    /// from then on (sessions it opened end when they expire or at log-out).
    pub async fn revoke_user_certificate(
        &self,
        username: &str,
        pem: &[u8],
    ) -> Result<String, GatewayError> {
        let officer = self.user(username).await?;
        let fingerprint = certificate_fingerprint(pem)?;
        if !self
            .store()
            .revoke_console_cert(&fingerprint, username, &clock::now_rfc3339())
            .await?
        {
            return Err(GatewayError::NotFound("certificate binding"));
        }
        self.audit(
            &Actor::admin(&officer.agency),
            "user.revoke_certificate",
            json!({"username": username, "cert_fingerprint": fingerprint}),
        )
        .await?;
        Ok(fingerprint)
    }

    /// Opens a session for the account the verified client certificate `fingerprint` is
    /// bound to; `None` when it is bound to none, its binding is revoked, or the account is
    /// disabled.
    pub async fn login_with_certificate(
        &self,
        fingerprint: &str,
    ) -> Result<Option<LoggedIn>, GatewayError> {
        let Some(row) = self.store().console_user_by_cert(fingerprint).await? else {
            return Ok(None);
        };
        let officer = Officer::from_row(&row)?;
        if officer.disabled {
            return Ok(None);
        }
        self.open_session(
            officer,
            json!({"method": "certificate", "cert_fingerprint": fingerprint}),
        )
        .await
        .map(Some)
    }
}
