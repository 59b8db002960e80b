//! BGP routes as data, shared by the gobgpd and BIRD readers so tests compare like with like.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// A standard community (RFC 1997), stored as its 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// From the `high:low` halves.
    pub fn new(high: u16, low: u16) -> Community {
        Community((u32::from(high) << 16) | u32::from(low))
    }

    /// Parses `"65000:1"`.
    pub fn parse(s: &str) -> Option<Community> {
        let (a, b) = s.trim().split_once(':')?;
        Some(Community::new(
            a.trim().parse().ok()?,
            b.trim().parse().ok()?,
        ))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// A large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator (an AS number).
    pub global: u32,
    /// First local data part.
    pub local1: u32,
    /// Second local data part.
    pub local2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

/// One path to a prefix in a daemon's RIB.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RibPath {
    /// gobgpd: the BGP next hop (plus the link-local one for IPv6 if sent).
    /// BIRD: the forwarding next hops (`via` lines; several for ECMP).
    pub next_hops: Vec<IpAddr>,
    /// AS path, segments flattened in order (AS_SET members included).
    pub as_path: Vec<u32>,
    /// Standard communities.
    pub communities: Vec<Community>,
    /// Large communities.
    pub large_communities: Vec<LargeCommunity>,
    /// LOCAL_PREF, if present.
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC, if present.
    pub med: Option<u32>,
    /// Whether the daemon selected this path as best.
    pub best: bool,
    /// Where it came from: gobgpd's neighbour address, BIRD's protocol name (`None` for
    /// gobgpd's locally added routes).
    pub source: Option<String>,
    /// BIRD's route type (`unicast`, `blackhole`, `unreachable`); `unicast` for gobgpd.
    pub kind: String,
}

/// A prefix and its paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibRoute {
    /// The prefix.
    pub prefix: IpNet,
    /// Every path, best first where the daemon says so.
    pub paths: Vec<RibPath>,
}

impl RibRoute {
    /// The best path, or the first one.
    pub fn best(&self) -> Option<&RibPath> {
        self.paths.iter().find(|p| p.best).or(self.paths.first())
    }
}

/// Finds `prefix` in `routes`.
pub fn find(routes: &[RibRoute], prefix: IpNet) -> Option<&RibRoute> {
    routes.iter().find(|r| r.prefix == prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_roundtrip() {
        let c = Community::parse("65000:2").expect("valid");
        assert_eq!(c.0, 4259840002);
        assert_eq!(c.to_string(), "65000:2");
        assert_eq!(Community::parse("70000:1"), None);
        assert_eq!(Community::parse("junk"), None);
    }
}
