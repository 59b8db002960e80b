//! BFD for this node's BGP sessions: every peer whose config names a `bfd-profile` gets a
//! BFD session with the profile's parameters, run by the `ferrolb-bgp` BFD engine, whose
//! failures take that BGP session down at once (RFC 5882, via
//! [`ferrolb_bgp::bfd::link_to_bgp`]).
//!
//! MetalLB's profile fields map onto the session like this (as FRR, which MetalLB's FRR mode
//! configures with the same values):
//! - `transmit-interval` / `receive-interval` / `detect-multiplier`: Desired Min TX, Required
//!   Min RX, Detect Mult;
//! - `passive-mode`: the passive role (wait for the router's first packet);
//! - `minimum-ttl`: the lowest TTL accepted on a multihop session (single hop always
//!   requires 255);
//! - `echo-mode` + `echo-interval`: ferrolb sends no Echo packets itself, but advertises
//!   `echo-interval` as its Required Min Echo RX so a router in echo mode may send Echo
//!   packets, which the node's kernel forwards back (single hop only, as FRR).
//!
//! Single hop or multihop is decided as FRR's bgpd does (`PEER_IS_MULTIHOP`): multihop for
//! `ebgp-multihop` peers and for iBGP peers that are not on a directly connected subnet.
//!
//! Level-triggered: [`desired_bfd`] computes the sessions from the configuration (pure),
//! [`BfdSessions::apply`] brings the engine there touching only what changed.

pub mod metrics;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_bgp::bfd::session::SessionConfig;
use ferrolb_bgp::bfd::{Bfd, PeerSpec};
use ferrolb_bgp::session::PeerConfig;
use ferrolb_config::{BfdProfile, Config};

/// One desired BFD session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdPeer {
    /// The profile it comes from.
    pub profile: String,
    /// The session.
    pub spec: PeerSpec,
}

/// The session parameters a profile gives a BGP peer.
pub fn peer_spec(profile: &BfdProfile, peer: &PeerConfig, multihop: bool) -> PeerSpec {
    let echo = if profile.echo_mode && !multihop {
        profile.echo_interval
    } else {
        Duration::ZERO
    };
    PeerSpec {
        local: peer.source_address,
        multihop,
        session: SessionConfig {
            desired_min_tx: profile.transmit_interval,
            required_min_rx: profile.receive_interval,
            detect_mult: profile.detect_multiplier,
            passive: profile.passive_mode,
            required_min_echo_rx: echo,
        },
        minimum_ttl: profile.minimum_ttl,
        ..PeerSpec::single_hop(peer.address)
    }
}

/// The BFD sessions this node should have: one per configured BGP peer (`peers`, by
/// address) whose config entry names a profile. The config entry is found as
/// [`crate::peers::desired_peers`] found it (the first one selecting this node).
/// `connected(ip)` says whether an address is on a directly connected subnet.
pub fn desired_bfd(
    config: &Config,
    labels: &BTreeMap<String, String>,
    peers: &BTreeMap<IpAddr, PeerConfig>,
    connected: &dyn Fn(IpAddr) -> bool,
) -> BTreeMap<IpAddr, BfdPeer> {
    let mut out = BTreeMap::new();
    for (addr, pc) in peers {
        let Some(entry) = config
            .peers
            .iter()
            .find(|p| p.address == *addr && p.selects_node(labels))
        else {
            continue;
        };
        let Some(name) = &entry.bfd_profile else {
            continue;
        };
        // The parser refuses undefined names; a missing one here means nothing to do.
        let Some(profile) = config.bfd_profile(name) else {
            continue;
        };
        let multihop = pc.ebgp_multihop || (pc.is_ibgp() && !connected(*addr));
        out.insert(
            *addr,
            BfdPeer {
                profile: name.clone(),
                spec: peer_spec(profile, pc, multihop),
            },
        );
    }
    out
}

/// Whether `ip` is inside the subnet of one of this host's interface addresses.
pub fn directly_connected(ip: IpAddr) -> bool {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return false;
    };
    for a in addrs {
        let (Some(addr), Some(mask)) = (a.address, a.netmask) else {
            continue;
        };
        let net = match (addr.as_sockaddr_in(), mask.as_sockaddr_in(), ip) {
            (Some(a), Some(m), IpAddr::V4(_)) => {
                let prefix = u32::from(m.ip()).count_ones() as u8;
                ipnet::IpNet::new(IpAddr::V4(a.ip()), prefix).ok()
            }
            _ => match (addr.as_sockaddr_in6(), mask.as_sockaddr_in6(), ip) {
                (Some(a), Some(m), IpAddr::V6(_)) => {
                    let prefix = u128::from(m.ip()).count_ones() as u8;
                    ipnet::IpNet::new(IpAddr::V6(a.ip()), prefix).ok()
                }
                _ => None,
            },
        };
        if net.is_some_and(|n| n.prefix_len() > 0 && n.contains(&ip)) {
            return true;
        }
    }
    false
}

/// The node's BFD sessions as configured in the engine.
pub struct BfdSessions {
    bfd: Bfd,
    /// Profile per peer, as last asked for.
    wanted: BTreeMap<IpAddr, String>,
    applied: BTreeMap<IpAddr, BfdPeer>,
    /// Sessions the engine refused (e.g. port 3784 taken by another BFD daemon).
    errors: BTreeMap<IpAddr, String>,
    echo_noted: BTreeSet<String>,
}

impl BfdSessions {
    /// Wrap an engine with no sessions yet.
    pub fn new(bfd: Bfd) -> Self {
        BfdSessions {
            bfd,
            wanted: BTreeMap::new(),
            applied: BTreeMap::new(),
            errors: BTreeMap::new(),
            echo_noted: BTreeSet::new(),
        }
    }

    /// The engine.
    pub fn bfd(&self) -> &Bfd {
        &self.bfd
    }

    /// Profile name per peer with a (desired) session.
    pub fn profiles(&self) -> &BTreeMap<IpAddr, String> {
        &self.wanted
    }

    /// Sessions that could not be set up, with the reason.
    pub fn errors(&self) -> &BTreeMap<IpAddr, String> {
        &self.errors
    }

    /// Bring the engine to `desired`: remove sessions no longer wanted (AdminDown), add new
    /// ones, change only those whose parameters changed. Refused sessions are retried on the
    /// next call.
    pub fn apply(&mut self, desired: BTreeMap<IpAddr, BfdPeer>) {
        self.wanted = desired
            .iter()
            .map(|(a, p)| (*a, p.profile.clone()))
            .collect();
        for addr in self.applied.keys().copied().collect::<Vec<_>>() {
            if !desired.contains_key(&addr) {
                self.applied.remove(&addr);
                self.bfd.remove_peer(addr);
                tracing::info!(peer = %addr, "BFD no longer configured for this peer");
            }
        }
        self.errors.retain(|a, _| desired.contains_key(a));
        for (addr, want) in desired {
            if self.applied.get(&addr) == Some(&want) {
                continue;
            }
            if want.spec.session.required_min_echo_rx > Duration::ZERO
                && self.echo_noted.insert(want.profile.clone())
            {
                tracing::info!(profile = %want.profile, "BFD echo-mode: the echo receive interval is advertised (the kernel loops the router's Echo packets back); ferrolb sends no Echo packets itself");
            }
            match self.bfd.set_peer(want.spec.clone()) {
                Ok(()) => {
                    self.errors.remove(&addr);
                    tracing::info!(peer = %addr, profile = %want.profile, multihop = want.spec.multihop, "BFD session configured");
                    self.applied.insert(addr, want);
                }
                Err(e) => {
                    if self.errors.get(&addr) != Some(&e.to_string()) {
                        tracing::error!(peer = %addr, profile = %want.profile, error = %e, "BFD session refused");
                    }
                    self.errors.insert(addr, e.to_string());
                    self.applied.remove(&addr);
                }
            }
        }
    }

    /// AdminDown to every peer (after BGP's Ceases went out), then stop the engine.
    pub async fn shutdown(&mut self) {
        self.bfd.shutdown().await;
        self.applied.clear();
        self.wanted.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
peers:
- peer-address: 172.17.0.1
  peer-asn: 64512
  my-asn: 64522
  bfd-profile: fast
- peer-address: 172.17.0.2
  peer-asn: 64512
  my-asn: 64522
  ebgp-multihop: true
  bfd-profile: echo
- peer-address: 172.17.0.3
  peer-asn: 64522
  my-asn: 64522
  bfd-profile: echo
- peer-address: 172.17.0.4
  peer-asn: 64512
  my-asn: 64522
bfd-profiles:
- name: fast
  receive-interval: 50
  transmit-interval: 60
  detect-multiplier: 5
  passive-mode: true
- name: echo
  echo-mode: true
  echo-interval: 20
  minimum-ttl: 200
"#;

    fn bgp_peers(config: &Config) -> BTreeMap<IpAddr, PeerConfig> {
        config
            .peers
            .iter()
            .map(|p| {
                let mut pc = PeerConfig::new(p.address, p.my_asn, p.peer_asn);
                pc.ebgp_multihop = p.ebgp_multihop;
                pc.source_address = p.source_address;
                (p.address, pc)
            })
            .collect()
    }

    #[test]
    fn every_profile_field_reaches_the_session() {
        let config = ferrolb_config::parse_config(CFG).expect("valid").config;
        let peers = bgp_peers(&config);
        let connected = |ip: IpAddr| ip != "172.17.0.3".parse::<IpAddr>().unwrap();
        let d = desired_bfd(&config, &BTreeMap::new(), &peers, &connected);
        assert_eq!(
            d.len(),
            3,
            "the peer without a profile gets no session: {d:?}"
        );
        let ms = Duration::from_millis;
        let fast = &d[&"172.17.0.1".parse::<IpAddr>().unwrap()];
        assert_eq!(fast.profile, "fast");
        let s = &fast.spec.session;
        assert_eq!(
            (
                s.desired_min_tx,
                s.required_min_rx,
                s.detect_mult,
                s.passive
            ),
            (ms(60), ms(50), 5, true)
        );
        assert!(!fast.spec.multihop);
        assert_eq!(
            s.required_min_echo_rx,
            Duration::ZERO,
            "echo off by default"
        );
        // Multihop (ebgp-multihop): no echo (not on multihop, as FRR), minimum TTL applies.
        let mh = &d[&"172.17.0.2".parse::<IpAddr>().unwrap()];
        assert!(mh.spec.multihop);
        assert_eq!(mh.spec.minimum_ttl, 200);
        assert_eq!(mh.spec.session.required_min_echo_rx, Duration::ZERO);
        assert_eq!(
            (mh.spec.session.desired_min_tx, mh.spec.session.detect_mult),
            (ms(300), 3),
            "MetalLB's (FRR's) defaults"
        );
        // iBGP not on a connected subnet: multihop, as FRR's bgpd decides.
        let ibgp = &d[&"172.17.0.3".parse::<IpAddr>().unwrap()];
        assert!(ibgp.spec.multihop);
        // Echo mode on a single-hop session advertises the echo interval.
        let mut one_hop = peers.clone();
        one_hop
            .get_mut(&"172.17.0.2".parse().unwrap())
            .unwrap()
            .ebgp_multihop = false;
        let d = desired_bfd(&config, &BTreeMap::new(), &one_hop, &connected);
        assert_eq!(
            d[&"172.17.0.2".parse::<IpAddr>().unwrap()]
                .spec
                .session
                .required_min_echo_rx,
            ms(20)
        );
    }

    #[test]
    fn only_configured_bgp_peers_and_the_selected_entry_count() {
        let text = r#"
peers:
- peer-address: 172.17.0.1
  peer-asn: 64512
  my-asn: 64522
  bfd-profile: a
  node-selectors:
  - match-labels: {rack: r1}
- peer-address: 172.17.0.1
  peer-asn: 64512
  my-asn: 64522
  bfd-profile: b
bfd-profiles:
- name: a
- name: b
  transmit-interval: 100
"#;
        let config = ferrolb_config::parse_config(text).expect("valid").config;
        let mut peers = BTreeMap::new();
        let addr: IpAddr = "172.17.0.1".parse().unwrap();
        peers.insert(addr, PeerConfig::new(addr, 64522, 64512));
        let yes = |_: IpAddr| true;
        let r1 = BTreeMap::from([("rack".to_string(), "r1".to_string())]);
        assert_eq!(desired_bfd(&config, &r1, &peers, &yes)[&addr].profile, "a");
        assert_eq!(
            desired_bfd(&config, &BTreeMap::new(), &peers, &yes)[&addr].profile,
            "b"
        );
        assert!(desired_bfd(&config, &r1, &BTreeMap::new(), &yes).is_empty());
    }

    async fn wait_for(
        bfd: &Bfd,
        peer: IpAddr,
        pred: impl Fn(Option<ferrolb_bgp::bfd::SessionStatus>) -> bool,
    ) {
        for _ in 0..200 {
            if pred(bfd.session(peer)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("not reached: {:?}", bfd.session(peer));
    }

    #[tokio::test]
    async fn sessions_follow_the_desired_set_touching_only_what_changed() {
        let (bfd, _events) = Bfd::new(ferrolb_bgp::bfd::BfdConfig {
            single_hop_port: 0,
            multihop_port: 0,
            listen_v4: std::net::Ipv4Addr::LOCALHOST,
            ..Default::default()
        })
        .expect("engine");
        let mut s = BfdSessions::new(bfd.clone());
        let peer: IpAddr = "127.0.0.9".parse().unwrap();
        let profile = |tx: u64| BfdProfile {
            name: "p".into(),
            receive_interval: Duration::from_millis(300),
            transmit_interval: Duration::from_millis(tx),
            detect_multiplier: 3,
            echo_interval: Duration::from_millis(50),
            echo_mode: false,
            passive_mode: false,
            minimum_ttl: 254,
        };
        let mut pc = PeerConfig::new(peer, 64522, 64512);
        pc.source_address = Some("127.0.0.1".parse().unwrap());
        let want = |tx| {
            BTreeMap::from([(
                peer,
                BfdPeer {
                    profile: "p".into(),
                    spec: peer_spec(&profile(tx), &pc, false),
                },
            )])
        };
        s.apply(want(300));
        wait_for(&bfd, peer, |st| st.is_some()).await;
        let first = bfd.session(peer).unwrap().local_discriminator;
        assert_eq!(s.profiles()[&peer], "p");
        // Same set: nothing; new interval: the same session, reconfigured.
        s.apply(want(300));
        s.apply(want(100));
        wait_for(&bfd, peer, |st| {
            st.is_some_and(|st| st.config.desired_min_tx == Duration::from_millis(100))
        })
        .await;
        assert_eq!(bfd.session(peer).unwrap().local_discriminator, first);
        // Gone from the configuration: removed.
        s.apply(BTreeMap::new());
        assert!(bfd.session(peer).is_none());
        assert!(s.profiles().is_empty());
        s.shutdown().await;
    }

    #[test]
    fn loopback_is_directly_connected() {
        assert!(directly_connected("127.0.0.1".parse().unwrap()));
        assert!(!directly_connected("203.0.113.77".parse().unwrap()));
    }
}
