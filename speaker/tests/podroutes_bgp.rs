//! End to end with real BGP: two gobgpd "routers" announce pod CIDRs to our in-process
//! ferrolb-bgp speaker in a node namespace; the pod route reconciler (fed by the
//! speaker's learned-route feed, as in the daemon) installs them in the node's kernel with our protocol number, ECMP
//! across the routers, and removes them on withdraw and on session loss.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::time::Duration;

use ferrolb_bgp::fsm::State;
use ferrolb_bgp::session::{PeerConfig, Speaker, SpeakerConfig, SpeakerEvent};
use ferrolb_netns::{
    Family, GobgpConfig, GobgpNeighbor, Gobgpd, KernelRoute, Lab, Netns, require_root,
    wait_for_state,
};
use ferrolb_speaker::podroutes::{FEED_CAPACITY, PodRoutes, PodRoutesOptions, ROUTE_PROTOCOL};
use ipnet::IpNet;
use tokio::sync::mpsc::UnboundedReceiver;

const OUR_AS: u32 = 65100;
const WAIT: Duration = Duration::from_secs(20);

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A tokio runtime whose worker threads live in `ns`, so that the speaker's TCP sockets
/// and the reconciler's netlink socket are opened there. Work must be spawned onto it.
struct NsRuntime {
    rt: tokio::runtime::Runtime,
}

impl NsRuntime {
    fn new(ns: &Netns) -> NsRuntime {
        let path = format!("/var/run/netns/{}", ns.name().expect("named namespace"));
        let rt = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
        })
        .join()
        .expect("runtime thread");
        NsRuntime { rt }
    }

    fn run<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.rt.block_on(self.rt.spawn(fut)) {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Waits until every peer is Established.
async fn wait_established(events: &mut UnboundedReceiver<SpeakerEvent>, peers: &[IpAddr]) {
    let mut up: BTreeSet<IpAddr> = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while up.len() < peers.len() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => {
                if let SpeakerEvent::PeerStateChanged {
                    peer,
                    to: State::Established,
                    ..
                } = ev
                {
                    up.insert(peer);
                }
            }
            Ok(None) => panic!("speaker event channel closed"),
            Err(_) => panic!("sessions up: {up:?} of {peers:?} within {WAIT:?}"),
        }
    }
}

fn ours(node: &Netns, dst: IpNet) -> Vec<KernelRoute> {
    let p = ROUTE_PROTOCOL.to_string();
    node.routes(Family::of(dst.addr()))
        .expect("ip route")
        .into_iter()
        .filter(|r| r.dst == dst && r.protocol.as_deref() == Some(p.as_str()))
        .collect()
}

/// Waits until our routes for `dst` have exactly these gateways (empty: no route).
fn wait_gateways(node: &Netns, what: &str, dst: IpNet, want: &[&str]) {
    let want: BTreeSet<IpAddr> = want.iter().map(|s| ip(s)).collect();
    wait_for_state(
        what,
        WAIT,
        || Ok(ours(node, dst)),
        |rs| {
            let got: BTreeSet<IpAddr> = rs.iter().flat_map(KernelRoute::gateways).collect();
            rs.len() <= 1 && got == want
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn learned_pod_cidrs_are_installed_with_ecmp_and_removed_on_withdraw_and_session_loss() {
    if let Err(skip) = require_root() {
        eprintln!("{skip}");
        return;
    }
    let lab = Lab::new().expect("lab");
    let node = lab.netns("node").expect("node ns");
    let r1 = lab.netns("router1").expect("router1 ns");
    let r2 = lab.netns("router2").expect("router2 ns");
    let v1 = lab.veth(&r1, &node).expect("veth 1");
    let v2 = lab.veth(&r2, &node).expect("veth 2");
    r1.add_addr(&v1.a, net("10.1.0.1/24")).unwrap();
    node.add_addr(&v1.b, net("10.1.0.2/24")).unwrap();
    r2.add_addr(&v2.a, net("10.2.0.1/24")).unwrap();
    node.add_addr(&v2.b, net("10.2.0.2/24")).unwrap();
    node.set_link("lo", true).unwrap();

    let g1 = Gobgpd::start(
        &r1,
        &GobgpConfig::new(65001, Ipv4Addr::new(10, 1, 0, 1))
            .neighbor(GobgpNeighbor::new(ip("10.1.0.2"), OUR_AS)),
    )
    .expect("gobgpd 1");
    let g2 = Gobgpd::start(
        &r2,
        &GobgpConfig::new(65002, Ipv4Addr::new(10, 2, 0, 1))
            .neighbor(GobgpNeighbor::new(ip("10.2.0.2"), OUR_AS)),
    )
    .expect("gobgpd 2");

    let our_pod_cidr = net("10.244.1.0/24");
    let lb_ip = net("10.96.0.10/32");
    let shared = net("10.244.3.0/24");
    let only_r1 = net("10.244.2.0/24");
    // Both routers announce the same pod CIDR (ECMP); router 1 also announces another
    // one, plus our own pod CIDR and a LoadBalancer IP, which must not be installed.
    g1.announce(shared, ip("10.1.0.1"), &[]).unwrap();
    g2.announce(shared, ip("10.2.0.1"), &[]).unwrap();
    g1.announce(only_r1, ip("10.1.0.1"), &[]).unwrap();
    g1.announce(our_pod_cidr, ip("10.1.0.1"), &[]).unwrap();
    g1.announce(lb_ip, ip("10.1.0.1"), &[]).unwrap();

    let rt = NsRuntime::new(&node);
    let (peer1, peer2) = (ip("10.1.0.1"), ip("10.2.0.1"));
    let (_speaker, routes) = rt.run(async move {
        let opts = PodRoutesOptions {
            netns: None, // the runtime already lives in the node namespace
            exclusions: [our_pod_cidr, lb_ip].into_iter().collect(),
            ..Default::default()
        };
        let (speaker, mut events, learned) = Speaker::with_learned_feed(
            SpeakerConfig::new(Ipv4Addr::new(10, 1, 0, 2)),
            FEED_CAPACITY,
        )
        .expect("speaker");
        let (routes, _task) = PodRoutes::spawn(opts, learned);
        speaker
            .add_peer(PeerConfig::new(peer1, OUR_AS, 65001))
            .expect("peer 1");
        speaker
            .add_peer(PeerConfig::new(peer2, OUR_AS, 65002))
            .expect("peer 2");
        wait_established(&mut events, &[peer1, peer2]).await;
        (speaker, routes)
    });

    wait_gateways(
        &node,
        "ECMP pod route from both routers",
        shared,
        &["10.1.0.1", "10.2.0.1"],
    );
    wait_gateways(&node, "pod route from router 1", only_r1, &["10.1.0.1"]);
    let r = ours(&node, shared);
    assert_eq!(r[0].kind, "unicast");
    let h = routes.clone();
    rt.run(async move { h.reconcile_now().await })
        .expect("pass");
    assert!(
        ours(&node, our_pod_cidr).is_empty(),
        "our own pod CIDR is never installed"
    );
    assert!(
        ours(&node, lb_ip).is_empty(),
        "a LoadBalancer IP is never installed"
    );
    let all = node.routes(Family::V4).unwrap();
    assert!(
        !all.iter().any(|r| r.dst == our_pod_cidr || r.dst == lb_ip),
        "not installed under any protocol: {all:?}"
    );
    let installed = routes.installed();
    assert_eq!(
        installed,
        vec![
            (only_r1, vec![ip("10.1.0.1")]),
            (shared, vec![ip("10.1.0.1"), ip("10.2.0.1")]),
        ],
        "status page view"
    );

    // Router 1 withdraws the shared prefix: router 2's path remains.
    g1.withdraw(shared).unwrap();
    wait_gateways(
        &node,
        "single next hop after withdraw",
        shared,
        &["10.2.0.1"],
    );

    // Router 2's session is lost: its path goes; router 1's other route stays.
    g2.stop();
    wait_gateways(&node, "route removed on session loss", shared, &[]);
    assert_eq!(
        ours(&node, only_r1).len(),
        1,
        "the other session's route stays"
    );

    // Router 1's session is lost too: nothing of ours is left.
    g1.stop();
    wait_gateways(&node, "route removed on second session loss", only_r1, &[]);
    let p = ROUTE_PROTOCOL.to_string();
    let left: Vec<KernelRoute> = node
        .routes(Family::V4)
        .unwrap()
        .into_iter()
        .filter(|r| r.protocol.as_deref() == Some(p.as_str()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
