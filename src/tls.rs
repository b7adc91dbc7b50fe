//! TLS with client certificates, with OpenSSL (the crypto library signgate already uses): a
//! listener that serves any axum [`Router`] and hands each handler the verified client
//! certificate as a [`PeerCertificate`] extension. Used by the routing node (peers must present
//! a certificate) and by the gateway API (calling systems may present one instead of a bearer
//! token); the node-to-node client lives in `routing::tls`, above this module.
//!
//! Why hyper over `tokio-openssl` rather than a TLS-enabled HTTP crate: the certificates and
//! trust stores are OpenSSL objects already, and no second TLS stack enters the build.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

/// How long a shutdown of [`serve`] waits for the requests in flight on TLS connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits of a listener: how many connections, how long a client may take to send a
/// request's headers and its body, how long a connection may sit with no request in flight,
/// and how long a shutdown waits for the requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections open at once. Beyond it the connection idle the longest (no request in
    /// flight, or headers still arriving) is closed to make room; when every connection is
    /// busy the new one is closed at once.
    pub max_connections: usize,
    /// From a request's first byte to its last header byte.
    pub header_read_timeout: Duration,
    /// From a request's headers to the last byte of its body; a late body fails to read and
    /// the request carries [`BodyTimedOut`].
    pub body_read_timeout: Duration,
    /// With no request in flight and nothing received (also before the first request).
    pub idle_timeout: Duration,
    /// How long a shutdown lets the requests in flight finish.
    pub drain: Duration,
}

impl ServeLimits {
    /// The limits of internal listeners (peers, publication points, the TSA): 256
    /// connections, 30 s for headers, 600 s for a body, 60 s idle, and `drain`.
    pub fn with_drain(drain: Duration) -> Self {
        Self {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(60),
            drain,
        }
    }
}

/// The remote address of a request's connection (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// Set when a request's body did not arrive within [`ServeLimits::body_read_timeout`] (a
/// request extension: the handler sees a body read error, the adapter answers 408).
#[derive(Debug, Clone, Default)]
pub struct BodyTimedOut(Arc<AtomicBool>);

impl BodyTimedOut {
    /// Whether the body's deadline passed before its end.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

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

/// [`serve_http_with`] with the limits of internal listeners ([`ServeLimits::with_drain`]).
pub async fn serve_http(
    listener: TcpListener,
    acceptor: Option<Arc<SslAcceptor>>,
    router: Router,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    serve_http_with(
        listener,
        acceptor,
        router,
        shutdown,
        ServeLimits::with_drain(drain),
    )
    .await
}

/// What a connection is doing, for the idle and header timeouts and for eviction.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in flight and nothing received since this instant.
    Idle(Instant),
    /// A request's first bytes arrived at this instant; its headers are not complete.
    Head(Instant),
    /// This many requests in flight (their responses not yet fully written).
    Busy(usize),
}

/// One connection's shared state: its phase, and a signal that closes it.
#[derive(Debug)]
struct ConnState {
    phase: Mutex<Phase>,
    close: tokio::sync::Notify,
}

impl ConnState {
    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = f(*phase);
    }

    /// When the connection is closable (not busy), since when.
    fn idle_since(&self) -> Option<Instant> {
        match self.phase() {
            Phase::Idle(t) | Phase::Head(t) => Some(t),
            Phase::Busy(_) => None,
        }
    }
}

/// The open connections of a listener.
#[derive(Debug, Default)]
struct Registry {
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    /// Registers a new connection if there is room, closing the longest-idle one to make
    /// room when the limit is reached; `None` when every connection is busy.
    fn admit(self: &Arc<Self>, id: u64, max: usize) -> Option<Registered> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() >= max.max(1) {
            let oldest = open
                .iter()
                .filter_map(|(k, c)| c.idle_since().map(|t| (t, *k)))
                .min()
                .map(|(_, k)| k)?;
            if let Some(evicted) = open.remove(&oldest) {
                evicted.close.notify_one();
            }
        }
        let state = Arc::new(ConnState {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            close: tokio::sync::Notify::new(),
        });
        open.insert(id, state.clone());
        Some(Registered {
            registry: self.clone(),
            id,
            state,
        })
    }
}

/// A connection's place in the [`Registry`], given back when dropped.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
    state: Arc<ConnState>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// Serves `router` on `listener` (over TLS when `acceptor` is given) within `limits` until
/// `shutdown` completes. Then it stops accepting, closes the connections with no request in
/// flight, lets the requests in flight finish for at most `limits.drain`, and closes the
/// connections still open after that (a client sending slowly included). Returns once every
/// connection is closed. Each request carries its [`RemoteAddr`] and [`BodyTimedOut`].
pub async fn serve_http_with(
    listener: TcpListener,
    acceptor: Option<Arc<SslAcceptor>>,
    router: Router,
    shutdown: impl Future<Output = ()>,
    limits: ServeLimits,
) {
    tokio::pin!(shutdown);
    let registry = Arc::new(Registry::default());
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut next_id: u64 = 0;
    loop {
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
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
        next_id += 1;
        let Some(registered) = registry.admit(next_id, limits.max_connections) else {
            // Every connection is busy: refuse this one at once rather than queue it.
            tracing::debug!(remote = %remote, "connection limit reached; connection closed");
            drop(tcp);
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let closing = closing_rx.clone();
        connections.spawn(async move {
            let close = registered.state.clone();
            let served = async move {
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
                            ConnectionInfo { remote, tls: true },
                            peer,
                            router,
                            closing,
                            &registered,
                            limits,
                        )
                            .await
                    }
                    None => {
                        let info = ConnectionInfo { remote, tls: false };
                        connection(tcp, info, None, router, closing, &registered, limits).await
                    }
                }
            };
            tokio::select! {
                _ = served => {}
                _ = close.close.notified() => {
                    tracing::debug!(remote = %remote, "idle connection closed to make room");
                }
            }
        });
    }
    // No new connections; let those open finish their requests, bounded by `drain`.
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(limits.drain, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after {:?}; closing them",
            limits.drain
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

/// An I/O stream that marks its connection as receiving a request when bytes arrive while
/// it is idle.
struct Watched<IO> {
    io: IO,
    state: Arc<ConnState>,
    /// hyper's own answer to an unparsable request, rewritten with the JSON error shape:
    /// the bytes and how many are written.
    rewritten: Option<(Vec<u8>, usize)>,
}

/// The JSON error shape for hyper's own answer to a request it could not parse (a 4xx head
/// with `content-length: 0`, written before any request reached the service: a target above
/// 64 KiB, headers too large, bad syntax), or `None` for anything else.
fn shaped_parse_error(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let (status_line, _) = text.split_once("\r\n")?;
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let lower = text.to_ascii_lowercase();
    if !(400..500).contains(&status)
        || !lower.contains("\r\ncontent-length: 0\r\n")
        || !lower.ends_with("\r\n\r\n")
    {
        return None;
    }
    let (code, message) = match status {
        414 => ("URI_TOO_LONG", "the request target is too long"),
        431 => ("USAGE", "the request headers are too large"),
        408 => ("REQUEST_TIMEOUT", "the request did not arrive in time"),
        _ => ("USAGE", "the request cannot be parsed as HTTP/1.1"),
    };
    let body = serde_json::json!({
        "error": {"code": code, "message": message, "request_id": crate::ids::random_id("req_")}
    })
    .to_string();
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<IO: AsyncWrite + Unpin> Watched<IO> {
    /// Writes `buf`, unless it is hyper's own error answer: then its JSON-shaped version,
    /// reported as `buf` written.
    fn write_answer(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.rewritten.is_none() && matches!(self.state.phase(), Phase::Head(_)) {
            if let Some(shaped) = shaped_parse_error(buf) {
                self.rewritten = Some((shaped, 0));
            }
        }
        let Some((bytes, written)) = &mut self.rewritten else {
            return Pin::new(&mut self.io).poll_write(cx, buf);
        };
        if *written >= bytes.len() {
            return Pin::new(&mut self.io).poll_write(cx, buf);
        }
        while *written < bytes.len() {
            let n = std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(buf.len()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.set(|p| match p {
                Phase::Idle(_) => Phase::Head(Instant::now()),
                other => other,
            });
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().write_answer(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.state.phase(), Phase::Head(_)) || this.rewritten.is_some() {
            // Before any request reached the service: possibly hyper's own error answer.
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            return this.write_answer(cx, &joined);
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A request in flight on a connection, until its response body is written (or dropped).
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(state: &Arc<ConnState>) -> Self {
        state.set(|p| match p {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Idle(_) | Phase::Head(_) => Phase::Busy(1),
        });
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set(|p| match p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// A response body that keeps its request counted in flight until it is written.
struct ResponseBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for ResponseBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails once its deadline passes.
struct RequestBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timed_out: BodyTimedOut,
}

impl hyper::body::Body for RequestBody {
    type Data = axum::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.0.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(|e| Box::new(e) as Self::Error)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// When the connection in `phase` is due to be closed, if it is not busy.
fn due(phase: Phase, limits: &ServeLimits) -> Option<Instant> {
    match phase {
        Phase::Idle(t) => t.checked_add(limits.idle_timeout),
        Phase::Head(t) => t.checked_add(limits.header_read_timeout),
        Phase::Busy(_) => None,
    }
}

/// Serves one HTTP/1.1 connection within `limits`: closed when idle or slow to send its
/// headers; on `closing` it finishes the request in flight and closes.
async fn connection<IO>(
    io: IO,
    info: ConnectionInfo,
    peer: Option<PeerCertificate>,
    router: Router,
    mut closing: tokio::sync::watch::Receiver<bool>,
    registered: &Registered,
    limits: ServeLimits,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = registered.state.clone();
    let in_service = state.clone();
    let body_timeout = limits.body_read_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let in_flight = InFlight::start(&in_service);
        let timed_out = BodyTimedOut::default();
        let mut req = req.map(|inner| {
            Body::new(RequestBody {
                inner,
                deadline: Box::pin(tokio::time::sleep(body_timeout)),
                timed_out: timed_out.clone(),
            })
        });
        req.extensions_mut().insert(RemoteAddr(info.remote));
        req.extensions_mut().insert(timed_out);
        if let Some(peer) = &peer {
            req.extensions_mut().insert(peer.clone());
        }
        req.extensions_mut().insert(info);
        let answer = router.clone().oneshot(req);
        async move {
            let response = answer.await?;
            Ok::<_, std::convert::Infallible>(response.map(|inner| {
                Body::new(ResponseBody {
                    inner,
                    _in_flight: in_flight,
                })
            }))
        }
    });
    let watched = Watched {
        io,
        state: state.clone(),
        rewritten: None,
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(watched), service);
    tokio::pin!(conn);
    let tick = (limits.idle_timeout.min(limits.header_read_timeout) / 4)
        .clamp(Duration::from_millis(25), Duration::from_secs(1));
    let mut shutting_down = false;
    loop {
        if !shutting_down && *closing.borrow() {
            shutting_down = true;
            if state.idle_since().is_some() {
                return;
            }
            conn.as_mut().graceful_shutdown();
        }
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            _ = closing.changed(), if !shutting_down => {}
            _ = tokio::time::sleep(tick) => {
                if due(state.phase(), &limits).is_some_and(|t| Instant::now() >= t) {
                    tracing::debug!(remote = %info.remote, "idle or slow connection closed");
                    return;
                }
            }
        }
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
