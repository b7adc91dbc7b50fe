//! TLS with client certificates, with OpenSSL (the crypto library signgate already uses): a
//! listener that serves any axum [`Router`] and hands each handler the verified client
//! certificate as a [`PeerCertificate`] extension. Used by the routing node (peers must present
//! a certificate) and by the gateway API (calling systems may present one instead of a bearer
//! token); the node-to-node client lives in `routing::tls`, above this module.
//!
//! Why hyper over `tokio-openssl` rather than a TLS-enabled HTTP crate: the certificates and
//! trust stores are OpenSSL objects already, and no second TLS stack enters the build.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    Ssl, SslAcceptor, SslConnector, SslContextBuilder, SslMethod, SslVerifyMode, SslVersion,
};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;
use tower::ServiceExt;

/// Why a TLS identity, trust store or handshake failed (the message names the file, never
/// a password).
#[derive(Debug, thiserror::Error)]
#[error("tls: {0}")]
pub struct TlsError(pub String);

/// Whether the listener demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificate {
    /// The handshake fails without a certificate chaining to the trust anchors (node peers).
    Required,
    /// A certificate is verified when presented; without one the request goes on and the
    /// handler authenticates it otherwise (bearer tokens on the gateway API).
    Optional,
}

/// The client certificate a TLS peer presented (DER), already verified against the trust
/// anchors; handlers map it to a node or a client by [`PeerCertificate::fingerprint`].
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<Vec<u8>>);

impl PeerCertificate {
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fn fingerprint(&self) -> String {
        crate::pki::alg::sha256_hex(self.0.as_slice())
    }
}

/// A TLS identity: certificate, key and intermediate CAs (from PKCS#12 or PEM files).
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
    pub fn open(path: &Path, password: &str) -> Result<Self, TlsError> {
        let bad = |m: String| TlsError(format!("identity {}: {m}", path.display()));
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

    /// Reads a PEM certificate file (leaf first, then intermediates) and a PEM private key.
    pub fn from_pem(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| TlsError(format!("identity {}: {e}", p.display())))
        };
        let mut certs = X509::stack_from_pem(&read(cert)?)
            .map_err(|_| TlsError(format!("{}: not a PEM certificate", cert.display())))?
            .into_iter();
        let certificate = certs
            .next()
            .ok_or_else(|| TlsError(format!("{}: no certificate", cert.display())))?;
        let key = PKey::private_key_from_pem(&read(key)?)
            .map_err(|_| TlsError(format!("{}: not an unencrypted PEM key", key.display())))?;
        Ok(Self {
            certificate,
            key,
            chain: certs.collect(),
        })
    }

    /// SHA-256 of the certificate, lowercase hex (what peers put in `cert_fingerprint`).
    pub fn fingerprint(&self) -> Result<String, TlsError> {
        let der = self
            .certificate
            .to_der()
            .map_err(|e| TlsError(e.to_string()))?;
        Ok(crate::pki::alg::sha256_hex(&der))
    }
}

fn load_trust(paths: &[PathBuf]) -> Result<Vec<X509>, TlsError> {
    let mut out = Vec::new();
    for path in paths {
        let pem =
            std::fs::read(path).map_err(|e| TlsError(format!("trust {}: {e}", path.display())))?;
        let certs = X509::stack_from_pem(&pem)
            .map_err(|e| TlsError(format!("trust {}: {e}", path.display())))?;
        out.extend(certs);
    }
    Ok(out)
}

fn tls_error(e: impl std::fmt::Display) -> TlsError {
    TlsError(e.to_string())
}

/// Both sides: TLS 1.2+, our certificate and chain, and `trust` for the other side's.
fn configure(
    b: &mut SslContextBuilder,
    identity: &TlsIdentity,
    trust: &[PathBuf],
) -> Result<(), TlsError> {
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

/// A server context (TLS 1.2+) verifying client certificates against `trust`; `client` says
/// whether one is required.
pub fn acceptor(
    identity: &TlsIdentity,
    trust: &[PathBuf],
    client: ClientCertificate,
) -> Result<SslAcceptor, TlsError> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(tls_error)?;
    configure(&mut b, identity, trust)?;
    b.set_verify(match client {
        ClientCertificate::Required => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        ClientCertificate::Optional => SslVerifyMode::PEER,
    });
    b.check_private_key().map_err(tls_error)?;
    Ok(b.build())
}

/// A client context presenting `identity` and trusting `trust` for server certificates.
pub fn connector(identity: &TlsIdentity, trust: &[PathBuf]) -> Result<SslConnector, TlsError> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(tls_error)?;
    configure(&mut b, identity, trust)?;
    b.set_verify(SslVerifyMode::PEER);
    Ok(b.build())
}

/// Most connections served at once; further peers wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;

/// How long a shutdown of [`serve`] waits for the requests in flight on TLS connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest time a client may take to send a request's headers (a client sending slowly
/// cannot hold a connection, or a shutdown, open forever).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` over TLS on `listener` until `shutdown` completes, then lets the requests in
/// flight finish (at most [`DRAIN_TIMEOUT`]) before closing what is left. A request on a
/// connection whose client presented a certificate carries it, verified, as a
/// [`PeerCertificate`] extension; failed handshakes are logged and dropped.
pub async fn serve(
    listener: TcpListener,
    acceptor: Arc<SslAcceptor>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    serve_http(listener, Some(acceptor), router, shutdown, DRAIN_TIMEOUT).await
}

/// Serves `router` on `listener` (over TLS when `acceptor` is given) until `shutdown`
/// completes. Then it stops accepting, lets the requests in flight finish for at most
/// `drain`, and closes the connections still open after that (a client sending slowly
/// included). Returns once every connection is closed.
pub async fn serve_http(
    listener: TcpListener,
    acceptor: Option<Arc<SslAcceptor>>,
    router: Router,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let closing = closing_rx.clone();
        connections.spawn(async move {
            let _slot = slot;
            match acceptor {
                Some(acceptor) => {
                    let stream = match handshake(&acceptor, tcp).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(remote = %remote, error = %e, "TLS handshake refused");
                            return;
                        }
                    };
                    let peer = stream
                        .ssl()
                        .peer_certificate()
                        .and_then(|c| c.to_der().ok())
                        .map(|der| PeerCertificate(Arc::new(der)));
                    connection(
                        stream,
                        peer,
                        ConnectionInfo { remote, tls: true },
                        router,
                        closing,
                    )
                    .await
                }
                None => {
                    let info = ConnectionInfo { remote, tls: false };
                    connection(tcp, None, info, router, closing).await
                }
            }
        });
    }
    // No new connections; let those open finish their requests, bounded by `drain`.
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after {drain:?}; closing them"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Where a request came from and whether it arrived over TLS; [`serve_http`] adds it to
/// each request's extensions (the console's per-address limits and `Secure` cookies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The peer's address.
    pub remote: std::net::SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Serves one HTTP/1.1 connection; on `closing` it finishes the request in flight and closes.
async fn connection<IO>(
    io: IO,
    peer: Option<PeerCertificate>,
    info: ConnectionInfo,
    router: Router,
    mut closing: tokio::sync::watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        if let Some(peer) = &peer {
            req.extensions_mut().insert(peer.clone());
        }
        req.extensions_mut().insert(info);
        router.clone().oneshot(req.map(Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    if *closing.borrow() {
        conn.as_mut().graceful_shutdown();
    }
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = closing.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended");
    }
}

async fn handshake(
    acceptor: &SslAcceptor,
    tcp: TcpStream,
) -> Result<SslStream<TcpStream>, TlsError> {
    let ssl = Ssl::new(acceptor.context()).map_err(tls_error)?;
    let mut stream = SslStream::new(ssl, tcp).map_err(tls_error)?;
    tokio::time::timeout(Duration::from_secs(10), Pin::new(&mut stream).accept())
        .await
        .map_err(|_| TlsError("handshake timed out".into()))?
        .map_err(tls_error)?;
    Ok(stream)
}
