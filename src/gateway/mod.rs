//! The application layer: what the gateway does, below its adapters (`api`, `cli`) and above
//! the domain modules.
//!
//! - [`config`]: the validated configuration ([`GatewayConfig`], [`Settings`]); secrets
//!   never print. [`demo`]: the demo gateway's built-in assets; [`demo_network`]: the demo
//!   routing network on loopback (`signgate route demo`); [`fetch`]: revocation data
//!   of an in-process publication point answered without the network.
//! - [`Services`], shared by every adapter, with typed inputs and outputs: [`signing`] (one
//!   document, the one format rule), [`intake`] (verification, submissions and receipts),
//!   [`batches`] (accept, run, resume, download), [`access`] (authentication, audit
//!   queries, health), [`admin`] (clients, keys, grants), [`checkpoint`] (signed audit
//!   checkpoints and their strict check), [`idempotency`] (claimed, completed and replayed
//!   `Idempotency-Key`s), [`route`] (an agency's document built into a signed edXML envelope;
//!   received envelopes and attachments handed out), [`accounts`] (the web console's officers,
//!   sessions and signing for an officer), [`certlogin`] (officers' client certificates),
//!   [`officer_route`] (the routing desk: an officer's routing actions, scoped and audited),
//!   [`webhooks`] (agencies' webhook subscriptions and the worker that delivers their signed
//!   events); [`audit`] is the one write path into the audit chain
//!   and [`metrics`] the counters `/metrics` renders.
//! - [`Gateway::start`]: the listeners, the routing node, retention and batch resume behind
//!   one shutdown signal; [`Running::shutdown`] drains every part. [`tasks`] runs jobs in
//!   parallel for the adapters, which start none of their own.
//!
//! Arrows point down: adapters call these services; the services call the use cases, the
//! domain modules and the store. The HTTP routers are handed in by the adapter
//! ([`HttpApp`]): nothing here knows HTTP routes or command-line flags.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod audit;
pub mod batches;
pub mod certlogin;
pub mod checkpoint;
pub mod config;
pub mod demo;
pub mod demo_network;
pub mod fetch;
pub mod idempotency;
pub mod intake;
pub mod limits;
pub mod metrics;
pub mod officer_route;
pub mod report;
pub mod route;
mod run;
pub mod signing;
pub mod tasks;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use crate::store::{Client, KeyRecord};
pub use audit::{Actor, AuditLog};
pub use config::{GatewayConfig, Secret, Settings};
pub use run::{termination, BackgroundServer, Gateway, HttpApp, Leftovers, Running, RunningNode};

use crate::error::ErrorCode;
use crate::keys::Pkcs12Key;
use crate::store::{Store, StoreError};

/// Why a gateway service refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A library error: bad document, key problem, TSA down…
    #[error(transparent)]
    Domain(#[from] crate::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// The configuration file cannot be read.
    #[error("{0}")]
    ConfigMissing(String),
    /// No key of that name is registered (or it belongs to another agency, for a caller).
    #[error("no key named '{0}' (add it with `signgate key add`)")]
    UnknownKey(String),
    /// The key belongs to another agency than the client being set up.
    #[error("key '{0}' belongs to another agency")]
    ForeignKey(String),
    /// The key belongs to the caller's agency but is not granted to this client.
    #[error("this client is not granted key '{0}'")]
    ForbiddenKey(String),
    /// No client of that id.
    #[error("no client '{0}'")]
    UnknownClient(String),
    /// A file named in an administration command does not exist.
    #[error("{0} does not exist")]
    MissingFile(String),
    /// The receipt key of the configuration is not registered.
    #[error("receipt key '{0}' is not registered")]
    NoReceiptKey(String),
    /// An audit checkpoint is unreadable or not signed by this gateway's receipt key.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// A listener cannot be opened.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// The system's reason.
        reason: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("worker failed: {0}")]
    Worker(String),
    /// The request is inconsistent (options that do not go together, a part missing).
    #[error("{0}")]
    Invalid(String),
    /// The resource does not exist, or belongs to another agency.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A batch document asked for is not signed (yet, or it failed).
    #[error("{0}")]
    NotSigned(String),
    /// A file of the gateway's data folder cannot be read or written.
    #[error("{0}")]
    Io(String),
    /// The `Idempotency-Key` was used by this client for another request.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still being processed.
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    IdempotencyInProgress,
}

impl From<crate::blocking::WorkerFailed> for GatewayError {
    fn from(e: crate::blocking::WorkerFailed) -> Self {
        GatewayError::Worker(e.to_string())
    }
}

impl GatewayError {
    /// The stable code; no `_` arm, so each new variant picks a code.
    pub fn code(&self) -> ErrorCode {
        match self {
            GatewayError::Domain(e) => e.code(),
            GatewayError::Store(_)
            | GatewayError::Listen { .. }
            | GatewayError::Worker(_)
            | GatewayError::Io(_) => ErrorCode::Internal,
            GatewayError::Config(_)
            | GatewayError::UnknownKey(_)
            | GatewayError::ForeignKey(_)
            | GatewayError::ForbiddenKey(_)
            | GatewayError::NoReceiptKey(_)
            | GatewayError::Checkpoint(_)
            | GatewayError::Invalid(_)
            | GatewayError::NotSigned(_) => ErrorCode::Usage,
            GatewayError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            GatewayError::IdempotencyInProgress => ErrorCode::IdempotencyInProgress,
            GatewayError::ConfigMissing(_)
            | GatewayError::UnknownClient(_)
            | GatewayError::MissingFile(_)
            | GatewayError::NotFound(_) => ErrorCode::InputMissing,
        }
    }
}

/// The URL of an embedded SQLite database in folder `dir`.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    Store::sqlite_url(dir)
}

/// Parses a `HOST:PORT` listen address.
pub fn listen_address(listen: &str) -> Result<std::net::SocketAddr, GatewayError> {
    listen
        .parse()
        .map_err(|_| GatewayError::Config(format!("listen address '{listen}' is not HOST:PORT")))
}

/// Runs `f` (crypto, file I/O) off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::Error> + Send + 'static,
) -> Result<T, GatewayError> {
    Ok(crate::blocking::run(f).await?)
}

/// The services every adapter calls, over one store and one audit log (cheap to clone).
#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: Settings,
    audit: AuditLog,
    keys: Mutex<HashMap<String, (String, Arc<Pkcs12Key>)>>,
    agency_numbers: Arc<access::AgencyNumbers>,
    batches: batches::Scheduler,
    metrics: metrics::Metrics,
}

impl Services {
    /// Services over `store` with `settings`; starts the audit writer, so it must be called
    /// inside the Tokio runtime that serves.
    pub fn new(store: Store, settings: Settings) -> Self {
        let agency_numbers = Arc::new(access::AgencyNumbers::default());
        Self {
            inner: Arc::new(Inner {
                audit: AuditLog::start(store.clone(), agency_numbers.clone()),
                agency_numbers,
                store,
                settings,
                keys: Mutex::new(HashMap::new()),
                batches: batches::Scheduler::new(),
                metrics: metrics::Metrics::default(),
            }),
        }
    }

    /// Opens the database of `config` and registers its configured keys.
    pub async fn open(config: &GatewayConfig) -> Result<Self, GatewayError> {
        Self::connect(&config.database_url, config.settings.clone(), &config.keys).await
    }

    /// Opens the database at `database_url` (see [`sqlite_url`]) and registers `keys`.
    pub async fn connect(
        database_url: &str,
        settings: Settings,
        keys: &[KeyRecord],
    ) -> Result<Self, GatewayError> {
        let store = Store::open(database_url).await?;
        let now = crate::clock::now_rfc3339();
        for key in keys {
            store.upsert_key(key, &now).await?;
        }
        Ok(Self::new(store, settings))
    }

    /// The routing node of `routing` over this gateway's database and trust.
    pub fn routing_node(
        &self,
        routing: &crate::routing::RoutingConfig,
    ) -> Result<Arc<crate::routing::Node>, GatewayError> {
        Ok(Arc::new(
            crate::routing::Node::new(
                routing.clone(),
                self.store().clone(),
                self.settings().validation_context()?,
            )
            .map_err(crate::Error::from)?,
        ))
    }

    /// The agency directory over this gateway's database.
    pub fn directory(&self) -> crate::directory::Directory {
        crate::directory::Directory::new(self.store().clone())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The audit log.
    pub fn audit_log(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// The counters `/metrics` renders.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// This process's batch scheduler.
    pub(crate) fn batch_scheduler(&self) -> &batches::Scheduler {
        &self.inner.batches
    }

    /// Records `action` on `subject` by `actor`; returns the record's sequence number.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        subject: serde_json::Value,
    ) -> Result<i64, GatewayError> {
        Ok(self.inner.audit.append(actor, action, subject).await?.seq)
    }

    /// Waits until every audit record handed over so far is committed, then closes the store.
    pub async fn close(&self) {
        self.inner.store.close().await;
    }

    /// Readiness: the database answers and every registered key opens.
    pub async fn ready(&self) -> Result<(), GatewayError> {
        self.inner.store.audit_head().await?;
        for record in self.inner.store.list_keys().await? {
            self.signing_key(&record).await?;
        }
        Ok(())
    }

    /// Opens (once, then cached) the PKCS#12 file of `record`, off the runtime.
    pub async fn signing_key(&self, record: &KeyRecord) -> Result<Arc<Pkcs12Key>, GatewayError> {
        {
            let cache = self.inner.keys.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((path, key)) = cache.get(&record.name) {
                if *path == record.p12_path {
                    return Ok(key.clone());
                }
            }
        }
        let password = self.inner.settings.key_password_text(&record.name);
        let path = record.p12_path.clone();
        let key = blocking(move || {
            Pkcs12Key::open(std::path::Path::new(&path), &password).map_err(crate::Error::from)
        })
        .await?;
        let key = Arc::new(key);
        self.inner
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.name.clone(), (record.p12_path.clone(), key.clone()));
        Ok(key)
    }

    /// The key `name` for `caller`: unknown when it is missing or another agency's,
    /// forbidden when it is the caller's agency's but not granted to this client.
    pub async fn granted_key(
        &self,
        caller: &Client,
        name: &str,
    ) -> Result<KeyRecord, GatewayError> {
        match self.inner.store.key_for_client(name, &caller.id).await? {
            Some((record, _)) if record.agency != caller.agency => {
                Err(GatewayError::UnknownKey(name.into()))
            }
            Some((record, true)) => Ok(record),
            Some((record, false)) => Err(GatewayError::ForbiddenKey(record.name)),
            None => Err(GatewayError::UnknownKey(name.into())),
        }
    }
}

/// Serde helpers for typed fields written as text (query strings, JSON options).
pub mod text {
    use serde::{Deserialize, Deserializer};

    use crate::sign::Format;

    /// An optional value parsed with `FromStr`; an empty string is none.
    pub fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }

    /// A requested format: none, empty or `auto` is none (chosen from the content).
    pub fn format_choice<'de, D>(d: D) -> Result<Option<Format>, D::Error>
    where
        D: Deserializer<'de>,
    {
        let text = Option::<String>::deserialize(d)?;
        Format::parse_choice(text.as_deref()).map_err(serde::de::Error::custom)
    }
}
