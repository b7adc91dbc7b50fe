//! `signgate serve`, and the administration commands on the same database:
//! `client add|list|revoke`, `key add|list`, `audit verify|checkpoint`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::json;

use super::CliError;
use crate::api::{self, AppState};
use crate::config::Config;
use crate::error::ErrorCode;
use crate::store::{AuditEntry, Client, KeyRecord, Store};

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
    pub(super) fn config(&self, listen: Option<&str>) -> Result<Config, CliError> {
        Config::load(self.config.as_deref(), listen, self.data.as_deref()).map_err(CliError::usage)
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
    /// Check the hash chain (and, with --checkpoint, that nothing after it was cut off).
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

fn internal(message: impl Into<String>) -> CliError {
    CliError {
        code: ErrorCode::Internal,
        message: message.into(),
    }
}

pub(super) fn db_error(e: crate::store::StoreError) -> CliError {
    e.into()
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Runtime::new()
        .map_err(|e| internal(format!("cannot start the async runtime: {e}")))
}

/// Opens the database and registers the configured keys.
pub(super) async fn open(config: &Config) -> Result<Store, CliError> {
    let store = Store::open(&config.database_url).await.map_err(db_error)?;
    let now = api::now_rfc3339();
    for key in &config.keys {
        store.upsert_key(key, &now).await.map_err(db_error)?;
    }
    Ok(store)
}

async fn admin_audit(
    store: &Store,
    agency: &str,
    action: &str,
    subject: serde_json::Value,
) -> Result<i64, CliError> {
    let entry = AuditEntry {
        agency: agency.into(),
        client: "admin".into(),
        action: action.into(),
        subject,
    };
    Ok(store
        .append_audit(&entry, &api::now_rfc3339())
        .await
        .map_err(db_error)?
        .seq)
}

/// Adds a client and grants it `keys`; returns it and its token (unusable and never shown
/// for a client identified by its certificate's `cert_fingerprint`).
pub(super) async fn add_client(
    store: &Store,
    agency: &str,
    name: &str,
    keys: &[String],
    cert_fingerprint: Option<String>,
) -> Result<(Client, String), CliError> {
    for k in keys {
        match store.key(k).await.map_err(db_error)? {
            Some(r) if r.agency == agency => {}
            Some(_) => {
                return Err(CliError::usage(format!(
                    "key '{k}' belongs to another agency"
                )))
            }
            None => {
                return Err(CliError::usage(format!(
                    "no key named '{k}' (add it with `signgate key add`)"
                )))
            }
        }
    }
    let (token, hash) = api::new_token();
    let client = Client {
        id: api::random_id("cl_"),
        agency: agency.into(),
        name: name.into(),
        revoked: false,
        created_at: api::now_rfc3339(),
        token_sha256: hash,
        cert_fingerprint,
    };
    store.add_client(&client).await.map_err(db_error)?;
    for k in keys {
        store.grant(&client.id, k).await.map_err(db_error)?;
    }
    admin_audit(
        store,
        agency,
        "client.add",
        json!({"id": client.id, "name": name, "keys": keys, "cert_fingerprint": client.cert_fingerprint}),
    )
    .await?;
    Ok((client, token))
}

/// `signgate serve`.
pub fn serve(args: ServeArgs) -> Result<u8, CliError> {
    let config = args.store.config(args.listen.as_deref())?;
    let addr = super::server::listen_address(&config.listen)?;
    let tls = match &config.tls {
        Some(tls) => Some(std::sync::Arc::new(
            tls.acceptor().map_err(CliError::usage)?,
        )),
        None => None,
    };
    super::server::run_tls_with(addr, "gateway", tls, async move {
        let store = open(&config).await?;
        if config.demo && store.count_clients().await.map_err(db_error)? == 0 {
            let (client, token) = add_client(
                &store,
                "demo",
                "demo client",
                &["demo-agency".to_string()],
                None,
            )
            .await?;
            eprintln!(
                "signgate: demo client {} created; its bearer token (shown once, keep it):\n{token}",
                client.id
            );
        }
        if let Some(days) = config.retention_days {
            spawn_retention(store.clone(), days);
        }
        let state = AppState::new(store.clone(), config.settings.clone());
        let resumed = api::batches::resume(&state).await.map_err(db_error)?;
        if resumed > 0 {
            eprintln!("signgate: resuming {resumed} unfinished batch(es)");
        }
        let router = api::router(state);
        match &config.routing {
            Some(routing) => {
                let node = super::route::start_node(routing, store, &config.settings).await?;
                Ok(router.layer(axum::Extension(node)))
            }
            None => Ok(router),
        }
    })
}

/// Deletes submissions older than `days`, now and then every hour.
fn spawn_retention(store: Store, days: u32) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days));
            if let Ok(cutoff) = cutoff.format(&time::format_description::well_known::Rfc3339) {
                match store.purge_submissions_before(&cutoff).await {
                    Ok(n) if n > 0 => {
                        tracing::info!(purged = n, "retention: old submissions deleted")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "retention purge failed"),
                }
            }
        }
    });
}

/// `signgate client …`.
pub fn client(cmd: ClientCommand) -> Result<u8, CliError> {
    runtime()?.block_on(async move {
        match cmd {
            ClientCommand::Add { store, agency, name, keys, cert } => {
                let fingerprint = cert.as_deref().map(certificate_fingerprint).transpose()?;
                let db = open(&store.config(None)?).await?;
                let (client, token) = add_client(&db, &agency, &name, &keys, fingerprint).await?;
                match &client.cert_fingerprint {
                    Some(fp) => println!("{}", json!({"id": client.id, "agency": client.agency, "name": client.name, "keys": keys, "cert_fingerprint": fp})),
                    None => {
                        println!("{}", json!({"id": client.id, "agency": client.agency, "name": client.name, "keys": keys, "token": token}));
                        eprintln!("signgate: the token is shown once; the gateway keeps only its SHA-256");
                    }
                }
                db.close().await;
            }
            ClientCommand::List { store } => {
                let db = open(&store.config(None)?).await?;
                for c in db.list_clients().await.map_err(db_error)? {
                    println!("{}", serde_json::to_string(&c).unwrap_or_default());
                }
                db.close().await;
            }
            ClientCommand::Revoke { store, id } => {
                let db = open(&store.config(None)?).await?;
                let client = db.list_clients().await.map_err(db_error)?.into_iter().find(|c| c.id == id);
                let Some(client) = client else {
                    return Err(CliError { code: ErrorCode::InputMissing, message: format!("no client '{id}'") });
                };
                db.revoke_client(&id).await.map_err(db_error)?;
                admin_audit(&db, &client.agency, "client.revoke", json!({"id": id})).await?;
                println!("revoked {id}");
                db.close().await;
            }
        }
        Ok(0)
    })
}

/// SHA-256 (hex) of the first certificate of a PEM file, as the TLS layer computes it.
fn certificate_fingerprint(path: &Path) -> Result<String, CliError> {
    let pem = crate::fsio::read_input(path)?;
    let cert = openssl::x509::X509::from_pem(&pem)
        .map_err(|_| CliError::usage(format!("{}: not a PEM certificate", path.display())))?;
    let der = cert.to_der().map_err(|e| internal(e.to_string()))?;
    Ok(crate::tls::PeerCertificate(std::sync::Arc::new(der)).fingerprint())
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
                for path in std::iter::once(&p12).chain(seal.as_ref()) {
                    if !path.is_file() {
                        return Err(CliError {
                            code: ErrorCode::InputMissing,
                            message: format!("{} does not exist", path.display()),
                        });
                    }
                }
                if !(seal_size_mm > 0.0 && seal_size_mm <= 100.0) {
                    return Err(CliError::usage("--seal-size-mm must be between 0 and 100"));
                }
                let db = open(&store.config(None)?).await?;
                let abs = |p: &Path| {
                    std::path::absolute(p)
                        .unwrap_or_else(|_| p.to_path_buf())
                        .display()
                        .to_string()
                };
                let record = KeyRecord {
                    name: name.clone(),
                    agency: agency.clone(),
                    p12_path: abs(&p12),
                    seal_path: seal.as_deref().map(abs),
                    seal_size_mm: seal.as_ref().map(|_| seal_size_mm),
                };
                db.upsert_key(&record, &api::now_rfc3339())
                    .await
                    .map_err(db_error)?;
                admin_audit(
                    &db,
                    &agency,
                    "key.add",
                    json!({"name": name, "p12": record.p12_path}),
                )
                .await?;
                println!("{}", serde_json::to_string(&record).unwrap_or_default());
                db.close().await;
            }
            KeyCommand::List { store } => {
                let db = open(&store.config(None)?).await?;
                for k in db.list_keys().await.map_err(db_error)? {
                    println!("{}", serde_json::to_string(&k).unwrap_or_default());
                }
                db.close().await;
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
                let cp = match &checkpoint {
                    Some(path) => Some(read_checkpoint(path, &config)?),
                    None => None,
                };
                let db = open(&config).await?;
                let check = db
                    .verify_audit(cp.as_ref().map(|(s, h)| (*s, h.as_str())))
                    .await
                    .map_err(db_error)?;
                db.close().await;
                let head = check
                    .head
                    .as_ref()
                    .map(|(s, h)| format!("record {s}, hash {h}"))
                    .unwrap_or_else(|| "empty".into());
                match &check.problem {
                    None => {
                        println!(
                            "audit chain intact: {} records, head {head}{}",
                            check.records,
                            if cp.is_some() {
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
                let config = store.config(None)?;
                let db = open(&config).await?;
                let (seq, hash) = db.audit_head().await.map_err(db_error)?;
                let record = db
                    .key(&config.settings.receipt_key)
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| {
                        CliError::usage(format!(
                            "receipt key '{}' is not registered",
                            config.settings.receipt_key
                        ))
                    })?;
                db.close().await;
                let checkpoint = json!({"seq": seq, "hash": hash, "at": api::now_rfc3339()});
                let canonical = crate::store::audit::canonical_json(&checkpoint);
                let password = config
                    .settings
                    .key_password(&record.name)
                    .unwrap_or_default()
                    .to_string();
                let key = crate::keys::Pkcs12Key::open(Path::new(&record.p12_path), &password)?;
                let p7s =
                    api::sign_detached_blocking(&key, canonical.as_bytes(), &config.settings)?;
                let file = json!({
                    "checkpoint": canonical,
                    "signature": base64::engine::general_purpose::STANDARD.encode(p7s),
                });
                crate::fsio::write_output(&out, format!("{file:#}\n").as_bytes())?;
                println!("checkpoint at record {seq}, hash {hash}");
                Ok(0)
            }
        }
    })
}

/// Reads a checkpoint file and checks its signature against the configured trust anchors.
fn read_checkpoint(path: &Path, config: &Config) -> Result<(i64, String), CliError> {
    let bad = |why: String| CliError {
        code: ErrorCode::Usage,
        message: format!("checkpoint {}: {why}", path.display()),
    };
    let text = crate::fsio::read_input(path)?;
    let file: serde_json::Value = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let canonical = file["checkpoint"]
        .as_str()
        .ok_or_else(|| bad("no checkpoint".into()))?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(file["signature"].as_str().unwrap_or_default())
        .map_err(|e| bad(format!("signature is not base64: {e}")))?;
    let mut ctx = config.settings.validation_context()?;
    ctx.fetcher = None;
    let report = crate::verify::document(
        "checkpoint",
        &signature,
        Some(canonical.as_bytes()),
        &crate::verify::Policy::default(),
        &ctx,
    )
    .map_err(crate::Error::from)?;
    let intact = report.signatures.first().is_some_and(|s| s.intact);
    if !intact || report.indication == crate::verify::Indication::TotalFailed {
        return Err(bad("its signature does not verify".into()));
    }
    let value: serde_json::Value =
        serde_json::from_str(canonical).map_err(|e| bad(e.to_string()))?;
    let seq = value["seq"].as_i64().ok_or_else(|| bad("no seq".into()))?;
    let hash = value["hash"]
        .as_str()
        .ok_or_else(|| bad("no hash".into()))?
        .to_string();
    Ok((seq, hash))
}
