//! Extended communities (RFC 4360) and the link bandwidth community
//! (draft-ietf-idr-link-bandwidth) on the wire: byte-exact against bgpkit-parser's
//! encoder, against UPDATEs captured from FRR 8.4 (`testdata/CAPTURE.md`), the eBGP
//! export rule for non-transitive communities, and through the Adj-RIB-Out.

mod wire_support;

use std::net::{Ipv4Addr, Ipv6Addr};

use bgpkit_parser::models::{
    AsPath as BkAsPath, Asn, AsnLength, Attribute, AttributeValue, Attributes,
    BgpMessage as BkMessage, BgpUpdateMessage as BkUpdate, ExtendedCommunity as BkExt,
    LinkBandwidth as BkLinkBandwidth, NetworkPrefix, NextHopAddress, Nlri, Origin as BkOrigin,
    TwoOctetAsExtCommunity,
};
use ferrolb_bgp::rib::{AdjRibOut, Route};
use ferrolb_bgp::wire::{
    ExtendedCommunity, LinkBandwidth, Message, NextHop, PathAttributes, Update, decode, encode,
};
use wire_support::{ON, OT, WK, attr, ctx, frames, net};

fn lb(asn: u16, mbps: f64, transitive: bool) -> ExtendedCommunity {
    ExtendedCommunity::LinkBandwidth(LinkBandwidth::from_mbps(asn, mbps, transitive).unwrap())
}

fn bk_lb(asn: u16, mbps: f32, transitive: bool) -> BkExt {
    BkExt::LinkBandwidth(BkLinkBandwidth {
        global_admin: asn,
        bandwidth: mbps * 125_000.0,
        transitive,
    })
}

fn route_target(asn: u16, value: u32) -> ExtendedCommunity {
    let [a0, a1] = asn.to_be_bytes();
    let [v0, v1, v2, v3] = value.to_be_bytes();
    ExtendedCommunity::from_bytes([0x00, 0x02, a0, a1, v0, v1, v2, v3])
}

fn bk_update(attrs: Vec<Attribute>, announced: &[&str]) -> Vec<u8> {
    let msg = BkMessage::Update(BkUpdate {
        withdrawn_prefixes: vec![],
        attributes: Attributes::from_iter(attrs),
        announced_prefixes: announced
            .iter()
            .map(|p| NetworkPrefix::new(net(p), None))
            .collect(),
    });
    msg.encode(AsnLength::Bits32).unwrap().to_vec()
}

fn v4_update(attrs: PathAttributes, next_hop: Ipv4Addr, prefix: &str) -> Update {
    Update {
        attributes: Some(attrs),
        next_hop: Some(NextHop::V4(next_hop)),
        announced: vec![net(prefix)],
        ..Update::default()
    }
}

/// iBGP: a transitive and a non-transitive link bandwidth and a route target, in the
/// order given, as one optional transitive attribute between LOCAL_PREF and
/// LARGE_COMMUNITIES.
#[test]
fn ibgp_update_with_extended_communities_matches_bgpkit() {
    let attrs = PathAttributes {
        ext_communities: vec![
            lb(64522, 100.0, true),
            lb(64522, 2.5, false),
            route_target(64512, 7),
        ],
        large_communities: vec![ferrolb_bgp::wire::LargeCommunity {
            global: 64512,
            local1: 1,
            local2: 2,
        }],
        ..PathAttributes::default()
    };
    let ours = encode(
        &Message::Update(v4_update(
            attrs,
            Ipv4Addr::new(192, 0, 2, 1),
            "198.51.100.7/32",
        )),
        &ctx(true, 64522, 64522),
    )
    .unwrap();
    let theirs = bk_update(
        vec![
            attr(WK, AttributeValue::Origin(BkOrigin::IGP)),
            attr(WK, AttributeValue::AsPath(BkAsPath::default())),
            attr(WK, AttributeValue::NextHop("192.0.2.1".parse().unwrap())),
            attr(WK, AttributeValue::LocalPreference(100)),
            attr(
                OT,
                AttributeValue::ExtendedCommunities(vec![
                    bk_lb(64522, 100.0, true),
                    bk_lb(64522, 2.5, false),
                    BkExt::TransitiveTwoOctetAs(TwoOctetAsExtCommunity {
                        subtype: 0x02,
                        global_admin: Asn::new_16bit(64512),
                        local_admin: 7u32.to_be_bytes(),
                    }),
                ]),
            ),
            attr(
                OT,
                AttributeValue::LargeCommunities(vec![bgpkit_parser::models::LargeCommunity::new(
                    64512,
                    [1, 2],
                )]),
            ),
        ],
        &["198.51.100.7/32"],
    );
    assert_eq!(ours, theirs);
    // And back: the same communities come out of our decoder.
    let d = decode(&ours, &ctx(true, 64522, 64522)).unwrap();
    let Message::Update(u) = d.message else {
        panic!("not an UPDATE")
    };
    let got = u.attributes.unwrap().ext_communities;
    assert_eq!(
        got,
        vec![
            lb(64522, 100.0, true),
            lb(64522, 2.5, false),
            route_target(64512, 7)
        ]
    );
    assert_eq!(
        got[1].link_bandwidth().unwrap().bytes_per_second(),
        312_500.0
    );
}

/// eBGP: non-transitive communities are not sent (RFC 4360 6, as FRR and BIRD do); when
/// none is left the attribute is left out.
#[test]
fn ebgp_drops_non_transitive_extended_communities() {
    // (what the route carries, what bgpkit is told to send)
    let cases = [
        (
            vec![lb(64522, 2.5, false), lb(64522, 100.0, true)],
            vec![bk_lb(64522, 100.0, true)],
        ),
        (vec![lb(64522, 2.5, false)], vec![]),
    ];
    for (ext, sent) in cases {
        let attrs = PathAttributes {
            ext_communities: ext,
            ..PathAttributes::default()
        };
        let update = v4_update(attrs, Ipv4Addr::new(172, 17, 0, 21), "172.17.254.1/32");
        let ours = encode(&Message::Update(update), &ctx(true, 64522, 64512)).unwrap();
        let mut theirs = vec![
            attr(WK, AttributeValue::Origin(BkOrigin::IGP)),
            attr(WK, AttributeValue::AsPath(BkAsPath::from_sequence([64522]))),
            attr(WK, AttributeValue::NextHop("172.17.0.21".parse().unwrap())),
        ];
        if !sent.is_empty() {
            theirs.push(attr(OT, AttributeValue::ExtendedCommunities(sent)));
        }
        assert_eq!(ours, bk_update(theirs, &["172.17.254.1/32"]));
    }
}

/// IPv6: the attribute follows MP_REACH_NLRI (type 14 < 16).
#[test]
fn ipv6_update_with_link_bandwidth_matches_bgpkit() {
    let global: Ipv6Addr = "fd00:172:17::21".parse().unwrap();
    let update = Update {
        attributes: Some(PathAttributes {
            ext_communities: vec![lb(64522, 1000.0, true)],
            ..PathAttributes::default()
        }),
        next_hop: Some(NextHop::V6 {
            global,
            link_local: None,
        }),
        announced: vec![net("fd00:172:17:254::1/128")],
        ..Update::default()
    };
    let ours = encode(&Message::Update(update), &ctx(true, 64522, 64512)).unwrap();
    let mut nlri = Nlri::new_reachable(
        NetworkPrefix::new(net("fd00:172:17:254::1/128"), None),
        None,
    );
    nlri.next_hop = Some(NextHopAddress::Ipv6(global));
    let theirs = bk_update(
        vec![
            attr(WK, AttributeValue::Origin(BkOrigin::IGP)),
            attr(WK, AttributeValue::AsPath(BkAsPath::from_sequence([64522]))),
            attr(ON, AttributeValue::MpReachNlri(nlri)),
            attr(
                OT,
                AttributeValue::ExtendedCommunities(vec![bk_lb(64522, 1000.0, true)]),
            ),
        ],
        &[],
    );
    assert_eq!(ours, theirs);
}

/// The path attributes of an UPDATE without withdrawn routes: (flags, type, value, the
/// attribute's raw bytes).
fn path_attributes(msg: &[u8]) -> Vec<(u8, u8, Vec<u8>, Vec<u8>)> {
    assert_eq!(&msg[19..21], &[0, 0], "no withdrawn routes");
    let total = usize::from(u16::from_be_bytes([msg[21], msg[22]]));
    let mut rest = &msg[23..23 + total];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (flags, ty) = (rest[0], rest[1]);
        let (hdr, len) = if flags & 0x10 != 0 {
            (4, usize::from(u16::from_be_bytes([rest[2], rest[3]])))
        } else {
            (3, usize::from(rest[2]))
        };
        out.push((
            flags,
            ty,
            rest[hdr..hdr + len].to_vec(),
            rest[..hdr + len].to_vec(),
        ));
        rest = &rest[hdr + len..];
    }
    out
}

/// FRR 8.4 (AS 64512), `set extcommunity bandwidth 100` on 10.99.1.0/24 and `bandwidth
/// 200 non-transitive` on 10.99.2.0/24, to an iBGP and an eBGP (AS 65001) neighbour:
/// both decode to the configured values (Mbit/s * 125,000 bytes/s), and our encoder
/// produces FRR's attributes for the same routes (the extended communities byte for
/// byte), including FRR leaving the non-transitive one out towards the eBGP neighbour.
#[test]
fn frr_link_bandwidth_captures_decode_and_re_encode_byte_for_byte() {
    let frr_nh = Ipv4Addr::new(10, 77, 0, 1);
    for (file, c, want) in [
        (
            "frr-linkbw-ibgp.bin",
            ctx(true, 64512, 64512),
            [vec![lb(64512, 100.0, true)], vec![lb(64512, 200.0, false)]],
        ),
        (
            "frr-linkbw-ebgp.bin",
            ctx(true, 64512, 65001),
            [vec![lb(64512, 100.0, true)], vec![]],
        ),
    ] {
        let msgs = frames(file);
        assert_eq!(msgs.len(), 2, "{file}");
        for ((frame, want), prefix) in msgs.iter().zip(&want).zip(["10.99.1.0/24", "10.99.2.0/24"])
        {
            let d = decode(frame, &c).unwrap();
            assert!(d.actions.is_empty(), "{file}: {:?}", d.actions);
            let Message::Update(u) = d.message else {
                panic!("{file}: not an UPDATE")
            };
            assert_eq!(u.announced, vec![net(prefix)], "{file}");
            let attrs = u.attributes.clone().unwrap();
            assert_eq!(&attrs.ext_communities, want, "{file} {prefix}");
            assert_eq!(attrs.med, Some(0), "FRR's `network` sets MED 0");

            // The same route from our encoder. On iBGP it carries what FRR announced;
            // on eBGP it starts from the route FRR had (with the non-transitive
            // community, which the encoder must leave out, as FRR did).
            let mut ours = PathAttributes {
                med: Some(0),
                local_pref: c.is_ibgp().then_some(100),
                ext_communities: want.clone(),
                ..PathAttributes::default()
            };
            if !c.is_ibgp() && want.is_empty() {
                ours.ext_communities = vec![lb(64512, 200.0, false)];
            }
            let bytes = encode(&Message::Update(v4_update(ours, frr_nh, prefix)), &c).unwrap();
            // FRR always sets the extended-length flag on AS_PATH (RFC 4271 allows
            // either); apart from that bit the attributes are identical, and the
            // EXTENDED COMMUNITIES attribute is identical byte for byte.
            let (a, b) = (path_attributes(&bytes), path_attributes(frame));
            let strip = |v: &[(u8, u8, Vec<u8>, Vec<u8>)]| -> Vec<(u8, u8, Vec<u8>)> {
                v.iter()
                    .map(|(f, t, val, _)| (f & !0x10, *t, val.clone()))
                    .collect()
            };
            assert_eq!(strip(&a), strip(&b), "{file} {prefix}");
            let ext = |v: &[(u8, u8, Vec<u8>, Vec<u8>)]| {
                v.iter().find(|x| x.1 == 16).map(|x| x.3.clone())
            };
            assert_eq!(ext(&a), ext(&b), "{file} {prefix}");
            assert_eq!(ext(&a).is_some(), !want.is_empty());
            assert_eq!(bytes[bytes.len() - 4..], frame[frame.len() - 4..], "NLRI");
        }
    }
}

/// The Adj-RIB-Out treats the communities as part of the route: changing only the link
/// bandwidth sends one UPDATE with the new value, an unchanged set sends nothing.
#[test]
fn adj_rib_out_sends_a_link_bandwidth_change() {
    let route = |mbps: f64| Route {
        attributes: PathAttributes {
            ext_communities: vec![lb(64522, mbps, true)],
            ..PathAttributes::default()
        },
        next_hop: NextHop::V4(Ipv4Addr::new(172, 17, 0, 21)),
    };
    let prefix = net("172.17.254.1/32");
    let c = ctx(true, 64522, 64512);
    let mut out = AdjRibOut::new();
    assert_eq!(
        out.set_desired([(prefix, route(100.0))].into())
            .encode(&c)
            .unwrap()
            .len(),
        1
    );
    assert!(out.set_desired([(prefix, route(100.0))].into()).is_empty());
    let msgs = out
        .set_desired([(prefix, route(300.0))].into())
        .encode(&c)
        .unwrap();
    assert_eq!(msgs.len(), 1);
    let Message::Update(u) = decode(&msgs[0], &c).unwrap().message else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.announced, vec![prefix]);
    assert!(u.withdrawn.is_empty());
    assert_eq!(
        u.attributes.unwrap().ext_communities,
        vec![lb(64522, 300.0, true)]
    );
}
