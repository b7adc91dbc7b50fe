//! The node-to-node client over mutual TLS: posts to a peer and pins its certificate
//! fingerprint. The listener side, the identity and the contexts are the generic
//! [`crate::tls`], re-exported here.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

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

/// POSTs `body` to `url` (`https://HOST:PORT/path?query`) over mutual TLS, checking that the
/// server's certificate has `fingerprint`; the whole exchange is bounded by `timeout`.
pub async fn post(
    connector: &SslConnector,
    url: &str,
    fingerprint: &str,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, RoutingError> {
    tokio::time::timeout(
        timeout,
        post_inner(connector, url, fingerprint, content_type, body),
    )
    .await
    .map_err(|_| RoutingError::PeerUnavailable(format!("{url}: no answer within {timeout:?}")))?
}

async fn post_inner(
    connector: &SslConnector,
    url: &str,
    fingerprint: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Answer, RoutingError> {
    let unavailable = |m: String| RoutingError::PeerUnavailable(format!("{url}: {m}"));
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
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let ssl = connector
        .configure()
        .and_then(|c| c.into_ssl(&host))
        .map_err(tls_error)?;
    let mut stream = SslStream::new(ssl, tcp).map_err(tls_error)?;
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| unavailable(format!("TLS handshake: {e}")))?;
    let presented = stream
        .ssl()
        .peer_certificate()
        .and_then(|c| c.to_der().ok())
        .map(|der| crate::pki::alg::sha256_hex(&der))
        .unwrap_or_default();
    if presented != fingerprint {
        return Err(RoutingError::PeerUnknown(format!(
            "{url} presented a certificate with fingerprint {presented}, not the configured one"
        )));
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(axum::body::Bytes::from(body)))
        .map_err(|e| RoutingError::Config(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| unavailable(format!("reading the answer: {e}")))?
        .to_bytes()
        .to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}
