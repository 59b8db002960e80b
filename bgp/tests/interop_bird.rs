//! Interop with a real BIRD 2.0 in a network namespace.

mod interop_support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_bgp::fsm::State;
use ferrolb_bgp::session::{PeerConfig, PeerSelector, RouteSpec, Speaker, SpeakerConfig};
use ferrolb_netns::{Bird, BirdBgp, BirdConfig, Community, Signal};
use interop_support::{NsRuntime, Pair, root_or_skip, tagged_attributes, wait_state};
use ipnet::IpNet;

const BIRD_AS: u32 = 64512;
const OUR_AS: u32 = 64522;
const WAIT: Duration = Duration::from_secs(15);

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

fn bird_peer(pair: &Pair, passive: bool) -> BirdBgp {
    let mut b = BirdBgp::new("node", BIRD_AS, IpAddr::V4(pair.node_v4), OUR_AS);
    b.passive = passive;
    b.hold_time = Some(3);
    b.connect_retry = Some(1);
    // Without this BIRD refuses the peer for 60 s after a session error.
    b.extra.push("error wait time 1, 5;".into());
    b
}

#[test]
fn ebgp_routes_reach_bird_and_graceful_stop_drops_them() {
    if !root_or_skip() {
        return;
    }
    let pair = Pair::new();
    let bird = Bird::start(
        &pair.peer,
        &BirdConfig::new(pair.peer_v4).bgp(bird_peer(&pair, true)),
    )
    .expect("bird");
    let rt = NsRuntime::new(&pair.node);
    let peer_ip = IpAddr::V4(pair.peer_v4);
    let speaker = rt.run(async move {
        let (speaker, mut events) =
            Speaker::new(SpeakerConfig::new("10.0.0.2".parse().unwrap())).expect("speaker");
        let mut routes = BTreeMap::new();
        routes.insert(
            net("172.17.254.1/32"),
            RouteSpec::self_next_hop(tagged_attributes(OUR_AS)),
        );
        speaker
            .set_desired(PeerSelector::All, routes)
            .expect("desired");
        speaker
            .add_peer(PeerConfig::new(peer_ip, OUR_AS, BIRD_AS))
            .expect("add");
        wait_state(&mut events, peer_ip, State::Established, WAIT)
            .await
            .expect("established");
        speaker
    });
    let r = bird
        .wait_route(net("172.17.254.1/32"), Some("node"), WAIT)
        .expect("route in BIRD");
    let p = r.paths.first().expect("path");
    assert_eq!(p.as_path, vec![OUR_AS]);
    assert_eq!(p.next_hops, vec![IpAddr::V4(pair.node_v4)]);
    assert!(
        p.communities.contains(&Community::new(OUR_AS as u16, 100)),
        "{p:?}"
    );

    // An announcement on the live session goes out as a diff.
    let s2 = speaker.clone();
    rt.run(async move {
        s2.announce(
            PeerSelector::All,
            net("172.17.254.3/32"),
            RouteSpec::self_next_hop(tagged_attributes(OUR_AS)),
        )
    })
    .expect("announce");
    bird.wait_route(net("172.17.254.3/32"), Some("node"), WAIT)
        .expect("second route");

    let s2 = speaker.clone();
    let t = Instant::now();
    rt.run(async move { s2.shutdown(Some("bye")).await });
    bird.wait_for("routes dropped", Duration::from_secs(1), |s| {
        s.route(net("172.17.254.1/32")).is_none() && s.route(net("172.17.254.3/32")).is_none()
    })
    .expect("BIRD dropped our routes within 1 s of the Cease");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn silent_peer_is_declared_down_after_hold_time_and_session_recovers() {
    if !root_or_skip() {
        return;
    }
    let pair = Pair::new();
    let bird = Bird::start(
        &pair.peer,
        &BirdConfig::new(pair.peer_v4).bgp(bird_peer(&pair, true)),
    )
    .expect("bird");
    let rt = NsRuntime::new(&pair.node);
    let peer_ip = IpAddr::V4(pair.peer_v4);
    let (speaker, mut events) = rt.run(async move {
        let (speaker, mut events) =
            Speaker::new(SpeakerConfig::new("10.0.0.2".parse().unwrap())).expect("speaker");
        let mut cfg = PeerConfig::new(peer_ip, OUR_AS, BIRD_AS);
        cfg.hold_time = 3;
        speaker.add_peer(cfg).expect("add");
        wait_state(&mut events, peer_ip, State::Established, WAIT)
            .await
            .expect("established");
        (speaker, events)
    });

    bird.proc().signal(Signal::SIGSTOP).expect("SIGSTOP");
    let frozen = Instant::now();
    let (reason, events) = rt.run(async move {
        let r = wait_state(&mut events, peer_ip, State::Active, Duration::from_secs(8)).await;
        (r, events)
    });
    let mut events = events;
    let took = frozen.elapsed();
    let reason = reason.expect("declared down");
    assert_eq!(reason.as_deref(), Some("hold timer expired"));
    // Hold time 3 s; the last KEEPALIVE before the freeze may have been up to 1 s old.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(4500),
        "{took:?}"
    );
    assert_ne!(speaker.peer_status()[0].state, State::Established);

    bird.proc().signal(Signal::SIGCONT).expect("SIGCONT");
    rt.run(async move {
        wait_state(
            &mut events,
            peer_ip,
            State::Established,
            Duration::from_secs(20),
        )
        .await
        .expect("session came back by itself");
    });
    let status = speaker.peer_status();
    assert_eq!(status[0].state, State::Established);
    let s2 = speaker.clone();
    rt.run(async move { s2.shutdown(None).await });
}

#[test]
fn passive_speaker_accepts_birds_connection_on_its_listener() {
    if !root_or_skip() {
        return;
    }
    let pair = Pair::new();
    let rt = NsRuntime::new(&pair.node);
    let peer_ip = IpAddr::V4(pair.peer_v4);
    let (speaker, mut events) = rt.run(async move {
        let listen = Some(SocketAddr::new("::".parse().unwrap(), 179));
        let (speaker, events) = Speaker::new(SpeakerConfig {
            router_id: "10.0.0.2".parse().unwrap(),
            listen,
        })
        .expect("speaker");
        let mut routes = BTreeMap::new();
        routes.insert(
            net("172.17.254.5/32"),
            RouteSpec::self_next_hop(tagged_attributes(OUR_AS)),
        );
        speaker
            .set_desired(PeerSelector::All, routes)
            .expect("desired");
        let mut cfg = PeerConfig::new(peer_ip, OUR_AS, BIRD_AS);
        cfg.passive = true;
        speaker.add_peer(cfg).expect("add");
        (speaker, events)
    });
    let bird = Bird::start(
        &pair.peer,
        &BirdConfig::new(pair.peer_v4).bgp(bird_peer(&pair, false)),
    )
    .expect("bird");
    rt.run(async move {
        wait_state(&mut events, peer_ip, State::Established, WAIT)
            .await
            .expect("established");
    });
    let r = bird
        .wait_route(net("172.17.254.5/32"), Some("node"), WAIT)
        .expect("route");
    assert_eq!(r.paths[0].next_hops, vec![IpAddr::V4(pair.node_v4)]);
    let local = speaker.peer_status()[0]
        .local_address
        .expect("local address");
    assert_eq!(local.port(), 179, "the session is the inbound one");
    let s2 = speaker.clone();
    rt.run(async move { s2.shutdown(None).await });
}
