//! `signgate user add|list|disable|reset-password`: the web console's accounts, on the
//! gateway's database. Passwords come from `--password-file` or `SIGNGATE_USER_PASSWORD`,
//! never from the command line.

use std::path::PathBuf;

use clap::Subcommand;

use super::gateway::{open, runtime, StoreArgs};
use super::CliError;
use crate::error::ErrorCode;
use crate::gateway::accounts::{NewUser, Role};
use crate::gateway::Secret;

/// `signgate user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account of the web console (an officer, clerk or admin of one agency).
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// Login name (3-64 characters of A-Z, a-z, 0-9, '.', '_', '-').
        #[arg(long)]
        username: String,
        /// The agency the account acts for.
        #[arg(long)]
        agency: String,
        /// Full name (shown on the pages and in the audit trail).
        #[arg(long)]
        name: String,
        /// officer (stamp desk), clerk (no signing) or admin.
        #[arg(long, default_value = "officer")]
        role: String,
        /// File holding the password (else SIGNGATE_USER_PASSWORD).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List accounts (never passwords).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable an account; its sessions end at once.
    Disable {
        #[command(flatten)]
        store: StoreArgs,
        /// Login name.
        username: String,
    },
    /// Set a new password; the account's sessions end at once.
    ResetPassword {
        #[command(flatten)]
        store: StoreArgs,
        /// Login name.
        username: String,
        /// File holding the new password (else SIGNGATE_USER_PASSWORD).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Bind a client certificate to an account: over the gateway's TLS with client
    /// certificates, it logs the officer in without a password.
    BindCert {
        #[command(flatten)]
        store: StoreArgs,
        /// Login name.
        username: String,
        /// The certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
    },
    /// Revoke a certificate's binding to an account: it logs no one in any more.
    RevokeCert {
        #[command(flatten)]
        store: StoreArgs,
        /// Login name.
        username: String,
        /// The certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
    },
}

fn read_cert(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError {
        code: ErrorCode::InputMissing,
        message: format!("cannot read certificate {}: {e}", path.display()),
    })
}

fn password(file: Option<&std::path::Path>) -> Result<Secret, CliError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| CliError {
            code: ErrorCode::InputMissing,
            message: format!("cannot read password file {}: {e}", path.display()),
        })?;
        return Ok(Secret::from(
            text.trim_end_matches(['\r', '\n']).to_string(),
        ));
    }
    std::env::var("SIGNGATE_USER_PASSWORD")
        .map(Secret::from)
        .map_err(|_| {
            CliError::usage("no password: use --password-file FILE or set SIGNGATE_USER_PASSWORD")
        })
}

/// Runs `signgate user …`.
pub fn run(cmd: UserCommand) -> Result<u8, CliError> {
    runtime()?.block_on(async move {
        match cmd {
            UserCommand::Add {
                store,
                username,
                agency,
                name,
                role,
                password_file,
            } => {
                let role: Role = role.parse()?;
                let password = password(password_file.as_deref())?;
                let services = open(&store.config(None)?).await?;
                let added = services
                    .add_user(NewUser {
                        username,
                        agency,
                        name,
                        role,
                        password,
                    })
                    .await;
                services.close().await;
                println!("{}", serde_json::to_string(&added?).unwrap_or_default());
            }
            UserCommand::List { store } => {
                let services = open(&store.config(None)?).await?;
                let users = services.list_users().await;
                services.close().await;
                for u in users? {
                    println!("{}", serde_json::to_string(&u).unwrap_or_default());
                }
            }
            UserCommand::Disable { store, username } => {
                let services = open(&store.config(None)?).await?;
                let done = services.disable_user(&username).await;
                services.close().await;
                done?;
                println!("disabled {username}");
            }
            UserCommand::ResetPassword {
                store,
                username,
                password_file,
            } => {
                let password = password(password_file.as_deref())?;
                let services = open(&store.config(None)?).await?;
                let done = services.reset_password(&username, password).await;
                services.close().await;
                done?;
                println!("password of {username} reset; its sessions ended");
            }
            UserCommand::BindCert {
                store,
                username,
                cert,
            } => {
                let pem = read_cert(&cert)?;
                let services = open(&store.config(None)?).await?;
                let done = services.bind_user_certificate(&username, &pem).await;
                services.close().await;
                println!(
                    "{}",
                    serde_json::json!({"username": username, "cert_fingerprint": done?})
                );
            }
            UserCommand::RevokeCert {
                store,
                username,
                cert,
            } => {
                let pem = read_cert(&cert)?;
                let services = open(&store.config(None)?).await?;
                let done = services.revoke_user_certificate(&username, &pem).await;
                services.close().await;
                println!(
                    "{}",
                    serde_json::json!({"username": username, "revoked": done?})
                );
            }
        }
        Ok(0)
    })
}
