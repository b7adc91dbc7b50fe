//! Mutual TLS for node-to-node calls, with OpenSSL (the crypto library signgate already uses):
//! a listener that serves any axum [`Router`] and hands each handler the verified client
//! certificate as a [`PeerCertificate`] extension, and a client that pins the server's
//! certificate fingerprint. Generic on purpose: the gateway API can reuse [`serve`].
//!
//! Why hyper over `tokio-openssl` rather than a TLS-enabled HTTP client crate: the server side
//! needs OpenSSL anyway (the node certificates and the trust store are OpenSSL objects), the
//! client then shares one configuration path, and no second TLS stack enters the build.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    Ssl, SslAcceptor, SslConnector, SslContextBuilder, SslMethod, SslVerifyMode, SslVersion,
};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;
use tower::ServiceExt;

use super::RoutingError;

/// The client certificate a TLS peer presented (DER), already verified against the trust
/// anchors; handlers map it to a node id by [`PeerCertificate::fingerprint`].
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<Vec<u8>>);

impl PeerCertificate {
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_slice()))
    }
}

/// A node's TLS identity: certificate, key and intermediate CAs from a PKCS#12 file.
pub struct TlsIdentity {
    certificate: X509,
    key: PKey<Private>,
    chain: Vec<X509>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("subject", &self.certificate.subject_name())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Reads `path` with `password`.
    pub fn open(path: &Path, password: &str) -> Result<Self, RoutingError> {
        let bad = |m: String| RoutingError::Tls(format!("identity {}: {m}", path.display()));
        let der = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let parsed = Pkcs12::from_der(&der)
            .and_then(|p| p.parse2(password))
            .map_err(|_| bad("cannot be opened (wrong password or not PKCS#12)".into()))?;
        let (Some(certificate), Some(key)) = (parsed.cert, parsed.pkey) else {
            return Err(bad("holds no certificate and key".into()));
        };
        let chain = parsed
            .ca
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        Ok(Self {
            certificate,
            key,
            chain,
        })
    }

    /// SHA-256 of the node certificate, lowercase hex (what peers put in `cert_fingerprint`).
    pub fn fingerprint(&self) -> Result<String, RoutingError> {
        let der = self
            .certificate
            .to_der()
            .map_err(|e| RoutingError::Tls(e.to_string()))?;
        Ok(hex::encode(Sha256::digest(der)))
    }
}

fn load_trust(paths: &[PathBuf]) -> Result<Vec<X509>, RoutingError> {
    let mut out = Vec::new();
    for path in paths {
        let pem = std::fs::read(path)
            .map_err(|e| RoutingError::Tls(format!("trust {}: {e}", path.display())))?;
        let certs = X509::stack_from_pem(&pem)
            .map_err(|e| RoutingError::Tls(format!("trust {}: {e}", path.display())))?;
        out.extend(certs);
    }
    Ok(out)
}

fn tls_error(e: impl std::fmt::Display) -> RoutingError {
    RoutingError::Tls(e.to_string())
}

/// Both sides: TLS 1.2+, our certificate and chain, and `trust` for the other side's.
fn configure(
    b: &mut SslContextBuilder,
    identity: &TlsIdentity,
    trust: &[PathBuf],
) -> Result<(), RoutingError> {
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(tls_error)?;
    b.set_private_key(&identity.key).map_err(tls_error)?;
    b.set_certificate(&identity.certificate)
        .map_err(tls_error)?;
    for c in &identity.chain {
        b.add_extra_chain_cert(c.clone()).map_err(tls_error)?;
    }
    let mut store = X509StoreBuilder::new().map_err(tls_error)?;
    for c in load_trust(trust)? {
        store.add_cert(c).map_err(tls_error)?;
    }
    b.set_verify_cert_store(store.build()).map_err(tls_error)?;
    Ok(())
}

/// A server context that requires a client certificate chaining to `trust` (TLS 1.2+).
pub fn acceptor(identity: &TlsIdentity, trust: &[PathBuf]) -> Result<SslAcceptor, RoutingError> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(tls_error)?;
    configure(&mut b, identity, trust)?;
    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    b.check_private_key().map_err(tls_error)?;
    Ok(b.build())
}

/// A client context presenting `identity` and trusting `trust` for server certificates.
pub fn connector(identity: &TlsIdentity, trust: &[PathBuf]) -> Result<SslConnector, RoutingError> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(tls_error)?;
    configure(&mut b, identity, trust)?;
    b.set_verify(SslVerifyMode::PEER);
    Ok(b.build())
}

/// Most connections served at once; further peers wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;

/// Serves `router` over mutual TLS on `listener` until `shutdown` completes. Each request
/// carries the client's verified [`PeerCertificate`]; failed handshakes are logged and dropped.
pub async fn serve(
    listener: TcpListener,
    acceptor: Arc<SslAcceptor>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "tls accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let stream = match handshake(&acceptor, tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(remote = %remote, error = %e, "node TLS handshake refused");
                    return;
                }
            };
            let Some(peer) = stream
                .ssl()
                .peer_certificate()
                .and_then(|c| c.to_der().ok())
            else {
                return;
            };
            let peer = PeerCertificate(Arc::new(peer));
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(peer.clone());
                router.clone().oneshot(req.map(Body::new))
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "node connection ended");
            }
        });
    }
}

async fn handshake(
    acceptor: &SslAcceptor,
    tcp: TcpStream,
) -> Result<SslStream<TcpStream>, RoutingError> {
    let ssl = Ssl::new(acceptor.context()).map_err(tls_error)?;
    let mut stream = SslStream::new(ssl, tcp).map_err(tls_error)?;
    tokio::time::timeout(Duration::from_secs(10), Pin::new(&mut stream).accept())
        .await
        .map_err(|_| RoutingError::Tls("handshake timed out".into()))?
        .map_err(tls_error)?;
    Ok(stream)
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
        .map(|der| hex::encode(Sha256::digest(der)))
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
