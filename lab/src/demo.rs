//! `ferrolb-lab demo`: starts the lab and shows, in plain words, that it works: the
//! Service's EXTERNAL-IP, the router's RIB paths and kernel next hops, 30 requests from the
//! client spread over the nodes, then pod CIDR routing (client -> pod, pod -> pod across
//! nodes); with `--dual-stack` the same for IPv6 ([`show_ipv6`]).
//!
//! Every check waits for its state to converge (with a timeout, failing with what it saw
//! last) instead of sampling once: routes reach the router and then the other nodes over
//! BGP a moment after the sessions come up (FRR's zebra installs them ~1 s later), so a
//! single early sample fails on a lab that is about to be right.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::netlab::NetLab;
use crate::topology::{Names, addr, addr6};
use crate::{echo, k8s};

/// Requests the demo sends through the Service.
pub const REQUESTS: usize = 30;

/// Longest wait for any one step to converge.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// The kernel protocol number of the pod routes a speaker installs.
pub const POD_ROUTE_PROTO: &str = "210";

fn ip_text(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    crate::topology::ip(&all).unwrap_or_else(|e| format!("({e:#})\n"))
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

fn t(s: Instant) -> String {
    format!("[{:5.1}s]", s.elapsed().as_secs_f64())
}

/// Checks and prints everything for a lab that [`NetLab::up`] just started. Fails if a
/// step does not reach its expected state in time (with what was seen).
pub fn show(lab: &NetLab, started: Instant, out: &mut dyn Write) -> Result<()> {
    let spec = lab.spec();
    let nodes = spec.nodes as usize;

    let sessions = lab
        .wait_sessions(spec.sessions(), CONVERGE)
        .with_context(|| {
            format!(
                "speaker log tail:\n{}",
                lab.state().log_tail("speaker-1", 15)
            )
        })?;
    writeln!(
        out,
        "{} BGP sessions up on the router: {}",
        t(started),
        join(&sessions)
    )?;

    let ip = lab.wait_service_ip(CONVERGE).with_context(|| {
        format!(
            "controller log tail:\n{}",
            lab.state().log_tail("controller", 15)
        )
    })?;
    writeln!(
        out,
        "{} Service default/web: TYPE LoadBalancer, EXTERNAL-IP {ip} (assigned by ferrolb-controller from {})",
        t(started),
        addr::POOL
    )?;

    let host = IpNet::V4(Ipv4Net::new(ip, 32).context("host prefix")?);
    // Every node has ready pods, so with either traffic policy every node announces.
    let hops = lab.wait_paths(host, nodes, CONVERGE)?;
    writeln!(
        out,
        "{} the router has {} ECMP paths for {host}\n",
        t(started),
        hops.len()
    )?;
    print_rib_and_fib(lab, host, out)?;
    requests_spread(lab, IpAddr::V4(ip), IpAddr::V4(addr::CLIENT), started, out)?;

    // Pod CIDR routing.
    let last = spec.nodes;
    for n in 1..=spec.nodes {
        let cidr = IpNet::V4(addr::pod_cidr(n));
        lab.wait_paths(cidr, 1, CONVERGE)?;
    }
    writeln!(
        out,
        "\n{} Pod CIDR routes on the router (learned over BGP from each node's speaker):",
        t(started)
    )?;
    let fib = ip_text(
        &lab.names().rt(),
        &["route", "show", "proto", spec.router.kernel_proto()],
    );
    write!(
        out,
        "{}",
        indent(
            &fib.lines()
                .filter(|l| l.starts_with("10.244."))
                .collect::<Vec<_>>()
                .join("\n"),
            "  "
        )
    )?;
    wait_node1_pod_routes(
        lab,
        (2..=spec.nodes)
            .map(|n| IpNet::V4(addr::pod_cidr(n)))
            .collect(),
    )?;
    writeln!(
        out,
        "Routes in {} (pod routes installed by its speaker from BGP):",
        lab.names().node_ns(1)
    )?;
    write!(
        out,
        "{}",
        indent(&ip_text(&lab.names().node_ns(1), &["route", "show"]), "  ")
    )?;
    pod_traffic(
        lab,
        IpAddr::V4(addr::CLIENT),
        IpAddr::V4(addr::pod(1, 1)),
        IpAddr::V4(addr::pod(last, 1)),
        out,
    )?;
    if spec.dual_stack {
        show_ipv6(lab, started, out)?;
    }
    writeln!(out, "\n{} demo done.", t(started))?;
    Ok(())
}

/// Waits until node 1's speaker has installed routes (protocol 210) for all of `prefixes`
/// (the other nodes' pod CIDRs of one family): the router re-advertises them a moment
/// after it learned them, and the pod-to-pod request needs them.
fn wait_node1_pod_routes(lab: &NetLab, prefixes: Vec<IpNet>) -> Result<()> {
    let Some(first) = prefixes.first() else {
        return Ok(());
    };
    let family = ferrolb_netns::Family::of(first.addr());
    let node1 = lab.names().node_ns(1);
    lab.wait(
        &format!("{node1}'s BGP-installed {} pod routes", family.name()),
        CONVERGE,
        || {
            let routes =
                crate::router::kernel_routes_family(&node1, family, Some(POD_ROUTE_PROTO))?;
            let missing: Vec<&IpNet> = prefixes
                .iter()
                .filter(|p| !routes.iter().any(|r| r.dst == **p))
                .collect();
            if missing.is_empty() {
                Ok(Some(()))
            } else {
                Err(anyhow!("still missing {missing:?}"))
            }
        },
    )
}

/// Prints the router's BGP paths and kernel route for `host` (one of the Service's IPs).
fn print_rib_and_fib(lab: &NetLab, host: IpNet, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "Router {} ({}, AS {}) BGP RIB for {host}:",
        lab.names().rt(),
        lab.spec().router.label(),
        addr::ROUTER_ASN
    )?;
    let family = ferrolb_netns::Family::of(host.addr());
    for r in lab
        .router()
        .rib_family(family)?
        .iter()
        .filter(|r| r.prefix == host)
    {
        for p in &r.paths {
            writeln!(
                out,
                "  path via {:<12} AS path {:?}{}",
                p.next_hops
                    .first()
                    .map(|h| h.to_string())
                    .unwrap_or_default(),
                p.as_path,
                if p.best { "  (best)" } else { "" }
            )?;
        }
    }
    let ip = host.addr().to_string();
    let flag = if host.addr().is_ipv4() { "-4" } else { "-6" };
    writeln!(
        out,
        "Router kernel FIB (`ip {flag} route show {ip}` in {}):",
        lab.names().rt()
    )?;
    write!(
        out,
        "{}",
        indent(
            &ip_text(&lab.names().rt(), &[flag, "route", "show", &ip]),
            "  "
        )
    )?;
    Ok(())
}

/// [`REQUESTS`] requests from the client (address `client`) to the Service at `ip`, until
/// every request is answered and every node answers some; prints which node and pod
/// answered.
fn requests_spread(
    lab: &NetLab,
    ip: IpAddr,
    client: IpAddr,
    started: Instant,
    out: &mut dyn Write,
) -> Result<()> {
    let nodes = lab.spec().nodes as usize;
    let target = SocketAddr::new(ip, k8s::SERVICE_PORT);
    let (answers, per_node) = lab.wait(
        &format!("{REQUESTS} answered requests to {target} spread over {nodes} nodes"),
        CONVERGE,
        || {
            let answers = lab.http_from(&lab.names().client(), target, REQUESTS)?;
            let per_node = spread(&answers);
            let answered: usize = per_node.values().flat_map(|p| p.values()).sum();
            let failed = answers.len() - answered;
            if failed == 0 && per_node.len() == nodes {
                Ok(Some((answers, per_node)))
            } else {
                Err(anyhow!(
                    "last try: {failed} failed, answered by {} of {nodes} nodes: {answers:?}",
                    per_node.len()
                ))
            }
        },
    )?;
    writeln!(
        out,
        "\n{} {REQUESTS} requests from client {client} to http://{target}/ (one TCP connection each):",
        t(started),
    )?;
    for (node, pods) in &per_node {
        let total: usize = pods.values().sum();
        let detail: Vec<String> = pods.iter().map(|(p, c)| format!("{p} x{c}")).collect();
        writeln!(out, "  {node}: {total:>2} answers ({})", detail.join(", "))?;
    }
    writeln!(
        out,
        "  -> answered by {} of {} nodes ({} requests)",
        per_node.len(),
        nodes,
        answers.len()
    )?;
    Ok(())
}

/// The dual-stack part of the demo (`--dual-stack`): the Service's IPv6 EXTERNAL-IP, its
/// /128 with one ECMP path per node in the router's RIB and FIB, 30 requests from the
/// client over IPv6, and IPv6 pod CIDR routing (client -> pod, pod -> pod across nodes).
pub fn show_ipv6(lab: &NetLab, started: Instant, out: &mut dyn Write) -> Result<()> {
    let spec = lab.spec();
    let nodes = spec.nodes as usize;
    let ip6 = lab.wait_service_ip6(CONVERGE).with_context(|| {
        format!(
            "controller log tail:\n{}",
            lab.state().log_tail("controller", 15)
        )
    })?;
    let ips = lab.kube(|c| async move { k8s::service_ips(&c).await })?;
    writeln!(
        out,
        "\n{} Service default/web is dual-stack (RequireDualStack): EXTERNAL-IP {} (from {} and {})",
        t(started),
        ips.join(", "),
        addr::POOL,
        addr6::POOL_RANGE
    )?;
    let host = IpNet::V6(Ipv6Net::new(ip6, 128).context("host prefix")?);
    let hops = lab.wait_paths(host, nodes, CONVERGE)?;
    writeln!(
        out,
        "{} the router has {} ECMP paths for {host}, over the nodes' IPv6 sessions\n",
        t(started),
        hops.len()
    )?;
    print_rib_and_fib(lab, host, out)?;
    requests_spread(
        lab,
        IpAddr::V6(ip6),
        IpAddr::V6(addr6::CLIENT),
        started,
        out,
    )?;

    for n in 1..=spec.nodes {
        lab.wait_paths(IpNet::V6(addr6::pod_cidr(n)), 1, CONVERGE)?;
    }
    writeln!(
        out,
        "\n{} IPv6 pod CIDR routes on the router (learned over BGP from each node's speaker):",
        t(started)
    )?;
    let fib = ip_text(
        &lab.names().rt(),
        &["-6", "route", "show", "proto", spec.router.kernel_proto()],
    );
    let pod_net: Ipv6Net = addr6::POD_NET.parse().context("IPv6 pod network")?;
    let pod_routes: Vec<&str> = fib
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|p| p.parse::<Ipv6Net>().ok())
                .is_some_and(|p| pod_net.contains(&p))
        })
        .collect();
    write!(out, "{}", indent(&pod_routes.join("\n"), "  "))?;
    wait_node1_pod_routes(
        lab,
        (2..=spec.nodes)
            .map(|n| IpNet::V6(addr6::pod_cidr(n)))
            .collect(),
    )?;
    writeln!(
        out,
        "IPv6 routes in {} installed by its speaker from BGP (`ip -6 route show proto 210`):",
        lab.names().node_ns(1)
    )?;
    write!(
        out,
        "{}",
        indent(
            &ip_text(
                &lab.names().node_ns(1),
                &["-6", "route", "show", "proto", POD_ROUTE_PROTO]
            ),
            "  "
        )
    )?;
    pod_traffic(
        lab,
        IpAddr::V6(addr6::CLIENT),
        IpAddr::V6(addr6::pod(1, 1)),
        IpAddr::V6(addr6::pod(spec.nodes, 1)),
        out,
    )
}

/// Waits for an answer from `to_pod` (pod 1 of the last node) to the client (address
/// `client`) and to pod 1 of node 1 (address `from_pod`); prints both.
fn pod_traffic(
    lab: &NetLab,
    client: IpAddr,
    from_pod: IpAddr,
    to_pod: IpAddr,
    out: &mut dyn Write,
) -> Result<()> {
    let last = lab.spec().nodes;
    let pod = SocketAddr::new(to_pod, k8s::POD_PORT);
    let want = format!(
        "node={} pod={}",
        Names::node_name(last),
        Names::pod_name(last, 1)
    );
    let answer_from = |ns: String, what: &str| {
        lab.wait(what, CONVERGE, || {
            let a = lab.http_from(&ns, pod, 1)?.join("");
            if a == want {
                Ok(Some(a))
            } else {
                Err(anyhow!("last answer: {a:?}"))
            }
        })
    };
    let from_client = answer_from(
        lab.names().client(),
        &format!("an answer from {pod} to the client"),
    )?;
    writeln!(out, "client {client} -> pod {pod}: {from_client}")?;
    let from_pod_answer = answer_from(
        lab.names().pod_ns(1, 1),
        &format!("an answer from {pod} to pod {}", Names::pod_name(1, 1)),
    )?;
    writeln!(
        out,
        "pod {} ({from_pod}) on {} -> pod {pod} on {}: {from_pod_answer}",
        Names::pod_name(1, 1),
        Names::node_name(1),
        Names::node_name(last),
    )?;
    Ok(())
}

/// Answers per node and pod (unparseable answers are left out: they failed).
fn spread(answers: &[String]) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut per_node: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for a in answers {
        if let Some((node, pod)) = echo::parse_body(a) {
            *per_node.entry(node).or_default().entry(pod).or_default() += 1;
        }
    }
    per_node
}

fn join(ips: &[IpAddr]) -> String {
    let mut v: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
    v.sort();
    v.join(", ")
}
