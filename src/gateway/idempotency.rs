//! Idempotency keys of filings and batches (IETF draft-ietf-httpapi-idempotency-key-header;
//! CONTRACTS §4): scoped per client, kept for `idempotency_ttl` (default 24 h) after the
//! answer. A request is the same as the first when its [`RequestDigest`] (what it asks for,
//! its query and the digests of its body parts) is; only the same request replays the first
//! answer, another one is refused ([`GatewayError::IdempotencyKeyReused`]), and a repeat while
//! the first is still in flight is refused too ([`GatewayError::IdempotencyInProgress`]).
//!
//! The key is claimed when the request arrives (before its body is read, so a slow upload
//! holds it), completed in the transaction that stores the filing and its audit record
//! ([`crate::store::idempotency::Completion`]), and released when the request fails or is cut
//! off. A claim left by a crash is taken over once the request timeout has passed (at once
//! on SQLite when the gateway starts alone on its data folder: it clears claims then).

use time::OffsetDateTime;

use super::{GatewayError, Services};
use crate::clock::rfc3339;
use crate::pki::alg::{DigestAlgorithm, Hasher};
use crate::store::idempotency::{Claimed, Completion};
use crate::store::{Client, Store};

/// The default of `idempotency_ttl_hours`.
pub const DEFAULT_TTL_HOURS: u64 = 24;

/// What a request with a key asks for: a key used for one cannot be reused for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A filing (`POST /v1/submissions`).
    Submission,
    /// A batch (`POST /v1/batches`).
    Batch,
}

/// The fingerprint of a request: SHA-256 over its operation, its query and, per body part in
/// order, the part's name, file name and the SHA-256 of its bytes. A multipart body sent again
/// with another boundary is the same request.
pub struct RequestDigest(Hasher);

impl RequestDigest {
    /// Starts the fingerprint of an `operation` request with query `query` (empty for none).
    pub fn new(operation: Operation, query: &str) -> Self {
        let mut h = DigestAlgorithm::Sha256.hasher();
        let name = match operation {
            Operation::Submission => "submission",
            Operation::Batch => "batch",
        };
        h.update(format!("{name}\n{query}\n").as_bytes());
        Self(h)
    }

    /// Adds a body part: its name, its file name, and the SHA-256 (hex) of its bytes.
    pub fn part(&mut self, name: &str, file_name: Option<&str>, sha256_hex: &str) {
        let line = format!("{name}\t{}\t{sha256_hex}\n", file_name.unwrap_or_default());
        self.0.update(line.as_bytes());
    }

    /// The fingerprint, hex.
    pub fn finish(self) -> String {
        hex::encode(self.0.finish())
    }
}

/// An `Idempotency-Key` as found when the request arrived.
pub enum Claim {
    /// This request holds the key now.
    Fresh(Reservation),
    /// A request with this key was answered: its fingerprint and answer.
    Completed {
        /// The first request's fingerprint.
        fingerprint: String,
        /// The first answer (JSON text).
        response: String,
    },
}

/// What to do once the request's fingerprint is known.
pub enum Checked {
    /// Do the work; complete the reservation (if any) with the answer.
    Proceed(Option<Reservation>),
    /// The same request was answered before: replay its answer (JSON text).
    Replay(String),
}

impl Claim {
    /// Compares the request `fingerprint` with the first request's, for a completed key.
    pub fn check(claim: Option<Claim>, fingerprint: &str) -> Result<Checked, GatewayError> {
        match claim {
            None => Ok(Checked::Proceed(None)),
            Some(Claim::Fresh(r)) => Ok(Checked::Proceed(Some(r))),
            Some(Claim::Completed {
                fingerprint: first,
                response,
            }) => {
                if first == fingerprint {
                    Ok(Checked::Replay(response))
                } else {
                    Err(GatewayError::IdempotencyKeyReused)
                }
            }
        }
    }
}

/// A claimed key: completed with the answer in the filing's transaction
/// ([`Reservation::completion`]), else released when dropped.
pub struct Reservation {
    store: Store,
    client_id: String,
    key: String,
    owner: String,
    ttl: std::time::Duration,
    settled: bool,
}

impl Reservation {
    /// The completion to commit with the filing: `response` replays for requests with
    /// `fingerprint` until the key expires.
    pub fn completion(&self, fingerprint: &str, response: &str) -> Completion {
        let now = OffsetDateTime::now_utc();
        Completion {
            client_id: self.client_id.clone(),
            key: self.key.clone(),
            owner: self.owner.clone(),
            fingerprint: fingerprint.to_string(),
            response: response.to_string(),
            at: rfc3339(now),
            expires_at: rfc3339(now + self.ttl),
        }
    }

    /// The completion was committed: nothing to release.
    pub fn committed(mut self) {
        self.settled = true;
    }

    /// The request failed: a retry may claim the key at once.
    pub async fn release(mut self) {
        self.settled = true;
        if let Err(e) = self
            .store
            .release_idempotency_key(&self.client_id, &self.key, &self.owner)
            .await
        {
            tracing::warn!(error = %e, "idempotency key not released; it is taken over after the request timeout");
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Cut off (client gone, request timeout): release in the background.
        let (store, client, key, owner) = (
            self.store.clone(),
            self.client_id.clone(),
            self.key.clone(),
            self.owner.clone(),
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = store.release_idempotency_key(&client, &key, &owner).await;
            });
        }
    }
}

impl Services {
    /// Claims `caller`'s `key` (if the request has one) as the request arrives: a fresh
    /// reservation, the first answer to compare with, or
    /// [`GatewayError::IdempotencyInProgress`].
    pub async fn claim_idempotency_key(
        &self,
        caller: &Client,
        key: Option<String>,
    ) -> Result<Option<Claim>, GatewayError> {
        let Some(key) = key else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        let ttl = self.settings().idempotency_ttl;
        let owner = crate::ids::random_id("idem_");
        let claimed = self
            .store()
            .claim_idempotency_key(
                &caller.id,
                &key,
                &owner,
                &rfc3339(now),
                &rfc3339(now - self.settings().request_timeout),
                &rfc3339(now + ttl),
            )
            .await?;
        match claimed {
            Claimed::Fresh => Ok(Some(Claim::Fresh(Reservation {
                store: self.store().clone(),
                client_id: caller.id.clone(),
                key,
                owner,
                ttl,
                settled: false,
            }))),
            Claimed::InProgress => Err(GatewayError::IdempotencyInProgress),
            Claimed::Done {
                fingerprint,
                response,
            } => Ok(Some(Claim::Completed {
                fingerprint,
                response,
            })),
        }
    }

    /// Deletes expired idempotency keys (and, `alone` on SQLite, i.e. at start-up with no
    /// other gateway on the data folder and its database, the claims a crash left); returns
    /// how many.
    pub async fn purge_idempotency_keys(&self, alone: bool) -> Result<u64, GatewayError> {
        let now = crate::clock::now_rfc3339();
        let in_progress = alone && self.store().is_sqlite();
        Ok(self
            .store()
            .purge_idempotency_keys(&now, in_progress)
            .await?)
    }
}
