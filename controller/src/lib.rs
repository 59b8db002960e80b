//! ferrolb-controller: assigns external IPs from pools to LoadBalancer Services.
//!
//! - [`allocator`]: the pure IP allocator (no Kubernetes, no tokio).
//! - [`reconcile`]: the controller's decisions per Service (pure, uses the allocator).
//! - [`k8s`]: the Kubernetes loop around them (watches, writes, events).
//! - [`leader`], [`events`], [`metrics`], [`http`], [`cli`]: the supporting pieces.
//!
//! Entry points: [`start`] (with a client, returns a [`Running`] handle) and [`run`]
//! (builds the client from the options and runs until a shutdown future resolves).

pub mod allocator;
pub mod cli;
pub mod events;
pub mod http;
pub mod k8s;
pub mod leader;
pub mod metrics;
pub mod options;
pub mod reconcile;
pub mod view;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use options::Options;

use ferrolb_daemon::Identity;

use crate::http::Health;
use crate::leader::{LeaderHandle, LeaseConfig};
use crate::metrics::Metrics;

/// The component name: User-Agent product and field manager of every request.
pub const COMPONENT: &str = "ferrolb-controller";

/// Who this controller is to the API server (its leader-election identity as instance).
pub fn identity(opts: &Options) -> Identity {
    Identity {
        component: COMPONENT,
        instance: opts.identity.clone(),
    }
}

/// Why the controller could not start: only what the shared edges can fail with.
pub use ferrolb_daemon::StartError as Error;

/// A running controller.
pub struct Running {
    http_addr: Option<SocketAddr>,
    identity: String,
    leader: LeaderHandle,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    /// Every background task, for [`Running::abort`].
    aborts: Vec<tokio::task::AbortHandle>,
    /// Stops the elector without releasing the Lease (for [`Running::abort`]).
    elector_abort: CancellationToken,
}

impl Running {
    /// Where `/metrics`, `/healthz` and `/readyz` are served, if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Our leader-election identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this instance currently holds the Lease.
    pub fn is_leader(&self) -> bool {
        self.leader.is_leader()
    }

    /// Whether `/readyz` would answer 200.
    pub fn is_ready(&self) -> bool {
        self.health.ready()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stop: no new writes, let running writes finish, release the Lease, stop serving.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Abort every task at once: no Lease release, no draining (simulates a crash, for
    /// tests of leader failover).
    pub fn abort(&self) {
        self.elector_abort.cancel();
        for a in &self.aborts {
            a.abort();
        }
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Start the controller with clients from `config` (each request names the component and
/// identity, see [`identity`]). Returns once the HTTP listener is bound; the loop runs in
/// background tasks until [`Running::shutdown`].
pub async fn start(opts: Options, config: kube::Config) -> Result<Running, Error> {
    let identity = identity(&opts);
    let client = ferrolb_daemon::client::client(config.clone(), &identity)?;
    let opts = Arc::new(opts);
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let cancel = CancellationToken::new();
    let http_cancel = CancellationToken::new();
    let loop_cancel = CancellationToken::new();
    let leader_cancel = CancellationToken::new();
    let events_cancel = CancellationToken::new();

    let mut aborts = Vec::new();
    let mut http = None;
    if let Some(addr) = opts.listen {
        let (local, handle) =
            http::serve(addr, metrics.clone(), health.clone(), http_cancel.clone())
                .await
                .map_err(|source| Error::Listen { addr, source })?;
        aborts.push(handle.abort_handle());
        http = Some((local, handle));
    }
    let writes_busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (events, events_task) = events::spawn(
        client.clone(),
        &identity,
        writes_busy.clone(),
        events_cancel.clone(),
    );
    let latency = metrics.clone();
    let (leader, elector) = leader::spawn(
        config,
        &identity,
        LeaseConfig {
            namespace: opts.namespace.clone(),
            name: opts.lease_name.clone(),
            identity: opts.identity.clone(),
            timing: opts.leader,
        },
        Arc::new(move |d| latency.lease_latency.observe(d.as_secs_f64())),
        leader_cancel.clone(),
    )
    .await?;
    let leader_task = elector.done;
    let driver = k8s::driver::Driver::new(
        opts.clone(),
        client.clone(),
        identity,
        leader.clone(),
        events,
        metrics.clone(),
        health.clone(),
        writes_busy,
    );
    let loop_token = loop_cancel.clone();
    let mut driver_task = tokio::spawn(async move { driver.run(client, loop_token).await });
    aborts.push(driver_task.abort_handle());
    aborts.push(leader_task.abort_handle());
    aborts.push(events_task.abort_handle());

    let root = cancel.clone();
    let http_addr = http.as_ref().map(|(a, _)| *a);
    let task = tokio::spawn(async move {
        tokio::select! {
            _ = root.cancelled() => {}
            _ = &mut driver_task => tracing::error!("controller loop ended unexpectedly"),
        }
        // Order matters: stop writing, then give up the Lease, then stop the rest.
        loop_cancel.cancel();
        let _ = driver_task.await;
        leader_cancel.cancel();
        let _ = leader_task.await;
        events_cancel.cancel();
        let _ = events_task.await;
        http_cancel.cancel();
        if let Some((_, h)) = http {
            let _ = h.await;
        }
        tracing::info!("controller stopped");
    });
    Ok(Running {
        http_addr,
        identity: opts.identity.clone(),
        leader,
        metrics,
        health,
        cancel,
        task: Some(task),
        aborts,
        elector_abort: elector.abort,
    })
}

/// Build a client from `opts.kubeconfig`, run until `shutdown` resolves, then stop cleanly
/// (releasing the Lease).
pub async fn run(opts: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let config = ferrolb_daemon::client::load_config(opts.kubeconfig.as_deref()).await?;
    let running = start(opts, config).await?;
    shutdown.await;
    running.shutdown().await;
    Ok(())
}
