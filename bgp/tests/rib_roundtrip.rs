//! Adj-RIB-Out -> UPDATE bytes -> decode -> Adj-RIB-In must reproduce the desired set.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ferrolb_bgp::rib::{AdjRibIn, AdjRibOut, RibInEvent, Route};
use ferrolb_bgp::wire::{
    AddressFamily, AsSegment, ExtendedCommunity, LargeCommunity, MAX_MESSAGE_LEN, Message, NextHop,
    Origin, PathAttributes, SessionContext, decode, message_length,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;

fn ibgp() -> SessionContext {
    SessionContext {
        four_octet_as: true,
        families: vec![AddressFamily::Ipv4Unicast, AddressFamily::Ipv6Unicast],
        route_refresh: true,
        local_as: 64512,
        peer_as: 64512,
        graceful_restart: None,
    }
}

/// Feeds every message through framing + decode into `rib_in`, checking sizes.
fn deliver(messages: &[Vec<u8>], ctx: &SessionContext, rib_in: &mut AdjRibIn) -> Vec<RibInEvent> {
    let mut events = Vec::new();
    for m in messages {
        assert!(m.len() <= MAX_MESSAGE_LEN, "message of {} bytes", m.len());
        assert_eq!(message_length(m).unwrap(), Some(m.len()));
        let d = decode(m, ctx).unwrap();
        assert!(d.actions.is_empty(), "{:?}", d.actions);
        match d.message {
            Message::Update(u) => events.extend(rib_in.apply(&u)),
            other => panic!("unexpected {other:?}"),
        }
    }
    events
}

fn route(i: u32, nh: NextHop) -> Route {
    Route {
        attributes: PathAttributes {
            med: Some(i),
            communities: vec![(65000 << 16) | i],
            ..PathAttributes::default()
        },
        next_hop: nh,
    }
}

#[test]
fn set_desired_twice_is_an_empty_diff_and_changes_are_minimal() {
    let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
    let p = |s: &str| s.parse::<IpNet>().unwrap();
    let mut out = AdjRibOut::new();
    let desired: BTreeMap<IpNet, Route> = [
        (p("10.0.0.1/32"), route(1, nh)),
        (p("10.0.0.2/32"), route(1, nh)),
        (p("10.0.0.3/32"), route(2, nh)),
    ]
    .into();
    let d = out.set_desired(desired.clone());
    assert_eq!(d.prefix_count(), 3);
    assert_eq!(d.announced.len(), 2, "grouped by route");
    assert!(out.set_desired(desired.clone()).is_empty());

    let mut changed = desired;
    changed.remove(&p("10.0.0.1/32"));
    changed.insert(p("10.0.0.3/32"), route(3, nh));
    let d = out.set_desired(changed);
    assert_eq!(d.withdrawn, vec![p("10.0.0.1/32")]);
    assert_eq!(d.announced, vec![(route(3, nh), vec![p("10.0.0.3/32")])]);
    assert_eq!(out.len(), 2);

    assert!(out.announce(p("10.0.0.2/32"), route(1, nh)).is_empty());
    assert_eq!(
        out.announce(p("10.0.0.9/32"), route(1, nh)).prefix_count(),
        1
    );
    assert_eq!(
        out.withdraw(&p("10.0.0.9/32")).withdrawn,
        vec![p("10.0.0.9/32")]
    );
    assert!(out.withdraw(&p("10.0.0.9/32")).is_empty());
    assert_eq!(out.full_table().prefix_count(), 2);
}

#[test]
fn set_desired_shared_matches_set_desired() {
    let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
    let shared = std::sync::Arc::new(route(7, nh));
    let owned: BTreeMap<IpNet, Route> = (0..50u32)
        .map(|i| {
            (
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a000000 + i), 32).unwrap()),
                route(7, nh),
            )
        })
        .collect();
    let arcs: BTreeMap<IpNet, std::sync::Arc<Route>> =
        owned.keys().map(|p| (*p, shared.clone())).collect();
    let mut a = AdjRibOut::new();
    let mut b = AdjRibOut::new();
    assert_eq!(
        a.set_desired(owned.clone()),
        b.set_desired_shared(arcs.clone())
    );
    // Switching between the two forms with equal content changes nothing.
    assert!(a.set_desired_shared(arcs).is_empty());
    assert!(b.set_desired(owned).is_empty());
    assert_eq!(b.distinct_routes(), 1);
}

#[test]
fn set_desired_keyed_resolves_each_key_once_and_matches_set_desired() {
    let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
    let prefix = |i: u32| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a000000 + i), 32).unwrap());
    // Key = which attribute set; key 9 is not announceable (left out).
    let keyed: Vec<(IpNet, u32)> = (0..60u32)
        .map(|i| (prefix(i), [1, 2, 9][i as usize % 3]))
        .collect();
    let owned: BTreeMap<IpNet, Route> = keyed
        .iter()
        .filter(|(_, k)| *k != 9)
        .map(|(p, k)| (*p, route(*k, nh)))
        .collect();
    let mut calls = Vec::new();
    let mut a = AdjRibOut::new();
    let d = a.set_desired_keyed(keyed.clone(), |k| {
        calls.push(*k);
        (*k != 9).then(|| route(*k, nh))
    });
    calls.sort_unstable();
    assert_eq!(calls, vec![1, 2, 9], "one resolution per distinct key");
    let mut b = AdjRibOut::new();
    assert_eq!(d, b.set_desired(owned.clone()));
    assert_eq!((a.len(), a.distinct_routes()), (40, 2));
    // The same table again: nothing to send; a changed key: only its prefixes.
    assert!(
        a.set_desired_keyed(keyed.clone(), |k| (*k != 9).then(|| route(*k, nh)))
            .is_empty()
    );
    let d = a.set_desired_keyed(keyed, |k| match k {
        2 => Some(route(3, nh)),
        9 => None,
        k => Some(route(*k, nh)),
    });
    assert!(d.withdrawn.is_empty());
    assert_eq!(d.announced.len(), 1);
    assert_eq!(d.announced[0].0, route(3, nh));
    assert_eq!(d.announced[0].1.len(), 20);
    assert!(
        a.set_desired(owned.clone()).prefix_count() == 20,
        "back to the owned form"
    );
}

#[test]
fn rib_in_reports_only_changes_and_clear_withdraws_everything() {
    let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
    let ctx = ibgp();
    let mut out = AdjRibOut::new();
    let mut rin = AdjRibIn::default();
    let desired: BTreeMap<IpNet, Route> = (0..10u32)
        .map(|i| {
            (
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a000000 + i), 32).unwrap()),
                route(1, nh),
            )
        })
        .collect();
    let ev = deliver(
        &out.set_desired(desired.clone()).encode(&ctx).unwrap(),
        &ctx,
        &mut rin,
    );
    assert_eq!(ev.len(), 10);
    // Re-sending the full table (ROUTE-REFRESH) changes nothing on the receiver.
    let ev = deliver(&out.full_table().encode(&ctx).unwrap(), &ctx, &mut rin);
    assert!(ev.is_empty(), "{ev:?}");
    let ev = rin.clear();
    assert_eq!(ev.len(), 10);
    assert!(ev.iter().all(|e| matches!(e, RibInEvent::Withdrawn { .. })));
    assert_eq!(rin.len(), 0);
}

#[test]
fn one_hundred_thousand_prefixes_pack_under_4096_and_round_trip() {
    let ctx = SessionContext {
        local_as: 64522,
        peer_as: 65000,
        ..ibgp()
    };
    let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
    let desired: BTreeMap<IpNet, Route> = (0..100_000u32)
        .map(|i| {
            let p = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a000000 + i), 32).unwrap());
            (p, route(u32::from(i % 3 == 0), nh))
        })
        .collect();
    let mut out = AdjRibOut::new();
    let diff = out.set_desired(desired.clone());
    assert_eq!(out.distinct_routes(), 2);
    let msgs = diff.encode(&ctx).unwrap();
    // 100,000 /32 NLRI of 5 bytes each: about 815 per message.
    assert!(msgs.len() < 130, "{} messages", msgs.len());
    let mut rin = AdjRibIn::default();
    deliver(&msgs, &ctx, &mut rin);
    let got: BTreeMap<IpNet, Route> = rin.routes().map(|(p, r)| (p, r.clone())).collect();
    let want: BTreeMap<IpNet, Route> = desired
        .into_iter()
        .map(|(p, mut r)| {
            r.attributes.as_path = vec![AsSegment::Sequence(vec![64522])];
            (p, r)
        })
        .collect();
    assert_eq!(got, want);
    // Withdrawing everything.
    let msgs = out.set_desired(BTreeMap::new()).encode(&ctx).unwrap();
    deliver(&msgs, &ctx, &mut rin);
    assert_eq!(rin.len(), 0);
}

fn arb_v4() -> impl Strategy<Value = IpNet> {
    // Unicast space only (netgauze refuses multicast/broadcast NLRI).
    (0u32..0xdf00_0000, 8u8..=32)
        .prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc()))
}

fn arb_v6() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 16u8..=128).prop_map(|(a, l)| {
        let a = (a & !(0xffu128 << 120)) | (0x20u128 << 120); // 2000::/8
        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc())
    })
}

fn arb_attrs() -> impl Strategy<Value = PathAttributes> {
    (
        prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ],
        prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u32>(), 1..4).prop_map(AsSegment::Sequence),
                prop::collection::vec(any::<u32>(), 1..3).prop_map(AsSegment::Set),
            ],
            0..3,
        ),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        prop::collection::vec(any::<u32>(), 0..40),
        prop::collection::vec(
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(global, local1, local2)| {
                LargeCommunity {
                    global,
                    local1,
                    local2,
                }
            }),
            0..12,
        ),
        prop::collection::vec(arb_ext_community(), 0..6),
    )
        .prop_map(
            |(origin, as_path, med, local_pref, communities, large_communities, ext)| {
                PathAttributes {
                    origin,
                    as_path,
                    med,
                    local_pref,
                    communities,
                    ext_communities: ext,
                    large_communities,
                }
            },
        )
}

/// Extended communities of the common types, transitive and not: two-octet AS, IPv4 and
/// four-octet AS specific (route target, route origin, link bandwidth subtypes) and
/// opaque, with random values.
fn arb_ext_community() -> impl Strategy<Value = ExtendedCommunity> {
    (
        prop::sample::select(vec![0x00u8, 0x40, 0x01, 0x41, 0x02, 0x42, 0x03, 0x43]),
        prop::sample::select(vec![0x02u8, 0x03, 0x04]),
        any::<[u8; 6]>(),
    )
        .prop_map(|(ty, sub, v)| {
            ExtendedCommunity::from_bytes([ty, sub, v[0], v[1], v[2], v[3], v[4], v[5]])
        })
}

fn arb_next_hop_v4() -> impl Strategy<Value = NextHop> {
    (1u32..0xdf00_0000).prop_map(|a| NextHop::V4(Ipv4Addr::from(a)))
}

fn arb_next_hop_v6() -> impl Strategy<Value = NextHop> {
    (any::<u128>(), proptest::option::of(any::<u64>())).prop_map(|(g, ll)| NextHop::V6 {
        global: Ipv6Addr::from(g | (0x2001u128 << 112)),
        link_local: ll.map(|x| Ipv6Addr::from((0xfe80u128 << 112) | u128::from(x))),
    })
}

/// A desired set: random prefixes, each mapped to one of a few random routes.
fn arb_desired() -> impl Strategy<Value = BTreeMap<IpNet, Route>> {
    (
        prop::collection::vec((arb_attrs(), arb_next_hop_v4()), 1..4),
        prop::collection::vec((arb_attrs(), arb_next_hop_v6()), 1..4),
        prop::collection::vec((arb_v4(), any::<prop::sample::Index>()), 0..600),
        prop::collection::vec((arb_v6(), any::<prop::sample::Index>()), 0..400),
    )
        .prop_map(|(r4, r6, p4, p6)| {
            let mut m = BTreeMap::new();
            for (p, i) in p4 {
                let (a, nh) = i.get(&r4).clone();
                m.insert(
                    p,
                    Route {
                        attributes: a,
                        next_hop: nh,
                    },
                );
            }
            for (p, i) in p6 {
                let (a, nh) = i.get(&r6).clone();
                m.insert(
                    p,
                    Route {
                        attributes: a,
                        next_hop: nh,
                    },
                );
            }
            m
        })
}

/// What the receiver should see for `desired` after the export rules of `ctx`.
fn expected(desired: &BTreeMap<IpNet, Route>, ctx: &SessionContext) -> BTreeMap<IpNet, Route> {
    desired
        .iter()
        .map(|(p, r)| {
            let mut r = r.clone();
            if ctx.is_ibgp() {
                r.attributes.local_pref = Some(r.attributes.local_pref.unwrap_or(100));
            } else {
                r.attributes.local_pref = None;
                r.attributes.ext_communities.retain(|c| c.is_transitive());
                match r.attributes.as_path.first_mut() {
                    Some(AsSegment::Sequence(s)) if s.len() < 255 => s.insert(0, ctx.local_as),
                    _ => r
                        .attributes
                        .as_path
                        .insert(0, AsSegment::Sequence(vec![ctx.local_as])),
                }
            }
            (*p, r)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn desired_set_changes_reproduce_on_the_receiver(
        steps in prop::collection::vec(arb_desired(), 1..5),
        ibgp_session in any::<bool>(),
        four_octet in any::<bool>(),
        local_as in prop_oneof![Just(64512u32), Just(4_200_000_001u32), 1u32..100_000],
    ) {
        let ctx = SessionContext {
            four_octet_as: four_octet,
            local_as,
            peer_as: if ibgp_session { local_as } else { 65000 },
            ..ibgp()
        };
        let mut out = AdjRibOut::new();
        let mut rin = AdjRibIn::default();
        for desired in steps {
            let diff = out.set_desired(desired.clone());
            let msgs = diff.encode(&ctx).unwrap();
            deliver(&msgs, &ctx, &mut rin);
            let got: BTreeMap<IpNet, Route> = rin.routes().map(|(p, r)| (p, r.clone())).collect();
            prop_assert_eq!(got, expected(&desired, &ctx));
            prop_assert!(out.set_desired(desired).is_empty());
        }
    }
}

#[test]
fn packing_is_tight_and_never_exceeds_4096() {
    let ctx = ibgp();
    let big_attrs = PathAttributes {
        as_path: vec![AsSegment::Sequence((1..40).collect())],
        communities: (0..60).collect(),
        large_communities: (0..20)
            .map(|i| LargeCommunity {
                global: i,
                local1: i,
                local2: i,
            })
            .collect(),
        ..PathAttributes::default()
    };
    let nh6 = NextHop::V6 {
        global: "2001:db8::1".parse().unwrap(),
        link_local: Some("fe80::1".parse().unwrap()),
    };
    let v6: Vec<IpNet> = (0..5000u128)
        .map(|i| {
            IpNet::V6(
                Ipv6Net::new(
                    Ipv6Addr::from((0x2001_0db8u128 << 96) + (i << 8)),
                    120 + (i % 9) as u8,
                )
                .unwrap()
                .trunc(),
            )
        })
        .collect();
    let v4: Vec<IpNet> = (0..5000u32)
        .map(|i| {
            IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 4)), 20 + (i % 13) as u8)
                    .unwrap()
                    .trunc(),
            )
        })
        .collect();
    let withdrawn: Vec<IpNet> = v4.iter().chain(v6.iter()).copied().collect();
    let nh4 = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
    let msgs = ferrolb_bgp::wire::pack_updates(
        &ctx,
        &withdrawn,
        &[
            (big_attrs.clone(), nh6, v6.clone()),
            (big_attrs, nh4, v4.clone()),
        ],
    )
    .unwrap();
    let mut rin = AdjRibIn::default();
    let mut withdrawn_seen = 0;
    let mut sizes = Vec::new();
    for m in &msgs {
        assert!(m.len() <= MAX_MESSAGE_LEN);
        sizes.push(m.len());
        match decode(m, &ctx).unwrap().message {
            Message::Update(u) => {
                withdrawn_seen += u.withdrawn.len();
                rin.apply(&u);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(withdrawn_seen, 10_000);
    // Truncation made some prefixes equal; the receiver holds each once.
    let unique: std::collections::BTreeSet<IpNet> = withdrawn.iter().copied().collect();
    assert_eq!(rin.len(), unique.len());
    // Full messages leave less room than the largest prefix (17 bytes) plus one.
    let full = sizes.iter().filter(|s| **s > MAX_MESSAGE_LEN - 18).count();
    assert!(full + 4 >= msgs.len(), "sizes: {sizes:?}");
}

#[test]
fn family_mismatch_and_multicast_are_refused() {
    let ctx = ibgp();
    let nh4 = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
    let v6: IpNet = "2001:db8::/32".parse().unwrap();
    let err =
        ferrolb_bgp::wire::pack_updates(&ctx, &[], &[(PathAttributes::default(), nh4, vec![v6])]);
    assert!(matches!(
        err,
        Err(ferrolb_bgp::wire::EncodeError::NextHopFamily { .. })
    ));
    let mc: IpNet = "239.1.1.1/32".parse().unwrap();
    let err =
        ferrolb_bgp::wire::pack_updates(&ctx, &[], &[(PathAttributes::default(), nh4, vec![mc])]);
    assert!(matches!(
        err,
        Err(ferrolb_bgp::wire::EncodeError::NotUnicast(_))
    ));
}
