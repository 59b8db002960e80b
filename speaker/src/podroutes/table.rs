//! The learned routes as the reconciler keeps them: per prefix, the next hop each peer
//! offers. Compact on purpose, as a leaked table lands here: the prefixes are kept per
//! address family ([`PrefixMap`]: 5 bytes an IPv4 key instead of 18) and each prefix
//! points at one shared copy of its offers (almost every prefix of a large table has the
//! same one: a peer and its next hop), about 20 bytes a prefix in all; and the kernel
//! routes as the reconciler last left them ([`Gateways`], likewise without an allocation
//! per route).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_bgp::intern::Interner;
use ferrolb_bgp::prefix_map::PrefixMap;
use ferrolb_bgp::session::LearnedRoute;
use ipnet::IpNet;

use super::desired::NextHops;

/// Who offers one prefix: (peer, next hop) pairs, sorted by peer, at least one.
type Offers = Box<[(IpAddr, IpAddr)]>;

/// The routes learned from every peer (the union of their Adj-RIB-In), one next hop per
/// peer and prefix, as BGP delivers them.
#[derive(Debug, Default)]
pub struct Learned {
    by_prefix: PrefixMap<Arc<Offers>>,
    /// The shared copies of the offers.
    offers: Interner<Offers>,
    /// Entries per peer (a peer with none is not listed).
    peers: BTreeMap<IpAddr, usize>,
}

impl PartialEq for Learned {
    fn eq(&self, other: &Self) -> bool {
        self.by_prefix == other.by_prefix
    }
}

impl Eq for Learned {}

impl Clone for Learned {
    fn clone(&self) -> Self {
        self.by_prefix
            .iter()
            .flat_map(|(p, o)| o.iter().map(move |(peer, nh)| (*peer, p, *nh)))
            .collect()
    }
}

impl Learned {
    /// Sets the offers of `prefix` (none: forgets it).
    fn set(&mut self, prefix: IpNet, offers: &[(IpAddr, IpAddr)]) {
        let old = if offers.is_empty() {
            self.by_prefix.remove(&prefix)
        } else {
            let shared = self.offers.intern(offers.into());
            self.by_prefix.insert(prefix, shared)
        };
        if old.is_some() {
            self.offers.released(1);
        }
    }

    /// Records that `peer` offers `prefix` via `next_hop` (replacing its previous route).
    /// Host bits of `prefix` are cleared. Returns whether anything changed.
    pub fn learn(&mut self, peer: IpAddr, prefix: IpNet, next_hop: IpAddr) -> bool {
        let prefix = prefix.trunc();
        let Some(o) = self.by_prefix.get(&prefix) else {
            self.set(prefix, &[(peer, next_hop)]);
            *self.peers.entry(peer).or_default() += 1;
            return true;
        };
        let mut v = o.to_vec();
        match v.binary_search_by_key(&peer, |e| e.0) {
            Ok(i) if v[i].1 == next_hop => return false,
            Ok(i) => v[i].1 = next_hop,
            Err(i) => {
                v.insert(i, (peer, next_hop));
                *self.peers.entry(peer).or_default() += 1;
            }
        }
        self.set(prefix, &v);
        true
    }

    /// Records that `peer` withdrew `prefix`. Returns whether anything changed.
    pub fn withdraw(&mut self, peer: IpAddr, prefix: IpNet) -> bool {
        let prefix = prefix.trunc();
        let Some(o) = self.by_prefix.get(&prefix) else {
            return false;
        };
        let Ok(i) = o.binary_search_by_key(&peer, |e| e.0) else {
            return false;
        };
        let mut v = o.to_vec();
        v.remove(i);
        self.set(prefix, &v);
        if let Some(n) = self.peers.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.peers.remove(&peer);
            }
        }
        true
    }

    /// Applies one change from the learned-route feed. Returns whether anything changed.
    pub fn apply(&mut self, route: &LearnedRoute) -> bool {
        match route.next_hop {
            Some(nh) => self.learn(route.peer, route.prefix, nh),
            None => self.withdraw(route.peer, route.prefix),
        }
    }

    /// Forgets every route of `peer` (its session went down). Returns whether anything
    /// changed.
    pub fn peer_down(&mut self, peer: IpAddr) -> bool {
        if self.peers.remove(&peer).is_none() {
            return false;
        }
        let prefixes: Vec<IpNet> = self
            .by_prefix
            .iter()
            .filter(|(_, o)| o.iter().any(|e| e.0 == peer))
            .map(|(p, _)| p)
            .collect();
        for p in prefixes {
            if let Some(o) = self.by_prefix.get(&p) {
                let v: Vec<(IpAddr, IpAddr)> = o.iter().copied().filter(|e| e.0 != peer).collect();
                self.set(p, &v);
            }
        }
        true
    }

    /// The peers that offer anything.
    pub fn peers(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.peers.keys().copied()
    }

    /// Number of distinct prefixes offered.
    pub fn prefix_count(&self) -> usize {
        self.by_prefix.len()
    }

    /// Number of (peer, prefix) entries.
    pub fn len(&self) -> usize {
        self.peers.values().sum()
    }

    /// True when nothing is learned.
    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// The next hops offered for `prefix` (one per peer; may repeat).
    pub fn offered(&self, prefix: &IpNet) -> impl Iterator<Item = IpAddr> + '_ {
        self.by_prefix
            .get(prefix)
            .into_iter()
            .flat_map(|o| o.iter().map(|e| e.1))
    }

    /// Every prefix with the next hops offered for it, in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, impl Iterator<Item = IpAddr> + '_)> {
        self.by_prefix
            .iter()
            .map(|(p, o)| (p, o.iter().map(|e| e.1)))
    }

    /// Every prefix, in order.
    pub fn prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.by_prefix.keys()
    }
}

/// Builds the state from `(peer, prefix, next hop)` entries.
impl FromIterator<(IpAddr, IpNet, IpAddr)> for Learned {
    fn from_iter<I: IntoIterator<Item = (IpAddr, IpNet, IpAddr)>>(iter: I) -> Self {
        let mut l = Learned::default();
        for (peer, prefix, nh) in iter {
            l.learn(peer, prefix, nh);
        }
        l
    }
}

/// The gateways of one kernel route, sorted: inline for a single one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Gateways {
    /// One gateway (no allocation).
    One(IpAddr),
    /// ECMP.
    Many(Box<[IpAddr]>),
}

impl Gateways {
    /// From a set of next hops (`None` when empty).
    pub fn from_hops(h: &NextHops) -> Option<Gateways> {
        let mut it = h.iter().copied();
        match h.len() {
            0 => None,
            1 => it.next().map(Gateways::One),
            _ => Some(Gateways::Many(it.collect())),
        }
    }

    /// As a set of next hops.
    pub fn hops(&self) -> NextHops {
        match self {
            Gateways::One(a) => NextHops::from([*a]),
            Gateways::Many(v) => v.iter().copied().collect(),
        }
    }

    /// As a list.
    pub fn to_vec(&self) -> Vec<IpAddr> {
        match self {
            Gateways::One(a) => vec![*a],
            Gateways::Many(v) => v.to_vec(),
        }
    }
}

/// The routes of one prefix in the kernel: (metric, gateways), sorted by metric.
type KernelRoutes = Box<[(u32, Gateways)]>;

/// Our routes in the kernel as the reconciler last saw or left them. Per prefix one
/// shared copy of its routes (a large table has almost only one: our metric over the
/// one router), so 100,000 routes cost about 20 bytes each.
#[derive(Debug, Default)]
pub struct View {
    by_prefix: PrefixMap<Arc<KernelRoutes>>,
    shared: Interner<KernelRoutes>,
    /// Number of (prefix, metric) routes.
    routes: usize,
}

impl View {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// The routes of `prefix`, by metric.
    pub fn routes(&self, prefix: &IpNet) -> &[(u32, Gateways)] {
        self.by_prefix.get(prefix).map_or(&[], |r| &r[..])
    }

    /// The gateways of the route for `prefix` at `metric`.
    pub fn get(&self, prefix: &IpNet, metric: u32) -> Option<&Gateways> {
        let routes = self.routes(prefix);
        routes
            .binary_search_by_key(&metric, |r| r.0)
            .ok()
            .map(|i| &routes[i].1)
    }

    /// Sets the route for `prefix` at `metric`.
    pub fn insert(&mut self, prefix: IpNet, metric: u32, gateways: Gateways) {
        let mut routes = self.routes(&prefix).to_vec();
        match routes.binary_search_by_key(&metric, |r| r.0) {
            Ok(i) => routes[i].1 = gateways,
            Err(i) => routes.insert(i, (metric, gateways)),
        }
        self.set(prefix, routes);
    }

    /// Removes the route for `prefix` at `metric`.
    pub fn remove(&mut self, prefix: &IpNet, metric: u32) {
        let mut routes = self.routes(prefix).to_vec();
        if let Ok(i) = routes.binary_search_by_key(&metric, |r| r.0) {
            routes.remove(i);
            self.set(*prefix, routes);
        }
    }

    fn set(&mut self, prefix: IpNet, routes: Vec<(u32, Gateways)>) {
        let count = routes.len();
        let old = if routes.is_empty() {
            self.by_prefix.remove(&prefix)
        } else {
            let shared = self.shared.intern(routes.into_boxed_slice());
            self.by_prefix.insert(prefix, shared)
        };
        self.routes = self.routes + count - old.as_ref().map_or(0, |o| o.len());
        if old.is_some() {
            self.shared.released(1);
        }
    }

    /// Prefixes with a route, in order.
    pub fn prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.by_prefix.keys()
    }

    /// Every prefix with its routes, in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &[(u32, Gateways)])> + '_ {
        self.by_prefix.iter().map(|(p, r)| (p, &r[..]))
    }

    /// Number of (prefix, metric) routes.
    pub fn len(&self) -> usize {
        self.routes
    }

    /// True when there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }
}

#[cfg(test)]
mod view_tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn gw(s: &str) -> Gateways {
        Gateways::One(s.parse().unwrap())
    }

    #[test]
    fn routes_per_prefix_and_metric_with_a_count() {
        let mut v = View::new();
        v.insert(net("10.0.0.1/32"), 20, gw("192.0.2.1"));
        v.insert(net("10.0.0.1/32"), 10, gw("192.0.2.2"));
        v.insert(net("10.0.0.2/32"), 20, gw("192.0.2.1"));
        v.insert(net("fd00::/64"), 20, gw("fd00::1"));
        assert_eq!(v.len(), 4);
        assert_eq!(
            v.routes(&net("10.0.0.1/32")),
            [(10, gw("192.0.2.2")), (20, gw("192.0.2.1"))]
        );
        assert_eq!(v.get(&net("10.0.0.2/32"), 20), Some(&gw("192.0.2.1")));
        assert_eq!(v.get(&net("10.0.0.2/32"), 10), None);
        v.insert(net("10.0.0.2/32"), 20, gw("192.0.2.9"));
        assert_eq!(v.len(), 4, "a changed route is not a new one");
        v.remove(&net("10.0.0.1/32"), 10);
        v.remove(&net("10.0.0.1/32"), 99);
        assert_eq!(v.len(), 3);
        v.remove(&net("10.0.0.1/32"), 20);
        assert_eq!(
            v.prefixes().collect::<Vec<_>>(),
            [net("10.0.0.2/32"), net("fd00::/64")]
        );
        assert_eq!(v.len(), 2);
        assert!(v.routes(&net("10.0.0.1/32")).is_empty());
    }
}
