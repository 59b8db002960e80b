//! `ferrolb-lab demo`: starts the lab and shows, in plain words, that it works: the
//! Service's EXTERNAL-IP, the router's RIB paths and kernel next hops, 30 requests from the
//! client spread over the nodes, then pod CIDR routing (client -> pod, pod -> pod across
//! nodes).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ipnet::{IpNet, Ipv4Net};

use crate::netlab::NetLab;
use crate::topology::{Names, addr};
use crate::{echo, k8s};

/// Requests the demo sends through the Service.
pub const REQUESTS: usize = 30;

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

    let sessions = lab
        .wait_sessions(nodes, Duration::from_secs(30))
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

    let ip = lab
        .wait_service_ip(Duration::from_secs(20))
        .with_context(|| {
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
    let hops = lab.wait_paths(host, nodes, Duration::from_secs(20))?;
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
    let answers = lab.http_from(&lab.names().client(), target, REQUESTS)?;
    writeln!(
        out,
        "\n{} {REQUESTS} requests from client {} to http://{target}/ (one TCP connection each):",
        t(started),
        addr::CLIENT
    )?;
    let mut per_node: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut failed = Vec::new();
    for a in &answers {
        match echo::parse_body(a) {
            Some((node, pod)) => *per_node.entry(node).or_default().entry(pod).or_default() += 1,
            None => failed.push(a.clone()),
        }
    }
    for (node, pods) in &per_node {
        let total: usize = pods.values().sum();
        let detail: Vec<String> = pods.iter().map(|(p, c)| format!("{p} x{c}")).collect();
        writeln!(out, "  {node}: {total:>2} answers ({})", detail.join(", "))?;
    }
    for f in &failed {
        writeln!(out, "  FAILED: {f}")?;
    }
    writeln!(
        out,
        "  -> answered by {} of {} nodes",
        per_node.len(),
        nodes
    )?;

    // Pod CIDR routing.
    let last = spec.nodes;
    for n in 1..=spec.nodes {
        let cidr = IpNet::V4(addr::pod_cidr(n));
        lab.wait_paths(cidr, 1, Duration::from_secs(20))?;
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
    let from_client = lab.http_from(&lab.names().client(), pod, 1)?;
    writeln!(
        out,
        "client {} -> pod {pod}: {}",
        addr::CLIENT,
        from_client.join("")
    )?;
    let from_pod = lab.http_from(&lab.names().pod_ns(1, 1), pod, 1)?;
    writeln!(
        out,
        "pod {} ({}) on {} -> pod {pod} on {}: {}",
        Names::pod_name(1, 1),
        addr::pod(1, 1),
        Names::node_name(1),
        Names::node_name(last),
        from_pod.join("")
    )?;
    writeln!(out, "\n{} demo done.", t(started))?;
    if !failed.is_empty()
        || from_client
            .iter()
            .chain(&from_pod)
            .any(|a| a.starts_with("error"))
    {
        anyhow::bail!("some requests failed (see above)");
    }
    Ok(())
}

fn join(ips: &[IpAddr]) -> String {
    let mut v: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
    v.sort();
    v.join(", ")
}
