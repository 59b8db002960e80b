//! Interop with a real gobgpd (3.10) in a network namespace: our speaker connects,
//! gobgpd is passive (its own first connect would wait 5-10 s).

mod interop_support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_bgp::fsm::State;
use ferrolb_bgp::session::{
    NextHopSpec, PeerConfig, PeerSelector, RouteSpec, Speaker, SpeakerConfig,
};
use ferrolb_bgp::wire::{LargeCommunity as WireLarge, NextHop, PathAttributes};
use ferrolb_netns::{Community, GobgpConfig, GobgpNeighbor, Gobgpd, LargeCommunity};
use interop_support::{NsRuntime, Pair, root_or_skip, tagged_attributes, wait_state};
use ipnet::IpNet;

const PEER_AS: u32 = 64512;
const OUR_AS: u32 = 64522;
const WAIT: Duration = Duration::from_secs(15);

fn v4(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

#[test]
fn ebgp_routes_attributes_withdraw_and_graceful_stop() {
    if !root_or_skip() {
        return;
    }
    let pair = Pair::new();
    let g = Gobgpd::start(
        &pair.peer,
        &GobgpConfig::new(PEER_AS, pair.peer_v4)
            .neighbor(GobgpNeighbor::new(IpAddr::V4(pair.node_v4), OUR_AS)),
    )
    .expect("gobgpd");
    let rt = NsRuntime::new(&pair.node);
    let peer_ip = IpAddr::V4(pair.peer_v4);
    let node_v6 = pair.node_v6;
    let (speaker, mut events) = rt.run(async move {
        let (speaker, mut events) =
            Speaker::new(SpeakerConfig::new("10.0.0.2".parse().unwrap())).expect("speaker");
        let attrs = tagged_attributes(OUR_AS);
        let mut routes = BTreeMap::new();
        routes.insert(
            v4("172.17.254.1/32"),
            RouteSpec::self_next_hop(attrs.clone()),
        );
        routes.insert(
            v4("172.17.254.2/32"),
            RouteSpec::self_next_hop(attrs.clone()),
        );
        routes.insert(
            "2001:db8::1/128".parse().unwrap(),
            RouteSpec::self_next_hop(attrs),
        );
        speaker
            .set_desired(PeerSelector::All, routes)
            .expect("desired");
        let mut cfg = PeerConfig::new(peer_ip, OUR_AS, PEER_AS);
        cfg.ipv6_next_hop = Some(node_v6);
        speaker.add_peer(cfg).expect("add peer");
        wait_state(&mut events, peer_ip, State::Established, WAIT)
            .await
            .expect("established");
        (speaker, events)
    });

    let r = g
        .wait_route(v4("172.17.254.1/32"), WAIT)
        .expect("v4 route at gobgpd");
    let p = r.paths.first().expect("a path");
    assert_eq!(p.next_hops, vec![IpAddr::V4(pair.node_v4)]);
    assert_eq!(p.as_path, vec![OUR_AS], "eBGP prepends our AS");
    assert_eq!(p.communities, vec![Community::new(OUR_AS as u16, 100)]);
    assert_eq!(
        p.large_communities,
        vec![LargeCommunity {
            global: OUR_AS,
            local1: 1,
            local2: 2
        }]
    );
    assert_eq!(p.local_pref, None, "no LOCAL_PREF towards eBGP");
    let r6 = g
        .wait_route("2001:db8::1/128".parse().unwrap(), WAIT)
        .expect("v6 route");
    let p6 = r6.paths.first().expect("a path");
    assert_eq!(p6.next_hops.first(), Some(&IpAddr::V6(pair.node_v6)));
    assert_eq!(p6.as_path, vec![OUR_AS]);

    // Withdraw one prefix; the other stays.
    let s2 = speaker.clone();
    rt.run(async move { s2.withdraw(PeerSelector::All, v4("172.17.254.1/32")) })
        .expect("withdraw");
    g.wait_for("172.17.254.1/32 withdrawn", WAIT, |s| {
        s.route(v4("172.17.254.1/32")).is_none() && s.route(v4("172.17.254.2/32")).is_some()
    })
    .expect("withdrawn");

    // Counters and status.
    let status = speaker.peer_status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].state, State::Established);
    assert_eq!(status[0].prefixes_announced, 2);
    assert!(status[0].updates_sent >= 3, "{status:?}");
    assert!(status[0].uptime.is_some());

    // Graceful stop: gobgpd drops our routes within a second (Cease, not hold timer).
    let s2 = speaker.clone();
    let t = Instant::now();
    rt.run(async move { s2.shutdown(Some("maintenance")).await });
    g.wait_for("routes dropped after Cease", Duration::from_secs(1), |s| {
        s.rib_v4.is_empty() && s.rib_v6.is_empty()
    })
    .expect("routes dropped within 1 s");
    assert!(t.elapsed() < Duration::from_secs(3));
    let n = g.neighbors().expect("neighbors");
    assert!(!n[0].is_established(), "{n:?}");
    drop(events.try_recv());
}

#[test]
fn ibgp_sends_local_pref_and_no_prepend_and_learns_routes() {
    if !root_or_skip() {
        return;
    }
    let pair = Pair::new();
    let g = Gobgpd::start(
        &pair.peer,
        &GobgpConfig::new(OUR_AS, pair.peer_v4)
            .neighbor(GobgpNeighbor::new(IpAddr::V4(pair.node_v4), OUR_AS)),
    )
    .expect("gobgpd");
    // gobgpd originates a route towards us: it must show up as RouteLearned.
    g.announce(
        v4("192.0.2.0/24"),
        IpAddr::V4(pair.peer_v4),
        &["community", "64522:7"],
    )
    .expect("gobgp announce");
    let rt = NsRuntime::new(&pair.node);
    let peer_ip = IpAddr::V4(pair.peer_v4);
    let (speaker, learned) = rt.run(async move {
        let (speaker, mut events) =
            Speaker::new(SpeakerConfig::new("10.0.0.2".parse().unwrap())).expect("speaker");
        let mut routes = BTreeMap::new();
        routes.insert(
            v4("172.17.254.9/32"),
            RouteSpec::self_next_hop(tagged_attributes(OUR_AS)),
        );
        // A fixed next hop and default attributes (LOCAL_PREF unset -> 100 on iBGP).
        routes.insert(
            v4("172.17.254.10/32"),
            RouteSpec {
                attributes: Arc::new(PathAttributes {
                    large_communities: vec![WireLarge {
                        global: 1,
                        local1: 2,
                        local2: 3,
                    }],
                    ..PathAttributes::default()
                }),
                next_hop: NextHopSpec::Fixed(NextHop::V4("10.0.0.77".parse().unwrap())),
            },
        );
        speaker
            .set_desired(PeerSelector::All, routes)
            .expect("desired");
        let mut cfg = PeerConfig::new(peer_ip, OUR_AS, OUR_AS);
        cfg.families = vec![ferrolb_bgp::wire::AddressFamily::Ipv4Unicast];
        speaker.add_peer(cfg).expect("add peer");
        wait_state(&mut events, peer_ip, State::Established, WAIT)
            .await
            .expect("established");
        let deadline = tokio::time::Instant::now() + WAIT;
        let learned = loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(ferrolb_bgp::session::SpeakerEvent::RouteLearned {
                    prefix,
                    route,
                    ..
                })) => {
                    break (prefix, route);
                }
                Ok(Some(_)) => {}
                other => panic!("no route learned: {other:?}"),
            }
        };
        (speaker, learned)
    });
    assert_eq!(learned.0, v4("192.0.2.0/24"));
    assert_eq!(learned.1.attributes.communities, vec![(64522 << 16) | 7]);
    assert_eq!(learned.1.next_hop, NextHop::V4(pair.peer_v4));

    let r = g.wait_route(v4("172.17.254.9/32"), WAIT).expect("route");
    let p = r.paths.first().expect("path");
    assert_eq!(p.as_path, Vec::<u32>::new(), "iBGP does not prepend");
    assert_eq!(p.local_pref, Some(200));
    assert_eq!(p.next_hops, vec![IpAddr::V4(pair.node_v4)]);
    let r = g.wait_route(v4("172.17.254.10/32"), WAIT).expect("route");
    let p = r.paths.first().expect("path");
    assert_eq!(p.local_pref, Some(100));
    assert_eq!(p.next_hops, vec!["10.0.0.77".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        p.large_communities,
        vec![LargeCommunity {
            global: 1,
            local1: 2,
            local2: 3
        }]
    );
    assert_eq!(speaker.peer_status()[0].prefixes_received, 1);
    let s2 = speaker.clone();
    rt.run(async move { s2.shutdown(None).await });
}

#[test]
fn md5_wrong_password_stays_down_and_the_right_one_comes_up() {
    if !root_or_skip() {
        return;
    }
    let pair = Pair::new();
    let mut n = GobgpNeighbor::new(IpAddr::V4(pair.node_v4), OUR_AS);
    n.password = Some("s3cret-Pa55".into());
    let g = Gobgpd::start(
        &pair.peer,
        &GobgpConfig::new(PEER_AS, pair.peer_v4).neighbor(n),
    )
    .expect("gobgpd");
    let rt = NsRuntime::new(&pair.node);
    let peer_ip = IpAddr::V4(pair.peer_v4);
    let mut cfg = PeerConfig::new(peer_ip, OUR_AS, PEER_AS);
    cfg.password = Some("wrong".into());
    let cfg2 = cfg.clone();
    let (speaker, mut events) = rt.run(async move {
        let (speaker, mut events) =
            Speaker::new(SpeakerConfig::new("10.0.0.2".parse().unwrap())).expect("speaker");
        speaker.add_peer(cfg2).expect("add peer");
        let r = wait_state(
            &mut events,
            peer_ip,
            State::Established,
            Duration::from_secs(4),
        )
        .await;
        assert!(r.is_err(), "session came up with a wrong MD5 password");
        (speaker, events)
    });
    assert!(!g.neighbors().expect("neighbors")[0].is_established());
    assert_ne!(speaker.peer_status()[0].state, State::Established);

    // Same config again: nothing changes (no reset). Then the right password.
    assert!(
        !speaker.update_peer(cfg.clone()).expect("update"),
        "identical config reset"
    );
    cfg.password = Some("s3cret-Pa55".into());
    assert!(
        speaker.update_peer(cfg).expect("update"),
        "password change must reset"
    );
    rt.run(async move {
        wait_state(&mut events, peer_ip, State::Established, WAIT)
            .await
            .expect("established");
    });
    g.wait_established(IpAddr::V4(pair.node_v4), WAIT)
        .expect("gobgpd established");
    let s2 = speaker.clone();
    rt.run(async move { s2.shutdown(None).await });
}

#[test]
fn config_errors_name_the_field() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let (speaker, _events) =
            Speaker::new(SpeakerConfig::new("10.0.0.2".parse().unwrap())).expect("speaker");
        let base = PeerConfig::new("127.0.0.1".parse().unwrap(), 64522, 64512);
        let field = |cfg: PeerConfig| match speaker.add_peer(cfg) {
            Err(ferrolb_bgp::session::ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        };
        assert_eq!(
            field(PeerConfig {
                local_as: 0,
                ..base.clone()
            }),
            "local_as"
        );
        assert_eq!(
            field(PeerConfig {
                remote_as: 0,
                ..base.clone()
            }),
            "remote_as"
        );
        assert_eq!(
            field(PeerConfig {
                hold_time: 2,
                ..base.clone()
            }),
            "hold_time"
        );
        assert_eq!(
            field(PeerConfig {
                hold_time: 1,
                ..base.clone()
            }),
            "hold_time"
        );
        assert_eq!(
            field(PeerConfig {
                keepalive: Some(100),
                ..base.clone()
            }),
            "keepalive"
        );
        assert_eq!(
            field(PeerConfig {
                source_address: Some("192.0.2.123".parse().unwrap()),
                ..base.clone()
            }),
            "source_address"
        );
        assert_eq!(
            field(PeerConfig {
                passive: true,
                ..base.clone()
            }),
            "passive"
        );
        let err = speaker
            .add_peer(PeerConfig {
                remote_as: 0,
                ..base.clone()
            })
            .expect_err("invalid")
            .to_string();
        assert!(
            err.contains("remote_as") && err.contains("127.0.0.1"),
            "{err}"
        );
        // A valid peer is accepted once; a second time is a duplicate.
        let ok = PeerConfig {
            hold_time: 0,
            keepalive: None,
            ..base.clone()
        };
        speaker.add_peer(ok.clone()).expect("valid");
        assert!(matches!(
            speaker.add_peer(ok),
            Err(ferrolb_bgp::session::ConfigError::DuplicatePeer(_))
        ));
        speaker.shutdown(None).await;
    });
}

#[test]
fn ipv6_transport_session_with_self_next_hops_of_both_families() {
    if !root_or_skip() {
        return;
    }
    let pair = Pair::new();
    let g = Gobgpd::start(
        &pair.peer,
        &GobgpConfig::new(PEER_AS, pair.peer_v4)
            .neighbor(GobgpNeighbor::new(IpAddr::V6(pair.node_v6), OUR_AS)),
    )
    .expect("gobgpd");
    let rt = NsRuntime::new(&pair.node);
    let peer_ip = IpAddr::V6(pair.peer_v6);
    let node_v4 = pair.node_v4;
    let speaker = rt.run(async move {
        let (speaker, mut events) =
            Speaker::new(SpeakerConfig::new("10.0.0.2".parse().unwrap())).expect("speaker");
        let attrs = Arc::new(PathAttributes::default());
        let mut routes = BTreeMap::new();
        routes.insert(
            "2001:db8::7/128".parse().unwrap(),
            RouteSpec::self_next_hop(attrs.clone()),
        );
        routes.insert(v4("172.17.254.7/32"), RouteSpec::self_next_hop(attrs));
        speaker
            .set_desired(PeerSelector::All, routes)
            .expect("desired");
        let mut cfg = PeerConfig::new(peer_ip, OUR_AS, PEER_AS);
        cfg.ipv4_next_hop = Some(node_v4);
        speaker.add_peer(cfg).expect("add peer");
        wait_state(&mut events, peer_ip, State::Established, WAIT)
            .await
            .expect("established");
        speaker
    });
    let r6 = g
        .wait_route("2001:db8::7/128".parse().unwrap(), WAIT)
        .expect("v6 route");
    assert_eq!(
        r6.paths[0].next_hops.first(),
        Some(&IpAddr::V6(pair.node_v6))
    );
    assert_eq!(r6.paths[0].as_path, vec![OUR_AS]);
    let r4 = g
        .wait_route(v4("172.17.254.7/32"), WAIT)
        .expect("v4 route over v6 session");
    assert_eq!(r4.paths[0].next_hops, vec![IpAddr::V4(pair.node_v4)]);
    let local = speaker.peer_status()[0].local_address.expect("local");
    assert_eq!(local.ip(), IpAddr::V6(pair.node_v6));
    let s2 = speaker.clone();
    rt.run(async move { s2.shutdown(None).await });
}
