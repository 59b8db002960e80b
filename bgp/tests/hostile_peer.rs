//! A hostile peer, in raw bytes, against the speaker (loopback, no root needed):
//! maximum-prefix Cease with hold-off, RFC 7606 section 4 treat-as-withdraw, and a
//! ROUTE-REFRESH flood from a peer that never reads while 100,000 routes go out.

mod raw_peer;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use ferrolb_bgp::fsm::State;
use ferrolb_bgp::session::{LearnedReceiver, PeerConfig, Speaker, SpeakerConfig};
use ipnet::{IpNet, Ipv4Net};
use raw_peer::{RawPeer, announce, attr, host_routes, nlri, route_refresh, update_raw};

const PEER_AS: u32 = 65010;
const OUR_AS: u32 = 65020;
const T: Duration = Duration::from_secs(10);

fn peer_id() -> Ipv4Addr {
    Ipv4Addr::new(10, 9, 9, 9)
}

/// The learned table, folded from the feed until `done` holds (or `T` passes).
async fn learned_until(
    feed: &mut LearnedReceiver,
    table: &mut BTreeMap<IpNet, IpAddr>,
    done: impl Fn(&BTreeMap<IpNet, IpAddr>) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + T;
    while !done(table) {
        match tokio::time::timeout_at(deadline, feed.recv()).await {
            Ok(Some(batch)) => {
                for r in batch.routes {
                    match r.next_hop {
                        Some(nh) => table.insert(r.prefix, nh),
                        None => table.remove(&r.prefix),
                    };
                }
            }
            _ => return false,
        }
    }
    true
}

/// A speaker (learned-route feed) with one peer on a loopback listener.
fn speaker_with_peer(
    config: impl FnOnce(&mut PeerConfig),
) -> (Speaker, LearnedReceiver, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (speaker, _events, feed) =
        Speaker::with_learned_feed(SpeakerConfig::new(Ipv4Addr::new(10, 0, 0, 1)), 1024)
            .expect("speaker");
    let mut pc = PeerConfig::new("127.0.0.1".parse().unwrap(), OUR_AS, PEER_AS);
    pc.port = listener.local_addr().unwrap().port();
    config(&mut pc);
    speaker.add_peer(pc).expect("peer");
    (speaker, feed, listener)
}

fn state(speaker: &Speaker) -> State {
    speaker.peer_status()[0].state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_prefixes_cease_removes_the_routes_and_holds_off() {
    let (speaker, mut feed, listener) = speaker_with_peer(|pc| {
        pc.max_prefixes = Some(100);
        pc.max_prefix_restart = Duration::from_secs(3);
    });
    let mut peer = tokio::task::block_in_place(|| {
        RawPeer::accept(&listener, PEER_AS, peer_id(), T).expect("session")
    });
    let nh = Ipv4Addr::new(127, 0, 0, 1);
    let prefixes = host_routes(Ipv4Addr::new(10, 200, 0, 0), 110);
    peer.send_all(&announce(PEER_AS, nh, &prefixes[..80]))
        .unwrap();
    let mut table = BTreeMap::new();
    assert!(
        learned_until(&mut feed, &mut table, |t| t.len() == 80).await,
        "80 routes (below the limit) learned: {}",
        table.len()
    );
    assert_eq!(speaker.peer_status()[0].prefixes_received, 80);

    // 30 more: over the limit of 100.
    peer.send_all(&announce(PEER_AS, nh, &prefixes[80..]))
        .unwrap();
    let n = tokio::task::block_in_place(|| peer.read_until_notification()).expect("NOTIFICATION");
    // Cease 6/1, RFC 4486 data: AFI 1, SAFI 1, the limit.
    assert_eq!(n, vec![6, 1, 0, 1, 1, 0, 0, 0, 100], "{n:?}");
    assert!(
        learned_until(&mut feed, &mut table, |t| t.is_empty()).await,
        "the peer's routes are removed: {} left",
        table.len()
    );
    let st = &speaker.peer_status()[0];
    assert_eq!(st.max_prefix_ceases, 1);
    assert!(
        st.last_error
            .as_deref()
            .is_some_and(|e| e.contains("maximum number of prefixes")),
        "{st:?}"
    );
    // No new session during the hold-off, one after it.
    let early = tokio::task::block_in_place(|| {
        RawPeer::accept(&listener, PEER_AS, peer_id(), Duration::from_millis(2000))
    });
    assert!(early.is_err(), "reconnected during the hold-off");
    let again = tokio::task::block_in_place(|| {
        RawPeer::accept(&listener, PEER_AS, peer_id(), Duration::from_secs(5))
    });
    assert!(again.is_ok(), "no reconnect after the hold-off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_overrun_is_treat_as_withdraw_and_the_session_stays_up() {
    let (speaker, mut feed, listener) = speaker_with_peer(|_| {});
    let mut peer = tokio::task::block_in_place(|| {
        RawPeer::accept(&listener, PEER_AS, peer_id(), T).expect("session")
    });
    let nh = Ipv4Addr::new(127, 0, 0, 1);
    let a: Ipv4Net = "10.201.0.1/32".parse().unwrap();
    let b: Ipv4Net = "10.201.0.2/32".parse().unwrap();
    peer.send_all(&announce(PEER_AS, nh, &[a, b])).unwrap();
    let mut table = BTreeMap::new();
    assert!(learned_until(&mut feed, &mut table, |t| t.len() == 2).await);

    // NEXT_HOP claims 20 bytes: it overruns the attribute list, whose total length
    // still says where the NLRI (b) starts.
    let mut attrs = raw_peer::attrs(PEER_AS, nh);
    let at = attrs.len() - 5;
    assert_eq!(attrs[at], 4);
    attrs[at] = 20;
    peer.send(&update_raw(&[], &attrs, &nlri(&[b]))).unwrap();
    let b_net = IpNet::V4(b);
    assert!(
        learned_until(&mut feed, &mut table, |t| !t.contains_key(&b_net)).await,
        "b withdrawn"
    );
    assert!(table.contains_key(&IpNet::V4(a)), "a untouched");

    // The session is still up: no NOTIFICATION, and a new route is still taken.
    let c: Ipv4Net = "10.201.0.3/32".parse().unwrap();
    peer.send_all(&announce(PEER_AS, nh, &[c])).unwrap();
    assert!(learned_until(&mut feed, &mut table, |t| t.len() == 2).await);
    assert_eq!(state(&speaker), State::Established);
    peer.stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // (Our End-of-RIB may still be in flight; anything but a NOTIFICATION is fine.)
    let notification = tokio::task::block_in_place(|| peer.read_until_notification());
    assert!(notification.is_err(), "NOTIFICATION sent: {notification:?}");

    // An overrunning MP_REACH_NLRI hides NLRI: that one still resets (3/1).
    let bad = [
        attr(0x40, 1, &[0]),
        vec![0x80, 14, 40, 0, 1, 1, 4, 127, 0, 0, 1],
    ]
    .concat();
    peer.stream.set_read_timeout(Some(T)).unwrap();
    peer.send(&update_raw(&[], &bad, &[])).unwrap();
    let n = tokio::task::block_in_place(|| peer.read_until_notification()).expect("NOTIFICATION");
    assert_eq!(&n[..2], &[3, 1]);
}

/// The sending side under a hostile reader: `ferrolb-bgp-bench` announces 100,000
/// routes to a peer that never reads and floods ROUTE-REFRESH requests; the speaker's
/// peak RSS stays under 64 MB (requests are coalesced into one pending resend, and
/// nothing queues per message).
#[test]
fn never_reading_peer_with_a_refresh_flood_while_we_send_100k_routes() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let log = std::env::temp_dir().join(format!("ferrolb-hostile-bench-{port}.log"));
    let mut bench = std::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-bgp-bench"))
        .args([
            "--peer",
            "127.0.0.1",
            "--peer-port",
            &port.to_string(),
            "--peer-as",
            &PEER_AS.to_string(),
            "--local-as",
            &OUR_AS.to_string(),
            "--router-id",
            "10.0.0.1",
            "--prefixes",
            "100000",
            "--hold-secs",
            "60",
        ])
        .stdout(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("ferrolb-bgp-bench");
    let peer = RawPeer::accept(&listener, PEER_AS, peer_id(), T).expect("session");
    let pid = bench.id();
    // Never read again; flood refreshes as fast as the speaker takes them.
    let flood_for = Duration::from_secs(
        std::env::var("FERROLB_FLOOD_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(15),
    );
    let refresh = route_refresh();
    let burst: Vec<u8> = std::iter::repeat_n(refresh.as_slice(), 256)
        .flatten()
        .copied()
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut stream = peer.stream.try_clone().expect("clone");
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            // Blocking writes: when the speaker stops reading, this waits (no partial
            // messages, which a write timeout could leave).
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if std::io::Write::write_all(&mut stream, &burst).is_err() {
                    break;
                }
                sent += 256;
            }
            sent
        })
    };
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < flood_for {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(raw_peer::rss_kib(pid).0);
        assert!(
            bench.try_wait().expect("wait").is_none(),
            "the speaker exited during the flood"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (hwm, rss) = raw_peer::rss_kib(pid);
    let _ = bench.kill();
    let _ = bench.wait();
    let _ = peer.stream.shutdown(std::net::Shutdown::Both);
    let sent = writer.join().expect("writer");
    eprintln!(
        "refresh flood: {sent} ROUTE-REFRESH in {:?}; speaker peak RSS {} KiB, now {} KiB",
        started.elapsed(),
        hwm.max(peak),
        rss
    );
    assert!(sent > 1000, "the flood did not get going: {sent}");
    assert!(
        hwm.max(peak) < 64 * 1024,
        "peak RSS {} KiB over 64 MB",
        hwm.max(peak)
    );
}
