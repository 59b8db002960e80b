//! End-to-end tests over the full netns lab (issue 5 item 4): real `ferrolb-controller`,
//! `ferrolb-speaker` per node, gobgpd + fib-sync on the router, the kube-proxy stand-in and
//! demo pods, each test on both API servers (`NAME::lab`: the lab API server; `NAME::real`:
//! kube-apiserver v1.28.7 + etcd in the lab's master namespace, the components with their
//! ServiceAccount tokens and the manifests' RBAC). Each test builds its own lab with names unique to the
//! run (`flb-{pid}-{sfx}-*`, never the `ferrolb-*` names of the CLI's lab), so they run in
//! parallel with each other and with a running `ferrolb-lab` lab; the lab is torn down when
//! the test ends, also on panic.
//!
//! Binaries are found next to the test executable and built on first use, see
//! `ferrolb_lab::testing`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_lab::k8s;
use ferrolb_lab::netlab::{ApiServerKind, NetLab};
use ferrolb_lab::topology::{self, Names, addr};
use ferrolb_netns::Signal;
use ipnet::{IpNet, Ipv4Net};

fn up(kind: ApiServerKind, config: Option<String>) -> Option<NetLab> {
    if let Err(skip) = ferrolb_netns::require_root() {
        eprintln!("{skip}");
        return None;
    }
    let mut spec = ferrolb_lab::testing::spec().expect("lab spec (binaries)");
    spec.apiserver = kind;
    if let Some(c) = config {
        spec.config = c;
    }
    Some(NetLab::up(spec, &mut |_| {}).expect("lab up"))
}

fn host(ip: Ipv4Addr) -> IpNet {
    IpNet::V4(Ipv4Net::new(ip, 32).unwrap())
}

fn nodes(ns: &[u8]) -> Vec<IpAddr> {
    ns.iter().map(|n| IpAddr::V4(addr::node(*n))).collect()
}

/// Waits for all sessions, the Service IP and three paths; returns the IP.
fn ready(lab: &NetLab) -> Ipv4Addr {
    ferrolb_lab::testing::seed_ready(lab)
}

/// Waits until the RIB and FIB for `prefix` have exactly `want` next hops; returns how long.
fn time_until_paths(lab: &NetLab, prefix: IpNet, want: &[IpAddr], timeout: Duration) -> Duration {
    let start = Instant::now();
    lab.wait(&format!("paths {want:?} for {prefix}"), timeout, || {
        let rib = lab.rib_next_hops(prefix)?;
        let fib = lab.fib_next_hops(prefix)?;
        Ok((rib == want && fib == want).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    start.elapsed()
}

fn ecmp_client_traffic_controller_restart_and_bad_config(kind: ApiServerKind) {
    let Some(lab) = up(kind, None) else { return };
    let ip = ready(&lab);
    assert!(
        "172.17.254.0/24".parse::<Ipv4Net>().unwrap().contains(&ip),
        "{ip} is from the pool"
    );
    assert_ne!(ip.octets()[3], 0, "avoid-buggy-ips skips .0");

    // Traffic from the client reaches all three nodes.
    let answers = lab
        .http_from(
            &lab.names().client(),
            SocketAddr::new(IpAddr::V4(ip), k8s::SERVICE_PORT),
            30,
        )
        .unwrap();
    let seen: BTreeSet<String> = answers
        .iter()
        .map(|a| {
            ferrolb_lab::echo::parse_body(a)
                .unwrap_or_else(|| panic!("bad answer {a:?}"))
                .0
        })
        .collect();
    assert_eq!(
        seen,
        (1..=3).map(Names::node_name).collect::<BTreeSet<_>>(),
        "answers: {answers:?}"
    );

    // A second Service, then restart the controller: every IP stays.
    lab.kube(|c| async move {
        k8s::create_service(
            &c,
            serde_json::json!({
                "metadata": {"name": "web2", "namespace": "default"},
                "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            }),
        )
        .await
        .map(drop)
    })
    .unwrap();
    let ips_of = |lab: &NetLab| {
        lab.kube(|c| async move {
            let api: kube::Api<k8s_openapi::api::core::v1::Service> = kube::Api::all(c);
            let list = api.list(&Default::default()).await?;
            Ok(list
                .items
                .into_iter()
                // Not the real server's own `default/kubernetes` (ClusterIP) Service.
                .filter(|s| {
                    s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer")
                })
                .map(|s| {
                    let ip = s
                        .status
                        .and_then(|s| s.load_balancer)
                        .and_then(|l| l.ingress)
                        .and_then(|i| i.into_iter().next())
                        .and_then(|i| i.ip);
                    (s.metadata.name.unwrap_or_default(), ip)
                })
                .collect::<std::collections::BTreeMap<_, _>>())
        })
        .unwrap()
    };
    let before = lab
        .wait("web2's IP", Duration::from_secs(20), || {
            let ips = ips_of(&lab);
            Ok(ips.values().all(|v| v.is_some()).then_some(ips))
        })
        .unwrap();
    assert_eq!(before.len(), 2);
    lab.stop("controller", Signal::SIGTERM).unwrap();
    lab.start_controller().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(lab.pid("controller").is_some(), "controller restarted");
    assert_eq!(
        ips_of(&lab),
        before,
        "IPs unchanged after a controller restart"
    );

    // An invalid ConfigMap changes nothing: IPs, paths, processes.
    lab.kube(|c| async move {
        k8s::apply_config(
            &c,
            "peers:\n- peer-address: not-an-ip\n  peer-asn: 64512\n  my-asn: 64522\naddress-pools:\n- name: default\n  protocol: bgp\n  addresses:\n  - 172.17.254.0/33\n",
        )
        .await
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        ips_of(&lab),
        before,
        "IPs unchanged after an invalid ConfigMap"
    );
    assert_eq!(lab.rib_next_hops(host(ip)).unwrap(), nodes(&[1, 2, 3]));
    assert_eq!(lab.fib_next_hops(host(ip)).unwrap(), nodes(&[1, 2, 3]));
    for name in ["controller", "speaker-1", "speaker-2", "speaker-3"] {
        assert!(lab.pid(name).is_some(), "{name} still runs");
    }
}

fn local_policy_scaled_to_one_node_keeps_one_path(kind: ApiServerKind) {
    let Some(lab) = up(kind, None) else { return };
    assert_eq!(lab.spec().policy, "Local");
    let ip = ready(&lab);
    // "Scale" the workload to node 1's pods: the other nodes' EndpointSlices become empty.
    lab.kube(|c| async move { k8s::apply_endpoints(&c, &[2, 0, 0]).await })
        .unwrap();
    time_until_paths(&lab, host(ip), &nodes(&[1]), Duration::from_secs(10));
    let answers = lab
        .http_from(
            &lab.names().client(),
            SocketAddr::new(IpAddr::V4(ip), k8s::SERVICE_PORT),
            10,
        )
        .unwrap();
    assert!(
        answers.iter().all(|a| a.starts_with("node=k8s-node-01 ")),
        "{answers:?}"
    );
    // And back.
    lab.kube(|c| async move { k8s::apply_endpoints(&c, &[2, 2, 2]).await })
        .unwrap();
    time_until_paths(&lab, host(ip), &nodes(&[1, 2, 3]), Duration::from_secs(10));
}

fn paths_leave_on_kill_sigterm_and_silent_node(kind: ApiServerKind) {
    const HOLD: u32 = 3;
    let Some(lab) = up(
        kind,
        Some(ferrolb_lab::testing::config_with_hold_time(HOLD)),
    ) else {
        return;
    };
    let ip = ready(&lab);
    let prefix = host(ip);

    // kill -9: the kernel closes the TCP session, the router drops the path at once.
    lab.stop("speaker-1", Signal::SIGKILL).unwrap();
    let t = time_until_paths(&lab, prefix, &nodes(&[2, 3]), Duration::from_secs(5));
    eprintln!("kill -9 speaker-1: path gone after {t:?}");
    assert!(t <= Duration::from_secs(1), "took {t:?}");

    // SIGTERM: the speaker closes its session (NOTIFICATION) on the way out.
    lab.stop("speaker-2", Signal::SIGTERM).unwrap();
    let t = time_until_paths(&lab, prefix, &nodes(&[3]), Duration::from_secs(5));
    eprintln!("SIGTERM speaker-2: path gone after {t:?}");
    assert!(t <= Duration::from_secs(1), "took {t:?}");

    // Node 3's link goes down: no FIN, no RST; only the hold timer notices.
    let cut = Instant::now();
    topology::set_node_link(lab.names(), 3, false).unwrap();
    time_until_paths(&lab, prefix, &[], Duration::from_secs(u64::from(HOLD) + 5));
    let t = cut.elapsed();
    eprintln!("node 3 silent: path gone after {t:?} (hold time {HOLD}s)");
    assert!(
        t >= Duration::from_millis(1500),
        "gone after {t:?}: too early for a hold-timer expiry"
    );
    assert!(t <= Duration::from_secs(u64::from(HOLD) + 2), "took {t:?}");
}

fn pod_cidr_routing_client_to_pod_and_pod_to_pod(kind: ApiServerKind) {
    let Some(lab) = up(kind, None) else { return };
    lab.wait_sessions(3, Duration::from_secs(30))
        .expect("3 BGP sessions");
    // Pod CIDRs are on the router, each via its node; client -> pod works over them.
    for n in 1..=3u8 {
        let hops = lab
            .wait_paths(IpNet::V4(addr::pod_cidr(n)), 1, Duration::from_secs(20))
            .unwrap();
        assert_eq!(hops, nodes(&[n]));
    }
    let pod3 = SocketAddr::new(IpAddr::V4(addr::pod(3, 1)), k8s::POD_PORT);
    let a = lab.http_from(&lab.names().client(), pod3, 1).unwrap();
    assert_eq!(a, vec!["node=k8s-node-03 pod=web-3-1".to_string()]);

    // Pod on node 1 -> pod on node 3: node 1 has no default route, so this only works
    // over the pod route its speaker installed from BGP.
    let learned = lab
        .wait(
            "node1's BGP-installed route to node3's pod CIDR",
            Duration::from_secs(20),
            || {
                let routes = ferrolb_lab::router::kernel_routes(&lab.names().node_ns(1), None)?;
                Ok(routes
                    .into_iter()
                    .find(|r| r.dst == IpNet::V4(addr::pod_cidr(3))))
            },
        )
        .unwrap();
    assert_ne!(learned.protocol.as_deref(), Some("kernel"), "{learned:?}");
    let a = lab.http_from(&lab.names().pod_ns(1, 1), pod3, 1).unwrap();
    assert_eq!(a, vec!["node=k8s-node-03 pod=web-3-1".to_string()]);
}

/// BIRD (`merge paths`) and FRR (zebra) as the router: both program the kernel themselves;
/// same ECMP paths and traffic. FRR is skipped (with a message) where it is not installed.
fn bird_and_frr_routers_install_ecmp_routes(apiserver: ApiServerKind) {
    use ferrolb_lab::router::RouterKind;
    if let Err(skip) = ferrolb_netns::require_root() {
        eprintln!("{skip}");
        return;
    }
    for kind in [RouterKind::Bird, RouterKind::Frr] {
        let missing: Vec<&str> = kind
            .requirements()
            .iter()
            .filter(|(bin, _)| !std::path::Path::new(bin).exists())
            .map(|(bin, _)| *bin)
            .collect();
        if !missing.is_empty() {
            eprintln!("skipping {kind:?}: {missing:?} not installed");
            continue;
        }
        let mut spec = ferrolb_lab::testing::spec().unwrap();
        spec.router = kind;
        spec.apiserver = apiserver;
        let lab = NetLab::up(spec, &mut |_| {}).unwrap_or_else(|e| panic!("{kind:?}: {e:#}"));
        let ip = ready(&lab);
        let routes = lab.router().fib().unwrap();
        let r = routes
            .iter()
            .find(|r| r.dst == host(ip))
            .expect("kernel route");
        assert_eq!(r.protocol.as_deref(), Some(kind.kernel_proto()));
        assert_eq!(r.nexthops.len(), 3, "{kind:?}: {r:?}");
        let answers = lab
            .http_from(
                &lab.names().client(),
                SocketAddr::new(IpAddr::V4(ip), k8s::SERVICE_PORT),
                30,
            )
            .unwrap();
        let nodes_seen: BTreeSet<String> = answers
            .iter()
            .filter_map(|a| ferrolb_lab::echo::parse_body(a).map(|x| x.0))
            .collect();
        assert_eq!(nodes_seen.len(), 3, "{kind:?}: {answers:?}");
    }
}

ferrolb_kubeapi::on_both_kinds!(
    ecmp_client_traffic_controller_restart_and_bad_config,
    local_policy_scaled_to_one_node_keeps_one_path,
    paths_leave_on_kill_sigterm_and_silent_node,
    pod_cidr_routing_client_to_pod_and_pod_to_pod,
    bird_and_frr_routers_install_ecmp_routes,
);
