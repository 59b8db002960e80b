//! Which BGP sessions this node should have, and how to get there from the current ones.
//!
//! Pure apart from the router-id lookup, which is passed in. A peer is identified by its
//! address (the BGP speaker's key); the plan touches only peers whose settings changed, and
//! the speaker's `update_peer` itself decides whether a change needs a session reset, so a
//! pool or Service change never reaches this module at all.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_bgp::session::PeerConfig;
use ferrolb_config::{Config, Peer};

/// What the node knows about itself that the sessions need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalAddrs {
    /// The node's IPv4 address (router id fallback; next hop of IPv4 routes on IPv6 sessions).
    pub ipv4: Option<Ipv4Addr>,
    /// The node's IPv6 address (next hop of IPv6 routes on IPv4 sessions).
    pub ipv6: Option<Ipv6Addr>,
}

/// The session settings for every peer this node should talk to, and the peers that cannot
/// be set up (with the reason, for the log and the status page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredPeers {
    /// Peer address -> settings.
    pub peers: BTreeMap<IpAddr, PeerConfig>,
    /// Peer address -> why it has no session.
    pub problems: BTreeMap<IpAddr, String>,
}

/// Computes the desired sessions. `source_towards(peer)` returns the local address the
/// kernel would use to reach a peer (the router id when the config sets none and it is IPv4).
pub fn desired_peers(
    config: &Config,
    labels: &BTreeMap<String, String>,
    local: LocalAddrs,
    source_towards: &mut dyn FnMut(&Peer) -> Option<IpAddr>,
) -> DesiredPeers {
    let mut out = DesiredPeers::default();
    let (peers, repeated) = crate::decision::session_peers(config, labels);
    for peer in peers {
        let router_id = peer.router_id.or_else(|| match source_towards(peer) {
            Some(IpAddr::V4(v4)) => Some(v4),
            _ => local.ipv4,
        });
        let Some(router_id) = router_id else {
            out.problems.insert(
                peer.address,
                "no router id: the peer sets no router-id and this node has no IPv4 address"
                    .to_string(),
            );
            continue;
        };
        let mut pc = PeerConfig::new(peer.address, peer.my_asn, peer.peer_asn);
        pc.port = peer.port;
        pc.source_address = peer.source_address;
        pc.router_id = Some(router_id);
        pc.hold_time = secs(peer.hold_time);
        pc.keepalive = Some(secs(peer.keepalive_time));
        pc.password = peer.password.clone();
        pc.ebgp_multihop = peer.ebgp_multihop;
        pc.graceful_restart = peer
            .graceful_restart
            .then(|| u16::try_from(peer.graceful_restart_time.as_secs()).unwrap_or(4095));
        pc.ipv4_next_hop = local.ipv4;
        pc.ipv6_next_hop = local.ipv6;
        out.peers.insert(peer.address, pc);
    }
    for peer in repeated {
        out.problems.insert(
            peer.address,
            format!(
                "peer {} is listed more than once (port {} ignored): one session per address",
                peer.address, peer.port
            ),
        );
    }
    out
}

fn secs(d: std::time::Duration) -> u16 {
    u16::try_from(d.as_secs()).unwrap_or(u16::MAX)
}

/// How to get from the current sessions to the desired ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerPlan {
    /// New peers.
    pub add: Vec<PeerConfig>,
    /// Peers whose settings changed (the speaker resets only when it must).
    pub update: Vec<PeerConfig>,
    /// Peers no longer wanted.
    pub remove: Vec<IpAddr>,
}

impl PeerPlan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

/// The difference between `current` and `desired`; unchanged peers are not mentioned.
pub fn plan(
    current: &BTreeMap<IpAddr, PeerConfig>,
    desired: &BTreeMap<IpAddr, PeerConfig>,
) -> PeerPlan {
    let mut p = PeerPlan::default();
    for (addr, want) in desired {
        match current.get(addr) {
            None => p.add.push(want.clone()),
            Some(have) if have != want => p.update.push(want.clone()),
            Some(_) => {}
        }
    }
    p.remove = current
        .keys()
        .filter(|a| !desired.contains_key(a))
        .copied()
        .collect();
    p
}

/// The local address the kernel picks to reach `peer` (a UDP `connect` sends nothing; it
/// only asks the routing table). With a configured source address, that address.
pub fn kernel_source_towards(peer: &Peer) -> Option<IpAddr> {
    if let Some(src) = peer.source_address {
        return Some(src);
    }
    let bind: std::net::SocketAddr = match peer.address {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = std::net::UdpSocket::bind(bind).ok()?;
    sock.connect((peer.address, peer.port)).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
peers:
- peer-address: 172.17.0.1
  peer-asn: 64512
  my-asn: 64522
  hold-time: 9s
  password: secret
- peer-address: 172.17.0.2
  peer-asn: 64512
  my-asn: 64522
  router-id: 10.9.9.9
  node-selectors:
  - match-labels: {rack: r1}
address-pools: []
"#;

    fn config(text: &str) -> Config {
        ferrolb_config::parse_config(text).expect("parses").config
    }

    /// CFG plus its first peer again on port 1179, which the config parser refuses: built
    /// by hand to check that the sessions stay one per address anyway.
    fn config_with_second_port() -> Config {
        let mut c = config(CFG);
        let mut again = c.peers[0].clone();
        again.port = 1179;
        c.peers.push(again);
        c
    }

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn desired_sessions_follow_selectors_and_resolve_router_ids() {
        let local = LocalAddrs {
            ipv4: Some("172.17.0.21".parse().unwrap()),
            ipv6: Some("fd00::21".parse().unwrap()),
        };
        let mut asked = Vec::new();
        let d = desired_peers(&config_with_second_port(), &labels(&[]), local, &mut |p| {
            asked.push(p.address);
            Some("172.17.0.99".parse().unwrap())
        });
        assert_eq!(d.peers.len(), 1, "{d:?}");
        let p = &d.peers[&"172.17.0.1".parse::<IpAddr>().unwrap()];
        assert_eq!(p.router_id, Some("172.17.0.99".parse().unwrap()));
        assert_eq!(p.hold_time, 9);
        assert_eq!(p.keepalive, Some(3));
        assert_eq!(p.password.as_deref(), Some("secret"));
        assert_eq!((p.local_as, p.remote_as, p.port), (64522, 64512, 179));
        assert_eq!(p.ipv6_next_hop, local.ipv6);
        assert!(
            d.problems
                .contains_key(&"172.17.0.1".parse::<IpAddr>().unwrap())
        );

        let d = desired_peers(&config(CFG), &labels(&[("rack", "r1")]), local, &mut |_| {
            None
        });
        assert_eq!(d.peers.len(), 2);
        let p1 = &d.peers[&"172.17.0.1".parse::<IpAddr>().unwrap()];
        assert_eq!(p1.router_id, local.ipv4, "falls back to the node's IPv4");
        let p2 = &d.peers[&"172.17.0.2".parse::<IpAddr>().unwrap()];
        assert_eq!(p2.router_id, Some("10.9.9.9".parse().unwrap()));

        let none = desired_peers(
            &config(CFG),
            &labels(&[]),
            LocalAddrs::default(),
            &mut |_| None,
        );
        assert!(none.peers.is_empty());
        assert!(none.problems[&"172.17.0.1".parse::<IpAddr>().unwrap()].contains("router id"));
    }

    #[test]
    fn graceful_restart_offered_only_where_configured_with_its_time() {
        let text = "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64512\n  my-asn: 64522\n  \
                    ferrolb-graceful-restart: true\n  ferrolb-graceful-restart-time: 30s\n\
                    - peer-address: 10.0.0.2\n  peer-asn: 64512\n  my-asn: 64522\n";
        let config = ferrolb_config::parse_config(text).unwrap().config;
        let local = LocalAddrs {
            ipv4: Some("10.0.0.21".parse().unwrap()),
            ipv6: None,
        };
        let d = desired_peers(&config, &labels(&[]), local, &mut |_| None);
        let gr = |a: &str| d.peers[&a.parse::<IpAddr>().unwrap()].graceful_restart;
        assert_eq!(gr("10.0.0.1"), Some(30));
        assert_eq!(gr("10.0.0.2"), None);
    }

    #[test]
    fn plan_touches_only_changed_peers() {
        let a = PeerConfig::new("10.0.0.1".parse().unwrap(), 1, 2);
        let b = PeerConfig::new("10.0.0.2".parse().unwrap(), 1, 2);
        let c = PeerConfig::new("10.0.0.3".parse().unwrap(), 1, 2);
        let mut b2 = b.clone();
        b2.hold_time = 30;
        let current = BTreeMap::from([(a.address, a.clone()), (b.address, b.clone())]);
        let desired = BTreeMap::from([
            (a.address, a.clone()),
            (b.address, b2.clone()),
            (c.address, c.clone()),
        ]);
        let p = plan(&current, &desired);
        assert_eq!(p.add, vec![c.clone()]);
        assert_eq!(p.update, vec![b2]);
        assert!(p.remove.is_empty());
        assert!(plan(&current, &current).is_empty());
        let p = plan(&current, &BTreeMap::new());
        assert_eq!(p.remove, vec![a.address, b.address]);
    }

    #[test]
    fn kernel_source_for_loopback_peer() {
        let mut peer = config(CFG).peers[0].clone();
        peer.address = "127.0.0.1".parse().unwrap();
        assert_eq!(
            kernel_source_towards(&peer),
            Some("127.0.0.1".parse().unwrap())
        );
        peer.source_address = Some("127.0.0.5".parse().unwrap());
        assert_eq!(
            kernel_source_towards(&peer),
            Some("127.0.0.5".parse().unwrap())
        );
    }
}
