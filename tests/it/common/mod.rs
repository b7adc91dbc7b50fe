//! Shared helpers of signgate's integration tests, one file per concern, all re-exported here
//! (`use crate::common::*;` or `common::run_ok(..)` from a test module):
//!
//! - [`paths`]: the repository, `tests/data/`, temporary folders and scratch files;
//! - [`deps`]: external tools and PostgreSQL: [`require_tool`], [`require_database`] skip a test
//!   with a printed reason locally and fail it under `CI=true` (the rule of the whole suite);
//! - [`process`]: running `signgate` and other commands, free ports, a test in a child process;
//! - [`server`]: `signgate serve` / `pki serve` / `tsa serve` children ([`SigngateServer`]);
//! - [`pki`]: test PKIs from the library's generator `signgate::pki::demo` (the same code as
//!   `signgate pki demo`), live ones served by `signgate pki serve` ([`LivePki`]);
//! - [`db`]: a fresh PostgreSQL database per test ([`PgDatabase`]); [`cluster`]: several
//!   `signgate serve` processes on one such database and one shared batch folder ([`Cluster`]);
//! - [`envelope`]: signed test edXML envelopes, one parameterized fixture ([`TestEnvelope`]);
//! - the oracles we did not write: [`ocsp`] (`openssl ocsp`), [`pdfsig`] (poppler, NSS),
//!   [`pyhanko`], [`openssl_cli`] (`openssl cms -verify`, PKCS#12), [`render`] (`pdftoppm`,
//!   `pdftotext`, PNG pixels), [`pdf`] (`qpdf --check`, large PDFs), [`softhsm`] (SoftHSM2
//!   tokens), [`report`] (the validation report's JSON schema).
//!
//! Leaves to the tests: what to sign and what to assert.
//!
//! Typical use:
//! ```ignore
//! use crate::common;
//! let Some(_) = common::require_tool("pdfsig") else { return };
//! let nss = common::NssDb::new(&pki.join("root-ca.pem"));
//! let report = common::pdfsig(&nss, &signed);
//! assert!(report.signatures[0].signature_valid(), "{}", report.raw);
//! ```
#![allow(dead_code)]

mod cluster;
mod db;
mod deps;
mod envelope;
mod gateway;
mod ocsp;
mod openssl_cli;
mod paths;
mod pdf;
mod pdfsig;
mod pki;
mod process;
mod pyhanko;
mod render;
mod report;
mod server;
mod softhsm;

pub use cluster::*;
pub use db::*;
pub use deps::*;
pub use envelope::*;
pub use gateway::*;
pub use ocsp::*;
pub use openssl_cli::*;
pub use paths::*;
pub use pdf::*;
pub use pdfsig::*;
pub use pki::*;
pub use process::*;
pub use pyhanko::*;
pub use render::*;
pub use report::*;
pub use server::*;
pub use softhsm::*;
