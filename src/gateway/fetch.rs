//! The verifier's outbound fetches inside the gateway (AIA caIssuers, CRL distribution points,
//! OCSP responders), under a policy, because the URLs come from certificates that arrive with
//! the documents anyone may send:
//!
//! - URLs under a publication point this process holds (the demo PKI's, in demo mode) are
//!   answered in-process, with no network round trip;
//! - every other URL must be `http://`; its host is resolved, **every** address is checked and
//!   the connection goes only to the checked addresses (the resolver ureq uses is the check, so
//!   a redirect or a second lookup cannot reach another address; redirects are not followed).
//!   Loopback, private, link-local, shared, documentation, multicast and other special-purpose
//!   addresses are refused unless [`FetchPolicy::allow`] names them;
//! - each answer is capped in size ([`FetchPolicy::max_response_bytes`]) and time (the request
//!   timeout covers connecting and reading);
//! - answers are cached for the process in one bounded cache shared by every request: a CRL
//!   until its nextUpdate, an OCSP response until its nextUpdate (or 5 minutes without one), a
//!   certificate for an hour, a failure for a minute (so a document naming a slow host cannot
//!   make every verification wait for it again);
//! - issuer certificates are fetched from AIA URLs only when [`FetchPolicy::chase_issuers`] is
//!   set (off by default): those fetches are for a certificate whose path does not reach a trust
//!   anchor yet, i.e. for anyone's certificate. Revocation data is fetched only for paths that
//!   already reach a configured anchor (`verify` checks the path first).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssl::x509::{X509Crl, X509};
use time::OffsetDateTime;

use super::config::LocalPublication;
use crate::verify::revocation::{read_capped, FetchError};
use crate::verify::Fetcher;

/// Default largest answer accepted, in bytes (a national CA's CRL can be several MB).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Default number of cached answers.
pub const DEFAULT_CACHE_ENTRIES: usize = 256;

/// Default total size of the cached answers, in bytes.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Longest a cached CRL or OCSP response is reused, whatever its nextUpdate says.
const MAX_REUSE: Duration = Duration::from_secs(24 * 3600);

/// How long a fetched certificate (AIA) is reused.
const CERT_REUSE: Duration = Duration::from_secs(3600);

/// How long an answer without a validity of its own (an OCSP response or CRL without
/// nextUpdate) is reused.
const DEFAULT_REUSE: Duration = Duration::from_secs(300);

/// How long a failed fetch is remembered (and answered from memory).
const FAILURE_REUSE: Duration = Duration::from_secs(60);

/// An address range (or one socket address) outside the public internet that may be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// A network in CIDR form (`10.1.0.0/16`, `fd00::/8`; a bare address is a /32 or /128).
    Net {
        /// The network address.
        addr: IpAddr,
        /// The prefix length.
        prefix: u8,
    },
    /// One address and port (`127.0.0.1:8089`, `[::1]:8089`).
    Socket(SocketAddr),
}

/// Why an `allow` entry of `[fetch]` is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[fetch] allow entry {0:?} is not an address, ADDRESS/PREFIX or ADDRESS:PORT")]
pub struct BadAllowEntry(pub String);

impl std::str::FromStr for Allowed {
    type Err = BadAllowEntry;

    fn from_str(text: &str) -> Result<Self, BadAllowEntry> {
        let bad = || BadAllowEntry(text.to_string());
        let text = text.trim();
        if let Ok(socket) = text.parse::<SocketAddr>() {
            return Ok(Self::Socket(socket));
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (
                a.parse::<IpAddr>().map_err(|_| bad())?,
                Some(p.parse::<u8>().map_err(|_| bad())?),
            ),
            None => (text.parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self::Net { addr, prefix })
    }
}

impl Allowed {
    fn covers(&self, target: &SocketAddr) -> bool {
        match self {
            Self::Socket(s) => s == target,
            Self::Net { addr, prefix } => in_net(target.ip(), *addr, *prefix),
        }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The kind of special-purpose range `ip` is in (IANA special-purpose registries, RFC 6890),
/// or `None` for a public address.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    const V4: &[(&str, u8, &str)] = &[
        ("0.0.0.0", 8, "a 'this network' address"),
        ("10.0.0.0", 8, "a private address"),
        ("100.64.0.0", 10, "a shared (carrier-grade NAT) address"),
        ("127.0.0.0", 8, "a loopback address"),
        ("169.254.0.0", 16, "a link-local address"),
        ("172.16.0.0", 12, "a private address"),
        ("192.0.0.0", 24, "an IETF protocol assignment"),
        ("192.0.2.0", 24, "a documentation address"),
        ("192.88.99.0", 24, "a 6to4 relay address"),
        ("192.168.0.0", 16, "a private address"),
        ("198.18.0.0", 15, "a benchmarking address"),
        ("198.51.100.0", 24, "a documentation address"),
        ("203.0.113.0", 24, "a documentation address"),
        ("224.0.0.0", 4, "a multicast address"),
        ("240.0.0.0", 4, "a reserved or broadcast address"),
    ];
    const V6: &[(&str, u8, &str)] = &[
        ("::", 128, "the unspecified address"),
        ("::1", 128, "a loopback address"),
        ("64:ff9b::", 96, "a NAT64 address"),
        ("64:ff9b:1::", 48, "a NAT64 address"),
        ("100::", 64, "a discard-only address"),
        ("2001::", 23, "an IETF protocol assignment"),
        ("2001:db8::", 32, "a documentation address"),
        ("2002::", 16, "a 6to4 address"),
        ("fc00::", 7, "a unique-local (private) address"),
        ("fe80::", 10, "a link-local address"),
        ("fec0::", 10, "a site-local address"),
        ("ff00::", 8, "a multicast address"),
    ];
    if let IpAddr::V6(v6) = ip {
        // IPv4-mapped and IPv4-compatible addresses reach the IPv4 address inside.
        if let Some(v4) = v6.to_ipv4_mapped() {
            return special_range(IpAddr::V4(v4));
        }
        if v6.segments()[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
            return Some("an IPv4-compatible address");
        }
    }
    let table = if ip.is_ipv4() { V4 } else { V6 };
    table.iter().find_map(|(net, prefix, kind)| {
        let net: IpAddr = net.parse().ok()?;
        in_net(ip, net, *prefix).then_some(*kind)
    })
}

/// What the gateway may fetch, how much and for how long (`[fetch]` in the configuration).
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Addresses outside the public internet that may be fetched anyway.
    pub allow: Vec<Allowed>,
    /// Largest answer accepted.
    pub max_response_bytes: u64,
    /// Whether missing intermediates are fetched from AIA caIssuers URLs.
    pub chase_issuers: bool,
    /// Most cached answers.
    pub cache_entries: usize,
    /// Largest total size of the cached answers.
    pub cache_bytes: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            chase_issuers: false,
            cache_entries: DEFAULT_CACHE_ENTRIES,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

impl FetchPolicy {
    /// The policy of a `[fetch]` table (defaults for what it leaves out).
    pub fn from_file(file: &crate::config::FetchFileConfig) -> Result<Self, BadAllowEntry> {
        let defaults = Self::default();
        Ok(Self {
            allow: file
                .allow
                .iter()
                .map(|a| a.parse())
                .collect::<Result<_, _>>()?,
            max_response_bytes: file
                .max_response_kib
                .map_or(defaults.max_response_bytes, |k| k.saturating_mul(1024)),
            chase_issuers: file.chase_issuers.unwrap_or(defaults.chase_issuers),
            cache_entries: file.cache_entries.unwrap_or(defaults.cache_entries),
            cache_bytes: defaults.cache_bytes,
        })
    }

    /// Why fetching from `addr` is refused, if it is.
    pub fn refusal(&self, addr: &SocketAddr) -> Option<String> {
        let kind = special_range(addr.ip())?;
        if self.allow.iter().any(|a| a.covers(addr)) {
            return None;
        }
        Some(format!(
            "{} is {kind} (not allowed by [fetch] allow)",
            addr.ip()
        ))
    }

    /// Resolves `netloc` (`host:port`) and checks every address; all of them, or why not.
    fn resolve(&self, netloc: &str) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = netloc
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {netloc}: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{netloc} has no address"));
        }
        match addrs.iter().find_map(|a| self.refusal(a)) {
            Some(why) => Err(why),
            None => Ok(addrs),
        }
    }
}

/// ureq's resolver for one request: resolves, checks every address against the policy and
/// keeps the refusal for the error message.
struct Guard {
    policy: Arc<FetchPolicy>,
    refused: Arc<Mutex<Option<String>>>,
}

impl ureq::Resolver for Guard {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        self.policy.resolve(netloc).map_err(|why| {
            if let Ok(mut slot) = self.refused.lock() {
                *slot = Some(why.clone());
            }
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, why)
        })
    }
}

/// An agent whose every connection goes through the policy's address check (no redirects,
/// `timeout` for the whole request), and the slot where a refusal is kept.
fn guarded_agent(
    policy: &Arc<FetchPolicy>,
    timeout: Duration,
) -> (ureq::Agent, Arc<Mutex<Option<String>>>) {
    let slot = Arc::new(Mutex::new(None));
    let agent = ureq::AgentBuilder::new()
        .resolver(Guard {
            policy: policy.clone(),
            refused: slot.clone(),
        })
        .redirects(0)
        .timeout(timeout)
        .build();
    (agent, slot)
}

/// Why a [`post_checked`] did not get an answer. Its text never holds the URL (a receiver's
/// URL may carry a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// The policy forbids the URL (scheme, or an address not allowed); nothing was sent.
    #[error("not sent: {0}")]
    Refused(String),
    /// No answer: resolution, connection, time-out.
    #[error("no answer: {0}")]
    Failed(String),
}

/// POSTs `body` with `headers` to `url` under `policy` — `http://` only, every resolved
/// address checked (loopback, private and other special-purpose addresses need `[fetch]
/// allow`), no redirects, `timeout` for connecting and reading — and returns the answer's
/// status code (its body is not read). Blocking: call it from a blocking thread.
pub fn post_checked(
    policy: &Arc<FetchPolicy>,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<u16, PostError> {
    match url.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => {}
        _ => return Err(PostError::Refused("only http:// URLs are allowed".into())),
    }
    let (agent, slot) = guarded_agent(policy, timeout);
    let mut request = agent.post(url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    match request.send_bytes(body) {
        Ok(answer) => Ok(answer.status()),
        Err(ureq::Error::Status(code, _)) => Ok(code),
        Err(ureq::Error::Transport(t)) => Err(match slot.lock().ok().and_then(|mut s| s.take()) {
            Some(why) => PostError::Refused(why),
            None => {
                let mut detail = t.kind().to_string();
                let cause = std::error::Error::source(&t).map(|c| c.to_string());
                for part in [t.message().map(str::to_string), cause]
                    .into_iter()
                    .flatten()
                {
                    detail.push_str(": ");
                    detail.push_str(&part);
                }
                PostError::Failed(detail)
            }
        }),
    }
}

/// One cached answer (or failure) and until when it is used.
#[derive(Debug)]
struct Entry {
    until: Instant,
    answer: Result<Vec<u8>, FetchError>,
}

impl Entry {
    fn size(&self) -> usize {
        self.answer.as_ref().map_or(256, Vec::len)
    }
}

/// The process's cache of fetched answers, bounded in entries and bytes.
#[derive(Debug, Default)]
pub struct FetchCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl FetchCache {
    fn get(&self, key: &str) -> Option<Result<Vec<u8>, FetchError>> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(key)?;
        (entry.until > Instant::now()).then(|| entry.answer.clone())
    }

    fn put(
        &self,
        policy: &FetchPolicy,
        key: String,
        until: Instant,
        answer: Result<Vec<u8>, FetchError>,
    ) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let entry = Entry { until, answer };
        if entry.size() > policy.cache_bytes || policy.cache_entries == 0 {
            return;
        }
        entries.remove(&key);
        let now = Instant::now();
        entries.retain(|_, e| e.until > now);
        let mut total: usize = entries.values().map(Entry::size).sum();
        // Make room by dropping what expires first.
        while !entries.is_empty()
            && (entries.len() >= policy.cache_entries || total + entry.size() > policy.cache_bytes)
        {
            let Some(first) = entries
                .iter()
                .min_by_key(|(_, e)| e.until)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = entries.remove(&first) {
                total -= gone.size();
            }
        }
        entries.insert(key, entry);
    }

    /// Number of cached answers (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The policy and the cache of one gateway process, shared by every request's fetcher.
#[derive(Debug, Clone, Default)]
pub struct OutboundFetch {
    /// The policy.
    pub policy: Arc<FetchPolicy>,
    /// The shared cache.
    pub cache: Arc<FetchCache>,
}

impl OutboundFetch {
    /// A fresh cache under `policy`.
    pub fn new(policy: FetchPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
            cache: Arc::default(),
        }
    }
}

/// In-process publication points first, then HTTP under the [`FetchPolicy`].
pub struct GatewayFetcher {
    local: Vec<LocalPublication>,
    outbound: OutboundFetch,
    timeout: Duration,
}

impl GatewayFetcher {
    /// A fetcher answering `local` in-process, anything else over HTTP within `timeout` under
    /// `outbound`'s policy and cache.
    pub fn new(local: Vec<LocalPublication>, timeout: Duration, outbound: OutboundFetch) -> Self {
        Self {
            local,
            outbound,
            timeout,
        }
    }

    /// The local publication point serving `url` and the path below its base.
    fn local<'a>(&self, url: &'a str) -> Option<(&LocalPublication, &'a str)> {
        self.local
            .iter()
            .find_map(|p| url.strip_prefix(p.base_url.as_str()).map(|rest| (p, rest)))
    }

    /// One HTTP exchange under the policy: `body` is POSTed when given, else a GET.
    fn exchange(&self, url: &str, post: Option<(&str, &[u8])>) -> Result<Vec<u8>, FetchError> {
        let refused = |reason: String| FetchError::Refused {
            url: url.to_string(),
            reason,
        };
        match url.split_once("://") {
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => {}
            _ => return Err(refused("only http:// URLs are fetched".into())),
        }
        let (agent, slot) = guarded_agent(&self.outbound.policy, self.timeout);
        let sent = match post {
            Some((content_type, body)) => agent
                .post(url)
                .set("Content-Type", content_type)
                .send_bytes(body),
            None => agent.get(url).call(),
        };
        let resp = sent.map_err(|e| match slot.lock().ok().and_then(|mut s| s.take()) {
            Some(why) => refused(why),
            None => crate::verify::revocation::request_failed(url, e),
        })?;
        read_capped(url, resp, self.outbound.policy.max_response_bytes)
    }

    /// Until when an answer fetched from `url` is reused.
    fn reuse_until(answer: &Result<Vec<u8>, FetchError>, ocsp: bool) -> Instant {
        let now = Instant::now();
        let Ok(bytes) = answer else {
            return now + FAILURE_REUSE;
        };
        let next_update = if ocsp {
            ocsp_next_update(bytes)
        } else {
            X509Crl::from_der(bytes).ok().and_then(|c| {
                c.next_update()
                    .and_then(crate::verify::revocation::asn1_time)
            })
        };
        let validity = match next_update {
            Some(next) => {
                let left = (next - OffsetDateTime::now_utc()).whole_seconds();
                Duration::from_secs(u64::try_from(left).unwrap_or(0))
            }
            None if !ocsp && X509::from_der(bytes).is_ok() => CERT_REUSE,
            None => DEFAULT_REUSE,
        };
        now + validity.min(MAX_REUSE)
    }
}

/// The nextUpdate of the first SingleResponse of an OCSP response.
fn ocsp_next_update(der: &[u8]) -> Option<OffsetDateTime> {
    use der::Decode;
    let resp = x509_ocsp::OcspResponse::from_der(der).ok()?;
    let basic =
        x509_ocsp::BasicOcspResponse::from_der(resp.response_bytes?.response.as_bytes()).ok()?;
    let next = basic.tbs_response_data.responses.first()?.next_update?;
    OffsetDateTime::from_unix_timestamp(next.0.to_unix_duration().as_secs() as i64).ok()
}

impl Fetcher for GatewayFetcher {
    fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<Vec<u8>, FetchError> {
        match self.local(url) {
            Some((p, path)) => p
                .publication
                .post(path, body, OffsetDateTime::now_utc())
                .ok_or_else(|| not_served(url)),
            // OCSP requests carry a fresh nonce: the checked answer is cached by
            // `remember_ocsp`, not here.
            None => self.exchange(url, Some((content_type, body))),
        }
    }

    fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        if let Some((p, path)) = self.local(url) {
            return p
                .publication
                .get(path, OffsetDateTime::now_utc())
                .ok_or_else(|| not_served(url));
        }
        let key = format!("get {url}");
        if let Some(hit) = self.outbound.cache.get(&key) {
            return hit;
        }
        let answer = self.exchange(url, None);
        let until = Self::reuse_until(&answer, false);
        self.outbound
            .cache
            .put(&self.outbound.policy, key, until, answer.clone());
        answer
    }

    fn chases_issuers(&self) -> bool {
        self.outbound.policy.chase_issuers
    }

    fn cached_ocsp(&self, key: &str) -> Option<Vec<u8>> {
        self.outbound.cache.get(key).and_then(Result::ok)
    }

    fn remember_ocsp(&self, key: &str, response: &[u8]) {
        let answer = Ok(response.to_vec());
        let until = Self::reuse_until(&answer, true);
        self.outbound
            .cache
            .put(&self.outbound.policy, key.to_string(), until, answer);
    }
}

fn not_served(url: &str) -> FetchError {
    FetchError::Failed {
        url: url.to_string(),
        detail: "not served by the local publication point".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_ranges_are_named_and_public_addresses_pass() {
        for (ip, kind) in [
            ("127.0.0.1", "a loopback address"),
            ("10.2.3.4", "a private address"),
            ("172.31.255.255", "a private address"),
            ("192.168.1.1", "a private address"),
            ("169.254.169.254", "a link-local address"),
            ("100.64.0.1", "a shared (carrier-grade NAT) address"),
            ("0.0.0.0", "a 'this network' address"),
            ("255.255.255.255", "a reserved or broadcast address"),
            ("::1", "a loopback address"),
            ("fe80::1", "a link-local address"),
            ("fd12::1", "a unique-local (private) address"),
            ("::ffff:127.0.0.1", "a loopback address"),
            ("::ffff:10.0.0.1", "a private address"),
        ] {
            assert_eq!(special_range(ip.parse().unwrap()), Some(kind), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "2a00:1450::1", "1.1.1.1"] {
            assert_eq!(special_range(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn allow_entries_open_exactly_what_they_name() {
        let policy = FetchPolicy {
            allow: ["127.0.0.1:8089", "10.1.0.0/16", "fd00::1"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect(),
            ..FetchPolicy::default()
        };
        let refused = |a: &str| policy.refusal(&a.parse().unwrap());
        assert_eq!(refused("127.0.0.1:8089"), None);
        assert!(refused("127.0.0.1:8090").is_some_and(|w| w.contains("loopback")));
        assert_eq!(refused("10.1.200.3:80"), None);
        assert!(refused("10.2.0.1:80").is_some());
        assert_eq!(refused("[fd00::1]:80"), None);
        assert!(refused("[fd00::2]:80").is_some());
        assert_eq!(refused("8.8.8.8:80"), None);
        for bad in ["10.0.0.0/33", "example.org", "1.2.3.4/x", ""] {
            assert!(bad.parse::<Allowed>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_name_resolving_to_loopback_is_refused_before_connecting() {
        let policy = FetchPolicy::default();
        let why = policy.resolve("localhost:80").unwrap_err();
        assert!(why.contains("loopback"), "{why}");
    }

    #[test]
    fn the_cache_stays_within_its_bounds() {
        let policy = FetchPolicy {
            cache_entries: 3,
            cache_bytes: 1000,
            ..FetchPolicy::default()
        };
        let cache = FetchCache::default();
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..10u64 {
            cache.put(
                &policy,
                format!("k{i}"),
                later + Duration::from_secs(i),
                Ok(vec![0; 300]),
            );
            assert!(cache.len() <= 3);
        }
        // The last one is there; the earliest expiring went first.
        assert!(cache.get("k9").is_some());
        assert!(cache.get("k0").is_none());
        // Too big for the cache at all: not kept.
        cache.put(&policy, "big".into(), later, Ok(vec![0; 2000]));
        assert!(cache.get("big").is_none());
        // Expired entries are not answered.
        cache.put(&policy, "old".into(), Instant::now(), Ok(vec![1]));
        assert!(cache.get("old").is_none());
    }
}
