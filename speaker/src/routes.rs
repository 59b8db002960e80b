//! From the decision's adverts to the BGP speaker's desired routes, per session.
//!
//! Pure. Every route gets our session address as next hop
//! ([`ferrolb_bgp::session::NextHopSpec::SelfAddress`]) and an empty AS_PATH (the encoder prepends our AS towards eBGP peers). Service routes get
//! ORIGIN INCOMPLETE, as MetalLB's native speaker sends (`internal/bgp/native/messages.go`,
//! v0.12.1; its FRR mode sends IGP), so routers keep load-balancing across MetalLB and ferrolb
//! nodes during a migration; pod CIDRs, which MetalLB never announces, get IGP. A weighted
//! advert ([`crate::decision::Weight`]) carries the link bandwidth extended community
//! (draft-ietf-idr-link-bandwidth, transitive type 0x00, subtype 0x04): [`BANDWIDTH_PER_ENDPOINT`]
//! bytes per second for each ready local endpoint, so a router that weighs ECMP by it
//! (FRR: `bgp bestpath bandwidth`, on by default) sends each node its endpoints' share. Equal
//! attribute sets share one `Arc`, so 1,000 Services with one pool cost one attribute set
//! per peer, not a thousand.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_bgp::session::RouteSpec;
use ferrolb_bgp::wire::{
    ExtendedCommunity, LargeCommunity, LinkBandwidth, Origin as BgpOrigin, PathAttributes,
};
use ferrolb_config::Community;
use ipnet::IpNet;

use crate::decision::{Advert, Decision, Origin, Problem, Weight};
use crate::peers::LocalAddrs;

/// The link bandwidth one ready endpoint stands for: 1 Mbit/s (125,000 bytes/s). Only the
/// ratio between nodes matters to a router; 1 Mbit/s per endpoint makes FRR's
/// `show bgp` print the endpoint count as the bandwidth in Mbit/s.
pub const BANDWIDTH_PER_ENDPOINT: f32 = 125_000.0;

/// RFC 6793's AS_TRANS, the two-octet stand-in for a four-octet AS.
const AS_TRANS: u16 = 23456;

/// The link bandwidth community for `weight`: our AS (AS_TRANS when it needs four octets)
/// and [`BANDWIDTH_PER_ENDPOINT`] per endpoint, transitive (FRR 8 honours only that type).
pub fn link_bandwidth(weight: &Weight) -> ExtendedCommunity {
    let asn = u16::try_from(weight.local_as).unwrap_or(AS_TRANS);
    let bytes = weight.total() as f32 * BANDWIDTH_PER_ENDPOINT;
    // At most u32::MAX x 125,000 = 5.4e14 bytes/s: always finite and not negative.
    let lb = LinkBandwidth::new(asn, bytes, true).expect("a finite, non-negative bandwidth");
    ExtendedCommunity::LinkBandwidth(lb)
}

/// Desired routes of one BGP session.
pub type RouteTable = BTreeMap<IpNet, RouteSpec>;

/// The ORIGIN of a route: INCOMPLETE for Service IPs (as MetalLB's native speaker), IGP for
/// pod CIDRs.
pub fn bgp_origin(origin: &Origin) -> BgpOrigin {
    match origin {
        Origin::Service(_) => BgpOrigin::Incomplete,
        Origin::PodCidr => BgpOrigin::Igp,
    }
}

/// The path attributes for an advert's ORIGIN, communities, LOCAL_PREF and link bandwidth.
pub fn attributes(
    origin: BgpOrigin,
    communities: &BTreeSet<Community>,
    local_pref: Option<u32>,
    bandwidth: Option<ExtendedCommunity>,
) -> PathAttributes {
    let mut attrs = PathAttributes {
        origin,
        local_pref,
        ext_communities: bandwidth.into_iter().collect(),
        ..PathAttributes::default()
    };
    for c in communities {
        match *c {
            Community::Standard(v) => attrs.communities.push(v),
            Community::Large(global, local1, local2) => {
                attrs.large_communities.push(LargeCommunity {
                    global,
                    local1,
                    local2,
                })
            }
        }
    }
    attrs
}

/// Service IPs that cannot reach a peer because the route's family differs from the
/// session's and this node has no address of the route's family to give as next hop (an
/// IPv6 Service IP towards an IPv4 peer on a node whose Node object lists no IPv6
/// address, say). The BGP layer leaves such routes out rather than announce a wrong next
/// hop; this names the Service, the peer and the field to fix, once per Service and peer.
pub fn next_hop_problems(decision: &Decision, local: LocalAddrs, node: &str) -> Vec<Problem> {
    let mut out: BTreeMap<(String, IpAddr), Problem> = BTreeMap::new();
    for (peer, table) in &decision.per_peer {
        for (prefix, advert) in table {
            let Origin::Service(services) = &advert.origin else {
                continue;
            };
            let (route_v6, peer_v6) = (matches!(prefix, IpNet::V6(_)), peer.is_ipv6());
            if route_v6 == peer_v6 {
                continue;
            }
            let (missing, family) = if route_v6 {
                (local.ipv6.is_none(), "IPv6")
            } else {
                (local.ipv4.is_none(), "IPv4")
            };
            if !missing {
                continue;
            }
            let peer_family = if peer_v6 { "IPv6" } else { "IPv4" };
            for svc in services {
                out.entry((svc.clone(), *peer)).or_insert_with(|| Problem {
                    service: svc.clone(),
                    reason: format!(
                        "{prefix} is {family} but node {node:?} lists no {family} address in \
                             its Node status.addresses to send as next hop over the {peer_family} \
                             session to {}; not announced to that peer",
                        peer
                    ),
                });
            }
        }
    }
    out.into_values().collect()
}

/// Route tables per peer address (the BGP speaker's key). The decision has one entry per
/// address already ([`crate::decision::session_peers`]: the first configured entry, the
/// one the session is set up from).
pub fn tables(decision: &Decision) -> BTreeMap<IpAddr, RouteTable> {
    type Key = (
        BgpOrigin,
        BTreeSet<Community>,
        Option<u32>,
        Option<ExtendedCommunity>,
    );
    let mut interned: BTreeMap<Key, Arc<PathAttributes>> = BTreeMap::new();
    let mut out: BTreeMap<IpAddr, RouteTable> = BTreeMap::new();
    for (peer, adverts) in &decision.per_peer {
        let table = adverts
            .iter()
            .map(
                |(
                    prefix,
                    Advert {
                        communities,
                        local_pref,
                        origin,
                        weight,
                    },
                )| {
                    let origin = bgp_origin(origin);
                    let bandwidth = weight.as_ref().map(link_bandwidth);
                    let attrs = interned
                        .entry((origin, communities.clone(), *local_pref, bandwidth))
                        .or_insert_with(|| {
                            Arc::new(attributes(origin, communities, *local_pref, bandwidth))
                        })
                        .clone();
                    (*prefix, RouteSpec::self_next_hop(attrs))
                },
            )
            .collect();
        out.insert(*peer, table);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adverts_become_self_next_hop_routes_with_shared_attributes() {
        let peer = "172.17.0.1".parse().unwrap();
        let comms = BTreeSet::from([
            Community::Standard(65535 << 16 | 65281),
            Community::Large(1, 2, 3),
        ]);
        let mut adverts = BTreeMap::new();
        for p in ["172.17.254.1/32", "172.17.254.2/32"] {
            adverts.insert(
                p.parse::<IpNet>().unwrap(),
                Advert {
                    communities: comms.clone(),
                    local_pref: Some(200),
                    origin: Origin::PodCidr,
                    weight: None,
                },
            );
        }
        let decision = Decision {
            per_peer: BTreeMap::from([(peer, adverts)]),
            ..Decision::default()
        };
        let t = tables(&decision);
        let table = &t[&peer];
        assert_eq!(table.len(), 2);
        let a = &table[&"172.17.254.1/32".parse::<IpNet>().unwrap()];
        let b = &table[&"172.17.254.2/32".parse::<IpNet>().unwrap()];
        assert!(Arc::ptr_eq(&a.attributes, &b.attributes));
        assert_eq!(a.next_hop, ferrolb_bgp::session::NextHopSpec::SelfAddress);
        assert_eq!(a.attributes.communities, vec![65535 << 16 | 65281]);
        assert_eq!(
            a.attributes.large_communities,
            vec![LargeCommunity {
                global: 1,
                local1: 2,
                local2: 3
            }]
        );
        assert_eq!(a.attributes.local_pref, Some(200));
        assert_eq!(a.attributes.origin, BgpOrigin::Igp);
        assert!(a.attributes.as_path.is_empty());
    }

    #[test]
    fn weighted_adverts_carry_transitive_link_bandwidth_per_endpoint() {
        let peer = "172.17.0.3".parse().unwrap();
        let weighted = |local_as: u32, n: u32| Advert {
            communities: BTreeSet::new(),
            local_pref: None,
            origin: Origin::Service(BTreeSet::from(["ns/a".into()])),
            weight: Some(Weight {
                local_as,
                endpoints: BTreeMap::from([("ns/a".to_string(), n)]),
            }),
        };
        let p = |s: &str| s.parse::<IpNet>().unwrap();
        let decision = Decision {
            per_peer: BTreeMap::from([(
                peer,
                BTreeMap::from([
                    (p("172.17.254.1/32"), weighted(64522, 3)),
                    (p("172.17.254.2/32"), weighted(64522, 3)),
                    (p("172.17.254.3/32"), weighted(64522, 1)),
                    (p("172.17.254.4/32"), weighted(4_200_000_000, 1)),
                ]),
            )]),
            ..Decision::default()
        };
        let t = tables(&decision);
        let table = &t[&peer];
        let bytes = |prefix: &str| -> Vec<[u8; 8]> {
            table[&p(prefix)]
                .attributes
                .ext_communities
                .iter()
                .map(ExtendedCommunity::to_bytes)
                .collect()
        };
        // Type 0x00 (transitive two-octet AS), subtype 0x04, AS 64522 = 0xfc0a, then the
        // IEEE 754 single: 375,000.0 = 0x48b71b00 (3 x 125,000 bytes/s), 125,000.0 = 0x47f42400.
        assert_eq!(
            bytes("172.17.254.1/32"),
            vec![[0x00, 0x04, 0xfc, 0x0a, 0x48, 0xb7, 0x1b, 0x00]]
        );
        assert_eq!(
            bytes("172.17.254.3/32"),
            vec![[0x00, 0x04, 0xfc, 0x0a, 0x47, 0xf4, 0x24, 0x00]]
        );
        // A four-octet AS goes as AS_TRANS (23456 = 0x5ba0).
        assert_eq!(
            bytes("172.17.254.4/32"),
            vec![[0x00, 0x04, 0x5b, 0xa0, 0x47, 0xf4, 0x24, 0x00]]
        );
        assert!(Arc::ptr_eq(
            &table[&p("172.17.254.1/32")].attributes,
            &table[&p("172.17.254.2/32")].attributes
        ));
        assert!(!Arc::ptr_eq(
            &table[&p("172.17.254.1/32")].attributes,
            &table[&p("172.17.254.3/32")].attributes
        ));
    }

    #[test]
    fn a_route_of_the_other_family_without_a_node_address_is_a_problem() {
        let v4_peer = "172.17.0.1".parse().unwrap();
        let v6_peer = "fd00::1".parse().unwrap();
        let svc = |k: &str| Advert {
            communities: BTreeSet::new(),
            local_pref: None,
            origin: Origin::Service(BTreeSet::from([k.to_string()])),
            weight: None,
        };
        let p = |s: &str| s.parse::<IpNet>().unwrap();
        let table = BTreeMap::from([
            (p("172.17.254.1/32"), svc("ns/a")),
            (p("fd00:254::1/128"), svc("ns/a")),
        ]);
        let decision = Decision {
            per_peer: BTreeMap::from([(v4_peer, table.clone()), (v6_peer, table)]),
            ..Decision::default()
        };
        let v4_only = LocalAddrs {
            ipv4: Some("172.17.0.21".parse().unwrap()),
            ipv6: None,
        };
        let problems = next_hop_problems(&decision, v4_only, "node-1");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].service, "ns/a");
        assert_eq!(
            problems[0].reason,
            "fd00:254::1/128 is IPv6 but node \"node-1\" lists no IPv6 address in its Node \
             status.addresses to send as next hop over the IPv4 session to 172.17.0.1; not \
             announced to that peer"
        );
        let both = LocalAddrs {
            ipv6: Some("fd00::21".parse().unwrap()),
            ..v4_only
        };
        assert!(next_hop_problems(&decision, both, "node-1").is_empty());
    }

    #[test]
    fn service_routes_are_origin_incomplete_pod_cidrs_igp() {
        let peer = "172.17.0.2".parse().unwrap();
        let advert = |origin| Advert {
            communities: BTreeSet::new(),
            local_pref: Some(0),
            origin,
            weight: None,
        };
        let svc: IpNet = "172.17.254.1/32".parse().unwrap();
        let pod: IpNet = "10.244.1.0/24".parse().unwrap();
        let decision = Decision {
            per_peer: BTreeMap::from([(
                peer,
                BTreeMap::from([
                    (
                        svc,
                        advert(Origin::Service(BTreeSet::from(["ns/a".into()]))),
                    ),
                    (pod, advert(Origin::PodCidr)),
                ]),
            )]),
            ..Decision::default()
        };
        let t = tables(&decision);
        let table = &t[&peer];
        assert_eq!(table[&svc].attributes.origin, BgpOrigin::Incomplete);
        assert_eq!(table[&svc].attributes.local_pref, Some(0));
        assert_eq!(table[&pod].attributes.origin, BgpOrigin::Igp);
    }
}
