//! `ferrolb-lab demo`: starts the lab and shows, in plain words, that it works: the
//! Service's EXTERNAL-IP, the router's RIB paths and kernel next hops, 30 requests from the
//! client spread over the nodes, then pod CIDR routing (client -> pod, pod -> pod across
//! nodes).
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
use ipnet::{IpNet, Ipv4Net};

use crate::netlab::NetLab;
use crate::topology::{Names, addr};
use crate::{echo, k8s};

/// Requests the demo sends through the Service.
pub const REQUESTS: usize = 30;

/// Longest wait for any one step to converge.
pub const CONVERGE: Duration = Duration::from_secs(30);

fn ip_text(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    crate::topology::ip(&all).unwrap_or_else(|e| format!("({e:#})\n"))
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

/// Checks and prints everything for a lab that [`NetLab::up`] just started. Fails if a
/// step does not reach its expected state in time (with what was seen).
pub fn show(lab: &NetLab, started: Instant, out: &mut dyn Write) -> Result<()> {
    let spec = lab.spec();
    let nodes = spec.nodes as usize;
    let t = |s: Instant| format!("[{:5.1}s]", s.elapsed().as_secs_f64());

    let sessions = lab.wait_sessions(nodes, CONVERGE).with_context(|| {
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

    writeln!(
        out,
        "Router {} ({}, AS {}) BGP RIB for {host}:",
        lab.names().rt(),
        spec.router.label(),
        addr::ROUTER_ASN
    )?;
    for r in lab.router().rib()?.iter().filter(|r| r.prefix == host) {
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
    writeln!(
        out,
        "Router kernel FIB (`ip route show {ip}` in {}):",
        lab.names().rt()
    )?;
    write!(
        out,
        "{}",
        indent(
            &ip_text(&lab.names().rt(), &["route", "show", &ip.to_string()]),
            "  "
        )
    )?;

    let target = SocketAddr::new(IpAddr::V4(ip), k8s::SERVICE_PORT);
    // Until every request is answered and every node answers some.
    let (answers, per_node) = lab.wait(
        &format!("{REQUESTS} answered requests spread over {nodes} nodes"),
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
        "\n{} {REQUESTS} requests from client {} to http://{target}/ (one TCP connection each):",
        t(started),
        addr::CLIENT
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
    // Node 1 learns the other nodes' pod CIDRs from the router (installed by its speaker).
    let others: Vec<IpNet> = (2..=spec.nodes)
        .map(|n| IpNet::V4(addr::pod_cidr(n)))
        .collect();
    lab.wait(
        &format!("{}'s BGP-installed pod routes", lab.names().node_ns(1)),
        CONVERGE,
        || {
            let routes = crate::router::kernel_routes(&lab.names().node_ns(1), None)?;
            let missing: Vec<&IpNet> = others
                .iter()
                .filter(|c| {
                    !routes
                        .iter()
                        .any(|r| r.dst == **c && r.protocol.as_deref() != Some("kernel"))
                })
                .collect();
            if missing.is_empty() {
                Ok(Some(()))
            } else {
                Err(anyhow!("still missing {missing:?}"))
            }
        },
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

    let pod = SocketAddr::new(IpAddr::V4(addr::pod(last, 1)), k8s::POD_PORT);
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
    writeln!(out, "client {} -> pod {pod}: {from_client}", addr::CLIENT)?;
    let from_pod = answer_from(
        lab.names().pod_ns(1, 1),
        &format!("an answer from {pod} to pod {}", Names::pod_name(1, 1)),
    )?;
    writeln!(
        out,
        "pod {} ({}) on {} -> pod {pod} on {}: {from_pod}",
        Names::pod_name(1, 1),
        addr::pod(1, 1),
        Names::node_name(1),
        Names::node_name(last),
    )?;
    writeln!(out, "\n{} demo done.", t(started))?;
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
