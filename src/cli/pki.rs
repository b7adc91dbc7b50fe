//! `signgate pki …`

use std::path::PathBuf;

use clap::Subcommand;

use super::CliError;

/// PKI subcommands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Generate the demo PKI (test keys only, password `demo`).
    Demo {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Base URL for CRL distribution points and AIA (OCSP, caIssuers).
        #[arg(long, default_value = "http://127.0.0.1:8089/")]
        base_url: String,
    },
    /// Serve a CA folder's CRLs, CA certificates and OCSP responses over HTTP.
    Serve {
        /// The CA folder (as written by `pki demo`).
        #[arg(long, default_value = "certs/demo")]
        dir: PathBuf,
        /// The OCSP responder's PKCS#12 key (default DIR/ocsp.p12).
        #[arg(long)]
        responder_key: Option<PathBuf>,
        /// File holding the responder key's password (else SIGNGATE_KEY_PASSWORD).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: String,
    },
}

/// Runs a `pki` subcommand.
pub fn run(cmd: PkiCommand) -> Result<u8, CliError> {
    match cmd {
        PkiCommand::Demo { out, base_url } => {
            let opts = crate::pki::demo::DemoOptions::with_base_url(base_url);
            crate::pki::demo::generate(&out, &opts)?;
            println!(
                "demo PKI written to {} (test keys only, password 'demo')",
                out.display()
            );
            Ok(0)
        }
        PkiCommand::Serve {
            dir,
            responder_key,
            password_file,
            listen,
        } => {
            let addr = super::server::listen_address(&listen)?;
            let key_path = responder_key.unwrap_or_else(|| dir.join("ocsp.p12"));
            let password = super::key_password(password_file.as_deref())?;
            let key = crate::keys::Pkcs12Key::open(&key_path, &password)?;
            let router = crate::publish::router(dir, std::sync::Arc::new(key))?;
            super::server::run(addr, router, "PKI publication server")
        }
    }
}
