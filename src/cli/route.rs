//! `signgate route send|inbox|ack|status|retry|fingerprint`, on the node's own database (the
//! routing node inside `signgate serve` is started by [`crate::gateway::Gateway::start`]).

use std::path::PathBuf;

use clap::Subcommand;

use super::gateway::{open, runtime, StoreArgs};
use super::CliError;
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
    /// Documents delivered to the agencies this node serves and not yet completed
    /// (`owner_organ`: the agency holding each, the successor of a merged addressee).
    Inbox {
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
            | RouteCommand::Inbox { store }
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
                    serde_json::json!({"document_id": receipt.document_id, "status": receipt.code_text(), "reason": receipt.reason})
                );
                if receipt.code == crate::edxml::StatusCode::Received {
                    0
                } else {
                    65
                }
            }
            RouteCommand::Inbox { .. } => {
                for row in node.inbox(None).await.map_err(routing_error)? {
                    println!("{}", serde_json::to_string(&row).unwrap_or_default());
                }
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
