//! State shared between the driver (writer) and the HTTP server (reader).
//!
//! The driver publishes a [`Snapshot`] after every reconcile; the HTTP handlers combine it
//! with the BGP speaker's live counters when a page or a scrape is asked for, so neither
//! side waits for the other beyond a short lock.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ferrolb_bgp::bfd::Bfd;
use ferrolb_bgp::session::Speaker;
use ipnet::IpNet;
use tokio::sync::watch;

use crate::bfd::report::BfdReport;
use crate::learned::PodRouteReport;
use crate::metrics::Metrics;
use crate::status::{ConfigReport, PeerReport, StatusReport};

/// What the status page needs to know about one configured peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Port.
    pub port: u16,
    /// Our AS.
    pub local_as: u32,
    /// The peer's AS.
    pub remote_as: u32,
    /// Prefixes it should get.
    pub desired: usize,
    /// Why it has no session, when the speaker refused it or it could not be set up.
    pub error: Option<String>,
    /// Configured in the BGP speaker.
    pub configured: bool,
    /// The `bfd-profile` of its BFD session, if it has one.
    pub bfd_profile: Option<String>,
    /// Why its BFD session could not be set up.
    pub bfd_error: Option<String>,
}

/// The driver's view after its last reconcile.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Initial lists received.
    pub synced: bool,
    /// Config state.
    pub config: ConfigReport,
    /// Peers selected for this node.
    pub peers: BTreeMap<IpAddr, PeerInfo>,
    /// Services announced from this node.
    pub announced: BTreeMap<String, Vec<IpAddr>>,
    /// Services not announced, with the reason.
    pub problems: Vec<String>,
    /// Pod CIDRs advertised.
    pub pod_cidrs: Vec<IpNet>,
    /// What SIGTERM will do (`--on-sigterm`, with the drain period).
    pub on_sigterm: String,
    /// A drain in progress: why, and how long until the routes are withdrawn.
    pub draining: Option<String>,
}

/// Shared between the driver and the HTTP server.
pub struct Shared {
    /// Node name.
    pub node: String,
    /// `--pod-cidr-mode` as text.
    pub pod_cidr_mode: String,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    speaker: Speaker,
    bfd: Bfd,
    snapshot: Mutex<Snapshot>,
    ready: AtomicBool,
    installed: watch::Receiver<PodRouteReport>,
}

impl Shared {
    /// New shared state.
    pub fn new(
        node: String,
        pod_cidr_mode: String,
        metrics: Arc<Metrics>,
        speaker: Speaker,
        bfd: Bfd,
        installed: watch::Receiver<PodRouteReport>,
    ) -> Self {
        Shared {
            node,
            pod_cidr_mode,
            metrics,
            speaker,
            bfd,
            snapshot: Mutex::new(Snapshot::default()),
            ready: AtomicBool::new(false),
            installed,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publish the driver's newest view.
    pub fn publish(&self, snap: Snapshot) {
        self.ready
            .store(snap.synced && snap.config.loaded, Ordering::Relaxed);
        *self.lock() = snap;
    }

    /// Replace only the configuration state.
    pub fn set_config(&self, config: ConfigReport) {
        let mut snap = self.lock();
        self.ready
            .store(snap.synced && config.loaded, Ordering::Relaxed);
        snap.config = config;
    }

    /// Synced and configured.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A copy of the newest view.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }

    /// The whole status page.
    pub fn report(&self) -> StatusReport {
        let snap = self.snapshot();
        let live: BTreeMap<IpAddr, ferrolb_bgp::session::PeerStatus> = self
            .speaker
            .peer_status()
            .into_iter()
            .map(|s| (s.peer, s))
            .collect();
        let peers = snap
            .peers
            .iter()
            .map(|(addr, info)| {
                let label = crate::decision::PeerKey {
                    address: *addr,
                    port: info.port,
                }
                .to_string();
                let bfd = info.bfd_profile.as_ref().map(|profile| {
                    match (&info.bfd_error, self.bfd.session(*addr)) {
                        (Some(e), _) => BfdReport::refused(profile, e),
                        (None, Some(s)) => BfdReport::from_status(profile, &s),
                        (None, None) => BfdReport::refused(profile, "no session"),
                    }
                });
                match live.get(addr) {
                    Some(s) => PeerReport {
                        peer: label,
                        remote_as: info.remote_as,
                        local_as: info.local_as,
                        state: s.state.to_string(),
                        uptime_seconds: s.uptime.map(|u| u.as_secs()),
                        local_address: s.local_address.map(|a| a.to_string()),
                        prefixes_sent: s.prefixes_announced,
                        prefixes_received: s.prefixes_received,
                        prefixes_desired: info.desired,
                        updates_sent: s.updates_sent,
                        updates_received: s.updates_received,
                        last_error: info.error.clone().or_else(|| s.last_error.clone()),
                        bfd,
                        max_prefixes: s.max_prefixes,
                        max_prefix_ceases: s.max_prefix_ceases,
                    },
                    None => PeerReport {
                        peer: label,
                        remote_as: info.remote_as,
                        local_as: info.local_as,
                        state: "NotConfigured".into(),
                        uptime_seconds: None,
                        local_address: None,
                        prefixes_sent: 0,
                        prefixes_received: 0,
                        prefixes_desired: info.desired,
                        updates_sent: 0,
                        updates_received: 0,
                        last_error: info.error.clone(),
                        bfd,
                        max_prefixes: None,
                        max_prefix_ceases: 0,
                    },
                }
            })
            .collect();
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node: self.node.clone(),
            pod_cidr_mode: self.pod_cidr_mode.clone(),
            synced: snap.synced,
            on_sigterm: snap.on_sigterm,
            draining: snap.draining,
            config: snap.config,
            peers,
            announced_services: snap.announced,
            problems: snap.problems,
            advertised_pod_cidrs: snap.pod_cidrs,
            learned_prefixes: self.installed.borrow().learned_prefixes,
            installed_pod_routes: self.installed.borrow().routes.clone(),
            installed_pod_route_count: self.installed.borrow().installed_count,
            refused_pod_routes: self.installed.borrow().refused.clone(),
        }
    }

    /// Bring the session metrics up to date (called on scrape).
    pub fn refresh_metrics(&self) {
        let snap = self.lock().clone();
        let status = self.speaker.peer_status();
        let label = |a: IpAddr| {
            crate::decision::PeerKey {
                address: a,
                port: snap.peers.get(&a).map_or(179, |p| p.port),
            }
            .to_string()
        };
        let desired = |a: IpAddr| snap.peers.get(&a).map_or(0, |p| p.desired);
        self.metrics.refresh_sessions(&status, &label, &desired);
        self.metrics
            .set_pod_routes_refused(&self.installed.borrow().refused);
        self.metrics
            .bfd
            .refresh(&self.bfd.status(), &self.bfd.drops());
    }
}
