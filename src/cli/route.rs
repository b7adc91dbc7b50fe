//! `signgate route send|inbox|ack|status|retry|fingerprint`, on the node's own database (the
//! routing node inside `signgate serve` is started by [`crate::gateway::Gateway::start`]).

use std::path::PathBuf;

use clap::Subcommand;

use super::gateway::{open, runtime, StoreArgs};
use super::CliError;
use crate::routing::node::{ListKind, ListParams};
use crate::routing::{tls, RoutingError};

/// `signgate route …`.
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Check a signed envelope and queue it for its recipients (the serving node delivers it).
    Send {
        #[command(flatten)]
        store: StoreArgs,
        /// The signed edXML envelope.
        #[arg(long)]
        envelope: PathBuf,
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
    /// Print the SHA-256 fingerprint of a node certificate (for peers' `cert_fingerprint`).
    Fingerprint {
        /// The node's PKCS#12 file (password from SIGNGATE_KEY_PASSWORD).
        #[arg(long)]
        identity: PathBuf,
    },
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
    runtime()?.block_on(async move {
        let (store_args, action) = match &cmd {
            RouteCommand::Send { store, .. }
            | RouteCommand::Inbox { store, .. }
            | RouteCommand::Sent { store, .. }
            | RouteCommand::Outbox { store }
            | RouteCommand::Ack { store, .. }
            | RouteCommand::Status { store, .. }
            | RouteCommand::Retry { store, .. } => (store, &cmd),
            RouteCommand::Fingerprint { .. } => return Ok(0),
        };
        let config = store_args.config(None)?;
        let routing = config
            .routing
            .clone()
            .ok_or_else(|| CliError::usage("the configuration has no [routing] section"))?;
        let services = open(&config).await?;
        let node = services.routing_node(&routing)?;
        let code = match action {
            RouteCommand::Send { envelope, .. } => {
                let bytes = crate::fsio::read_input(envelope)?;
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
            RouteCommand::Fingerprint { .. } => 0,
        };
        services.close().await;
        Ok(code)
    })
}
