//! The command line: clap definitions and one module per subcommand, thin over the library.
//!
//! Errors print as one line `signgate: CODE: message` on stderr (CONTRACTS.md §1).

mod batch;
mod bench;
mod bench_floor;
mod bench_http;
mod bench_route;
mod directory;
mod edxml;
mod extend;
mod gateway;
mod pki;
mod route;
mod server;
mod sign;
mod tsa;
mod user;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::{Error, ErrorCode};

/// signgate: sign, verify and route official e-documents.
#[derive(Debug, Parser)]
#[command(name = "signgate", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign a document (PAdES for PDF, XML-DSig for XML, CAdES detached with --format cms or an
    /// output named *.p7s).
    Sign(sign::SignArgs),
    /// Sign many documents with one key (PAdES, XML-DSig, or CMS .p7s), resumable.
    BatchSign(batch::BatchArgs),
    /// Measure signing throughput against the raw key rate.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Verify the signatures of a PDF or CMS file and print the validation report.
    Verify(verify::VerifyArgs),
    /// Add long-term validation data (B-LT) and a document time-stamp (B-LTA) to a signed PDF.
    Extend(extend::ExtendArgs),
    /// Manage the demo PKI.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Run an RFC 3161 time-stamp authority.
    #[command(subcommand)]
    Tsa(tsa::TsaCommand),
    /// Run the HTTP gateway (demo mode without --config).
    Serve(gateway::ServeArgs),
    /// Manage the gateway's clients (calling systems and their tokens).
    #[command(subcommand)]
    Client(gateway::ClientCommand),
    /// Manage the gateway's signing keys.
    #[command(subcommand)]
    Key(gateway::KeyCommand),
    /// Check or checkpoint the gateway's audit trail.
    #[command(subcommand)]
    Audit(gateway::AuditCommand),
    /// Manage the agency directory (administrative units, agency identifiers, merges).
    #[command(subcommand)]
    Directory(directory::DirectoryCommand),
    /// Send, list, acknowledge and trace edXML documents routed between gateway nodes.
    #[command(subcommand)]
    Route(route::RouteCommand),
    /// Build, inspect and verify QCVN 102:2016 edXML envelopes offline.
    #[command(subcommand)]
    Edxml(edxml::EdxmlCommand),
    /// Manage the web console's accounts (officers, clerks, admins of an agency).
    #[command(subcommand)]
    User(user::UserCommand),
}

/// A failed command: the stable code and a one-line message.
#[derive(Debug)]
pub struct CliError {
    code: ErrorCode,
    message: String,
}

impl CliError {
    /// A usage error (exit 64).
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Self {
            code: ErrorCode::Usage,
            message: message.to_string(),
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

macro_rules! from_domain_error {
    ($($t:ty),*) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                Error::from(e).into()
            }
        }
    )*};
}
from_domain_error!(
    crate::keys::KeyError,
    crate::pki::CertError,
    crate::pdf::PdfError,
    crate::pki::tsp::TspError,
    crate::fsio::IoError,
    crate::cms::CmsError,
    crate::verify::VerifyError,
    crate::directory::DirectoryError,
    crate::pki::demo::PkiError,
    crate::tsa::TsaError,
    crate::publish::PublishError
);

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging();
    let outcome = match cli.command {
        Command::Sign(args) => sign::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Extend(args) => extend::run(args),
        Command::BatchSign(args) => batch::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Pki(cmd) => pki::run(cmd),
        Command::Tsa(cmd) => tsa::run(cmd),
        Command::Serve(args) => gateway::serve(args),
        Command::Client(cmd) => gateway::client(cmd),
        Command::Key(cmd) => gateway::key(cmd),
        Command::Audit(cmd) => gateway::audit(cmd),
        Command::Directory(cmd) => directory::run(cmd),
        Command::Route(cmd) => route::run(cmd),
        Command::Edxml(cmd) => edxml::run(cmd),
        Command::User(cmd) => user::run(cmd),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("signgate: {}: {}", e.code, one_line(&e.message));
            ExitCode::from(e.code.exit_code())
        }
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Logs go to stderr: signgate's own warnings unless `SIGNGATE_LOG` says otherwise.
fn init_logging() {
    use std::io::IsTerminal;
    // Only our own warnings by default: a library's parse warnings would break the one-line
    // error contract. SIGNGATE_LOG=debug (or any EnvFilter) shows more.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("signgate=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Reads a key password from `--password-file` or `SIGNGATE_KEY_PASSWORD`.
pub(crate) fn key_password(password_file: Option<&std::path::Path>) -> Result<String, CliError> {
    if let Some(path) = password_file {
        let text = std::fs::read_to_string(path).map_err(|e| CliError {
            code: ErrorCode::InputMissing,
            message: format!("cannot read password file {}: {e}", path.display()),
        })?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_string());
    }
    match std::env::var("SIGNGATE_KEY_PASSWORD") {
        Ok(p) => Ok(p),
        Err(_) => Err(CliError::usage(
            "no key password: use --password-file FILE or set SIGNGATE_KEY_PASSWORD",
        )),
    }
}

/// How the CLI names a key: `--key`, the secret's file, and token certificate options.
#[derive(Debug, clap::Args)]
pub(crate) struct KeyArgs {
    /// Key: a PKCS#12 file, or a PKCS#11 URI `pkcs11:token=…;object=…` (RFC 7512).
    #[arg(long)]
    pub key: String,
    /// File holding the PKCS#12 password (else the SIGNGATE_KEY_PASSWORD environment variable).
    #[arg(long)]
    pub password_file: Option<std::path::PathBuf>,
    /// File holding the token PIN for a pkcs11: key (else SIGNGATE_PKCS11_PIN).
    #[arg(long)]
    pub pin_file: Option<std::path::PathBuf>,
    /// Signer certificate (PEM/DER) for a pkcs11: key whose token holds none with the key's CKA_ID.
    #[arg(long)]
    pub cert: Option<std::path::PathBuf>,
    /// Intermediate certificates (PEM) to embed with a pkcs11: key.
    #[arg(long)]
    pub chain: Option<std::path::PathBuf>,
}

/// Opens `--key`: PKCS#12 with its password, or a token with its PIN and module
/// (`SIGNGATE_PKCS11_MODULE`, default [`crate::keys::DEFAULT_MODULE`]).
pub(crate) fn open_key(
    args: &KeyArgs,
) -> Result<std::sync::Arc<dyn crate::keys::KeySource>, CliError> {
    use crate::keys::{OpenOptions, Pkcs11Options, Pkcs11Uri};
    let is_token = Pkcs11Uri::is_uri(&args.key);
    let secret = if is_token {
        token_pin(args.pin_file.as_deref())?
    } else {
        key_password(args.password_file.as_deref())?
    };
    let opts = OpenOptions {
        secret: Some(secrecy::SecretString::from(secret)),
        pkcs11: Pkcs11Options {
            module: std::env::var_os("SIGNGATE_PKCS11_MODULE").map(Into::into),
            certificate: args.cert.clone(),
            chain: args.chain.clone(),
        },
    };
    Ok(crate::keys::open(&args.key, &opts)?)
}

/// Reads a token PIN from `--pin-file` or `SIGNGATE_PKCS11_PIN`.
fn token_pin(pin_file: Option<&std::path::Path>) -> Result<String, CliError> {
    if let Some(path) = pin_file {
        let text = std::fs::read_to_string(path).map_err(|e| CliError {
            code: ErrorCode::InputMissing,
            message: format!("cannot read PIN file {}: {e}", path.display()),
        })?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_string());
    }
    std::env::var("SIGNGATE_PKCS11_PIN").map_err(|_| {
        CliError::usage("no token PIN: use --pin-file FILE or set SIGNGATE_PKCS11_PIN")
    })
}

/// Signature options shared by `sign` and `batch-sign`.
#[derive(Debug, clap::Args)]
pub(crate) struct SignatureArgs {
    /// Baseline level: b-b, or b-t with a signature time-stamp from --tsa (one per signature).
    #[arg(long, default_value = "b-b")]
    level: crate::sign::Level,
    /// RFC 3161 time-stamp authority URL (required for b-t).
    #[arg(long)]
    tsa: Option<String>,
    /// Seconds to wait for the time-stamp authority.
    #[arg(long, default_value_t = 10)]
    tsa_timeout: u64,
    /// Digest algorithm: sha256, sha384 or sha512.
    #[arg(long, default_value = "sha256")]
    digest: crate::pki::alg::DigestAlgorithm,
    /// RSA padding: pkcs1 (v1.5) or pss.
    #[arg(long, default_value = "pkcs1")]
    rsa_padding: crate::pki::alg::RsaPadding,
    /// Reason for signing (PDF /Reason).
    #[arg(long)]
    reason: Option<String>,
    /// Place of signing (PDF /Location).
    #[arg(long)]
    location: Option<String>,
}

impl SignatureArgs {
    /// The time-stamp authority from `--tsa`, bounded by `--tsa-timeout`.
    fn timestamper(&self) -> Option<crate::sign::HttpTimeStamper> {
        self.tsa.as_ref().map(|url| {
            crate::sign::HttpTimeStamper::new(url, std::time::Duration::from_secs(self.tsa_timeout))
        })
    }
}
