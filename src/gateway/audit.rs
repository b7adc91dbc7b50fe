//! The one write path into the audit chain: every record (HTTP requests, batch documents,
//! administration from the command line) goes through [`AuditLog::append`], with group commit.
//! What must never be stored without its record (a submission, a batch) is handed over with
//! the record ([`AuditLog::append_with`]) and inserted in the same transaction, carrying the
//! record's sequence number; so is the completion of the request's idempotency key.
//!
//! Every request's record must be committed before its answer, but one commit (and one log
//! flush) per request caps the gateway at the disk's flush rate. Requests hand their entry to
//! one writer task and wait; the writer takes everything that queued up while the previous
//! group was committing and appends it in one transaction ([`Store::append_audit_group`]).
//! Alone, a request still gets its own commit right away: nothing waits for a timer.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::access::AgencyNumbers;

use crate::store::audit::{Append, Companion};
use crate::store::idempotency::Completion;
use crate::store::{AuditEntry, AuditRecord, Store, StoreError};

/// Who an audit record names: the agency and the client (`admin` for the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The agency acted for.
    pub agency: String,
    /// The client id, or [`Actor::ADMIN`].
    pub client: String,
}

impl Actor {
    /// The client name of administration commands.
    pub const ADMIN: &'static str = "admin";

    /// A client acting for its agency.
    pub fn of(client: &crate::store::Client) -> Self {
        Self {
            agency: client.agency.clone(),
            client: client.id.clone(),
        }
    }

    /// The administrator acting for `agency`.
    pub fn admin(agency: &str) -> Self {
        Self {
            agency: agency.into(),
            client: Self::ADMIN.into(),
        }
    }
}

/// Largest group committed in one transaction.
const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<AuditRecord, String>>;

/// The handle every audit record is appended through (cheap to clone).
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::UnboundedSender<(Append, Reply)>,
}

impl AuditLog {
    /// Starts the writer task on the current runtime; it ends when the last handle is dropped.
    /// Each group's agency numbers are learnt into `numbers` before its requests are answered.
    pub(crate) fn start(store: Store, numbers: Arc<AgencyNumbers>) -> Self {
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
                        numbers.learn(&store, &records).await;
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

    /// Records `action` on `subject` by `actor`, now, and waits until its group is committed.
    pub async fn append(
        &self,
        actor: &Actor,
        action: &str,
        subject: serde_json::Value,
    ) -> Result<AuditRecord, StoreError> {
        self.write(actor, action, subject, None, None, None).await
    }

    /// [`AuditLog::append`] with `with` inserted in the same transaction (carrying the
    /// record's sequence number) and `completes` written there too: committed together or
    /// not at all.
    pub async fn append_with(
        &self,
        actor: &Actor,
        action: &str,
        subject: serde_json::Value,
        with: Companion,
        completes: Option<Completion>,
    ) -> Result<AuditRecord, StoreError> {
        self.write(actor, action, subject, None, Some(with), completes)
            .await
    }

    /// [`AuditLog::append`], written once per `dedup` key: an event that may be reported twice
    /// (a batch document after a restart) keeps its first record, which is returned.
    pub async fn append_once(
        &self,
        actor: &Actor,
        action: &str,
        subject: serde_json::Value,
        dedup: String,
    ) -> Result<AuditRecord, StoreError> {
        self.write(actor, action, subject, Some(dedup), None, None)
            .await
    }

    async fn write(
        &self,
        actor: &Actor,
        action: &str,
        subject: serde_json::Value,
        dedup: Option<String>,
        with: Option<Companion>,
        completes: Option<Completion>,
    ) -> Result<AuditRecord, StoreError> {
        let (reply, answer) = oneshot::channel();
        let item = Append {
            entry: AuditEntry {
                agency: actor.agency.clone(),
                client: actor.client.clone(),
                action: action.into(),
                subject,
            },
            at: crate::clock::now_rfc3339(),
            dedup,
            with,
            completes,
        };
        let stopped = || StoreError::Group("the audit writer has stopped".into());
        self.tx.send((item, reply)).map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(StoreError::Group)
    }
}
