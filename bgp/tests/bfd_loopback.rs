//! The BFD engine on real UDP sockets over loopback, no root needed: two of our engines
//! (127.0.0.1 and 127.0.0.2, each listening on a port of its own) or one engine and a
//! scripted peer that sends exactly the packets a test wants (with any TTL).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ferrolb_bgp::bfd::session::SessionConfig;
use ferrolb_bgp::bfd::{
    Bfd, BfdConfig, BfdEvent, ControlPacket, Diag, PeerSpec, SessionState, SessionStatus,
    is_failure,
};
use tokio::sync::mpsc::UnboundedReceiver;

const A: &str = "127.0.0.1";
const B: &str = "127.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn engine(addr: &str) -> (Bfd, UnboundedReceiver<BfdEvent>, SocketAddr) {
    let IpAddr::V4(v4) = ip(addr) else {
        panic!("v4")
    };
    let (bfd, events) = Bfd::new(BfdConfig {
        single_hop_port: 0,
        multihop_port: 0,
        listen_v4: v4,
        ..BfdConfig::default()
    })
    .expect("engine");
    let at = bfd.listen(false, false).expect("listen");
    (bfd, events, at)
}

fn spec(peer: &str, local: &str, port: u16, tx: u64, mult: u8) -> PeerSpec {
    PeerSpec {
        local: Some(ip(local)),
        remote_port: Some(port),
        session: SessionConfig {
            desired_min_tx: ms(tx),
            required_min_rx: ms(tx),
            detect_mult: mult,
            ..SessionConfig::default()
        },
        ..PeerSpec::single_hop(ip(peer))
    }
}

async fn wait_status(
    bfd: &Bfd,
    peer: &str,
    what: &str,
    timeout: Duration,
    mut pred: impl FnMut(&SessionStatus) -> bool,
) -> SessionStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = bfd.session(ip(peer))
            && pred(&s)
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not reached within {timeout:?}: {:?}",
            bfd.session(ip(peer))
        );
        tokio::time::sleep(ms(5)).await;
    }
}

async fn up(bfd: &Bfd, peer: &str) -> SessionStatus {
    wait_status(bfd, peer, "Up", Duration::from_secs(5), |s| {
        s.state == SessionState::Up && !s.negotiated.polling
    })
    .await
}

/// The scripted peer sends no more packets after its Up, so the session only has to
/// have been Up once (it times out later).
async fn came_up(bfd: &Bfd) {
    wait_status(bfd, B, "Up once", Duration::from_secs(3), |s| {
        s.session_up_events == 1
    })
    .await;
}

/// Two engines with a session to each other; returns once both are Up.
async fn pair(
    tx: u64,
    mult: u8,
) -> (
    Bfd,
    UnboundedReceiver<BfdEvent>,
    Bfd,
    UnboundedReceiver<BfdEvent>,
    SocketAddr,
    SocketAddr,
) {
    let (a, a_ev, a_at) = engine(A);
    let (b, b_ev, b_at) = engine(B);
    a.set_peer(spec(B, A, b_at.port(), tx, mult)).expect("a");
    b.set_peer(spec(A, B, a_at.port(), tx, mult)).expect("b");
    up(&a, B).await;
    up(&b, A).await;
    (a, a_ev, b, b_ev, a_at, b_at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_come_up_and_negotiate() {
    let (a, mut a_ev, b, _b_ev, _, _) = pair(50, 3).await;
    let s = up(&a, B).await;
    assert_eq!(s.negotiated.transmit_interval, Some(ms(50)));
    assert_eq!(s.negotiated.detect_time, Some(ms(150)));
    assert_eq!(s.remote_state, SessionState::Up);
    assert_ne!(s.remote_discriminator, 0);
    assert_eq!(s.session_up_events, 1);
    let port = s.local_address.expect("local").port();
    assert!((49152..=65535).contains(&port), "source port {port}");
    // A few hundred ms at 50 ms: about 4-7 packets each way per 300 ms, counted.
    let before = a.session(ip(B)).unwrap();
    tokio::time::sleep(ms(300)).await;
    let after = a.session(ip(B)).unwrap();
    let sent = after.control_packets_out - before.control_packets_out;
    let got = after.control_packets_in - before.control_packets_in;
    assert!((4..=9).contains(&sent), "sent {sent} in 300 ms");
    assert!((4..=9).contains(&got), "received {got} in 300 ms");
    assert!(after.uptime.expect("uptime") >= ms(300));
    // The handshake was reported as events.
    let mut seen = Vec::new();
    while let Ok(BfdEvent::StateChanged { transition, .. }) = a_ev.try_recv() {
        seen.push(transition.to);
    }
    assert_eq!(seen.last(), Some(&SessionState::Up), "{seen:?}");
    assert!(a.drops().is_empty(), "{:?}", a.drops());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_is_detected_in_the_detect_time_and_the_session_recovers() {
    let (a, mut a_ev, b, _b_ev, a_at, _) = pair(100, 3).await;
    while a_ev.try_recv().is_ok() {}
    // B's packets now go to a port nobody listens on: A hears nothing.
    b.set_peer(spec(A, B, 9, 100, 3)).expect("redirect");
    let cut = Instant::now();
    let t = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Some(BfdEvent::StateChanged { transition, .. }) = a_ev.recv().await
                && transition.to == SessionState::Down
            {
                return transition;
            }
        }
    })
    .await
    .expect("A declared B down");
    let took = cut.elapsed();
    assert_eq!(t.diag, Diag::ControlDetectionTimeExpired);
    assert!(is_failure(&t));
    // Detect time 300 ms after the last packet, which left at most 100 ms before the cut.
    assert!(took >= ms(150) && took <= ms(600), "{took:?}");
    let s = a.session(ip(B)).unwrap();
    assert_eq!(s.session_down_events, 1);
    assert_eq!(
        s.last_down_reason.as_deref(),
        Some("control detection time expired")
    );
    assert_eq!(
        s.negotiated.transmit_interval,
        Some(Duration::from_secs(1)),
        "slow again"
    );
    // B talks to A again (a fresh session): both come back Up.
    b.set_peer(spec(A, B, a_at.port(), 100, 3)).expect("back");
    up(&a, B).await;
    assert_eq!(a.session(ip(B)).unwrap().session_up_events, 2);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_sends_admin_down_which_is_no_failure() {
    let (a, _a_ev, b, mut b_ev, _, _) = pair(100, 3).await;
    while b_ev.try_recv().is_ok() {}
    a.remove_peer(ip(B));
    assert!(a.session(ip(B)).is_none(), "gone from the status at once");
    let t = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(BfdEvent::StateChanged { transition, .. }) = b_ev.recv().await {
                return transition;
            }
        }
    })
    .await
    .expect("B heard the AdminDown");
    assert_eq!((t.from, t.to), (SessionState::Up, SessionState::Down));
    assert_eq!(t.remote_state, SessionState::AdminDown);
    assert!(!is_failure(&t));
    let s = b.session(ip(A)).unwrap();
    assert_eq!(
        s.last_down_reason.as_deref(),
        Some("neighbor signaled AdminDown")
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_timers_go_through_a_poll_sequence() {
    let (a, _a_ev, b, _b_ev, _, b_at) = pair(300, 3).await;
    let mut faster = spec(B, A, b_at.port(), 50, 3);
    faster.session.required_min_rx = ms(50);
    a.set_peer(faster.clone()).expect("reconfigure");
    let s = wait_status(&a, B, "50 ms acknowledged", Duration::from_secs(3), |s| {
        s.config.desired_min_tx == ms(50) && !s.negotiated.polling
    })
    .await;
    // A wants 50 ms but B's Required Min RX is still 300 ms: A sends at 300 ms.
    assert_eq!(s.negotiated.transmit_interval, Some(ms(300)));
    assert_eq!(s.session_up_events, 1, "no flap");
    // B's detection time for A is now 3 x max(its 300 ms, A's 50 ms) = 900 ms, and A's for
    // B is 3 x max(A's 50 ms, B's 300 ms).
    let sb = wait_status(&b, A, "B saw A's new rx", Duration::from_secs(3), |s| {
        s.negotiated.remote_min_rx == ms(50)
    })
    .await;
    assert_eq!(sb.negotiated.detect_time, Some(ms(900)));
    assert_eq!(sb.negotiated.transmit_interval, Some(ms(300)));
    // The same settings again change nothing.
    a.set_peer(faster).expect("same");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_sessions_wait_for_an_active_peer() {
    let (a, _a_ev, a_at) = engine(A);
    let (b, _b_ev, b_at) = engine(B);
    let mut pa = spec(B, A, b_at.port(), 100, 3);
    pa.session.passive = true;
    let mut pb = spec(A, B, a_at.port(), 100, 3);
    pb.session.passive = true;
    a.set_peer(pa).expect("a");
    b.set_peer(pb.clone()).expect("b");
    tokio::time::sleep(ms(1500)).await;
    for (e, p) in [(&a, B), (&b, A)] {
        let s = e.session(ip(p)).unwrap();
        assert_eq!(s.state, SessionState::Down);
        assert_eq!(s.control_packets_out, 0, "passive sends nothing first");
    }
    pb.session.passive = false;
    b.set_peer(pb).expect("b active");
    up(&a, B).await;
    up(&b, A).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// A peer whose packets the test writes by hand.
struct Scripted {
    sock: UdpSocket,
    to: SocketAddr,
}

impl Scripted {
    fn new(at: &str, to: SocketAddr) -> Scripted {
        let sock = UdpSocket::bind((ip(at), 0)).expect("bind");
        sock.set_read_timeout(Some(ms(2000))).unwrap();
        Scripted { sock, to }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    fn send(&self, bytes: &[u8], ttl: u32) {
        self.sock.set_ttl(ttl).unwrap();
        self.sock.send_to(bytes, self.to).expect("send");
    }

    /// Read the engine's packets until one in `state` (the handshake's next step).
    fn recv_state(&self, state: SessionState) -> ControlPacket {
        tokio::task::block_in_place(|| {
            loop {
                let p = self.recv();
                if p.state == state {
                    break p;
                }
            }
        })
    }

    fn recv(&self) -> ControlPacket {
        let mut buf = [0u8; 64];
        let (n, _) = self
            .sock
            .recv_from(&mut buf)
            .expect("a packet from the engine");
        ControlPacket::decode(&buf[..n]).expect("valid packet from our engine")
    }
}

fn packet(state: SessionState, my: u32, your: u32) -> ControlPacket {
    ControlPacket {
        diag: Diag::None,
        state,
        poll: false,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: my,
        your_discriminator: your,
        desired_min_tx: 100_000,
        required_min_rx: 100_000,
        required_min_echo_rx: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packets_are_dropped_and_counted() {
    let (a, _ev, a_at) = engine(A);
    let peer = Scripted::new(B, a_at);
    a.set_peer(spec(B, A, peer.port(), 100, 3))
        .expect("session");
    // The engine's first packet: Down, tells us its discriminator.
    let first = peer.recv_state(SessionState::Down);
    assert_eq!(first.state, SessionState::Down);
    let ours = first.my_discriminator;
    // Single hop: TTL 64 is dropped before anything else.
    peer.send(&packet(SessionState::Down, 7, 0).encode(), 64);
    // Malformed: bad version, zero multiplier.
    let mut bad = packet(SessionState::Down, 7, 0).encode();
    bad[0] = 0x40;
    peer.send(&bad, 255);
    let mut zero = packet(SessionState::Down, 7, 0).encode();
    zero[2] = 0;
    peer.send(&zero, 255);
    // A discriminator of no session.
    peer.send(&packet(SessionState::Up, 7, ours ^ 1).encode(), 255);
    // From an address without a session.
    let stranger = Scripted::new("127.0.0.3", a_at);
    stranger.send(&packet(SessionState::Down, 8, 0).encode(), 255);
    // Our discriminator, but from the wrong address.
    stranger.send(&packet(SessionState::Up, 8, ours).encode(), 255);
    let want = [
        ("bad_ttl", 1),
        ("bad_version", 1),
        ("zero_detect_mult", 1),
        ("unknown_discriminator", 1),
        ("unknown_peer", 1),
        ("wrong_source", 1),
    ];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let d = a.drops();
        if want.iter().all(|(k, n)| d.get(k) == Some(n)) {
            break;
        }
        assert!(Instant::now() < deadline, "{d:?}");
        tokio::time::sleep(ms(5)).await;
    }
    let s = a.session(ip(B)).unwrap();
    assert_eq!(
        s.state,
        SessionState::Down,
        "none of them moved the session"
    );
    assert_eq!(s.control_packets_in, 0);
    assert_eq!(s.remote_discriminator, 0);

    // A proper Down with TTL 255: the handshake proceeds (Init, then Up on our Init).
    peer.send(&packet(SessionState::Down, 7, 0).encode(), 255);
    let init = peer.recv_state(SessionState::Init);
    assert_eq!(init.your_discriminator, 7);
    peer.send(&packet(SessionState::Up, 7, ours).encode(), 255);
    came_up(&a).await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multihop_checks_the_minimum_ttl() {
    let (a, _ev) = Bfd::new(BfdConfig {
        single_hop_port: 0,
        multihop_port: 0,
        listen_v4: "127.0.0.1".parse().unwrap(),
        ..BfdConfig::default()
    })
    .expect("engine");
    let a_at = a.listen(false, true).expect("multihop receiver");
    let peer = Scripted::new(B, a_at);
    let mut s = spec(B, A, peer.port(), 100, 3);
    s.multihop = true;
    s.minimum_ttl = 250;
    a.set_peer(s.clone()).expect("session");
    let first = peer.recv_state(SessionState::Down);
    let ours = first.my_discriminator;
    peer.send(&packet(SessionState::Down, 9, 0).encode(), 249);
    let deadline = Instant::now() + Duration::from_secs(2);
    while a.drops().get("bad_ttl") != Some(&1) {
        assert!(Instant::now() < deadline, "{:?}", a.drops());
        tokio::time::sleep(ms(5)).await;
    }
    assert_eq!(a.session(ip(B)).unwrap().dropped, 1);
    // 250 is enough for a multihop session (our own packets leave with 255).
    peer.send(&packet(SessionState::Down, 9, 0).encode(), 250);
    let init = peer.recv_state(SessionState::Init);
    assert_eq!(init.your_discriminator, 9);
    peer.send(&packet(SessionState::Up, 9, ours).encode(), 250);
    came_up(&a).await;
    a.shutdown().await;
}
