//! Decoding arbitrary or mutated bytes must never panic (and errors must carry a
//! NOTIFICATION a peer would accept).

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrolb_bgp::wire::{
    AddressFamily, AsSegment, Capability, LargeCommunity, Message, NextHop, Notification, Open,
    PathAttributes, SessionContext, Update, decode, encode, message_length,
};
use proptest::prelude::*;

fn contexts() -> Vec<SessionContext> {
    let base = SessionContext {
        four_octet_as: true,
        families: vec![AddressFamily::Ipv4Unicast, AddressFamily::Ipv6Unicast],
        route_refresh: true,
        local_as: 64512,
        peer_as: 64512,
        graceful_restart: None,
    };
    vec![
        base.clone(),
        SessionContext {
            four_octet_as: false,
            peer_as: 65000,
            ..base
        },
    ]
}

/// Valid messages of every type, as mutation seeds.
fn seeds() -> Vec<Vec<u8>> {
    let ctx = &contexts()[0];
    let attrs = PathAttributes {
        as_path: vec![
            AsSegment::Sequence(vec![65000, 4_200_000_000]),
            AsSegment::Set(vec![1, 2]),
        ],
        med: Some(1),
        local_pref: Some(2),
        communities: vec![1, 2, 3],
        large_communities: vec![LargeCommunity {
            global: 1,
            local1: 2,
            local2: 3,
        }],
        ..PathAttributes::default()
    };
    let msgs = [
        Message::Open(Open {
            version: 4,
            my_as: 65000,
            hold_time: 90,
            bgp_id: Ipv4Addr::new(1, 2, 3, 4),
            capabilities: vec![
                Capability::Multiprotocol(AddressFamily::Ipv6Unicast),
                Capability::FourOctetAs(65000),
                Capability::RouteRefresh,
                Capability::GracefulRestart {
                    restarting: false,
                    restart_time: 90,
                    families: vec![(AddressFamily::Ipv4Unicast, true)],
                },
            ],
        }),
        Message::Update(Update {
            withdrawn: vec![
                "10.9.0.0/16".parse().unwrap(),
                "2001:db8:9::/48".parse().unwrap(),
            ],
            attributes: Some(attrs.clone()),
            next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
            announced: vec![
                "10.0.0.0/8".parse().unwrap(),
                "10.1.1.1/32".parse().unwrap(),
            ],
            ..Update::default()
        }),
        Message::Update(Update {
            attributes: Some(attrs),
            next_hop: Some(NextHop::V6 {
                global: Ipv6Addr::LOCALHOST,
                link_local: Some(Ipv6Addr::UNSPECIFIED),
            }),
            announced: vec!["2001:db8::/32".parse().unwrap()],
            ..Update::default()
        }),
        Message::EndOfRib(AddressFamily::Ipv6Unicast),
        Message::Notification(Notification {
            code: 6,
            subcode: 2,
            data: vec![3, b'b', b'y', b'e'],
        }),
        Message::Keepalive,
        Message::RouteRefresh(AddressFamily::Ipv4Unicast),
    ];
    msgs.iter().map(|m| encode(m, ctx).unwrap()).collect()
}

fn check(frame: &[u8]) {
    for ctx in contexts() {
        let _ = message_length(frame);
        match decode(frame, &ctx) {
            Ok(_) => {}
            Err(e) => assert!((1..=7).contains(&e.notification.code), "{e}"),
        }
    }
}

#[test]
fn seeds_decode_cleanly() {
    // Encoded for the 4-octet session, so decoded with that one.
    let ctx = &contexts()[0];
    for s in seeds() {
        let d = decode(&s, ctx).unwrap();
        assert!(d.actions.is_empty(), "{:?}", d.actions);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..300), t in 0u8..7) {
        // A valid header so the body reaches the message decoders.
        let mut frame = vec![0xff; 16];
        frame.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        frame.push(t);
        frame.extend_from_slice(&body);
        check(&frame);
        check(&body);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        seed in 0usize..7,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        let mut frame = seeds()[seed].clone();
        for (at, byte, kind) in edits {
            let i = at.index(frame.len().max(1));
            match kind {
                0 if i < frame.len() => frame[i] = byte,
                1 if i < frame.len() => { frame.remove(i); }
                2 => frame.insert(i.min(frame.len()), byte),
                _ => frame.truncate(i),
            }
        }
        // Keep the header length consistent half of the time, so the body parsers see
        // the mutation instead of a length error.
        if frame.len() >= 19 && frame[0] % 2 == 1 {
            let len = (frame.len() as u16).to_be_bytes();
            frame[16] = len[0];
            frame[17] = len[1];
        }
        check(&frame);
        if frame.len() >= 19 {
            let len = (frame.len() as u16).to_be_bytes();
            frame[16] = len[0];
            frame[17] = len[1];
            check(&frame);
        }
    }
}
