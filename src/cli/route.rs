//! `signgate route send|document|attachment|inbox|sent|outbox|ack|status|retry|webhook|fingerprint|demo`, on the node's own database (the
//! routing node inside `signgate serve` is started by [`crate::gateway::Gateway::start`]).

use std::path::PathBuf;

use clap::Subcommand;

use super::edxml::DocumentArgs;
use super::gateway::{open, runtime, StoreArgs};
use super::CliError;
use crate::gateway::route::SigningKey;
use crate::routing::node::{ListKind, ListParams};
use crate::routing::{tls, RoutingError};

/// `signgate route …`.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
pub enum RouteCommand {
    /// Send a document: a signed envelope as is (--envelope), or a PDF (+ attachments) and
    /// metadata that the gateway builds into a QCVN 102 envelope, schema-checks and signs with
    /// the agency's key; then it is checked and queued for its recipients.
    Send {
        #[command(flatten)]
        store: StoreArgs,
        /// A signed edXML envelope, sent as is.
        #[arg(long, conflicts_with_all = ["pdf", "attach", "meta"])]
        envelope: Option<PathBuf>,
        #[command(flatten)]
        document: DocumentArgs,
        /// Signing key of a built envelope: a key registered with the gateway (by name), or a
        /// PKCS#12 file / pkcs11: URI (password from --password-file or SIGNGATE_KEY_PASSWORD);
        /// default: the one key registered for the sending agency.
        #[arg(long)]
        key: Option<String>,
        /// File holding the password of a --key file.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Also write the built envelope to this file.
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Write the envelope of a document this node holds (as received, trace included).
    Document {
        #[command(flatten)]
        store: StoreArgs,
        /// The DocumentId.
        #[arg(long)]
        document_id: String,
        /// Only as this agency may see it (sender or recipient); default: the whole node.
        #[arg(long)]
        agency: Option<String>,
        /// Output file (`-` is stdout).
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },
    /// Write attachment N (0-based, in the envelope's order) of a document this node holds,
    /// decoded, byte for byte as it was attached.
    Attachment {
        #[command(flatten)]
        store: StoreArgs,
        /// The DocumentId.
        #[arg(long)]
        document_id: String,
        /// The attachment's index (0 is the first, the main document).
        #[arg(long, default_value_t = 0)]
        n: usize,
        /// Only as this agency may see it (sender or recipient); default: the whole node.
        #[arg(long)]
        agency: Option<String>,
        /// Output file (`-` is stdout).
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },
    /// Documents delivered to the agencies this node serves (default: not yet completed),
    /// newest first, one JSON line each with subject, sender name, number, type, due date and
    /// attachments (`owner_organ`: the agency holding each, the successor of a merged
    /// addressee); a further page's `--cursor` is printed on stderr.
    Inbox {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        list: ListArgs,
        /// Only documents from this sender (OrganId).
        #[arg(long)]
        sender: Option<String>,
        /// Only documents this agency holds (default: every agency served here).
        #[arg(long)]
        agency: Option<String>,
    },
    /// Documents the agencies served here sent (one row per recipient, with the last status
    /// recorded here), newest first, filtered and paged like `inbox`.
    Sent {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        list: ListArgs,
        /// Only documents to this recipient (OrganId).
        #[arg(long)]
        recipient: Option<String>,
        /// Only documents this agency sent (default: every agency served here).
        #[arg(long)]
        agency: Option<String>,
    },
    /// The outbox: items by state, held envelopes by state, and the items that failed (peer
    /// down, pin mismatch, TLS error, refusal) with their last error.
    Outbox {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Answer a delivered document with a status (03 accepted, 04 assigned, 05 processing,
    /// 06 completed, or the update agreed/refused codes); it travels back to the sender.
    Ack {
        #[command(flatten)]
        store: StoreArgs,
        /// The DocumentId (may contain `/` and `,`).
        #[arg(long)]
        document_id: String,
        /// Status code.
        #[arg(long)]
        status: String,
        /// Only the documents this agency holds: addressed to it, or to an agency merged into
        /// it (default: every recipient served here).
        #[arg(long)]
        recipient: Option<String>,
        /// A note for the sender.
        #[arg(long)]
        description: Option<String>,
    },
    /// The full trace of a document at this node: rows, history and statuses received.
    Status {
        #[command(flatten)]
        store: StoreArgs,
        /// The DocumentId.
        #[arg(long)]
        document_id: String,
    },
    /// Put a dead-lettered delivery of a document back to pending (attempts from zero); the
    /// running node's worker takes it at once.
    Retry {
        #[command(flatten)]
        store: StoreArgs,
        /// The DocumentId.
        #[arg(long)]
        document_id: String,
        /// Only the delivery carrying this recipient agency (OrganId); default: all of them.
        #[arg(long)]
        to: Option<String>,
    },
    /// Webhooks: an agency's systems are POSTed its events (document.received,
    /// status.received), signed with HMAC-SHA256 (header Signgate-Webhook-Signature), retried
    /// with backoff; see the README's "Webhooks".
    Webhook {
        #[command(subcommand)]
        action: WebhookCommand,
    },
    /// Start a demo network on loopback: a province node and two commune nodes (2025 units,
    /// test agency codes DEMO.*), or with --structure 2024 a province, district and commune;
    /// PKI, configurations, directory and client tokens are written to --dir on the first run
    /// (`DIR/env` holds the URLs and tokens), then the nodes serve until SIGINT/SIGTERM.
    Demo {
        /// Folder of the network (created on the first run, reused after).
        #[arg(long, default_value = "route-demo")]
        dir: PathBuf,
        /// `2025` (province and two communes) or `2024` (province, district, commune).
        #[arg(long, default_value = "2025")]
        structure: String,
        /// First port of a new network: its publication point (OCSP/CRL), then the API and
        /// peer port of each node in turn; 0 picks free ports.
        #[arg(long, default_value_t = 18089, env = "SIGNGATE_DEMO_PORT_BASE")]
        port_base: u16,
        /// Write the network's files and exit without starting it.
        #[arg(long)]
        setup_only: bool,
    },
    /// Print the SHA-256 fingerprint of a node certificate (for peers' `cert_fingerprint`).
    Fingerprint {
        /// The node's PKCS#12 file (password from SIGNGATE_KEY_PASSWORD).
        #[arg(long)]
        identity: PathBuf,
    },
}

/// `signgate route webhook …`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Subscribe an agency served here; prints the subscription and its secret (shown once).
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// The agency (edXML OrganId, one of routing.serves).
        #[arg(long)]
        agency: String,
        /// Where events are POSTed (http://; a private or loopback address needs [fetch] allow).
        #[arg(long)]
        url: String,
        /// Event kinds, comma-separated (document.received, status.received) or `all`.
        #[arg(long, default_value = "all")]
        events: String,
    },
    /// List the subscriptions (without secrets), one JSON line each.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this agency's.
        #[arg(long)]
        agency: Option<String>,
    },
    /// Remove a subscription (its undelivered events are dropped).
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        /// The subscription id (`wh_…`).
        #[arg(long)]
        id: String,
    },
    /// The latest deliveries of a subscription (state, attempts, last error), one JSON line each.
    Deliveries {
        #[command(flatten)]
        store: StoreArgs,
        /// The subscription id (`wh_…`).
        #[arg(long)]
        id: String,
        /// How many (newest first).
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// The key of a built envelope: a file or token when `--key` names one, else a registered
/// key by name, else the sending agency's one key.
fn signing_key(
    key: Option<&str>,
    password_file: Option<&std::path::Path>,
) -> Result<SigningKey, CliError> {
    let Some(key) = key else {
        return Ok(SigningKey::AgencyDefault);
    };
    if !crate::keys::Pkcs11Uri::is_uri(key) && !std::path::Path::new(key).is_file() {
        return Ok(SigningKey::Registered(key.to_string()));
    }
    let args = super::KeyArgs {
        key: key.to_string(),
        password_file: password_file.map(PathBuf::from),
        pin_file: None,
        cert: None,
        chain: None,
    };
    Ok(SigningKey::Opened(super::open_key(&args)?))
}

/// Filters and paging shared by `route inbox` and `route sent`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Row states, comma-separated, or `all`.
    #[arg(long)]
    state: Option<String>,
    /// Received here on or after this day (YYYY-MM-DD) or time (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Received here on or before this day (YYYY-MM-DD).
    #[arg(long)]
    to: Option<String>,
    /// Text in the subject, number, sender name or DocumentId.
    #[arg(long)]
    text: Option<String>,
    /// Page size (default 50, at most 500).
    #[arg(long)]
    limit: Option<i64>,
    /// The cursor printed after the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

impl ListArgs {
    fn params(&self) -> ListParams {
        ListParams {
            state: self.state.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            q: self.text.clone(),
            limit: self.limit,
            cursor: self.cursor.clone(),
            ..ListParams::default()
        }
    }
}

/// `route inbox` / `route sent`: JSON lines, the next page's cursor on stderr.
async fn print_list(
    node: &crate::routing::Node,
    kind: ListKind,
    params: ListParams,
    agency: Option<&str>,
) -> Result<(), CliError> {
    let agencies = match (agency, kind) {
        (Some(a), _) => vec![a.to_string()],
        (None, ListKind::Inbox) => Vec::new(),
        (None, ListKind::Sent) => node.config.serves.clone(),
    };
    let filter = params.filter(kind, agencies).map_err(routing_error)?;
    let (rows, next) = node
        .list(filter, params.cursor.as_deref())
        .await
        .map_err(routing_error)?;
    for row in rows {
        println!("{}", serde_json::to_string(&row).unwrap_or_default());
    }
    if let Some(c) = next {
        eprintln!("more: --cursor {c}");
    }
    Ok(())
}

fn routing_error(e: RoutingError) -> CliError {
    crate::Error::Routing(e).into()
}

/// Runs `signgate route …`.
pub fn run(cmd: RouteCommand) -> Result<u8, CliError> {
    if let RouteCommand::Fingerprint { identity } = &cmd {
        let password = super::key_password(None)?;
        let id =
            tls::TlsIdentity::open(identity, &password).map_err(|e| routing_error(e.into()))?;
        println!("{}", id.fingerprint().map_err(|e| routing_error(e.into()))?);
        return Ok(0);
    }
    if let RouteCommand::Demo {
        dir,
        structure,
        port_base,
        setup_only,
    } = &cmd
    {
        return demo(dir, structure, *port_base, *setup_only);
    }
    runtime()?.block_on(async move {
        let (store_args, action) = match &cmd {
            RouteCommand::Send { store, .. }
            | RouteCommand::Document { store, .. }
            | RouteCommand::Attachment { store, .. }
            | RouteCommand::Inbox { store, .. }
            | RouteCommand::Sent { store, .. }
            | RouteCommand::Outbox { store }
            | RouteCommand::Ack { store, .. }
            | RouteCommand::Status { store, .. }
            | RouteCommand::Retry { store, .. }
            | RouteCommand::Webhook {
                action:
                    WebhookCommand::Add { store, .. }
                    | WebhookCommand::List { store, .. }
                    | WebhookCommand::Remove { store, .. }
                    | WebhookCommand::Deliveries { store, .. },
            } => (store, &cmd),
            RouteCommand::Fingerprint { .. } | RouteCommand::Demo { .. } => return Ok(0),
        };
        let config = store_args.config(None)?;
        let routing = config
            .routing
            .clone()
            .ok_or_else(|| CliError::usage("the configuration has no [routing] section"))?;
        let services = open(&config).await?;
        let node = services.routing_node(&routing)?;
        let code = match action {
            RouteCommand::Send {
                envelope,
                document,
                key,
                password_file,
                save,
                ..
            } => {
                let bytes = match envelope {
                    Some(path) => crate::fsio::read_input(path)?,
                    None if document.given() => {
                        let key = signing_key(key.as_deref(), password_file.as_deref())?;
                        let default_from = match routing.serves.as_slice() {
                            [only] => Some(only.as_str()),
                            _ => None,
                        };
                        let bytes = services
                            .compose_document(
                                None,
                                default_from,
                                key,
                                document.spec()?,
                                document.files()?,
                            )
                            .await?;
                        if let Some(path) = save {
                            crate::fsio::write_output(path, &bytes)?;
                        }
                        bytes
                    }
                    None => {
                        return Err(CliError::usage(
                            "nothing to send: give --envelope FILE, or --pdf FILE (and --attach) with metadata",
                        ))
                    }
                };
                let receipt = node.receive("local", bytes, None).await.map_err(routing_error)?;
                println!(
                    "{}",
                    serde_json::json!({"document_id": receipt.document_id, "status": receipt.code_text(), "reason": receipt.reason, "held": receipt.held})
                );
                if receipt.code == crate::edxml::StatusCode::Received {
                    0
                } else {
                    65
                }
            }
            RouteCommand::Document {
                document_id,
                agency,
                out,
                ..
            } => {
                let file = services
                    .routed_envelope(&node, document_id, agency.as_deref())
                    .await?;
                crate::fsio::write_output(out, &file.bytes)?;
                0
            }
            RouteCommand::Attachment {
                document_id,
                n,
                agency,
                out,
                ..
            } => {
                let file = services
                    .routed_attachment(&node, document_id, *n, agency.as_deref())
                    .await?;
                crate::fsio::write_output(out, &file.bytes)?;
                0
            }
            RouteCommand::Inbox {
                list,
                sender,
                agency,
                ..
            } => {
                let params = ListParams {
                    sender: sender.clone(),
                    ..list.params()
                };
                print_list(&node, ListKind::Inbox, params, agency.as_deref()).await?;
                0
            }
            RouteCommand::Sent {
                list,
                recipient,
                agency,
                ..
            } => {
                let params = ListParams {
                    recipient: recipient.clone(),
                    ..list.params()
                };
                print_list(&node, ListKind::Sent, params, agency.as_deref()).await?;
                0
            }
            RouteCommand::Outbox { .. } => {
                let view = node.outbox_view(None).await.map_err(routing_error)?;
                println!("{view:#}");
                0
            }
            RouteCommand::Ack {
                document_id,
                status,
                recipient,
                description,
                ..
            } => {
                let rows = node
                    .acknowledge(document_id, recipient.as_deref(), status, description.clone())
                    .await
                    .map_err(routing_error)?;
                for row in rows {
                    println!("{}", serde_json::to_string(&row).unwrap_or_default());
                }
                0
            }
            RouteCommand::Status { document_id, .. } => {
                let view = node.status_view(document_id).await.map_err(routing_error)?;
                println!("{view:#}");
                0
            }
            RouteCommand::Retry {
                document_id, to, ..
            } => {
                for item in node
                    .retry(document_id, to.as_deref(), None)
                    .await
                    .map_err(routing_error)?
                {
                    println!(
                        "{}",
                        serde_json::json!({"requeued": item.kind, "next_node": item.next_node, "recipients": item.recipients})
                    );
                }
                0
            }
            RouteCommand::Webhook { action } => {
                webhook(&node, action).await?;
                0
            }
            RouteCommand::Fingerprint { .. } | RouteCommand::Demo { .. } => 0,
        };
        services.close().await;
        Ok(code)
    })
}

/// `route webhook …` on the node's database.
async fn webhook(node: &crate::routing::Node, action: &WebhookCommand) -> Result<(), CliError> {
    use crate::gateway::webhooks;
    match action {
        WebhookCommand::Add {
            agency,
            url,
            events,
            ..
        } => {
            let row = webhooks::subscribe(node, agency, url, Some(events)).await?;
            let mut shown = serde_json::to_value(&row).unwrap_or_default();
            shown["secret"] = row.secret.clone().into();
            println!("{shown}");
        }
        WebhookCommand::List { agency, .. } => {
            for row in webhooks::subscriptions(node, agency.as_deref()).await? {
                println!("{}", serde_json::to_string(&row).unwrap_or_default());
            }
        }
        WebhookCommand::Remove { id, .. } => {
            webhooks::unsubscribe(node, id, None).await?;
            println!("{}", serde_json::json!({"removed": id}));
        }
        WebhookCommand::Deliveries { id, limit, .. } => {
            for d in webhooks::deliveries(node, id, *limit).await? {
                println!("{}", serde_json::to_string(&d).unwrap_or_default());
            }
        }
    }
    Ok(())
}

/// `signgate route demo`: prepares (or reuses) the network in `dir`, serves its publication
/// point and every node, writes `DIR/ready` once all listen, and stops them on SIGINT/SIGTERM.
fn demo(
    dir: &std::path::Path,
    structure: &str,
    port_base: u16,
    setup_only: bool,
) -> Result<u8, CliError> {
    use crate::gateway::demo_network::DemoNetwork;
    use crate::gateway::{BackgroundServer, Gateway};
    let structure: crate::directory::Structure = structure.parse().map_err(CliError::usage)?;
    let ready = dir.join("ready");
    let _ = std::fs::remove_file(&ready);
    runtime()?.block_on(async move {
        let net = DemoNetwork::prepare(dir, structure, port_base).await?;
        println!(
            "demo network ({} structure) in {}: TEST DATA, DEMO.* agency codes are not real",
            net.structure,
            net.dir.display()
        );
        for n in &net.nodes {
            println!(
                "  {:<10} {} {:<22} API {}  peers https://127.0.0.1:{}/  config {}",
                n.name,
                n.organ_id,
                n.organ_name,
                n.url(),
                n.peer_port,
                n.config.display()
            );
        }
        if setup_only {
            println!(
                "set up; start it with: signgate route demo --dir {}",
                dir.display()
            );
            return Ok(0);
        }
        let publication_addr = std::net::SocketAddr::from(([127, 0, 0, 1], net.publication_port));
        let (publication, _) = BackgroundServer::bind(publication_addr, net.publication()?).await?;
        let mut running = Vec::new();
        for n in &net.nodes {
            let config = DemoNetwork::config_of(&n.config)?;
            match Gateway::start(config, crate::api::http_app()).await {
                Ok(r) => running.push(r),
                Err(e) => {
                    for r in running {
                        r.shutdown().await;
                    }
                    publication.shutdown().await;
                    return Err(CliError::from(e));
                }
            }
        }
        crate::fsio::write_output(&ready, b"ready\n")?;
        println!(
            "demo network ready (OCSP/CRL on http://{publication_addr}/); in a shell: . {}/env",
            net.dir.display()
        );
        crate::gateway::termination().await;
        let _ = std::fs::remove_file(&ready);
        for r in running {
            r.shutdown().await;
        }
        publication.shutdown().await;
        Ok(0)
    })
}
