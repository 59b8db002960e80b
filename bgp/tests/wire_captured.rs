//! Messages captured from real gobgpd 3.10 and BIRD 2.0.12 (see testdata/CAPTURE.md):
//! they must decode to what the daemons were configured to announce, and where our
//! encoder would send the same route, it must produce the daemon's bytes.

mod wire_support;

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrolb_bgp::rib::AdjRibIn;
use ferrolb_bgp::wire::{
    AddressFamily, AsSegment, Capability, LargeCommunity, Message, NextHop, Origin, SessionContext,
    Update, decode, encode,
};
use wire_support::{ctx, frames, net};

fn decode_all(name: &str, c: &SessionContext) -> Vec<(Vec<u8>, Message)> {
    frames(name)
        .into_iter()
        .map(|f| {
            let d = decode(&f, c).unwrap();
            assert!(d.actions.is_empty(), "{name}: {:?}", d.actions);
            (f, d.message)
        })
        .collect()
}

fn update(m: &Message) -> &Update {
    match m {
        Message::Update(u) => u,
        other => panic!("expected UPDATE, got {other:?}"),
    }
}

/// Re-encodes a received UPDATE as if we were the sender (our AS = the daemon's AS):
/// the daemon's prepended AS is removed again, since our encoder adds it on eBGP.
fn reencode_as_sender(u: &Update, sender: &SessionContext) -> Vec<u8> {
    let mut u = u.clone();
    if !sender.is_ibgp()
        && let Some(a) = u.attributes.as_mut()
        && let Some(AsSegment::Sequence(s)) = a.as_path.first_mut()
    {
        s.remove(0);
        if s.is_empty() {
            a.as_path.remove(0);
        }
    }
    encode(&Message::Update(u), sender).unwrap()
}

#[test]
fn gobgpd_ebgp_open_and_updates() {
    let msgs = decode_all("gobgpd-ebgp.bin", &ctx(true, 65002, 65001));
    assert_eq!(msgs.len(), 5);
    let Message::Open(open) = &msgs[0].1 else {
        panic!("{:?}", msgs[0].1)
    };
    assert_eq!((open.my_as, open.hold_time), (65001, 90));
    assert_eq!(open.bgp_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(open.four_octet_as(), Some(65001));
    assert!(open.supports_route_refresh());
    assert_eq!(
        open.families(),
        vec![AddressFamily::Ipv4Unicast, AddressFamily::Ipv6Unicast]
    );
    // gobgpd's FQDN (73) and extended next hop (5) capabilities are kept raw.
    assert!(
        open.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Unknown { code: 73, .. }))
    );
    assert_eq!(msgs[1].1, Message::Keepalive);

    let u = update(&msgs[2].1);
    assert_eq!(u.announced, vec![net("10.100.0.0/24")]);
    assert_eq!(u.next_hop, Some(NextHop::V4(Ipv4Addr::new(10, 0, 0, 1))));
    let a = u.attributes.as_ref().unwrap();
    assert_eq!(a.origin, Origin::Incomplete);
    assert_eq!(a.as_path, vec![AsSegment::Sequence(vec![65001])]);
    assert_eq!(a.med, Some(10));
    assert_eq!(a.communities, vec![(65001 << 16) | 100]);
    assert_eq!(
        a.large_communities,
        vec![LargeCommunity {
            global: 65001,
            local1: 1,
            local2: 2
        }]
    );
    assert_eq!(update(&msgs[3].1).announced, vec![net("10.100.1.1/32")]);
    let v6 = update(&msgs[4].1);
    assert_eq!(v6.announced, vec![net("2001:db8:100::/48")]);
    assert_eq!(
        v6.next_hop,
        Some(NextHop::V6 {
            global: "2001:db8::1".parse::<Ipv6Addr>().unwrap(),
            link_local: None
        })
    );

    // Our encoder, in gobgpd's place, sends gobgpd's exact bytes for the IPv4 routes.
    let sender = ctx(true, 65001, 65002);
    for (raw, m) in &msgs[2..4] {
        assert_eq!(&reencode_as_sender(update(m), &sender), raw);
    }

    let mut rib = AdjRibIn::default();
    for (_, m) in &msgs[2..] {
        rib.apply(update(m));
    }
    assert_eq!(rib.len(), 3);
}

#[test]
fn gobgpd_with_four_octet_as_towards_two_octet_peer() {
    let msgs = decode_all("gobgpd-as2peer.bin", &ctx(false, 65002, 4_200_000_001));
    let Message::Open(open) = &msgs[0].1 else {
        panic!("{:?}", msgs[0].1)
    };
    assert_eq!(open.my_as, 4_200_000_001);
    let u = update(&msgs[2].1);
    // AS_PATH 23456 65010 23456 + AS4_PATH merged back to the real path.
    assert_eq!(
        u.attributes.as_ref().unwrap().as_path,
        vec![AsSegment::Sequence(vec![
            4_200_000_001,
            65010,
            4_200_000_002
        ])]
    );
    let raw = &msgs[2].0;
    // Check that the wire really carried AS_TRANS (0x5ba0) in a 2-octet AS_PATH.
    let as_path = [0x40, 2, 8, 2, 3, 0x5b, 0xa0, 0xfd, 0xf2, 0x5b, 0xa0];
    assert!(raw.windows(as_path.len()).any(|w| w == as_path));
}

#[test]
fn bird_ibgp_open_updates_and_end_of_rib() {
    let c = ctx(true, 65001, 65001);
    let msgs = decode_all("bird-ibgp.bin", &c);
    assert_eq!(msgs.len(), 7);
    let Message::Open(open) = &msgs[0].1 else {
        panic!("{:?}", msgs[0].1)
    };
    assert_eq!((open.my_as, open.hold_time), (65001, 240));
    assert!(open.capabilities.iter().any(|c| matches!(
        c,
        Capability::GracefulRestart {
            restarting: false,
            restart_time: 120,
            ..
        }
    )));
    let host = update(&msgs[2].1);
    assert_eq!(host.announced, vec![net("10.200.1.1/32")]);
    let a = host.attributes.as_ref().unwrap();
    assert_eq!(
        (a.origin, a.local_pref, a.as_path.len()),
        (Origin::Igp, Some(100), 0)
    );

    let rich = update(&msgs[3].1);
    assert_eq!(rich.announced, vec![net("10.200.0.0/24")]);
    let a = rich.attributes.as_ref().unwrap();
    assert_eq!(a.med, Some(20));
    assert_eq!(a.communities, vec![(65001 << 16) | 300]);
    assert_eq!(a.large_communities[0].local1, 7);
    assert_eq!(msgs[4].1, Message::EndOfRib(AddressFamily::Ipv4Unicast));
    let v6 = update(&msgs[5].1);
    assert_eq!(v6.announced, vec![net("2001:db8:200::/48")]);
    assert_eq!(msgs[6].1, Message::EndOfRib(AddressFamily::Ipv6Unicast));

    // Byte-exact against BIRD: End-of-RIB markers and the IPv4 host route.
    assert_eq!(
        encode(&Message::EndOfRib(AddressFamily::Ipv4Unicast), &c).unwrap(),
        msgs[4].0
    );
    assert_eq!(
        encode(&Message::EndOfRib(AddressFamily::Ipv6Unicast), &c).unwrap(),
        msgs[6].0
    );
    assert_eq!(reencode_as_sender(host, &c), msgs[2].0);
    // BIRD puts MP_REACH_NLRI first, always with an extended length; we order by type
    // code (RFC 4271 5) and use the short length form, so compare what it means.
    let ours = reencode_as_sender(v6, &c);
    assert_ne!(ours, msgs[5].0);
    assert_eq!(decode(&ours, &c).unwrap().message, msgs[5].1);
}
