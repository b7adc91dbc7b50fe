//! Gateway configuration: defaults < TOML file < `SIGNGATE_*` environment < flags.
//!
//! With no file the gateway runs in demo mode: 127.0.0.1:8080, SQLite in `./signgate-data/`,
//! the demo PKI's agency key registered as `demo-agency` with the demo seal, and the demo
//! root CA trusted. See `signgate.example.toml` for every setting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::api::Settings;
use crate::store::KeyRecord;

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
    /// Keys registered (or updated) at start-up.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// `[routing]`: this gateway is a node exchanging edXML packages with peers.
    pub routing: Option<crate::routing::RoutingFileConfig>,
    /// `[tls]`: serve the API over HTTPS, accepting client certificates.
    pub tls: Option<TlsConfig>,
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
    pub fn identity(&self) -> Result<crate::tls::TlsIdentity, String> {
        match (&self.p12, &self.cert, &self.key) {
            (Some(p12), None, None) => {
                let password = match &self.password_env {
                    Some(var) => std::env::var(var)
                        .map_err(|_| format!("tls: environment variable {var} is not set"))?,
                    None => String::new(),
                };
                crate::tls::TlsIdentity::open(p12, &password).map_err(|e| e.to_string())
            }
            (None, Some(cert), Some(key)) => {
                crate::tls::TlsIdentity::from_pem(cert, key).map_err(|e| e.to_string())
            }
            _ => Err("tls: set either p12 or both cert and key".into()),
        }
    }

    /// The listener context: client certificates optional, verified against `client_ca`.
    pub fn acceptor(&self) -> Result<openssl::ssl::SslAcceptor, String> {
        crate::tls::acceptor(
            &self.identity()?,
            &self.client_ca,
            crate::tls::ClientCertificate::Optional,
        )
        .map_err(|e| e.to_string())
    }
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

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: String,
    /// Database URL.
    pub database_url: String,
    /// Settings handed to the API.
    pub settings: Settings,
    /// Keys to register at start-up.
    pub keys: Vec<KeyRecord>,
    /// Submission retention.
    pub retention_days: Option<u32>,
    /// No configuration file: demo PKI, demo client.
    pub demo: bool,
    /// `[routing]`, validated (none: this gateway routes nothing).
    pub routing: Option<crate::routing::RoutingConfig>,
    /// HTTPS for the API (`[tls]`), if configured.
    pub tls: Option<TlsConfig>,
}

/// The repository folder holding `certs/demo` (the working directory, else the source tree).
pub fn demo_root() -> PathBuf {
    if Path::new("certs/demo/agency-signer.p12").exists() {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }
}

impl Config {
    /// Loads `file` (or demo defaults), then the environment, then the flags.
    pub fn load(
        file: Option<&Path>,
        listen: Option<&str>,
        data_dir: Option<&Path>,
    ) -> Result<Self, String> {
        let demo = file.is_none();
        let parsed: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = data_dir
            .map(Path::to_path_buf)
            .or(parsed.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("signgate-data"));
        let database_url = match std::env::var("SIGNGATE_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => match &parsed.database.url {
                Some(url) => url.clone(),
                None => {
                    std::fs::create_dir_all(&data_dir).map_err(|e| {
                        format!("cannot create data folder {}: {e}", data_dir.display())
                    })?;
                    crate::store::Store::sqlite_url(&data_dir)
                }
            },
        };
        let env_password = std::env::var("SIGNGATE_KEY_PASSWORD").ok();
        let mut key_passwords = HashMap::new();
        let mut keys = Vec::new();
        for k in &parsed.keys {
            if let Some(var) = &k.password_env {
                let password = std::env::var(var).map_err(|_| {
                    format!("key '{}': environment variable {var} is not set", k.name)
                })?;
                key_passwords.insert(k.name.clone(), password);
            }
            keys.push(KeyRecord {
                name: k.name.clone(),
                agency: k.agency.clone(),
                p12_path: absolute(&k.p12),
                seal_path: k.seal.as_deref().map(absolute),
                seal_size_mm: k.seal_size_mm,
            });
        }
        let mut trust = parsed.trust.clone();
        let mut default_key_password = env_password;
        if demo {
            let root = demo_root();
            keys.push(KeyRecord {
                name: "demo-agency".into(),
                agency: "demo".into(),
                p12_path: root
                    .join("certs/demo/agency-signer.p12")
                    .display()
                    .to_string(),
                seal_path: Some(
                    root.join("tests/data/images/seal.png")
                        .display()
                        .to_string(),
                ),
                seal_size_mm: Some(36.0),
            });
            key_passwords.insert("demo-agency".into(), "demo".into());
            trust.push(root.join("certs/demo/root-ca.pem"));
            default_key_password = default_key_password.or(Some("demo".into()));
        }
        let receipt_key = parsed
            .receipt_key
            .clone()
            .or_else(|| keys.first().map(|k| k.name.clone()))
            .unwrap_or_else(|| "demo-agency".into());
        let listen = listen
            .map(String::from)
            .or(parsed.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let routing = match &parsed.routing {
            Some(r) => Some(
                crate::routing::RoutingConfig::from_file(r, &trust, |v| std::env::var(v).ok())
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        Ok(Config {
            routing,
            tls: parsed.tls.clone(),
            listen,
            database_url,
            settings: Settings {
                tsa_url: parsed.tsa_url.clone(),
                receipt_key,
                max_body_bytes: parsed.max_body_mib.unwrap_or(64) * 1024 * 1024,
                trust,
                offline: parsed.offline,
                key_passwords,
                default_key_password,
                fetch_timeout: Duration::from_secs(parsed.fetch_timeout_secs.unwrap_or(10)),
                request_timeout: Duration::from_secs(parsed.request_timeout_secs.unwrap_or(300)),
                batch_dir: data_dir.join("batches"),
                spool_dir: data_dir.join("spool"),
            },
            keys,
            retention_days: parsed.retention_days,
            demo,
        })
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
