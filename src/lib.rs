//! signgate: a digital signing and e-document exchange gateway for public administration.
//!
//! # Layout
//!
//! Layers, lowest first. A module uses modules of its own layer (never in a cycle) or of a
//! lower layer, never of a higher one; `tests/it/architecture.rs` checks this from the source.
//!
//! 1. Base, no knowledge of signing:
//!    [`code`] (the stable [`ErrorCode`] table every error maps to), [`clock`] (RFC 3339 UTC
//!    and Vietnam time for people), [`ids`] (random ids, bearer tokens), [`blocking`] (work
//!    off the async runtime); `test_support` (unit tests' tool checks) sits here too.
//! 2. Infrastructure:
//!    [`pki`] (algorithms and OIDs, signing-certificate checks, RFC 3161 client, demo PKI),
//!    [`fsio`] (atomic output files), [`keys`] (where private keys live,
//!    [`keys::KeySource`]; signs, never exports), [`tls`] (listener with client certificates),
//!    [`store`] (the gateway database, SQLite or PostgreSQL: SQL and rows only).
//! 3. Domain:
//!    [`cms`] (CMS/CAdES built by us), [`pdf`] (PAdES incremental update, no I/O), [`xml`]
//!    (hardened parser, C14N, XML-DSig, filing/edXML profiles), [`verify`] (validation and
//!    the ETSI-style report; never signs), [`tsa`] (an RFC 3161 server), [`publish`] (CRLs,
//!    CA certificates and the OCSP responder), [`edxml`] (QCVN 102:2016 packages and status
//!    messages), [`directory`] (the agency directory's rules).
//! 4. Use cases:
//!    [`sign`] (keys + cms + pdf + xml + TSA client; [`sign::Format`]), [`extend`] (PAdES
//!    B-LT/B-LTA), [`batch`] (the batch-signing engine), [`routing`] (edXML delivery between
//!    nodes), and [`error`], the crate-wide [`Error`] wrapping every domain error.
//! 5. Application: [`gateway`] (the validated configuration with its secrets, the services
//!    every adapter calls, `Gateway::start` → `Running` behind one shutdown signal) over
//!    [`config`] (the configuration file as written).
//! 6. Adapters, thin over the application: [`api`] (HTTP, axum), [`cli`] (the command line),
//!    [`console`] (the web pages for people, served with the API).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod batch;
pub mod blocking;
pub mod cli;
pub mod clock;
pub mod cms;
pub mod code;
pub mod config;
pub mod console;
pub mod directory;
pub mod edxml;
pub mod error;
pub mod extend;
pub mod fsio;
pub mod gateway;
pub mod ids;
pub mod keys;
pub mod pdf;
pub mod pki;
pub mod publish;
pub mod routing;
pub mod sign;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod tsa;
pub mod verify;
pub mod xml;

pub use code::ErrorCode;
pub use error::Error;
