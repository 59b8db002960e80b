//! End-to-end tests of the dual-stack lab (issue 16, phase A): the same lab as
//! `e2e_lab.rs` with IPv6 on both segments and in the pods, an IPv6 BGP session per node
//! beside the IPv4 one, the seed pool with an IPv6 range, and the demo Service as
//! `RequireDualStack`. Each test runs on both API servers (`NAME::lab`, `NAME::real`: the
//! real kube-apiserver with a dual-stack Service range), builds its own lab with unique
//! names and tears it down on drop, also on panic; root is required (skipped with a
//! message otherwise).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_lab::netlab::{ApiServerKind, NetLab};
use ferrolb_lab::router::RouterKind;
use ferrolb_lab::topology::{self, Names, addr, addr6};
use ferrolb_lab::{demo, k8s};
use ferrolb_netns::Family;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A dual-stack lab with `router` on API server `kind`, or `None` (with a message) without
/// root or without the router's binaries.
fn up(kind: ApiServerKind, router: RouterKind, hold_time: Option<u32>) -> Option<NetLab> {
    let mut spec = ferrolb_lab::testing::spec_with_router(router)?;
    spec.apiserver = kind;
    spec.set_dual_stack(true);
    spec.config = topology::dual_stack_config(hold_time);
    Some(NetLab::up(spec, &mut |_| {}).unwrap_or_else(|e| panic!("{router:?} {kind:?}: {e:#}")))
}

/// The speaker's kernel protocol number for pod routes (its README), written out here so
/// the test does not take it from the code under test.
const POD_ROUTE_PROTO: &str = "210";

fn v4_nodes(ns: &[u8]) -> Vec<IpAddr> {
    ns.iter().map(|n| IpAddr::V4(addr::node(*n))).collect()
}

fn v6_nodes(ns: &[u8]) -> Vec<IpAddr> {
    ns.iter().map(|n| IpAddr::V6(addr6::node(*n))).collect()
}

fn host6(ip: Ipv6Addr) -> IpNet {
    IpNet::V6(Ipv6Net::new(ip, 128).unwrap())
}

/// Both sessions of every node, the Service's two IPs (IPv4 first, both from the seed
/// pool), and three ECMP paths for each in RIB and FIB, next hops the nodes' addresses of
/// that family. Returns the IPv4 and the IPv6 host prefix.
fn ready(lab: &NetLab) -> (IpNet, IpNet) {
    let sessions = lab
        .wait_sessions(6, Duration::from_secs(30))
        .expect("6 BGP sessions");
    let mut want: Vec<IpAddr> = v4_nodes(&[1, 2, 3]);
    want.extend(v6_nodes(&[1, 2, 3]));
    assert_eq!(
        sessions.iter().copied().collect::<BTreeSet<_>>(),
        want.into_iter().collect::<BTreeSet<_>>()
    );
    let ip6 = lab
        .wait_service_ip6(Duration::from_secs(20))
        .expect("IPv6 EXTERNAL-IP");
    let ips = lab
        .kube(|c| async move { k8s::service_ips(&c).await })
        .unwrap();
    assert_eq!(ips.len(), 2, "one IP per family: {ips:?}");
    let ip4: std::net::Ipv4Addr = ips[0].parse().expect("IPv4 first (ipFamilies[0])");
    assert!(addr::POOL.parse::<Ipv4Net>().unwrap().contains(&ip4));
    assert!(addr6::POOL.parse::<Ipv6Net>().unwrap().contains(&ip6));
    assert_ne!(
        ip6.segments()[7],
        0,
        "not the Subnet-Router anycast address"
    );
    let h4 = IpNet::V4(Ipv4Net::new(ip4, 32).unwrap());
    let h6 = host6(ip6);
    assert_eq!(
        lab.wait_paths(h4, 3, Duration::from_secs(20)).unwrap(),
        v4_nodes(&[1, 2, 3])
    );
    assert_eq!(
        lab.wait_paths(h6, 3, Duration::from_secs(20)).unwrap(),
        v6_nodes(&[1, 2, 3])
    );
    (h4, h6)
}

/// `count` requests from the client to `target`; the nodes that answered.
fn nodes_answering(lab: &NetLab, target: SocketAddr, count: usize) -> BTreeSet<String> {
    let answers = lab.http_from(&lab.names().client(), target, count).unwrap();
    answers
        .iter()
        .map(|a| {
            ferrolb_lab::echo::parse_body(a)
                .unwrap_or_else(|| panic!("bad answer {a:?} (all: {answers:?})"))
                .0
        })
        .collect()
}

fn all_nodes() -> BTreeSet<String> {
    (1..=3).map(Names::node_name).collect()
}

/// The dual-stack Service over IPv6 from the client, and IPv6 pod CIDR routing: each
/// node's /64 on the router via that node; node 1 has the other nodes' /64s installed by
/// its speaker with protocol 210 via a global IPv6 next hop; a pod on node 1 reaches a
/// pod on node 3 over IPv6 (node 1 has no IPv6 default route).
fn check_ipv6(lab: &NetLab, kind: RouterKind) {
    let (_, h6) = ready(lab);
    let target = SocketAddr::new(h6.addr(), k8s::SERVICE_PORT);
    lab.wait_nodes_forward(target, Duration::from_secs(10))
        .unwrap();
    assert_eq!(nodes_answering(lab, target, 30), all_nodes(), "{kind:?}");

    let fib = lab.router().fib_family(Family::V6).unwrap();
    let r = fib.iter().find(|r| r.dst == h6).expect("kernel route");
    assert_eq!(r.protocol.as_deref(), Some(kind.kernel_proto()), "{r:?}");
    assert_eq!(r.nexthops.len(), 3, "{kind:?}: {r:?}");

    for n in 1..=3u8 {
        let hops = lab
            .wait_paths(IpNet::V6(addr6::pod_cidr(n)), 1, Duration::from_secs(20))
            .unwrap();
        assert_eq!(hops, v6_nodes(&[n]), "{kind:?}");
    }
    let installed = lab
        .wait(
            "node 1's IPv6 pod routes from BGP",
            Duration::from_secs(20),
            || {
                let routes = ferrolb_lab::router::kernel_routes_family(
                    &lab.names().node_ns(1),
                    Family::V6,
                    Some(POD_ROUTE_PROTO),
                )?;
                let dsts: BTreeSet<IpNet> = routes.iter().map(|r| r.dst).collect();
                let want: BTreeSet<IpNet> = [2u8, 3]
                    .into_iter()
                    .map(|n| IpNet::V6(addr6::pod_cidr(n)))
                    .collect();
                Ok((dsts == want).then_some(routes))
            },
        )
        .unwrap_or_else(|e| panic!("{kind:?}: {e:#}"));
    // gobgpd sets itself as next hop; BIRD and FRR pass the originating node's address on
    // (a third-party next hop on the shared segment, RFC 4271 5.1.3). Either is a global
    // IPv6 address on the segment, never a link-local or an IPv4-mapped one.
    for (r, n) in installed.iter().zip([2u8, 3]) {
        let gw = r.gateways();
        let ok = [IpAddr::V6(addr6::RT_CLUSTER), IpAddr::V6(addr6::node(n))];
        assert!(gw.len() == 1 && ok.contains(&gw[0]), "{kind:?}: {r:?}");
    }
    let pod3 = SocketAddr::new(IpAddr::V6(addr6::pod(3, 1)), k8s::POD_PORT);
    for from in [lab.names().client(), lab.names().pod_ns(1, 1)] {
        let a = lab.http_from(&from, pod3, 1).unwrap();
        assert_eq!(
            a,
            vec!["node=k8s-node-03 pod=web-3-1".to_string()],
            "{kind:?} from {from}"
        );
    }
}

fn dual_stack_service_over_ipv6_with_gobgp(kind: ApiServerKind) {
    let Some(lab) = up(kind, RouterKind::Gobgp, None) else {
        return;
    };
    check_ipv6(&lab, RouterKind::Gobgp);
    // The demo's own checks (both families) pass on the same lab, and it shows the IPv6
    // part.
    let mut out = Vec::new();
    demo::show(&lab, Instant::now(), &mut out)
        .unwrap_or_else(|e| panic!("demo failed: {e:#}\n{}", String::from_utf8_lossy(&out)));
    let text = String::from_utf8_lossy(&out);
    eprintln!("{text}");
    assert!(text.contains("is dual-stack (RequireDualStack)"), "{text}");
    assert!(text.contains("-> answered by 3 of 3 nodes"), "{text}");
    // The IPv6 /128 is not negotiated on the IPv4 sessions (and the /32 not on the IPv6
    // ones): expected in this design, so no speaker warns about it.
    for n in 1..=3 {
        let log = std::fs::read_to_string(lab.state().log(&format!("speaker-{n}"))).unwrap();
        let warned: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("routes not announced"))
            .collect();
        assert!(warned.is_empty(), "speaker-{n}: {warned:?}");
    }
}

fn dual_stack_service_over_ipv6_with_bird(kind: ApiServerKind) {
    let Some(lab) = up(kind, RouterKind::Bird, None) else {
        return;
    };
    check_ipv6(&lab, RouterKind::Bird);
}

fn dual_stack_service_over_ipv6_with_frr(kind: ApiServerKind) {
    let Some(lab) = up(kind, RouterKind::Frr, None) else {
        return;
    };
    check_ipv6(&lab, RouterKind::Frr);
}

/// Node 3's link goes down (silent: no FIN, no RST): both of its sessions expire with the
/// hold timer and both families' next hops of node 3 leave the router's RIB and FIB, its
/// pod CIDRs of both families leave node 1's kernel; IPv6 traffic keeps flowing over nodes
/// 1 and 2. With BIRD as the router: gobgpd 3.10 never withdraws node 3's pod CIDRs from
/// the other nodes (no UPDATE on the wire; see docs/lab.md, "Dual stack").
fn node_down_removes_both_families_next_hops(kind: ApiServerKind) {
    const HOLD: u32 = 3;
    let Some(lab) = up(kind, RouterKind::Bird, Some(HOLD)) else {
        return;
    };
    let (h4, h6) = ready(&lab);
    let cut = Instant::now();
    topology::set_node_link(lab.names(), 3, false).unwrap();
    let timeout = Duration::from_secs(u64::from(HOLD) + 5);
    lab.wait("node 3's next hops gone in both families", timeout, || {
        let gone = |prefix: IpNet, want: Vec<IpAddr>| -> anyhow::Result<bool> {
            Ok(lab.rib_next_hops(prefix)? == want && lab.fib_next_hops(prefix)? == want)
        };
        Ok((gone(h4, v4_nodes(&[1, 2]))? && gone(h6, v6_nodes(&[1, 2]))?).then_some(()))
    })
    .unwrap();
    let t = cut.elapsed();
    eprintln!("node 3 silent: both families' paths gone after {t:?} (hold time {HOLD}s)");
    assert!(
        t >= Duration::from_millis(1500),
        "gone after {t:?}: too early"
    );
    lab.wait("node 1 drops node 3's pod routes", timeout, || {
        let node1 = lab.names().node_ns(1);
        let mut routes =
            ferrolb_lab::router::kernel_routes_family(&node1, Family::V6, Some(POD_ROUTE_PROTO))?;
        routes.extend(ferrolb_lab::router::kernel_routes_family(
            &node1,
            Family::V4,
            Some(POD_ROUTE_PROTO),
        )?);
        let dsts: BTreeSet<IpNet> = routes.iter().map(|r| r.dst).collect();
        let want = BTreeSet::from([IpNet::V4(addr::pod_cidr(2)), IpNet::V6(addr6::pod_cidr(2))]);
        Ok((dsts == want).then_some(()))
    })
    .unwrap();
    let target = SocketAddr::new(h6.addr(), k8s::SERVICE_PORT);
    let seen = nodes_answering(&lab, target, 20);
    assert_eq!(
        seen,
        [1u8, 2].into_iter().map(Names::node_name).collect(),
        "IPv6 traffic over the remaining nodes"
    );
}

ferrolb_kubeapi::on_both_kinds!(
    dual_stack_service_over_ipv6_with_gobgp,
    dual_stack_service_over_ipv6_with_bird,
    dual_stack_service_over_ipv6_with_frr,
    node_down_removes_both_families_next_hops,
);
