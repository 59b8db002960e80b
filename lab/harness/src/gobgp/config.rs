//! gobgpd TOML configuration, generated from plain structs.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::kernel::Family;

/// Configuration of one gobgpd instance.
#[derive(Debug, Clone)]
pub struct GobgpConfig {
    /// Local AS.
    pub asn: u32,
    /// Router id.
    pub router_id: Ipv4Addr,
    /// BGP listen port (179; -1 = do not listen).
    pub listen_port: i32,
    /// Neighbours.
    pub neighbors: Vec<GobgpNeighbor>,
    /// Raw TOML appended verbatim (policies, anything not modelled here).
    pub extra_toml: String,
    /// The daemon binary.
    pub gobgpd_bin: PathBuf,
    /// The CLI binary.
    pub gobgp_bin: PathBuf,
    /// How long to wait for the API to answer after start.
    pub start_timeout: Duration,
}

impl GobgpConfig {
    /// AS and router id; Debian's binaries, listen on 179, 10 s start timeout.
    pub fn new(asn: u32, router_id: Ipv4Addr) -> GobgpConfig {
        GobgpConfig {
            asn,
            router_id,
            listen_port: 179,
            neighbors: Vec::new(),
            extra_toml: String::new(),
            gobgpd_bin: PathBuf::from("/usr/bin/gobgpd"),
            gobgp_bin: PathBuf::from("/usr/bin/gobgp"),
            start_timeout: Duration::from_secs(10),
        }
    }

    /// Adds a neighbour (builder style).
    pub fn neighbor(mut self, n: GobgpNeighbor) -> GobgpConfig {
        self.neighbors.push(n);
        self
    }

    /// Renders the TOML file gobgpd reads with `-f`.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "[global.config]");
        let _ = writeln!(s, "  as = {}", self.asn);
        let _ = writeln!(s, "  router-id = \"{}\"", self.router_id);
        let _ = writeln!(s, "  port = {}", self.listen_port);
        for n in &self.neighbors {
            n.write_toml(&mut s);
        }
        if !self.extra_toml.is_empty() {
            let _ = writeln!(s, "\n{}", self.extra_toml);
        }
        s
    }
}

/// One gobgpd neighbour.
#[derive(Debug, Clone)]
pub struct GobgpNeighbor {
    /// Neighbour address.
    pub address: IpAddr,
    /// Neighbour AS.
    pub peer_as: u32,
    /// Wait for the peer to connect (default `true`: gobgpd's first outgoing connect waits a
    /// random 5-10 s, so let the other side connect).
    pub passive: bool,
    /// Local address to bind/source from.
    pub local_address: Option<IpAddr>,
    /// Hold time in seconds (gobgpd default 90).
    pub hold_time: Option<u32>,
    /// Keepalive interval in seconds (gobgpd default 30).
    pub keepalive: Option<u32>,
    /// Connect retry in seconds (gobgpd default 120).
    pub connect_retry: Option<u32>,
    /// eBGP multihop TTL.
    pub ebgp_multihop: Option<u8>,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// Treat this neighbour as a route-reflector client.
    pub route_reflector_client: bool,
    /// Cluster id when acting as route reflector.
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    /// Address families (default both unicast families).
    pub families: Vec<Family>,
}

impl GobgpNeighbor {
    /// A passive neighbour with IPv4 and IPv6 unicast and gobgpd's default timers.
    pub fn new(address: IpAddr, peer_as: u32) -> GobgpNeighbor {
        GobgpNeighbor {
            address,
            peer_as,
            passive: true,
            local_address: None,
            hold_time: None,
            keepalive: None,
            connect_retry: None,
            ebgp_multihop: None,
            password: None,
            route_reflector_client: false,
            route_reflector_cluster_id: None,
            families: vec![Family::V4, Family::V6],
        }
    }

    fn write_toml(&self, s: &mut String) {
        let _ = writeln!(s, "\n[[neighbors]]");
        let _ = writeln!(s, "  [neighbors.config]");
        let _ = writeln!(s, "    neighbor-address = \"{}\"", self.address);
        let _ = writeln!(s, "    peer-as = {}", self.peer_as);
        if let Some(pw) = &self.password {
            let _ = writeln!(s, "    auth-password = \"{}\"", toml_escape(pw));
        }
        let _ = writeln!(s, "  [neighbors.transport.config]");
        let _ = writeln!(s, "    passive-mode = {}", self.passive);
        if let Some(la) = self.local_address {
            let _ = writeln!(s, "    local-address = \"{la}\"");
        }
        if self.hold_time.is_some() || self.keepalive.is_some() || self.connect_retry.is_some() {
            let _ = writeln!(s, "  [neighbors.timers.config]");
            if let Some(h) = self.hold_time {
                let _ = writeln!(s, "    hold-time = {h}");
            }
            if let Some(k) = self.keepalive {
                let _ = writeln!(s, "    keepalive-interval = {k}");
            }
            if let Some(c) = self.connect_retry {
                let _ = writeln!(s, "    connect-retry = {c}");
            }
        }
        if let Some(ttl) = self.ebgp_multihop {
            let _ = writeln!(s, "  [neighbors.ebgp-multihop.config]");
            let _ = writeln!(s, "    enabled = true");
            let _ = writeln!(s, "    multihop-ttl = {ttl}");
        }
        if self.route_reflector_client {
            let _ = writeln!(s, "  [neighbors.route-reflector.config]");
            let _ = writeln!(s, "    route-reflector-client = true");
            if let Some(id) = self.route_reflector_cluster_id {
                let _ = writeln!(s, "    route-reflector-cluster-id = \"{id}\"");
            }
        }
        for f in &self.families {
            let _ = writeln!(s, "  [[neighbors.afi-safis]]");
            let _ = writeln!(s, "    [neighbors.afi-safis.config]");
            let _ = writeln!(s, "      afi-safi-name = \"{}-unicast\"", f.name());
        }
    }
}

fn toml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_neighbor_options() {
        let mut n = GobgpNeighbor::new("10.0.0.2".parse().unwrap(), 65001);
        n.hold_time = Some(9);
        n.keepalive = Some(3);
        n.ebgp_multihop = Some(4);
        n.password = Some("s\"ecret".into());
        n.route_reflector_client = true;
        n.families = vec![Family::V6];
        let toml = GobgpConfig::new(65000, "10.0.0.1".parse().unwrap())
            .neighbor(n)
            .to_toml();
        for want in [
            "as = 65000",
            "router-id = \"10.0.0.1\"",
            "neighbor-address = \"10.0.0.2\"",
            "peer-as = 65001",
            "auth-password = \"s\\\"ecret\"",
            "passive-mode = true",
            "hold-time = 9",
            "keepalive-interval = 3",
            "multihop-ttl = 4",
            "route-reflector-client = true",
            "afi-safi-name = \"ipv6-unicast\"",
        ] {
            assert!(toml.contains(want), "missing {want} in\n{toml}");
        }
        assert!(!toml.contains("ipv4-unicast"));
    }
}
