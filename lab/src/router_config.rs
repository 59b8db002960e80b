//! Router configuration text: gobgpd's TOML and BIRD's config for one or both address
//! families, and the IPv6 half of the dual-stack lab's FRR configuration, appended to the
//! IPv4 one that [`crate::router`] writes.
//!
//! Each node gets a second BGP session over IPv6 (fd00:172:17::1 <-> fd00:172:17::2N) that
//! carries only IPv6 unicast, and the IPv4 session keeps carrying only IPv4: every route's
//! next hop is then the address of the session it came over, on every router, without
//! next-hop rewriting or RFC 8950 (see docs/lab.md, "Dual stack", for the reasons). The
//! policy is the IPv4 one with IPv6 prefixes: pool /128s and pod /64s in, pod /64s out with
//! the cluster AS stripped.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::router::RouterBfd;
use crate::topology::{Names, addr, addr6};

/// One address family's share of the router's policy: the Service pool, the cluster's pod
/// network and the length of a node's pod CIDR inside it.
/// BIRD's names carry `bird_suffix` (filters, template, kernel protocol) and
/// `bird_node_suffix` (the per-node protocols), gobgpd's `suffix`.
struct FamilyPolicy {
    suffix: &'static str,
    bird_suffix: &'static str,
    bird_node_suffix: &'static str,
    /// BIRD's channel keyword.
    channel: &'static str,
    /// The router's address on the cluster segment.
    router: IpAddr,
    /// Node `n`'s address on the cluster segment.
    node: fn(u8) -> IpAddr,
    pool: &'static str,
    host_len: u8,
    podnet: &'static str,
    pod_len: u8,
}

const V4_POLICY: FamilyPolicy = FamilyPolicy {
    suffix: "",
    bird_suffix: "",
    bird_node_suffix: "",
    channel: "ipv4",
    router: IpAddr::V4(addr::RT_CLUSTER),
    node: |n| IpAddr::V4(addr::node(n)),
    pool: addr::POOL,
    host_len: 32,
    podnet: addr::POD_NET,
    pod_len: 24,
};

const V6_POLICY: FamilyPolicy = FamilyPolicy {
    suffix: "-v6",
    bird_suffix: "6",
    bird_node_suffix: "v6",
    channel: "ipv6",
    router: IpAddr::V6(addr6::RT_CLUSTER),
    node: |n| IpAddr::V6(addr6::node(n)),
    pool: addr6::POOL,
    host_len: 128,
    podnet: addr6::POD_NET,
    pod_len: 64,
};

fn families(dual_stack: bool) -> &'static [FamilyPolicy] {
    if dual_stack {
        &[V4_POLICY, V6_POLICY]
    } else {
        &[V4_POLICY]
    }
}

/// gobgpd's TOML (the approach of lab/vagrant's template: multipath, import/export policy,
/// `replace-peer-as` towards the nodes; passive so that the speakers' connects win at once).
/// `dual_stack` adds an IPv6 session per node (family ipv6-unicast only) and the IPv6
/// prefix sets (gobgpd keeps one family per prefix set).
pub fn gobgp_toml(nodes: u8, dual_stack: bool) -> String {
    let mut s = String::new();
    let mut listen = vec![format!("\"{}\"", addr::RT_CLUSTER)];
    if dual_stack {
        listen.push(format!("\"{}\"", addr6::RT_CLUSTER));
    }
    let _ = write!(
        s,
        r#"[global.config]
  as = {asn}
  router-id = "{rid}"
  port = 179
  local-address-list = [{listen}]

[global.use-multiple-paths.config]
  enabled = true
"#,
        asn = addr::ROUTER_ASN,
        rid = addr::RT_CLUSTER,
        listen = listen.join(", "),
    );
    for f in families(dual_stack) {
        let _ = write!(
            s,
            r#"
[[defined-sets.prefix-sets]]
  prefix-set-name = "from-cluster{sfx}"
  [[defined-sets.prefix-sets.prefix-list]]
    ip-prefix = "{pool}"
    masklength-range = "{host}..{host}"
  [[defined-sets.prefix-sets.prefix-list]]
    ip-prefix = "{podnet}"
    masklength-range = "{pod}..{pod}"

[[defined-sets.prefix-sets]]
  prefix-set-name = "to-cluster{sfx}"
  [[defined-sets.prefix-sets.prefix-list]]
    ip-prefix = "{podnet}"
    masklength-range = "{pod}..{pod}"
"#,
            sfx = f.suffix,
            pool = f.pool,
            host = f.host_len,
            podnet = f.podnet,
            pod = f.pod_len,
        );
    }
    for (policy, set, statement) in [
        ("import-from-cluster", "from-cluster", "pool-and-pod-cidrs"),
        ("export-to-cluster", "to-cluster", "pod-cidrs"),
    ] {
        let _ = write!(s, "\n[[policy-definitions]]\n  name = \"{policy}\"\n");
        for f in families(dual_stack) {
            let _ = write!(
                s,
                r#"  [[policy-definitions.statements]]
    name = "{statement}{sfx}"
    [policy-definitions.statements.conditions.match-prefix-set]
      prefix-set = "{set}{sfx}"
      match-set-options = "any"
    [policy-definitions.statements.actions]
      route-disposition = "accept-route"
"#,
                sfx = f.suffix,
            );
        }
    }
    s.push_str(
        r#"
[global.apply-policy.config]
  import-policy-list = ["import-from-cluster"]
  default-import-policy = "reject-route"
  export-policy-list = ["export-to-cluster"]
  default-export-policy = "reject-route"
"#,
    );
    let mut neighbors: Vec<(IpAddr, String, &str)> = (1..=nodes)
        .map(|n| {
            (
                IpAddr::V4(addr::node(n)),
                Names::node_name(n),
                "ipv4-unicast",
            )
        })
        .collect();
    if dual_stack {
        neighbors.extend((1..=nodes).map(|n| {
            (
                IpAddr::V6(addr6::node(n)),
                format!("{}-v6", Names::node_name(n)),
                "ipv6-unicast",
            )
        }));
    }
    for (ip, name, family) in neighbors {
        let _ = write!(
            s,
            r#"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{ip}"
    peer-as = {cluster}
    description = "{name}"
  [neighbors.transport.config]
    passive-mode = true
  [neighbors.as-path-options.config]
    replace-peer-as = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "{family}"
"#,
            cluster = addr::CLUSTER_ASN,
        );
    }
    s
}

/// BIRD's config: BGP to every node, kernel export with `merge paths` (ECMP); with
/// `dual_stack` a second kernel protocol, IPv6 filters and one `nodeNv6` protocol per node
/// as well; with `bfd` BFD on every session (both families) and one `protocol bfd` with
/// those timers. `error wait time 1, 10` then: else a BFD-triggered down keeps the session
/// idle for 60 s (BIRD's default error wait).
pub fn bird_conf(nodes: u8, dual_stack: bool, bfd: Option<&RouterBfd>) -> String {
    let mut s = format!(
        "router id {};\nlog stderr all;\nprotocol device {{ scan time 10; }}\n",
        addr::RT_CLUSTER
    );
    let session_bfd = if bfd.is_some() {
        "  bfd on;\n  error wait time 1, 10;\n"
    } else {
        ""
    };
    for f in families(dual_stack) {
        bird_family(&mut s, f, nodes, session_bfd);
    }
    if let Some(b) = bfd {
        let _ = writeln!(
            s,
            "protocol bfd {{\n  interface \"*\" {{ min rx interval {} ms; min tx interval {} ms; multiplier {}; }};\n}}",
            b.receive_ms, b.transmit_ms, b.multiplier
        );
    }
    s
}

/// One family's part of BIRD's config: its kernel protocol, filters (pool hosts and pod
/// CIDRs in, pod CIDRs out with the cluster AS stripped), template and node protocols.
fn bird_family(s: &mut String, f: &FamilyPolicy, nodes: u8, session_bfd: &str) {
    let kernel = if f.bird_suffix.is_empty() {
        String::new()
    } else {
        format!(" kernel{}", f.bird_suffix)
    };
    let _ = write!(
        s,
        r#"protocol kernel{kernel} {{
  {ch} {{ import none; export where source = RTS_BGP; }};
  merge paths on;
}}
filter from_cluster{sfx} {{
  if net ~ [ {pool}{{{host},{host}}}, {podnet}{{{pod},{pod}}} ] then {{
    # RFC 8326: a draining node's routes lose to every other path.
    if (65535, 0) ~ bgp_community then bgp_local_pref = 0;
    accept;
  }}
  reject;
}}
filter to_cluster{sfx} {{
  if net ~ [ {podnet}{{{pod},{pod}}} ] then {{
    bgp_path = delete(bgp_path, {cluster});
    accept;
  }}
  reject;
}}
template bgp nodes{sfx} {{
  local {rid} as {asn};
  passive on;
  # Helper only, for speakers that offer graceful restart (ferrolb's is opt-in per peer).
  graceful restart aware;
  {ch} {{ import filter from_cluster{sfx}; export filter to_cluster{sfx}; }};
{session_bfd}}}
"#,
        ch = f.channel,
        sfx = f.bird_suffix,
        rid = f.router,
        asn = addr::ROUTER_ASN,
        cluster = addr::CLUSTER_ASN,
        pool = f.pool,
        host = f.host_len,
        podnet = f.podnet,
        pod = f.pod_len,
    );
    for n in 1..=nodes {
        let _ = writeln!(
            s,
            "protocol bgp node{n}{} from nodes{} {{ neighbor {} as {}; }}",
            f.bird_node_suffix,
            f.bird_suffix,
            (f.node)(n),
            addr::CLUSTER_ASN
        );
    }
}

/// The node number of BIRD's protocol for node `n`'s IPv6 session (`nodeNv6`).
pub fn bird_node_v6(protocol: &str) -> Option<u8> {
    protocol
        .strip_prefix("node")?
        .strip_suffix("v6")?
        .parse()
        .ok()
}

/// FRR's IPv6 part: IPv6 prefix lists, the IPv6 neighbours (passive), taken out of the IPv4
/// family (`frr defaults traditional` activates every neighbour there) and activated in
/// IPv6 unicast with the IPv4 policy's twins. bgpd reads a second `router bgp` block for
/// the same AS as more commands for the same instance.
pub fn frr_conf_v6(nodes: u8) -> String {
    let mut s = format!(
        "ipv6 prefix-list from-cluster6 seq 10 permit {pool} ge 128\n\
         ipv6 prefix-list from-cluster6 seq 20 permit {podnet} ge 64 le 64\n\
         ipv6 prefix-list to-cluster6 seq 10 permit {podnet} ge 64 le 64\n!\n\
         router bgp {asn}\n",
        pool = addr6::POOL,
        podnet = addr6::POD_NET,
        asn = addr::ROUTER_ASN,
    );
    let ips: Vec<_> = (1..=nodes).map(addr6::node).collect();
    for ip in &ips {
        let _ = writeln!(s, " neighbor {ip} remote-as {}", addr::CLUSTER_ASN);
        let _ = writeln!(s, " neighbor {ip} passive");
    }
    s.push_str(" address-family ipv4 unicast\n");
    for ip in &ips {
        let _ = writeln!(s, "  no neighbor {ip} activate");
    }
    s.push_str(" exit-address-family\n address-family ipv6 unicast\n  maximum-paths 64\n");
    for ip in &ips {
        let _ = writeln!(s, "  neighbor {ip} activate");
        let _ = writeln!(s, "  neighbor {ip} as-override");
        let _ = writeln!(s, "  neighbor {ip} prefix-list from-cluster6 in");
        let _ = writeln!(s, "  neighbor {ip} prefix-list to-cluster6 out");
    }
    s.push_str(" exit-address-family\n!\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gobgp_config_peers_every_node_with_replace_peer_as() {
        let t = gobgp_toml(3, false);
        for ip in ["172.17.0.21", "172.17.0.22", "172.17.0.23"] {
            assert!(t.contains(&format!("neighbor-address = \"{ip}\"")), "{t}");
        }
        assert_eq!(t.matches("replace-peer-as = true").count(), 3);
        assert!(!t.contains("172.17.0.24"));
        assert!(!t.contains("fd00:"), "no IPv6 unless dual-stack");
    }

    #[test]
    fn gobgp_dual_stack_adds_v6_sessions_and_one_family_per_prefix_set() {
        let t = gobgp_toml(2, true);
        assert!(t.contains(r#"local-address-list = ["172.17.0.1", "fd00:172:17::1"]"#));
        assert!(t.contains("neighbor-address = \"fd00:172:17::22\""));
        assert_eq!(t.matches("afi-safi-name = \"ipv6-unicast\"").count(), 2);
        assert_eq!(t.matches("afi-safi-name = \"ipv4-unicast\"").count(), 2);
        assert!(t.contains("prefix-set-name = \"from-cluster-v6\""));
        assert!(t.contains("masklength-range = \"128..128\""));
        assert_eq!(t.matches("[[policy-definitions]]").count(), 2);
        assert_eq!(t.matches("prefix-set = \"to-cluster-v6\"").count(), 1);
    }

    #[test]
    fn bird_config_merges_paths_and_strips_cluster_as() {
        let c = bird_conf(2, false, None);
        assert!(c.contains("merge paths on"));
        assert!(c.contains("delete(bgp_path, 64522)"));
        assert!(c.contains("protocol bgp node2 from nodes { neighbor 172.17.0.22 as 64522; }"));
        assert!(c.contains("172.17.254.0/24{32,32}, 10.244.0.0/16{24,24}"));
        assert!(!c.contains("fd00:"), "no IPv6 unless dual-stack");
    }

    #[test]
    fn bird_v6_sessions_filters_and_kernel() {
        let c = bird_conf(2, true, None);
        assert!(c.contains("protocol kernel {\n  ipv4 {"));
        assert!(c.contains("protocol kernel kernel6"));
        assert!(c.contains("local fd00:172:17::1 as 64512;"));
        assert!(c.contains("fd00:172:17:254::/112{128,128}"));
        assert!(
            c.contains("protocol bgp node2v6 from nodes6 { neighbor fd00:172:17::22 as 64522; }")
        );
        assert!(!c.contains("node3v6"));
        assert_eq!(bird_node_v6("node12v6"), Some(12));
        assert_eq!(bird_node_v6("node1"), None);
    }

    #[test]
    fn frr_v6_neighbours_only_in_ipv6_unicast() {
        let c = frr_conf_v6(3);
        assert!(c.contains("  no neighbor fd00:172:17::23 activate\n"));
        assert!(c.contains("  neighbor fd00:172:17::21 prefix-list from-cluster6 in\n"));
        let v6_af = c.split("address-family ipv6 unicast").nth(1).unwrap();
        assert!(v6_af.contains("maximum-paths 64"));
        assert_eq!(v6_af.matches(" activate\n").count(), 3);
    }
}
