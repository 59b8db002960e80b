//! What this node announces, as a pure function of plain data.
//!
//! The speaker's Kubernetes watchers fill [`NodeView`], [`ServiceView`] and the endpoints,
//! and the session layer diffs the returned [`Decision`] against what each BGP session has
//! already sent. Nothing here knows about tokio, sockets or the API server, so every rule of
//! `reference/metallb-compat.md` ("When a node announces a Service") is tested as a table.
//!
//! Rules, in order:
//! - peers: only those whose `node-selectors` match this node's labels get a session;
//! - services: `type: LoadBalancer` with status IPs; with `--lb-class X` only class X, without
//!   it no service that sets any class;
//! - the node announces no Service IP when it carries
//!   `node.kubernetes.io/exclude-from-external-load-balancers` (unless told to ignore the
//!   label) or its `NetworkUnavailable` condition is True;
//! - `externalTrafficPolicy: Local`: only with a usable endpoint on this node;
//!   `Cluster`: with a usable endpoint anywhere;
//! - a usable endpoint is `ready` true or unset, or `serving` (true or unset) when the Service
//!   publishes not-ready addresses; an address that is not usable in any endpoint (e.g. ready
//!   in one EndpointSlice, not ready in another) is not usable at all: not-ready wins per
//!   address, as in MetalLB's `hasHealthyEndpoint`;
//! - each IP becomes one prefix per advertisement of its pool, masked to the
//!   aggregation length, with the advertisement's communities; LOCAL_PREF only towards iBGP
//!   peers, and there 0 when the advertisement sets none (what MetalLB's native speaker
//!   sends, so routers rank MetalLB and ferrolb nodes equally during a migration); an IP
//!   outside every pool is not announced and is reported as a problem; advertisements from
//!   CRs may name their peers (`peers`) and nodes (`nodeSelectors`): they go only to those
//!   peers, only from those nodes, and an IP none of whose advertisements takes this node
//!   (a pool no BGPAdvertisement selects, say) is not announced from it;
//! - pod CIDRs (`--pod-cidr-mode` advertise or advertise-and-install) go to every selected
//!   peer, without communities, whatever the exclusion label says: pods on an excluded node
//!   still need to be reachable.
//!
//! When two advertisements yield the same prefix (aggregation), their communities are merged
//! and the highest LOCAL_PREF wins, so the result never depends on iteration order.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::{Community, Config, Peer, Protocol};
use ipnet::IpNet;

/// The label that keeps a node out of external load balancing.
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// How pod CIDRs are routed over BGP (`--pod-cidr-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodCidrMode {
    /// Neither announce nor install (default: the CNI routes pods).
    #[default]
    Off,
    /// Announce this node's pod CIDRs.
    Advertise,
    /// Announce them and install pod routes learned from peers.
    AdvertiseAndInstall,
}

impl PodCidrMode {
    /// Whether this node's pod CIDRs are announced.
    pub fn advertises(self) -> bool {
        !matches!(self, PodCidrMode::Off)
    }
}

/// The speaker's own options that affect the decision.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--lb-class`: handle only Services of this class.
    pub lb_class: Option<String>,
    /// Announce even from nodes labelled [`EXCLUDE_LB_LABEL`].
    pub ignore_exclude_lb: bool,
    /// `--pod-cidr-mode`.
    pub pod_cidr_mode: PodCidrMode,
    /// `--drain-on-cordon`: a cordoned node (`spec.unschedulable`) is excluded like one
    /// with [`EXCLUDE_LB_LABEL`] (and drained first, as the label is).
    pub exclude_cordoned: bool,
    /// Graceful shutdown (RFC 8326) while the node drains: every Service route carries
    /// the GRACEFUL_SHUTDOWN community and, towards iBGP peers, LOCAL_PREF 0, so routers
    /// that honour it move new flows to the other nodes before the routes are withdrawn.
    /// Pod CIDRs are left alone (only this node can reach its pods).
    pub graceful_shutdown: bool,
}

/// RFC 8326's well-known GRACEFUL_SHUTDOWN community, 65535:0.
pub const GRACEFUL_SHUTDOWN: Community = Community::Standard(0xFFFF_0000);

/// This node, as far as the decision cares (comparable, so an unchanged Node update is
/// skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The `NetworkUnavailable` condition is True.
    pub network_unavailable: bool,
    /// `spec.podCIDRs` (or `spec.podCIDR`).
    pub pod_cidrs: Vec<IpNet>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
}

pub use ferrolb_config::service::TrafficPolicy;

/// One endpoint of a Service (from its EndpointSlices).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointView {
    /// `nodeName` of the endpoint.
    pub node_name: Option<String>,
    /// `addresses` of the endpoint (the key of the not-ready-wins rule).
    pub addresses: Vec<String>,
    /// `conditions.ready`.
    pub ready: Option<bool>,
    /// `conditions.serving`.
    pub serving: Option<bool>,
}

/// One Service, as far as the decision cares.
#[derive(Debug, Clone, Default)]
pub struct ServiceView {
    /// `namespace/name`.
    pub key: String,
    /// `spec.type == LoadBalancer`.
    pub is_load_balancer: bool,
    /// `spec.loadBalancerClass`.
    pub lb_class: Option<String>,
    /// `status.loadBalancer.ingress[].ip`.
    pub ips: Vec<IpAddr>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// `spec.publishNotReadyAddresses`.
    pub publish_not_ready: bool,
    /// Every endpoint of every EndpointSlice of the Service.
    pub endpoints: Vec<EndpointView>,
}

/// A peer as operators name it in logs, metrics and the status page: address and port.
/// (The decision, the sessions and the BGP speaker identify a peer by its address alone:
/// one session per address, [`session_peers`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    /// `peer-address`.
    pub address: IpAddr,
    /// `peer-port`.
    pub port: u16,
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.address {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// Why a prefix is announced.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// A LoadBalancer IP of these Services (several when shared or aggregated).
    Service(BTreeSet<String>),
    /// This node's pod CIDR.
    PodCidr,
}

/// The attributes of one announced prefix towards one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Standard and large communities, sorted, no duplicates.
    pub communities: BTreeSet<Community>,
    /// LOCAL_PREF (iBGP peers only; for a Service 0 unless the advertisement sets one).
    pub local_pref: Option<u32>,
    /// What the prefix stands for.
    pub origin: Origin,
    /// The endpoint weight to send as link bandwidth, when every Service behind the
    /// prefix asks for it (`ferrolb-weight-by-endpoints` on a `Local` Service).
    pub weight: Option<Weight>,
}

/// How much of a prefix's traffic this node can take: its ready endpoints, per Service
/// behind the prefix (several when the IP is shared or the prefix aggregated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weight {
    /// Our AS towards the peer (the link bandwidth community's global administrator).
    pub local_as: u32,
    /// `namespace/name` -> usable endpoint addresses of that Service on this node.
    pub endpoints: BTreeMap<String, u32>,
}

impl Weight {
    /// Usable local endpoints of every Service behind the prefix together.
    pub fn total(&self) -> u32 {
        self.endpoints
            .values()
            .fold(0u32, |a, b| a.saturating_add(*b))
    }
}

/// A Service that cannot be announced, with the reason (becomes a Warning event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `namespace/name`.
    pub service: String,
    /// Why.
    pub reason: String,
}

/// Everything this node announces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// For every peer this node peers with (even with nothing to announce): prefix -> advert.
    pub per_peer: BTreeMap<IpAddr, BTreeMap<IpNet, Advert>>,
    /// Services announced from this node, with their announced IPs.
    pub announced_services: BTreeMap<String, Vec<IpAddr>>,
    /// Services with status IPs that cannot be announced by anyone (config problems).
    pub problems: Vec<Problem>,
    /// Services announced, but not as configured: endpoint weighting asked for a Service
    /// whose policy is `Cluster` (every node takes its traffic; there is nothing to weigh).
    pub weight_ignored: Vec<Problem>,
}

/// Whether the speaker handles this Service at all (type and class).
pub fn handles_service(svc: &ServiceView, opts: &Options) -> bool {
    ferrolb_config::service::handles(
        svc.is_load_balancer,
        svc.lb_class.as_deref(),
        opts.lb_class.as_deref(),
    )
}

/// Whether this node may announce Service IPs at all.
pub fn node_announces_services(node: &NodeView, opts: &Options) -> bool {
    !node_excluded(node, opts) && !node.network_unavailable
}

/// Whether the node is taken out of load balancing: the exclusion label, or a cordon with
/// `--drain-on-cordon`; `--ignore-exclude-lb` overrides both.
pub fn node_excluded(node: &NodeView, opts: &Options) -> bool {
    !opts.ignore_exclude_lb
        && (node.labels.contains_key(EXCLUDE_LB_LABEL)
            || (opts.exclude_cordoned && node.unschedulable))
}

fn endpoint_usable(ep: &EndpointView, publish_not_ready: bool) -> bool {
    ep.ready != Some(false) || (publish_not_ready && ep.serving != Some(false))
}

/// Whether some address of these endpoints is usable everywhere it appears. An address
/// listed by several endpoints (several EndpointSlices) counts only if every listing is
/// usable: not-ready wins, as in MetalLB. An endpoint without addresses (never sent by the
/// API server) counts on its own.
fn any_usable_address<'a>(
    endpoints: impl Iterator<Item = &'a EndpointView> + Clone,
    publish_not_ready: bool,
) -> bool {
    if endpoints
        .clone()
        .all(|ep| endpoint_usable(ep, publish_not_ready))
    {
        // Common case, no allocation: nothing is unusable.
        return endpoints.clone().next().is_some();
    }
    let mut by_address: BTreeMap<&str, bool> = BTreeMap::new();
    for ep in endpoints {
        let usable = endpoint_usable(ep, publish_not_ready);
        if ep.addresses.is_empty() {
            if usable {
                return true;
            }
            continue;
        }
        for a in &ep.addresses {
            let seen = by_address.entry(a.as_str()).or_insert(usable);
            *seen &= usable;
        }
    }
    by_address.values().any(|usable| *usable)
}

/// The Service's usable endpoint addresses on this node, by the same not-ready-wins rule
/// (an endpoint without addresses counts once).
pub fn usable_endpoints_here(svc: &ServiceView, node_name: &str) -> u32 {
    let pnr = svc.publish_not_ready;
    let mut by_address: BTreeMap<&str, bool> = BTreeMap::new();
    let mut without_address = 0u32;
    for ep in &svc.endpoints {
        let usable = endpoint_usable(ep, pnr);
        let here = ep.node_name.as_deref() == Some(node_name);
        if ep.addresses.is_empty() {
            without_address += u32::from(usable && here);
            continue;
        }
        for a in &ep.addresses {
            // Every listing of the address counts for not-ready-wins, wherever it is; it
            // is a local endpoint when some listing puts it on this node.
            let seen = by_address.entry(a.as_str()).or_insert(true);
            *seen &= usable;
        }
    }
    let local: BTreeSet<&str> = svc
        .endpoints
        .iter()
        .filter(|ep| ep.node_name.as_deref() == Some(node_name))
        .flat_map(|ep| ep.addresses.iter().map(String::as_str))
        .collect();
    let listed = by_address
        .iter()
        .filter(|(a, usable)| **usable && local.contains(**a))
        .count();
    u32::try_from(listed)
        .unwrap_or(u32::MAX)
        .saturating_add(without_address)
}

/// Whether this node should announce the Service's IPs, by traffic policy and endpoints.
/// `Local` needs a usable address on this node and (as MetalLB checks both) one anywhere.
pub fn service_announced_here(svc: &ServiceView, node_name: &str) -> bool {
    let pnr = svc.publish_not_ready;
    let anywhere = any_usable_address(svc.endpoints.iter(), pnr);
    match svc.traffic_policy {
        TrafficPolicy::Cluster => anywhere,
        TrafficPolicy::Local => {
            let here = svc
                .endpoints
                .iter()
                .filter(|ep| ep.node_name.as_deref() == Some(node_name));
            anywhere && any_usable_address(here, pnr)
        }
    }
}

/// `ip` masked to `len` bits (clamped to the family's width).
pub fn aggregate(ip: IpAddr, len: u8) -> IpNet {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let net = IpNet::new(ip, len.min(max)).unwrap_or_else(|_| IpNet::from(ip));
    net.trunc()
}

fn merge(into: &mut BTreeMap<IpNet, Advert>, prefix: IpNet, advert: Advert) {
    match into.get_mut(&prefix) {
        None => {
            into.insert(prefix, advert);
        }
        Some(existing) => {
            existing.communities.extend(advert.communities);
            existing.local_pref = existing.local_pref.max(advert.local_pref);
            // Weighted only when everything behind the prefix is: an unweighted Service
            // (Cluster policy, weighting off) takes traffic in proportions nothing here knows.
            existing.weight = match (existing.weight.take(), advert.weight) {
                (Some(mut a), Some(b)) => {
                    for (svc, n) in b.endpoints {
                        let e = a.endpoints.entry(svc).or_default();
                        *e = (*e).max(n);
                    }
                    Some(a)
                }
                _ => None,
            };
            existing.origin = match (&existing.origin, advert.origin) {
                (Origin::Service(a), Origin::Service(b)) => {
                    Origin::Service(a.iter().cloned().chain(b).collect())
                }
                // A pod CIDR that also covers a Service IP stays a pod CIDR.
                (Origin::PodCidr, _) | (_, Origin::PodCidr) => Origin::PodCidr,
            };
        }
    }
}

/// The configured peers this node has a session with, in configuration order: those
/// that select the node, and of those the first entry per address (the BGP speaker keeps
/// one session per address); then the entries left out for repeating an address. The
/// one rule for both the sessions ([`crate::peers::desired_peers`]) and the tables
/// ([`decide`]), so a session's settings and its routes always come from the same entry.
pub fn session_peers<'a>(
    config: &'a Config,
    labels: &BTreeMap<String, String>,
) -> (Vec<&'a Peer>, Vec<&'a Peer>) {
    let mut seen = std::collections::BTreeSet::new();
    config
        .peers
        .iter()
        .filter(|p| p.selects_node(labels))
        .partition(|p| seen.insert(p.address))
}

/// Computes everything this node announces to each of its peers.
pub fn decide(
    config: &Config,
    node: &NodeView,
    services: &[ServiceView],
    opts: &Options,
) -> Decision {
    let (peers, _repeated) = session_peers(config, &node.labels);
    let mut decision = Decision {
        per_peer: peers.iter().map(|p| (p.address, BTreeMap::new())).collect(),
        ..Decision::default()
    };

    let node_ok = node_announces_services(node, opts);
    for svc in services.iter().filter(|s| handles_service(s, opts)) {
        let mut wanted: Vec<(IpAddr, &ferrolb_config::Pool)> = Vec::new();
        for ip in &svc.ips {
            match config.pool_for_ip(*ip) {
                None => decision.problems.push(Problem {
                    service: svc.key.clone(),
                    reason: format!("IP {ip} is not in any configured address pool; not announced"),
                }),
                Some(pool) if pool.protocol != Protocol::Bgp => {}
                Some(pool) => wanted.push((*ip, pool)),
            }
        }
        // Only the advertisements whose node selectors take this node (CRs; a ConfigMap's
        // always do). An IP with none is not announced from here.
        wanted.retain(|(_, pool)| {
            pool.bgp_advertisements
                .iter()
                .any(|a| a.selects_node(&node.labels))
        });
        if wanted.is_empty() || !node_ok || !service_announced_here(svc, &node.name) {
            continue;
        }
        let origin = Origin::Service(BTreeSet::from([svc.key.clone()]));
        let local_endpoints = (svc.traffic_policy == TrafficPolicy::Local)
            .then(|| usable_endpoints_here(svc, &node.name));
        let weighted_pools: BTreeSet<&str> = wanted
            .iter()
            .filter(|(_, pool)| {
                pool.bgp_advertisements
                    .iter()
                    .any(|a| a.weight_by_endpoints)
            })
            .map(|(_, pool)| pool.name.as_str())
            .collect();
        if local_endpoints.is_none() && !weighted_pools.is_empty() {
            decision.weight_ignored.push(Problem {
                service: svc.key.clone(),
                reason: format!(
                    "pool {:?} weights by endpoints (ferrolb-weight-by-endpoints), which needs \
                     externalTrafficPolicy: Local; announced without link bandwidth",
                    weighted_pools.iter().next().copied().unwrap_or_default()
                ),
            });
        }
        for peer in &peers {
            let table = decision.per_peer.entry(peer.address).or_default();
            for (ip, pool) in &wanted {
                let ads = pool
                    .bgp_advertisements
                    .iter()
                    .filter(|a| a.selects_node(&node.labels) && a.selects_peer(peer));
                for adv in ads {
                    let len = if ip.is_ipv4() {
                        adv.aggregation_length
                    } else {
                        adv.aggregation_length_v6
                    };
                    let weight = local_endpoints
                        .filter(|_| adv.weight_by_endpoints)
                        .map(|n| Weight {
                            local_as: peer.my_asn,
                            endpoints: BTreeMap::from([(svc.key.clone(), n)]),
                        });
                    let mut advert = Advert {
                        communities: adv.communities.iter().copied().collect(),
                        local_pref: peer.is_ibgp().then(|| adv.local_pref.unwrap_or(0)),
                        origin: origin.clone(),
                        weight,
                    };
                    if opts.graceful_shutdown {
                        advert.communities.insert(GRACEFUL_SHUTDOWN);
                        advert.local_pref = peer.is_ibgp().then_some(0);
                    }
                    merge(table, aggregate(*ip, len), advert);
                }
            }
        }
        decision
            .announced_services
            .insert(svc.key.clone(), wanted.iter().map(|(ip, _)| *ip).collect());
    }

    if opts.pod_cidr_mode.advertises() {
        for peer in &peers {
            let table = decision.per_peer.entry(peer.address).or_default();
            for cidr in &node.pod_cidrs {
                let advert = Advert {
                    communities: BTreeSet::new(),
                    local_pref: None,
                    origin: Origin::PodCidr,
                    weight: None,
                };
                merge(table, cidr.trunc(), advert);
            }
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
peers:
- peer-address: 172.17.0.1
  peer-asn: 64512
  my-asn: 64522
- peer-address: 172.17.0.2
  peer-asn: 64522
  my-asn: 64522
- peer-address: "fd00::1"
  peer-asn: 64512
  my-asn: 64522
  node-selectors:
  - match-labels:
      rack: r1
bgp-communities:
  no-export: 65535:65281
address-pools:
- name: plain
  protocol: bgp
  addresses: [172.17.254.0/24, "fd00:254::/112"]
  bgp-advertisements:
  - localpref: 200
    communities: [no-export, "large:64522:1:2"]
- name: agg
  protocol: bgp
  addresses: [198.51.100.0/24, "2001:db8::/64"]
  bgp-advertisements:
  - aggregation-length: 24
    aggregation-length-v6: 64
    communities: ["64512:7"]
  - {}
- name: l2
  protocol: layer2
  addresses: [192.168.9.0/24]
"#;

    fn config() -> Config {
        ferrolb_config::parse_config(BASE)
            .expect("test config parses")
            .config
    }

    fn node(labels: &[(&str, &str)]) -> NodeView {
        NodeView {
            name: "node-1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            network_unavailable: false,
            pod_cidrs: vec!["10.244.1.0/24".parse().unwrap()],
            unschedulable: false,
        }
    }

    fn ep(node: &str, ready: Option<bool>, serving: Option<bool>) -> EndpointView {
        EndpointView {
            node_name: Some(node.into()),
            addresses: Vec::new(),
            ready,
            serving,
        }
    }

    /// An endpoint with its address, as every EndpointSlice endpoint has.
    fn ep_at(node: &str, address: &str, ready: bool) -> EndpointView {
        EndpointView {
            addresses: vec![address.into()],
            ..ep(node, Some(ready), None)
        }
    }

    fn svc(key: &str, ips: &[&str], policy: TrafficPolicy, eps: Vec<EndpointView>) -> ServiceView {
        ServiceView {
            key: key.into(),
            is_load_balancer: true,
            lb_class: None,
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            traffic_policy: policy,
            publish_not_ready: false,
            endpoints: eps,
        }
    }

    /// One line per (peer, prefix): `peer prefix [communities] lp=N`; peers with nothing
    /// announced appear as `peer -`.
    fn render(d: &Decision) -> Vec<String> {
        let mut out = Vec::new();
        for (peer, table) in &d.per_peer {
            if table.is_empty() {
                out.push(format!("{peer} -"));
            }
            for (prefix, a) in table {
                let comms: Vec<String> = a.communities.iter().map(|c| c.to_string()).collect();
                let lp = a.local_pref.map_or("-".to_string(), |v| v.to_string());
                out.push(format!("{peer} {prefix} [{}] lp={lp}", comms.join(" ")));
            }
        }
        out
    }

    use TrafficPolicy::{Cluster, Local};

    struct Case {
        name: &'static str,
        node: NodeView,
        services: Vec<ServiceView>,
        opts: Options,
        want: &'static [&'static str],
    }

    const PEERS_NONE: &[&str] = &["172.17.0.1 -", "172.17.0.2 -"];
    const ONE_V4: &[&str] = &[
        "172.17.0.1 172.17.254.1/32 [65535:65281 large:64522:1:2] lp=-",
        "172.17.0.2 172.17.254.1/32 [65535:65281 large:64522:1:2] lp=200",
    ];

    fn cases() -> Vec<Case> {
        let ready_elsewhere = vec![ep("node-2", Some(true), None)];
        let ready_here = vec![ep("node-1", Some(true), None)];
        let mut class_x = svc("ns/x", &["172.17.254.1"], Cluster, ready_here.clone());
        class_x.lb_class = Some("x".into());
        let mut not_lb = svc("ns/n", &["172.17.254.1"], Cluster, ready_here.clone());
        not_lb.is_load_balancer = false;
        let mut pnr = svc(
            "ns/p",
            &["172.17.254.1"],
            Local,
            vec![ep("node-1", Some(false), Some(true))],
        );
        pnr.publish_not_ready = true;
        let mut unavailable = node(&[]);
        unavailable.network_unavailable = true;
        vec![
            Case {
                name: "cluster policy, ready endpoint on another node: every peer, LOCAL_PREF to iBGP only",
                node: node(&[]),
                services: vec![svc(
                    "ns/a",
                    &["172.17.254.1"],
                    Cluster,
                    ready_elsewhere.clone(),
                )],
                opts: Options::default(),
                want: ONE_V4,
            },
            Case {
                name: "cluster policy, no endpoints: nothing",
                node: node(&[]),
                services: vec![svc("ns/a", &["172.17.254.1"], Cluster, vec![])],
                opts: Options::default(),
                want: PEERS_NONE,
            },
            Case {
                name: "cluster policy, all endpoints unready: nothing",
                node: node(&[]),
                services: vec![svc(
                    "ns/a",
                    &["172.17.254.1"],
                    Cluster,
                    vec![ep("node-1", Some(false), Some(true))],
                )],
                opts: Options::default(),
                want: PEERS_NONE,
            },
            Case {
                name: "ready unset counts as ready",
                node: node(&[]),
                services: vec![svc(
                    "ns/a",
                    &["172.17.254.1"],
                    Local,
                    vec![ep("node-1", None, None)],
                )],
                opts: Options::default(),
                want: ONE_V4,
            },
            Case {
                name: "local: one address ready in one slice, not ready in another: nothing",
                node: node(&[]),
                services: vec![svc(
                    "ns/a",
                    &["172.17.254.1"],
                    Local,
                    vec![
                        ep_at("node-1", "10.244.1.5", true),
                        ep_at("node-1", "10.244.1.5", false),
                    ],
                )],
                opts: Options::default(),
                want: PEERS_NONE,
            },
            Case {
                name: "cluster: the not-ready listing wins whichever slice comes first",
                node: node(&[]),
                services: vec![svc(
                    "ns/a",
                    &["172.17.254.1"],
                    Cluster,
                    vec![
                        ep_at("node-2", "10.244.2.5", false),
                        ep_at("node-2", "10.244.2.5", true),
                    ],
                )],
                opts: Options::default(),
                want: PEERS_NONE,
            },
            Case {
                name: "local: one address not ready, another ready here: announced",
                node: node(&[]),
                services: vec![svc(
                    "ns/a",
                    &["172.17.254.1"],
                    Local,
                    vec![
                        ep_at("node-1", "10.244.1.5", true),
                        ep_at("node-1", "10.244.1.5", false),
                        ep_at("node-1", "10.244.1.6", true),
                    ],
                )],
                opts: Options::default(),
                want: ONE_V4,
            },
            Case {
                name: "local policy, endpoint only elsewhere: nothing",
                node: node(&[]),
                services: vec![svc(
                    "ns/a",
                    &["172.17.254.1"],
                    Local,
                    ready_elsewhere.clone(),
                )],
                opts: Options::default(),
                want: PEERS_NONE,
            },
            Case {
                name: "local policy, ready endpoint here",
                node: node(&[]),
                services: vec![svc("ns/a", &["172.17.254.1"], Local, ready_here.clone())],
                opts: Options::default(),
                want: ONE_V4,
            },
            Case {
                name: "publishNotReadyAddresses: a serving endpoint counts",
                node: node(&[]),
                services: vec![pnr],
                opts: Options::default(),
                want: ONE_V4,
            },
            Case {
                name: "exclude-from-external-load-balancers label: nothing",
                node: node(&[(EXCLUDE_LB_LABEL, "")]),
                services: vec![svc("ns/a", &["172.17.254.1"], Cluster, ready_here.clone())],
                opts: Options::default(),
                want: PEERS_NONE,
            },
            Case {
                name: "exclude label ignored by flag",
                node: node(&[(EXCLUDE_LB_LABEL, "true")]),
                services: vec![svc("ns/a", &["172.17.254.1"], Cluster, ready_here.clone())],
                opts: Options {
                    ignore_exclude_lb: true,
                    ..Options::default()
                },
                want: ONE_V4,
            },
            Case {
                name: "NetworkUnavailable: nothing",
                node: unavailable,
                services: vec![svc("ns/a", &["172.17.254.1"], Cluster, ready_here.clone())],
                opts: Options::default(),
                want: PEERS_NONE,
            },
            Case {
                name: "a class is set and no --lb-class: ignored",
                node: node(&[]),
                services: vec![class_x.clone()],
                opts: Options::default(),
                want: PEERS_NONE,
            },
            Case {
                name: "--lb-class x handles class x",
                node: node(&[]),
                services: vec![class_x],
                opts: Options {
                    lb_class: Some("x".into()),
                    ..Options::default()
                },
                want: ONE_V4,
            },
            Case {
                name: "--lb-class x ignores services without a class",
                node: node(&[]),
                services: vec![svc("ns/a", &["172.17.254.1"], Cluster, ready_here.clone())],
                opts: Options {
                    lb_class: Some("x".into()),
                    ..Options::default()
                },
                want: PEERS_NONE,
            },
            Case {
                name: "not a LoadBalancer: ignored",
                node: node(&[]),
                services: vec![not_lb],
                opts: Options::default(),
                want: PEERS_NONE,
            },
            Case {
                name: "node selector matches: the IPv6 peer joins; IPv6 /128 with communities",
                node: node(&[("rack", "r1")]),
                services: vec![svc("ns/a", &["fd00:254::5"], Cluster, ready_here.clone())],
                opts: Options::default(),
                want: &[
                    "172.17.0.1 fd00:254::5/128 [65535:65281 large:64522:1:2] lp=-",
                    "172.17.0.2 fd00:254::5/128 [65535:65281 large:64522:1:2] lp=200",
                    "fd00::1 fd00:254::5/128 [65535:65281 large:64522:1:2] lp=-",
                ],
            },
            Case {
                name: "aggregation: two services share one /24 plus their own /32s; IPv6 /64",
                node: node(&[]),
                services: vec![
                    svc("ns/a", &["198.51.100.7"], Cluster, ready_here.clone()),
                    svc(
                        "ns/b",
                        &["198.51.100.9", "2001:db8::9"],
                        Cluster,
                        ready_here.clone(),
                    ),
                ],
                opts: Options::default(),
                want: &[
                    "172.17.0.1 198.51.100.0/24 [64512:7] lp=-",
                    "172.17.0.1 198.51.100.7/32 [] lp=-",
                    "172.17.0.1 198.51.100.9/32 [] lp=-",
                    "172.17.0.1 2001:db8::/64 [64512:7] lp=-",
                    "172.17.0.1 2001:db8::9/128 [] lp=-",
                    "172.17.0.2 198.51.100.0/24 [64512:7] lp=0",
                    "172.17.0.2 198.51.100.7/32 [] lp=0",
                    "172.17.0.2 198.51.100.9/32 [] lp=0",
                    "172.17.0.2 2001:db8::/64 [64512:7] lp=0",
                    "172.17.0.2 2001:db8::9/128 [] lp=0",
                ],
            },
            Case {
                name: "layer2 pool and an IP outside every pool: not announced",
                node: node(&[]),
                services: vec![
                    svc("ns/l2", &["192.168.9.1"], Cluster, ready_here.clone()),
                    svc("ns/out", &["203.0.113.1"], Cluster, ready_here.clone()),
                ],
                opts: Options::default(),
                want: PEERS_NONE,
            },
            Case {
                name: "pod CIDR mode advertise: pod CIDR to every peer, even from an excluded node",
                node: node(&[(EXCLUDE_LB_LABEL, "")]),
                services: vec![svc("ns/a", &["172.17.254.1"], Cluster, ready_here.clone())],
                opts: Options {
                    pod_cidr_mode: PodCidrMode::Advertise,
                    ..Options::default()
                },
                want: &[
                    "172.17.0.1 10.244.1.0/24 [] lp=-",
                    "172.17.0.2 10.244.1.0/24 [] lp=-",
                ],
            },
            Case {
                name: "pod CIDR mode off: no pod CIDR",
                node: node(&[]),
                services: vec![],
                opts: Options {
                    pod_cidr_mode: PodCidrMode::Off,
                    ..Options::default()
                },
                want: PEERS_NONE,
            },
        ]
    }

    #[test]
    fn decision_table() {
        let config = config();
        let mut failures = Vec::new();
        for case in cases() {
            let got = render(&decide(&config, &case.node, &case.services, &case.opts));
            if got != case.want {
                failures.push(format!(
                    "{}:\n  want {:#?}\n  got  {:#?}",
                    case.name, case.want, got
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn announced_services_and_problems() {
        let config = config();
        let services = vec![
            svc(
                "ns/a",
                &["172.17.254.1"],
                Local,
                vec![ep("node-1", Some(true), None)],
            ),
            svc(
                "ns/far",
                &["172.17.254.2"],
                Local,
                vec![ep("node-2", Some(true), None)],
            ),
            svc(
                "ns/out",
                &["203.0.113.1"],
                Cluster,
                vec![ep("node-1", Some(true), None)],
            ),
        ];
        let d = decide(&config, &node(&[]), &services, &Options::default());
        let announced: Vec<(&str, Vec<IpAddr>)> = d
            .announced_services
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        assert_eq!(
            announced,
            vec![("ns/a", vec!["172.17.254.1".parse().unwrap()])]
        );
        assert_eq!(
            d.problems,
            vec![Problem {
                service: "ns/out".into(),
                reason: "IP 203.0.113.1 is not in any configured address pool; not announced"
                    .into(),
            }]
        );
    }

    #[test]
    fn advertisements_from_crs_pick_their_peers_and_nodes() {
        use ferrolb_config::{BgpAdvertisement, NodeSelector};
        let mut config = config();
        config.peers[0].name = Some("ebgp".into());
        config.peers[1].name = Some("ibgp".into());
        config.pools[0].bgp_advertisements = vec![
            BgpAdvertisement {
                peers: vec!["ibgp".into()],
                local_pref: Some(300),
                ..BgpAdvertisement::default()
            },
            BgpAdvertisement {
                node_selectors: vec![NodeSelector {
                    match_labels: BTreeMap::from([("rack".into(), "r2".into())]),
                    ..NodeSelector::default()
                }],
                communities: vec![Community::Standard(7)],
                ..BgpAdvertisement::default()
            },
        ];
        // A pool that no advertisement selects (CRs): allocated, never announced.
        config.pools[1].bgp_advertisements.clear();
        let services = vec![
            svc(
                "ns/a",
                &["172.17.254.1"],
                Cluster,
                vec![ep("node-1", Some(true), None)],
            ),
            svc(
                "ns/b",
                &["198.51.100.7"],
                Cluster,
                vec![ep("node-1", Some(true), None)],
            ),
        ];
        let d = decide(&config, &node(&[]), &services, &Options::default());
        assert_eq!(
            render(&d),
            vec!["172.17.0.1 -", "172.17.0.2 172.17.254.1/32 [] lp=300",]
        );
        assert_eq!(
            d.announced_services.keys().collect::<Vec<_>>(),
            vec!["ns/a"]
        );
        let d = decide(
            &config,
            &node(&[("rack", "r2")]),
            &services,
            &Options::default(),
        );
        assert_eq!(
            render(&d),
            vec![
                "172.17.0.1 172.17.254.1/32 [0:7] lp=-",
                "172.17.0.2 172.17.254.1/32 [0:7] lp=300",
            ]
        );
        // Only the advertisement for ibgp, and this node is not in rack r2: ebgp gets
        // nothing, the Service is still announced (to ibgp).
        config.pools[0].bgp_advertisements.truncate(1);
        let d = decide(
            &config,
            &node(&[("rack", "r2")]),
            &services,
            &Options::default(),
        );
        assert_eq!(
            render(&d),
            vec!["172.17.0.1 -", "172.17.0.2 172.17.254.1/32 [] lp=300"]
        );
        // No advertisement takes this node: not announced, not listed.
        config.pools[0].bgp_advertisements[0].node_selectors = vec![NodeSelector {
            match_labels: BTreeMap::from([("rack".into(), "r9".into())]),
            ..NodeSelector::default()
        }];
        let d = decide(&config, &node(&[]), &services, &Options::default());
        assert_eq!(render(&d), PEERS_NONE);
        assert!(d.announced_services.is_empty());
    }

    #[test]
    fn shared_ip_merges_origins() {
        let config = config();
        let services = vec![
            svc(
                "ns/a",
                &["172.17.254.1"],
                Cluster,
                vec![ep("node-1", Some(true), None)],
            ),
            svc(
                "ns/b",
                &["172.17.254.1"],
                Cluster,
                vec![ep("node-1", Some(true), None)],
            ),
        ];
        let d = decide(&config, &node(&[]), &services, &Options::default());
        let key = "172.17.0.1".parse().unwrap();
        let advert = &d.per_peer[&key][&"172.17.254.1/32".parse::<IpNet>().unwrap()];
        assert_eq!(
            advert.origin,
            Origin::Service(BTreeSet::from(["ns/a".to_string(), "ns/b".to_string()]))
        );
    }

    const WEIGHTED: &str = r#"
peers:
- peer-address: 172.17.0.1
  peer-asn: 64512
  my-asn: 64522
address-pools:
- name: weighted
  protocol: bgp
  addresses: [172.17.254.0/24]
  bgp-advertisements:
  - ferrolb-weight-by-endpoints: true
- name: plain
  protocol: bgp
  addresses: [172.17.253.0/24]
- name: agg
  protocol: bgp
  addresses: [198.51.100.0/24]
  bgp-advertisements:
  - aggregation-length: 24
    ferrolb-weight-by-endpoints: true
"#;

    /// The weight sent to the one peer of [`WEIGHTED`] for `prefix`.
    fn weight_of(d: &Decision, prefix: &str) -> Option<u32> {
        let key = "172.17.0.1".parse().unwrap();
        d.per_peer[&key][&prefix.parse::<IpNet>().unwrap()]
            .weight
            .as_ref()
            .map(Weight::total)
    }

    #[test]
    fn weight_counts_ready_local_endpoints_by_address_not_ready_wins() {
        let config = ferrolb_config::parse_config(WEIGHTED).unwrap().config;
        let eps = vec![
            ep_at("node-1", "10.244.1.1", true),
            ep_at("node-1", "10.244.1.2", true),
            // Listed twice (two EndpointSlices): counts once.
            ep_at("node-1", "10.244.1.2", true),
            // Ready in one slice, not in another: not usable.
            ep_at("node-1", "10.244.1.3", true),
            ep_at("node-1", "10.244.1.3", false),
            ep_at("node-1", "10.244.1.4", false),
            // Elsewhere: not ours.
            ep_at("node-2", "10.244.2.1", true),
        ];
        let services = vec![
            svc("ns/w", &["172.17.254.1"], Local, eps.clone()),
            svc("ns/p", &["172.17.253.1"], Local, eps.clone()),
        ];
        let d = decide(&config, &node(&[]), &services, &Options::default());
        assert_eq!(weight_of(&d, "172.17.254.1/32"), Some(2));
        assert_eq!(
            weight_of(&d, "172.17.253.1/32"),
            None,
            "weighting is opt-in"
        );
        assert!(d.weight_ignored.is_empty());
        let key = "172.17.0.1".parse().unwrap();
        let w = d.per_peer[&key][&"172.17.254.1/32".parse::<IpNet>().unwrap()]
            .weight
            .clone()
            .unwrap();
        assert_eq!(w.local_as, 64522);
    }

    #[test]
    fn weighting_a_cluster_service_is_ignored_with_a_warning() {
        let config = ferrolb_config::parse_config(WEIGHTED).unwrap().config;
        let services = vec![svc(
            "ns/c",
            &["172.17.254.7"],
            Cluster,
            vec![ep_at("node-1", "10.244.1.1", true)],
        )];
        let d = decide(&config, &node(&[]), &services, &Options::default());
        assert_eq!(weight_of(&d, "172.17.254.7/32"), None);
        assert_eq!(d.weight_ignored.len(), 1);
        assert_eq!(d.weight_ignored[0].service, "ns/c");
        assert!(
            d.weight_ignored[0].reason.contains("\"weighted\"")
                && d.weight_ignored[0]
                    .reason
                    .contains("externalTrafficPolicy: Local"),
            "{:?}",
            d.weight_ignored
        );
        assert!(d.problems.is_empty(), "still announced: {:?}", d.problems);
        assert!(d.announced_services.contains_key("ns/c"));
    }

    #[test]
    fn weights_add_up_across_services_and_stop_at_an_unweighted_one() {
        let config = ferrolb_config::parse_config(WEIGHTED).unwrap().config;
        let two = vec![
            ep_at("node-1", "10.244.1.1", true),
            ep_at("node-1", "10.244.1.2", true),
        ];
        let three = vec![
            ep_at("node-1", "10.244.1.5", true),
            ep_at("node-1", "10.244.1.6", true),
            ep_at("node-1", "10.244.1.7", true),
        ];
        // Two Local Services aggregated into one /24: 2 + 3.
        let services = vec![
            svc("ns/a", &["198.51.100.1"], Local, two.clone()),
            svc("ns/b", &["198.51.100.2"], Local, three.clone()),
        ];
        let d = decide(&config, &node(&[]), &services, &Options::default());
        assert_eq!(weight_of(&d, "198.51.100.0/24"), Some(5));
        // Sharing one IP: the same sum.
        let services = vec![
            svc("ns/a", &["172.17.254.9"], Local, two.clone()),
            svc("ns/b", &["172.17.254.9"], Local, three.clone()),
        ];
        let d = decide(&config, &node(&[]), &services, &Options::default());
        assert_eq!(weight_of(&d, "172.17.254.9/32"), Some(5));
        // A Cluster Service behind the same prefix: no weight at all (its share is unknown).
        let services = vec![
            svc("ns/a", &["198.51.100.1"], Local, two),
            svc("ns/c", &["198.51.100.3"], Cluster, three),
        ];
        let d = decide(&config, &node(&[]), &services, &Options::default());
        assert_eq!(weight_of(&d, "198.51.100.0/24"), None);
    }

    #[test]
    fn a_cordoned_node_is_excluded_only_with_drain_on_cordon() {
        let mut n = node(&[]);
        n.unschedulable = true;
        let opts = Options::default();
        assert!(
            node_announces_services(&n, &opts),
            "cordon alone changes nothing"
        );
        let opts = Options {
            exclude_cordoned: true,
            ..Options::default()
        };
        assert!(!node_announces_services(&n, &opts));
        let opts = Options {
            exclude_cordoned: true,
            ignore_exclude_lb: true,
            ..Options::default()
        };
        assert!(node_announces_services(&n, &opts));
    }

    #[test]
    fn a_peer_address_listed_twice_gets_the_first_entrys_table_as_its_session() {
        // The parser refuses one address twice; a Config built otherwise still gets one
        // rule: the first entry is the session (peers::desired_peers) and the table is
        // built for that entry too (LOCAL_PREF only goes to iBGP peers).
        let mut config = config();
        let two: IpAddr = "172.17.0.2".parse().unwrap();
        let mut ibgp = config.peers[1].clone();
        assert_eq!(
            (ibgp.address, ibgp.my_asn, ibgp.peer_asn),
            (two, 64522, 64522)
        );
        ibgp.port = 1790;
        let mut ebgp = config.peers[1].clone();
        ebgp.peer_asn = 64512;
        config.peers.retain(|p| p.address != two);
        config.peers.insert(0, ibgp);
        config.peers.insert(1, ebgp);
        let (sessions, repeated) = session_peers(&config, &BTreeMap::new());
        let of_two = |v: &[&Peer]| -> Vec<(u16, u32)> {
            v.iter()
                .filter(|p| p.address == two)
                .map(|p| (p.port, p.peer_asn))
                .collect()
        };
        assert_eq!(of_two(&sessions), [(1790, 64522)]);
        assert_eq!(of_two(&repeated), [(179, 64512)]);
        let services = vec![svc(
            "ns/a",
            &["172.17.254.1"],
            Cluster,
            vec![ep("node-1", Some(true), None)],
        )];
        let d = decide(&config, &node(&[]), &services, &Options::default());
        assert_eq!(
            d.per_peer.keys().filter(|a| **a == two).count(),
            1,
            "one table per address"
        );
        let prefix: IpNet = "172.17.254.1/32".parse().unwrap();
        assert_eq!(
            d.per_peer[&two][&prefix].local_pref,
            Some(200),
            "iBGP entry"
        );
        let tables = crate::routes::tables(&d);
        assert_eq!(tables[&two][&prefix].attributes.local_pref, Some(200));
    }

    #[test]
    fn graceful_shutdown_marks_service_routes_only() {
        let config = config();
        let services = vec![svc(
            "ns/a",
            &["172.17.254.1"],
            Cluster,
            vec![ep("node-1", Some(true), None)],
        )];
        let opts = Options {
            graceful_shutdown: true,
            pod_cidr_mode: PodCidrMode::Advertise,
            ..Options::default()
        };
        let d = decide(&config, &node(&[]), &services, &opts);
        let ebgp = &d.per_peer[&"172.17.0.1".parse().unwrap()];
        let ibgp = &d.per_peer[&"172.17.0.2".parse().unwrap()];
        let svc_prefix: IpNet = "172.17.254.1/32".parse().unwrap();
        let pod: IpNet = "10.244.1.0/24".parse().unwrap();
        // 65535:0 beside the advertisement's own communities; LOCAL_PREF 0 on iBGP even
        // though the advertisement asks for 200; none on eBGP.
        for table in [ebgp, ibgp] {
            assert!(table[&svc_prefix].communities.contains(&GRACEFUL_SHUTDOWN));
            assert!(
                table[&svc_prefix]
                    .communities
                    .contains(&Community::Standard(65535 << 16 | 65281))
            );
            assert!(!table[&pod].communities.contains(&GRACEFUL_SHUTDOWN));
        }
        assert_eq!(ibgp[&svc_prefix].local_pref, Some(0));
        assert_eq!(ebgp[&svc_prefix].local_pref, None);
        assert_eq!(ibgp[&pod].local_pref, None);
        let normal = decide(&config, &node(&[]), &services, &Options::default());
        assert_eq!(
            normal.per_peer[&"172.17.0.2".parse().unwrap()][&svc_prefix].local_pref,
            Some(200)
        );
    }

    #[test]
    fn aggregate_masks_and_clamps() {
        assert_eq!(
            aggregate("10.1.2.3".parse().unwrap(), 24).to_string(),
            "10.1.2.0/24"
        );
        assert_eq!(
            aggregate("10.1.2.3".parse().unwrap(), 40).to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            aggregate("2001:db8::1".parse().unwrap(), 64).to_string(),
            "2001:db8::/64"
        );
    }
}
