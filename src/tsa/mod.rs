//! The RFC 3161 time-stamp server.
