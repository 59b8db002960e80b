//! ferrolb-speaker: announces this node's Service IPs and pod CIDRs over BGP.
//!
//! - [`decision`]: what this node announces to which peer, as a pure function.
//! - [`k8s::views`], [`cache`]: Kubernetes objects reduced to the plain data it reads.
//! - [`peers`], [`routes`]: the desired sessions and per-session route tables (pure).
//! - [`sessions`]: applies them to the `ferrolb-bgp` speaker, touching only what changed.
//! - [`bfd`]: a BFD session per peer that names a `bfd-profile`; a BFD failure takes that
//!   BGP session down at once.
//! - [`learned`]: routes learned from peers, fed to the kernel pod-route installer
//!   ([`podroutes`], `--pod-cidr-mode advertise-and-install`).
//! - [`metrics`], [`status`], [`shared`], [`http`], [`events`]: what operators see.
//! - `driver`: the watch loop around all of it; [`start`] / [`run`] are the entry points.

pub mod bfd;
pub mod cache;
pub mod cli;
pub mod decision;
mod driver;
pub mod events;
pub mod http;
pub mod k8s;
pub mod learned;
pub mod metrics;
pub mod options;
pub mod peers;
pub mod podroutes;
pub mod routes;
pub mod sessions;
pub mod shared;
pub mod status;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use ferrolb_bgp::bfd::{Bfd, BfdConfig};
use ferrolb_bgp::session::{Speaker, SpeakerConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use driver::SHUTDOWN_REASON;
pub use options::{Options, StopMode};

use crate::decision::PodCidrMode;
use crate::learned::{PodRouteContext, PodRouteFeed, PodRouteReport};
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::status::StatusReport;

/// Why the speaker could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The shared edges (Kubernetes client, HTTP listener).
    #[error(transparent)]
    Start(#[from] ferrolb_daemon::StartError),
    /// The BGP speaker could not be created.
    #[error("BGP speaker: {0}")]
    Bgp(#[from] ferrolb_bgp::session::SpeakerError),
    /// The BFD engine could not be started.
    #[error("BFD: {0}")]
    Bfd(#[from] ferrolb_bgp::bfd::BfdError),
}

impl From<ferrolb_daemon::ClientError> for Error {
    fn from(e: ferrolb_daemon::ClientError) -> Self {
        Error::Start(e.into())
    }
}

/// A running speaker.
pub struct Running {
    http_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    speaker: Speaker,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    others: Vec<JoinHandle<()>>,
}

impl Running {
    /// Where `/metrics`, `/healthz`, `/readyz` and `/status` are served, if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The status page's data.
    pub fn status(&self) -> StatusReport {
        self.shared.report()
    }

    /// The metrics text, as `/metrics` serves it.
    pub fn metrics_text(&self) -> String {
        self.shared.refresh_metrics();
        self.shared.metrics.encode()
    }

    /// The BGP speaker (peer status, for tests and tools).
    pub fn speaker(&self) -> &Speaker {
        &self.speaker
    }

    /// Synced and configured.
    pub fn is_ready(&self) -> bool {
        self.shared.ready()
    }

    /// Stop as [`Options::stop_mode`] says (by default: Cease every session, routers
    /// withdraw our routes at once).
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        for t in self.others.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The component name: User-Agent product and field manager of every request.
pub const COMPONENT: &str = "ferrolb-speaker";

/// Who this speaker is to the API server (its node as instance).
pub fn identity(opts: &Options) -> ferrolb_daemon::Identity {
    ferrolb_daemon::Identity {
        component: COMPONENT,
        instance: opts.node_name.clone(),
    }
}

/// Start the speaker with a client from `config` (inside a tokio runtime; every request
/// names the component and node, see [`identity`]). The BGP sessions connect out from this
/// process's network namespace.
pub async fn start(mut opts: Options, config: kube::Config) -> Result<Running, Error> {
    let identity = identity(&opts);
    let client = ferrolb_daemon::client::client(config, &identity)?;
    let cancel = CancellationToken::new();
    // Learned routes go from the sessions straight to the pod-route installer as bounded,
    // coalescing diffs (never a whole-table copy per change).
    let (speaker, bgp_events, learned_routes) = Speaker::with_learned_feed(
        SpeakerConfig::new(Ipv4Addr::UNSPECIFIED),
        podroutes::FEED_CAPACITY,
    )?;
    // BFD opens its ports only once a peer names a profile.
    let (bfd, bfd_events) = Bfd::new(BfdConfig::default())?;
    let bfd_link = ferrolb_bgp::bfd::link_to_bgp(speaker.clone(), bfd_events);
    let metrics = Arc::new(Metrics::new());
    let (learned_tx, learned_rx) = watch::channel(PodRouteContext::default());
    let (installed_tx, installed_rx) = watch::channel(PodRouteReport::default());
    let mode = match opts.decision.pod_cidr_mode {
        PodCidrMode::Off => "off",
        PodCidrMode::Advertise => "advertise",
        PodCidrMode::AdvertiseAndInstall => "advertise-and-install",
    };
    let shared = Arc::new(Shared::new(
        opts.node_name.clone(),
        mode.to_string(),
        metrics.clone(),
        speaker.clone(),
        bfd.clone(),
        installed_rx,
    ));
    let mut others = vec![bfd_link];
    let http_addr = match opts.listen {
        Some(addr) => {
            let (local, task) = http::serve(addr, shared.clone(), cancel.clone())
                .await
                .map_err(|source| ferrolb_daemon::StartError::Listen { addr, source })?;
            others.push(task);
            Some(local)
        }
        None => None,
    };
    let installer = match opts.decision.pod_cidr_mode {
        PodCidrMode::AdvertiseAndInstall => {
            let i = opts.pod_route_installer.take();
            if i.is_none() {
                tracing::warn!(
                    "--pod-cidr-mode advertise-and-install without a pod-route installer: routes learned from peers are not installed"
                );
            }
            i
        }
        _ => None,
    };
    match installer {
        Some(install) => {
            let (node_pod_cidrs, nodes_task) =
                podroutes::nodes::watch_node_pod_cidrs(client.clone(), cancel.child_token());
            others.push(nodes_task);
            others.push(install(PodRouteFeed {
                routes: learned_routes,
                context: learned_rx,
                node_pod_cidrs,
                report: installed_tx,
                cancel: cancel.child_token(),
                keep_routes_on_stop: opts.stop_mode == StopMode::Restart,
            }));
        }
        // Nobody installs: learned routes are taken and dropped, so the feed never
        // holds the sessions back.
        None => others.push(tokio::spawn(async move {
            let mut learned_routes = learned_routes;
            while learned_routes.recv().await.is_some() {}
        })),
    }
    let (events, events_task) = events::spawn(client.clone(), &identity, cancel.child_token());
    others.push(events_task);
    let sessions = sessions::Sessions::new(speaker.clone());
    let bfd_sessions = bfd::BfdSessions::new(bfd);
    let driver = driver::Driver::new(
        opts.node_name.clone(),
        opts.namespace.clone(),
        opts.config_name.clone(),
        opts.decision.clone(),
        sessions,
        bfd_sessions,
        learned_tx,
        events,
        metrics,
        shared.clone(),
    )
    .with_max_prefixes(opts.max_prefixes)
    .with_stop(opts.stop_mode, opts.drain_period);
    let task = tokio::spawn(driver.run(client, bgp_events, cancel.clone()));
    Ok(Running {
        http_addr,
        shared,
        speaker,
        cancel,
        task: Some(task),
        others,
    })
}

/// Build the client from `kubeconfig`, run until `shutdown` resolves, then Cease every
/// session and return.
pub async fn run(
    opts: Options,
    kubeconfig: Option<&Path>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let config = ferrolb_daemon::client::load_config(kubeconfig).await?;
    let running = start(opts, config).await?;
    shutdown.await;
    running.shutdown().await;
    Ok(())
}
