//! The seed lab's topology in network namespaces, parameterised by a name prefix: fixed
//! (`ferrolb`) for the `ferrolb-lab` command, unique per run for the end-to-end tests.
//!
//! ```text
//!  client (172.17.1.10) --eth1-- rt (172.17.1.1 / br0 172.17.0.1) --br0-- master (.10)
//!                                                                   |--- node1 (.21) cbr0 10.244.1.1/24 -- pods
//!                                                                   |--- node2 (.22) ...
//! ```
//!
//! Every interface lives inside a lab namespace (the cluster segment's bridge is in the
//! router namespace), so deleting the namespaces removes everything and parallel labs never
//! clash on interface names. Nodes have no default route: only the client segment is routed
//! statically (via the router, like a management uplink); pod networks are reached over the
//! routes BGP installs, so the pod-to-pod checks prove pod CIDR routing.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, Result, bail};
use ipnet::Ipv4Net;

/// The seed lab's fixed addressing.
pub mod addr {
    use std::net::Ipv4Addr;

    /// The router on the cluster segment (BGP peer of every node).
    pub const RT_CLUSTER: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 1);
    /// The router on the client segment.
    pub const RT_CLIENT: Ipv4Addr = Ipv4Addr::new(172, 17, 1, 1);
    /// The client.
    pub const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 17, 1, 10);
    /// The "k8s-master": lab API server and controller.
    pub const MASTER: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 10);
    /// The API server's port on the master.
    pub const APISERVER_PORT: u16 = 6443;
    /// The router's AS.
    pub const ROUTER_ASN: u32 = 64512;
    /// The cluster's AS.
    pub const CLUSTER_ASN: u32 = 64522;
    /// The client segment.
    pub const CLIENT_NET: &str = "172.17.1.0/24";
    /// The LoadBalancer pool.
    pub const POOL: &str = "172.17.254.0/24";
    /// The cluster pod network.
    pub const POD_NET: &str = "10.244.0.0/16";

    /// Node `n`'s address (1-based): 172.17.0.(20+n).
    pub fn node(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(172, 17, 0, 20 + n)
    }

    /// Node `n`'s pod CIDR: 10.244.n.0/24.
    pub fn pod_cidr(n: u8) -> ipnet::Ipv4Net {
        ipnet::Ipv4Net::new(Ipv4Addr::new(10, 244, n, 0), 24).unwrap_or_default()
    }

    /// Node `n`'s bridge address (the pods' gateway): 10.244.n.1.
    pub fn pod_gateway(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, n, 1)
    }

    /// Pod `m` (1-based) on node `n`: 10.244.n.(10+m).
    pub fn pod(n: u8, m: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, n, 10 + m)
    }
}

/// The dual-stack lab's IPv6 addressing (ULA, RFC 4193), mirroring the IPv4 plan so an
/// address reads like its IPv4 twin: 172.17.0.21 <-> fd00:172:17::21, 10.244.3.11 <->
/// fd00:10:244:3::11.
pub mod addr6 {
    use std::net::Ipv6Addr;

    use ipnet::Ipv6Net;

    const fn cluster(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x172, 0x17, 0, 0, 0, 0, last)
    }

    /// The router on the cluster segment fd00:172:17::/64 (BGP peer of every node).
    pub const RT_CLUSTER: Ipv6Addr = cluster(1);
    /// The router on the client segment fd00:172:17:1::/64.
    pub const RT_CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x172, 0x17, 1, 0, 0, 0, 1);
    /// The client.
    pub const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x172, 0x17, 1, 0, 0, 0, 0x10);
    /// The master.
    pub const MASTER: Ipv6Addr = cluster(0x10);
    /// Prefix length of both segments.
    pub const SEGMENT_LEN: u8 = 64;
    /// The client segment.
    pub const CLIENT_NET: &str = "fd00:172:17:1::/64";
    /// The prefix holding the IPv6 half of the LoadBalancer pool (the routers accept its
    /// /128s).
    pub const POOL: &str = "fd00:172:17:254::/112";
    /// The pool's IPv6 addresses in the configuration: [`POOL`] without its first
    /// address, fd00:172:17:254:: being the Subnet-Router anycast address of
    /// fd00:172:17:254::/64 (RFC 4291 2.6.1). `avoid-buggy-ips` only skips IPv4 `.0` and
    /// `.255`, as in MetalLB.
    pub const POOL_RANGE: &str = "fd00:172:17:254::1-fd00:172:17:254::ffff";
    /// The cluster's IPv6 pod network (one /64 per node).
    pub const POD_NET: &str = "fd00:10:244::/56";

    /// Node `n`'s address (1-based): fd00:172:17::(20+n), hex digits that read like the
    /// IPv4 address's last octet.
    pub fn node(n: u8) -> Ipv6Addr {
        cluster(0x20 + u16::from(n))
    }

    /// Node `n`'s IPv6 pod CIDR: fd00:10:244:n::/64.
    pub fn pod_cidr(n: u8) -> Ipv6Net {
        Ipv6Net::new(Ipv6Addr::new(0xfd00, 0x10, 0x244, n.into(), 0, 0, 0, 0), 64)
            .unwrap_or_default()
    }

    /// Node `n`'s bridge address (the pods' IPv6 gateway): fd00:10:244:n::1.
    pub fn pod_gateway(n: u8) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x10, 0x244, n.into(), 0, 0, 0, 1)
    }

    /// Pod `m` on node `n`: fd00:10:244:n::(10+m).
    pub fn pod(n: u8, m: u8) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x10, 0x244, n.into(), 0, 0, 0, 0x10 + u16::from(m))
    }
}

/// The most nodes the addressing supports (172.17.0.21 ..= .70).
pub const MAX_NODES: u8 = 50;
/// The most pods per node the addressing supports.
pub const MAX_PODS: u8 = 50;

/// Names of a lab's namespaces and components, all derived from one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix` (namespaces are `prefix-role`).
    pub fn new(prefix: impl Into<String>) -> Names {
        Names {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The router namespace.
    pub fn rt(&self) -> String {
        format!("{}-rt", self.prefix)
    }

    /// The client namespace.
    pub fn client(&self) -> String {
        format!("{}-client", self.prefix)
    }

    /// The master namespace (API server, controller).
    pub fn master(&self) -> String {
        format!("{}-master", self.prefix)
    }

    /// Node `n`'s namespace.
    pub fn node_ns(&self, n: u8) -> String {
        format!("{}-node{n}", self.prefix)
    }

    /// Pod `m` of node `n`'s namespace.
    pub fn pod_ns(&self, n: u8, m: u8) -> String {
        format!("{}-n{n}p{m}", self.prefix)
    }

    /// Node `n`'s Kubernetes name, as in the seed lab.
    pub fn node_name(n: u8) -> String {
        format!("k8s-node-{n:02}")
    }

    /// Pod `m` of node `n`'s Kubernetes name.
    pub fn pod_name(n: u8, m: u8) -> String {
        format!("web-{n}-{m}")
    }

    /// The router-side interface (bridge port) of node `n`'s link.
    pub fn rt_port(n: u8) -> String {
        format!("vnode{n}")
    }
}

/// Runs `ip args` and requires success.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip -n ns args`.
pub fn ipn(ns: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip(&all)
}

/// Sets a sysctl inside namespace `ns`.
pub fn sysctl(ns: &str, key_value: &str) -> Result<()> {
    sysctl_all(ns, &[key_value])
}

/// Sets several sysctls inside namespace `ns` with one `sysctl` run.
fn sysctl_all(ns: &str, key_values: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-q", "-w"])
        .args(key_values)
        .output()
        .context("running sysctl")?;
    if !out.status.success() {
        bail!(
            "sysctl {} in {ns} failed: {}",
            key_values.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Creates namespace `ns` with `lo` up. With `ipv6`, interfaces made in it later skip
/// duplicate address detection for their link-local addresses too: while a link-local
/// address is tentative, neighbour discovery stalls and the first connection to a new
/// neighbour waits for a SYN retransmit (1 s).
fn add_ns(ns: &str, ipv6: bool) -> Result<()> {
    ip(&["netns", "add", ns]).with_context(|| {
        format!("creating namespace {ns} (a leftover from an earlier run? `ferrolb-lab down` removes it)")
    })?;
    if ipv6 {
        sysctl_all(
            ns,
            &[
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ],
        )?;
    }
    ipn(ns, &["link", "set", "lo", "up"])?;
    Ok(())
}

/// A veth from `a` (named `a_if`) to `b` (named `b_if`), both up.
fn veth(a: &str, a_if: &str, b: &str, b_if: &str) -> Result<()> {
    ipn(
        a,
        &[
            "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
        ],
    )?;
    ipn(a, &["link", "set", a_if, "up"])?;
    ipn(b, &["link", "set", b_if, "up"])?;
    Ok(())
}

fn bridge(ns: &str, name: &str) -> Result<()> {
    ipn(
        ns,
        &[
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ],
    )?;
    ipn(ns, &["link", "set", name, "up"])?;
    Ok(())
}

fn addr(ns: &str, dev: &str, a: &str) -> Result<()> {
    ipn(ns, &["addr", "add", a, "dev", dev]).map(drop)
}

/// Builds the network: router, client, master, `nodes` nodes with `pods` pod namespaces
/// each. Fails if any of the namespaces already exists.
pub fn build(names: &Names, nodes: u8, pods: u8) -> Result<()> {
    build_namespaces(names, nodes, pods, false)
}

/// [`build`] with IPv6 as well (see [`add_ipv6`]).
pub fn build_dual_stack(names: &Names, nodes: u8, pods: u8) -> Result<()> {
    build_namespaces(names, nodes, pods, true)?;
    add_ipv6(names, nodes, pods)
}

fn build_namespaces(names: &Names, nodes: u8, pods: u8, ipv6: bool) -> Result<()> {
    if nodes == 0 || nodes > MAX_NODES {
        bail!("--nodes must be between 1 and {MAX_NODES}");
    }
    if pods == 0 || pods > MAX_PODS {
        bail!("--pods must be between 1 and {MAX_PODS}");
    }
    let rt = names.rt();
    add_ns(&rt, ipv6)?;
    sysctl(&rt, "net.ipv4.ip_forward=1")?;
    // ECMP per flow (5-tuple), not per source/destination pair: one client's connections
    // spread over all next hops, as on a real router with L4 hashing.
    sysctl(&rt, "net.ipv4.fib_multipath_hash_policy=1")?;
    bridge(&rt, "br0")?;
    addr(&rt, "br0", &format!("{}/24", addr::RT_CLUSTER))?;

    let client = names.client();
    add_ns(&client, ipv6)?;
    veth(&rt, "eth1", &client, "eth0")?;
    addr(&rt, "eth1", &format!("{}/24", addr::RT_CLIENT))?;
    addr(&client, "eth0", &format!("{}/24", addr::CLIENT))?;
    ipn(
        &client,
        &[
            "route",
            "add",
            "default",
            "via",
            &addr::RT_CLIENT.to_string(),
        ],
    )?;

    let master = names.master();
    add_ns(&master, ipv6)?;
    veth(&rt, "vmaster", &master, "eth0")?;
    ipn(&rt, &["link", "set", "vmaster", "master", "br0"])?;
    addr(&master, "eth0", &format!("{}/24", addr::MASTER))?;
    ipn(
        &master,
        &[
            "route",
            "add",
            addr::CLIENT_NET,
            "via",
            &addr::RT_CLUSTER.to_string(),
        ],
    )?;

    for n in 1..=nodes {
        build_node(names, n, pods, ipv6)?;
    }
    Ok(())
}

fn build_node(names: &Names, n: u8, pods: u8, ipv6: bool) -> Result<()> {
    let rt = names.rt();
    let ns = names.node_ns(n);
    add_ns(&ns, ipv6)?;
    sysctl(&ns, "net.ipv4.ip_forward=1")?;
    let port = Names::rt_port(n);
    veth(&rt, &port, &ns, "eth0")?;
    ipn(&rt, &["link", "set", &port, "master", "br0"])?;
    addr(&ns, "eth0", &format!("{}/24", addr::node(n)))?;
    ipn(
        &ns,
        &[
            "route",
            "add",
            addr::CLIENT_NET,
            "via",
            &addr::RT_CLUSTER.to_string(),
        ],
    )?;
    bridge(&ns, "cbr0")?;
    let cidr: Ipv4Net = addr::pod_cidr(n);
    addr(
        &ns,
        "cbr0",
        &format!("{}/{}", addr::pod_gateway(n), cidr.prefix_len()),
    )?;
    for m in 1..=pods {
        let pod = names.pod_ns(n, m);
        add_ns(&pod, ipv6)?;
        let port = format!("vpod{m}");
        veth(&ns, &port, &pod, "eth0")?;
        ipn(&ns, &["link", "set", &port, "master", "cbr0"])?;
        addr(
            &pod,
            "eth0",
            &format!("{}/{}", addr::pod(n, m), cidr.prefix_len()),
        )?;
        ipn(
            &pod,
            &[
                "route",
                "add",
                "default",
                "via",
                &addr::pod_gateway(n).to_string(),
            ],
        )?;
    }
    Ok(())
}

/// An IPv6 address without duplicate address detection: a tentative address cannot be
/// bound, and DAD would add a second or two to every start for nothing (the lab assigns
/// every address itself).
fn addr6(ns: &str, dev: &str, a: std::net::Ipv6Addr, len: u8) -> Result<()> {
    ipn(
        ns,
        &[
            "-6",
            "addr",
            "add",
            &format!("{a}/{len}"),
            "dev",
            dev,
            "nodad",
        ],
    )
    .map(drop)
}

fn route6(ns: &str, dst: &str, via: std::net::Ipv6Addr) -> Result<()> {
    ipn(ns, &["-6", "route", "add", dst, "via", &via.to_string()]).map(drop)
}

/// Adds IPv6 to the network (same `nodes` and `pods`): ULA addresses on
/// both segments, the client's and the pods' default routes, the client segment routed
/// statically from master and nodes, IPv6 forwarding and per-flow ECMP hashing on the
/// router, a /64 per node's pod bridge. As in IPv4, nothing routes to the pod networks
/// but the routes BGP installs.
fn add_ipv6(names: &Names, nodes: u8, pods: u8) -> Result<()> {
    let rt = names.rt();
    sysctl(&rt, "net.ipv6.conf.all.forwarding=1")?;
    sysctl(&rt, "net.ipv6.fib_multipath_hash_policy=1")?;
    addr6(&rt, "br0", addr6::RT_CLUSTER, addr6::SEGMENT_LEN)?;
    addr6(&rt, "eth1", addr6::RT_CLIENT, addr6::SEGMENT_LEN)?;
    let client = names.client();
    addr6(&client, "eth0", addr6::CLIENT, addr6::SEGMENT_LEN)?;
    route6(&client, "default", addr6::RT_CLIENT)?;
    let master = names.master();
    addr6(&master, "eth0", addr6::MASTER, addr6::SEGMENT_LEN)?;
    route6(&master, addr6::CLIENT_NET, addr6::RT_CLUSTER)?;
    for n in 1..=nodes {
        let ns = names.node_ns(n);
        sysctl(&ns, "net.ipv6.conf.all.forwarding=1")?;
        addr6(&ns, "eth0", addr6::node(n), addr6::SEGMENT_LEN)?;
        route6(&ns, addr6::CLIENT_NET, addr6::RT_CLUSTER)?;
        let cidr = addr6::pod_cidr(n);
        addr6(&ns, "cbr0", addr6::pod_gateway(n), cidr.prefix_len())?;
        for m in 1..=pods {
            let pod = names.pod_ns(n, m);
            addr6(&pod, "eth0", addr6::pod(n, m), cidr.prefix_len())?;
            route6(&pod, "default", addr6::pod_gateway(n))?;
        }
    }
    Ok(())
}

/// The MetalLB configuration of the dual-stack lab: the seed's IPv4 peer plus the router's
/// IPv6 address as a second peer (each family on its own session, see docs/lab.md), and
/// the seed pool with an IPv6 range beside its IPv4 one (a `RequireDualStack` Service
/// takes both of its IPs from one pool). `hold_time` in seconds, or the default.
pub fn dual_stack_config(hold_time: Option<u32>) -> String {
    let hold = hold_time
        .map(|s| format!("  hold-time: {s}s\n"))
        .unwrap_or_default();
    let mut s = String::from("peers:\n");
    for peer in [addr::RT_CLUSTER.to_string(), addr6::RT_CLUSTER.to_string()] {
        s.push_str(&format!(
            "- peer-address: \"{peer}\"\n  peer-asn: {}\n  my-asn: {}\n{hold}",
            addr::ROUTER_ASN,
            addr::CLUSTER_ASN
        ));
    }
    s.push_str(&format!(
        "address-pools:\n- name: default\n  protocol: bgp\n  avoid-buggy-ips: true\n  addresses:\n  - {}\n  - {}\n",
        addr::POOL,
        addr6::POOL_RANGE
    ));
    s
}

/// Takes node `n`'s link down (or up) on the node side: the node goes silent (no FIN, no
/// RST), so the router only notices through its hold timer.
pub fn set_node_link(names: &Names, n: u8, up: bool) -> Result<()> {
    ipn(
        &names.node_ns(n),
        &["link", "set", "eth0", if up { "up" } else { "down" }],
    )
    .map(drop)
}

/// The pod addresses of node `n`.
pub fn pod_ips(n: u8, pods: u8) -> Vec<Ipv4Addr> {
    (1..=pods).map(|m| addr::pod(n, m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_plan_mirrors_ipv4() {
        assert_eq!(addr6::node(1).to_string(), "fd00:172:17::21");
        assert_eq!(addr6::pod_cidr(3).to_string(), "fd00:10:244:3::/64");
        assert_eq!(addr6::pod(3, 1).to_string(), "fd00:10:244:3::11");
        assert_eq!(addr6::pod_gateway(2).to_string(), "fd00:10:244:2::1");
        let pod_net: ipnet::Ipv6Net = addr6::POD_NET.parse().unwrap();
        assert!(pod_net.contains(&addr6::pod_cidr(MAX_NODES)));
        let seg = ipnet::Ipv6Net::new(addr6::RT_CLUSTER, addr6::SEGMENT_LEN).unwrap();
        assert!(seg.contains(&addr6::node(MAX_NODES)) && seg.contains(&addr6::MASTER));
    }

    #[test]
    fn dual_stack_config_parses_with_both_peers_and_one_dual_pool() {
        let text = dual_stack_config(Some(3));
        let parsed = ferrolb_config::parse_config(&text).expect("parses").config;
        let peers: Vec<std::net::IpAddr> = parsed.peers.iter().map(|p| p.address).collect();
        assert_eq!(
            peers,
            [
                std::net::IpAddr::V4(addr::RT_CLUSTER),
                std::net::IpAddr::V6(addr6::RT_CLUSTER)
            ]
        );
        assert!(parsed.peers.iter().all(|p| p.hold_time.as_secs() == 3));
        assert!(
            parsed
                .pool_for_ip("172.17.254.1".parse().unwrap())
                .is_some()
        );
        assert!(
            parsed
                .pool_for_ip("fd00:172:17:254::1".parse().unwrap())
                .is_some()
        );
        let anycast = "fd00:172:17:254::".parse().unwrap();
        assert!(
            parsed.pool_for_ip(anycast).is_none(),
            "the Subnet-Router anycast address stays out of the pool"
        );
        let prefix: ipnet::Ipv6Net = addr6::POOL.parse().unwrap();
        let last: std::net::Ipv6Addr = "fd00:172:17:254::ffff".parse().unwrap();
        assert!(
            prefix.contains(&last),
            "the routers accept every pool address"
        );
    }
}
