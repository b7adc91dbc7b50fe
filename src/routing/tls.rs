//! The node-to-node client over mutual TLS: posts to a peer and pins its certificate
//! fingerprint. The listener side, the identity and the contexts are the generic
//! [`crate::tls`], re-exported here.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use openssl::ssl::{SslAcceptor, SslConnector};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

pub use crate::tls::{connector, serve, PeerCertificate, TlsIdentity};

use super::RoutingError;

fn tls_error(e: impl std::fmt::Display) -> RoutingError {
    RoutingError::Tls(e.to_string())
}

/// The peers' listener context: a client certificate chaining to `trust` is required.
pub fn acceptor(identity: &TlsIdentity, trust: &[PathBuf]) -> Result<SslAcceptor, RoutingError> {
    Ok(crate::tls::acceptor(
        identity,
        trust,
        crate::tls::ClientCertificate::Required,
    )?)
}

/// A peer's answer: HTTP status and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: hyper::HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Largest peer answer read (status messages and error bodies are small).
const MAX_ANSWER: usize = 1 << 20;

/// POSTs `body` to `url` (`https://HOST:PORT/path?query`) over a new mutual-TLS connection,
/// checking that the server's certificate has `fingerprint`; the whole exchange is bounded by
/// `timeout`. A node's outbox goes through [`PeerClient`], which keeps connections open.
pub async fn post(
    connector: &SslConnector,
    url: &str,
    fingerprint: &str,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, RoutingError> {
    bounded(url, timeout, async {
        let target = Target::of(url, fingerprint)?;
        let mut sender = connect(connector, &target).await?;
        exchange(&mut sender, &target, content_type, body.into()).await
    })
    .await
}

async fn bounded(
    url: &str,
    timeout: Duration,
    exchange: impl std::future::Future<Output = Result<Answer, RoutingError>>,
) -> Result<Answer, RoutingError> {
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        RoutingError::PeerUnavailable(format!("{url}: no answer within {timeout:?}"))
    })?
}

/// Idle connections kept per peer by a [`PeerClient`].
const MAX_IDLE_PER_PEER: usize = 16;

/// How long an idle connection is kept before a new one is opened instead.
const IDLE_FOR: Duration = Duration::from_secs(30);

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A node's client for its peers: mutual TLS with certificate pinning as [`post`], over
/// HTTP/1.1 connections kept open and reused (up to [`MAX_IDLE_PER_PEER`] idle per peer, for
/// [`IDLE_FOR`] at most), so a busy outbox does not pay a TLS handshake (two RSA operations
/// and a certificate chain check on each side) per envelope or status. The pin is checked
/// when a connection is opened, and a connection is only reused for the same URL authority
/// and fingerprint.
pub struct PeerClient {
    connector: SslConnector,
    idle: std::sync::Mutex<std::collections::HashMap<String, Vec<(std::time::Instant, Sender)>>>,
}

impl PeerClient {
    /// A client whose connections use `connector` (the node's certificate and peer trust).
    pub fn new(connector: SslConnector) -> Self {
        Self {
            connector,
            idle: Default::default(),
        }
    }

    /// As [`post`], over an idle connection to the same peer when there is one. A reused
    /// connection that fails before an answer (the peer closed it meanwhile) is replaced by a
    /// new one once: receivers are idempotent (CONTRACTS §5), so a repeat is harmless.
    pub async fn post(
        &self,
        url: &str,
        fingerprint: &str,
        content_type: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, RoutingError> {
        bounded(url, timeout, async {
            let target = Target::of(url, fingerprint)?;
            let body = Bytes::from(body);
            if let Some(mut sender) = self.reusable(&target).await {
                if let Ok(answer) = exchange(&mut sender, &target, content_type, body.clone()).await
                {
                    self.keep(&target, sender);
                    return Ok(answer);
                }
            }
            let mut sender = connect(&self.connector, &target).await?;
            let answer = exchange(&mut sender, &target, content_type, body).await?;
            self.keep(&target, sender);
            Ok(answer)
        })
        .await
    }

    /// An idle connection to `target` that is still open.
    async fn reusable(&self, target: &Target) -> Option<Sender> {
        loop {
            let (since, mut sender) = self.idle.lock().ok()?.get_mut(&target.key)?.pop()?;
            if since.elapsed() < IDLE_FOR && sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn keep(&self, target: &Target, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(target.key.clone()).or_default();
            if list.len() < MAX_IDLE_PER_PEER {
                list.push((std::time::Instant::now(), sender));
            }
        }
    }
}

/// Where a post goes: the URL's parts and the pinned fingerprint.
struct Target {
    url: String,
    host: String,
    port: u16,
    path: String,
    fingerprint: String,
    /// Connections are shared by posts with the same key (authority and pin).
    key: String,
}

impl Target {
    fn of(url: &str, fingerprint: &str) -> Result<Self, RoutingError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| RoutingError::Config(format!("{url}: {e}")))?;
        let host = uri
            .host()
            .ok_or_else(|| RoutingError::Config(format!("{url}: no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        Ok(Self {
            url: url.to_string(),
            key: format!("{host}:{port} {fingerprint}"),
            host,
            port,
            path,
            fingerprint: fingerprint.to_string(),
        })
    }

    fn unavailable(&self, m: impl std::fmt::Display) -> RoutingError {
        RoutingError::PeerUnavailable(format!("{}: {m}", self.url))
    }
}

/// Opens a mutual-TLS connection to `target` and checks the server's certificate pin.
async fn connect(connector: &SslConnector, target: &Target) -> Result<Sender, RoutingError> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| target.unavailable(e))?;
    let ssl = connector
        .configure()
        .and_then(|c| c.into_ssl(&target.host))
        .map_err(tls_error)?;
    let mut stream = SslStream::new(ssl, tcp).map_err(tls_error)?;
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| target.unavailable(format!("TLS handshake: {e}")))?;
    let presented = stream
        .ssl()
        .peer_certificate()
        .and_then(|c| c.to_der().ok())
        .map(|der| crate::pki::alg::sha256_hex(&der))
        .unwrap_or_default();
    if presented != target.fingerprint {
        return Err(RoutingError::PeerUnknown(format!(
            "{} presented a certificate with fingerprint {presented}, not the configured one",
            target.url
        )));
    }
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| target.unavailable(e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request and its whole answer over `sender`.
async fn exchange(
    sender: &mut Sender,
    target: &Target,
    content_type: &str,
    body: Bytes,
) -> Result<Answer, RoutingError> {
    let request = hyper::Request::post(target.path.as_str())
        .header(
            hyper::header::HOST,
            format!("{}:{}", target.host, target.port),
        )
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(body))
        .map_err(|e| RoutingError::Config(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| target.unavailable(e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| target.unavailable(format!("reading the answer: {e}")))?
        .to_bytes()
        .to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}
