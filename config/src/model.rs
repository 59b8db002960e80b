//! The typed, validated configuration the controller and the speaker use.
//!
//! Every value here has passed validation and has its default filled in; nothing is left as
//! text to be interpreted later.
//!
//! Two sources produce it: MetalLB 0.12's ConfigMap (`parse_config`) and MetalLB's
//! `metallb.io` custom resources (`ferrolb-crds`). Fields marked "CRs only" exist because the
//! CRDs can say more; from a ConfigMap they keep their neutral value (`None`, empty, false),
//! so a ConfigMap and the CRs converted from it give equal models apart from peer names.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::IpNet;

use crate::selector::NodeSelector;

/// A whole configuration: what MetalLB 0.12 reads from ConfigMap `config`, key `config`, or
/// what the `metallb.io` custom resources of the namespace say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// BGP routers to peer with, in config order.
    pub peers: Vec<Peer>,
    /// Address pools, in config order (ferrolb walks pools in this order).
    pub pools: Vec<Pool>,
    /// `bgp-communities` aliases, resolved.
    pub communities: BTreeMap<String, Community>,
    /// `bfd-profiles`, in config order.
    pub bfd_profiles: Vec<BfdProfile>,
}

impl Config {
    /// The pool whose addresses include `ip`. Pools never overlap, so there is at most one.
    pub fn pool_for_ip(&self, ip: IpAddr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.contains(ip))
    }

    /// The pool with this name.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The BFD profile with this name.
    pub fn bfd_profile(&self, name: &str) -> Option<&BfdProfile> {
        self.bfd_profiles.iter().find(|p| p.name == name)
    }
}

/// One BGP peer (`peers[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub address: IpAddr,
    pub peer_asn: u32,
    pub my_asn: u32,
    /// Default 179.
    pub port: u16,
    /// Default 90 s; 0 (no keepalives, no hold timer) or at least 3 s, whole seconds.
    pub hold_time: Duration,
    /// Default hold time / 3 (whole seconds, rounded down); never more than the hold time.
    pub keepalive_time: Duration,
    /// Unset: the node's IPv4 address used for the session.
    pub router_id: Option<Ipv4Addr>,
    pub source_address: Option<IpAddr>,
    /// Empty: every node. Otherwise a node is selected when any selector matches.
    pub node_selectors: Vec<NodeSelector>,
    /// TCP MD5 (RFC 2385) key.
    pub password: Option<String>,
    /// Name of an entry of [`Config::bfd_profiles`].
    pub bfd_profile: Option<String>,
    pub ebgp_multihop: bool,
    /// CRs only: the BGPPeer's name, which advertisements' `peers` refer to.
    pub name: Option<String>,
    /// CRs only: `passwordSecret`, the Secret (type `kubernetes.io/basic-auth`, key
    /// `password`) holding the TCP MD5 password. The edge that reads Secrets fills
    /// [`Peer::password`] from it; the conversion leaves `password` unset.
    pub password_secret: Option<SecretRef>,
    /// Offer BGP graceful restart (RFC 4724): the CR's `enableGracefulRestart`, the
    /// ConfigMap's `ferrolb-graceful-restart` (ferrolb's own key). Off by default: a
    /// GR-aware router keeps a crashed speaker's routes for the restart time.
    pub graceful_restart: bool,
    /// The restart time offered with graceful restart (`ferrolb-graceful-restart-time`,
    /// default [`crate::rules::DEFAULT_RESTART_TIME`], 1 s to 4095 s): how long routers keep
    /// this node's routes while its speaker restarts.
    pub graceful_restart_time: Duration,
}

/// A reference to a Secret (`passwordSecret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub name: String,
    /// Unset: the namespace of the configuration (`metallb-system`).
    pub namespace: Option<String>,
}

impl Peer {
    /// iBGP when both ends use the same AS number.
    pub fn is_ibgp(&self) -> bool {
        self.peer_asn == self.my_asn
    }

    /// Whether a node with these labels should have a session with this peer.
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        crate::selector::any_matches(&self.node_selectors, labels)
    }
}

/// How a pool's addresses are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Bgp,
    Layer2,
}

impl Protocol {
    /// The spelling used in the config.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Bgp => "bgp",
            Protocol::Layer2 => "layer2",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `addresses[]` entry: an inclusive range of one address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange {
    pub start: IpAddr,
    pub end: IpAddr,
    /// The prefix when the entry was written as a CIDR (`198.51.100.0/24`), `None` for a
    /// range (`192.168.0.150-192.168.0.200`).
    pub cidr: Option<IpNet>,
}

impl AddressRange {
    /// Whether the entry was written as a CIDR.
    pub fn is_cidr(&self) -> bool {
        self.cidr.is_some()
    }

    pub fn is_ipv4(&self) -> bool {
        self.start.is_ipv4()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.start, self.end, ip) {
            (IpAddr::V4(s), IpAddr::V4(e), IpAddr::V4(i)) => s <= i && i <= e,
            (IpAddr::V6(s), IpAddr::V6(e), IpAddr::V6(i)) => s <= i && i <= e,
            _ => false,
        }
    }

    /// Number of addresses in the range (saturates at `u128::MAX` for a whole IPv6 space).
    pub fn size(&self) -> u128 {
        let (s, e) = crate::address::bounds(self);
        (e - s).saturating_add(1)
    }

    /// Whether two ranges share at least one address.
    pub fn overlaps(&self, other: &AddressRange) -> bool {
        if self.is_ipv4() != other.is_ipv4() {
            return false;
        }
        let (a0, a1) = crate::address::bounds(self);
        let (b0, b1) = crate::address::bounds(other);
        a0 <= b1 && b0 <= a1
    }
}

impl std::fmt::Display for AddressRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cidr {
            Some(net) => write!(f, "{net}"),
            None => write!(f, "{}-{}", self.start, self.end),
        }
    }
}

/// One address pool (`address-pools[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub protocol: Protocol,
    /// Never empty; no two ranges of any pools overlap.
    pub addresses: Vec<AddressRange>,
    /// Default true; false = only handed out on explicit request.
    pub auto_assign: bool,
    /// Default false; true = never hand out IPv4 addresses ending in .0 or .255.
    pub avoid_buggy_ips: bool,
    /// From a ConfigMap: for a `bgp` pool never empty (default: one advertisement with
    /// default fields); empty for a `layer2` pool. From CRs: every BGPAdvertisement that
    /// selects the pool; empty when none does, and then its addresses are assigned but not
    /// announced (as in MetalLB).
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    /// CRs only: `serviceAllocation`, which Services may get addresses from this pool.
    pub service_allocation: Option<ServiceAllocation>,
}

/// `serviceAllocation` of an IPAddressPool: the pool serves only matching Services, and the
/// lowest priority wins among the pools that do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceAllocation {
    /// Lower is preferred; `None` after every pool that has one.
    pub priority: Option<i32>,
    /// Namespaces by name.
    pub namespaces: Vec<String>,
    /// Namespaces by label (any selector matching is enough).
    pub namespace_selectors: Vec<NodeSelector>,
    /// Services by label (any selector matching is enough).
    pub service_selectors: Vec<NodeSelector>,
}

impl Pool {
    /// Whether `ip` lies in one of the pool's ranges (regardless of `avoid_buggy_ips`).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|r| r.contains(ip))
    }

    /// Whether `ip` may be handed out from this pool: inside it, and not a .0/.255 IPv4
    /// address when `avoid-buggy-ips` is set (MetalLB's rule looks at the last byte only).
    pub fn is_usable(&self, ip: IpAddr) -> bool {
        self.contains(ip) && !(self.avoid_buggy_ips && is_buggy_ip(ip))
    }

    /// Total number of addresses (before `avoid-buggy-ips`).
    pub fn size(&self) -> u128 {
        self.addresses
            .iter()
            .fold(0u128, |acc, r| acc.saturating_add(r.size()))
    }
}

/// An IPv4 address ending in .0 or .255, which some old consumer devices drop.
pub fn is_buggy_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// One way of announcing an address from a BGP pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// Default 32: announce `ip/aggregation_length` for an IPv4 address.
    pub aggregation_length: u8,
    /// Default 128.
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF, sent to iBGP peers only.
    pub local_pref: Option<u32>,
    /// Resolved communities, in config order, no duplicates.
    pub communities: Vec<Community>,
    /// CRs only: announce only to the BGPPeers of these names; empty = to every peer.
    pub peers: Vec<String>,
    /// CRs only: announce only from nodes matching one of these; empty = from every node.
    pub node_selectors: Vec<NodeSelector>,
    /// ferrolb's own `ferrolb-weight-by-endpoints` (ConfigMap) or annotation
    /// `ferrolb.io/weight-by-endpoints` (BGPAdvertisement CR): attach the link bandwidth
    /// extended community to `externalTrafficPolicy: Local` Service routes, proportional to
    /// this node's ready endpoints, so routers that weigh ECMP by it (FRR's `bgp bestpath
    /// bandwidth`) send each node its share. Off by default (MetalLB sends no such thing).
    pub weight_by_endpoints: bool,
}

impl Default for BgpAdvertisement {
    fn default() -> Self {
        BgpAdvertisement {
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: None,
            communities: Vec::new(),
            peers: Vec::new(),
            node_selectors: Vec::new(),
            weight_by_endpoints: false,
        }
    }
}

impl BgpAdvertisement {
    /// Whether this advertisement announces to `peer` (by its BGPPeer name).
    pub fn selects_peer(&self, peer: &Peer) -> bool {
        self.peers.is_empty()
            || peer
                .name
                .as_ref()
                .is_some_and(|n| self.peers.iter().any(|p| p == n))
    }

    /// Whether a node with these labels announces this advertisement.
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        crate::selector::any_matches(&self.node_selectors, labels)
    }
}

/// A BGP community value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Community {
    /// RFC 1997: `high:low` packed as `high << 16 | low`.
    Standard(u32),
    /// RFC 8092: global administrator, local data 1, local data 2.
    Large(u32, u32, u32),
}

impl std::fmt::Display for Community {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Community::Standard(v) => write!(f, "{}:{}", v >> 16, v & 0xffff),
            Community::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

/// A BFD profile (`bfd-profiles[]`). MetalLB honours these only in FRR mode; ferrolb's
/// speaker runs a BFD session with it for every peer that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdProfile {
    pub name: String,
    /// 10..=60000 ms, default 300 ms.
    pub receive_interval: Duration,
    /// 10..=60000 ms, default 300 ms.
    pub transmit_interval: Duration,
    /// 2..=255, default 3.
    pub detect_multiplier: u8,
    /// 10..=60000 ms, default 50 ms.
    pub echo_interval: Duration,
    pub echo_mode: bool,
    pub passive_mode: bool,
    /// 1..=254, default 254 (FRR's default when MetalLB leaves it unset).
    pub minimum_ttl: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn range_contains_and_overlap() {
        let a = AddressRange {
            start: v4("10.0.0.0"),
            end: v4("10.0.0.255"),
            cidr: Some("10.0.0.0/24".parse().expect("cidr")),
        };
        let b = AddressRange {
            start: v4("10.0.0.255"),
            end: v4("10.0.1.10"),
            cidr: None,
        };
        let c = AddressRange {
            start: v4("10.0.1.11"),
            end: v4("10.0.1.11"),
            cidr: None,
        };
        assert!(a.contains(v4("10.0.0.17")));
        assert!(!a.contains(v4("10.0.1.0")));
        assert!(!a.contains("::1".parse().expect("v6")));
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
        assert!(!b.overlaps(&c));
        assert_eq!(a.size(), 256);
        assert_eq!(b.size(), 12);
        assert_eq!(a.to_string(), "10.0.0.0/24");
        assert_eq!(b.to_string(), "10.0.0.255-10.0.1.10");
    }

    #[test]
    fn buggy_ips() {
        assert!(is_buggy_ip(v4("10.0.0.0")));
        assert!(is_buggy_ip(v4("10.0.3.255")));
        assert!(!is_buggy_ip(v4("10.0.3.254")));
        assert!(!is_buggy_ip("2001:db8::ff".parse().expect("v6")));
    }

    #[test]
    fn community_display() {
        assert_eq!(
            Community::Standard((65535 << 16) | 65281).to_string(),
            "65535:65281"
        );
        assert_eq!(Community::Large(1, 2, 3).to_string(), "large:1:2:3");
    }
}
