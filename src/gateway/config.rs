//! The gateway's configuration, validated: defaults < TOML file ([`crate::config`]) <
//! `SIGNGATE_*` environment < flags.
//!
//! With no file the gateway runs in demo mode: 127.0.0.1:8080, SQLite in `./signgate-data/`,
//! the built-in demo PKI's agency key registered as `demo-agency` with the demo seal, the demo
//! root CA trusted, and the demo PKI's publication point answered in-process. Key passwords
//! are [`Secret`]s: their `Debug` prints `[REDACTED]` and they have no `Display`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use time::OffsetDateTime;

use super::demo::{self, DemoAssets};
use super::GatewayError;
use crate::config::{FileConfig, TlsConfig};
use crate::publish::Publication;
use crate::sign::HttpTimeStamper;
use crate::store::KeyRecord;
use crate::verify::{self, TrustList, ValidationContext};

/// A password or PIN: never printed, by `Debug` or otherwise.
pub type Secret = secrecy::SecretString;

/// Seconds a shutdown waits for requests in flight by default.
pub const DEFAULT_DRAIN_SECS: u64 = 30;

/// A publication point answered in-process: revocation URLs under `base_url` are served by
/// `publication` without a network round trip.
#[derive(Debug, Clone)]
pub struct LocalPublication {
    /// e.g. `http://127.0.0.1:8089/`.
    pub base_url: String,
    /// The CA folder and OCSP responder.
    pub publication: Arc<Publication>,
}

/// A sustained request rate with a burst allowance (a token bucket).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_sec: f64,
    /// Requests allowed at once above the rate (the bucket's size).
    pub burst: u32,
}

impl Rate {
    /// `per_sec` with `burst`, or no limit when either is 0.
    fn limit(per_sec: f64, burst: u32) -> Option<Rate> {
        (per_sec > 0.0 && burst > 0).then_some(Rate { per_sec, burst })
    }
}

/// Limits against one client and on the API listener (`[limits]`); `None` or 0 means off.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Requests per client (bearer token or client certificate).
    pub client_rate: Option<Rate>,
    /// Requests in flight per client.
    pub client_concurrency: usize,
    /// Requests per remote IP address.
    pub ip_rate: Option<Rate>,
    /// Requests in flight per remote IP address.
    pub ip_concurrency: usize,
    /// Connections open at once; beyond it an idle connection is closed to make room, or the
    /// new one is closed at once.
    pub max_connections: usize,
    /// Longest time from a request's first byte to its last header byte.
    pub header_read_timeout: Duration,
    /// Longest time from a request's headers to the last byte of its body.
    pub body_read_timeout: Duration,
    /// Longest time a connection stays open with no request in flight.
    pub idle_timeout: Duration,
    /// Bytes of request bodies that verifications and submissions hold in memory at once.
    pub body_memory_bytes: u64,
    /// Bytes of a verify or submission body kept in memory while it arrives; the rest is
    /// spooled to disk.
    pub spool_threshold: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_file(&crate::config::LimitsConfig::default())
    }
}

impl Limits {
    /// The limits of a `[limits]` table, with the defaults for what it leaves out.
    pub fn from_file(f: &crate::config::LimitsConfig) -> Self {
        Self {
            client_rate: Rate::limit(
                f.client_rate_per_sec.unwrap_or(50.0),
                f.client_burst.unwrap_or(200),
            ),
            client_concurrency: f.client_concurrency.unwrap_or(32),
            ip_rate: Rate::limit(
                f.ip_rate_per_sec.unwrap_or(200.0),
                f.ip_burst.unwrap_or(800),
            ),
            ip_concurrency: f.ip_concurrency.unwrap_or(128),
            max_connections: match f.max_connections.unwrap_or(512) {
                0 => usize::MAX,
                n => n,
            },
            header_read_timeout: seconds(f.header_read_timeout_secs.unwrap_or(10)),
            body_read_timeout: seconds(f.body_read_timeout_secs.unwrap_or(120)),
            idle_timeout: seconds(f.idle_timeout_secs.unwrap_or(30)),
            body_memory_bytes: f.body_memory_mib.unwrap_or(256) << 20,
            spool_threshold: f.spool_threshold_kib.unwrap_or(1024) << 10,
        }
    }
}

/// `n` seconds, or (0) no limit: a century.
fn seconds(n: u64) -> Duration {
    match n {
        0 => Duration::from_secs(100 * 365 * 24 * 3600),
        n => Duration::from_secs(n),
    }
}

/// Default of `batch_lease_secs`.
pub const DEFAULT_BATCH_LEASE_SECS: u64 = 30;

/// What the services need at run time.
#[derive(Debug, Clone)]
pub struct Settings {
    /// RFC 3161 TSA for B-T signatures and receipt time-stamps.
    pub tsa_url: Option<String>,
    /// Key that signs submission receipts and audit checkpoints.
    pub receipt_key: String,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Trust anchors (PEM files or folders) for verification.
    pub trust: Vec<PathBuf>,
    /// Validate with embedded data only (no OCSP/CRL fetches).
    pub offline: bool,
    /// Key passwords by key name (from config or environment).
    pub key_passwords: HashMap<String, Secret>,
    /// Password for keys without their own (env `SIGNGATE_KEY_PASSWORD`, or `demo` in demo mode).
    pub default_key_password: Option<Secret>,
    /// Seconds to wait for a TSA, OCSP responder or CRL server.
    pub fetch_timeout: Duration,
    /// Longest time a request may take before it is answered `TIMEOUT` (504).
    pub request_timeout: Duration,
    /// How long a shutdown lets requests in flight finish before closing them.
    pub drain_timeout: Duration,
    /// Folder of the batches' inputs and outputs (`batch_dir`, default `DATA/batches`);
    /// shared by every gateway process of one PostgreSQL database.
    pub batch_dir: PathBuf,
    /// How long a running batch stays leased to one process without a renewal
    /// (`batch_lease_secs`, default 30); see [`super::batches`].
    pub batch_lease: Duration,
    /// Folder where large request bodies are spooled to disk (`DATA/spool`).
    pub spool_dir: PathBuf,
    /// How long an answered `Idempotency-Key` replays (`idempotency_ttl_hours`, default 24).
    pub idempotency_ttl: Duration,
    /// Publication points answered in-process (the demo PKI's in demo mode).
    pub local_publications: Vec<LocalPublication>,
    /// Rate, concurrency, connection, timeout and memory limits.
    pub limits: Limits,
    /// Outbound fetch policy (`[fetch]`) and the process's cache of fetched answers.
    pub fetch: super::fetch::OutboundFetch,
}

impl Settings {
    /// Settings for a gateway with data in `data_dir` and everything else at its default.
    pub fn new(data_dir: &Path, receipt_key: impl Into<String>) -> Self {
        Self {
            tsa_url: None,
            receipt_key: receipt_key.into(),
            max_body_bytes: 64 * 1024 * 1024,
            trust: Vec::new(),
            offline: false,
            key_passwords: HashMap::new(),
            default_key_password: None,
            fetch_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(DEFAULT_DRAIN_SECS),
            batch_dir: data_dir.join("batches"),
            batch_lease: Duration::from_secs(DEFAULT_BATCH_LEASE_SECS),
            spool_dir: data_dir.join("spool"),
            idempotency_ttl: Duration::from_secs(super::idempotency::DEFAULT_TTL_HOURS * 3600),
            local_publications: Vec::new(),
            limits: Limits::default(),
            fetch: Default::default(),
        }
    }

    /// The password of key `name`, if any is configured.
    pub fn key_password(&self, name: &str) -> Option<&Secret> {
        self.key_passwords
            .get(name)
            .or(self.default_key_password.as_ref())
    }

    /// The password of key `name` exposed for opening the key, empty when none is configured.
    pub(crate) fn key_password_text(&self, name: &str) -> String {
        self.key_password(name)
            .map(|s| s.expose_secret().to_string())
            .unwrap_or_default()
    }

    /// The revocation fetcher: in-process publication points first, then HTTP.
    pub fn fetcher(&self) -> Box<dyn verify::Fetcher> {
        Box::new(super::fetch::GatewayFetcher::new(
            self.local_publications.clone(),
            self.fetch_timeout,
            self.fetch.clone(),
        ))
    }

    /// The validation context for a verification now.
    pub fn validation_context(&self) -> Result<ValidationContext, crate::Error> {
        let mut lists = Vec::new();
        for path in &self.trust {
            lists.push(
                TrustList::load("default", path).map_err(|e| crate::Error::Usage(e.to_string()))?,
            );
        }
        Ok(ValidationContext {
            at: OffsetDateTime::now_utc(),
            trust_lists: lists,
            fetcher: (!self.offline).then(|| self.fetcher()),
        })
    }

    /// The TSA client of B-T signatures and receipts, if a TSA is configured.
    pub fn timestamper(&self) -> Option<HttpTimeStamper> {
        self.tsa_url
            .as_ref()
            .map(|url| HttpTimeStamper::new(url, self.fetch_timeout))
    }
}

/// The validated configuration of one gateway.
#[derive(Clone)]
pub struct GatewayConfig {
    /// Listen address of the API.
    pub listen: String,
    /// Database URL.
    pub database_url: String,
    /// What the services need.
    pub settings: Settings,
    /// Keys to register at start-up.
    pub keys: Vec<KeyRecord>,
    /// Submission retention.
    pub retention_days: Option<u32>,
    /// No configuration file: demo PKI, demo client, in-process publication point.
    pub demo: Option<DemoAssets>,
    /// `[routing]`, validated (none: this gateway routes nothing).
    pub routing: Option<crate::routing::RoutingConfig>,
    /// HTTPS for the API (`[tls]`), if configured.
    pub tls: Option<TlsConfig>,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("listen", &self.listen)
            .field("settings", &self.settings)
            .field("keys", &self.keys)
            .field("retention_days", &self.retention_days)
            .field("demo", &self.demo)
            .field("routing", &self.routing)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl GatewayConfig {
    /// Loads `file` (or the demo defaults), then the environment, then the flags.
    pub fn load(
        file: Option<&Path>,
        listen: Option<&str>,
        data_dir: Option<&Path>,
    ) -> Result<Self, GatewayError> {
        Self::load_with(file, listen, data_dir, |v| std::env::var(v).ok())
    }

    /// [`GatewayConfig::load`] with the environment given as a function (for tests).
    pub fn load_with(
        file: Option<&Path>,
        listen: Option<&str>,
        data_dir: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GatewayError> {
        let parsed: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    GatewayError::ConfigMissing(format!(
                        "cannot read config {}: {e}",
                        path.display()
                    ))
                })?;
                toml::from_str(&text).map_err(|e| {
                    GatewayError::Config(format!("config {}: {}", path.display(), e.message()))
                })?
            }
            None => FileConfig::default(),
        };
        let data_dir = data_dir
            .map(Path::to_path_buf)
            .or(parsed.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("signgate-data"));
        let created = |e: std::io::Error| {
            GatewayError::Config(format!(
                "cannot create data folder {}: {e}",
                data_dir.display()
            ))
        };
        let database_url = match env("SIGNGATE_DATABASE_URL") {
            Some(url) if !url.is_empty() => url,
            _ => match &parsed.database.url {
                Some(url) => url.clone(),
                None => {
                    crate::fsio::create_private_dir(&data_dir).map_err(created)?;
                    crate::store::Store::sqlite_url(&data_dir)
                }
            },
        };
        let mut settings = Settings::new(&data_dir, String::new());
        settings.default_key_password = env("SIGNGATE_KEY_PASSWORD").map(Secret::from);
        let mut keys = Vec::new();
        for k in &parsed.keys {
            if let Some(var) = &k.password_env {
                let password = env(var).ok_or_else(|| {
                    GatewayError::Config(format!(
                        "key '{}': environment variable {var} is not set",
                        k.name
                    ))
                })?;
                settings
                    .key_passwords
                    .insert(k.name.clone(), Secret::from(password));
            }
            keys.push(KeyRecord {
                name: k.name.clone(),
                agency: k.agency.clone(),
                p12_path: absolute(&k.p12),
                seal_path: k.seal.as_deref().map(absolute),
                seal_size_mm: k.seal_size_mm,
            });
        }
        settings.trust = parsed.trust.clone();
        let demo = match file {
            Some(_) => None,
            None => {
                let assets = DemoAssets::write(&data_dir).map_err(created)?;
                keys.push(KeyRecord {
                    name: demo::KEY_NAME.into(),
                    agency: demo::AGENCY.into(),
                    p12_path: assets.agency_key().display().to_string(),
                    seal_path: Some(assets.seal().display().to_string()),
                    seal_size_mm: Some(demo::SEAL_SIZE_MM),
                });
                settings
                    .key_passwords
                    .insert(demo::KEY_NAME.into(), Secret::from(demo::PASSWORD));
                settings.trust.push(assets.root_ca());
                if settings.default_key_password.is_none() {
                    settings.default_key_password = Some(Secret::from(demo::PASSWORD));
                }
                let responder = crate::keys::Pkcs12Key::open(&assets.ocsp_key(), demo::PASSWORD)
                    .map_err(crate::Error::from)?;
                let publication = Publication::open(assets.dir.clone(), Arc::new(responder))
                    .map_err(|e| GatewayError::Config(e.to_string()))?;
                settings.local_publications.push(LocalPublication {
                    base_url: demo::PUBLICATION_BASE_URL.into(),
                    publication: Arc::new(publication),
                });
                Some(assets)
            }
        };
        settings.receipt_key = parsed
            .receipt_key
            .clone()
            .or_else(|| keys.first().map(|k| k.name.clone()))
            .unwrap_or_else(|| demo::KEY_NAME.into());
        settings.tsa_url = parsed.tsa_url.clone();
        settings.max_body_bytes = parsed.max_body_mib.unwrap_or(64) * 1024 * 1024;
        settings.offline = parsed.offline;
        let mut fetch = super::fetch::FetchPolicy::from_file(&parsed.fetch)
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        if demo.is_some() {
            // The demo PKI's publication point (answered in-process anyway).
            let point = demo::PUBLICATION_BASE_URL.trim_start_matches("http://");
            fetch.allow.extend(point.trim_end_matches('/').parse().ok());
        }
        settings.fetch = super::fetch::OutboundFetch::new(fetch);
        settings.fetch_timeout = Duration::from_secs(parsed.fetch_timeout_secs.unwrap_or(10));
        settings.request_timeout = Duration::from_secs(parsed.request_timeout_secs.unwrap_or(300));
        settings.drain_timeout =
            Duration::from_secs(parsed.shutdown_timeout_secs.unwrap_or(DEFAULT_DRAIN_SECS));
        settings.idempotency_ttl = Duration::from_secs(
            parsed
                .idempotency_ttl_hours
                .unwrap_or(super::idempotency::DEFAULT_TTL_HOURS)
                * 3600,
        );
        settings.limits = Limits::from_file(&parsed.limits);
        if let Some(dir) = &parsed.batch_dir {
            settings.batch_dir = dir.clone();
        }
        settings.batch_lease = Duration::from_secs(
            parsed
                .batch_lease_secs
                .unwrap_or(DEFAULT_BATCH_LEASE_SECS)
                .max(1),
        );
        let listen = listen
            .map(String::from)
            .or(parsed.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let routing = match &parsed.routing {
            Some(r) => Some(
                crate::routing::RoutingConfig::from_file(r, &settings.trust, &env)
                    .map_err(crate::Error::from)?,
            ),
            None => None,
        };
        Ok(GatewayConfig {
            routing,
            tls: parsed.tls.clone(),
            listen,
            database_url,
            settings,
            keys,
            retention_days: parsed.retention_days,
            demo,
        })
    }

    /// Checks what start-up would need beyond parsing, without opening the database: the
    /// listen address, the TLS identity, the key files and their passwords, the seals and the
    /// trust anchors (`signgate serve --check-config`). Every failure is a configuration
    /// error naming what is wrong.
    pub fn check(&self) -> Result<(), GatewayError> {
        let invalid =
            |what: &str, e: &dyn std::fmt::Display| GatewayError::Config(format!("{what}: {e}"));
        super::listen_address(&self.listen)?;
        if let Some(tls) = &self.tls {
            tls.acceptor().map_err(|e| invalid("[tls]", &e))?;
        }
        for key in &self.keys {
            let what = format!("key '{}' ({})", key.name, key.p12_path);
            let password = self.settings.key_password_text(&key.name);
            crate::keys::Pkcs12Key::open(Path::new(&key.p12_path), &password)
                .map_err(|e| invalid(&what, &e))?;
            if let Some(seal) = &key.seal_path {
                if !Path::new(seal).is_file() {
                    return Err(invalid(&what, &format!("seal {seal} does not exist")));
                }
            }
        }
        self.settings
            .validation_context()
            .map_err(|e| invalid("trust", &e))?;
        Ok(())
    }
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = |v: &str| (v == "SIGNGATE_KEY_PASSWORD").then(|| "hunter2-s3cret".to_string());
        let config =
            GatewayConfig::load_with(None, None, Some(tmp.path()), env).expect("demo config");
        assert_eq!(
            config
                .settings
                .key_password("other")
                .map(|s| s.expose_secret()),
            Some("hunter2-s3cret")
        );
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("password: \"demo\""), "{printed}");
    }

    #[test]
    fn demo_mode_needs_no_working_directory_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config =
            GatewayConfig::load_with(None, None, Some(tmp.path()), |_| None).expect("demo");
        let key = &config.keys[0];
        assert!(key.p12_path.starts_with(&*tmp.path().to_string_lossy()));
        config.check().expect("the demo configuration is valid");
        assert_eq!(config.settings.local_publications.len(), 1);
    }
}
