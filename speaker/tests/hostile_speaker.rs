//! `ferrolb-speaker --pod-cidr-mode advertise-and-install` against routers that
//! misbehave, in network namespaces: a raw-TCP peer of our own (hostile prefixes and
//! next hops, a ROUTE-REFRESH flood) next to the real gobgpd router, gobgpd sending more
//! than `--max-prefixes`, and a speaker restart that must not take a wanted pod route
//! out of the kernel.

#[path = "../../bgp/tests/raw_peer/mod.rs"]
mod raw_peer;
mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use ferrolb_netns::{Family, KernelRoute, Netns};
use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::PostParams;
use raw_peer::{RawPeer, announce, route_refresh};
use serde_json::json;
use support::*;

const T: Duration = Duration::from_secs(30);
const RAW: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 5);
const RAW_AS: u32 = 64600;
const PROTO: &str = "210";

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// The router (gobgpd) and the raw peer, one pool.
fn two_peers() -> String {
    format!(
        r#"peers:
- peer-address: {ROUTER}
  peer-asn: {ROUTER_AS}
  my-asn: {NODE_AS}
- peer-address: {RAW}
  peer-asn: {RAW_AS}
  my-asn: {NODE_AS}
address-pools:
- name: default
  protocol: bgp
  addresses: [172.17.254.0/24]
"#
    )
}

/// A namespace on the LAN at [`RAW`] with a listener on port 179 for the raw peer.
fn raw_peer_ns(w: &World) -> (Netns, TcpListener) {
    let ns = w.lab.netns("raw").expect("raw ns");
    let port = w.lab.connect(&ns, &w.lan, &w.bridge).expect("raw port");
    ns.add_addr(&port.a, format!("{RAW}/24").parse().unwrap())
        .expect("raw addr");
    let listener = in_netns(&ns, || TcpListener::bind((RAW, 179)).expect("bind 179"));
    (ns, listener)
}

/// Node objects (no namespace) whose pod CIDRs make these prefixes installable.
async fn nodes_with_pod_cidrs(w: &World, cidrs: &[&str]) {
    for (i, c) in cidrs.iter().enumerate() {
        let obj: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("other-{i}")},
            "spec": {"podCIDR": c, "podCIDRs": [c]},
        }))
        .unwrap();
        Api::<Node>::all(w.client.clone())
            .create(&PostParams::default(), &obj)
            .await
            .expect("create node");
    }
}

/// Our routes (proto 210) in node `i`'s kernel.
fn ours(w: &World, i: usize) -> Vec<KernelRoute> {
    w.nodes[i]
        .ns
        .routes(Family::V4)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.protocol.as_deref() == Some(PROTO))
        .collect()
}

fn our_prefixes(w: &World, i: usize) -> BTreeSet<IpNet> {
    ours(w, i).into_iter().map(|r| r.dst).collect()
}

async fn wait_ours(w: &World, want: &[&str]) -> bool {
    let want: BTreeSet<IpNet> = want.iter().map(|s| net(s)).collect();
    wait_until(T, || our_prefixes(w, 0) == want).await
}

fn speaker_log(w: &World) -> String {
    std::fs::read_to_string(w.lab.dir().join("speaker-node-1.log")).unwrap_or_default()
}

fn accept_raw(listener: &TcpListener) -> RawPeer {
    tokio::task::block_in_place(|| {
        RawPeer::accept(listener, RAW_AS, RAW, T).expect("raw peer session")
    })
}

/// Every refusal rule against the running daemon: none of the hostile prefixes or next
/// hops reaches the kernel, each refusal is counted per reason, the unusable next hop
/// the kernel refuses is not retried in a storm, and the router's session stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_prefixes_and_next_hops_are_refused_and_the_router_session_stays_up() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(1).await;
    w.set_config(&two_peers()).await;
    nodes_with_pod_cidrs(
        &w,
        &[
            "10.244.2.0/24",
            "10.244.3.0/24",
            "10.244.4.0/24",
            "10.244.5.0/24",
            "10.244.6.0/24",
        ],
    )
    .await;
    let (_raw_ns, listener) = raw_peer_ns(&w);
    let _s = w.start_speaker(0, &["--pod-cidr-mode", "advertise-and-install"]);
    let mut raw = accept_raw(&listener);
    let node_addr = IpAddr::V4(w.nodes[0].addr);
    w.gobgp
        .wait_established(node_addr, T)
        .expect("router session");
    let uptime = w.session_uptime(0);

    let good: Ipv4Net = "10.244.2.0/24".parse().unwrap();
    let hostile: Vec<Ipv4Net> = [
        "172.17.0.1/32",   // the router's (another peer's) address
        "127.0.0.0/8",     // martian
        "224.0.0.0/4",     // martian
        "172.17.0.21/32",  // the node's own address
        "172.17.0.128/25", // inside the node's connected subnet
        "192.0.2.0/24",    // no Node's pod CIDR
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let mut msgs = announce(RAW_AS, RAW, &hostile);
    msgs.extend(announce(RAW_AS, RAW, &[good]));
    for (nh, p) in [
        ("255.255.255.255", "10.244.3.0/24"),
        ("240.0.0.1", "10.244.4.0/24"),
        ("172.17.0.255", "10.244.5.0/24"), // the subnet's broadcast
        ("10.99.0.1", "10.244.6.0/24"),    // off-link: the kernel refuses it
    ] {
        msgs.extend(announce(RAW_AS, nh.parse().unwrap(), &[p.parse().unwrap()]));
    }
    raw.send_all(&msgs).expect("announce");
    assert!(
        wait_ours(&w, &["10.244.2.0/24"]).await,
        "only the good route installed: {:?}\n{}",
        ours(&w, 0),
        w.logs()
    );
    // Let retries of the refused kernel write happen (back-off 2 s, 4 s, ...).
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        our_prefixes(&w, 0),
        [net("10.244.2.0/24")].into(),
        "{}",
        w.logs()
    );
    let all = w.nodes[0].ns.routes(Family::V4).expect("routes");
    for p in &hostile {
        assert!(
            !all.iter()
                .any(|r| r.dst == IpNet::V4(*p) && r.protocol.as_deref() == Some(PROTO)),
            "{p} installed: {all:?}"
        );
    }
    assert_eq!(
        w.session_uptime(0),
        uptime,
        "the router's session was reset"
    );

    let (_, metrics) = w.speaker_get(0, "/metrics");
    for (reason, n) in [
        ("martian", 2),
        ("connected_subnet", 3),
        ("not_a_pod_cidr", 1),
        ("no_usable_next_hop", 3),
        ("kernel_refused", 1),
    ] {
        let line = format!("ferrolb_speaker_pod_routes_refused{{reason=\"{reason}\"}} {n}");
        assert!(metrics.contains(&line), "missing {line:?} in\n{metrics}");
    }
    let (_, status) = w.speaker_get(0, "/status");
    assert!(
        status.contains("Learned routes refused: connected_subnet 3, kernel_refused 1, martian 2, no_usable_next_hop 3, not_a_pod_cidr 1"),
        "{status}"
    );
    // Logged once per prefix, not once per retry.
    let log = speaker_log(&w);
    let lines = |p: &str| log.lines().filter(|l| l.contains(p)).count();
    for p in ["10.244.6.0/24", "10.244.3.0/24", "127.0.0.0/8"] {
        assert!(lines(p) <= 2, "{p} logged {} times:\n{log}", lines(p));
    }
    assert!(
        w.speaker_get(0, "/status").1.contains("Established"),
        "raw session"
    );
}

/// A ROUTE-REFRESH flood from one peer (60 s, `FERROLB_FLOOD_SECS` to change): the
/// speaker's memory stays bounded, the router's session stays up, the kernel routes do
/// not change, few log lines, and the peer's close is noticed at once afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn route_refresh_flood_costs_bounded_memory_and_nothing_else() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(1).await;
    w.set_config(&two_peers()).await;
    nodes_with_pod_cidrs(&w, &["10.244.2.0/24", "10.244.3.0/24"]).await;
    let (_raw_ns, listener) = raw_peer_ns(&w);
    let speaker = w.start_speaker(0, &["--pod-cidr-mode", "advertise-and-install"]);
    let mut raw = accept_raw(&listener);
    let node_addr = IpAddr::V4(w.nodes[0].addr);
    w.gobgp
        .wait_established(node_addr, T)
        .expect("router session");
    w.gobgp
        .announce(net("10.244.3.0/24"), "172.17.0.22".parse().unwrap(), &[])
        .expect("router route");
    raw.send_all(&announce(RAW_AS, RAW, &["10.244.2.0/24".parse().unwrap()]))
        .expect("raw route");
    assert!(
        wait_ours(&w, &["10.244.2.0/24", "10.244.3.0/24"]).await,
        "{:?}\n{}",
        ours(&w, 0),
        w.logs()
    );
    let routes_before = format!("{:?}", ours(&w, 0));
    let uptime = w.session_uptime(0);
    let log_before = speaker_log(&w).lines().count();

    let flood_for = Duration::from_secs(
        std::env::var("FERROLB_FLOOD_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let burst: Vec<u8> = std::iter::repeat_n(route_refresh(), 256)
        .flatten()
        .collect();
    let mut writer_stream = raw.stream.try_clone().expect("clone");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if std::io::Write::write_all(&mut writer_stream, &burst).is_err() {
                    break;
                }
                sent += 256;
            }
            sent
        })
    };
    // The peer reads what we send back (the resends), counting End-of-RIB markers.
    let mut reader = RawPeer {
        stream: raw.stream.try_clone().expect("clone"),
        their_open: Vec::new(),
    };
    let reader = std::thread::spawn(move || {
        let mut eors = 0u64;
        while let Ok((t, body)) = reader.read_message() {
            if t == raw_peer::UPDATE && body == [0, 0, 0, 0] {
                eors += 1;
            }
        }
        eors
    });
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < flood_for {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(raw_peer::rss_kib(speaker.pid()).0);
        assert!(speaker.is_running(), "the speaker died:\n{}", w.logs());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let peak = peak.max(raw_peer::rss_kib(speaker.pid()).0);
    let log_lines = speaker_log(&w).lines().count() - log_before;
    let routes_after = format!("{:?}", ours(&w, 0));
    let uptime_after = w.session_uptime(0);
    // Closing the connection: the speaker notices within a second or two.
    let _ = raw.stream.shutdown(std::net::Shutdown::Both);
    let sent = writer.join().expect("writer");
    let resends = reader.join().expect("reader");
    eprintln!(
        "refresh flood {secs:.0} s: {sent} ROUTE-REFRESH, {resends} resends, speaker peak RSS {peak} KiB, {log_lines} log lines"
    );
    assert!(sent > 10_000, "the flood did not get going: {sent}");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB over 64 MB");
    assert_eq!(routes_after, routes_before, "kernel routes changed");
    assert_eq!(uptime_after, uptime, "the router's session was reset");
    assert!(
        resends <= 2 + secs as u64 * 2,
        "{resends} resends in {secs} s: not coalesced"
    );
    assert!(
        (log_lines as f64) <= 3.0 * secs + 10.0,
        "{log_lines} log lines in {secs} s"
    );
    let noticed = wait_until(Duration::from_secs(5), || {
        let (_, s) = w.speaker_get(0, "/status?format=json");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
        v["peers"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["peer"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("172.17.0.5"))
                    && p["state"] != "Established"
            })
        })
    })
    .await;
    assert!(
        noticed,
        "the raw peer's close was not noticed\n{}",
        w.logs()
    );
}

/// gobgpd announces more prefixes than `--max-prefixes`: the session ends with Cease 6/1,
/// the routes leave the kernel, the status page and the metric say so, and the router
/// is not let back in at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_prefixes_from_gobgpd_end_the_session_and_remove_its_routes() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(1).await;
    nodes_with_pod_cidrs(&w, &["10.244.0.0/16"]).await;
    let _s = w.start_speaker(
        0,
        &[
            "--pod-cidr-mode",
            "advertise-and-install",
            "--max-prefixes",
            "20",
        ],
    );
    let node_addr = IpAddr::V4(w.nodes[0].addr);
    w.gobgp
        .wait_established(node_addr, T)
        .expect("router session");
    let via: IpAddr = "172.17.0.22".parse().unwrap();
    for i in 0..16 {
        w.gobgp
            .announce(net(&format!("10.244.{}.0/24", 100 + i)), via, &[])
            .expect("announce");
    }
    assert!(
        wait_until(T, || ours(&w, 0).len() == 16).await,
        "16 routes below the limit installed: {:?}",
        ours(&w, 0)
    );
    for i in 16..24 {
        w.gobgp
            .announce(net(&format!("10.244.{}.0/24", 100 + i)), via, &[])
            .expect("announce");
    }
    assert!(
        wait_until(T, || ours(&w, 0).is_empty()).await,
        "routes removed after the Cease: {:?}\n{}",
        ours(&w, 0),
        w.logs()
    );
    let (_, status) = w.speaker_get(0, "/status");
    assert!(
        status.contains("Maximum prefixes exceeded: 172.17.0.1:179 (1 times, limit 20)"),
        "{status}"
    );
    let (_, metrics) = w.speaker_get(0, "/metrics");
    assert!(
        metrics.contains("ferrolb_bgp_max_prefix_ceases{peer=\"172.17.0.1:179\"} 1"),
        "{metrics}"
    );
    // The router saw the Cease (its own view of the session says so) and is held off.
    let log = std::fs::read_to_string(w.gobgp.proc().log_path()).unwrap_or_default();
    assert!(
        log.to_lowercase().contains("notification"),
        "gobgpd did not log a NOTIFICATION:\n{log}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        w.session_uptime(0).is_none(),
        "the router was let back in during the hold-off"
    );
    let log = speaker_log(&w);
    assert!(log.contains("80 %"), "no 80 % warning:\n{log}");
}

/// Issue 11: a restarted speaker (the old one killed) adopts the pod routes it finds
/// instead of deleting and re-adding them: `ip monitor route` sees no deletion of a route
/// still wanted, and the stale one goes once the settle time is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_keeps_wanted_pod_routes_and_removes_only_stale_ones() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(1).await;
    nodes_with_pod_cidrs(&w, &["10.244.2.0/24", "10.244.3.0/24"]).await;
    let flags = [
        "--pod-cidr-mode",
        "advertise-and-install",
        "--pod-route-settle",
        "5",
    ];
    let first = w.start_speaker(0, &flags);
    let node_addr = IpAddr::V4(w.nodes[0].addr);
    w.gobgp
        .wait_established(node_addr, T)
        .expect("router session");
    let via: IpAddr = "172.17.0.22".parse().unwrap();
    w.gobgp
        .announce(net("10.244.2.0/24"), via, &[])
        .expect("announce");
    w.gobgp
        .announce(net("10.244.3.0/24"), via, &[])
        .expect("announce");
    assert!(
        wait_ours(&w, &["10.244.2.0/24", "10.244.3.0/24"]).await,
        "{}",
        w.logs()
    );
    // Killed, not stopped: its routes stay in the kernel.
    first
        .signal(nix::sys::signal::Signal::SIGKILL)
        .expect("kill");
    first.kill();
    assert_eq!(ours(&w, 0).len(), 2, "routes left by the killed speaker");
    // While it is gone the router stops wanting one of them.
    w.gobgp.withdraw(net("10.244.3.0/24")).expect("withdraw");

    let mon_log = w.lab.dir().join("ip-monitor.log");
    let monitor = w.nodes[0]
        .ns
        .spawn_logged("ip", &["monitor", "route"], &mon_log)
        .expect("ip monitor");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let _second = w.start_speaker(0, &flags);
    w.gobgp
        .wait_established(node_addr, T)
        .expect("router session again");
    assert!(
        wait_until(Duration::from_secs(20), || {
            w.speaker_get(0, "/status")
                .1
                .contains("Prefixes learned from peers: 1")
        })
        .await,
        "the new speaker learned the wanted route\n{}",
        w.logs()
    );
    assert!(
        wait_ours(&w, &["10.244.2.0/24"]).await,
        "stale route removed after settling: {:?}\n{}",
        ours(&w, 0),
        w.logs()
    );
    let settled_after = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    monitor.kill();
    let seen = std::fs::read_to_string(&mon_log).unwrap_or_default();
    assert!(
        seen.lines()
            .any(|l| l.starts_with("Deleted") && l.contains("10.244.3.0/24")),
        "the stale route's deletion not seen:\n{seen}"
    );
    assert!(
        !seen
            .lines()
            .any(|l| l.starts_with("Deleted") && l.contains("10.244.2.0/24")),
        "the wanted route was deleted on restart:\n{seen}\n{}",
        speaker_log(&w)
    );
    eprintln!("restart: stale route removed {settled_after:?} after the new start");
}
