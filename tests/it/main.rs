//! signgate's integration tests: one test binary (`cargo test --test it`), one module per area,
//! so the tests link once instead of once per file.
//!
//! Run one area or one test with a name filter: `cargo test --test it api::` or
//! `./tests/run --test it routing::two_processes`. The tests share one process and run on
//! parallel threads: nothing here may change the process environment or the working
//! directory (pass `.env(..)`/`.current_dir(..)` to the child `Command` instead, or run the test
//! in a process of its own with [`common::run_in_child`]).
//!
//! Shared helpers live in [`common`], split by concern. A new area is a new module file here
//! plus its `mod` line below (the `layout` module fails otherwise, and for a file left directly
//! in `tests/`, which would be a binary of its own).

mod common;

mod abuse;
mod api;
mod architecture;
mod batch;
mod batch_archive;
mod bench_cli;
mod cms;
mod console;
mod console_desks;
mod corpus;
mod directory;
mod edxml;
mod errors;
mod fetch_policy;
mod fuzz_seeds;
mod gateway_checkpoint;
mod gateway_demo;
mod gateway_format;
mod gateway_sigterm;
mod gateway_tls;
mod hostile;
mod integrity;
mod interop_matrix;
mod interop_tools;
mod interop_verify;
mod large_pdf;
mod layout;
mod ltv;
mod pades;
mod pkcs11_always_auth;
mod pkits;
mod pyhanko_interop;
mod revisions;
mod route_envelope;
mod route_webhooks;
mod routing;
mod routing_ops;
mod routing_scale;
mod scale_out;
mod tamper;
mod verify;
mod verify_many;
mod xmldsig;
mod xmldsig_differential;
