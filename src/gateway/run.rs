//! Starting and stopping a gateway: every listener and background task behind one shutdown
//! signal, so SIGTERM drains them all.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::admin::CreatedClient;
use super::{demo, GatewayConfig, GatewayError, Services};
use crate::routing::{tls as routing_tls, worker, Node, RoutingConfig};

/// What the HTTP adapter supplies: the API over the services (with the routing node's
/// operator endpoints when there is a node) and the peers' router of a routing node. The
/// gateway serves them; it does not know their routes.
pub struct HttpApp<A> {
    /// Builds the API router (may resume work, e.g. unfinished batches).
    pub api: A,
    /// Builds the router peers reach over mutual TLS, with a body limit.
    pub peers: fn(Arc<Node>, usize) -> Router,
}

/// Starts gateways.
pub struct Gateway;

/// A started gateway. [`Running::shutdown`] (or [`Running::run_until`]) stops it.
pub struct Running {
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// Whether the API is served over TLS.
    pub api_tls: bool,
    /// Where the routing node listens for peers, if this gateway is a node.
    pub routing_addr: Option<SocketAddr>,
    /// Where the demo publication point listens, if it could bind its port.
    pub publication_addr: Option<SocketAddr>,
    /// The demo client created on a fresh demo database (its token is shown once).
    pub demo_client: Option<CreatedClient>,
    services: Services,
    node: Option<Arc<Node>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Completes once `stop` says so (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener, GatewayError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| GatewayError::Listen {
            addr: addr.into(),
            reason: e.to_string(),
        })
}

fn local_addr(listener: &tokio::net::TcpListener) -> Result<SocketAddr, GatewayError> {
    listener.local_addr().map_err(|e| GatewayError::Listen {
        addr: "?".into(),
        reason: e.to_string(),
    })
}

impl Gateway {
    /// Opens the database, registers the keys, and starts: the API listener (HTTPS with
    /// `[tls]`), the routing node (peer listener and outbox worker) with `[routing]`,
    /// retention with `retention_days`, and in demo mode the demo client and the demo
    /// publication point on its port (when free; one line on stderr otherwise).
    pub async fn start<A, F>(
        config: GatewayConfig,
        app: HttpApp<A>,
    ) -> Result<Running, GatewayError>
    where
        A: FnOnce(Services, Option<Arc<Node>>) -> F,
        F: Future<Output = Result<Router, GatewayError>>,
    {
        let addr = super::listen_address(&config.listen)?;
        let acceptor = match &config.tls {
            Some(tls) => Some(Arc::new(
                tls.acceptor()
                    .map_err(|e| GatewayError::Config(e.to_string()))?,
            )),
            None => None,
        };
        let services = Services::open(&config).await?;
        let demo_client = match config.demo {
            Some(_) => services.demo_client().await?,
            None => None,
        };
        let (stop, _) = watch::channel(false);
        let drain = config.settings.drain_timeout;
        let mut tasks = JoinSet::new();

        let mut routing_addr = None;
        let node = match &config.routing {
            Some(routing) => {
                let (node, addr) =
                    spawn_node(routing, &services, app.peers, &stop, drain, &mut tasks).await?;
                routing_addr = Some(addr);
                Some(node)
            }
            None => None,
        };

        if let Some(days) = config.retention_days {
            tasks.spawn(retention(services.clone(), days, stopped(stop.subscribe())));
        }

        let mut publication_addr = None;
        if config.demo.is_some() {
            if let Some(local) = config.settings.local_publications.first() {
                match tokio::net::TcpListener::bind(demo::PUBLICATION_LISTEN).await {
                    Ok(listener) => {
                        publication_addr = Some(local_addr(&listener)?);
                        let router = local.publication.clone().router();
                        tasks.spawn(crate::tls::serve_http(
                            listener,
                            None,
                            router,
                            stopped(stop.subscribe()),
                            drain,
                        ));
                    }
                    Err(e) => eprintln!(
                        "signgate: demo OCSP/CRL server not started on {} ({e}); this gateway still checks the demo certificates in-process",
                        demo::PUBLICATION_LISTEN
                    ),
                }
            }
        }

        let router = (app.api)(services.clone(), node.clone()).await?;
        let listener = bind(&addr.to_string()).await?;
        let api_addr = local_addr(&listener)?;
        tasks.spawn(crate::tls::serve_http_with(
            listener,
            acceptor.clone(),
            router,
            stopped(stop.subscribe()),
            serve_limits(&config.settings.limits, drain),
        ));
        Ok(Running {
            api_addr,
            api_tls: acceptor.is_some(),
            routing_addr,
            publication_addr,
            demo_client,
            services,
            node,
            stop,
            tasks,
        })
    }
}

/// The API listener's limits: connections and timeouts from `[limits]`, and the drain.
fn serve_limits(limits: &super::config::Limits, drain: Duration) -> crate::tls::ServeLimits {
    crate::tls::ServeLimits {
        max_connections: limits.max_connections,
        header_read_timeout: limits.header_read_timeout,
        body_read_timeout: limits.body_read_timeout,
        idle_timeout: limits.idle_timeout,
        drain,
    }
}

/// Starts the routing node of `routing` over `services`: its mutual-TLS listener for peers
/// (serving `peers`) and its outbox worker, both in `tasks`, both stopping on `stop`.
async fn spawn_node(
    routing: &RoutingConfig,
    services: &Services,
    peers: fn(Arc<Node>, usize) -> Router,
    stop: &watch::Sender<bool>,
    drain: Duration,
    tasks: &mut JoinSet<()>,
) -> Result<(Arc<Node>, SocketAddr), GatewayError> {
    let node = services.routing_node(routing)?;
    let acceptor =
        routing_tls::acceptor(node.identity(), &routing.peer_trust).map_err(crate::Error::from)?;
    let listener = bind(&routing.listen).await?;
    let addr = local_addr(&listener)?;
    let peers = peers(node.clone(), services.settings().max_body_bytes);
    let (listening, working) = (stopped(stop.subscribe()), stopped(stop.subscribe()));
    let (node_id, worker_node) = (routing.node_id.clone(), node.clone());
    tasks.spawn(async move {
        let server =
            crate::tls::serve_http(listener, Some(Arc::new(acceptor)), peers, listening, drain);
        tokio::join!(server, worker::run(worker_node, working));
        eprintln!("signgate: routing node {node_id} stopped");
    });
    Ok((node, addr))
}

/// A routing node started alone, without the API (benchmarks); stops when dropped or shut down.
pub struct RunningNode {
    /// The node.
    pub node: Arc<Node>,
    /// Where it listens for peers.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl RunningNode {
    /// Starts the node of `routing` over `services`, serving `peers` to its peers.
    pub async fn start(
        routing: &RoutingConfig,
        services: &Services,
        peers: fn(Arc<Node>, usize) -> Router,
    ) -> Result<Self, GatewayError> {
        let (stop, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let drain = services.settings().drain_timeout;
        let (node, addr) = spawn_node(routing, services, peers, &stop, drain, &mut tasks).await?;
        Ok(Self {
            node,
            addr,
            stop,
            tasks,
        })
    }

    /// Stops the listener and the worker and waits for both.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// An HTTP server run in the background (`tsa serve`, `pki serve`, benchmarks): serves until
/// shut down or dropped.
pub struct BackgroundServer {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl BackgroundServer {
    /// Serves `router` on `listener` on the current runtime.
    pub fn start(listener: tokio::net::TcpListener, router: Router) -> Self {
        let (stop, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(crate::tls::serve_http(
            listener,
            None,
            router,
            stopped(stop.subscribe()),
            crate::tls::DRAIN_TIMEOUT,
        ));
        Self { stop, tasks }
    }

    /// Binds `addr` (port 0 picks a free port) and serves `router` there; returns the server
    /// and the bound address.
    pub async fn bind(
        addr: SocketAddr,
        router: Router,
    ) -> Result<(Self, SocketAddr), GatewayError> {
        let listener = bind(&addr.to_string()).await?;
        let bound = local_addr(&listener)?;
        Ok((Self::start(listener, router), bound))
    }

    /// Stops accepting, drains, and waits.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Running {
    /// The services of this gateway.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The routing node, if this gateway is one.
    pub fn node(&self) -> Option<&Arc<Node>> {
        self.node.as_ref()
    }

    /// Runs until `signal` completes, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }

    /// Stops accepting everywhere, lets requests in flight finish within the drain timeout,
    /// closes what is left, stops the routing worker and retention, and closes the database.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.services.close().await;
    }
}

/// Deletes submissions older than `days`, at start and then every hour, until `stop`.
async fn retention(services: Services, days: u32, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        match services.purge_expired(days).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "retention: old submissions deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention purge failed"),
        }
    }
}

impl Services {
    /// Deletes submissions stored more than `days` ago; returns how many.
    pub async fn purge_expired(&self, days: u32) -> Result<u64, GatewayError> {
        let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days));
        Ok(self
            .store()
            .purge_submissions_before(&crate::clock::rfc3339(cutoff))
            .await?)
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn termination() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
