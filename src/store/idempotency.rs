//! Idempotency keys of `POST /v1/submissions` and `POST /v1/batches` (IETF
//! draft-ietf-httpapi-idempotency-key-header), per client: claimed when a request arrives,
//! completed by the audit writer in the transaction that stores the filing (see
//! [`Completion`]), released when the request fails. Times are RFC 3339 UTC text to the
//! second, so they compare as text.

use sqlx::Row;

use super::{with_pool, Store, StoreError};

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The key is now held by this request (new, expired, or abandoned by a request that
    /// started before the stale time).
    Fresh,
    /// Another request holds the key and has not finished.
    InProgress,
    /// A request with this key finished: its fingerprint and the answer to replay.
    Done {
        /// SHA-256 (hex) of the first request (endpoint, query and body digest).
        fingerprint: String,
        /// The first answer (JSON text).
        response: String,
    },
}

/// Completes a claimed key: written by the audit writer in the same transaction as the filing
/// and its audit record, so a stored filing always has its key's answer and vice versa.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The client.
    pub client_id: String,
    /// The `Idempotency-Key`.
    pub key: String,
    /// The claiming request's token.
    pub owner: String,
    /// The request's fingerprint.
    pub fingerprint: String,
    /// The answer to replay.
    pub response: String,
    /// When (RFC 3339) the completion was made.
    pub at: String,
    /// When (RFC 3339) the key expires.
    pub expires_at: String,
}

/// Writes the `done` row of a [`Completion`] unless another request took the key over
/// meanwhile. `$1..$8`: client, key, owner, fingerprint, response, at, expires_at.
pub(crate) const COMPLETE: &str = "INSERT INTO idempotency (client_id, idem_key, owner, state, fingerprint, response, started_at, expires_at) \
     VALUES ($1, $2, $3, 'done', $4, $5, $6, $7) \
     ON CONFLICT (client_id, idem_key) DO UPDATE SET state = 'done', fingerprint = excluded.fingerprint, \
     response = excluded.response, expires_at = excluded.expires_at WHERE idempotency.owner = excluded.owner";

impl Store {
    /// Claims `key` of `client_id` for the request `owner` at `now` (expiring at
    /// `expires_at` unless completed); a row that expired, or an `in_progress` one started
    /// before `stale_before` (its request was cut off by a crash or the request timeout), is
    /// taken over.
    pub async fn claim_idempotency_key(
        &self,
        client_id: &str,
        key: &str,
        owner: &str,
        now: &str,
        stale_before: &str,
        expires_at: &str,
    ) -> Result<Claimed, StoreError> {
        let claim = "INSERT INTO idempotency (client_id, idem_key, owner, state, started_at, expires_at) \
                     VALUES ($1, $2, $3, 'in_progress', $4, $5) \
                     ON CONFLICT (client_id, idem_key) DO UPDATE SET owner = excluded.owner, state = 'in_progress', \
                     fingerprint = NULL, response = NULL, started_at = excluded.started_at, expires_at = excluded.expires_at \
                     WHERE idempotency.expires_at <= $6 OR (idempotency.state = 'in_progress' AND idempotency.started_at < $7)";
        let read = "SELECT state, fingerprint, response FROM idempotency WHERE client_id = $1 AND idem_key = $2";
        // A row deleted between the two statements (released by its request) is claimed again.
        for _ in 0..3 {
            let n = with_pool!(self, p => sqlx::query(claim).bind(client_id).bind(key).bind(owner)
                .bind(now).bind(expires_at).bind(now).bind(stale_before)
                .execute(p).await?.rows_affected());
            if n > 0 {
                return Ok(Claimed::Fresh);
            }
            let row = with_pool!(self, p => sqlx::query(read).bind(client_id).bind(key).fetch_optional(p).await?
                .map(|r| (r.get::<String, _>(0), r.get::<Option<String>, _>(1), r.get::<Option<String>, _>(2))));
            match row {
                Some((state, Some(fingerprint), Some(response))) if state == "done" => {
                    return Ok(Claimed::Done {
                        fingerprint,
                        response,
                    })
                }
                Some(_) => return Ok(Claimed::InProgress),
                None => continue,
            }
        }
        Ok(Claimed::InProgress)
    }

    /// Releases `owner`'s claim on `key` of `client_id` (its request failed): a retry may
    /// proceed. A completed key stays.
    pub async fn release_idempotency_key(
        &self,
        client_id: &str,
        key: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let sql = "DELETE FROM idempotency WHERE client_id = $1 AND idem_key = $2 AND owner = $3 AND state = 'in_progress'";
        with_pool!(self, p => { sqlx::query(sql).bind(client_id).bind(key).bind(owner).execute(p).await?; });
        Ok(())
    }

    /// Deletes keys that expired before `now`, and with `in_progress` every unfinished claim
    /// (at start-up of a gateway that is alone on its database); returns how many.
    pub async fn purge_idempotency_keys(
        &self,
        now: &str,
        in_progress: bool,
    ) -> Result<u64, StoreError> {
        let sql =
            "DELETE FROM idempotency WHERE expires_at <= $1 OR ($2 AND state = 'in_progress')";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(now).bind(in_progress).execute(p).await?.rows_affected()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn claims_conflict_complete_expire_and_go_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        block_on(async {
            let store = Store::open(&Store::sqlite_url(dir.path()))
                .await
                .expect("open");
            let t0 = "2026-01-01T00:00:00Z";
            let claim = |owner: &'static str, now: &'static str, stale: &'static str| {
                let store = store.clone();
                async move {
                    store
                        .claim_idempotency_key("c1", "k", owner, now, stale, "2026-01-02T00:00:00Z")
                        .await
                        .expect("claim")
                }
            };
            assert_eq!(claim("a", t0, "2025-12-31T23:55:00Z").await, Claimed::Fresh);
            // Held: a second request is in progress; another client's key is its own.
            assert_eq!(
                claim("b", t0, "2025-12-31T23:55:00Z").await,
                Claimed::InProgress
            );
            assert_eq!(
                store
                    .claim_idempotency_key("c2", "k", "x", t0, t0, "2026-01-02T00:00:00Z")
                    .await
                    .expect("claim"),
                Claimed::Fresh
            );
            // Released: claimable again.
            store
                .release_idempotency_key("c1", "k", "a")
                .await
                .expect("release");
            assert_eq!(claim("b", t0, "2025-12-31T23:55:00Z").await, Claimed::Fresh);
            // Abandoned (started before the stale time): taken over.
            assert_eq!(claim("c", t0, "2026-01-01T00:00:01Z").await, Claimed::Fresh);
            // Completed by its owner: replayed until it expires, then claimable.
            if let Store::Sqlite(pool) = &store {
                sqlx::query(COMPLETE)
                    .bind("c1")
                    .bind("k")
                    .bind("c")
                    .bind("fp")
                    .bind("{}")
                    .bind(t0)
                    .bind("2026-01-01T01:00:00Z")
                    .execute(pool)
                    .await
                    .expect("complete");
            }
            let done = Claimed::Done {
                fingerprint: "fp".into(),
                response: "{}".into(),
            };
            assert_eq!(claim("d", "2026-01-01T00:59:59Z", t0).await, done);
            assert_eq!(claim("d", "2026-01-01T01:00:00Z", t0).await, Claimed::Fresh);
            assert_eq!(
                store
                    .purge_idempotency_keys("2026-01-01T00:00:00Z", true)
                    .await
                    .expect("purge"),
                2
            );
        });
    }
}
