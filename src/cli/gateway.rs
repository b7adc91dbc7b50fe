//! `signgate serve`, and the administration commands on the same database:
//! `client add|list|revoke`, `key add|list`, `audit verify|checkpoint`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use super::CliError;
use crate::error::ErrorCode;
use crate::gateway::admin::{NewClient, NewKey};
use crate::gateway::{Gateway, GatewayConfig, GatewayError, Services};

/// Where the configuration and the database are.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// TOML configuration file (see signgate.example.toml); none means demo mode.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data folder of the embedded SQLite database (default ./signgate-data).
    #[arg(long)]
    data: Option<PathBuf>,
}

impl StoreArgs {
    pub(super) fn config(&self, listen: Option<&str>) -> Result<GatewayConfig, CliError> {
        Ok(GatewayConfig::load(
            self.config.as_deref(),
            listen,
            self.data.as_deref(),
        )?)
    }
}

/// Arguments of `signgate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Listen address HOST:PORT (port 0 picks a free port); default 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<String>,
    /// Validate the configuration (file, environment, keys, TLS, trust anchors) and exit:
    /// 0 when it is valid, else the error line and its exit code.
    #[arg(long)]
    check_config: bool,
}

/// `signgate client …`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Add a client; prints its bearer token once.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// The client's agency.
        #[arg(long)]
        agency: String,
        /// A human name for the calling system.
        #[arg(long)]
        name: String,
        /// Keys this client may sign with (repeatable; must belong to the same agency).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// The client's TLS certificate (PEM): it authenticates by mutual TLS (`[tls]`)
        /// instead of a bearer token, identified by the certificate's SHA-256 fingerprint.
        #[arg(long)]
        cert: Option<PathBuf>,
    },
    /// List clients (never tokens).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a client; its token stops working at once.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        /// Client id (`cl_…`).
        id: String,
    },
}

/// `signgate key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Register (or update) a key reference and bind its seal image.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// Name used in `?key=`.
        #[arg(long)]
        name: String,
        /// Owning agency.
        #[arg(long)]
        agency: String,
        /// PKCS#12 file (its password comes from the gateway's config or environment).
        #[arg(long)]
        p12: PathBuf,
        /// Seal image (PNG) placed on PDFs signed with this key.
        #[arg(long)]
        seal: Option<PathBuf>,
        /// The seal's real diameter in millimetres.
        #[arg(long, default_value_t = 36.0)]
        seal_size_mm: f64,
    },
    /// List keys.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `signgate audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain (and, with --checkpoint, that nothing after it was cut off), and
    /// that every stored submission, batch and signed batch document has its audit record.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// A checkpoint written by `audit checkpoint`.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Write a gateway-signed checkpoint of the chain head.
    Checkpoint {
        #[command(flatten)]
        store: StoreArgs,
        /// Output file (JSON with the checkpoint and its detached CMS signature).
        #[arg(long)]
        out: PathBuf,
    },
}

impl From<GatewayError> for CliError {
    fn from(e: GatewayError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Runtime::new().map_err(|e| CliError {
        code: ErrorCode::Internal,
        message: format!("cannot start the async runtime: {e}"),
    })
}

/// Opens the gateway's services over the database of `config`.
pub(super) async fn open(config: &GatewayConfig) -> Result<Services, CliError> {
    Ok(Services::open(config).await?)
}

/// `signgate serve`: starts the gateway, prints the ready line, and runs until SIGINT/SIGTERM,
/// then drains every part.
pub fn serve(args: ServeArgs) -> Result<u8, CliError> {
    let config = args.store.config(args.listen.as_deref())?;
    if args.check_config {
        config.check()?;
        println!("configuration valid");
        return Ok(0);
    }
    runtime()?.block_on(async move {
        let running = Gateway::start(config, crate::api::http_app()).await?;
        if let Some(created) = &running.demo_client {
            eprintln!(
                "signgate: demo client {} created; its bearer token (shown once, keep it):\n{}",
                created.client.id, created.token
            );
        }
        if let (Some(node), Some(addr)) = (running.node(), running.routing_addr) {
            eprintln!(
                "signgate: routing node {} listening on https://{addr}/",
                node.config.node_id
            );
        }
        if let Some(addr) = running.publication_addr {
            eprintln!("signgate: demo OCSP/CRL server on http://{addr}/");
        }
        super::server::ready_line(
            if running.api_tls { "https" } else { "http" },
            running.api_addr,
        );
        running.run_until(crate::gateway::termination()).await;
        Ok(0)
    })
}

/// `signgate client …`.
pub fn client(cmd: ClientCommand) -> Result<u8, CliError> {
    runtime()?.block_on(async move {
        match cmd {
            ClientCommand::Add { store, agency, name, keys, cert } => {
                let fingerprint = cert.as_deref().map(certificate_fingerprint).transpose()?;
                let services = open(&store.config(None)?).await?;
                let created = services
                    .add_client(NewClient { agency, name, keys: keys.clone(), cert_fingerprint: fingerprint })
                    .await?;
                let client = &created.client;
                match &client.cert_fingerprint {
                    Some(fp) => println!("{}", json!({"id": client.id, "agency": client.agency, "name": client.name, "keys": keys, "cert_fingerprint": fp})),
                    None => {
                        println!("{}", json!({"id": client.id, "agency": client.agency, "name": client.name, "keys": keys, "token": created.token}));
                        eprintln!("signgate: the token is shown once; the gateway keeps only its SHA-256");
                    }
                }
                services.close().await;
            }
            ClientCommand::List { store } => {
                let services = open(&store.config(None)?).await?;
                for c in services.list_clients().await? {
                    println!("{}", serde_json::to_string(&c).unwrap_or_default());
                }
                services.close().await;
            }
            ClientCommand::Revoke { store, id } => {
                let services = open(&store.config(None)?).await?;
                services.revoke_client(&id).await?;
                println!("revoked {id}");
                services.close().await;
            }
        }
        Ok(0)
    })
}

/// SHA-256 (hex) of the first certificate of a PEM file, as the TLS layer computes it.
fn certificate_fingerprint(path: &Path) -> Result<String, CliError> {
    let pem = crate::fsio::read_input(path)?;
    crate::gateway::admin::certificate_fingerprint(&pem)
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// `signgate key …`.
pub fn key(cmd: KeyCommand) -> Result<u8, CliError> {
    runtime()?.block_on(async move {
        match cmd {
            KeyCommand::Add {
                store,
                name,
                agency,
                p12,
                seal,
                seal_size_mm,
            } => {
                let services = open(&store.config(None)?).await?;
                let record = services
                    .add_key(NewKey {
                        name,
                        agency,
                        p12,
                        seal,
                        seal_size_mm,
                    })
                    .await?;
                println!("{}", serde_json::to_string(&record).unwrap_or_default());
                services.close().await;
            }
            KeyCommand::List { store } => {
                let services = open(&store.config(None)?).await?;
                for k in services.list_keys().await? {
                    println!("{}", serde_json::to_string(&k).unwrap_or_default());
                }
                services.close().await;
            }
        }
        Ok(0)
    })
}

/// `signgate audit …`: exit 0 when the chain is intact, 1 when a problem is found.
pub fn audit(cmd: AuditCommand) -> Result<u8, CliError> {
    runtime()?.block_on(async move {
        match cmd {
            AuditCommand::Verify { store, checkpoint } => {
                let config = store.config(None)?;
                let file = checkpoint
                    .as_deref()
                    .map(crate::fsio::read_input)
                    .transpose()?;
                let services = open(&config).await?;
                let check = services.verify_audit(file.as_deref()).await;
                services.close().await;
                let check = check?;
                let head = check
                    .head
                    .as_ref()
                    .map(|(s, h)| format!("record {s}, hash {h}"))
                    .unwrap_or_else(|| "empty".into());
                for orphan in &check.orphans {
                    println!("not in the audit chain: {orphan}");
                }
                match &check.problem {
                    None if !check.orphans.is_empty() => {
                        println!(
                            "audit chain intact ({} records, head {head}) but {} stored item(s) have no audit record",
                            check.records,
                            check.orphans.len()
                        );
                        Ok(1)
                    }
                    None => {
                        println!(
                            "audit chain intact: {} records, head {head}{}",
                            check.records,
                            if file.is_some() {
                                ", checkpoint matches"
                            } else {
                                ""
                            }
                        );
                        Ok(0)
                    }
                    Some(problem) => {
                        println!("audit chain BROKEN: {problem}");
                        Ok(1)
                    }
                }
            }
            AuditCommand::Checkpoint { store, out } => {
                let services = open(&store.config(None)?).await?;
                let created = services.create_checkpoint().await;
                services.close().await;
                let (file, head) = created?;
                crate::fsio::write_output(&out, &file)?;
                println!("checkpoint at record {}, hash {}", head.seq, head.hash);
                Ok(0)
            }
        }
    })
}
