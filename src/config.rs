//! The gateway's TOML configuration file, as written (see `signgate.example.toml` for every
//! setting). [`crate::gateway::GatewayConfig`] validates it, with the environment and the
//! flags, into what the gateway runs with.

use std::path::PathBuf;

use serde::Deserialize;

/// The TOML file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `HOST:PORT`.
    pub listen: Option<String>,
    /// Folder for the SQLite database (when no `database.url`).
    pub data_dir: Option<PathBuf>,
    /// `[database] url = "postgres://…"`.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// RFC 3161 TSA URL.
    pub tsa_url: Option<String>,
    /// Key that signs receipts and checkpoints (default: the first `[[keys]]`).
    pub receipt_key: Option<String>,
    /// Request body limit in MiB (default 64).
    pub max_body_mib: Option<usize>,
    /// Days stored submissions are kept (default: forever).
    pub retention_days: Option<u32>,
    /// Trust anchors (PEM files or folders).
    #[serde(default)]
    pub trust: Vec<PathBuf>,
    /// Validate offline (embedded revocation data only).
    #[serde(default)]
    pub offline: bool,
    /// Seconds to wait for a TSA/OCSP/CRL server (default 10).
    pub fetch_timeout_secs: Option<u64>,
    /// Seconds a request may take before it is answered `TIMEOUT` (default 300).
    pub request_timeout_secs: Option<u64>,
    /// Seconds a shutdown (SIGTERM) lets requests in flight finish before closing them
    /// (default 30).
    pub shutdown_timeout_secs: Option<u64>,
    /// Hours an answered `Idempotency-Key` replays its answer (default 24).
    pub idempotency_ttl_hours: Option<u64>,
    /// Folder of the batches' inputs and outputs (default `DATA/batches`). Gateway processes
    /// sharing one PostgreSQL database set it to one folder on shared storage, so that any of
    /// them serves and resumes any batch.
    pub batch_dir: Option<PathBuf>,
    /// Seconds a gateway process holds a running batch without renewing its lease before
    /// another process may take it over (default 30).
    pub batch_lease_secs: Option<u64>,
    /// Keys registered (or updated) at start-up.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// `[routing]`: this gateway is a node exchanging edXML packages with peers.
    pub routing: Option<crate::routing::RoutingFileConfig>,
    /// `[tls]`: serve the API over HTTPS, accepting client certificates.
    pub tls: Option<TlsConfig>,
    /// `[limits]`: rate, concurrency, connection, timeout and memory limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[fetch]`: the outbound fetch policy of verification (AIA, CRL, OCSP).
    #[serde(default)]
    pub fetch: FetchFileConfig,
}

/// `[limits]`, as written: every field optional, defaults in
/// [`crate::gateway::config::Limits::default`]. A rate of 0 or a count of 0 turns that limit off.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per second one client (token or certificate) may make, sustained.
    pub client_rate_per_sec: Option<f64>,
    /// Requests one client may make in a burst above its rate.
    pub client_burst: Option<u32>,
    /// Requests one client may have in flight at once.
    pub client_concurrency: Option<usize>,
    /// Requests per second from one IP address, sustained.
    pub ip_rate_per_sec: Option<f64>,
    /// Requests one IP address may make in a burst above its rate.
    pub ip_burst: Option<u32>,
    /// Requests one IP address may have in flight at once.
    pub ip_concurrency: Option<usize>,
    /// Connections open at once on the API listener.
    pub max_connections: Option<usize>,
    /// Seconds a client may take to send a request's headers.
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a client may take to send a request's body.
    pub body_read_timeout_secs: Option<u64>,
    /// Seconds a connection may stay open with no request in flight.
    pub idle_timeout_secs: Option<u64>,
    /// MiB of request bodies held in memory at once by verifications and submissions.
    pub body_memory_mib: Option<u64>,
    /// KiB of a verify or submission body kept in memory while it arrives; beyond, it is
    /// spooled to `data_dir/spool`.
    pub spool_threshold_kib: Option<u64>,
}

/// `[fetch]`: what verification may fetch (see `crate::gateway::fetch`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchFileConfig {
    /// Addresses outside the public internet that may be fetched anyway: `ADDRESS`,
    /// `ADDRESS/PREFIX` or `ADDRESS:PORT` (default: none).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Largest answer accepted, in KiB (default 16384).
    pub max_response_kib: Option<u64>,
    /// Fetch missing intermediates from AIA caIssuers URLs (default false).
    pub chase_issuers: Option<bool>,
    /// Most answers cached (default 256).
    pub cache_entries: Option<usize>,
}

/// `[tls]`: the API listener's certificate (PKCS#12, or PEM certificate and key) and the CA
/// certificates that client certificates must chain to. Without `client_ca` no client
/// certificate is asked for and clients use bearer tokens over HTTPS.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PKCS#12 file with the server certificate, key and chain.
    pub p12: Option<PathBuf>,
    /// Environment variable holding the PKCS#12 password.
    pub password_env: Option<String>,
    /// PEM certificate (leaf first, then intermediates), with `key`, instead of `p12`.
    pub cert: Option<PathBuf>,
    /// Unencrypted PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// PEM files of the CAs that issue client certificates.
    #[serde(default)]
    pub client_ca: Vec<PathBuf>,
}

impl TlsConfig {
    /// Opens the server identity (the password from `password_env`, never from the file).
    pub fn identity(&self) -> Result<crate::tls::TlsIdentity, TlsConfigError> {
        match (&self.p12, &self.cert, &self.key) {
            (Some(p12), None, None) => {
                let password = match &self.password_env {
                    Some(var) => std::env::var(var)
                        .map_err(|_| TlsConfigError::PasswordEnvMissing(var.clone()))?,
                    None => String::new(),
                };
                Ok(crate::tls::TlsIdentity::open(p12, &password)?)
            }
            (None, Some(cert), Some(key)) => Ok(crate::tls::TlsIdentity::from_pem(cert, key)?),
            _ => Err(TlsConfigError::Ambiguous),
        }
    }

    /// The listener context: client certificates optional, verified against `client_ca`.
    pub fn acceptor(&self) -> Result<openssl::ssl::SslAcceptor, TlsConfigError> {
        Ok(crate::tls::acceptor(
            &self.identity()?,
            &self.client_ca,
            crate::tls::ClientCertificate::Optional,
        )?)
    }
}

/// Why the `[tls]` table cannot give a listener.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// `password_env` names a variable that is not set.
    #[error("tls: environment variable {0} is not set")]
    PasswordEnvMissing(String),
    /// Neither `p12` alone nor `cert` with `key` is given.
    #[error("tls: set either p12 or both cert and key")]
    Ambiguous,
    /// The identity or the CA files cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// `[database]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://PATH`.
    pub url: Option<String>,
}

/// `[[keys]]`: a key reference; the password comes from the environment variable named by
/// `password_env` (else `SIGNGATE_KEY_PASSWORD`), never from the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Name used in `?key=`.
    pub name: String,
    /// Owning agency.
    pub agency: String,
    /// PKCS#12 file.
    pub p12: PathBuf,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// Seal image (PNG).
    pub seal: Option<PathBuf>,
    /// Seal diameter in millimetres.
    pub seal_size_mm: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_config_parses_and_rejects_unknown_fields() {
        let ok: FileConfig = toml::from_str(
            "listen = \"0.0.0.0:9000\"\n[database]\nurl = \"postgres://x\"\n[[keys]]\nname = \"k\"\nagency = \"a\"\np12 = \"k.p12\"\n",
        )
        .expect("parses");
        assert_eq!(ok.keys.len(), 1);
        assert_eq!(ok.database.url.as_deref(), Some("postgres://x"));
        assert!(toml::from_str::<FileConfig>("nonsense = 1").is_err());
    }
}
