//! From the decision's adverts to the BGP speaker's desired routes, per session.
//!
//! Pure. Every route gets our session address as next hop ([`NextHopSpec::SelfAddress`])
//! and an empty AS_PATH (the encoder prepends our AS towards eBGP peers). Service routes get
//! ORIGIN INCOMPLETE, as MetalLB's native speaker sends (`internal/bgp/native/messages.go`,
//! v0.12.1; its FRR mode sends IGP), so routers keep load-balancing across MetalLB and ferrolb
//! nodes during a migration; pod CIDRs, which MetalLB never announces, get IGP. Equal
//! attribute sets share one `Arc`, so 1,000 Services with one pool cost one attribute set
//! per peer, not a thousand.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_bgp::session::RouteSpec;
use ferrolb_bgp::wire::{LargeCommunity, Origin as BgpOrigin, PathAttributes};
use ferrolb_config::Community;
use ipnet::IpNet;

use crate::decision::{Advert, Decision, Origin};

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

/// The path attributes for an advert's ORIGIN, communities and LOCAL_PREF.
pub fn attributes(
    origin: BgpOrigin,
    communities: &BTreeSet<Community>,
    local_pref: Option<u32>,
) -> PathAttributes {
    let mut attrs = PathAttributes {
        origin,
        local_pref,
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

/// Route tables per peer address. Peers are keyed by address in the BGP speaker; when the
/// configuration lists one address twice (different ports) the first entry wins, as in
/// [`crate::peers::desired_peers`].
pub fn tables(decision: &Decision) -> BTreeMap<IpAddr, RouteTable> {
    type Key = (BgpOrigin, BTreeSet<Community>, Option<u32>);
    let mut interned: BTreeMap<Key, Arc<PathAttributes>> = BTreeMap::new();
    let mut out: BTreeMap<IpAddr, RouteTable> = BTreeMap::new();
    for (peer, adverts) in &decision.per_peer {
        if out.contains_key(&peer.address) {
            continue;
        }
        let table = adverts
            .iter()
            .map(
                |(
                    prefix,
                    Advert {
                        communities,
                        local_pref,
                        origin,
                    },
                )| {
                    let origin = bgp_origin(origin);
                    let attrs = interned
                        .entry((origin, communities.clone(), *local_pref))
                        .or_insert_with(|| Arc::new(attributes(origin, communities, *local_pref)))
                        .clone();
                    (*prefix, RouteSpec::self_next_hop(attrs))
                },
            )
            .collect();
        out.insert(peer.address, table);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::PeerKey;

    #[test]
    fn adverts_become_self_next_hop_routes_with_shared_attributes() {
        let peer = PeerKey {
            address: "172.17.0.1".parse().unwrap(),
            port: 179,
        };
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
                },
            );
        }
        let decision = Decision {
            per_peer: BTreeMap::from([(peer, adverts)]),
            ..Decision::default()
        };
        let t = tables(&decision);
        let table = &t[&peer.address];
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
    fn service_routes_are_origin_incomplete_pod_cidrs_igp() {
        let peer = PeerKey {
            address: "172.17.0.2".parse().unwrap(),
            port: 179,
        };
        let advert = |origin| Advert {
            communities: BTreeSet::new(),
            local_pref: Some(0),
            origin,
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
        let table = &t[&peer.address];
        assert_eq!(table[&svc].attributes.origin, BgpOrigin::Incomplete);
        assert_eq!(table[&svc].attributes.local_pref, Some(0));
        assert_eq!(table[&pod].attributes.origin, BgpOrigin::Igp);
    }
}
