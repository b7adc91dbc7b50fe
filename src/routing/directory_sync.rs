//! Signed directory updates between nodes (issue 15, item 1): directory changes reach every
//! node instead of each operator recording them by hand.
//!
//! - The directory authority (`directory_authority = true`, the province node) turns the
//!   changes recorded in its directory since its last update into a new update
//!   ([`crate::directory::updates::Update`], versions = its change ids), signs it with its
//!   `signing_key` ([`sign`]) and keeps it.
//! - Every node sends the updates it holds to its peers over the node-to-node mutual TLS
//!   (`POST /v1/route/directory`), starting after the version each peer last reported; the
//!   authority to all of them, any other node to the peers below it (not its default route).
//! - A node with `directory_authority_cert` verifies an update against that certificate
//!   ([`verify`]: unsigned, wrongly signed or altered updates are refused), applies its changes
//!   after the version it is at (idempotently: an update at or below it applies nothing; one
//!   starting after it applies nothing either and the sender goes back to the version it
//!   answers), records the new version, keeps the signed update to pass on, and answers its
//!   version. Without that setting a node takes no updates.
//!
//! The signed form is JSON `{"payload": base64(update JSON), "signature": base64}`: RSA PKCS#1
//! v1.5 or ECDSA over SHA-256 of the payload bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use serde::{Deserialize, Serialize};

use super::node::Node;
use super::RoutingError;
use crate::clock::now_rfc3339;
use crate::directory::updates::{Update, UPDATE_TYPE};
use crate::directory::Directory;
use crate::keys::KeySource;
use crate::pki::alg::{DigestAlgorithm, RsaPadding, SignatureScheme};
use crate::store::directory::UpdateRow;

/// The peer endpoint, below the peer's base URL.
pub const PATH: &str = "v1/route/directory";

/// Largest signed update accepted.
pub const MAX_UPDATE_BYTES: usize = 16 * 1024 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An update as it travels.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signed {
    payload: String,
    signature: String,
}

/// What a node answers an update with: the version it is at now and how many changes the
/// update applied there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The authority's version this node's directory is at.
    pub version: i64,
    /// Changes applied by this update (0: already there, or it starts after this version).
    pub applied: usize,
}

fn invalid(m: impl std::fmt::Display) -> RoutingError {
    RoutingError::Invalid(format!("directory update: {m}"))
}

/// Signs `update` with `key`.
pub fn sign(key: &dyn KeySource, update: &Update) -> Result<Vec<u8>, RoutingError> {
    let payload = serde_json::to_vec(update).map_err(|e| RoutingError::Sign(e.to_string()))?;
    let scheme =
        SignatureScheme::for_key(key.algorithm(), DigestAlgorithm::Sha256, RsaPadding::Pkcs1);
    let signature = key
        .sign_message(scheme, &payload)
        .map_err(|e| RoutingError::Sign(e.to_string()))?;
    serde_json::to_vec(&Signed {
        payload: B64.encode(payload),
        signature: B64.encode(signature),
    })
    .map_err(|e| RoutingError::Sign(e.to_string()))
}

/// Verifies `bytes` against the authority's certificate and returns the update.
pub fn verify(authority: &X509, bytes: &[u8]) -> Result<Update, RoutingError> {
    if bytes.len() > MAX_UPDATE_BYTES {
        return Err(invalid("too large"));
    }
    let signed: Signed =
        serde_json::from_slice(bytes).map_err(|_| invalid("not a signed update"))?;
    let payload = B64
        .decode(&signed.payload)
        .map_err(|_| invalid("payload is not base64"))?;
    let signature = B64
        .decode(&signed.signature)
        .map_err(|_| invalid("signature is not base64"))?;
    let key = authority
        .public_key()
        .map_err(|e| invalid(format!("authority certificate: {e}")))?;
    let ok = openssl::sign::Verifier::new(MessageDigest::sha256(), &key)
        .and_then(|mut v| {
            v.update(&payload)?;
            v.verify(&signature)
        })
        .unwrap_or(false);
    if !ok {
        return Err(invalid(
            "the signature does not verify against the directory authority's certificate",
        ));
    }
    let update: Update =
        serde_json::from_slice(&payload).map_err(|e| invalid(format!("payload: {e}")))?;
    update
        .check()
        .map_err(|e| RoutingError::Invalid(e.to_string()))?;
    Ok(update)
}

/// Longest wait before a peer that failed is sent updates again.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Node {
    fn directory(&self) -> Directory {
        Directory::new(self.store().clone())
    }

    /// At the directory authority: makes, signs and keeps an update of the changes recorded
    /// since the last one; returns its version, or `None` when there is nothing new.
    pub async fn publish_directory(&self) -> Result<Option<i64>, RoutingError> {
        if !self.config.directory_authority {
            return Ok(None);
        }
        let store = self.store();
        let last = store.directory_last_update().await?;
        let directory = self.directory();
        let changes = directory.changes_after(last).await.map_err(invalid)?;
        let Some(to) = changes.last().map(|c| c.version) else {
            return Ok(None);
        };
        let update = Update {
            kind: UPDATE_TYPE.into(),
            from_version: last,
            to_version: to,
            issued_at: now_rfc3339(),
            changes,
        };
        let signer = self.signer().clone();
        let bytes = crate::blocking::run(move || sign(signer.as_ref(), &update)).await?;
        store
            .directory_update_add(
                &UpdateRow {
                    from_version: last,
                    to_version: to,
                    bytes,
                },
                &now_rfc3339(),
            )
            .await?;
        tracing::info!(
            from_version = last,
            to_version = to,
            "directory: signed update issued"
        );
        Ok(Some(to))
    }

    /// Applies a signed update from peer `from_node` (see the module documentation).
    pub async fn receive_directory_update(
        &self,
        from_node: &str,
        bytes: Vec<u8>,
    ) -> Result<Applied, RoutingError> {
        let Some(authority) = self.authority_cert.clone() else {
            return Err(invalid(format!(
                "node {} takes no directory updates (routing.directory_authority_cert)",
                self.config.node_id
            )));
        };
        let signed = bytes.clone();
        let update = crate::blocking::run(move || verify(&authority, &signed)).await?;
        let store = self.store();
        let at = store.directory_version("applied").await?;
        if update.to_version <= at || update.from_version > at {
            tracing::info!(peer = %from_node, at, from_version = update.from_version, to_version = update.to_version,
                "directory: update not applied (already here, or it starts after this version)");
            return Ok(Applied {
                version: at,
                applied: 0,
            });
        }
        let directory = self.directory();
        let mut applied = 0;
        for c in update.changes.iter().filter(|c| c.version > at) {
            if directory
                .apply_change(c)
                .await
                .map_err(|e| invalid(format!("change {}: {e}", c.version)))?
            {
                applied += 1;
            }
        }
        store
            .directory_update_add(
                &UpdateRow {
                    from_version: update.from_version,
                    to_version: update.to_version,
                    bytes,
                },
                &now_rfc3339(),
            )
            .await?;
        store
            .directory_set_version("applied", update.to_version)
            .await?;
        tracing::info!(peer = %from_node, from_version = at, to_version = update.to_version, applied,
            "directory: signed update applied");
        Ok(Applied {
            version: update.to_version,
            applied,
        })
    }

    /// Sends the updates held here to the peers that lack them (the authority: every peer;
    /// another node: every peer but its default route); returns how many were accepted.
    pub async fn push_directory(&self) -> Result<usize, RoutingError> {
        let store = self.store();
        if store.directory_last_update().await? == 0 {
            return Ok(0);
        }
        let mut sent = 0;
        for peer in &self.config.peers {
            if !self.config.directory_authority && peer.serves.iter().any(|s| s == "*") {
                continue;
            }
            let due = self
                .directory_retry
                .lock()
                .map(|m| {
                    m.get(&peer.node_id)
                        .map_or(true, |(_, at)| *at <= Instant::now())
                })
                .unwrap_or(true);
            if !due {
                continue;
            }
            let key = format!("peer:{}", peer.node_id);
            let mut acked = store.directory_version(&key).await?;
            for u in store.directory_updates_after(acked).await? {
                let url = format!("{}{PATH}", peer.url);
                let answer = self
                    .peers()
                    .post(
                        &url,
                        &peer.fingerprint,
                        "application/json",
                        u.bytes,
                        self.config.delivery.peer_timeout,
                    )
                    .await;
                let result = match answer {
                    Ok(a) if a.status == 200 => serde_json::from_slice::<Applied>(&a.body)
                        .map_err(|e| format!("answer: {e}")),
                    Ok(a) => Err(format!(
                        "HTTP {}: {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    )),
                    Err(e) => Err(e.to_string()),
                };
                match result {
                    Ok(applied) => {
                        self.directory_retry
                            .lock()
                            .map(|mut m| m.remove(&peer.node_id))
                            .ok();
                        store.directory_set_version(&key, applied.version).await?;
                        sent += 1;
                        if applied.version < u.to_version {
                            break; // it is behind this update: start again from its version
                        }
                        acked = applied.version;
                    }
                    Err(error) => {
                        let failures = self
                            .directory_retry
                            .lock()
                            .map(|mut m| {
                                let entry =
                                    m.entry(peer.node_id.clone()).or_insert((0, Instant::now()));
                                entry.0 += 1;
                                let wait = super::backoff::delay(
                                    self.config.delivery.backoff_initial,
                                    MAX_BACKOFF,
                                    entry.0,
                                    rand::random::<f64>(),
                                );
                                entry.1 = Instant::now() + wait;
                                entry.0
                            })
                            .unwrap_or(1);
                        tracing::warn!(peer = %peer.node_id, version = acked, failures, error = %error,
                            "directory: sending an update failed, will retry");
                        break;
                    }
                }
            }
        }
        Ok(sent)
    }

    /// One round of directory synchronisation (publish, then push); errors are logged.
    pub async fn sync_directory(self: &Arc<Self>) -> usize {
        if let Err(e) = self.publish_directory().await {
            tracing::warn!(error = %e, "directory: issuing an update failed");
        }
        match self.push_directory().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "directory: sending updates failed");
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::updates::Change;

    fn key() -> crate::keys::Pkcs12Key {
        let p12 =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/demo/agency-signer.p12");
        crate::keys::Pkcs12Key::open(&p12, "demo").expect("demo key")
    }

    fn update() -> Update {
        Update {
            kind: UPDATE_TYPE.into(),
            from_version: 0,
            to_version: 1,
            issued_at: "2026-12-03T00:00:00Z".into(),
            changes: vec![Change {
                version: 1,
                structure: "2025".into(),
                kind: "dissolve".into(),
                gso_code: "00001".into(),
                detail: "{}".into(),
                effective: "2025-07-01".into(),
            }],
        }
    }

    #[test]
    fn signed_updates_verify_and_tampered_ones_do_not() {
        let key = key();
        let signed = sign(&key, &update()).expect("sign");
        assert_eq!(
            verify(key.certificate(), &signed).expect("verify"),
            update()
        );
        let mut doc: serde_json::Value = serde_json::from_slice(&signed).unwrap();
        let other = B64.encode(
            serde_json::to_vec(&Update {
                to_version: 2,
                ..update()
            })
            .unwrap(),
        );
        doc["payload"] = other.into();
        assert!(verify(key.certificate(), &serde_json::to_vec(&doc).unwrap()).is_err());
        assert!(verify(key.certificate(), br#"{"payload":"e30=","signature":""}"#).is_err());
        assert!(verify(key.certificate(), b"{}").is_err());
        let stranger = crate::keys::Pkcs12Key::open(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/demo/official.p12"),
            "demo",
        )
        .expect("another key");
        assert!(verify(stranger.certificate(), &signed).is_err());
    }
}
