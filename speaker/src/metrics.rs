//! Prometheus metrics with MetalLB's speaker and BGP names, so existing dashboards work.
//!
//! Session metrics are read from the BGP speaker when `/metrics` is scraped
//! ([`Metrics::refresh_sessions`]), so they are never stale and cost nothing between scrapes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;

use ferrolb_bgp::fsm::State;
use ferrolb_bgp::session::PeerStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `metallb_speaker_announced` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct AnnouncedLabels {
    /// `namespace/name`.
    pub service: String,
    /// `bgp`.
    pub protocol: String,
    /// This node.
    pub node: String,
    /// The announced IP.
    pub ip: String,
}

/// The `peer` label (`address:port`, as MetalLB).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct PeerLabel {
    /// `address:port`.
    pub peer: String,
}

/// The `reason` label of refused pod routes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why (`martian`, `peer_address`, `kernel_refused`, ...).
    pub reason: String,
}

/// Every metric the speaker exports.
pub struct Metrics {
    registry: Registry,
    announced: Family<AnnouncedLabels, Gauge>,
    session_up: Family<PeerLabel, Gauge>,
    bgp_updates: Family<PeerLabel, Counter>,
    announced_prefixes: Family<PeerLabel, Gauge>,
    pending_prefixes: Family<PeerLabel, Gauge>,
    received_prefixes: Family<PeerLabel, Gauge>,
    max_prefix_ceases: Family<PeerLabel, Gauge>,
    pod_routes_refused: Family<ReasonLabel, Gauge>,
    /// `metallb_k8s_client_*`: watch updates processed, watch and write errors, the
    /// configuration loaded and stale.
    pub k8s: ferrolb_daemon::metrics::K8sClientMetrics,
    /// Reconcile passes (`ferrolb_speaker_reconciles_total`).
    pub reconciles: Counter,
    /// `metallb_bfd_*` (MetalLB FRR mode's BFD names).
    pub bfd: crate::bfd::metrics::BfdMetrics,
    state: Mutex<SeenState>,
}

#[derive(Default)]
struct SeenState {
    announced: BTreeSet<AnnouncedLabels>,
    peers: BTreeSet<PeerLabel>,
    /// Last `updates_sent` seen per peer, to turn the speaker's totals into increments.
    updates_seen: BTreeMap<PeerLabel, u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register all metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            announced: Family::default(),
            session_up: Family::default(),
            bgp_updates: Family::default(),
            announced_prefixes: Family::default(),
            pending_prefixes: Family::default(),
            received_prefixes: Family::default(),
            max_prefix_ceases: Family::default(),
            pod_routes_refused: Family::default(),
            k8s: Default::default(),
            reconciles: Counter::default(),
            bfd: Default::default(),
            state: Mutex::new(SeenState::default()),
            registry: Registry::default(),
        };
        registry.register(
            "metallb_speaker_announced",
            "Services being announced from this node. This is desired state, it does not guarantee that the routing protocols have converged.",
            m.announced.clone(),
        );
        registry.register(
            "metallb_bgp_session_up",
            "BGP session state (1 is up, 0 is down)",
            m.session_up.clone(),
        );
        // prometheus-client appends `_total` to counters.
        registry.register(
            "metallb_bgp_updates",
            "Number of BGP UPDATE messages sent",
            m.bgp_updates.clone(),
        );
        registry.register(
            "metallb_bgp_announced_prefixes_total",
            "Number of prefixes currently being advertised on the BGP session",
            m.announced_prefixes.clone(),
        );
        registry.register(
            "metallb_bgp_pending_prefixes_total",
            "Number of prefixes that should be advertised on the BGP session but are not (yet)",
            m.pending_prefixes.clone(),
        );
        registry.register(
            "ferrolb_bgp_received_prefixes",
            "Number of prefixes currently received from the BGP peer",
            m.received_prefixes.clone(),
        );
        registry.register(
            "ferrolb_bgp_max_prefix_ceases",
            "Sessions ended because the peer sent more prefixes than its limit (Cease 6/1)",
            m.max_prefix_ceases.clone(),
        );
        registry.register(
            "ferrolb_speaker_pod_routes_refused",
            "Learned routes not installed in the kernel, per reason",
            m.pod_routes_refused.clone(),
        );
        m.k8s.register(&mut registry);
        registry.register(
            "ferrolb_speaker_reconciles",
            "Number of times the speaker recomputed what to announce",
            m.reconciles.clone(),
        );
        m.bfd.register(&mut registry);
        Metrics { registry, ..m }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeenState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace the announced-Service series: one per (Service, IP).
    pub fn set_announced(&self, node: &str, services: &BTreeMap<String, Vec<IpAddr>>) {
        let now: BTreeSet<AnnouncedLabels> = services
            .iter()
            .flat_map(|(svc, ips)| {
                ips.iter().map(move |ip| AnnouncedLabels {
                    service: svc.clone(),
                    protocol: "bgp".into(),
                    node: node.to_string(),
                    ip: ip.to_string(),
                })
            })
            .collect();
        let mut st = self.lock();
        for gone in st.announced.difference(&now) {
            self.announced.remove(gone);
        }
        for l in now.difference(&st.announced) {
            self.announced.get_or_create(l).set(1);
        }
        st.announced = now;
    }

    /// Refresh the session series from the speaker. `label_of` names a peer
    /// (`address:port`), `desired` says how many prefixes it should get.
    pub fn refresh_sessions(
        &self,
        peers: &[PeerStatus],
        label_of: &dyn Fn(IpAddr) -> String,
        desired: &dyn Fn(IpAddr) -> usize,
    ) {
        let mut st = self.lock();
        let mut now = BTreeSet::new();
        for p in peers {
            let label = PeerLabel {
                peer: label_of(p.peer),
            };
            let up = p.state == State::Established;
            self.session_up.get_or_create(&label).set(i64::from(up));
            self.announced_prefixes
                .get_or_create(&label)
                .set(to_i64(p.prefixes_announced));
            self.received_prefixes
                .get_or_create(&label)
                .set(to_i64(p.prefixes_received));
            self.max_prefix_ceases
                .get_or_create(&label)
                .set(i64::try_from(p.max_prefix_ceases).unwrap_or(i64::MAX));
            let pending = if up {
                desired(p.peer).saturating_sub(p.prefixes_announced)
            } else {
                desired(p.peer)
            };
            self.pending_prefixes
                .get_or_create(&label)
                .set(to_i64(pending));
            let seen = st.updates_seen.get(&label).copied().unwrap_or(0);
            // A re-added peer starts counting from zero again.
            let delta = if p.updates_sent >= seen {
                p.updates_sent - seen
            } else {
                p.updates_sent
            };
            self.bgp_updates.get_or_create(&label).inc_by(delta);
            st.updates_seen.insert(label.clone(), p.updates_sent);
            now.insert(label);
        }
        for gone in st.peers.difference(&now) {
            self.session_up.remove(gone);
            self.announced_prefixes.remove(gone);
            self.pending_prefixes.remove(gone);
            self.received_prefixes.remove(gone);
            self.max_prefix_ceases.remove(gone);
            self.bgp_updates.remove(gone);
        }
        st.updates_seen.retain(|l, _| now.contains(l));
        st.peers = now;
    }

    /// Refused pod routes per reason, as the installer counted them in its last pass.
    pub fn set_pod_routes_refused(&self, counts: &BTreeMap<String, usize>) {
        self.pod_routes_refused.clear();
        for (reason, n) in counts {
            self.pod_routes_refused
                .get_or_create(&ReasonLabel {
                    reason: reason.clone(),
                })
                .set(to_i64(*n));
        }
    }

    /// The text exposition format served on `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(peer: &str, state: State, sent: u64, announced: usize) -> PeerStatus {
        PeerStatus {
            peer: peer.parse().unwrap(),
            remote_as: 64512,
            state,
            established_since: None,
            uptime: None,
            last_error: None,
            updates_sent: sent,
            updates_received: 0,
            prefixes_announced: announced,
            prefixes_received: 2,
            local_address: None,
            max_prefixes: None,
            max_prefix_ceases: 0,
            route_refreshes_received: 0,
        }
    }

    #[test]
    fn names_and_values_match_metallb() {
        let m = Metrics::new();
        m.k8s.config_stale.set(1);
        m.k8s.updates.inc();
        m.set_announced(
            "node-1",
            &BTreeMap::from([(
                "apps/web".to_string(),
                vec!["172.17.254.1".parse().unwrap()],
            )]),
        );
        let label = |a: IpAddr| format!("{a}:179");
        m.refresh_sessions(
            &[
                status("172.17.0.1", State::Established, 5, 3),
                status("172.17.0.2", State::Active, 0, 0),
            ],
            &label,
            &|_| 4,
        );
        m.refresh_sessions(
            &[status("172.17.0.1", State::Established, 7, 4)],
            &label,
            &|_| 4,
        );
        let text = m.encode();
        for want in [
            "metallb_speaker_announced{service=\"apps/web\",protocol=\"bgp\",node=\"node-1\",ip=\"172.17.254.1\"} 1",
            "metallb_bgp_session_up{peer=\"172.17.0.1:179\"} 1",
            "metallb_bgp_updates_total{peer=\"172.17.0.1:179\"} 7",
            "metallb_bgp_announced_prefixes_total{peer=\"172.17.0.1:179\"} 4",
            "metallb_bgp_pending_prefixes_total{peer=\"172.17.0.1:179\"} 0",
            "ferrolb_bgp_received_prefixes{peer=\"172.17.0.1:179\"} 2",
            "metallb_k8s_client_updates_total 1",
            "metallb_k8s_client_update_errors_total 0",
            "metallb_k8s_client_config_stale_bool 1",
            "metallb_k8s_client_config_loaded_bool 0",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(
            !text.contains("172.17.0.2"),
            "a removed peer loses its series"
        );
        m.set_announced("node-1", &BTreeMap::new());
        assert!(!m.encode().contains("apps/web"));
    }
}
