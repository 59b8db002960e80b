//! The speaker loop: watches, the decision, the sessions.
//!
//! Level-triggered: watch events only update the [`Cache`] (and mark it dirty when something
//! the decision reads changed). When no more events are immediately ready, one reconcile
//! recomputes the whole decision and hands each session the table it should have; the
//! [`Sessions`] layer passes on only tables that changed and the BGP speaker sends only the
//! difference. Bursts coalesce into one reconcile without any settle timer, so a new Service
//! IP reaches the router within milliseconds.
//!
//! Nothing is decided before the initial lists of Services, EndpointSlices, this Node and
//! the ConfigMap have arrived, so a restarting speaker never withdraws what it should keep.

mod inputs;
mod publish;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_bgp::session::SpeakerEvent;
use ferrolb_config::Config;
use ferrolb_daemon::config_source::{self, ConfigState};
use ferrolb_daemon::relist::Relist;
use ferrolb_daemon::watch::watch;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::watcher;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bfd::BfdSessions;
use crate::cache::Cache;
use crate::decision::{self, Decision};
use crate::events::EventSink;
use crate::learned::PodRouteContext;
use crate::metrics::Metrics;
use crate::options::StopMode;
use crate::peers::{self, DesiredPeers, LocalAddrs};
use crate::sessions::Sessions;
use crate::shared::Shared;
use crate::status::ConfigReport;

/// How often peers that could not be set up are retried.
const PEER_RETRY: Duration = Duration::from_secs(5);

/// The reason text of the Cease sent on shutdown (RFC 8203).
pub const SHUTDOWN_REASON: &str = "ferrolb-speaker shutting down";

/// Why the node is draining (RFC 8326) and until when.
#[derive(Debug, Clone, Copy)]
struct Drain {
    until: tokio::time::Instant,
    why: DrainCause,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrainCause {
    /// The node became excluded: the exclusion label, or a cordon with `--drain-on-cordon`.
    ExcludeLabel,
    /// The speaker is stopping with `--on-sigterm drain`.
    Stop,
}

impl DrainCause {
    fn as_str(self) -> &'static str {
        match self {
            DrainCause::ExcludeLabel => {
                "node excluded (exclusion label, or cordon with --drain-on-cordon)"
            }
            DrainCause::Stop => "stopping (--on-sigterm drain)",
        }
    }
}

#[derive(Debug, Default)]
struct Synced {
    services: bool,
    slices: bool,
    node: bool,
    config: bool,
}

impl Synced {
    fn all(&self) -> bool {
        self.services && self.slices && self.node && self.config
    }
}

/// Everything the loop owns.
pub(crate) struct Driver {
    node_name: String,
    namespace: String,
    config_name: String,
    opts: decision::Options,
    cache: Cache,
    synced: Synced,
    relist_services: Relist,
    relist_slices: Relist,
    config: Option<Config>,
    /// The newest configuration state (its generation tells a reload).
    config_state: ConfigState,
    config_report: ConfigReport,
    sessions: Sessions,
    bfd: BfdSessions,
    desired_peers: DesiredPeers,
    peers_dirty: bool,
    dirty: bool,
    announced: BTreeMap<String, Vec<IpAddr>>,
    warned: BTreeSet<(String, &'static str, String)>,
    learned: watch::Sender<PodRouteContext>,
    /// Maximum-prefix limit of every peer (`--max-prefixes`).
    max_prefixes: Option<u32>,
    /// `--on-sigterm` and `--drain-period`.
    stop_mode: StopMode,
    drain_period: Duration,
    /// A drain in progress: until then Service routes go out with GRACEFUL_SHUTDOWN (and
    /// despite the exclusion label, when that started it).
    drain: Option<Drain>,
    /// Whether the exclusion label was on at the last reconcile (`None` before the first:
    /// a speaker that starts on an excluded node has nothing to drain).
    was_excluded: Option<bool>,
    events: EventSink,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        node_name: String,
        namespace: String,
        config_name: String,
        opts: decision::Options,
        sessions: Sessions,
        bfd: BfdSessions,
        learned: watch::Sender<PodRouteContext>,
        events: EventSink,
        metrics: Arc<Metrics>,
        shared: Arc<Shared>,
    ) -> Self {
        Driver {
            node_name,
            namespace,
            config_name,
            opts,
            cache: Cache::default(),
            synced: Synced::default(),
            relist_services: Relist::default(),
            relist_slices: Relist::default(),
            config: None,
            config_state: ConfigState::default(),
            config_report: ConfigReport::default(),
            sessions,
            bfd,
            desired_peers: DesiredPeers::default(),
            peers_dirty: true,
            dirty: true,
            announced: BTreeMap::new(),
            warned: BTreeSet::new(),
            learned,
            max_prefixes: None,
            stop_mode: StopMode::Withdraw,
            drain_period: Duration::ZERO,
            drain: None,
            was_excluded: None,
            events,
            metrics,
            shared,
        }
    }

    /// Sets what a stop does and the drain period.
    pub(crate) fn with_stop(mut self, mode: StopMode, drain_period: Duration) -> Self {
        self.stop_mode = mode;
        self.drain_period = drain_period;
        self
    }

    /// Sets the maximum-prefix limit of every peer.
    pub(crate) fn with_max_prefixes(mut self, limit: Option<u32>) -> Self {
        self.max_prefixes = limit;
        self
    }

    /// Run until `cancel`, then Cease every session.
    pub(crate) async fn run(
        mut self,
        client: kube::Client,
        mut bgp_events: mpsc::UnboundedReceiver<SpeakerEvent>,
        cancel: CancellationToken,
    ) {
        let svc_api: Api<Service> = Api::all(client.clone());
        let eps_api: Api<EndpointSlice> = Api::all(client.clone());
        let node_api: Api<Node> = Api::all(client.clone());
        let mut services = watch(svc_api, watcher::Config::default(), "services");
        let mut slices = watch(eps_api, watcher::Config::default(), "endpointslices");
        let node_cfg =
            watcher::Config::default().fields(&format!("metadata.name={}", self.node_name));
        let mut nodes = watch(node_api, node_cfg, "node");
        let mut source_opts = config_source::Options::new(&self.namespace, &self.config_name);
        source_opts.read_secrets = true;
        source_opts.read_nodes = true;
        let mut configs = config_source::spawn(client, source_opts, cancel.child_token());
        let mut retry = tokio::time::interval(PEER_RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            let work = self.dirty && self.synced.all();
            let retry_wanted = !self.desired_peers.problems.is_empty()
                || !self.sessions.errors().is_empty()
                || !self.bfd.errors().is_empty();
            // `biased`: drain every ready event first, then reconcile once for the burst.
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                ev = services.try_next() => match ev {
                    Ok(Some(ev)) => self.on_service(ev),
                    Ok(None) => break,
                    Err(e) => self.watch_error("services", &e),
                },
                ev = slices.try_next() => match ev {
                    Ok(Some(ev)) => self.on_slice(ev),
                    Ok(None) => break,
                    Err(e) => self.watch_error("endpointslices", &e),
                },
                ev = nodes.try_next() => match ev {
                    Ok(Some(ev)) => self.on_node(ev),
                    Ok(None) => break,
                    Err(e) => self.watch_error("node", &e),
                },
                Ok(()) = configs.changed() => {
                    let state = configs.borrow_and_update().clone();
                    self.on_config_state(state);
                }
                Some(ev) = bgp_events.recv() => self.on_bgp(ev),
                _ = retry.tick(), if retry_wanted => {
                    self.peers_dirty = true;
                    self.dirty = true;
                }
                () = tokio::time::sleep_until(self.drain.map_or_else(tokio::time::Instant::now, |d| d.until)),
                    if self.drain.is_some_and(|d| d.why == DrainCause::ExcludeLabel) =>
                {
                    tracing::info!(period = ?self.drain_period, "drain period over: withdrawing this node's Service routes");
                    self.drain = None;
                    self.dirty = true;
                }
                _ = std::future::ready(()), if work => self.reconcile().await,
            }
        }
        self.stop().await;
    }

    /// Ends the sessions as `--on-sigterm` says.
    async fn stop(&mut self) {
        match self.stop_mode {
            StopMode::Withdraw => {
                tracing::info!(mode = "withdraw", "stopping: sending Cease to every peer");
                self.sessions.shutdown(SHUTDOWN_REASON).await;
            }
            StopMode::Restart => {
                tracing::info!(
                    mode = "restart",
                    "stopping for a restart: peers with graceful restart keep this node's routes, the others get a Cease"
                );
                self.sessions.shutdown_for_restart(SHUTDOWN_REASON).await;
            }
            StopMode::Drain => {
                if self.synced.all() && !self.drain_period.is_zero() {
                    tracing::info!(
                        mode = "drain",
                        period = ?self.drain_period,
                        "stopping: announcing GRACEFUL_SHUTDOWN, then withdrawing"
                    );
                    self.drain = Some(Drain {
                        until: tokio::time::Instant::now() + self.drain_period,
                        why: DrainCause::Stop,
                    });
                    self.reconcile().await;
                    tokio::time::sleep(self.drain_period).await;
                }
                tracing::info!(mode = "drain", "drain over: sending Cease to every peer");
                self.sessions.shutdown(SHUTDOWN_REASON).await;
            }
        }
        self.bfd.shutdown().await;
    }

    /// Recompute everything and apply the difference.
    async fn reconcile(&mut self) {
        self.dirty = false;
        self.metrics.reconciles.inc();
        let Some(node) = self.cache.node.clone() else {
            self.publish_with(&Decision::default());
            return;
        };
        let opts = self.decision_options(&node.view);
        let empty = Config::default();
        let config = self.config.as_ref().unwrap_or(&empty);
        if self.peers_dirty {
            self.peers_dirty = false;
            let local = LocalAddrs {
                ipv4: node.ipv4(),
                ipv6: node.ipv6(),
            };
            self.desired_peers = peers::desired_peers(
                config,
                &node.view.labels,
                local,
                &mut peers::kernel_source_towards,
            );
            for pc in self.desired_peers.peers.values_mut() {
                pc.max_prefixes = self.max_prefixes;
            }
            for (peer, why) in &self.desired_peers.problems {
                tracing::warn!(%peer, reason = %why, "peer not set up");
            }
            // A removed peer's routes are withdrawn by its session going down.
            let _removed = self.sessions.apply_peers(&self.desired_peers.peers).await;
            // BFD for the peers the BGP speaker took, as their profiles say.
            let bfd = crate::bfd::desired_bfd(
                config,
                &node.view.labels,
                self.sessions.configured(),
                &crate::bfd::directly_connected,
            );
            self.bfd.apply(bfd);
            let peers: BTreeSet<IpAddr> = self.desired_peers.peers.keys().copied().collect();
            self.learned.send_if_modified(|t| {
                let changed = t.peers != peers || !t.peers_known;
                t.peers = peers;
                t.peers_known = true;
                changed
            });
        }
        let views = self.cache.service_views();
        let mut decision = decision::decide(config, &node.view, &views, &opts);
        let local = LocalAddrs {
            ipv4: node.ipv4(),
            ipv6: node.ipv6(),
        };
        decision.problems.extend(crate::routes::next_hop_problems(
            &decision,
            local,
            &self.node_name,
        ));
        let lb = crate::learned::load_balancer_prefixes(
            config,
            views.iter().flat_map(|v| v.ips.iter().copied()),
        );
        let tables = crate::routes::tables(&decision);
        let changed = self.sessions.apply_routes(tables);
        if changed > 0 {
            tracing::debug!(peers = changed, "announcements updated");
        }
        self.emit_events(&decision);
        self.metrics
            .set_announced(&self.node_name, &decision.announced_services);
        self.announced = decision.announced_services.clone();
        let pod_cidrs = node.view.pod_cidrs.clone();
        self.learned.send_if_modified(|t| {
            let changed = t.local_pod_cidrs != pod_cidrs || t.load_balancer_prefixes != lb;
            if changed {
                t.local_pod_cidrs = pod_cidrs.clone();
                t.load_balancer_prefixes = lb;
            }
            changed
        });
        self.publish_with(&decision);
    }

    /// The decision options, with a drain applied: starts one when the node becomes
    /// excluded (the exclusion label, or a cordon with `--drain-on-cordon`) and
    /// `--drain-period` is not zero; ends it when the node is back.
    fn decision_options(&mut self, node: &decision::NodeView) -> decision::Options {
        let excluded = decision::node_excluded(node, &self.opts);
        let label_drain = self
            .drain
            .is_some_and(|d| d.why == DrainCause::ExcludeLabel);
        if excluded && self.was_excluded == Some(false) && !self.drain_period.is_zero() {
            tracing::info!(
                period = ?self.drain_period,
                cordoned = node.unschedulable,
                "node excluded from load balancers: announcing GRACEFUL_SHUTDOWN, then withdrawing"
            );
            self.drain = Some(Drain {
                until: tokio::time::Instant::now() + self.drain_period,
                why: DrainCause::ExcludeLabel,
            });
        } else if !excluded && label_drain {
            tracing::info!("node no longer excluded during the drain: announcing normally");
            self.drain = None;
        }
        self.was_excluded = Some(excluded);
        let mut opts = self.opts.clone();
        if let Some(d) = self.drain {
            opts.graceful_shutdown = true;
            // The label would withdraw at once; the drain keeps announcing until it ends.
            opts.ignore_exclude_lb |= d.why == DrainCause::ExcludeLabel;
        }
        opts
    }
}
