//! Parsing birdc's text output (BIRD 2.0.x `show protocols`, `show route all`).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::rib::{Community, LargeCommunity, RibPath, RibRoute};

/// One line of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdProtocol {
    /// Protocol name.
    pub name: String,
    /// Protocol type (`BGP`, `Static`, `Kernel`, `Device`, ...).
    pub proto: String,
    /// Table (`---` for multi-channel protocols).
    pub table: String,
    /// `up`, `start`, `down`, ...
    pub state: String,
    /// The since column.
    pub since: String,
    /// The rest of the line (for BGP: the session state, then any last error).
    pub info: String,
    /// For BGP protocols: the session state word (`Established`, `Active`, `Connect`,
    /// `Idle`, `OpenSent`, ...).
    pub bgp_state: Option<String>,
}

impl BirdProtocol {
    /// True for a BGP protocol whose session is Established.
    pub fn is_established(&self) -> bool {
        self.bgp_state.as_deref() == Some("Established")
    }
}

fn is_banner(line: &str) -> bool {
    line.starts_with("BIRD ") && line.trim_end().ends_with("ready.")
}

/// Parses `birdc show protocols`.
pub fn parse_protocols(text: &str) -> Result<Vec<BirdProtocol>> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || is_banner(line) || line.starts_with("Name ") {
            continue;
        }
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.len() < 5 {
            return Err(Error::parse(
                "birdc show protocols",
                format!("short line `{line}`"),
            ));
        }
        let info = toks[5..].join(" ");
        let bgp_state = (toks[1] == "BGP").then(|| toks.get(5).unwrap_or(&"").to_string());
        out.push(BirdProtocol {
            name: toks[0].to_string(),
            proto: toks[1].to_string(),
            table: toks[2].to_string(),
            state: toks[3].to_string(),
            since: toks[4].to_string(),
            info,
            bgp_state,
        });
    }
    Ok(out)
}

fn parse_u32s(s: &str) -> Vec<u32> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .filter_map(|t| t.parse().ok())
        .collect()
}

/// Splits `(a,b) (c,d)` / `(a, b, c)` into the number lists inside each parenthesis.
fn tuples(s: &str) -> Vec<Vec<u32>> {
    s.split('(')
        .skip(1)
        .filter_map(|chunk| chunk.split_once(')').map(|(inner, _)| parse_u32s(inner)))
        .collect()
}

fn apply_attr(path: &mut RibPath, key: &str, value: &str) {
    match key {
        "BGP.as_path" => path.as_path.extend(parse_u32s(value)),
        "BGP.local_pref" => path.local_pref = value.trim().parse().ok(),
        "BGP.med" => path.med = value.trim().parse().ok(),
        "BGP.community" => {
            for t in tuples(value) {
                if let [a, b] = t[..]
                    && let (Ok(a), Ok(b)) = (u16::try_from(a), u16::try_from(b))
                {
                    path.communities.push(Community::new(a, b));
                }
            }
        }
        "BGP.large_community" => {
            for t in tuples(value) {
                if let [global, local1, local2] = t[..] {
                    path.large_communities.push(LargeCommunity {
                        global,
                        local1,
                        local2,
                    });
                }
            }
        }
        _ => {}
    }
}

/// Parses a route header: `PREFIX TYPE [PROTO TIME (from X)] * (PREF) [ASNi]` or, for
/// further paths of the same prefix, the same without the prefix.
fn parse_header(rest: &str) -> Option<RibPath> {
    let kind = rest.split_whitespace().next()?.to_string();
    let open = rest.find('[')?;
    let close = open + rest[open..].find(']')?;
    let source = rest[open + 1..close].split_whitespace().next()?.to_string();
    let best = rest[close + 1..].split_whitespace().next() == Some("*");
    Some(RibPath {
        kind,
        source: Some(source),
        best,
        ..RibPath::default()
    })
}

/// Parses `birdc show route all` (any tables). Paths keep BIRD's order (best first).
pub fn parse_routes(text: &str) -> Result<Vec<RibRoute>> {
    let err =
        |line: &str, why: &str| Error::parse("birdc show route all", format!("{why}: `{line}`"));
    let mut routes: Vec<RibRoute> = Vec::new();
    let mut last_key = String::new();
    for line in text.lines() {
        if line.trim().is_empty() || is_banner(line) || line.starts_with("Table ") {
            continue;
        }
        if let Some(cont) = line.strip_prefix("\t\t") {
            // Continuation of a long attribute (e.g. many communities).
            if let Some(path) = routes.last_mut().and_then(|r| r.paths.last_mut()) {
                apply_attr(path, &last_key, cont);
            }
            continue;
        }
        if let Some(attr) = line.strip_prefix('\t') {
            let path = routes
                .last_mut()
                .and_then(|r| r.paths.last_mut())
                .ok_or_else(|| err(line, "attribute before any route"))?;
            let attr = attr.trim();
            if let Some(rest) = attr.strip_prefix("via ") {
                let addr = rest.split_whitespace().next().unwrap_or("");
                let ip: IpAddr = addr.parse().map_err(|_| err(line, "bad next hop"))?;
                path.next_hops.push(ip);
            } else if let Some((key, value)) = attr.split_once(':') {
                last_key = key.trim().to_string();
                apply_attr(path, &last_key, value);
            }
            continue;
        }
        if line.starts_with(' ') {
            // Another path for the previous prefix.
            let path = parse_header(line.trim()).ok_or_else(|| err(line, "bad route header"))?;
            routes
                .last_mut()
                .ok_or_else(|| err(line, "path before any prefix"))?
                .paths
                .push(path);
            continue;
        }
        let (prefix, rest) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| err(line, "bad route line"))?;
        let prefix: IpNet = prefix.parse().map_err(|_| err(line, "bad prefix"))?;
        let path = parse_header(rest.trim()).ok_or_else(|| err(line, "bad route header"))?;
        match routes.last_mut() {
            Some(r) if r.prefix == prefix => r.paths.push(path),
            _ => routes.push(RibRoute {
                prefix,
                paths: vec![path],
            }),
        }
    }
    Ok(routes)
}

/// One line of `show bfd sessions`.
#[derive(Debug, Clone, PartialEq)]
pub struct BirdBfdSession {
    /// The neighbour.
    pub address: IpAddr,
    /// Interface (`---` for multihop).
    pub interface: String,
    /// `Up`, `Down`, `Init`, `AdminDown`.
    pub state: String,
    /// Negotiated transmit interval, seconds.
    pub interval: f64,
    /// Detection time, seconds.
    pub timeout: f64,
}

/// Parses `birdc show bfd sessions` (every BFD protocol's sessions).
pub fn parse_bfd_sessions(text: &str) -> Result<Vec<BirdBfdSession>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        let Some(address) = toks.first().and_then(|t| t.parse().ok()) else {
            continue; // banner, protocol name, header
        };
        if toks.len() < 6 {
            return Err(Error::parse(
                "birdc show bfd sessions",
                format!("short line `{line}`"),
            ));
        }
        let num = |t: &str| {
            t.parse::<f64>().map_err(|_| {
                Error::parse("birdc show bfd sessions", format!("bad number in `{line}`"))
            })
        };
        out.push(BirdBfdSession {
            address,
            interface: toks[1].to_string(),
            state: toks[2].to_string(),
            interval: num(toks[4])?,
            timeout: num(toks[5])?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfd_sessions() {
        let text = "BIRD 2.0.12 ready.\nbfd1:\nIP address                Interface  State      Since         Interval  Timeout\n10.1.0.2                  ---        Init       06:19:18.758    1.000    3.000\n10.0.0.2                  va         Up         06:19:18.870    0.300    0.900\n";
        let s = parse_bfd_sessions(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].address, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(
            (s[1].state.as_str(), s[1].interval, s[1].timeout),
            ("Up", 0.3, 0.9)
        );
        assert_eq!(s[0].interface, "---");
    }

    // Captured from BIRD 2.0.12 in this lab.
    const ROUTES: &str = "BIRD 2.0.12 ready.
Table master4:
10.200.0.1/32        blackhole [s4 05:16:02.692] * (200)
\tType: static univ
10.201.0.0/24        unicast [g2 05:16:44.576] * (100) [AS65000?]
\tvia 10.98.0.9 on xb1
\tType: BGP univ
\tBGP.origin: Incomplete
\tBGP.as_path: 65000
\tBGP.next_hop: 10.98.0.9
\tBGP.local_pref: 100
                     unicast [g1 05:16:17.342] (100) [AS65011i]
\tvia 10.99.0.1 on xb0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65000 65010 65011
\tBGP.next_hop: 10.99.0.1
\tBGP.med: 10
\tBGP.local_pref: 100
\tBGP.community: (65000,1) (65000,2)
\t\t(65000,3)
\tBGP.large_community: (65000, 1, 2)
10.240.0.0/24        unicast [s5 05:16:31.064] * (200)
\tvia 10.99.0.1 on xb0 weight 1
\tvia 10.99.0.3 on xb0 weight 1
\tType: static univ

Table master6:
fd00:1::/64          unicast [g1 05:16:17.353 from 10.99.0.1] * (100) [AS65000?]
\tvia fd99::1 on xb0
\tType: BGP univ
\tBGP.as_path: 65000
\tBGP.next_hop: fd99::1
\tBGP.local_pref: 100
\tBGP.community: (1,1)
";

    const PROTOCOLS: &str = "BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     05:16:02.692  
s4         Static     master4    up     05:16:02.692  
g1         BGP        ---        up     05:16:07.304  Established   
g2         BGP        ---        start  05:16:31.064  Active        Socket: Connection refused
";

    #[test]
    fn parses_protocols() {
        let p = parse_protocols(PROTOCOLS).expect("valid");
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].bgp_state, None);
        assert!(p[2].is_established());
        assert_eq!(p[3].bgp_state.as_deref(), Some("Active"));
        assert_eq!(p[3].info, "Active Socket: Connection refused");
        assert_eq!(p[1].table, "master4");
    }

    #[test]
    fn parses_routes_with_multiple_paths_and_ecmp() {
        let r = parse_routes(ROUTES).expect("valid");
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].paths[0].kind, "blackhole");
        assert!(r[0].paths[0].next_hops.is_empty());
        let two = &r[1];
        assert_eq!(two.paths.len(), 2);
        assert!(two.paths[0].best && !two.paths[1].best);
        assert_eq!(two.paths[0].source.as_deref(), Some("g2"));
        assert_eq!(two.paths[1].as_path, vec![65000, 65010, 65011]);
        assert_eq!(two.paths[1].med, Some(10));
        assert_eq!(two.paths[1].local_pref, Some(100));
        assert_eq!(
            two.paths[1].communities,
            vec![
                Community::new(65000, 1),
                Community::new(65000, 2),
                Community::new(65000, 3)
            ]
        );
        assert_eq!(
            two.paths[1].large_communities,
            vec![LargeCommunity {
                global: 65000,
                local1: 1,
                local2: 2
            }]
        );
        assert_eq!(r[2].paths[0].next_hops.len(), 2);
        assert_eq!(r[3].prefix, "fd00:1::/64".parse::<IpNet>().unwrap());
        assert_eq!(r[3].paths[0].source.as_deref(), Some("g1"));
        assert_eq!(
            r[3].paths[0].next_hops,
            vec!["fd99::1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_routes("nonsense line here").is_err());
        assert!(parse_routes("\tvia 1.2.3.4 on x").is_err());
        assert!(parse_protocols("a b").is_err());
        assert!(
            parse_routes("BIRD 2.0.12 ready.\n")
                .expect("empty")
                .is_empty()
        );
    }
}
