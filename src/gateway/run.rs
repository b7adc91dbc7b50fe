//! Starting and stopping a gateway: every listener and background task behind one shutdown
//! signal, so SIGTERM drains them all.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    /// `.lock` of the spool and batch folders, held shared while the gateway runs (see
    /// [`lock_data_folder`]).
    _data_lock: Vec<std::fs::File>,
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
        let folders = [
            config.settings.spool_dir.clone(),
            config.settings.batch_dir.clone(),
        ];
        let (data_lock, alone) = crate::blocking::run(move || lock_data_folder(&folders)).await?;
        let left = services.clean_leftovers(alone).await?;
        if left.spool_files + left.batch_folders > 0 {
            // Counts only: file and batch names may carry personal data.
            tracing::warn!(
                spool_files = left.spool_files,
                batch_folders = left.batch_folders,
                bytes = left.bytes,
                "start-up: removed what an interrupted run left in the data folder"
            );
        }
        services.purge_idempotency_keys(alone).await?;
        services.resume_batches(alone).await?;
        // Cleaned: now share the folder with other gateway processes.
        let data_lock = crate::blocking::run(move || {
            for lock in &data_lock {
                rustix::fs::flock(lock, rustix::fs::FlockOperation::LockShared)
                    .map_err(|e| GatewayError::Io(format!("cannot lock the data folder: {e}")))?;
            }
            Ok::<_, GatewayError>(data_lock)
        })
        .await?;
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

        tasks.spawn(housekeeping(services.clone(), stopped(stop.subscribe())));
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
            _data_lock: data_lock,
        })
    }
}

/// Opens `.lock` in each of `folders` (the spool folder and the batch folder, which several
/// processes may share: `batch_dir`), creating them, and tries to lock each exclusively:
/// `true` when every lock succeeded, i.e. no other gateway process uses these folders (each
/// holds the locks shared while it runs), so nothing in them is in flight.
fn lock_data_folder(folders: &[PathBuf]) -> Result<(Vec<std::fs::File>, bool), GatewayError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| GatewayError::Io(format!("cannot lock the data folder: {e}"));
    let mut locks = Vec::new();
    let mut alone = true;
    for folder in folders {
        crate::fsio::create_private_dir(folder).map_err(fail)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(folder.join(".lock"))
            .map_err(fail)?;
        alone &=
            rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok();
        locks.push(file);
    }
    Ok((locks, alone))
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
/// (serving `peers`), its outbox worker and its webhook worker, in `tasks`, stopping on `stop`.
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
    let deliverer = super::webhooks::Deliverer {
        store: services.store().clone(),
        fetch: services.settings().fetch.policy.clone(),
        policy: routing.webhooks.clone(),
        lease: routing.delivery.lease,
        poll: routing.delivery.poll,
    };
    let hooking = stopped(stop.subscribe());
    tasks.spawn(async move {
        let server =
            crate::tls::serve_http(listener, Some(Arc::new(acceptor)), peers, listening, drain);
        tokio::join!(
            server,
            worker::run(worker_node, working),
            super::webhooks::run(deliverer, hooking)
        );
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

/// Every hour until `stop`: deletes expired idempotency keys and what interrupted requests
/// left in the data folder (once older than the request timeout).
async fn housekeeping(services: Services, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = services.purge_idempotency_keys(false).await {
            tracing::warn!(error = %e, "purging expired idempotency keys failed");
        }
        if let Err(e) = services.clean_leftovers(false).await {
            tracing::warn!(error = %e, "cleaning the data folder failed");
        }
    }
}

/// What [`Services::clean_leftovers`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Leftovers {
    /// Spooled request bodies (`spool/*.part`) and signed outputs (`spool/out_*`).
    pub spool_files: usize,
    /// Batch folders without a batch row (an upload cut off before it was recorded).
    pub batch_folders: usize,
    /// Bytes freed.
    pub bytes: u64,
}

/// The newest modification time under `path` (itself included) and the bytes of its files.
fn newest_and_size(path: &Path) -> (SystemTime, u64) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return (SystemTime::UNIX_EPOCH, 0);
    };
    let mut newest = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let mut size = 0;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let (n, s) = newest_and_size(&entry.path());
            newest = newest.max(n);
            size += s;
        }
    } else {
        size = meta.len();
    }
    (newest, size)
}

/// A leftover's candidates in `dir`: `(name, path, newest modification, bytes)` of entries
/// whose name `pick` accepts.
fn candidates(dir: &Path, pick: fn(&str) -> bool) -> Vec<(String, PathBuf, SystemTime, u64)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            pick(&name).then(|| {
                let path = e.path();
                let (newest, size) = newest_and_size(&path);
                (name, path, newest, size)
            })
        })
        .collect()
}

impl Services {
    /// Removes what a killed process left in the data folder: spooled bodies and outputs
    /// (`spool/*.part`, `spool/out_*`) and batch folders that have no batch row (an upload
    /// cut off before it was recorded). `alone` (at start-up, when no other gateway process
    /// uses the data folder, so nothing in it is in flight) removes them all; otherwise only
    /// those untouched for longer than the request timeout. Also creates the spool and batch
    /// folders, owner-only.
    pub async fn clean_leftovers(&self, alone: bool) -> Result<Leftovers, GatewayError> {
        let settings = self.settings();
        let (spool, batches) = (settings.spool_dir.clone(), settings.batch_dir.clone());
        let cutoff = if alone {
            None
        } else {
            SystemTime::now().checked_sub(settings.request_timeout)
        };
        let old_enough = move |newest: SystemTime| cutoff.map_or(true, |c| newest < c);
        let listed = crate::blocking::run(move || {
            for dir in [&spool, &batches] {
                crate::fsio::create_private_dir(dir).map_err(|e| {
                    GatewayError::Io(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let spooled = candidates(&spool, |n| n.ends_with(".part") || n.starts_with("out_"));
            let folders = candidates(&batches, |n| n.starts_with("bat_"));
            Ok::<_, GatewayError>((spooled, folders))
        })
        .await?;
        let (spooled, folders) = listed;
        let mut doomed = Vec::new();
        let mut left = Leftovers::default();
        for (_, path, newest, size) in spooled {
            if old_enough(newest) {
                left.spool_files += 1;
                left.bytes += size;
                doomed.push(path);
            }
        }
        for (name, path, newest, size) in folders {
            if old_enough(newest) && self.store().batch(&name).await?.is_none() {
                left.batch_folders += 1;
                left.bytes += size;
                doomed.push(path);
            }
        }
        crate::blocking::run(move || {
            for path in doomed {
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
            Ok::<_, GatewayError>(())
        })
        .await?;
        Ok(left)
    }

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
