//! The human-readable status page (`curl localhost:7472/status`, in the spirit of Weave
//! Net's `localhost:6784/status`) and its JSON form (`?format=json`).
//!
//! [`StatusReport`] is plain data assembled from the driver's last reconcile, the BGP
//! speaker's live peer counters and the pod-route installer's report; [`StatusReport::render`]
//! turns it into aligned text. Both are pure so they are tested without a server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::learned::InstalledRoute;

/// One BGP peer on the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerReport {
    /// `address:port`.
    pub peer: String,
    /// Peer AS.
    pub remote_as: u32,
    /// Our AS towards it.
    pub local_as: u32,
    /// FSM state (`Established`, `Active`, ...), or `NotConfigured` when refused.
    pub state: String,
    /// Seconds Established.
    pub uptime_seconds: Option<u64>,
    /// Our end of the session.
    pub local_address: Option<String>,
    /// Prefixes we announce to it.
    pub prefixes_sent: usize,
    /// Prefixes it announces to us.
    pub prefixes_received: usize,
    /// Prefixes we want it to have.
    pub prefixes_desired: usize,
    /// UPDATE messages sent.
    pub updates_sent: u64,
    /// UPDATE messages received.
    pub updates_received: u64,
    /// The last error on this session (connect refused, hold timer, NOTIFICATION, ...).
    pub last_error: Option<String>,
    /// The BFD session, when the peer names a `bfd-profile`.
    pub bfd: Option<crate::bfd::report::BfdReport>,
    /// The maximum-prefix limit (RFC 4486) of the session.
    pub max_prefixes: Option<u32>,
    /// Sessions ended because the peer sent more prefixes than that.
    pub max_prefix_ceases: u64,
}

/// The configuration as this speaker sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigReport {
    /// A configuration is in force.
    pub loaded: bool,
    /// The newest ConfigMap content was rejected; an older one is in force.
    pub stale: bool,
    /// Why it was rejected.
    pub last_error: Option<String>,
    /// Where the configuration in force came from (`configmap`, `custom resources`).
    pub source: Option<&'static str>,
}

/// Everything the status page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// ferrolb version.
    pub version: String,
    /// This node.
    pub node: String,
    /// `--pod-cidr-mode`.
    pub pod_cidr_mode: String,
    /// What SIGTERM does (`--on-sigterm`).
    pub on_sigterm: String,
    /// A drain (RFC 8326 GRACEFUL_SHUTDOWN) in progress, why and for how long.
    pub draining: Option<String>,
    /// The initial lists of Services, EndpointSlices, the Node and the ConfigMap arrived.
    pub synced: bool,
    /// Configuration state.
    pub config: ConfigReport,
    /// BGP peers, sorted.
    pub peers: Vec<PeerReport>,
    /// Services announced from this node, with their IPs.
    pub announced_services: BTreeMap<String, Vec<IpAddr>>,
    /// Services that cannot be announced, with the reason.
    pub problems: Vec<String>,
    /// Pod CIDRs of this node being advertised.
    pub advertised_pod_cidrs: Vec<IpNet>,
    /// Prefixes learned from peers.
    pub learned_prefixes: usize,
    /// Pod routes the installer keeps in the kernel (the first 1,000).
    pub installed_pod_routes: Vec<InstalledRoute>,
    /// How many pod routes the installer keeps in the kernel.
    pub installed_pod_route_count: usize,
    /// Learned prefixes refused (never installed), counted per reason.
    pub refused_pod_routes: BTreeMap<String, usize>,
}

/// `1h2m3s`-style duration.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m{s}s"),
        _ => format!("{d}d{h}h{m}m"),
    }
}

impl StatusReport {
    /// The text page.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let established = self
            .peers
            .iter()
            .filter(|p| p.state == "Established")
            .count();
        let config = if !self.config.loaded {
            "not loaded".to_string()
        } else if self.config.stale {
            format!(
                "loaded from {}, STALE (newest input rejected or missing, previous one in force)",
                self.config.source.unwrap_or("?")
            )
        } else {
            format!("loaded from {}", self.config.source.unwrap_or("?"))
        };
        let _ = writeln!(o, "        Version: ferrolb-speaker {}", self.version);
        let _ = writeln!(o, "           Node: {}", self.node);
        let _ = writeln!(
            o,
            "         Synced: {}",
            if self.synced { "yes" } else { "no" }
        );
        let _ = writeln!(o, "         Config: {config}");
        if let Some(e) = &self.config.last_error {
            let _ = writeln!(
                o,
                "   Config error: {}",
                e.replace('\n', "\n                 ")
            );
        }
        let _ = writeln!(o, "  Pod CIDR mode: {}", self.pod_cidr_mode);
        if !self.on_sigterm.is_empty() {
            let _ = writeln!(o, "     On SIGTERM: {}", self.on_sigterm);
        }
        if let Some(d) = &self.draining {
            let _ = writeln!(o, "       Draining: {d}");
        }
        let _ = writeln!(
            o,
            "          Peers: {} ({established} established)",
            self.peers.len()
        );
        let _ = writeln!(
            o,
            "       Services: {} announced",
            self.announced_services.len()
        );
        let _ = writeln!(o);
        let _ = writeln!(o, "Peers:");
        if self.peers.is_empty() {
            let _ = writeln!(o, "  (none selected for this node)");
        } else {
            let rows: Vec<[String; 8]> = self
                .peers
                .iter()
                .map(|p| {
                    [
                        p.peer.clone(),
                        format!("{}->{}", p.local_as, p.remote_as),
                        p.state.clone(),
                        p.uptime_seconds.map_or("-".into(), human_duration),
                        format!("{}/{}", p.prefixes_sent, p.prefixes_desired),
                        p.prefixes_received.to_string(),
                        format!("{}/{}", p.updates_sent, p.updates_received),
                        p.last_error.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            let header = [
                "PEER",
                "AS",
                "STATE",
                "UPTIME",
                "SENT",
                "RECEIVED",
                "UPDATES",
                "LAST ERROR",
            ]
            .map(String::from);
            table(&mut o, &header, &rows);
        }
        crate::bfd::report::render(&mut o, &self.peers);
        let _ = writeln!(o);
        let _ = writeln!(o, "Announced services:");
        if self.announced_services.is_empty() {
            let _ = writeln!(o, "  (none)");
        }
        for (svc, ips) in &self.announced_services {
            let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
            let _ = writeln!(o, "  {svc}  {}", ips.join(", "));
        }
        if !self.problems.is_empty() {
            let _ = writeln!(o);
            let _ = writeln!(o, "Not announced:");
            for p in &self.problems {
                let _ = writeln!(o, "  {p}");
            }
        }
        let _ = writeln!(o);
        let cidrs: Vec<String> = self
            .advertised_pod_cidrs
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            o,
            "Pod CIDRs advertised: {}",
            if cidrs.is_empty() {
                "-".into()
            } else {
                cidrs.join(", ")
            }
        );
        for p in self.peers.iter().filter(|p| p.max_prefix_ceases > 0) {
            let limit = p.max_prefixes.map_or("-".into(), |l| l.to_string());
            let _ = writeln!(
                o,
                "Maximum prefixes exceeded: {} ({} times, limit {limit})",
                p.peer, p.max_prefix_ceases
            );
        }
        let _ = writeln!(o, "Prefixes learned from peers: {}", self.learned_prefixes);
        if !self.refused_pod_routes.is_empty() {
            let counts: Vec<String> = self
                .refused_pod_routes
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            let _ = writeln!(o, "Learned routes refused: {}", counts.join(", "));
        }
        let _ = writeln!(o, "Installed pod routes:");
        if self.installed_pod_routes.is_empty() {
            let _ = writeln!(o, "  (none)");
        }
        for r in &self.installed_pod_routes {
            let nh: Vec<String> = r.next_hops.iter().map(ToString::to_string).collect();
            let _ = write!(o, "  {} via {}", r.prefix, nh.join(", "));
            if let Some(e) = &r.error {
                let _ = write!(o, "  (error: {e})");
            }
            let _ = writeln!(o);
        }
        let shown = self
            .installed_pod_routes
            .iter()
            .filter(|r| r.error.is_none())
            .count();
        if self.installed_pod_route_count > shown {
            let _ = writeln!(
                o,
                "  ... {} installed in all",
                self.installed_pod_route_count
            );
        }
        o
    }
}

pub(crate) fn table<const N: usize>(o: &mut String, header: &[String; N], rows: &[[String; N]]) {
    let mut widths: [usize; N] = std::array::from_fn(|i| header[i].len());
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |o: &mut String, cells: &[String; N]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str("  ");
                s.push_str(c);
            } else {
                let _ = write!(s, "  {c:<w$}", w = widths[i]);
            }
        }
        let _ = writeln!(o, "{}", s.trim_end());
    };
    line(o, header);
    for r in rows {
        line(o, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> StatusReport {
        StatusReport {
            version: "0.1.0".into(),
            node: "node-1".into(),
            pod_cidr_mode: "advertise".into(),
            on_sigterm: "restart (graceful restart where negotiated, else Cease)".into(),
            draining: Some(
                "node excluded (exclusion label, or cordon with --drain-on-cordon): Service routes carry \
                 GRACEFUL_SHUTDOWN (65535:0), withdrawn in 7s"
                    .into(),
            ),
            synced: true,
            config: ConfigReport {
                loaded: true,
                stale: true,
                last_error: Some("peers[0].hold-time: bad".into()),
                source: Some("configmap"),
            },
            peers: vec![
                PeerReport {
                    peer: "172.17.0.1:179".into(),
                    remote_as: 64512,
                    local_as: 64522,
                    state: "Established".into(),
                    uptime_seconds: Some(3723),
                    local_address: Some("172.17.0.21:40000".into()),
                    prefixes_sent: 2,
                    prefixes_received: 1,
                    prefixes_desired: 2,
                    updates_sent: 3,
                    updates_received: 2,
                    last_error: None,
                    bfd: None,
                    max_prefixes: Some(5000),
                    max_prefix_ceases: 0,
                },
                PeerReport {
                    peer: "172.17.0.9:179".into(),
                    remote_as: 64512,
                    local_as: 64522,
                    state: "Active".into(),
                    uptime_seconds: None,
                    local_address: None,
                    prefixes_sent: 0,
                    prefixes_received: 0,
                    prefixes_desired: 2,
                    updates_sent: 0,
                    updates_received: 0,
                    last_error: Some("connect: Connection refused".into()),
                    bfd: None,
                    max_prefixes: Some(5000),
                    max_prefix_ceases: 2,
                },
            ],
            announced_services: BTreeMap::from([(
                "apps/web".into(),
                vec!["172.17.254.1".parse().unwrap()],
            )]),
            problems: vec!["apps/out: IP 203.0.113.1 is not in any configured address pool".into()],
            advertised_pod_cidrs: vec!["10.244.1.0/24".parse().unwrap()],
            learned_prefixes: 1,
            installed_pod_routes: vec![InstalledRoute {
                prefix: "10.244.2.0/24".parse().unwrap(),
                next_hops: vec!["172.17.0.22".parse().unwrap()],
                error: None,
            }],
            installed_pod_route_count: 1,
            refused_pod_routes: BTreeMap::from([("martian".into(), 3), ("peer_address".into(), 1)]),
        }
    }

    #[test]
    fn text_page_shows_every_section() {
        let text = report().render();
        for want in [
            "Version: ferrolb-speaker 0.1.0",
            "Node: node-1",
            "STALE",
            "Config error: peers[0].hold-time: bad",
            "Peers: 2 (1 established)",
            "172.17.0.1:179  64522->64512  Established  1h2m3s",
            "connect: Connection refused",
            "apps/web  172.17.254.1",
            "apps/out: IP 203.0.113.1",
            "Pod CIDRs advertised: 10.244.1.0/24",
            "On SIGTERM: restart (graceful restart where negotiated, else Cease)",
            "Draining: node excluded (exclusion label, or cordon with --drain-on-cordon): \
             Service routes carry \
             GRACEFUL_SHUTDOWN (65535:0), withdrawn in 7s",
            "10.244.2.0/24 via 172.17.0.22",
            "Maximum prefixes exceeded: 172.17.0.9:179 (2 times, limit 5000)",
            "Learned routes refused: martian 3, peer_address 1",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn json_has_the_same_facts() {
        let v = serde_json::to_value(report()).unwrap();
        assert_eq!(v["node"], "node-1");
        assert_eq!(v["peers"][0]["state"], "Established");
        assert_eq!(v["peers"][1]["last_error"], "connect: Connection refused");
        assert_eq!(v["announced_services"]["apps/web"][0], "172.17.254.1");
        assert_eq!(v["installed_pod_routes"][0]["prefix"], "10.244.2.0/24");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(65), "1m5s");
        assert_eq!(human_duration(3723), "1h2m3s");
        assert_eq!(human_duration(90061), "1d1h1m");
    }
}
