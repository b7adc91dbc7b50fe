//! Administration: clients, keys and grants. Every change is recorded in the audit chain
//! through the same [`super::AuditLog`] as the HTTP requests.

use std::path::Path;

use serde_json::json;

use super::{Actor, GatewayError, Services};
use crate::clock;
use crate::store::{Client, KeyRecord};

/// A new client: who it is and which keys it may sign with.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// The client's agency.
    pub agency: String,
    /// A human name for the calling system.
    pub name: String,
    /// Keys granted (all of the same agency).
    pub keys: Vec<String>,
    /// SHA-256 of the client's TLS certificate when it authenticates by mutual TLS.
    pub cert_fingerprint: Option<String>,
}

/// A client just created and its bearer token (shown once; unusable for a certificate client).
#[derive(Debug)]
pub struct CreatedClient {
    /// The stored client.
    pub client: Client,
    /// The token; the gateway keeps only its SHA-256.
    pub token: String,
}

/// A key reference to register (or update).
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Name used in `?key=`.
    pub name: String,
    /// Owning agency.
    pub agency: String,
    /// PKCS#12 file.
    pub p12: std::path::PathBuf,
    /// Seal image (PNG).
    pub seal: Option<std::path::PathBuf>,
    /// The seal's real diameter in millimetres.
    pub seal_size_mm: f64,
}

impl Services {
    /// Adds a client and grants it its keys.
    pub async fn add_client(&self, new: NewClient) -> Result<CreatedClient, GatewayError> {
        for k in &new.keys {
            match self.store().key(k).await? {
                Some(r) if r.agency == new.agency => {}
                Some(_) => return Err(GatewayError::ForeignKey(k.clone())),
                None => return Err(GatewayError::UnknownKey(k.clone())),
            }
        }
        let (token, hash) = crate::ids::new_token();
        let client = Client {
            id: crate::ids::random_id("cl_"),
            agency: new.agency.clone(),
            name: new.name.clone(),
            revoked: false,
            created_at: clock::now_rfc3339(),
            token_sha256: hash,
            cert_fingerprint: new.cert_fingerprint,
        };
        self.store().add_client(&client).await?;
        for k in &new.keys {
            self.store().grant(&client.id, k).await?;
        }
        self.audit(
            &Actor::admin(&new.agency),
            "client.add",
            json!({"id": client.id, "name": new.name, "keys": new.keys, "cert_fingerprint": client.cert_fingerprint}),
        )
        .await?;
        Ok(CreatedClient { client, token })
    }

    /// Every client (never tokens: only their hashes are stored).
    pub async fn list_clients(&self) -> Result<Vec<Client>, GatewayError> {
        Ok(self.store().list_clients().await?)
    }

    /// Revokes client `id`; its token stops working at once.
    pub async fn revoke_client(&self, id: &str) -> Result<Client, GatewayError> {
        let client = self
            .store()
            .list_clients()
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| GatewayError::UnknownClient(id.into()))?;
        self.store().revoke_client(id).await?;
        self.audit(
            &Actor::admin(&client.agency),
            "client.revoke",
            json!({"id": id}),
        )
        .await?;
        Ok(client)
    }

    /// Registers (or updates) a key reference and binds its seal image.
    pub async fn add_key(&self, new: NewKey) -> Result<KeyRecord, GatewayError> {
        for path in std::iter::once(&new.p12).chain(new.seal.as_ref()) {
            if !path.is_file() {
                return Err(GatewayError::MissingFile(path.display().to_string()));
            }
        }
        if !(new.seal_size_mm > 0.0 && new.seal_size_mm <= 100.0) {
            return Err(GatewayError::Config(
                "the seal size must be between 0 and 100 mm".into(),
            ));
        }
        let record = KeyRecord {
            name: new.name.clone(),
            agency: new.agency.clone(),
            p12_path: absolute(&new.p12),
            seal_path: new.seal.as_deref().map(absolute),
            seal_size_mm: new.seal.as_ref().map(|_| new.seal_size_mm),
        };
        self.store()
            .upsert_key(&record, &clock::now_rfc3339())
            .await?;
        self.audit(
            &Actor::admin(&new.agency),
            "key.add",
            json!({"name": new.name, "p12": record.p12_path}),
        )
        .await?;
        Ok(record)
    }

    /// Every registered key.
    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>, GatewayError> {
        Ok(self.store().list_keys().await?)
    }

    /// In demo mode on an empty database: the demo client, granted the demo key.
    pub async fn demo_client(&self) -> Result<Option<CreatedClient>, GatewayError> {
        if self.store().count_clients().await? > 0 {
            return Ok(None);
        }
        self.add_client(NewClient {
            agency: super::demo::AGENCY.into(),
            name: "demo client".into(),
            keys: vec![super::demo::KEY_NAME.into()],
            cert_fingerprint: None,
        })
        .await
        .map(Some)
    }
}

/// The SHA-256 fingerprint (hex) of the first certificate of `pem`, as the TLS layer computes
/// it for a client certificate (`client add --cert`).
pub fn certificate_fingerprint(pem: &[u8]) -> Result<String, GatewayError> {
    let cert = openssl::x509::X509::from_pem(pem)
        .map_err(|_| GatewayError::Invalid("not a PEM certificate".into()))?;
    let der = cert
        .to_der()
        .map_err(|e| GatewayError::Invalid(format!("certificate: {e}")))?;
    Ok(crate::tls::PeerCertificate(std::sync::Arc::new(der)).fingerprint())
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
