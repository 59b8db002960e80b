//! Routes learned from the BGP peers, kept level-triggered for the kernel pod-route
//! installer.
//!
//! The driver folds every `RouteLearned` / `RouteWithdrawn` event of the BGP speaker into a
//! [`LearnedRoutes`] table and publishes it on a `tokio::sync::watch` channel. An installer
//! (the `podroutes` module, `--pod-cidr-mode advertise-and-install`) reads the newest table
//! whenever it changes, diffs it against the kernel and reports what it installed back on
//! its own channel, which the status page shows. Neither side ever sees a lost or
//! reordered event: a watch channel always holds the whole current state.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_bgp::session::SpeakerEvent;
use ferrolb_bgp::wire::NextHop;
use ipnet::IpNet;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Every route the peers currently announce to this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LearnedRoutes {
    /// Prefix -> peer address -> the next hop that peer gave.
    pub routes: BTreeMap<IpNet, BTreeMap<IpAddr, IpAddr>>,
    /// This node's own pod CIDRs (never to be installed towards another node).
    pub local_pod_cidrs: Vec<IpNet>,
    /// LoadBalancer address space: every configured pool (as CIDRs) and every Service
    /// status IP. A learned route overlapping these must not be installed, or it would
    /// capture traffic for a Service IP.
    pub load_balancer_prefixes: Vec<IpNet>,
}

impl LearnedRoutes {
    /// Fold one speaker event in; returns whether the table changed.
    pub fn apply(&mut self, ev: &SpeakerEvent) -> bool {
        match ev {
            SpeakerEvent::RouteLearned {
                peer,
                prefix,
                route,
            } => {
                let nh = next_hop_addr(&route.next_hop);
                let entry = self.routes.entry(*prefix).or_default();
                entry.insert(*peer, nh) != Some(nh)
            }
            SpeakerEvent::RouteWithdrawn { peer, prefix } => {
                let Some(entry) = self.routes.get_mut(prefix) else {
                    return false;
                };
                let removed = entry.remove(peer).is_some();
                if entry.is_empty() {
                    self.routes.remove(prefix);
                }
                removed
            }
            SpeakerEvent::PeerStateChanged { .. } | SpeakerEvent::EndOfRibSent { .. } => false,
        }
    }

    /// Forget everything learned from `peer` (it was removed from the configuration).
    pub fn forget_peer(&mut self, peer: IpAddr) -> bool {
        let mut changed = false;
        self.routes.retain(|_, by_peer| {
            changed |= by_peer.remove(&peer).is_some();
            !by_peer.is_empty()
        });
        changed
    }

    /// The distinct next hops for `prefix`, sorted (what an ECMP kernel route would use).
    pub fn next_hops(&self, prefix: &IpNet) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .routes
            .get(prefix)
            .map(|m| m.values().copied().collect())
            .unwrap_or_default();
        v.sort();
        v.dedup();
        v
    }
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

/// The address of a BGP next hop (the global one for IPv6).
pub fn next_hop_addr(nh: &NextHop) -> IpAddr {
    match nh {
        NextHop::V4(a) => IpAddr::V4(*a),
        NextHop::V6 { global, .. } => IpAddr::V6(*global),
    }
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

/// What a pod-route installer is given when the speaker starts it.
#[derive(Debug)]
pub struct PodRouteFeed {
    /// The newest learned routes; `changed().await` wakes on every change.
    pub learned: watch::Receiver<LearnedRoutes>,
    /// Where the installer reports the routes it keeps in the kernel.
    pub report: watch::Sender<Vec<InstalledRoute>>,
    /// Cancelled when the speaker shuts down; the installer should then stop (and decide
    /// itself whether to leave its routes in place).
    pub cancel: CancellationToken,
}

/// Starts a pod-route installer task (see [`crate::Options::pod_route_installer`]).
pub type PodRouteInstaller = Box<dyn FnOnce(PodRouteFeed) -> JoinHandle<()> + Send>;

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_bgp::rib::Route;
    use ferrolb_bgp::wire::PathAttributes;

    fn learned(peer: &str, prefix: &str, nh: &str) -> SpeakerEvent {
        SpeakerEvent::RouteLearned {
            peer: peer.parse().unwrap(),
            prefix: prefix.parse().unwrap(),
            route: Route {
                attributes: PathAttributes::default(),
                next_hop: NextHop::V4(nh.parse().unwrap()),
            },
        }
    }

    #[test]
    fn folds_events_into_a_table() {
        let mut t = LearnedRoutes::default();
        let p: IpNet = "10.244.2.0/24".parse().unwrap();
        assert!(t.apply(&learned("172.17.0.1", "10.244.2.0/24", "172.17.0.22")));
        assert!(
            !t.apply(&learned("172.17.0.1", "10.244.2.0/24", "172.17.0.22")),
            "same again"
        );
        assert!(t.apply(&learned("172.17.0.2", "10.244.2.0/24", "172.17.0.23")));
        assert_eq!(
            t.next_hops(&p),
            vec![
                "172.17.0.22".parse::<IpAddr>().unwrap(),
                "172.17.0.23".parse().unwrap()
            ]
        );
        let withdraw = SpeakerEvent::RouteWithdrawn {
            peer: "172.17.0.1".parse().unwrap(),
            prefix: p,
        };
        assert!(t.apply(&withdraw));
        assert!(!t.apply(&withdraw));
        assert_eq!(t.next_hops(&p).len(), 1);
        assert!(t.forget_peer("172.17.0.2".parse().unwrap()));
        assert!(t.routes.is_empty());
    }

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
