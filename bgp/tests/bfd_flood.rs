//! A flood of junk BFD packets against a live session, in its own test binary so that the
//! process's RSS belongs to this test alone: the session stays Up, every packet that
//! reached the engine is dropped and counted, and memory stays flat (nothing is queued).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ferrolb_bgp::bfd::session::SessionConfig;
use ferrolb_bgp::bfd::{Bfd, BfdConfig, ControlPacket, Diag, PeerSpec, SessionState};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn engine(addr: &str) -> (Bfd, SocketAddr) {
    let (bfd, _events) = Bfd::new(BfdConfig {
        single_hop_port: 0,
        multihop_port: 0,
        listen_v4: addr.parse().expect("v4"),
        ..BfdConfig::default()
    })
    .expect("engine");
    let at = bfd.listen(false, false).expect("listen");
    (bfd, at)
}

fn spec(peer: &str, local: &str, port: u16) -> PeerSpec {
    PeerSpec {
        local: Some(local.parse().expect("ip")),
        remote_port: Some(port),
        session: SessionConfig {
            desired_min_tx: ms(300),
            required_min_rx: ms(300),
            detect_mult: 3,
            ..SessionConfig::default()
        },
        ..PeerSpec::single_hop(peer.parse().expect("ip"))
    }
}

fn junk_packet() -> ControlPacket {
    ControlPacket {
        diag: Diag::None,
        state: SessionState::Up,
        poll: false,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 5,
        your_discriminator: 12345,
        desired_min_tx: 100_000,
        required_min_rx: 100_000,
        required_min_echo_rx: 0,
    }
}

fn vm_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_junk_leaves_the_session_up_and_memory_flat() {
    let (a, a_at) = engine("127.0.0.1");
    let (b, b_at) = engine("127.0.0.2");
    a.set_peer(spec("127.0.0.2", "127.0.0.1", b_at.port()))
        .expect("a");
    b.set_peer(spec("127.0.0.1", "127.0.0.2", a_at.port()))
        .expect("b");
    let peer_b: IpAddr = "127.0.0.2".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.session(peer_b).map(|s| s.state) != Some(SessionState::Up) {
        assert!(Instant::now() < deadline, "not Up: {:?}", a.session(peer_b));
        tokio::time::sleep(ms(10)).await;
    }
    let rss_before = vm_rss_kib();
    let flood = std::thread::spawn(move || {
        let s = UdpSocket::bind("127.0.0.3:0").expect("bind");
        s.set_ttl(255).unwrap();
        let mut junk = junk_packet().encode();
        let mut sent = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            for i in 0..200u32 {
                junk[8..12].copy_from_slice(&(i | 1).to_be_bytes());
                if s.send_to(&junk, a_at).is_ok() {
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        sent
    });
    let sent = tokio::task::spawn_blocking(move || flood.join().expect("flood"))
        .await
        .unwrap();
    let s = a.session(peer_b).unwrap();
    assert_eq!(
        s.state,
        SessionState::Up,
        "the flood did not take the session down"
    );
    assert_eq!(s.session_down_events, 0);
    let dropped: u64 = a.drops().values().sum();
    assert!(sent > 50_000, "flood too small to mean anything: {sent}");
    // Everything that reached the engine was dropped and counted (the kernel may have
    // dropped some when the socket buffer was full).
    assert!(
        dropped > 0 && dropped <= sent,
        "dropped {dropped} of {sent}"
    );
    let grown = vm_rss_kib().saturating_sub(rss_before);
    eprintln!(
        "flood: {sent} sent, {dropped} dropped, RSS {rss_before} -> {} KiB",
        vm_rss_kib()
    );
    assert!(grown < 8 * 1024, "RSS grew by {grown} KiB during the flood");
    a.shutdown().await;
    b.shutdown().await;
}
