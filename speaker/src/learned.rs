//! What the kernel pod-route installer is given by the daemon.
//!
//! Learned routes themselves do not pass through here: the BGP speaker's sessions hand
//! them to the installer over its learned-route feed ([`ferrolb_bgp::session::learned`]:
//! one [`LearnedRoute`] per change, bounded and coalescing), so a leaked table is never
//! copied whole on its way to the kernel. The daemon adds what only it knows, as a small
//! [`PodRouteContext`] on a watch channel: this node's pod CIDRs, the LoadBalancer address
//! space, the configured peers. The installer reports back what it keeps in the kernel
//! ([`PodRouteReport`]), which the status page and the metrics show.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_bgp::session::LearnedReceiver;
pub use ferrolb_bgp::session::LearnedRoute;
use ipnet::IpNet;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::podroutes::nodes::NodePodCidrs;

/// What the daemon tells the pod-route installer besides the learned routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRouteContext {
    /// This node's own pod CIDRs (never to be installed towards another node).
    pub local_pod_cidrs: Vec<IpNet>,
    /// LoadBalancer address space: every configured pool (as CIDRs) and every Service
    /// status IP. A learned route overlapping these must not be installed, or it would
    /// capture traffic for a Service IP.
    pub load_balancer_prefixes: Vec<IpNet>,
    /// Addresses of the configured BGP peers (a learned route must never cover one).
    pub peers: BTreeSet<IpAddr>,
    /// Whether the peer list is known yet (the daemon's first reconcile ran): until
    /// then, a restarted speaker keeps its predecessor's routes.
    pub peers_known: bool,
}

/// The LoadBalancer address space: every pool's ranges as CIDRs, then `service_ips` not
/// already covered, sorted and deduplicated.
pub fn load_balancer_prefixes(
    config: &ferrolb_config::Config,
    service_ips: impl IntoIterator<Item = IpAddr>,
) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    for range in config.pools.iter().flat_map(|p| p.addresses.iter()) {
        if let Some(c) = range.cidr {
            out.push(c);
            continue;
        }
        match (range.start, range.end) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                out.extend(ipnet::Ipv4Subnets::new(a, b, 0).map(IpNet::V4));
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                out.extend(ipnet::Ipv6Subnets::new(a, b, 0).map(IpNet::V6));
            }
            _ => {}
        }
    }
    for ip in service_ips {
        if !out.iter().any(|n| n.contains(&ip)) {
            out.push(IpNet::from(ip));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// One kernel route as a pod-route installer reports it (shown on the status page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledRoute {
    /// Destination.
    pub prefix: IpNet,
    /// Gateways (several = ECMP).
    pub next_hops: Vec<IpAddr>,
    /// The last error installing it, if the kernel refused.
    pub error: Option<String>,
}

/// What a pod-route installer reports after each pass that changed something.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodRouteReport {
    /// Our routes in the kernel, and the ones it refused (the first 1,000 of each).
    pub routes: Vec<InstalledRoute>,
    /// How many routes of ours are in the kernel.
    pub installed_count: usize,
    /// Learned prefixes not installed, counted per reason.
    pub refused: BTreeMap<String, usize>,
    /// Distinct prefixes learned from the peers.
    pub learned_prefixes: usize,
}

/// What a pod-route installer is given when the speaker starts it.
#[derive(Debug)]
pub struct PodRouteFeed {
    /// The learned routes, straight from the BGP sessions.
    pub routes: LearnedReceiver,
    /// The daemon's context; `changed().await` wakes on every change.
    pub context: watch::Receiver<PodRouteContext>,
    /// Every Node's pod CIDRs (see [`crate::podroutes::nodes`]).
    pub node_pod_cidrs: watch::Receiver<NodePodCidrs>,
    /// Where the installer reports the routes it keeps in the kernel.
    pub report: watch::Sender<PodRouteReport>,
    /// Cancelled when the speaker shuts down; the installer should then stop (and decide
    /// itself whether to leave its routes in place).
    pub cancel: CancellationToken,
    /// The stop is a restart (`--on-sigterm restart`): leave the routes for the next
    /// instance, which adopts them, instead of removing them (pod-to-pod traffic from this
    /// node keeps flowing while the speaker restarts).
    pub keep_routes_on_stop: bool,
}

/// Starts a pod-route installer task (see [`crate::Options::pod_route_installer`]).
pub type PodRouteInstaller = Box<dyn FnOnce(PodRouteFeed) -> JoinHandle<()> + Send>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_balancer_space_covers_pools_and_stray_ips() {
        let cfg = ferrolb_config::parse_config(
            "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [172.17.254.0/24, 192.168.0.10-192.168.0.17]\n",
        )
        .expect("config")
        .config;
        let got: Vec<String> = load_balancer_prefixes(
            &cfg,
            [
                "172.17.254.9".parse().unwrap(),
                "203.0.113.1".parse().unwrap(),
            ],
        )
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            got,
            vec![
                "172.17.254.0/24",
                "192.168.0.10/31",
                "192.168.0.12/30",
                "192.168.0.16/31",
                "203.0.113.1/32"
            ]
        );
    }
}
