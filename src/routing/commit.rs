//! Group commit of acceptances: concurrent receipts — and the outbox worker's item ends and
//! received status messages, written the same way — queue what they write, and whichever
//! caller gets the writer first commits everything queued in one transaction (one fsync); an
//! idempotency race (or a lost lease, a status already here) rolls back only its own rows.
//! Every caller returns only after the transaction holding its acceptance has committed, so
//! a status 01 still means "durably stored". Under no concurrency it is one transaction per
//! acceptance, as before.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::store::routing::Acceptance;
use crate::store::{Store, StoreError};

/// Most acceptances written by one transaction.
const MAX_GROUP: usize = 64;

struct Pending {
    acceptance: Acceptance,
    now: String,
    done: oneshot::Sender<Result<bool, StoreError>>,
}

/// The queue and the writer of one node's acceptances.
#[derive(Default)]
pub struct GroupCommit {
    queue: Mutex<Vec<Pending>>,
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl GroupCommit {
    /// Writes `acceptance` (possibly together with concurrent ones); `Ok(false)` when one of
    /// its idempotency keys was stored meanwhile (nothing of it written), as
    /// [`Store::route_accept`].
    pub async fn accept(
        &self,
        store: &Store,
        acceptance: Acceptance,
        now: String,
    ) -> Result<bool, StoreError> {
        let (done, mut result) = oneshot::channel();
        self.lock_queue().push(Pending {
            acceptance,
            now,
            done,
        });
        loop {
            let guard = self.writer.clone().lock_owned().await;
            match result.try_recv() {
                Ok(r) => return r,
                Err(oneshot::error::TryRecvError::Closed) => {
                    return Err(StoreError::Corrupt(
                        "a group commit ended without an answer".into(),
                    ))
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let mut batch = {
                let mut q = self.lock_queue();
                let n = q.len().min(MAX_GROUP);
                q.drain(..n).collect::<Vec<_>>()
            };
            if batch.is_empty() {
                continue;
            }
            // committed by a task of its own: a caller that goes away mid-commit (a closed
            // connection drops its future) does not abandon the others' acceptances
            let store = store.clone();
            let task = tokio::spawn(async move {
                let items: Vec<(&Acceptance, &str)> = batch
                    .iter()
                    .map(|p| (&p.acceptance, p.now.as_str()))
                    .collect();
                match store.route_accept_group(&items).await {
                    Ok(results) => {
                        for (p, r) in batch.drain(..).zip(results) {
                            let _ = p.done.send(Ok(r));
                        }
                    }
                    // the group failed as a whole: each acceptance alone, with its own error
                    Err(_) => {
                        for p in batch.drain(..) {
                            let r = store.route_accept(&p.acceptance, &p.now).await;
                            let _ = p.done.send(r);
                        }
                    }
                }
                drop(guard);
            });
            if task.await.is_err() {
                return Err(StoreError::Corrupt("the group commit task failed".into()));
            }
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::routing::{DocumentRow, EnvelopeRow};

    fn acceptance(n: usize, recipient: &str) -> Acceptance {
        let env = format!("env_{n}");
        Acceptance {
            envelope: Some(EnvelopeRow {
                id: env.clone(),
                digest: "d".into(),
                bytes: b"<e/>".to_vec(),
                from_node: "p".into(),
                received_at: "t".into(),
            }),
            documents: vec![DocumentRow {
                id: format!("rd_{n}"),
                sender_organ: "S".into(),
                document_id: "S,2025/01/02,1/UBND".into(),
                doc_type: 0,
                recipient_organ: recipient.into(),
                owner_organ: recipient.into(),
                digest: "d".into(),
                envelope_id: env,
                target_document: "S,2025/01/02,1/UBND".into(),
                state: crate::routing::lifecycle::RowState::Delivered
                    .as_str()
                    .into(),
                next_node: None,
                created_at: "t".into(),
                updated_at: "t".into(),
            }],
            ..Acceptance::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_acceptances_commit_together_and_races_roll_back_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&Store::sqlite_url(dir.path()))
            .await
            .expect("open");
        let group = Arc::new(GroupCommit::default());
        // 20 distinct recipients, and every one of them delivered twice concurrently
        let mut tasks = Vec::new();
        for n in 0..40 {
            let (group, store) = (group.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                let a = acceptance(n, &format!("R{}", n % 20));
                group.accept(&store, a, "t".into()).await.expect("commit")
            }));
        }
        let mut written = 0;
        for t in tasks {
            written += usize::from(t.await.expect("task"));
        }
        assert_eq!(written, 20, "one acceptance per idempotency key");
        let rows = store
            .route_documents("S,2025/01/02,1/UBND")
            .await
            .expect("rows");
        assert_eq!(rows.len(), 20);
        for row in &rows {
            assert!(
                store
                    .route_envelope(&row.envelope_id)
                    .await
                    .expect("read")
                    .is_some(),
                "the winner's envelope is stored"
            );
        }
        // the losers' envelopes were rolled back with their savepoints
        let mut stored = 0;
        for n in 0..40 {
            stored += usize::from(
                store
                    .route_envelope(&format!("env_{n}"))
                    .await
                    .expect("read")
                    .is_some(),
            );
        }
        assert_eq!(stored, 20);
    }
}
