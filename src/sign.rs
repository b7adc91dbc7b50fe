//! The signing use case.
