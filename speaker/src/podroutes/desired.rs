//! The pure half of pod CIDR routing: which routes the kernel *should* hold, and the
//! operations that take it there from what it holds now.
//!
//! Nothing here touches the kernel, so every rule is covered by table-driven tests.
//!
//! # What gets installed
//!
//! Every prefix learned from any peer is a candidate. A candidate is dropped (and the
//! reason recorded for the status page) when:
//!
//! 1. it is a **default route** (`/0`) — the node's default route belongs to the host's
//!    network configuration; taking it over from BGP could cut the node off;
//! 2. an **allow-list** is configured and no entry of it contains the prefix; without
//!    one, when the Nodes' `spec.podCIDRs` are known ([`Exclusions::pod_cidrs`], as the
//!    daemon always gives them), a prefix that is not inside some Node's pod CIDR (so a
//!    router that leaks a full table fills nothing);
//! 3. it **overlaps an exclusion** in either direction: equal to, containing, or inside
//!    one of our own pod CIDRs or LoadBalancer IPs/prefixes. Equal and inside are the
//!    obvious cases (a route for our own pods or Service IPs pointing at another node is a
//!    loop or a hijack). *Containing* is conservative: an aggregate like `10.244.0.0/16`
//!    learned back from the router would be harmless for our own more-specific CIDR, but
//!    it would also capture any LoadBalancer IP inside it that this node does not route
//!    locally, so we do not install it at all;
//! 4. it is **unsafe** in any mode ([`super::rules`]): a martian, overlapping a connected
//!    subnet, covering a BGP peer's or the node's own address (checked right after the
//!    default route, so that the most telling reason is the one reported);
//! 5. no **usable next hop** remains after dropping next hops that are one of this node's
//!    own addresses (our own announcement reflected back), unspecified, loopback,
//!    multicast, broadcast, 240/4, link-local, or of the other address family (IPv4
//!    prefixes over IPv6 next hops, RFC 8950, are not supported), or IPv4-mapped IPv6
//!    (`::ffff:a.b.c.d`: what gobgpd 3.10 sends as the next hop of IPv6 routes over an
//!    IPv4 session; the kernel refuses it as a gateway, so installing it would only fail
//!    and retry forever).
//!
//! When several peers offer the same prefix, the kernel route gets all their (distinct)
//! next hops: ECMP.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::rules::{NodeFacts, PrefixSet, Unsafe};

// Next hops of one kernel route, sorted and deduplicated.
pub use super::hops::NextHops;

/// A routing table: prefix to its next hops.
pub type RouteTable = BTreeMap<IpNet, NextHops>;

pub use super::table::Learned;

/// Which learned prefixes may be installed at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallPolicy {
    /// When set, only prefixes inside one of these are installed. `None`: everything
    /// learned (minus the exclusions) is installed.
    pub allow: Option<Vec<IpNet>>,
}

/// What must never be installed and which next hops are our own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    /// Prefixes we announce ourselves (our pod CIDRs) and LoadBalancer IPs/prefixes. A
    /// learned prefix overlapping one of them in either direction is not installed.
    pub prefixes: BTreeSet<IpNet>,
    /// This node's own addresses: never used as a next hop, never covered by a route.
    pub local_addresses: BTreeSet<IpAddr>,
    /// Subnets connected to this node: never overlapped by a route.
    pub connected: BTreeSet<IpNet>,
    /// Addresses of the configured BGP peers (peers seen in the learned routes count
    /// too): never covered by a route.
    pub peers: BTreeSet<IpAddr>,
    /// Every Node's `spec.podCIDRs`. Without an allow-list, only prefixes inside one of
    /// these are installed; `None` (not known): no such restriction.
    pub pod_cidrs: Option<BTreeSet<IpNet>>,
}

/// Why a learned prefix is not installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A default route (`/0`).
    DefaultRoute,
    /// Outside the configured allow-list.
    NotAllowed,
    /// Overlaps this excluded prefix (our pod CIDR or a LoadBalancer IP).
    Excluded(IpNet),
    /// Every offered next hop was ours, unusable, or of the other family.
    NoUsableNextHop,
    /// No allow-list, and not inside any Node's `spec.podCIDRs`.
    NotAPodCidr,
    /// Never installed in any mode (martian, connected subnet, a peer's or our address).
    Unsafe(Unsafe),
}

impl SkipReason {
    /// The reason as a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            SkipReason::DefaultRoute => "default_route",
            SkipReason::NotAllowed => "not_allowed",
            SkipReason::Excluded(_) => "excluded",
            SkipReason::NoUsableNextHop => "no_usable_next_hop",
            SkipReason::NotAPodCidr => "not_a_pod_cidr",
            SkipReason::Unsafe(Unsafe::Martian(_)) => "martian",
            SkipReason::Unsafe(Unsafe::ConnectedSubnet(_)) => "connected_subnet",
            SkipReason::Unsafe(Unsafe::PeerAddress(_)) => "peer_address",
            SkipReason::Unsafe(Unsafe::OwnAddress(_)) => "own_address",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::DefaultRoute => f.write_str("default route is never installed"),
            SkipReason::NotAllowed => f.write_str("outside the allow-list"),
            SkipReason::Excluded(p) => write!(f, "overlaps excluded prefix {p}"),
            SkipReason::NoUsableNextHop => f.write_str("no usable next hop"),
            SkipReason::NotAPodCidr => f.write_str("not inside any Node's spec.podCIDRs"),
            SkipReason::Unsafe(u) => u.fmt(f),
        }
    }
}

/// The desired kernel table and the learned prefixes left out of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Routes to install.
    pub routes: RouteTable,
    /// Learned prefixes not installed, with the reason.
    pub skipped: BTreeMap<IpNet, SkipReason>,
}

/// The rules of the module doc, prepared once for many prefixes.
#[derive(Debug)]
pub struct Rules {
    facts: NodeFacts,
    excluded: PrefixSet,
    allow: Option<PrefixSet>,
    pod_cidrs: Option<PrefixSet>,
}

impl Rules {
    /// Rules for these exclusions and policy; the peers of `learned` count as BGP peers.
    pub fn new(learned: &Learned, exclusions: &Exclusions, policy: &InstallPolicy) -> Rules {
        let mut facts = NodeFacts::new();
        facts.connected = exclusions.connected.iter().copied().collect();
        facts.local_addresses = exclusions.local_addresses.clone();
        facts.peers = exclusions
            .peers
            .iter()
            .copied()
            .chain(learned.peers())
            .collect();
        Rules {
            facts,
            excluded: exclusions.prefixes.iter().copied().collect(),
            allow: policy.allow.as_ref().map(|a| a.iter().copied().collect()),
            pod_cidrs: exclusions
                .pod_cidrs
                .as_ref()
                .map(|p| p.iter().copied().collect()),
        }
    }

    /// The next hops to install for `prefix` offered via `offered`, or why not.
    pub fn evaluate(
        &self,
        prefix: &IpNet,
        offered: impl IntoIterator<Item = IpAddr>,
    ) -> Result<NextHops, SkipReason> {
        if prefix.prefix_len() == 0 {
            return Err(SkipReason::DefaultRoute);
        }
        if let Some(u) = self.facts.unsafe_prefix(prefix) {
            return Err(SkipReason::Unsafe(u));
        }
        if let Some(allow) = &self.allow {
            if allow.covering(prefix).is_none() {
                return Err(SkipReason::NotAllowed);
            }
        } else if let Some(pods) = &self.pod_cidrs
            && pods.covering(prefix).is_none()
        {
            return Err(SkipReason::NotAPodCidr);
        }
        if let Some(ex) = self.excluded.overlapping(prefix) {
            return Err(SkipReason::Excluded(ex));
        }
        let hops: NextHops = offered
            .into_iter()
            .filter(|nh| self.facts.usable_next_hop(prefix, nh))
            .collect();
        if hops.is_empty() {
            Err(SkipReason::NoUsableNextHop)
        } else {
            Ok(hops)
        }
    }
}

/// Computes the desired kernel table from the learned routes (rules in the module doc).
pub fn desired(learned: &Learned, exclusions: &Exclusions, policy: &InstallPolicy) -> Desired {
    let rules = Rules::new(learned, exclusions, policy);
    let mut out = Desired::default();
    for (prefix, offered) in learned.iter() {
        match rules.evaluate(&prefix, offered) {
            Ok(hops) => {
                out.routes.insert(prefix, hops);
            }
            Err(reason) => {
                out.skipped.insert(prefix, reason);
            }
        }
    }
    out
}

/// A route with our protocol number found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledRoute {
    /// Destination.
    pub prefix: IpNet,
    /// Metric (priority).
    pub metric: u32,
    /// Gateways (one for a plain route, several for ECMP).
    pub next_hops: NextHops,
}

/// One change to the kernel table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or replace our route for `prefix` (at our metric) with these next hops.
    Replace {
        /// Destination.
        prefix: IpNet,
        /// Next hops (several: ECMP).
        next_hops: NextHops,
    },
    /// Delete our route for `prefix` at `metric`.
    Delete {
        /// Destination.
        prefix: IpNet,
        /// Its metric (so that exactly that route is deleted).
        metric: u32,
    },
}

impl Op {
    /// The prefix the operation changes.
    pub fn prefix(&self) -> IpNet {
        match self {
            Op::Replace { prefix, .. } | Op::Delete { prefix, .. } => *prefix,
        }
    }
}

/// The operations that turn `current` (our routes in the kernel) into `desired`, with our
/// routes at `metric`. Deletes come first. Empty when the kernel already matches.
///
/// A current route at another metric (e.g. left by a run configured differently) is
/// deleted and the desired one added, so exactly one route per prefix carries our
/// protocol number.
pub fn plan(desired: &RouteTable, current: &[InstalledRoute], metric: u32) -> Vec<Op> {
    let mut by_prefix: BTreeMap<IpNet, Vec<&InstalledRoute>> = BTreeMap::new();
    for r in current {
        by_prefix.entry(r.prefix).or_default().push(r);
    }
    let mut deletes = Vec::new();
    let mut replaces = Vec::new();
    for (prefix, want) in desired {
        if !by_prefix.contains_key(prefix) {
            replaces.push(Op::Replace {
                prefix: *prefix,
                next_hops: want.clone(),
            });
        }
    }
    for (prefix, group) in by_prefix {
        let want = desired.get(&prefix);
        let ours: Vec<&&InstalledRoute> = group.iter().filter(|r| r.metric == metric).collect();
        // Several of ours for one prefix (should not happen): start that prefix afresh.
        let duplicated = ours.len() > 1;
        let metrics: BTreeSet<u32> = group.iter().map(|r| r.metric).collect();
        for m in metrics {
            if want.is_none() || m != metric || duplicated {
                deletes.push(Op::Delete { prefix, metric: m });
            }
        }
        if let Some(want) = want {
            let in_place = !duplicated && ours.first().is_some_and(|r| &r.next_hops == want);
            if !in_place {
                replaces.push(Op::Replace {
                    prefix,
                    next_hops: want.clone(),
                });
            }
        }
    }
    replaces.sort_by_key(Op::prefix);
    deletes.into_iter().chain(replaces).collect()
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
    fn hops(list: &[&str]) -> NextHops {
        list.iter().map(|s| ip(s)).collect()
    }

    /// (peer, prefix, next hop) triples.
    fn learned(entries: &[(&str, &str, &str)]) -> Learned {
        let mut l = Learned::default();
        for (peer, prefix, nh) in entries {
            l.learn(ip(peer), net(prefix), ip(nh));
        }
        l
    }

    #[test]
    fn learned_state_changes_report_whether_anything_changed() {
        let mut l = Learned::default();
        assert!(l.learn(ip("192.0.2.1"), net("10.244.3.0/24"), ip("192.0.2.11")));
        assert!(!l.learn(ip("192.0.2.1"), net("10.244.3.0/24"), ip("192.0.2.11")));
        assert!(l.learn(ip("192.0.2.1"), net("10.244.3.0/24"), ip("192.0.2.12")));
        // Host bits are cleared, so this is the same prefix.
        assert!(!l.learn(ip("192.0.2.1"), net("10.244.3.7/24"), ip("192.0.2.12")));
        assert_eq!(l.len(), 1);
        assert!(!l.withdraw(ip("192.0.2.9"), net("10.244.3.0/24")));
        assert!(l.withdraw(ip("192.0.2.1"), net("10.244.3.0/24")));
        assert!(l.is_empty());
        l.learn(ip("192.0.2.1"), net("10.244.3.0/24"), ip("192.0.2.11"));
        assert!(l.peer_down(ip("192.0.2.1")));
        assert!(!l.peer_down(ip("192.0.2.1")));
        assert!(l.is_empty());
    }

    #[test]
    fn desired_table_rules() {
        struct Case {
            name: &'static str,
            learned: Vec<(&'static str, &'static str, &'static str)>,
            excluded: Vec<&'static str>,
            local: Vec<&'static str>,
            allow: Option<Vec<&'static str>>,
            want: Vec<(&'static str, Vec<&'static str>)>,
            want_skipped: Vec<(&'static str, SkipReason)>,
        }
        let cases = vec![
            Case {
                name: "nothing learned",
                learned: vec![],
                excluded: vec!["10.244.1.0/24"],
                local: vec![],
                allow: None,
                want: vec![],
                want_skipped: vec![],
            },
            Case {
                name: "one peer, one route",
                learned: vec![("192.0.2.1", "10.244.3.0/24", "192.0.2.13")],
                excluded: vec![],
                local: vec![],
                allow: None,
                want: vec![("10.244.3.0/24", vec!["192.0.2.13"])],
                want_skipped: vec![],
            },
            Case {
                name: "two peers offer the same prefix: ECMP",
                learned: vec![
                    ("192.0.2.1", "10.244.3.0/24", "192.0.2.13"),
                    ("192.0.2.2", "10.244.3.0/24", "192.0.2.23"),
                    ("192.0.2.2", "10.244.4.0/24", "192.0.2.24"),
                ],
                excluded: vec![],
                local: vec![],
                allow: None,
                want: vec![
                    ("10.244.3.0/24", vec!["192.0.2.13", "192.0.2.23"]),
                    ("10.244.4.0/24", vec!["192.0.2.24"]),
                ],
                want_skipped: vec![],
            },
            Case {
                name: "two peers with the same next hop: one path",
                learned: vec![
                    ("192.0.2.1", "10.244.3.0/24", "192.0.2.13"),
                    ("192.0.2.2", "10.244.3.0/24", "192.0.2.13"),
                ],
                excluded: vec![],
                local: vec![],
                allow: None,
                want: vec![("10.244.3.0/24", vec!["192.0.2.13"])],
                want_skipped: vec![],
            },
            Case {
                name: "own pod CIDR, a prefix inside it and one containing it are excluded",
                learned: vec![
                    ("192.0.2.1", "10.244.1.0/24", "192.0.2.13"),
                    ("192.0.2.1", "10.244.1.128/25", "192.0.2.13"),
                    ("192.0.2.1", "10.244.0.0/16", "192.0.2.13"),
                    ("192.0.2.1", "10.244.2.0/24", "192.0.2.13"),
                ],
                excluded: vec!["10.244.1.0/24"],
                local: vec![],
                allow: None,
                want: vec![("10.244.2.0/24", vec!["192.0.2.13"])],
                want_skipped: vec![
                    ("10.244.0.0/16", SkipReason::Excluded(net("10.244.1.0/24"))),
                    ("10.244.1.0/24", SkipReason::Excluded(net("10.244.1.0/24"))),
                    (
                        "10.244.1.128/25",
                        SkipReason::Excluded(net("10.244.1.0/24")),
                    ),
                ],
            },
            Case {
                name: "a LoadBalancer IP and an aggregate containing it are excluded",
                learned: vec![
                    ("192.0.2.1", "198.51.100.10/32", "192.0.2.13"),
                    ("192.0.2.1", "198.51.100.0/24", "192.0.2.13"),
                    ("192.0.2.1", "198.51.101.0/24", "192.0.2.13"),
                ],
                excluded: vec!["198.51.100.10/32"],
                local: vec![],
                allow: None,
                want: vec![("198.51.101.0/24", vec!["192.0.2.13"])],
                want_skipped: vec![
                    (
                        "198.51.100.0/24",
                        SkipReason::Excluded(net("198.51.100.10/32")),
                    ),
                    (
                        "198.51.100.10/32",
                        SkipReason::Excluded(net("198.51.100.10/32")),
                    ),
                ],
            },
            Case {
                name: "default routes are never installed",
                learned: vec![
                    ("192.0.2.1", "0.0.0.0/0", "192.0.2.13"),
                    ("2001:db8::1", "::/0", "2001:db8::13"),
                ],
                excluded: vec![],
                local: vec![],
                allow: None,
                want: vec![],
                want_skipped: vec![
                    ("0.0.0.0/0", SkipReason::DefaultRoute),
                    ("::/0", SkipReason::DefaultRoute),
                ],
            },
            Case {
                name: "our own address as next hop is dropped, others stay",
                learned: vec![
                    ("192.0.2.1", "10.244.3.0/24", "192.0.2.50"),
                    ("192.0.2.2", "10.244.3.0/24", "192.0.2.23"),
                    ("192.0.2.1", "10.244.5.0/24", "192.0.2.50"),
                ],
                excluded: vec![],
                local: vec!["192.0.2.50"],
                allow: None,
                want: vec![("10.244.3.0/24", vec!["192.0.2.23"])],
                want_skipped: vec![("10.244.5.0/24", SkipReason::NoUsableNextHop)],
            },
            Case {
                name: "unusable and cross-family next hops",
                learned: vec![
                    ("192.0.2.1", "10.244.6.0/24", "0.0.0.0"),
                    ("192.0.2.1", "10.244.7.0/24", "127.0.0.1"),
                    ("192.0.2.1", "10.244.8.0/24", "2001:db8::1"),
                    ("2001:db8::1", "fd00:244:3::/64", "2001:db8::13"),
                ],
                excluded: vec![],
                local: vec![],
                allow: None,
                want: vec![("fd00:244:3::/64", vec!["2001:db8::13"])],
                want_skipped: vec![
                    ("10.244.6.0/24", SkipReason::NoUsableNextHop),
                    ("10.244.7.0/24", SkipReason::NoUsableNextHop),
                    ("10.244.8.0/24", SkipReason::NoUsableNextHop),
                ],
            },
            Case {
                name: "allow-list",
                learned: vec![
                    ("192.0.2.1", "10.244.3.0/24", "192.0.2.13"),
                    ("192.0.2.1", "172.16.0.0/24", "192.0.2.13"),
                    ("192.0.2.1", "10.0.0.0/8", "192.0.2.13"),
                ],
                excluded: vec![],
                local: vec![],
                allow: Some(vec!["10.244.0.0/16"]),
                want: vec![("10.244.3.0/24", vec!["192.0.2.13"])],
                want_skipped: vec![
                    ("10.0.0.0/8", SkipReason::NotAllowed),
                    ("172.16.0.0/24", SkipReason::NotAllowed),
                ],
            },
        ];
        for c in cases {
            let ex = Exclusions {
                prefixes: c.excluded.iter().map(|s| net(s)).collect(),
                local_addresses: c.local.iter().map(|s| ip(s)).collect(),
                ..Default::default()
            };
            let policy = InstallPolicy {
                allow: c.allow.map(|v| v.iter().map(|s| net(s)).collect()),
            };
            let got = desired(&learned(&c.learned), &ex, &policy);
            let want: RouteTable = c.want.iter().map(|(p, h)| (net(p), hops(h))).collect();
            let want_skipped: BTreeMap<IpNet, SkipReason> = c
                .want_skipped
                .into_iter()
                .map(|(p, r)| (net(p), r))
                .collect();
            assert_eq!(got.routes, want, "{}: routes", c.name);
            assert_eq!(got.skipped, want_skipped, "{}: skipped", c.name);
        }
    }

    /// Without an allow-list only the Nodes' pod CIDRs go in; in every mode the unsafe
    /// prefixes stay out (a peer's address, a connected subnet, martians).
    #[test]
    fn safe_install_by_default() {
        let l = learned(&[
            ("172.17.0.1", "10.244.2.0/24", "172.17.0.22"),
            ("172.17.0.1", "10.244.2.128/25", "172.17.0.22"),
            ("172.17.0.1", "192.0.2.0/24", "172.17.0.22"),
            ("172.17.0.1", "172.17.0.2/32", "172.17.0.22"),
            ("172.17.0.1", "127.0.0.0/8", "172.17.0.22"),
            ("172.17.0.1", "fd00:10:244:2::/64", "fd00:17::22"),
            ("172.17.0.1", "10.244.3.0/24", "255.255.255.255"),
        ]);
        let ex = Exclusions {
            connected: [net("172.17.0.0/24"), net("fd00:17::/64")].into(),
            peers: [ip("172.17.0.2")].into(),
            pod_cidrs: Some(
                [
                    net("10.244.2.0/24"),
                    net("10.244.3.0/24"),
                    net("fd00:10:244:2::/64"),
                    net("127.0.0.0/8"),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let got = desired(&l, &ex, &InstallPolicy::default());
        let want: RouteTable = [
            (net("10.244.2.0/24"), hops(&["172.17.0.22"])),
            (net("10.244.2.128/25"), hops(&["172.17.0.22"])),
            (net("fd00:10:244:2::/64"), hops(&["fd00:17::22"])),
        ]
        .into();
        assert_eq!(got.routes, want);
        let reasons: Vec<(String, &str)> = got
            .skipped
            .iter()
            .map(|(p, r)| (p.to_string(), r.label()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("10.244.3.0/24".to_string(), "no_usable_next_hop"),
                ("127.0.0.0/8".to_string(), "martian"),
                ("172.17.0.2/32".to_string(), "connected_subnet"),
                ("192.0.2.0/24".to_string(), "not_a_pod_cidr"),
            ]
        );
        // With an allow-list the pod CIDRs do not matter, the unsafe rules still do.
        let policy = InstallPolicy {
            allow: Some(vec![net("0.0.0.0/1"), net("128.0.0.0/1")]),
        };
        let got = desired(&l, &ex, &policy);
        assert_eq!(
            got.skipped
                .get(&net("172.17.0.2/32"))
                .map(SkipReason::label),
            Some("connected_subnet")
        );
        assert!(got.routes.contains_key(&net("192.0.2.0/24")));
    }

    #[test]
    fn plan_rules() {
        const M: u32 = 2000;
        fn cur(prefix: &str, metric: u32, h: &[&str]) -> InstalledRoute {
            InstalledRoute {
                prefix: net(prefix),
                metric,
                next_hops: hops(h),
            }
        }
        fn rep(prefix: &str, h: &[&str]) -> Op {
            Op::Replace {
                prefix: net(prefix),
                next_hops: hops(h),
            }
        }
        fn del(prefix: &str, metric: u32) -> Op {
            Op::Delete {
                prefix: net(prefix),
                metric,
            }
        }
        /// (name, desired table, current kernel routes, expected ops)
        type Case = (
            &'static str,
            Vec<(&'static str, Vec<&'static str>)>,
            Vec<InstalledRoute>,
            Vec<Op>,
        );
        let cases: Vec<Case> = vec![
            ("both empty", vec![], vec![], vec![]),
            (
                "equal: nothing to do",
                vec![("10.244.3.0/24", vec!["192.0.2.13", "192.0.2.23"])],
                vec![cur("10.244.3.0/24", M, &["192.0.2.23", "192.0.2.13"])],
                vec![],
            ),
            (
                "missing route is added",
                vec![("10.244.3.0/24", vec!["192.0.2.13"])],
                vec![],
                vec![rep("10.244.3.0/24", &["192.0.2.13"])],
            ),
            (
                "stale route is deleted",
                vec![],
                vec![cur("10.244.9.0/24", M, &["192.0.2.13"])],
                vec![del("10.244.9.0/24", M)],
            ),
            (
                "next hops changed: replace",
                vec![("10.244.3.0/24", vec!["192.0.2.13"])],
                vec![cur("10.244.3.0/24", M, &["192.0.2.13", "192.0.2.23"])],
                vec![rep("10.244.3.0/24", &["192.0.2.13"])],
            ),
            (
                "other metric: delete it and add ours",
                vec![("10.244.3.0/24", vec!["192.0.2.13"])],
                vec![cur("10.244.3.0/24", 7, &["192.0.2.13"])],
                vec![
                    del("10.244.3.0/24", 7),
                    rep("10.244.3.0/24", &["192.0.2.13"]),
                ],
            ),
            (
                "duplicate at our metric: start afresh",
                vec![("fd00:244:3::/64", vec!["2001:db8::13"])],
                vec![
                    cur("fd00:244:3::/64", M, &["2001:db8::13"]),
                    cur("fd00:244:3::/64", M, &["2001:db8::13"]),
                ],
                vec![
                    del("fd00:244:3::/64", M),
                    rep("fd00:244:3::/64", &["2001:db8::13"]),
                ],
            ),
            (
                "mixed",
                vec![
                    ("10.244.3.0/24", vec!["192.0.2.13"]),
                    ("10.244.4.0/24", vec!["192.0.2.14", "192.0.2.24"]),
                ],
                vec![
                    cur("10.244.3.0/24", M, &["192.0.2.13"]),
                    cur("10.244.5.0/24", M, &["192.0.2.15"]),
                ],
                vec![
                    del("10.244.5.0/24", M),
                    rep("10.244.4.0/24", &["192.0.2.14", "192.0.2.24"]),
                ],
            ),
        ];
        for (name, want_table, current, want_ops) in cases {
            let table: RouteTable = want_table.iter().map(|(p, h)| (net(p), hops(h))).collect();
            assert_eq!(plan(&table, &current, M), want_ops, "{name}");
        }
    }
}
