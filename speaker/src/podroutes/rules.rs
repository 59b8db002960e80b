//! The install rules that hold in every mode: which prefixes and next hops a router may
//! never put into this node's kernel, whatever it sends (pure; table-tested below).
//!
//! Never installed, as prefixes: martians (and anything covering one), a prefix covering
//! or inside a connected subnet of the node, a prefix covering the address of any BGP
//! peer (a hijacked route to a peer would cut that peer's session: its TCP would follow
//! the route), a prefix covering one of the node's own addresses. Never used as next
//! hops: unspecified, loopback, multicast, broadcast (limited or a connected subnet's),
//! 240/4, IPv6 link-local (it needs an interface we do not track), the node's own
//! addresses, or an address of the other family.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Address space that is never a pod route (RFC 6890 and friends).
pub const MARTIANS: [&str; 10] = [
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "fe80::/10",
    "ff00::/8",
];

/// The martian ranges, parsed.
pub fn martians() -> Vec<IpNet> {
    MARTIANS
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect::<Vec<IpNet>>()
}

/// A set of prefixes answering "does any entry overlap this prefix?" in logarithmic
/// time (a large leaked table meets every rule for every prefix on every pass).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixSet {
    set: BTreeSet<IpNet>,
    /// The prefix lengths present, per family (IPv4, IPv6), longest first: a covering
    /// entry can only have one of these.
    lens: [Vec<u8>; 2],
}

impl PrefixSet {
    /// Adds a prefix (host bits cleared).
    pub fn insert(&mut self, p: IpNet) {
        let lens = &mut self.lens[usize::from(p.addr().is_ipv6())];
        if !lens.contains(&p.prefix_len()) {
            lens.push(p.prefix_len());
            lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        self.set.insert(p.trunc());
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// An entry equal to `p` or containing it.
    pub fn covering(&self, p: &IpNet) -> Option<IpNet> {
        self.lens[usize::from(p.addr().is_ipv6())]
            .iter()
            .filter(|len| **len <= p.prefix_len())
            .filter_map(|len| IpNet::new(p.addr(), *len).ok().map(|n| n.trunc()))
            .find(|n| self.set.contains(n))
    }

    /// An entry inside `p` (or equal to it).
    pub fn inside(&self, p: &IpNet) -> Option<IpNet> {
        let p = p.trunc();
        let (lo, hi) = match p {
            IpNet::V4(n) => (
                IpNet::V4(Ipv4Net::new(n.network(), 0).ok()?),
                IpNet::V4(Ipv4Net::new(n.broadcast(), 32).ok()?),
            ),
            IpNet::V6(n) => (
                IpNet::V6(Ipv6Net::new(n.network(), 0).ok()?),
                IpNet::V6(Ipv6Net::new(n.broadcast(), 128).ok()?),
            ),
        };
        self.set.range(lo..=hi).find(|n| p.contains(*n)).copied()
    }

    /// An entry overlapping `p` in either direction.
    pub fn overlapping(&self, p: &IpNet) -> Option<IpNet> {
        self.covering(p).or_else(|| self.inside(p))
    }
}

impl FromIterator<IpNet> for PrefixSet {
    fn from_iter<I: IntoIterator<Item = IpNet>>(iter: I) -> Self {
        let mut s = PrefixSet::default();
        for p in iter {
            s.insert(p);
        }
        s
    }
}

/// Why a prefix may never be installed, whatever the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unsafe {
    /// A martian, or a prefix covering one.
    Martian(IpNet),
    /// Covers or lies inside a subnet connected to the node.
    ConnectedSubnet(IpNet),
    /// Covers the address of a BGP peer.
    PeerAddress(IpAddr),
    /// Covers one of the node's own addresses.
    OwnAddress(IpAddr),
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsafe::Martian(m) => write!(f, "martian (overlaps {m})"),
            Unsafe::ConnectedSubnet(n) => write!(f, "overlaps connected subnet {n}"),
            Unsafe::PeerAddress(a) => write!(f, "covers BGP peer address {a}"),
            Unsafe::OwnAddress(a) => write!(f, "covers this node's address {a}"),
        }
    }
}

/// What the node looks like, for the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// Martian ranges ([`martians`]).
    pub martians: PrefixSet,
    /// Subnets connected to the node (its addresses with their prefix length).
    pub connected: PrefixSet,
    /// The node's own addresses.
    pub local_addresses: BTreeSet<IpAddr>,
    /// Addresses of every BGP peer (configured, or seen in learned routes).
    pub peers: BTreeSet<IpAddr>,
}

impl NodeFacts {
    /// Facts with the martian ranges filled in.
    pub fn new() -> Self {
        NodeFacts {
            martians: martians().into_iter().collect(),
            ..Default::default()
        }
    }

    /// Why `prefix` must never be installed, if it must not.
    pub fn unsafe_prefix(&self, prefix: &IpNet) -> Option<Unsafe> {
        if let Some(m) = self.martians.overlapping(prefix) {
            return Some(Unsafe::Martian(m));
        }
        if let Some(n) = self.connected.overlapping(prefix) {
            return Some(Unsafe::ConnectedSubnet(n));
        }
        if let Some(a) = in_prefix(&self.peers, prefix) {
            return Some(Unsafe::PeerAddress(a));
        }
        in_prefix(&self.local_addresses, prefix).map(Unsafe::OwnAddress)
    }

    /// Whether `nh` may be the gateway of a kernel route for `prefix`.
    pub fn usable_next_hop(&self, prefix: &IpNet, nh: &IpAddr) -> bool {
        let ok = match (prefix, nh) {
            (IpNet::V4(_), IpAddr::V4(a)) => usable_v4(*a),
            (IpNet::V6(_), IpAddr::V6(a)) => usable_v6(a),
            _ => false,
        };
        ok && !self.local_addresses.contains(nh) && !self.subnet_broadcast(nh)
    }

    /// The broadcast address of a connected IPv4 subnet (/30 and shorter).
    fn subnet_broadcast(&self, nh: &IpAddr) -> bool {
        let IpAddr::V4(a) = nh else { return false };
        self.connected
            .covering(&IpNet::V4(Ipv4Net::from(*a)))
            .is_some_and(|n| match n {
                IpNet::V4(n) => n.prefix_len() <= 30 && n.broadcast() == *a,
                IpNet::V6(_) => false,
            })
    }
}

fn usable_v4(a: Ipv4Addr) -> bool {
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || a.is_broadcast()
        || a.octets()[0] >= 240)
}

/// IPv4-mapped (`::ffff:a.b.c.d`) is what gobgpd 3.10 sends as the next hop of IPv6
/// routes over an IPv4 session; the kernel refuses it as a gateway.
fn usable_v6(a: &Ipv6Addr) -> bool {
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || a.is_unicast_link_local()
        || a.to_ipv4_mapped().is_some())
}

/// The first address of `set` inside `prefix` (sorted set: a range query).
fn in_prefix(set: &BTreeSet<IpAddr>, prefix: &IpNet) -> Option<IpAddr> {
    let p = prefix.trunc();
    set.range(p.network()..=p.broadcast()).next().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn facts() -> NodeFacts {
        let mut f = NodeFacts::new();
        for n in ["172.17.0.0/24", "10.7.7.7/32", "fd00:17::/64"] {
            f.connected.insert(net(n));
        }
        f.local_addresses = ["172.17.0.21", "10.7.7.7", "fd00:17::21", "192.0.2.99"]
            .iter()
            .map(|s| ip(s))
            .collect();
        f.peers = ["172.17.0.1", "203.0.113.1", "2001:db8:1::1"]
            .iter()
            .map(|s| ip(s))
            .collect();
        f
    }

    #[test]
    fn unsafe_prefixes_ipv4_and_ipv6() {
        let f = facts();
        let cases: Vec<(&str, Option<Unsafe>)> = vec![
            ("10.244.2.0/24", None),
            ("fd00:10:244:2::/64", None),
            ("127.0.0.0/8", Some(Unsafe::Martian(net("127.0.0.0/8")))),
            ("127.0.0.1/32", Some(Unsafe::Martian(net("127.0.0.0/8")))),
            ("224.0.0.0/4", Some(Unsafe::Martian(net("224.0.0.0/4")))),
            ("239.1.1.1/32", Some(Unsafe::Martian(net("224.0.0.0/4")))),
            ("240.0.0.0/4", Some(Unsafe::Martian(net("240.0.0.0/4")))),
            (
                "255.255.255.255/32",
                Some(Unsafe::Martian(net("255.255.255.255/32"))),
            ),
            ("0.0.0.0/8", Some(Unsafe::Martian(net("0.0.0.0/8")))),
            (
                "169.254.1.0/24",
                Some(Unsafe::Martian(net("169.254.0.0/16"))),
            ),
            // Covering a martian is refused as well.
            ("128.0.0.0/1", Some(Unsafe::Martian(net("169.254.0.0/16")))),
            ("::1/128", Some(Unsafe::Martian(net("::1/128")))),
            ("::/128", Some(Unsafe::Martian(net("::/128")))),
            ("fe80::/64", Some(Unsafe::Martian(net("fe80::/10")))),
            ("ff02::1/128", Some(Unsafe::Martian(net("ff00::/8")))),
            // Connected subnets: equal, inside, covering.
            (
                "172.17.0.0/24",
                Some(Unsafe::ConnectedSubnet(net("172.17.0.0/24"))),
            ),
            (
                "172.17.0.128/25",
                Some(Unsafe::ConnectedSubnet(net("172.17.0.0/24"))),
            ),
            (
                "172.16.0.0/12",
                Some(Unsafe::ConnectedSubnet(net("172.17.0.0/24"))),
            ),
            (
                "fd00:17::5/128",
                Some(Unsafe::ConnectedSubnet(net("fd00:17::/64"))),
            ),
            // The node's own /32 on a loopback is a connected /32.
            (
                "10.7.7.7/32",
                Some(Unsafe::ConnectedSubnet(net("10.7.7.7/32"))),
            ),
            // Another peer's address (not on a connected subnet: multihop).
            (
                "203.0.113.1/32",
                Some(Unsafe::PeerAddress(ip("203.0.113.1"))),
            ),
            (
                "203.0.113.0/24",
                Some(Unsafe::PeerAddress(ip("203.0.113.1"))),
            ),
            (
                "2001:db8:1::/48",
                Some(Unsafe::PeerAddress(ip("2001:db8:1::1"))),
            ),
            // An own address that is on no connected subnet.
            ("192.0.2.99/32", Some(Unsafe::OwnAddress(ip("192.0.2.99")))),
            ("192.0.2.98/32", None),
        ];
        for (p, want) in cases {
            assert_eq!(f.unsafe_prefix(&net(p)), want, "{p}");
        }
    }

    #[test]
    fn usable_next_hops_ipv4_and_ipv6() {
        let f = facts();
        let v4 = net("10.244.2.0/24");
        let v6 = net("fd00:10:244:2::/64");
        let cases: Vec<(&IpNet, &str, bool)> = vec![
            (&v4, "172.17.0.22", true),
            (&v4, "10.77.0.1", true), // off-link: the kernel decides (and is retried)
            (&v4, "0.0.0.0", false),
            (&v4, "127.0.0.1", false),
            (&v4, "224.0.0.5", false),
            (&v4, "255.255.255.255", false),
            (&v4, "240.0.0.1", false),
            (&v4, "172.17.0.255", false), // the connected subnet's broadcast
            (&v4, "172.17.0.21", false),  // our own address
            (&v4, "fd00:17::22", false),  // other family
            (&v6, "fd00:17::22", true),
            (&v6, "::", false),
            (&v6, "::1", false),
            (&v6, "ff02::2", false),
            (&v6, "fe80::1", false),
            (&v6, "fd00:17::21", false),
            (&v6, "::ffff:172.17.0.1", false), // IPv4-mapped (gobgpd over an IPv4 session)
            (&v6, "172.17.0.22", false),
        ];
        for (p, nh, want) in cases {
            assert_eq!(f.usable_next_hop(p, &ip(nh)), want, "{p} via {nh}");
        }
    }

    #[test]
    fn prefix_set_queries() {
        let s: PrefixSet = ["10.244.0.0/16", "10.1.2.0/24", "fd00::/8"]
            .iter()
            .map(|p| net(p))
            .collect();
        assert_eq!(
            s.covering(&net("10.244.3.0/24")),
            Some(net("10.244.0.0/16"))
        );
        assert_eq!(s.covering(&net("10.245.3.0/24")), None);
        assert_eq!(s.inside(&net("10.0.0.0/8")), Some(net("10.1.2.0/24")));
        assert_eq!(s.inside(&net("10.1.3.0/24")), None);
        assert_eq!(s.overlapping(&net("fd00:1::/64")), Some(net("fd00::/8")));
        assert_eq!(s.overlapping(&net("2001:db8::/32")), None);
    }
}
