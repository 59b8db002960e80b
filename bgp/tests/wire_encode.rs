//! Byte-exact encode tests against an independent encoder (bgpkit-parser 0.23).
//!
//! For each message type we build the same message in bgpkit's model and compare the
//! bytes. bgpkit takes explicit attribute flags and order, so the oracle pins down
//! flags, order, lengths and the AS number width we are supposed to produce.

mod wire_support;

use std::net::{Ipv4Addr, Ipv6Addr};

use bgpkit_parser::models::capabilities::{
    BgpCapabilityType, FourOctetAsCapability, GracefulRestartAddressFamily,
    GracefulRestartCapability, MultiprotocolExtensionsCapability, RouteRefreshCapability,
};
use bgpkit_parser::models::{Afi, Safi};
use bgpkit_parser::models::{
    AsPath as BkAsPath, AsPathSegment as BkSeg, Asn, AsnLength, Attribute, AttributeValue,
    Attributes, BgpError, BgpMessage as BkMessage, BgpNotificationMessage, BgpOpenMessage,
    BgpRouteRefreshMessage, BgpUpdateMessage as BkUpdate, Capability as BkCap, CapabilityValue,
    Community as BkCommunity, LargeCommunity as BkLarge, NetworkPrefix, NextHopAddress, Nlri,
    OptParam, Origin as BkOrigin, ParamValue,
};
use ferrolb_bgp::wire::{
    AddressFamily, AsSegment, Capability, LargeCommunity, MAX_MESSAGE_LEN, Message, NextHop,
    Notification, Open, PathAttributes, SessionContext, Update, encode,
};
use ipnet::IpNet;
use wire_support::{ON, OT, WK, attr, ctx, net};

fn prefixes(list: &[&str]) -> Vec<NetworkPrefix> {
    list.iter()
        .map(|p| NetworkPrefix::new(net(p), None))
        .collect()
}

fn bk_update(
    withdrawn: &[&str],
    attrs: Vec<Attribute>,
    announced: &[&str],
    asn_len: AsnLength,
) -> Vec<u8> {
    let msg = BkMessage::Update(BkUpdate {
        withdrawn_prefixes: prefixes(withdrawn),
        attributes: Attributes::from_iter(attrs),
        announced_prefixes: prefixes(announced),
    });
    msg.encode(asn_len).unwrap().to_vec()
}

fn full_open() -> Open {
    Open {
        version: 4,
        my_as: 4_200_000_001,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        capabilities: vec![
            Capability::Multiprotocol(AddressFamily::Ipv4Unicast),
            Capability::Multiprotocol(AddressFamily::Ipv6Unicast),
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_001),
            Capability::GracefulRestart {
                restarting: true,
                restart_time: 120,
                families: vec![
                    (AddressFamily::Ipv4Unicast, true),
                    (AddressFamily::Ipv6Unicast, false),
                ],
            },
            Capability::Unknown {
                code: 70,
                value: vec![],
            },
        ],
    }
}

#[test]
fn open_with_all_capabilities_matches_bgpkit() {
    let ours = encode(&Message::Open(full_open()), &SessionContext::default()).unwrap();
    let caps = vec![
        BkCap {
            ty: BgpCapabilityType::MULTIPROTOCOL_EXTENSIONS_FOR_BGP_4,
            value: CapabilityValue::MultiprotocolExtensions(
                MultiprotocolExtensionsCapability::new(Afi::Ipv4, Safi::Unicast),
            ),
        },
        BkCap {
            ty: BgpCapabilityType::MULTIPROTOCOL_EXTENSIONS_FOR_BGP_4,
            value: CapabilityValue::MultiprotocolExtensions(
                MultiprotocolExtensionsCapability::new(Afi::Ipv6, Safi::Unicast),
            ),
        },
        BkCap {
            ty: BgpCapabilityType::ROUTE_REFRESH_CAPABILITY_FOR_BGP_4,
            value: CapabilityValue::RouteRefresh(RouteRefreshCapability::new()),
        },
        BkCap {
            ty: BgpCapabilityType::SUPPORT_FOR_4_OCTET_AS_NUMBER_CAPABILITY,
            value: CapabilityValue::FourOctetAs(FourOctetAsCapability::new(4_200_000_001)),
        },
        BkCap {
            ty: BgpCapabilityType::GRACEFUL_RESTART_CAPABILITY,
            value: CapabilityValue::GracefulRestart(GracefulRestartCapability {
                restart_state: true,
                restart_time: 120,
                address_families: vec![
                    GracefulRestartAddressFamily {
                        afi: Afi::Ipv4,
                        safi: Safi::Unicast,
                        forwarding_state: true,
                    },
                    GracefulRestartAddressFamily {
                        afi: Afi::Ipv6,
                        safi: Safi::Unicast,
                        forwarding_state: false,
                    },
                ],
            }),
        },
        BkCap {
            ty: BgpCapabilityType::ENHANCED_ROUTE_REFRESH_CAPABILITY,
            value: CapabilityValue::Raw(vec![]),
        },
    ];
    let theirs = BkMessage::Open(BgpOpenMessage {
        version: 4,
        // 2-octet field carries AS_TRANS for a 4-octet AS (RFC 6793).
        asn: Asn::new_16bit(23456),
        hold_time: 90,
        bgp_identifier: Ipv4Addr::new(10, 0, 0, 1),
        extended_length: false,
        opt_params: vec![OptParam {
            param_type: 2,
            param_value: ParamValue::Capacities(caps),
        }],
    })
    .encode(AsnLength::Bits32)
    .unwrap();
    assert_eq!(ours, theirs.to_vec());
}

fn rich_attrs() -> PathAttributes {
    PathAttributes {
        med: Some(10),
        local_pref: Some(200),
        communities: vec![(65000 << 16) | 100, 0xffff_ff01],
        large_communities: vec![LargeCommunity {
            global: 64512,
            local1: 1,
            local2: 2,
        }],
        ..PathAttributes::default()
    }
}

#[test]
fn update_v4_ibgp_with_communities_matches_bgpkit() {
    let c = ctx(true, 64512, 64512);
    let update = Update {
        attributes: Some(rich_attrs()),
        next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
        announced: vec![
            net("198.51.100.0/24"),
            net("203.0.113.7/32"),
            net("10.0.0.0/8"),
        ],
        ..Update::default()
    };
    let ours = encode(&Message::Update(update), &c).unwrap();
    let theirs = bk_update(
        &[],
        vec![
            attr(WK, AttributeValue::Origin(BkOrigin::IGP)),
            attr(WK, AttributeValue::AsPath(BkAsPath::default())),
            attr(WK, AttributeValue::NextHop("192.0.2.1".parse().unwrap())),
            attr(ON, AttributeValue::MultiExitDiscriminator(10)),
            attr(WK, AttributeValue::LocalPreference(200)),
            attr(
                OT,
                AttributeValue::Communities(vec![
                    BkCommunity::Custom(Asn::new_16bit(65000), 100),
                    BkCommunity::NoExport,
                ]),
            ),
            attr(
                OT,
                AttributeValue::LargeCommunities(vec![BkLarge::new(64512, [1, 2])]),
            ),
        ],
        &["198.51.100.0/24", "203.0.113.7/32", "10.0.0.0/8"],
        AsnLength::Bits32,
    );
    assert_eq!(ours, theirs);
}

#[test]
fn ibgp_without_local_pref_sends_100_and_ebgp_never_sends_it() {
    let attrs = PathAttributes::default();
    let update = Update {
        attributes: Some(attrs),
        next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
        announced: vec![net("198.51.100.0/24")],
        ..Update::default()
    };
    let ibgp = encode(&Message::Update(update.clone()), &ctx(true, 64512, 64512)).unwrap();
    let theirs = bk_update(
        &[],
        vec![
            attr(WK, AttributeValue::Origin(BkOrigin::IGP)),
            attr(WK, AttributeValue::AsPath(BkAsPath::default())),
            attr(WK, AttributeValue::NextHop("192.0.2.1".parse().unwrap())),
            attr(WK, AttributeValue::LocalPreference(100)),
        ],
        &["198.51.100.0/24"],
        AsnLength::Bits32,
    );
    assert_eq!(ibgp, theirs);

    // eBGP on a 4-octet session: our private AS 64522 prepended as 4 octets, no LOCAL_PREF
    // even when the route has one.
    let mut ebgp_update = update;
    ebgp_update.attributes.as_mut().unwrap().local_pref = Some(300);
    let ebgp = encode(&Message::Update(ebgp_update), &ctx(true, 64522, 65000)).unwrap();
    let theirs = bk_update(
        &[],
        vec![
            attr(WK, AttributeValue::Origin(BkOrigin::IGP)),
            attr(WK, AttributeValue::AsPath(BkAsPath::from_sequence([64522]))),
            attr(WK, AttributeValue::NextHop("192.0.2.1".parse().unwrap())),
        ],
        &["198.51.100.0/24"],
        AsnLength::Bits32,
    );
    assert_eq!(ebgp, theirs);
    // The AS_PATH attribute: flags 0x40, type 2, len 6, AS_SEQUENCE, 1 AS, 4 octets.
    let as_path = [0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0x0a];
    assert!(ebgp.windows(as_path.len()).any(|w| w == as_path));
}

#[test]
fn two_octet_session_uses_as_trans_and_as4_path() {
    let c = ctx(false, 4_200_000_001, 65000);
    let attrs = PathAttributes {
        as_path: vec![AsSegment::Sequence(vec![65010, 4_200_000_002])],
        ..PathAttributes::default()
    };
    let update = Update {
        attributes: Some(attrs),
        next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
        announced: vec![net("198.51.100.0/24")],
        ..Update::default()
    };
    let ours = encode(&Message::Update(update), &c).unwrap();
    let theirs = bk_update(
        &[],
        vec![
            attr(WK, AttributeValue::Origin(BkOrigin::IGP)),
            attr(
                WK,
                AttributeValue::AsPath(BkAsPath::from_sequence([23456, 65010, 23456])),
            ),
            attr(WK, AttributeValue::NextHop("192.0.2.1".parse().unwrap())),
            attr(
                OT,
                AttributeValue::As4Path(BkAsPath::from_sequence([
                    4_200_000_001,
                    65010,
                    4_200_000_002,
                ])),
            ),
        ],
        &["198.51.100.0/24"],
        AsnLength::Bits16,
    );
    assert_eq!(ours, theirs);
}

#[test]
fn two_octet_session_without_big_asns_sends_no_as4_path() {
    let c = ctx(false, 64522, 65000);
    let update = Update {
        attributes: Some(PathAttributes::default()),
        next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
        announced: vec![net("198.51.100.0/24")],
        ..Update::default()
    };
    let ours = encode(&Message::Update(update), &c).unwrap();
    let theirs = bk_update(
        &[],
        vec![
            attr(WK, AttributeValue::Origin(BkOrigin::IGP)),
            attr(WK, AttributeValue::AsPath(BkAsPath::from_sequence([64522]))),
            attr(WK, AttributeValue::NextHop("192.0.2.1".parse().unwrap())),
        ],
        &["198.51.100.0/24"],
        AsnLength::Bits16,
    );
    assert_eq!(ours, theirs);
}

#[test]
fn update_v6_mp_reach_with_link_local_matches_bgpkit() {
    let c = ctx(true, 64522, 65000);
    let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let ll: Ipv6Addr = "fe80::1".parse().unwrap();
    let update = Update {
        attributes: Some(PathAttributes {
            med: Some(5),
            ..PathAttributes::default()
        }),
        next_hop: Some(NextHop::V6 {
            global,
            link_local: Some(ll),
        }),
        announced: vec![net("2001:db8:1::/48"), net("2001:db8:2::1/128")],
        ..Update::default()
    };
    let ours = encode(&Message::Update(update), &c).unwrap();
    let mut nlri = Nlri::new_reachable(NetworkPrefix::new(net("2001:db8:1::/48"), None), None);
    nlri.next_hop = Some(NextHopAddress::Ipv6LinkLocal(global, ll));
    nlri.prefixes = prefixes(&["2001:db8:1::/48", "2001:db8:2::1/128"]);
    let theirs = bk_update(
        &[],
        vec![
            attr(WK, AttributeValue::Origin(BkOrigin::IGP)),
            attr(WK, AttributeValue::AsPath(BkAsPath::from_sequence([64522]))),
            attr(ON, AttributeValue::MultiExitDiscriminator(5)),
            attr(ON, AttributeValue::MpReachNlri(nlri)),
        ],
        &[],
        AsnLength::Bits32,
    );
    assert_eq!(ours, theirs);
    // Next hop length 32 (global + link-local, RFC 2545).
    let mp_start = ours
        .windows(5)
        .position(|w| w[0] == 0x80 && w[1] == 14 && w[3] == 0 && w[4] == 2)
        .unwrap();
    assert_eq!(ours[mp_start + 6], 32);
}

#[test]
fn mp_unreach_matches_bgpkit() {
    let update = Update {
        withdrawn: vec![net("2001:db8:1::/48"), net("2001:db8:2::1/128")],
        ..Update::default()
    };
    let ours = encode(&Message::Update(update), &ctx(true, 1, 2)).unwrap();
    let mut nlri = Nlri::new_unreachable(NetworkPrefix::new(net("2001:db8:1::/48"), None));
    nlri.prefixes = prefixes(&["2001:db8:1::/48", "2001:db8:2::1/128"]);
    let theirs = bk_update(
        &[],
        vec![attr(ON, AttributeValue::MpUnreachNlri(nlri))],
        &[],
        AsnLength::Bits32,
    );
    assert_eq!(ours, theirs);
}

#[test]
fn v4_withdrawal_matches_bgpkit() {
    let update = Update {
        withdrawn: vec![net("198.51.100.0/24"), net("10.1.2.3/32")],
        ..Update::default()
    };
    let ours = encode(&Message::Update(update), &ctx(true, 1, 2)).unwrap();
    let theirs = bk_update(
        &["198.51.100.0/24", "10.1.2.3/32"],
        vec![],
        &[],
        AsnLength::Bits32,
    );
    assert_eq!(ours, theirs);
}

#[test]
fn end_of_rib_markers() {
    let c = ctx(true, 1, 2);
    let v4 = encode(&Message::EndOfRib(AddressFamily::Ipv4Unicast), &c).unwrap();
    assert_eq!(v4, bk_update(&[], vec![], &[], AsnLength::Bits32));
    assert_eq!(v4.len(), 23);

    let v6 = encode(&Message::EndOfRib(AddressFamily::Ipv6Unicast), &c).unwrap();
    let mut nlri = Nlri::new_unreachable(NetworkPrefix::new(net("::/0"), None));
    nlri.prefixes.clear();
    let theirs = bk_update(
        &[],
        vec![attr(ON, AttributeValue::MpUnreachNlri(nlri))],
        &[],
        AsnLength::Bits32,
    );
    assert_eq!(v6, theirs);
    // The RFC 4724 marker: 23 + attribute header 3 + AFI/SAFI 3.
    assert_eq!(&v6[19..], &[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]);
}

#[test]
fn notification_cease_with_shutdown_message_matches_bgpkit() {
    let text = "maintenance: node drained";
    let mut data = vec![text.len() as u8];
    data.extend_from_slice(text.as_bytes());
    let n = Notification {
        code: 6,
        subcode: 2,
        data: data.clone(),
    };
    let ours = encode(&Message::Notification(n), &SessionContext::default()).unwrap();
    let theirs = BkMessage::Notification(BgpNotificationMessage {
        error: BgpError::new(6, 2),
        data,
    })
    .encode(AsnLength::Bits32)
    .unwrap();
    assert_eq!(ours, theirs.to_vec());

    // A subcode netgauze does not model still encodes (fallback path).
    let odd = Notification {
        code: 6,
        subcode: 99,
        data: vec![1, 2],
    };
    let ours = encode(&Message::Notification(odd), &SessionContext::default()).unwrap();
    let theirs = BkMessage::Notification(BgpNotificationMessage {
        error: BgpError::new(6, 99),
        data: vec![1, 2],
    })
    .encode(AsnLength::Bits32)
    .unwrap();
    assert_eq!(ours, theirs.to_vec());
}

#[test]
fn keepalive_and_route_refresh_match_bgpkit() {
    let c = SessionContext::default();
    let ka = encode(&Message::Keepalive, &c).unwrap();
    assert_eq!(
        ka,
        BkMessage::KeepAlive
            .encode(AsnLength::Bits32)
            .unwrap()
            .to_vec()
    );
    for (family, afi) in [
        (AddressFamily::Ipv4Unicast, 1),
        (AddressFamily::Ipv6Unicast, 2),
    ] {
        let ours = encode(&Message::RouteRefresh(family), &c).unwrap();
        let theirs = BkMessage::RouteRefresh(BgpRouteRefreshMessage {
            afi,
            subtype: 0,
            safi: 1,
            data: vec![],
        })
        .encode(AsnLength::Bits32)
        .unwrap();
        assert_eq!(ours, theirs.to_vec());
    }
}

#[test]
fn long_as_path_segments_are_split_at_255() {
    let c = ctx(true, 64512, 64512);
    let path: Vec<u32> = (1..=300).collect();
    let update = Update {
        attributes: Some(PathAttributes {
            as_path: vec![AsSegment::Sequence(path.clone())],
            ..PathAttributes::default()
        }),
        next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
        announced: vec![net("198.51.100.0/24")],
        ..Update::default()
    };
    let ours = encode(&Message::Update(update), &c).unwrap();
    let segs = vec![
        BkSeg::AsSequence(path[..255].iter().map(|a| Asn::from(*a)).collect()),
        BkSeg::AsSequence(path[255..].iter().map(|a| Asn::from(*a)).collect()),
    ];
    let theirs = bk_update(
        &[],
        vec![
            attr(WK, AttributeValue::Origin(BkOrigin::IGP)),
            // 4 + 1020 + 4 + 180 bytes: extended length.
            attr(
                WK | 0x10,
                AttributeValue::AsPath(BkAsPath::from_segments(segs)),
            ),
            attr(WK, AttributeValue::NextHop("192.0.2.1".parse().unwrap())),
            attr(WK, AttributeValue::LocalPreference(100)),
        ],
        &["198.51.100.0/24"],
        AsnLength::Bits32,
    );
    assert_eq!(ours, theirs);
}

#[test]
fn oversized_update_is_refused() {
    let c = ctx(true, 64512, 64512);
    let announced: Vec<IpNet> = (0..2000u32)
        .map(|i| IpNet::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), 24).unwrap())
        .collect();
    let update = Update {
        attributes: Some(PathAttributes::default()),
        next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
        announced,
        ..Update::default()
    };
    let Err(err) = encode(&Message::Update(update), &c) else {
        panic!("an UPDATE over 4096 bytes was encoded");
    };
    assert!(
        matches!(err, ferrolb_bgp::wire::EncodeError::TooLong { len, limit } if len > MAX_MESSAGE_LEN && limit == MAX_MESSAGE_LEN),
        "{err:?}"
    );
}

#[test]
fn negotiation_takes_the_common_part() {
    let ours = full_open();
    let mut theirs = Open {
        version: 4,
        my_as: 65000,
        hold_time: 180,
        bgp_id: Ipv4Addr::new(10, 0, 0, 2),
        capabilities: vec![Capability::Multiprotocol(AddressFamily::Ipv6Unicast)],
    };
    let c = SessionContext::negotiate(&ours, &theirs);
    assert!(!c.four_octet_as);
    assert!(!c.route_refresh);
    assert_eq!(c.families, vec![AddressFamily::Ipv6Unicast]);
    assert_eq!((c.local_as, c.peer_as), (4_200_000_001, 65000));
    assert!(!c.is_ibgp());

    theirs.capabilities = vec![Capability::FourOctetAs(65000), Capability::RouteRefresh];
    let c = SessionContext::negotiate(&ours, &theirs);
    assert!(c.four_octet_as && c.route_refresh);
    // No multiprotocol capability means IPv4 unicast only.
    assert_eq!(c.families, vec![AddressFamily::Ipv4Unicast]);
    assert_eq!(
        SessionContext::default(),
        SessionContext::default_for_open()
    );
}
