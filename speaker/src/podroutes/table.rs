//! The learned routes as the reconciler keeps them: per prefix, the next hop each peer
//! offers. Compact on purpose: a large table costs about 60 bytes a prefix here, with no
//! allocation for the common case of one peer per prefix; and the kernel routes as the
//! reconciler last left them ([`Gateways`], likewise without an allocation per route).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_bgp::session::LearnedRoute;
use ipnet::IpNet;

use super::desired::NextHops;

/// Who offers one prefix: (peer, next hop) pairs, sorted by peer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Offers {
    One((IpAddr, IpAddr)),
    Many(Vec<(IpAddr, IpAddr)>),
}

impl Offers {
    fn as_slice(&self) -> &[(IpAddr, IpAddr)] {
        match self {
            Offers::One(t) => std::slice::from_ref(t),
            Offers::Many(v) => v,
        }
    }

    fn from_vec(mut v: Vec<(IpAddr, IpAddr)>) -> Option<Offers> {
        match v.len() {
            0 => None,
            1 => v.pop().map(Offers::One),
            _ => Some(Offers::Many(v)),
        }
    }
}

/// The routes learned from every peer (the union of their Adj-RIB-In), one next hop per
/// peer and prefix, as BGP delivers them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    by_prefix: BTreeMap<IpNet, Offers>,
    /// Entries per peer (a peer with none is not listed).
    peers: BTreeMap<IpAddr, usize>,
}

impl Learned {
    /// Records that `peer` offers `prefix` via `next_hop` (replacing its previous route).
    /// Host bits of `prefix` are cleared. Returns whether anything changed.
    pub fn learn(&mut self, peer: IpAddr, prefix: IpNet, next_hop: IpAddr) -> bool {
        let prefix = prefix.trunc();
        // The common cases without an allocation: a new prefix, or the one peer's route.
        match self.by_prefix.get_mut(&prefix) {
            None => {
                self.by_prefix.insert(prefix, Offers::One((peer, next_hop)));
                *self.peers.entry(peer).or_default() += 1;
                return true;
            }
            Some(Offers::One((p, n))) if *p == peer => {
                let changed = *n != next_hop;
                *n = next_hop;
                return changed;
            }
            Some(_) => {}
        }
        let mut v = self
            .by_prefix
            .get(&prefix)
            .map(|o| o.as_slice().to_vec())
            .unwrap_or_default();
        match v.binary_search_by_key(&peer, |e| e.0) {
            Ok(i) if v[i].1 == next_hop => return false,
            Ok(i) => v[i].1 = next_hop,
            Err(i) => {
                v.insert(i, (peer, next_hop));
                *self.peers.entry(peer).or_default() += 1;
            }
        }
        if let Some(o) = Offers::from_vec(v) {
            self.by_prefix.insert(prefix, o);
        }
        true
    }

    /// Records that `peer` withdrew `prefix`. Returns whether anything changed.
    pub fn withdraw(&mut self, peer: IpAddr, prefix: IpNet) -> bool {
        let prefix = prefix.trunc();
        let Some(o) = self.by_prefix.get(&prefix) else {
            return false;
        };
        let mut v = o.as_slice().to_vec();
        let Ok(i) = v.binary_search_by_key(&peer, |e| e.0) else {
            return false;
        };
        v.remove(i);
        match Offers::from_vec(v) {
            Some(o) => self.by_prefix.insert(prefix, o),
            None => self.by_prefix.remove(&prefix),
        };
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
            .filter(|(_, o)| o.as_slice().iter().any(|e| e.0 == peer))
            .map(|(p, _)| *p)
            .collect();
        for p in prefixes {
            if let Some(o) = self.by_prefix.get(&p) {
                let v: Vec<(IpAddr, IpAddr)> = o
                    .as_slice()
                    .iter()
                    .copied()
                    .filter(|e| e.0 != peer)
                    .collect();
                match Offers::from_vec(v) {
                    Some(o) => self.by_prefix.insert(p, o),
                    None => self.by_prefix.remove(&p),
                };
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
            .flat_map(|o| o.as_slice().iter().map(|e| e.1))
    }

    /// Every prefix with the next hops offered for it, in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (&IpNet, impl Iterator<Item = IpAddr> + '_)> {
        self.by_prefix
            .iter()
            .map(|(p, o)| (p, o.as_slice().iter().map(|e| e.1)))
    }

    /// Every prefix, in order.
    pub fn prefixes(&self) -> impl Iterator<Item = &IpNet> {
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
