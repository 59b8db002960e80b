//! BFD wired to BGP (RFC 5882) against real routers in network namespaces: BIRD 2.0.12
//! (`protocol bfd` + `bfd on`) and FRR 8.4 (bgpd + bfdd + zebra, `neighbor X bfd profile`).
//!
//! Topology: the router's namespace holds a bridge (10.0.0.1/24, fd00::1/64) with two ports,
//! the node's veth and a spare namespace's veth, so the router's interface stays up when the
//! node's link goes down: the node is *silent* (no FIN, no RST, no carrier change at the
//! router), as when a machine loses power. Our speaker and BFD run in the node namespace.

mod interop_support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ferrolb_bgp::bfd::session::SessionConfig;
use ferrolb_bgp::bfd::{Bfd, BfdConfig, PeerSpec, SessionState, link_to_bgp};
use ferrolb_bgp::fsm::State;
use ferrolb_bgp::session::{
    PeerConfig, PeerSelector, RouteSpec, Speaker, SpeakerConfig, SpeakerEvent,
};
use ferrolb_netns::{Bird, BirdBgp, BirdConfig, Frr, FrrConfig, Lab, Netns};
use interop_support::{NsRuntime, root_or_skip, tagged_attributes};
use ipnet::IpNet;
use tokio::sync::mpsc::UnboundedReceiver;

const ROUTER_AS: u32 = 64512;
const OUR_AS: u32 = 64522;
const ROUTER: &str = "10.0.0.1";
const NODE: &str = "10.0.0.2";
const PREFIX: &str = "172.17.254.1/32";
const TX_MS: u64 = 200;
const MULT: u8 = 3;
const DETECT: Duration = Duration::from_millis(TX_MS * MULT as u64);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

struct Topo {
    _lab: Lab,
    router: Netns,
    node: Netns,
    _spare: Netns,
    node_if: String,
}

impl Topo {
    fn new() -> Topo {
        let lab = Lab::new().expect("lab");
        let router = lab.netns("rt").expect("rt");
        let node = lab.netns("node").expect("node");
        let spare = lab.netns("spare").expect("spare");
        let br = lab.bridge(&router).expect("bridge");
        let n = lab.connect(&node, &router, &br).expect("node port");
        lab.connect(&spare, &router, &br).expect("spare port");
        router
            .ip(&["addr", "add", "10.0.0.1/24", "dev", &br])
            .expect("addr");
        router
            .ip(&["addr", "add", "fd00::1/64", "dev", &br, "nodad"])
            .expect("addr6");
        node.ip(&["addr", "add", "10.0.0.2/24", "dev", &n.a])
            .expect("addr");
        // Linux drops IPv6 addresses when a link goes down unless told to keep them.
        node.run(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{}.keep_addr_on_down=1", n.a)],
        )
        .expect("sysctl");
        node.ip(&["addr", "add", "fd00::2/64", "dev", &n.a, "nodad"])
            .expect("addr6");
        Topo {
            _lab: lab,
            router,
            node,
            _spare: spare,
            node_if: n.a,
        }
    }

    fn node_link(&self, up: bool) {
        self.node.set_link(&self.node_if, up).expect("link");
    }
}

/// Our side: a BGP speaker announcing one /32 to the router, a BFD engine, and the link.
struct Node {
    speaker: Speaker,
    bfd: Bfd,
    bgp_events: UnboundedReceiver<SpeakerEvent>,
}

fn start_node(rt: &NsRuntime, router: &str, timers: SessionConfig) -> Node {
    let router = ip(router);
    rt.run(async move {
        let (speaker, bgp_events) =
            Speaker::new(SpeakerConfig::new(Ipv4Addr::new(10, 0, 0, 2))).expect("speaker");
        let mut routes = BTreeMap::new();
        routes.insert(
            PREFIX.parse::<IpNet>().unwrap(),
            RouteSpec::self_next_hop(tagged_attributes(OUR_AS)),
        );
        speaker
            .set_desired(PeerSelector::All, routes)
            .expect("desired");
        speaker
            .add_peer(PeerConfig::new(router, OUR_AS, ROUTER_AS))
            .expect("peer");
        let (bfd, bfd_events) = Bfd::new(BfdConfig::default()).expect("bfd");
        // The link gets the events; the test reads states from the status.
        link_to_bgp(speaker.clone(), bfd_events);
        bfd.set_peer(PeerSpec {
            session: timers,
            ..PeerSpec::single_hop(router)
        })
        .expect("bfd peer");
        Node {
            speaker,
            bfd,
            bgp_events,
        }
    })
}

fn timers() -> SessionConfig {
    SessionConfig {
        desired_min_tx: Duration::from_millis(TX_MS),
        required_min_rx: Duration::from_millis(TX_MS),
        detect_mult: MULT,
        ..SessionConfig::default()
    }
}

fn bird_conf(bfd: bool) -> BirdConfig {
    let mut b = BirdBgp::new("node", ROUTER_AS, ip(NODE), OUR_AS);
    b.passive = true;
    // Without this BIRD refuses the peer for 60 s after a BFD-triggered down.
    b.extra.push("error wait time 1, 10;".into());
    let mut cfg = BirdConfig::new(ROUTER.parse().unwrap());
    if bfd {
        b.extra.push("bfd on;".into());
        cfg.extra = format!(
            "protocol bfd {{ interface \"*\" {{ min rx interval {TX_MS} ms; min tx interval {TX_MS} ms; multiplier {MULT}; }}; }}"
        );
    }
    cfg.bgp(b)
}

fn frr_conf(peer: &str, multihop: bool) -> FrrConfig {
    let mh = if multihop {
        format!(" neighbor {peer} ebgp-multihop 2\n neighbor {peer} update-source 10.9.0.1\n")
    } else {
        String::new()
    };
    let bgpd = format!(
        "frr defaults traditional\nhostname rt\n!\nrouter bgp {ROUTER_AS}\n bgp router-id {ROUTER}\n \
         no bgp ebgp-requires-policy\n neighbor {peer} remote-as {OUR_AS}\n neighbor {peer} passive\n{mh} \
         neighbor {peer} bfd profile fast\n!\n"
    );
    let bfdd = format!(
        "bfd\n profile fast\n  receive-interval {TX_MS}\n  transmit-interval {TX_MS}\n  detect-multiplier {MULT}\n !\n!\n"
    );
    FrrConfig::new(Some(bgpd), Some(bfdd))
}

/// Waits for `peer` to reach `to`; returns how long it took and the reason.
fn wait_bgp(
    rt: &NsRuntime,
    node: &mut Node,
    peer: &str,
    to: State,
    timeout: Duration,
) -> (Duration, Option<String>) {
    let peer = ip(peer);
    let mut events = std::mem::replace(
        &mut node.bgp_events,
        tokio::sync::mpsc::unbounded_channel().1,
    );
    let (r, events) = rt.run(async move {
        let start = Instant::now();
        let r = interop_support::wait_state(&mut events, peer, to, timeout).await;
        (r.map(|reason| (start.elapsed(), reason)), events)
    });
    node.bgp_events = events;
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn bfd_state(node: &Node, peer: &str) -> Option<SessionState> {
    node.bfd.session(ip(peer)).map(|s| s.state)
}

fn wait_bfd_up(node: &Node, peer: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while bfd_state(node, peer) != Some(SessionState::Up)
        || node
            .bfd
            .session(ip(peer))
            .is_some_and(|s| s.negotiated.polling)
    {
        assert!(
            Instant::now() < deadline,
            "BFD to {peer} not Up: {:?}, drops {:?}",
            node.bfd.session(ip(peer)),
            node.bfd.drops()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sets the node's link down and waits for our BGP session to go down because of BFD;
/// returns how long that took.
fn silent_node_takes_bgp_down(
    topo: &Topo,
    rt: &NsRuntime,
    node: &mut Node,
    peer: &str,
) -> Duration {
    topo.node_link(false);
    let (took, reason) = wait_bgp(rt, node, peer, State::Active, Duration::from_secs(5));
    assert!(
        reason.as_deref().is_some_and(|r| r.starts_with("BFD down")),
        "{reason:?}"
    );
    took
}

/// Polls the speaker's status (leaving the events alone) until the session is Established.
fn wait_established_status(node: &Node, timeout: Duration) {
    time_until("BGP Established", timeout, || {
        node.speaker
            .peer_status()
            .first()
            .is_some_and(|p| p.state == State::Established)
    });
}

/// Drains the BGP events seen so far; returns the state changes.
fn bgp_changes(rt: &NsRuntime, node: &mut Node) -> Vec<(State, State, Option<String>)> {
    let mut events = std::mem::replace(
        &mut node.bgp_events,
        tokio::sync::mpsc::unbounded_channel().1,
    );
    let (out, events) = rt.run(async move {
        let mut out = Vec::new();
        while let Ok(ev) = events.try_recv() {
            if let SpeakerEvent::PeerStateChanged {
                from, to, reason, ..
            } = ev
            {
                out.push((from, to, reason));
            }
        }
        (out, events)
    });
    node.bgp_events = events;
    out
}

fn shutdown(rt: &NsRuntime, node: Node) {
    rt.run(async move {
        node.bfd.shutdown().await;
        node.speaker.shutdown(None).await;
    });
}

fn bird_route(bird: &Bird) -> bool {
    bird.routes()
        .map(|r| ferrolb_netns::find_route(&r, PREFIX.parse().unwrap()).is_some())
        .unwrap_or(false)
}

/// Polls `probe` until it returns true; how long that took.
fn time_until(what: &str, timeout: Duration, mut probe: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !probe() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// The topology, a BIRD router (with or without BFD) and our node, BGP Established (and
/// BFD Up when BIRD runs it).
fn with_bird(bfd: bool) -> (Topo, Bird, NsRuntime, Node) {
    let topo = Topo::new();
    let bird = Bird::start(&topo.router, &bird_conf(bfd)).expect("bird");
    let rt = NsRuntime::new(&topo.node);
    let mut node = start_node(&rt, ROUTER, timers());
    wait_bgp(
        &rt,
        &mut node,
        ROUTER,
        State::Established,
        Duration::from_secs(20),
    );
    if bfd {
        wait_bfd_up(&node, ROUTER, Duration::from_secs(10));
    }
    (topo, bird, rt, node)
}

#[test]
fn bird_silent_node_tears_bgp_down_within_the_detect_time_and_recovers() {
    if !root_or_skip() {
        return;
    }
    let (topo, bird, rt, mut node) = with_bird(true);
    let s = node.bfd.session(ip(ROUTER)).unwrap();
    assert_eq!(
        s.negotiated.transmit_interval,
        Some(Duration::from_millis(TX_MS))
    );
    assert_eq!(s.negotiated.detect_time, Some(DETECT));
    let b = bird.bfd_sessions().expect("bird bfd");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].state, "Up");
    assert!((b[0].timeout - DETECT.as_secs_f64()).abs() < 1e-6, "{b:?}");
    time_until("route in BIRD", Duration::from_secs(10), || {
        bird_route(&bird)
    });
    bgp_changes(&rt, &mut node);

    // Silent node: both sides notice within the detect time (the last packet before the
    // cut left at most one interval earlier, and the timers have a few ms of slack).
    let cut = Instant::now();
    let ours = silent_node_takes_bgp_down(&topo, &rt, &mut node, ROUTER);
    assert!(
        ours >= DETECT / 2 && ours <= DETECT + Duration::from_millis(250),
        "ours {ours:?}"
    );
    let theirs = cut.elapsed()
        + time_until("BIRD dropped the route", Duration::from_secs(5), || {
            !bird_route(&bird)
        });
    assert!(
        theirs <= DETECT + Duration::from_millis(400),
        "BIRD took {theirs:?}"
    );
    eprintln!("silent node: our BGP down after {ours:?}, BIRD's route gone after {theirs:?}");
    let st = node.bfd.session(ip(ROUTER)).unwrap();
    assert_eq!(st.session_down_events, 1);
    assert_eq!(
        st.last_down_reason.as_deref(),
        Some("control detection time expired")
    );

    // The link comes back: BFD and BGP come up again by themselves, the route is back.
    topo.node_link(true);
    wait_bfd_up(&node, ROUTER, Duration::from_secs(10));
    wait_bgp(
        &rt,
        &mut node,
        ROUTER,
        State::Established,
        Duration::from_secs(30),
    );
    time_until("route back in BIRD", Duration::from_secs(10), || {
        bird_route(&bird)
    });
    shutdown(&rt, node);
}

#[test]
fn bird_bfd_flaps_cause_no_storm() {
    if !root_or_skip() {
        return;
    }
    let (topo, bird, rt, mut node) = with_bird(true);
    bgp_changes(&rt, &mut node);

    // A blip shorter than the detect time: nothing happens at all.
    topo.node_link(false);
    std::thread::sleep(DETECT / 4);
    topo.node_link(true);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        bgp_changes(&rt, &mut node).is_empty(),
        "a blip must not touch BGP"
    );
    assert_eq!(node.bfd.session(ip(ROUTER)).unwrap().session_down_events, 0);

    // Three real flaps: each takes BGP down once and brings it back once.
    const FLAPS: u64 = 3;
    for _ in 0..FLAPS {
        topo.node_link(false);
        std::thread::sleep(DETECT * 3);
        topo.node_link(true);
        wait_bfd_up(&node, ROUTER, Duration::from_secs(10));
        wait_established_status(&node, Duration::from_secs(30));
    }
    std::thread::sleep(Duration::from_secs(2));
    let changes = bgp_changes(&rt, &mut node);
    eprintln!(
        "{} BGP state changes over {FLAPS} flaps: {changes:?}",
        changes.len()
    );
    let downs: Vec<_> = changes
        .iter()
        .filter(|(f, _, _)| *f == State::Established)
        .collect();
    assert_eq!(downs.len() as u64, FLAPS, "{changes:?}");
    assert!(
        downs
            .iter()
            .all(|(_, _, r)| r.as_deref().is_some_and(|r| r.starts_with("BFD down"))),
        "{downs:?}"
    );
    let ups = changes
        .iter()
        .filter(|(_, t, _)| *t == State::Established)
        .count();
    assert_eq!(ups as u64, FLAPS, "{changes:?}");
    // Bounded: per flap the down, the way back up, and a few Connect/Active steps of the
    // back-off while the link was down.
    assert!(
        changes.len() as u64 <= FLAPS * 10,
        "{} changes: {changes:?}",
        changes.len()
    );
    let s = node.bfd.session(ip(ROUTER)).unwrap();
    assert_eq!(s.session_down_events, FLAPS);
    assert_eq!(s.session_up_events, FLAPS + 1);
    assert_eq!(s.state, SessionState::Up);
    assert!(
        bird.wait_established("node", Duration::from_secs(10))
            .is_ok()
    );
    shutdown(&rt, node);
}

#[test]
fn bird_without_bfd_leaves_bgp_as_it_is() {
    if !root_or_skip() {
        return;
    }
    let (_topo, _bird, rt, mut node) = with_bird(false);
    // BFD never hears back: it stays Down and BGP stays up.
    std::thread::sleep(Duration::from_secs(4));
    let s = node.bfd.session(ip(ROUTER)).unwrap();
    assert_eq!(s.state, SessionState::Down);
    assert_eq!(s.control_packets_in, 0);
    assert!(
        s.control_packets_out >= 3,
        "we keep trying at the slow rate: {s:?}"
    );
    assert!(bgp_changes(&rt, &mut node).is_empty());
    assert_eq!(node.speaker.peer_status()[0].state, State::Established);
    shutdown(&rt, node);
}

#[test]
fn bird_over_ipv6() {
    if !root_or_skip() {
        return;
    }
    let topo = Topo::new();
    let mut b = BirdBgp::new("node6", ROUTER_AS, ip("fd00::2"), OUR_AS);
    b.passive = true;
    b.extra.push("bfd on;".into());
    let mut cfg = BirdConfig::new(ROUTER.parse().unwrap());
    cfg.extra = format!(
        "protocol bfd {{ interface \"*\" {{ interval {TX_MS} ms; multiplier {MULT}; }}; }}"
    );
    let bird = Bird::start(&topo.router, &cfg.bgp(b)).expect("bird");
    let rt = NsRuntime::new(&topo.node);
    let mut node = start_node(&rt, "fd00::1", timers());
    wait_bgp(
        &rt,
        &mut node,
        "fd00::1",
        State::Established,
        Duration::from_secs(20),
    );
    wait_bfd_up(&node, "fd00::1", Duration::from_secs(10));
    let b = bird.bfd_sessions().expect("bird bfd");
    assert_eq!(b[0].address, ip("fd00::2"));
    assert_eq!(b[0].state, "Up");
    let took = silent_node_takes_bgp_down(&topo, &rt, &mut node, "fd00::1");
    assert!(took <= DETECT + Duration::from_millis(250), "{took:?}");
    topo.node_link(true);
    wait_bfd_up(&node, "fd00::1", Duration::from_secs(10));
    shutdown(&rt, node);
}

/// FRR's zebra, bgpd and bfdd are installed (else the FRR tests skip, saying so).
fn frr_available() -> bool {
    let ok = ["zebra", "bgpd", "bfdd"]
        .iter()
        .all(|d| std::path::Path::new("/usr/lib/frr").join(d).exists());
    if !ok {
        eprintln!("skipping: FRR (zebra, bgpd, bfdd) not installed");
    }
    ok
}

#[test]
fn frr_silent_node_admin_down_and_recovery() {
    if !root_or_skip() || !frr_available() {
        return;
    }
    let topo = Topo::new();
    let frr = Frr::start(&topo.router, &frr_conf(NODE, false)).expect("frr");
    let rt = NsRuntime::new(&topo.node);
    let mut node = start_node(&rt, ROUTER, timers());
    wait_bgp(
        &rt,
        &mut node,
        ROUTER,
        State::Established,
        Duration::from_secs(20),
    );
    wait_bfd_up(&node, ROUTER, Duration::from_secs(15));
    let peers = frr
        .wait_bfd("session up", Duration::from_secs(10), |p| {
            p.iter().any(|x| x.status == "up")
        })
        .expect("frr bfd up");
    let p = &peers[0];
    assert_eq!(p.peer, ip(NODE));
    assert_eq!((p.transmit_interval, p.receive_interval), (TX_MS, TX_MS));
    assert_eq!(p.remote_detect_multiplier, u64::from(MULT));
    time_until("route in FRR", Duration::from_secs(10), || {
        frr.bgp_prefixes()
            .is_ok_and(|p| p.contains(&PREFIX.to_string()))
    });

    // FRR holds its BFD session administratively down: that is no failure, BGP stays up.
    bgp_changes(&rt, &mut node);
    frr.vtysh(&["configure terminal", "bfd", "profile fast", "shutdown"])
        .expect("shutdown");
    time_until("our BFD sees AdminDown", Duration::from_secs(5), || {
        node.bfd.session(ip(ROUTER)).is_some_and(|s| {
            s.state == SessionState::Down && s.remote_state == SessionState::AdminDown
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        bgp_changes(&rt, &mut node).is_empty(),
        "AdminDown must not touch BGP"
    );
    assert_eq!(node.speaker.peer_status()[0].state, State::Established);
    frr.vtysh(&["configure terminal", "bfd", "profile fast", "no shutdown"])
        .expect("no shutdown");
    wait_bfd_up(&node, ROUTER, Duration::from_secs(10));

    // Silent node.
    let cut = Instant::now();
    let ours = silent_node_takes_bgp_down(&topo, &rt, &mut node, ROUTER);
    assert!(ours <= DETECT + Duration::from_millis(250), "ours {ours:?}");
    time_until("FRR's BGP session down", Duration::from_secs(5), || {
        frr.bgp_states()
            .is_ok_and(|s| s.get(&ip(NODE)).is_some_and(|st| st != "Established"))
    });
    let theirs = cut.elapsed();
    assert!(
        theirs <= DETECT + Duration::from_millis(500),
        "FRR took {theirs:?}"
    );
    eprintln!("FRR: our BGP down after {ours:?}, FRR's after {theirs:?}");

    topo.node_link(true);
    wait_bfd_up(&node, ROUTER, Duration::from_secs(15));
    wait_bgp(
        &rt,
        &mut node,
        ROUTER,
        State::Established,
        Duration::from_secs(40),
    );
    time_until("route back in FRR", Duration::from_secs(10), || {
        frr.bgp_prefixes()
            .is_ok_and(|p| p.contains(&PREFIX.to_string()))
    });
    shutdown(&rt, node);
}

#[test]
fn frr_multihop_ebgp() {
    if !root_or_skip() || !frr_available() {
        return;
    }
    // BGP and BFD between loopback addresses, one routed hop apart: RFC 5883 on port 4784.
    let topo = Topo::new();
    topo.router
        .ip(&["addr", "add", "10.9.0.1/32", "dev", "lo"])
        .expect("lo");
    topo.node
        .ip(&["addr", "add", "10.9.0.2/32", "dev", "lo"])
        .expect("lo");
    topo.router
        .ip(&["route", "add", "10.9.0.2/32", "via", NODE])
        .expect("route");
    topo.node
        .ip(&["route", "add", "10.9.0.1/32", "via", ROUTER])
        .expect("route");
    let frr = Frr::start(&topo.router, &frr_conf("10.9.0.2", true)).expect("frr");
    let rt = NsRuntime::new(&topo.node);
    let peer = ip("10.9.0.1");
    let mut node = rt.run(async move {
        let (speaker, bgp_events) =
            Speaker::new(SpeakerConfig::new(Ipv4Addr::new(10, 9, 0, 2))).expect("speaker");
        let mut pc = PeerConfig::new(peer, OUR_AS, ROUTER_AS);
        pc.ebgp_multihop = true;
        pc.source_address = Some("10.9.0.2".parse().unwrap());
        speaker.add_peer(pc).expect("peer");
        let (bfd, bfd_events) = Bfd::new(BfdConfig::default()).expect("bfd");
        link_to_bgp(speaker.clone(), bfd_events);
        bfd.set_peer(PeerSpec {
            local: Some("10.9.0.2".parse().unwrap()),
            multihop: true,
            session: timers(),
            ..PeerSpec::single_hop(peer)
        })
        .expect("bfd peer");
        Node {
            speaker,
            bfd,
            bgp_events,
        }
    });
    wait_bgp(
        &rt,
        &mut node,
        "10.9.0.1",
        State::Established,
        Duration::from_secs(20),
    );
    wait_bfd_up(&node, "10.9.0.1", Duration::from_secs(15));
    let peers = frr
        .wait_bfd("multihop up", Duration::from_secs(10), |p| {
            p.iter().any(|x| x.status == "up" && x.multihop)
        })
        .expect("frr multihop bfd");
    assert_eq!(peers[0].peer, ip("10.9.0.2"));
    assert!(node.bfd.session(peer).unwrap().multihop);
    assert_eq!(
        node.bfd.receiver_addr(false, true).map(|a| a.port()),
        Some(4784)
    );
    let took = silent_node_takes_bgp_down(&topo, &rt, &mut node, "10.9.0.1");
    assert!(took <= DETECT + Duration::from_millis(250), "{took:?}");
    topo.node_link(true);
    shutdown(&rt, node);
}
