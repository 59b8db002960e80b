//! Parsing `gobgp -j` output (gobgpd 3.10's JSON rendering of its gRPC API objects).

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::error::{Error, Result, truncate};
use crate::rib::{Community, LargeCommunity, RibPath, RibRoute};

/// A gobgpd neighbour's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GobgpPeer {
    /// Neighbour address.
    pub address: IpAddr,
    /// Neighbour AS.
    pub peer_as: u32,
    /// Session state in lower case: `idle`, `connect`, `active`, `opensent`, `openconfirm`,
    /// `established` (or `unknown`).
    pub state: String,
    /// When the session was last established (Unix seconds), if it ever was.
    pub uptime_unix: Option<u64>,
    /// Prefixes received, summed over address families.
    pub received: u64,
    /// Prefixes accepted, summed over address families.
    pub accepted: u64,
}

impl GobgpPeer {
    /// True when the session is Established.
    pub fn is_established(&self) -> bool {
        self.state == "established"
    }
}

fn parse_err(what: &str, detail: impl Into<String>) -> Error {
    Error::parse(format!("gobgp -j {what}"), detail)
}

fn as_u64(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_u32(v: Option<&Value>) -> Option<u32> {
    as_u64(v).and_then(|n| u32::try_from(n).ok())
}

fn session_state(v: Option<&Value>) -> String {
    const NAMES: [&str; 7] = [
        "unknown",
        "idle",
        "connect",
        "active",
        "opensent",
        "openconfirm",
        "established",
    ];
    match v {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|i| NAMES.get(i as usize))
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".to_string()),
        Some(Value::String(s)) => {
            let s = s.to_ascii_lowercase();
            s.strip_prefix("bgp_fsm_")
                .or_else(|| s.strip_prefix("session_state_"))
                .unwrap_or(&s)
                .to_string()
        }
        _ => "unknown".to_string(),
    }
}

fn peer_from(v: &Value) -> Result<GobgpPeer> {
    let conf = v.get("conf");
    let state = v.get("state");
    let addr_text = state
        .and_then(|s| s.get("neighbor_address"))
        .or_else(|| conf.and_then(|c| c.get("neighbor_address")))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            parse_err(
                "neighbor",
                format!("no neighbor_address in {}", truncate(&v.to_string(), 300)),
            )
        })?;
    let address = addr_text
        .parse()
        .map_err(|e| parse_err("neighbor", format!("address `{addr_text}`: {e}")))?;
    let peer_as = as_u32(state.and_then(|s| s.get("peer_asn")))
        .or_else(|| as_u32(conf.and_then(|c| c.get("peer_asn"))))
        .unwrap_or(0);
    let uptime_unix = as_u64(
        v.pointer("/timers/state/uptime/seconds")
            .or_else(|| v.pointer("/timers/state/uptime")),
    )
    .filter(|s| *s > 0);
    let (mut received, mut accepted) = (0, 0);
    if let Some(afs) = v.get("afi_safis").and_then(Value::as_array) {
        for af in afs {
            received += as_u64(af.pointer("/state/received")).unwrap_or(0);
            accepted += as_u64(af.pointer("/state/accepted")).unwrap_or(0);
        }
    }
    let st = session_state(state.and_then(|s| s.get("session_state")));
    Ok(GobgpPeer {
        address,
        peer_as,
        uptime_unix: if st == "established" {
            uptime_unix
        } else {
            None
        },
        state: st,
        received,
        accepted,
    })
}

/// Parses `gobgp -j neighbor` (a list) or `gobgp -j neighbor ADDR` (one object).
pub fn parse_neighbors(json: &str) -> Result<Vec<GobgpPeer>> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| parse_err("neighbor", format!("{e}: {}", truncate(json, 300))))?;
    if let Some(err) = v.get("error").and_then(Value::as_str) {
        return Err(parse_err("neighbor", format!("gobgp error: {err}")));
    }
    match &v {
        Value::Array(items) => items.iter().map(peer_from).collect(),
        Value::Null => Ok(Vec::new()),
        obj @ Value::Object(_) => Ok(vec![peer_from(obj)?]),
        other => Err(parse_err(
            "neighbor",
            format!("unexpected {}", truncate(&other.to_string(), 300)),
        )),
    }
}

fn push_nexthops(obj: &Map<String, Value>, out: &mut Vec<IpAddr>) {
    // "nexthop" first, then any other next-hop field (e.g. an IPv6 link-local one).
    let primary = obj.get("nexthop").into_iter();
    let others = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "nexthop" && k.contains("nexthop"))
        .map(|(_, v)| v);
    for v in primary.chain(others) {
        let texts: Vec<&str> = match v {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for t in texts {
            if let Ok(ip) = t.parse::<IpAddr>()
                && !ip.is_unspecified()
                && !out.contains(&ip)
            {
                out.push(ip);
            }
        }
    }
}

fn path_from(v: &Value) -> RibPath {
    let mut p = RibPath {
        best: v.get("best").and_then(Value::as_bool).unwrap_or(false),
        source: v
            .get("neighbor-ip")
            .and_then(Value::as_str)
            .map(str::to_string),
        kind: "unicast".to_string(),
        ..RibPath::default()
    };
    let attrs = v
        .get("attrs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for a in &attrs {
        let Some(obj) = a.as_object() else { continue };
        match as_u64(obj.get("type")) {
            Some(2) => {
                for seg in obj
                    .get("as_paths")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for asn in seg
                        .get("asns")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(n) = as_u32(Some(asn)) {
                            p.as_path.push(n);
                        }
                    }
                }
            }
            Some(3) | Some(14) => push_nexthops(obj, &mut p.next_hops),
            Some(4) => p.med = as_u32(obj.get("metric")),
            Some(5) => p.local_pref = as_u32(obj.get("value")),
            Some(8) => {
                for c in obj
                    .get("communities")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(n) = as_u32(Some(c)) {
                        p.communities.push(Community(n));
                    }
                }
            }
            Some(32) => {
                for lc in obj
                    .get("value")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let field = |names: &[&str]| names.iter().find_map(|n| as_u32(lc.get(*n)));
                    if let (Some(g), Some(l1), Some(l2)) = (
                        field(&["ASN", "global_admin", "asn"]),
                        field(&["LocalData1", "local_data1"]),
                        field(&["LocalData2", "local_data2"]),
                    ) {
                        p.large_communities.push(LargeCommunity {
                            global: g,
                            local1: l1,
                            local2: l2,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    p
}

/// Parses `gobgp -j global rib -a ipv4|ipv6` (and `neighbor ADDR adj-in|adj-out`): a map
/// from prefix to paths. Sorted by prefix.
pub fn parse_rib(json: &str) -> Result<Vec<RibRoute>> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| parse_err("rib", format!("{e}: {}", truncate(json, 300))))?;
    if let Some(err) = v.get("error").and_then(Value::as_str) {
        return Err(parse_err("rib", format!("gobgp error: {err}")));
    }
    let Value::Object(map) = v else {
        return if v.is_null() {
            Ok(Vec::new())
        } else {
            Err(parse_err(
                "rib",
                format!("expected an object, got {}", truncate(&v.to_string(), 300)),
            ))
        };
    };
    let mut routes = Vec::with_capacity(map.len());
    for (prefix, paths) in &map {
        let prefix: IpNet = prefix
            .parse()
            .map_err(|e| parse_err("rib", format!("prefix `{prefix}`: {e}")))?;
        let paths = paths
            .as_array()
            .map(|a| a.iter().map(path_from).collect())
            .unwrap_or_default();
        routes.push(RibRoute { prefix, paths });
    }
    routes.sort_by_key(|r| r.prefix);
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from gobgpd 3.10 in this lab.
    const NEIGHBOR: &str = r#"[{"conf":{"local_asn":65000,"neighbor_address":"10.99.0.2","peer_asn":65001,"type":1},"state":{"neighbor_address":"10.99.0.2","peer_asn":65001,"session_state":6,"router_id":"10.99.0.2"},"timers":{"config":{"hold_time":90},"state":{"keepalive_interval":3,"negotiated_hold_time":9,"uptime":{"seconds":1795324567},"downtime":{"seconds":1795324567}}},"transport":{"local_address":"10.99.0.1","passive_mode":true},"afi_safis":[{"config":{"family":{"afi":1,"safi":1},"enabled":true},"state":{"family":{"afi":1,"safi":1},"enabled":true,"received":1,"accepted":1}},{"config":{"family":{"afi":2,"safi":1},"enabled":true},"state":{"family":{"afi":2,"safi":1},"enabled":true}}]},{"conf":{"neighbor_address":"fd99::2","peer_asn":65002},"state":{"neighbor_address":"fd99::2","peer_asn":65002,"session_state":3},"timers":{"state":{"downtime":{"seconds":1795324689}}}}]"#;

    const RIB: &str = r#"{"10.200.0.1/32":[{"nlri":{"prefix":"10.200.0.1/32"},"age":1795324568,"best":true,"attrs":[{"type":1,"value":0},{"type":2,"as_paths":[{"segment_type":2,"num":1,"asns":[65001]}]},{"type":3,"nexthop":"10.99.0.2"}],"stale":false,"source-id":"10.99.0.2","neighbor-ip":"10.99.0.2"}],"10.201.0.0/24":[{"nlri":{"prefix":"10.201.0.0/24"},"age":1795324577,"best":true,"attrs":[{"type":1,"value":0},{"type":2,"as_paths":[{"segment_type":2,"num":2,"asns":[65010,65011]}]},{"type":4,"metric":10},{"type":5,"value":200},{"type":8,"communities":[4259840001,4259840002]},{"type":32,"value":[{"ASN":65000,"LocalData1":1,"LocalData2":2}]},{"type":3,"nexthop":"10.99.0.1"}],"stale":false}]}"#;

    #[test]
    fn parses_neighbors() {
        let peers = parse_neighbors(NEIGHBOR).expect("valid");
        assert_eq!(peers.len(), 2);
        assert!(peers[0].is_established());
        assert_eq!(peers[0].peer_as, 65001);
        assert_eq!(peers[0].uptime_unix, Some(1795324567));
        assert_eq!((peers[0].received, peers[0].accepted), (1, 1));
        assert_eq!(peers[1].state, "active");
        assert_eq!(peers[1].uptime_unix, None);
        assert_eq!(peers[1].address, "fd99::2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn parses_rib_attributes() {
        let rib = parse_rib(RIB).expect("valid");
        assert_eq!(rib.len(), 2);
        let p = &rib[0].paths[0];
        assert_eq!(p.next_hops, vec!["10.99.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.as_path, vec![65001]);
        assert_eq!(p.source.as_deref(), Some("10.99.0.2"));
        let q = &rib[1].paths[0];
        assert_eq!(q.as_path, vec![65010, 65011]);
        assert_eq!(q.med, Some(10));
        assert_eq!(q.local_pref, Some(200));
        assert_eq!(
            q.communities,
            vec![Community::new(65000, 1), Community::new(65000, 2)]
        );
        assert_eq!(
            q.large_communities,
            vec![LargeCommunity {
                global: 65000,
                local1: 1,
                local2: 2
            }]
        );
        assert_eq!(q.source, None);
    }

    #[test]
    fn mp_reach_next_hop_and_errors() {
        let rib = parse_rib(r#"{"fd00:1::/64":[{"best":true,"attrs":[{"type":14,"nexthop":"fd99::1","linklocal_nexthop":"fe80::1","afi":2,"safi":1,"value":[{"prefix":"fd00:1::/64"}]}]}]}"#).expect("valid");
        assert_eq!(
            rib[0].paths[0].next_hops,
            vec![
                "fd99::1".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
        assert!(parse_rib("{}").expect("empty").is_empty());
        assert!(parse_rib(r#"{"error":"context deadline exceeded"}"#).is_err());
        assert!(parse_neighbors(r#"{"error":"context deadline exceeded"}"#).is_err());
        assert!(parse_rib("not json").is_err());
    }
}
