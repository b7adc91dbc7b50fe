//! The demo PKI generator (`signgate pki demo`).
