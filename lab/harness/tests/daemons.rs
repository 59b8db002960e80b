//! Real gobgpd and BIRD in namespaces (needs root; skips otherwise).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_netns::*;
use ipnet::IpNet;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn skip() -> bool {
    match require_root() {
        Ok(()) => false,
        Err(skip) => {
            eprintln!("{skip}");
            true
        }
    }
}

const T: Duration = Duration::from_secs(30);

/// BIRD (AS 65001) in one namespace and gobgpd (AS 65000, passive) in another, over a veth
/// with IPv4 and IPv6 addresses. Routes flow both ways with the right next hop and AS path.
#[test]
fn bird_and_gobgpd_peer_and_exchange_routes() {
    if skip() {
        return;
    }
    let lab = Lab::new().expect("lab");
    let router = lab.netns("gobgp").expect("ns");
    let node = lab.netns("bird").expect("ns");
    let v = lab.veth(&router, &node).expect("veth");
    router.add_addr(&v.a, net("10.90.0.1/24")).expect("addr");
    node.add_addr(&v.b, net("10.90.0.2/24")).expect("addr");
    router.add_addr(&v.a, net("fd90::1/64")).expect("addr");
    node.add_addr(&v.b, net("fd90::2/64")).expect("addr");

    let mut n4 = GobgpNeighbor::new(ip("10.90.0.2"), 65001);
    n4.hold_time = Some(9);
    n4.keepalive = Some(3);
    let g = Gobgpd::start(
        &router,
        &GobgpConfig::new(65000, "10.90.0.1".parse().unwrap())
            .neighbor(n4)
            .neighbor(GobgpNeighbor {
                families: vec![Family::V6],
                ..GobgpNeighbor::new(ip("fd90::2"), 65001)
            }),
    )
    .expect("gobgpd starts");

    let mut b = BirdBgp::new("gobgp", 65001, ip("10.90.0.1"), 65000);
    b.hold_time = Some(9);
    b.ipv6 = Some(BirdChannel::default());
    let mut announced = BirdStatic::blackhole(net("10.200.0.1/32"));
    announced.attrs = vec![
        "bgp_community.add((65001,7))".into(),
        "bgp_large_community.add((65001,1,2))".into(),
    ];
    let cfg = BirdConfig::new("10.90.0.2".parse().unwrap())
        .bgp(b)
        // A second session over IPv6 transport (IPv6 channel only).
        .bgp(BirdBgp::new("gobgp6", 65001, ip("fd90::1"), 65000))
        .route(announced)
        .route(BirdStatic::blackhole(net("fd00:200::1/128")));
    let start = Instant::now();
    let bird = Bird::start(&node, &cfg).expect("bird starts");

    let peer = g
        .wait_established(ip("10.90.0.2"), T)
        .expect("gobgpd sees Established");
    let established_after = start.elapsed();
    assert_eq!(peer.peer_as, 65001);
    assert!(peer.uptime_unix.is_some(), "{peer:?}");
    let proto = bird
        .wait_established("gobgp", T)
        .expect("bird sees Established");
    assert_eq!(proto.proto, "BGP");
    bird.wait_established("gobgp6", T)
        .expect("bird: IPv6 session Established");
    g.wait_established(ip("fd90::2"), T)
        .expect("gobgpd: IPv6 session Established");

    // BIRD -> gobgpd.
    let r = g
        .wait_route(net("10.200.0.1/32"), T)
        .expect("v4 route reaches gobgpd");
    let p = r.best().expect("a path");
    assert_eq!(p.next_hops, vec![ip("10.90.0.2")]);
    assert_eq!(p.as_path, vec![65001]);
    assert_eq!(p.communities, vec![Community::new(65001, 7)]);
    assert_eq!(
        p.large_communities,
        vec![LargeCommunity {
            global: 65001,
            local1: 1,
            local2: 2
        }]
    );
    assert_eq!(p.source.as_deref(), Some("10.90.0.2"));
    let r6 = g
        .wait_route(net("fd00:200::1/128"), T)
        .expect("v6 route reaches gobgpd");
    let p6 = r6.best().expect("a path");
    assert_eq!(p6.next_hops.first(), Some(&ip("fd90::2")), "{p6:?}");
    assert_eq!(p6.as_path, vec![65001]);
    let routes_after = start.elapsed();

    // gobgpd -> BIRD, with attributes.
    g.announce(
        net("10.201.0.0/24"),
        ip("10.90.0.1"),
        &["community", "65000:9", "med", "20"],
    )
    .expect("announce");
    let br = bird
        .wait_route(net("10.201.0.0/24"), Some("gobgp"), T)
        .expect("route reaches bird");
    let bp = br.best().expect("a path");
    assert_eq!(bp.next_hops, vec![ip("10.90.0.1")]);
    assert_eq!(bp.as_path, vec![65000]);
    assert_eq!(bp.communities, vec![Community::new(65000, 9)]);
    assert_eq!(bp.med, Some(20));
    assert!(bp.best);
    // BIRD's own static route is a blackhole from protocol static_ipv4.
    let state = bird.state().expect("state");
    let own = state.route(net("10.200.0.1/32")).expect("own static");
    assert_eq!(
        (own.paths[0].kind.as_str(), own.paths[0].source.as_deref()),
        ("blackhole", Some("static_ipv4"))
    );

    // Withdraw and see it go.
    g.withdraw(net("10.201.0.0/24")).expect("withdraw");
    bird.wait_for("10.201.0.0/24 withdrawn", T, |s| {
        s.route(net("10.201.0.0/24")).is_none()
    })
    .expect("withdrawn from bird");

    // Generic wait on gobgpd's state; adj-in shows what BIRD sent.
    let gs = g
        .wait_for("both families from bird", T, |s| {
            s.route(net("10.200.0.1/32")).is_some() && s.route(net("fd00:200::1/128")).is_some()
        })
        .expect("state");
    assert!(
        gs.neighbor(ip("10.90.0.2"))
            .is_some_and(|n| n.accepted >= 2),
        "{:?}",
        gs.neighbors
    );
    let adj = g.adj_in(ip("10.90.0.2"), Family::V4).expect("adj-in");
    assert!(find_route(&adj, net("10.200.0.1/32")).is_some(), "{adj:?}");

    eprintln!(
        "measured: Established {:.2}s after bird start, both routes in gobgpd {:.2}s",
        established_after.as_secs_f64(),
        routes_after.as_secs_f64()
    );
}

/// A stopped (SIGSTOP) BIRD goes silent: gobgpd drops the session at hold-time expiry.
#[test]
fn silent_peer_is_detected_by_hold_timer() {
    if skip() {
        return;
    }
    let lab = Lab::new().expect("lab");
    let router = lab.netns("gobgp").expect("ns");
    let node = lab.netns("bird").expect("ns");
    let v = lab.veth(&router, &node).expect("veth");
    router.add_addr(&v.a, net("10.91.0.1/24")).expect("addr");
    node.add_addr(&v.b, net("10.91.0.2/24")).expect("addr");
    let mut n = GobgpNeighbor::new(ip("10.91.0.2"), 65001);
    n.hold_time = Some(3);
    n.keepalive = Some(1);
    let g = Gobgpd::start(
        &router,
        &GobgpConfig::new(65000, "10.91.0.1".parse().unwrap()).neighbor(n),
    )
    .expect("gobgpd");
    let mut b = BirdBgp::new("gobgp", 65001, ip("10.91.0.1"), 65000);
    b.hold_time = Some(3);
    let bird =
        Bird::start(&node, &BirdConfig::new("10.91.0.2".parse().unwrap()).bgp(b)).expect("bird");
    g.wait_established(ip("10.91.0.2"), T).expect("established");
    bird.proc().signal(Signal::SIGSTOP).expect("SIGSTOP");
    let t0 = Instant::now();
    g.wait_for("session drops", Duration::from_secs(15), |s| {
        s.neighbor(ip("10.91.0.2"))
            .is_some_and(|n| !n.is_established())
    })
    .expect("hold timer expires");
    let dropped = t0.elapsed();
    assert!(
        dropped >= Duration::from_secs(1) && dropped < Duration::from_secs(10),
        "{dropped:?}"
    );
    eprintln!(
        "measured: silent peer dropped after {:.2}s (hold 3s)",
        dropped.as_secs_f64()
    );
}

#[test]
fn bogus_binary_path_is_named_in_the_error() {
    if skip() {
        return;
    }
    let lab = Lab::new().expect("lab");
    let ns = lab.netns("err").expect("ns");
    let mut gcfg = GobgpConfig::new(65000, "10.0.0.1".parse().unwrap());
    gcfg.gobgpd_bin = "/nonexistent/ferrolb/gobgpd".into();
    let err = Gobgpd::start(&ns, &gcfg).expect_err("no such binary");
    assert!(matches!(err, Error::MissingBinary { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/ferrolb/gobgpd"),
        "{err}"
    );
    let mut bcfg = BirdConfig::new("10.0.0.1".parse().unwrap());
    bcfg.bird_bin = "/nonexistent/ferrolb/bird".into();
    let err = Bird::start(&ns, &bcfg).expect_err("no such binary");
    assert!(
        err.to_string().contains("/nonexistent/ferrolb/bird"),
        "{err}"
    );
    let err = ns
        .spawn("/nonexistent/ferrolb/x", &["a"])
        .expect_err("no such binary");
    assert!(err.to_string().contains("/nonexistent/ferrolb/x"), "{err}");
}

#[test]
fn broken_configs_fail_fast_with_the_daemons_message() {
    if skip() {
        return;
    }
    let lab = Lab::new().expect("lab");
    let ns = lab.netns("err").expect("ns");

    let mut bcfg = BirdConfig::new("10.0.0.1".parse().unwrap());
    bcfg.extra = "this is not bird syntax;".into();
    let t0 = Instant::now();
    let err = Bird::start(&ns, &bcfg).expect_err("broken config");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let msg = err.to_string();
    assert!(matches!(err, Error::DaemonExited { .. }), "{msg}");
    assert!(
        msg.contains("syntax error") && msg.contains("bird"),
        "{msg}"
    );
    eprintln!("bird error: {msg}");

    let mut gcfg = GobgpConfig::new(65000, "10.0.0.1".parse().unwrap());
    gcfg.extra_toml = "[[[ not toml".into();
    let t0 = Instant::now();
    let err = Gobgpd::start(&ns, &gcfg).expect_err("broken config");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let msg = err.to_string();
    assert!(matches!(err, Error::DaemonExited { .. }), "{msg}");
    assert!(msg.contains("gobgpd") && msg.contains("log tail"), "{msg}");
    assert!(
        msg.to_lowercase().contains("toml") || msg.contains("config"),
        "{msg}"
    );
    eprintln!("gobgpd error: {msg}");
}

#[test]
fn bird_kernel_protocol_installs_ecmp_route_from_two_peers() {
    if skip() {
        return;
    }
    let lab = Lab::new().expect("lab");
    let router = lab.netns("router").expect("ns");
    let sw = lab.netns("lan").expect("ns");
    let br = lab.bridge(&sw).expect("bridge");
    let rp = lab.connect(&router, &sw, &br).expect("port");
    router.add_addr(&rp.a, net("10.92.0.1/24")).expect("addr");
    let mut cfg = BirdConfig::new("10.92.0.1".parse().unwrap());
    cfg.kernel = Some(BirdKernel {
        families: vec![Family::V4],
        merge_paths: true,
        ..BirdKernel::default()
    });
    let mut speakers = Vec::new();
    for i in 2..=3u8 {
        let ns = lab.netns(&format!("node{i}")).expect("ns");
        let p = lab.connect(&ns, &sw, &br).expect("port");
        let addr = format!("10.92.0.{i}");
        ns.add_addr(&p.a, net(&format!("{addr}/24"))).expect("addr");
        let mut bgp = BirdBgp::new(&format!("node{i}"), 65000, ip(&addr), 65001);
        bgp.passive = true;
        bgp.ipv4 = Some(BirdChannel {
            import: "all".into(),
            export: "none".into(),
            extra: vec![],
        });
        cfg.bgp.push(bgp);
        // Each node is a gobgpd that connects out (passive on the router side instead).
        let mut n = GobgpNeighbor::new(ip("10.92.0.1"), 65000);
        n.passive = false;
        n.families = vec![Family::V4];
        let g = Gobgpd::start(
            &ns,
            &GobgpConfig::new(65001, addr.parse().unwrap()).neighbor(n),
        )
        .expect("gobgpd");
        g.announce(net("10.210.0.1/32"), ip(&addr), &[])
            .expect("announce");
        speakers.push(g);
    }
    let bird = Bird::start(&router, &cfg).expect("bird");
    // gobgpd's first outgoing connect waits 5-10 s.
    for i in 2..=3 {
        bird.wait_established(&format!("node{i}"), T)
            .expect("established");
    }
    let route = wait_for("ECMP kernel route with 2 next hops", T, || {
        Ok(router
            .routes(Family::V4)?
            .into_iter()
            .find(|r| r.dst == net("10.210.0.1/32") && r.nexthops.len() == 2))
    })
    .expect("ecmp route in the kernel");
    let mut gws = route.gateways();
    gws.sort();
    assert_eq!(gws, vec![ip("10.92.0.2"), ip("10.92.0.3")]);
    assert_eq!(route.protocol.as_deref(), Some("bird"));
    let rib = bird.routes().expect("routes");
    assert_eq!(
        find_route(&rib, net("10.210.0.1/32"))
            .expect("in bird")
            .paths
            .len(),
        2
    );
}
