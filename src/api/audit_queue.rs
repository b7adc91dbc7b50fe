//! Group commit of the gateway's audit records.
//!
//! Every request's record must be committed before its answer, but one commit (and one log
//! flush) per request caps the gateway at the disk's flush rate. Requests hand their entry to
//! one writer task and wait; the writer takes everything that queued up while the previous
//! group was committing and appends it in one transaction ([`Store::append_audit_group`]).
//! Alone, a request still gets its own commit right away: nothing waits for a timer.

use tokio::sync::{mpsc, oneshot};

use crate::store::audit::Append;
use crate::store::{AuditEntry, AuditRecord, Store, StoreError};

/// Largest group committed in one transaction.
const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<AuditRecord, String>>;

/// The handle requests append through.
#[derive(Debug)]
pub struct AuditQueue {
    tx: mpsc::UnboundedSender<(Append, Reply)>,
}

impl AuditQueue {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Store) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Append, Reply)>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let (items, replies): (Vec<Append>, Vec<Reply>) = group.into_iter().unzip();
                match store.append_audit_group(&items).await {
                    Ok(records) => {
                        for (reply, record) in replies.into_iter().zip(records) {
                            let _ = reply.send(Ok(record));
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(message.clone()));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Appends `entry` at `at` and waits until its group is committed.
    pub async fn append(&self, entry: AuditEntry, at: String) -> Result<AuditRecord, StoreError> {
        let (reply, answer) = oneshot::channel();
        let item = Append {
            entry,
            at,
            dedup: None,
        };
        let stopped = || StoreError::Group("the audit writer has stopped".into());
        self.tx.send((item, reply)).map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(StoreError::Group)
    }
}
