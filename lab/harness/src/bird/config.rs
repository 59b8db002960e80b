//! bird.conf generation (BIRD 2.0) from plain structs.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::kernel::Family;

/// Configuration of one BIRD instance.
#[derive(Debug, Clone)]
pub struct BirdConfig {
    /// Router id.
    pub router_id: Ipv4Addr,
    /// A `protocol kernel` per listed family, if set (to install routes into the FIB).
    pub kernel: Option<BirdKernel>,
    /// Static routes (announced to BGP peers whose export filter lets them through).
    pub statics: Vec<BirdStatic>,
    /// BGP sessions.
    pub bgp: Vec<BirdBgp>,
    /// Raw config appended verbatim (filters, extra protocols).
    pub extra: String,
    /// The daemon binary.
    pub bird_bin: PathBuf,
    /// The CLI binary.
    pub birdc_bin: PathBuf,
    /// How long to wait for the control socket to answer after start.
    pub start_timeout: Duration,
}

/// `protocol kernel` settings.
#[derive(Debug, Clone)]
pub struct BirdKernel {
    /// One kernel protocol per family.
    pub families: Vec<Family>,
    /// `merge paths on`: install equal BGP paths as one ECMP kernel route.
    pub merge_paths: bool,
    /// Channel import clause (default `none`).
    pub import: String,
    /// Channel export clause (default `all`).
    pub export: String,
}

impl Default for BirdKernel {
    fn default() -> Self {
        BirdKernel {
            families: vec![Family::V4, Family::V6],
            merge_paths: false,
            import: "none".into(),
            export: "all".into(),
        }
    }
}

/// A static route: `route PREFIX via ADDR` or, without `via`, `route PREFIX blackhole`.
#[derive(Debug, Clone)]
pub struct BirdStatic {
    /// The prefix.
    pub prefix: IpNet,
    /// Gateway; `None` makes a blackhole route (announceable, never forwarded).
    pub via: Option<IpAddr>,
    /// Filter statements applied to the route, e.g. `bgp_community.add((65000,1))`.
    pub attrs: Vec<String>,
}

impl BirdStatic {
    /// A blackhole static route (the usual way to originate a prefix for BGP).
    pub fn blackhole(prefix: IpNet) -> BirdStatic {
        BirdStatic {
            prefix,
            via: None,
            attrs: Vec::new(),
        }
    }
}

/// One `protocol bgp` block.
#[derive(Debug, Clone)]
pub struct BirdBgp {
    /// Protocol name (`[A-Za-z_][A-Za-z0-9_]*`), shown by `show protocols`.
    pub name: String,
    /// Local AS.
    pub local_as: u32,
    /// Local address (source of the session).
    pub local_addr: Option<IpAddr>,
    /// Neighbour address.
    pub neighbor: IpAddr,
    /// Neighbour AS.
    pub neighbor_as: u32,
    /// Hold time in seconds.
    pub hold_time: Option<u32>,
    /// Keepalive in seconds.
    pub keepalive: Option<u32>,
    /// Connect retry in seconds (BIRD default 120).
    pub connect_retry: Option<u32>,
    /// Delay before the first connect attempt, in seconds. Harness default 1 (BIRD's own
    /// default is 5 s, which only slows tests down); `None` keeps BIRD's.
    pub connect_delay: Option<u32>,
    /// Never connect, only accept.
    pub passive: bool,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// `multihop N`.
    pub multihop: Option<u8>,
    /// Graceful restart (default off: BIRD's default would keep a crashed peer's routes).
    pub graceful_restart: bool,
    /// `rr client`.
    pub rr_client: bool,
    /// IPv4 channel (default: present when the neighbour is IPv4).
    pub ipv4: Option<BirdChannel>,
    /// IPv6 channel (default: present when the neighbour is IPv6).
    pub ipv6: Option<BirdChannel>,
    /// Raw lines added inside the block (e.g. `error wait time 1, 10;`).
    pub extra: Vec<String>,
}

impl BirdBgp {
    /// An active session with a channel (import all, export all) for the neighbour's family.
    pub fn new(name: &str, local_as: u32, neighbor: IpAddr, neighbor_as: u32) -> BirdBgp {
        let ch = Some(BirdChannel::default());
        BirdBgp {
            name: name.to_string(),
            local_as,
            local_addr: None,
            neighbor,
            neighbor_as,
            hold_time: None,
            keepalive: None,
            connect_retry: None,
            connect_delay: Some(1),
            passive: false,
            password: None,
            multihop: None,
            graceful_restart: false,
            rr_client: false,
            ipv4: if neighbor.is_ipv4() { ch.clone() } else { None },
            ipv6: if neighbor.is_ipv6() { ch } else { None },
            extra: Vec::new(),
        }
    }
}

/// A BGP channel's filters.
#[derive(Debug, Clone)]
pub struct BirdChannel {
    /// Import clause: `all`, `none`, `filter NAME`, `where ...`.
    pub import: String,
    /// Export clause.
    pub export: String,
    /// Raw lines inside the channel (e.g. `next hop self;`).
    pub extra: Vec<String>,
}

impl Default for BirdChannel {
    fn default() -> Self {
        BirdChannel {
            import: "all".into(),
            export: "all".into(),
            extra: Vec::new(),
        }
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn valid_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl BirdConfig {
    /// Router id; Debian's binaries, a 10 s start timeout, nothing else.
    pub fn new(router_id: Ipv4Addr) -> BirdConfig {
        BirdConfig {
            router_id,
            kernel: None,
            statics: Vec::new(),
            bgp: Vec::new(),
            extra: String::new(),
            bird_bin: PathBuf::from("/usr/sbin/bird"),
            birdc_bin: PathBuf::from("/usr/sbin/birdc"),
            start_timeout: Duration::from_secs(10),
        }
    }

    /// Adds a BGP session (builder style).
    pub fn bgp(mut self, b: BirdBgp) -> BirdConfig {
        self.bgp.push(b);
        self
    }

    /// Adds a static route (builder style).
    pub fn route(mut self, s: BirdStatic) -> BirdConfig {
        self.statics.push(s);
        self
    }

    /// Renders bird.conf. Logs go to stderr (which the harness captures in the log file).
    pub fn to_conf(&self) -> Result<String> {
        let mut s = String::new();
        let _ = writeln!(s, "router id {};", self.router_id);
        let _ = writeln!(s, "log stderr all;");
        let _ = writeln!(s, "protocol device {{ scan time 10; }}");
        if let Some(k) = &self.kernel {
            for f in &k.families {
                let n = f.name();
                let _ = writeln!(s, "protocol kernel kernel_{n} {{");
                let _ = writeln!(s, "  {n} {{ import {}; export {}; }};", k.import, k.export);
                if k.merge_paths {
                    let _ = writeln!(s, "  merge paths on;");
                }
                let _ = writeln!(s, "}}");
            }
        }
        for fam in [Family::V4, Family::V6] {
            let routes: Vec<&BirdStatic> = self
                .statics
                .iter()
                .filter(|r| Family::of(r.prefix.addr()) == fam)
                .collect();
            if routes.is_empty() {
                continue;
            }
            let _ = writeln!(s, "protocol static static_{} {{", fam.name());
            let _ = writeln!(s, "  {};", fam.name());
            for r in routes {
                let target = match r.via {
                    Some(gw) => format!("via {gw}"),
                    None => "blackhole".to_string(),
                };
                if r.attrs.is_empty() {
                    let _ = writeln!(s, "  route {} {target};", r.prefix);
                } else {
                    let _ = writeln!(
                        s,
                        "  route {} {target} {{ {}; }};",
                        r.prefix,
                        r.attrs.join("; ")
                    );
                }
            }
            let _ = writeln!(s, "}}");
        }
        for b in &self.bgp {
            if !valid_ident(&b.name) {
                return Err(Error::InvalidName {
                    name: b.name.clone(),
                    reason: "BIRD protocol names are [A-Za-z_][A-Za-z0-9_]*".into(),
                });
            }
            let _ = writeln!(s, "protocol bgp {} {{", b.name);
            match b.local_addr {
                Some(a) => {
                    let _ = writeln!(s, "  local {a} as {};", b.local_as);
                }
                None => {
                    let _ = writeln!(s, "  local as {};", b.local_as);
                }
            }
            let _ = writeln!(s, "  neighbor {} as {};", b.neighbor, b.neighbor_as);
            if let Some(h) = b.hold_time {
                let _ = writeln!(s, "  hold time {h};");
            }
            if let Some(k) = b.keepalive {
                let _ = writeln!(s, "  keepalive time {k};");
            }
            if let Some(c) = b.connect_retry {
                let _ = writeln!(s, "  connect retry time {c};");
            }
            if let Some(d) = b.connect_delay {
                let _ = writeln!(s, "  connect delay time {d};");
            }
            if b.passive {
                let _ = writeln!(s, "  passive on;");
            }
            if let Some(pw) = &b.password {
                let _ = writeln!(s, "  password {};", quote(pw));
            }
            if let Some(m) = b.multihop {
                let _ = writeln!(s, "  multihop {m};");
            }
            let _ = writeln!(
                s,
                "  graceful restart {};",
                if b.graceful_restart { "on" } else { "off" }
            );
            if b.rr_client {
                let _ = writeln!(s, "  rr client;");
            }
            for line in &b.extra {
                let _ = writeln!(s, "  {line}");
            }
            for (fam, ch) in [("ipv4", &b.ipv4), ("ipv6", &b.ipv6)] {
                if let Some(ch) = ch {
                    let _ = writeln!(s, "  {fam} {{");
                    let _ = writeln!(s, "    import {};", ch.import);
                    let _ = writeln!(s, "    export {};", ch.export);
                    for line in &ch.extra {
                        let _ = writeln!(s, "    {line}");
                    }
                    let _ = writeln!(s, "  }};");
                }
            }
            let _ = writeln!(s, "}}");
        }
        if !self.extra.is_empty() {
            let _ = writeln!(s, "{}", self.extra);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bgp_static_and_kernel() {
        let mut b = BirdBgp::new("gobgp1", 65001, "10.0.0.1".parse().unwrap(), 65000);
        b.hold_time = Some(9);
        b.passive = true;
        b.password = Some("pw".into());
        b.multihop = Some(2);
        b.ipv6 = Some(BirdChannel::default());
        let mut cfg = BirdConfig::new("10.0.0.2".parse().unwrap())
            .bgp(b)
            .route(BirdStatic::blackhole("10.200.0.1/32".parse().unwrap()))
            .route(BirdStatic {
                prefix: "fd00::/64".parse().unwrap(),
                via: Some("fd99::1".parse().unwrap()),
                attrs: vec!["bgp_community.add((1,2))".into()],
            });
        cfg.kernel = Some(BirdKernel {
            merge_paths: true,
            ..BirdKernel::default()
        });
        let conf = cfg.to_conf().expect("valid");
        for want in [
            "router id 10.0.0.2;",
            "protocol bgp gobgp1 {",
            "local as 65001;",
            "neighbor 10.0.0.1 as 65000;",
            "hold time 9;",
            "passive on;",
            "password \"pw\";",
            "multihop 2;",
            "connect delay time 1;",
            "graceful restart off;",
            "  ipv4 {",
            "  ipv6 {",
            "route 10.200.0.1/32 blackhole;",
            "route fd00::/64 via fd99::1 { bgp_community.add((1,2)); };",
            "merge paths on;",
            "protocol kernel kernel_ipv6",
        ] {
            assert!(conf.contains(want), "missing {want} in\n{conf}");
        }
    }

    #[test]
    fn rejects_bad_protocol_name() {
        let cfg = BirdConfig::new("10.0.0.2".parse().unwrap()).bgp(BirdBgp::new(
            "bad-name",
            1,
            "10.0.0.1".parse().unwrap(),
            2,
        ));
        assert!(cfg.to_conf().is_err());
    }
}
