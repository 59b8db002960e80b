//! Kernel state read as data: routes, addresses and links, parsed from iproute2's JSON.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result, truncate};

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Family {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// `-4` / `-6` for iproute2.
    pub(crate) fn ip_flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }

    /// `ipv4` / `ipv6` (gobgp's `-a`, BIRD's channel names).
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

/// One next hop of a kernel route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// Gateway address (`via`); `None` for directly connected routes.
    pub gateway: Option<IpAddr>,
    /// Output device.
    pub dev: Option<String>,
    /// ECMP weight (multipath routes only).
    pub weight: Option<u32>,
}

/// A kernel route. Single-path routes have one entry in `nexthops`; ECMP (`multipath`)
/// routes have one per path; blackhole/unreachable routes have none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    /// Destination prefix (`default` becomes `0.0.0.0/0` or `::/0`; hosts get /32 or /128).
    pub dst: IpNet,
    /// Route type: `unicast`, `local`, `broadcast`, `blackhole`, `unreachable`, ...
    pub kind: String,
    /// Routing table name or number (`main` when iproute2 omits it).
    pub table: String,
    /// Protocol (`kernel`, `boot`, `static`, `bird`, `bgp`, a number, ...), if shown.
    pub protocol: Option<String>,
    /// Metric / priority, if shown.
    pub metric: Option<u32>,
    /// The next hops.
    pub nexthops: Vec<NextHop>,
}

impl KernelRoute {
    /// All gateway addresses, in kernel order.
    pub fn gateways(&self) -> Vec<IpAddr> {
        self.nexthops.iter().filter_map(|n| n.gateway).collect()
    }
}

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Interface name.
    pub ifname: String,
    /// The address with its prefix length.
    pub addr: IpNet,
    /// `global`, `link`, `host`.
    pub scope: String,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface name.
    pub name: String,
    /// Administratively up (`UP` flag).
    pub up: bool,
    /// Operational state (`UP`, `DOWN`, `UNKNOWN`, `LOWERLAYERDOWN`).
    pub operstate: String,
    /// Link kind from `-d` details (`veth`, `bridge`, ...), if any.
    pub kind: Option<String>,
    /// The bridge (or bond) this link is enslaved to.
    pub master: Option<String>,
}

#[derive(Deserialize)]
struct RawRoute {
    #[serde(rename = "type")]
    kind: Option<String>,
    dst: String,
    gateway: Option<String>,
    via: Option<RawVia>,
    dev: Option<String>,
    protocol: Option<Value>,
    metric: Option<Value>,
    table: Option<Value>,
    nexthops: Option<Vec<RawNexthop>>,
}

#[derive(Deserialize)]
struct RawNexthop {
    gateway: Option<String>,
    via: Option<RawVia>,
    dev: Option<String>,
    weight: Option<u32>,
}

#[derive(Deserialize)]
struct RawVia {
    host: String,
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_addr(what: &str, s: &str) -> Result<IpAddr> {
    s.parse()
        .map_err(|e| Error::parse(what, format!("address `{s}`: {e}")))
}

fn parse_dst(family: Family, dst: &str) -> Result<IpNet> {
    let what = "ip -j route dst";
    if dst == "default" {
        let any: IpAddr = match family {
            Family::V4 => Ipv4Addr::UNSPECIFIED.into(),
            Family::V6 => Ipv6Addr::UNSPECIFIED.into(),
        };
        return IpNet::new(any, 0).map_err(|e| Error::parse(what, format!("{e}")));
    }
    if dst.contains('/') {
        dst.parse()
            .map_err(|e| Error::parse(what, format!("prefix `{dst}`: {e}")))
    } else {
        Ok(IpNet::from(parse_addr(what, dst)?))
    }
}

fn gateway(gw: &Option<String>, via: &Option<RawVia>) -> Result<Option<IpAddr>> {
    match (gw, via) {
        (Some(g), _) => Ok(Some(parse_addr("ip -j route gateway", g)?)),
        (None, Some(v)) => Ok(Some(parse_addr("ip -j route via", &v.host)?)),
        (None, None) => Ok(None),
    }
}

/// Parses `ip -j [-4|-6] route show ...` output.
pub fn parse_routes(family: Family, json: &str) -> Result<Vec<KernelRoute>> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<RawRoute> = serde_json::from_str(json)
        .map_err(|e| Error::parse("ip -j route", format!("{e}: {}", truncate(json, 300))))?;
    raw.into_iter()
        .map(|r| {
            let kind = r.kind.unwrap_or_else(|| "unicast".to_string());
            let nexthops = match r.nexthops {
                Some(nhs) => nhs
                    .into_iter()
                    .map(|n| {
                        Ok(NextHop {
                            gateway: gateway(&n.gateway, &n.via)?,
                            dev: n.dev,
                            weight: n.weight,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
                None => {
                    let gw = gateway(&r.gateway, &r.via)?;
                    if gw.is_some() || r.dev.is_some() {
                        vec![NextHop {
                            gateway: gw,
                            dev: r.dev,
                            weight: None,
                        }]
                    } else {
                        Vec::new()
                    }
                }
            };
            Ok(KernelRoute {
                dst: parse_dst(family, &r.dst)?,
                kind,
                table: r
                    .table
                    .as_ref()
                    .map(value_text)
                    .unwrap_or_else(|| "main".to_string()),
                protocol: r.protocol.as_ref().map(value_text),
                metric: r.metric.as_ref().and_then(|m| value_text(m).parse().ok()),
                nexthops,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct RawLink {
    ifname: String,
    #[serde(default)]
    flags: Vec<String>,
    operstate: Option<String>,
    master: Option<String>,
    linkinfo: Option<RawLinkInfo>,
    #[serde(default)]
    addr_info: Vec<RawAddr>,
}

#[derive(Deserialize)]
struct RawLinkInfo {
    info_kind: Option<String>,
}

#[derive(Deserialize)]
struct RawAddr {
    local: Option<String>,
    prefixlen: Option<u8>,
    scope: Option<String>,
}

fn parse_raw_links(what: &str, json: &str) -> Result<Vec<RawLink>> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(json)
        .map_err(|e| Error::parse(what, format!("{e}: {}", truncate(json, 300))))
}

/// Parses `ip -j -d link show` output.
pub fn parse_links(json: &str) -> Result<Vec<Link>> {
    Ok(parse_raw_links("ip -j link", json)?
        .into_iter()
        .map(|l| Link {
            up: l.flags.iter().any(|f| f == "UP"),
            operstate: l.operstate.unwrap_or_default(),
            kind: l.linkinfo.and_then(|i| i.info_kind),
            master: l.master,
            name: l.ifname,
        })
        .collect())
}

/// Parses `ip -j addr show` output.
pub fn parse_addresses(json: &str) -> Result<Vec<Address>> {
    let mut out = Vec::new();
    for link in parse_raw_links("ip -j addr", json)? {
        for a in link.addr_info {
            let (Some(local), Some(len)) = (a.local, a.prefixlen) else {
                continue;
            };
            let ip = parse_addr("ip -j addr local", &local)?;
            let addr = IpNet::new(ip, len)
                .map_err(|e| Error::parse("ip -j addr prefixlen", format!("{local}/{len}: {e}")))?;
            out.push(Address {
                ifname: link.ifname.clone(),
                addr,
                scope: a.scope.unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = r#"[{"dst":"10.99.0.0/24","dev":"xa0","protocol":"kernel","scope":"link","prefsrc":"10.99.0.1","flags":[]},{"dst":"10.250.0.0/24","flags":[],"nexthops":[{"gateway":"10.99.0.2","dev":"xa0","weight":1,"flags":[]},{"gateway":"10.99.0.3","dev":"xa0","weight":1,"flags":[]}]},{"dst":"10.251.0.0/24","gateway":"10.99.0.2","dev":"xa0","protocol":"bird","metric":50,"flags":[]},{"type":"local","dst":"10.99.0.1","dev":"xa0","table":"local","protocol":"kernel","scope":"host","prefsrc":"10.99.0.1","flags":[]},{"dst":"default","gateway":"10.99.0.254","dev":"xa0","flags":[]},{"type":"blackhole","dst":"10.7.0.0/16","flags":[]}]"#;

    #[test]
    fn parses_ip_route_json() {
        let routes = parse_routes(Family::V4, V4).expect("valid json");
        assert_eq!(routes.len(), 6);
        assert_eq!(routes[0].nexthops[0].gateway, None);
        assert_eq!(routes[0].nexthops[0].dev.as_deref(), Some("xa0"));
        let ecmp = &routes[1];
        assert_eq!(
            ecmp.gateways(),
            vec![
                "10.99.0.2".parse::<IpAddr>().unwrap(),
                "10.99.0.3".parse().unwrap()
            ]
        );
        assert_eq!(ecmp.nexthops[1].weight, Some(1));
        assert_eq!(routes[2].protocol.as_deref(), Some("bird"));
        assert_eq!(routes[2].metric, Some(50));
        assert_eq!(routes[3].dst, "10.99.0.1/32".parse::<IpNet>().unwrap());
        assert_eq!(routes[3].table, "local");
        assert_eq!(routes[3].kind, "local");
        assert_eq!(routes[4].dst, "0.0.0.0/0".parse::<IpNet>().unwrap());
        assert_eq!(routes[5].kind, "blackhole");
        assert!(routes[5].nexthops.is_empty());
    }

    #[test]
    fn parses_v6_and_via() {
        let json = r#"[{"dst":"fd50::/64","metric":1024,"flags":[],"pref":"medium","nexthops":[{"gateway":"fd99::2","dev":"xa0","weight":1,"flags":[]},{"gateway":"fd99::3","dev":"xa0","weight":1,"flags":[]}]},{"dst":"10.1.0.0/24","via":{"family":"inet6","host":"fe80::1"},"dev":"e0","flags":[]},{"dst":"default","dev":"e0","flags":[]}]"#;
        let routes = parse_routes(Family::V6, json).expect("valid json");
        assert_eq!(routes[0].gateways().len(), 2);
        assert_eq!(routes[0].metric, Some(1024));
        assert_eq!(
            routes[1].gateways(),
            vec!["fe80::1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(routes[2].dst, "::/0".parse::<IpNet>().unwrap());
    }

    #[test]
    fn bad_json_is_a_parse_error() {
        assert!(parse_routes(Family::V4, "[{").is_err());
        assert!(parse_routes(Family::V4, r#"[{"dst":"nonsense"}]"#).is_err());
        assert!(
            parse_routes(Family::V4, "")
                .expect("empty is fine")
                .is_empty()
        );
    }

    #[test]
    fn parses_addresses_and_links() {
        let json = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"operstate":"UNKNOWN","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]},{"ifindex":6,"ifname":"xa0","flags":["BROADCAST","MULTICAST"],"operstate":"DOWN","master":"br0","linkinfo":{"info_kind":"veth"},"addr_info":[{"family":"inet6","local":"fd99::1","prefixlen":64,"scope":"global"}]}]"#;
        let addrs = parse_addresses(json).expect("valid");
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[1].ifname, "xa0");
        assert_eq!(addrs[1].addr, "fd99::1/64".parse::<IpNet>().unwrap());
        let links = parse_links(json).expect("valid");
        assert!(links[0].up);
        assert!(!links[1].up);
        assert_eq!(links[1].kind.as_deref(), Some("veth"));
        assert_eq!(links[1].master.as_deref(), Some("br0"));
    }
}
