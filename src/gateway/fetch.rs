//! The verifier's revocation fetcher inside the gateway: URLs under a publication point this
//! process holds (the demo PKI's, in demo mode) are answered in-process; every other URL goes
//! over HTTP. So the demo gateway verifies its own signatures with no second process and no
//! dependency on the port the demo certificates name.

use std::time::Duration;

use time::OffsetDateTime;

use super::config::LocalPublication;
use crate::verify::{Fetcher, HttpFetcher};

/// In-process publication points first, then HTTP.
pub struct GatewayFetcher {
    local: Vec<LocalPublication>,
    http: HttpFetcher,
}

impl GatewayFetcher {
    /// A fetcher answering `local` in-process, anything else over HTTP within `timeout`.
    pub fn new(local: Vec<LocalPublication>, timeout: Duration) -> Self {
        Self {
            local,
            http: HttpFetcher::new(timeout),
        }
    }

    /// The local publication point serving `url` and the path below its base.
    fn local<'a>(&self, url: &'a str) -> Option<(&LocalPublication, &'a str)> {
        self.local
            .iter()
            .find_map(|p| url.strip_prefix(p.base_url.as_str()).map(|rest| (p, rest)))
    }
}

impl Fetcher for GatewayFetcher {
    fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        match self.local(url) {
            Some((p, path)) => p
                .publication
                .post(path, body, OffsetDateTime::now_utc())
                .ok_or_else(|| format!("{url}: not served by the local publication point")),
            None => self.http.post(url, content_type, body),
        }
    }

    fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        match self.local(url) {
            Some((p, path)) => p
                .publication
                .get(path, OffsetDateTime::now_utc())
                .ok_or_else(|| format!("{url}: not served by the local publication point")),
            None => self.http.get(url),
        }
    }

    fn cached_ocsp(&self, key: &str) -> Option<Vec<u8>> {
        self.http.cached_ocsp(key)
    }

    fn remember_ocsp(&self, key: &str, response: &[u8]) {
        self.http.remember_ocsp(key, response)
    }
}
