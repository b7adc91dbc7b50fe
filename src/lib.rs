//! signgate: a digital signing and e-document exchange gateway for public administration.
//!
//! # Layout
//! - [`pki`]: algorithms and OIDs, signing-certificate checks, RFC 3161 client, demo PKI.
//! - [`keys`]: where private keys live ([`keys::KeySource`]); signs messages or digests, never exports.
//! - [`cms`]: CMS SignedData / CAdES built by us; knows no PDF or XML.
//! - [`pdf`]: PAdES incremental update, ByteRange, visible signatures; no I/O.
//! - [`publish`]: the PKI publication point: CRLs, CA certificates and an OCSP responder.
//! - [`tsa`]: a small RFC 3161 time-stamp server.
//! - [`sign`]: the signing use case that ties keys, cms, pdf and the TSA client together.
//! - [`verify`]: signature validation and the ETSI-style report; never signs.
//! - [`extend`]: long-term validation (PAdES B-LT/B-LTA: DSS and document time-stamps).
//! - [`xml`]: hardened XML parser, C14N, XML-DSig and the filing/edXML profiles; no network.
//! - [`edxml`]: edXML packages and status messages (QCVN 102:2016): build, schema, trace, verify.
//! - [`directory`]: the agency directory (administrative units, agency identifiers, merges).
//! - [`store`]: the gateway database (SQLite or PostgreSQL): clients, keys, submissions, audit.
//! - [`config`]: the gateway's TOML configuration and demo defaults.
//! - [`api`]: the HTTP gateway (axum): routes, auth, error codes; no crypto of its own.
//! - [`routing`]: delivery of edXML packages between gateway nodes (outbox, mutual TLS).
//! - [`batch`]: the batch-signing engine (pipeline, journal, resume, audit events).
//! - [`fsio`]: atomic output files.
//! - [`cli`]: the command line, thin over the above.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod batch;
pub mod cli;
pub mod cms;
pub mod config;
pub mod directory;
pub mod edxml;
pub mod error;
pub mod extend;
pub mod fsio;
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

pub use error::{Error, ErrorCode};
