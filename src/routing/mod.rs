//! Routing and delivery of edXML packages between gateway nodes (issue 8, CONTRACTS §5).
//!
//! A node serves some agencies (`[routing] serves`) and knows its peers. An envelope that
//! arrives — from a peer over mutual TLS, or from an operator here — is checked
//! ([`crate::edxml::parse`] and [`crate::edxml::verify`]), recorded once per idempotency key,
//! stamped with a trace header, and then either delivered to this node's inbox or put in the
//! outbox for the next hop. The [`worker`] drains the outbox with leases, retries with backoff
//! and jitter, and dead-letters after a limit. Status messages (01 received … 06 completed,
//! 13 recalled) travel back the same way, signed by the node that issues them.
//!
//! - [`config`]: `[routing]` and the routing table ([`config::RoutingConfig::next_hop`]).
//! - [`node`]: receipt, idempotency, forwarding decisions, statuses, operator actions.
//! - [`lifecycle`]: the recall/update state machine at the delivering node.
//! - [`worker`]: the outbox loop; [`backoff`]: retry delays.
//! - [`events`]: webhook events (what they report, their body and signature).
//! - [`directory_sync`]: signed directory updates from the directory authority (the province).
//! - [`commit`]: group commit of concurrent receipts (one transaction, one fsync).
//! - [`tls`]: the node-to-node client; the listener is the generic [`crate::tls`].
//!
//! SQL lives in `crate::store::routing`; HTTP handlers in `crate::api::route`.

pub mod backoff;
pub mod commit;
pub mod config;
pub mod directory_sync;
pub mod events;
pub mod lifecycle;
pub mod node;
pub mod tls;
pub mod worker;

pub use config::{Hop, RoutingConfig, RoutingFileConfig};
pub use node::{Node, Receipt};

use crate::code::ErrorCode;

/// Why a routing operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// `[routing]` is invalid.
    #[error("routing config: {0}")]
    Config(String),
    /// The TLS identity, trust or handshake failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The calling or called node is not a configured peer (certificate fingerprint unknown).
    #[error("unknown node: {0}")]
    PeerUnknown(String),
    /// A peer could not be reached or did not answer in time.
    #[error("peer unavailable: {0}")]
    PeerUnavailable(String),
    /// The same idempotency key arrived with a different content digest.
    #[error("conflicting redelivery: {0}")]
    ConflictingRedelivery(String),
    /// No document with this DocumentId is known here (or none an operator can act on).
    #[error("no such document: {0}")]
    NotFound(String),
    /// The envelope or status message is refused (schema, signature, limits).
    #[error(transparent)]
    Edxml(#[from] crate::edxml::EdxmlError),
    /// The operator asked for something the document's state does not allow.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Signing a status message failed.
    #[error("signing a status message: {0}")]
    Sign(String),
    /// The revocation status needed to verify a status message cannot be obtained now (the
    /// sender keeps it and tries again).
    #[error("revocation status unavailable: {0}")]
    RevocationUnavailable(String),
    /// A background worker did not finish.
    #[error(transparent)]
    Worker(#[from] crate::blocking::WorkerFailed),
}

impl From<crate::tls::TlsError> for RoutingError {
    fn from(e: crate::tls::TlsError) -> Self {
        Self::Tls(e.0)
    }
}

impl RoutingError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) | Self::Invalid(_) => ErrorCode::Usage,
            Self::Tls(_) | Self::Store(_) | Self::Sign(_) => ErrorCode::Internal,
            Self::Worker(e) => e.code(),
            Self::PeerUnknown(_) => ErrorCode::RoutePeerUnknown,
            Self::PeerUnavailable(_) => ErrorCode::RoutePeerUnavailable,
            Self::ConflictingRedelivery(_) => ErrorCode::ConflictingRedelivery,
            Self::NotFound(_) => ErrorCode::RouteNotFound,
            Self::RevocationUnavailable(_) => ErrorCode::RevocationUnavailable,
            Self::Edxml(e) => e.code(),
        }
    }
}
