//! The value rules both configuration sources apply: the ConfigMap decoder (`decode/`) and
//! the custom-resource conversion in `ferrolb-crds`.
//!
//! Each rule takes a plain, already typed value and returns it checked (with its default
//! filled in), or the reason it is wrong. The caller adds where the value is (path, line or
//! object), so one reason text serves both sources and a CR error reads like a ConfigMap
//! error. Field names that appear inside a reason differ between the sources
//! (`peer-address` against `peerAddress`); [`Spelling`] carries them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::model::{AddressRange, Community};

pub use crate::address::{ParsedEntry, parse_entry, shortest_prefix};
pub use crate::community::parse_community;
pub use crate::duration::parse_go_duration;
pub use crate::selector::{validate_key as label_key, validate_value as label_value};

/// `peer-port` when not given.
pub const DEFAULT_PORT: u16 = 179;
/// `hold-time` when not given.
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
/// Largest TCP MD5 key Linux accepts (TCP_MD5SIG_MAXKEYLEN).
pub const MAX_PASSWORD_BYTES: usize = 80;
/// The range hint of every AS number field.
pub const ASN_RANGE: &str = "an AS number is 1 to 4294967295";

/// BFD `receive-interval`, `transmit-interval`, `echo-interval`: milliseconds.
pub const BFD_INTERVAL: (u32, u32, &str) = (10, 60000, "must be 10 to 60000 (milliseconds)");
/// BFD `detect-multiplier`.
pub const BFD_MULTIPLIER: (u32, u32, &str) = (2, 255, "must be 2 to 255");
/// BFD `minimum-ttl`.
pub const BFD_MINIMUM_TTL: (u32, u32, &str) = (1, 254, "must be 1 to 254");
/// Default `receive-interval` and `transmit-interval` in milliseconds.
pub const BFD_DEFAULT_INTERVAL_MS: u64 = 300;
/// Default `echo-interval` in milliseconds.
pub const BFD_DEFAULT_ECHO_MS: u64 = 50;
/// Default `detect-multiplier`.
pub const BFD_DEFAULT_MULTIPLIER: u8 = 3;
/// Default `minimum-ttl` (FRR's default when MetalLB leaves it unset).
pub const BFD_DEFAULT_MINIMUM_TTL: u8 = 254;

/// How the fields named inside reasons are spelt by one source.
#[derive(Debug, Clone, Copy)]
pub struct Spelling {
    pub peer_address: &'static str,
    pub peer_asn: &'static str,
    pub my_asn: &'static str,
    pub ebgp_multihop: &'static str,
    /// Where community aliases are defined.
    pub aliases: &'static str,
}

impl Spelling {
    /// MetalLB 0.12's ConfigMap keys.
    pub const CONFIGMAP: Spelling = Spelling {
        peer_address: "peer-address",
        peer_asn: "peer-asn",
        my_asn: "my-asn",
        ebgp_multihop: "ebgp-multihop",
        aliases: "bgp-communities",
    };
    /// MetalLB's CRD field names (`metallb.io` v1beta1 / v1beta2).
    pub const CRD: Spelling = Spelling {
        peer_address: "peerAddress",
        peer_asn: "peerASN",
        my_asn: "myASN",
        ebgp_multihop: "ebgpMultiHop",
        aliases: "the Community kind",
    };
}

/// An AS number: 0 is not one.
pub fn nonzero_asn(n: u32) -> Result<u32, String> {
    if n == 0 {
        return Err(format!("must not be 0 ({ASN_RANGE})"));
    }
    Ok(n)
}

/// An IP address (surrounding blanks ignored).
pub fn ip(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse::<IpAddr>()
        .map_err(|_| format!("{text:?} is not an IP address"))
}

/// A BGP router ID: an IPv4 address.
pub fn router_id(text: &str) -> Result<Ipv4Addr, String> {
    match text.trim().parse::<Ipv4Addr>() {
        Ok(id) => Ok(id),
        Err(_) => {
            let why = if text.trim().parse::<IpAddr>().is_ok() {
                "is not an IPv4 address (a BGP router ID is 32 bits)"
            } else {
                "is not an IPv4 address"
            };
            Err(format!("{text:?} {why}"))
        }
    }
}

/// The source address must be of the peer address's family.
pub fn source_family(src: IpAddr, peer: IpAddr, s: &Spelling) -> Result<(), String> {
    if src.is_ipv4() != peer.is_ipv4() {
        return Err(format!(
            "{src} and {} {peer} are of different address families",
            s.peer_address
        ));
    }
    Ok(())
}

/// A TCP MD5 password; empty means none.
pub fn password(text: &str) -> Result<Option<String>, String> {
    if text.contains(['\n', '\r']) {
        return Err("must not contain line breaks".to_string());
    }
    if text.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "is {} bytes long; a TCP MD5 key is at most {MAX_PASSWORD_BYTES} bytes",
            text.len()
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// `ebgp-multihop` makes no sense towards an iBGP peer.
pub fn ebgp_multihop(on: bool, peer_asn: u32, my_asn: u32, s: &Spelling) -> Result<(), String> {
    if on && peer_asn == my_asn {
        return Err(format!(
            "{} is set on an iBGP peer ({} {peer_asn} equals {} {my_asn})",
            s.ebgp_multihop, s.peer_asn, s.my_asn
        ));
    }
    Ok(())
}

/// Two entries for one peer address on different ports: the BGP speaker keys its sessions by
/// peer address, so it could run only one of them. `other` names the earlier entry.
pub fn one_port_per_address(
    address: IpAddr,
    port: u16,
    other: &str,
    other_port: u16,
) -> Result<(), String> {
    if port == other_port {
        return Ok(());
    }
    Err(format!(
        "peer {address} is also {other}, on port {other_port}; ferrolb runs one BGP session \
         per peer address, so one address on two ports ({other_port} and {port}) is refused"
    ))
}

/// A Go duration (`90s`, `1m30s`) that must be a non-negative whole number of seconds.
pub fn whole_seconds(text: &str) -> Result<u64, String> {
    let nanos = match parse_go_duration(text.trim()) {
        Ok(n) => n,
        Err(reason) => {
            let hint = if reason.starts_with("missing unit") {
                " (e.g. \"90s\")"
            } else {
                ""
            };
            return Err(format!("{reason}{hint}"));
        }
    };
    if nanos < 0 {
        return Err(format!("{text:?} is negative"));
    }
    if nanos % 1_000_000_000 != 0 {
        return Err(format!("{text:?} is not a whole number of seconds"));
    }
    u64::try_from(nanos / 1_000_000_000).map_err(|_| format!("{text:?} is too long"))
}

/// A BGP hold time: 0 (no keepalives, no hold timer) or 3 s to 65535 s.
pub fn hold_time(secs: u64) -> Result<Duration, String> {
    if secs == 1 || secs == 2 {
        Err(format!("{secs}s is not allowed: must be 0 or at least 3s"))
    } else if secs > 65535 {
        Err(format!(
            "{secs}s is more than 65535s, the largest BGP hold time"
        ))
    } else {
        Ok(Duration::from_secs(secs))
    }
}

/// The graceful restart time offered by default: long enough for a DaemonSet pod to be
/// replaced on a node (image cached), short enough that a speaker that does not come back is
/// forgotten within a minute even without BFD.
pub const DEFAULT_RESTART_TIME: Duration = Duration::from_secs(60);

/// A graceful restart time (RFC 4724: a 12-bit field of seconds): 1 s to 4095 s. Zero
/// would ask routers to keep nothing, which is graceful restart turned off: say so instead.
pub fn restart_time(secs: u64) -> Result<Duration, String> {
    match secs {
        0 => Err("0s keeps nothing: turn graceful restart off instead".to_string()),
        1..=4095 => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "{secs}s is more than 4095s, the largest restart time BGP can carry"
        )),
    }
}

/// The keepalive default: a third of the hold time, whole seconds rounded down.
pub fn default_keepalive(hold: Duration) -> Duration {
    Duration::from_secs(hold.as_secs() / 3)
}

/// A keepalive time against its hold time (`None` when the hold time itself was invalid).
/// `Ok` carries a warning for a keepalive of 0 with a non-zero hold time.
pub fn keepalive(
    keepalive: Duration,
    hold: Option<Duration>,
) -> Result<(Duration, Option<String>), String> {
    match hold {
        Some(h) if keepalive.is_zero() && !h.is_zero() => Ok((
            keepalive,
            Some(format!(
                "0s sends no KEEPALIVE messages while the hold time is {}s; the peer will drop \
                 the session unless it sends updates",
                h.as_secs()
            )),
        )),
        Some(h) if keepalive > h => Err(format!(
            "{}s is longer than the hold time ({}s)",
            keepalive.as_secs(),
            h.as_secs()
        )),
        _ => Ok((keepalive, None)),
    }
}

/// An `addresses[]` entry; the reason names the text.
pub fn address_entry(text: &str) -> Result<ParsedEntry, String> {
    parse_entry(text).map_err(|reason| format!("{text:?} is not a valid CIDR or range: {reason}"))
}

/// The reason for an entry overlapping an earlier one. `whose` is "of the same pool" or
/// "of pool \"x\"".
pub fn overlap(text: &str, other_text: &str, other_path: &str, whose: &str) -> String {
    format!("{text:?} overlaps {other_text:?} ({other_path}, {whose})")
}

/// The address entries of every pool so far, to find overlaps within and across pools.
#[derive(Debug, Default)]
pub struct SeenAddresses {
    seen: Vec<SeenAddress>,
}

#[derive(Debug)]
struct SeenAddress {
    range: AddressRange,
    text: String,
    path: String,
    pool: String,
}

impl SeenAddresses {
    /// Checks one entry of `pool` against every earlier one and remembers it: one reason per
    /// overlap. `name_pool` says how another pool is named in a reason (`pool "x"`).
    pub fn add(
        &mut self,
        range: AddressRange,
        text: &str,
        path: &str,
        pool: &str,
        name_pool: impl Fn(&str) -> String,
    ) -> Vec<String> {
        let reasons = self
            .seen
            .iter()
            .filter(|other| range.overlaps(&other.range))
            .map(|other| {
                let whose = if other.pool == pool {
                    "of the same pool".to_string()
                } else {
                    format!("of {}", name_pool(&other.pool))
                };
                overlap(text, &other.text, &other.path, &whose)
            })
            .collect();
        self.seen.push(SeenAddress {
            range,
            text: text.to_string(),
            path: path.to_string(),
            pool: pool.to_string(),
        });
        reasons
    }
}

/// An aggregation length against the entries of the family it applies to: shorter than an
/// entry's widest CIDR block would announce addresses outside the pool. One reason per entry
/// it fails; `entries` are (range, text as written, path of the entry).
pub fn aggregation<'a>(
    len: u8,
    v4: bool,
    entries: impl IntoIterator<Item = (&'a AddressRange, &'a str, &'a str)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (range, text, path) in entries {
        if range.is_ipv4() != v4 {
            continue;
        }
        let shortest = shortest_prefix(range);
        if len < shortest {
            let what = if range.is_cidr() {
                "the prefix"
            } else {
                "the widest CIDR block"
            };
            out.push(format!(
                "{len} is shorter than /{shortest}, {what} of {path} ({text:?}); announcing a \
                 /{len} would cover addresses outside the pool"
            ));
        }
    }
    out
}

/// A community written in an advertisement: an alias, or a literal `a:b` / `large:a:b:c`.
/// `Ok(None)`: an alias whose definition was invalid (already reported there).
pub fn community_reference(
    text: &str,
    aliases: &BTreeMap<String, Community>,
    broken: &BTreeSet<String>,
    s: &Spelling,
) -> Result<Option<Community>, String> {
    if let Some(c) = aliases.get(text) {
        return Ok(Some(*c));
    }
    if broken.contains(text) {
        return Ok(None);
    }
    if !text.contains(':') {
        let defined: Vec<String> = aliases.keys().map(|k| format!("{k:?}")).collect();
        let hint = if defined.is_empty() {
            format!("{} defines no aliases", s.aliases)
        } else {
            format!("{} defines {}", s.aliases, defined.join(", "))
        };
        return Err(format!(
            "{text:?} is not a defined community alias ({hint})"
        ));
    }
    community_value(text).map(Some)
}

/// A community literal; the reason names the text.
pub fn community_value(text: &str) -> Result<Community, String> {
    parse_community(text).map_err(|reason| format!("{text:?} is not a valid community: {reason}"))
}

/// The reason for a community given twice in one advertisement.
pub fn duplicate_community(c: Community, first: &str) -> String {
    format!("duplicate community {c} (also {first})")
}

/// A number within `lo..=hi`, with the hint of `(lo, hi, hint)` in the reason.
pub fn in_range(n: u64, (lo, hi, hint): (u32, u32, &str)) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(v) if v >= lo && v <= hi => Ok(v),
        _ => Err(format!("{n} is out of range: {hint}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers() {
        assert_eq!(whole_seconds("1m30s"), Ok(90));
        assert_eq!(
            whole_seconds("1500ms"),
            Err("\"1500ms\" is not a whole number of seconds".into())
        );
        assert_eq!(
            hold_time(2),
            Err("2s is not allowed: must be 0 or at least 3s".into())
        );
        assert_eq!(hold_time(0), Ok(Duration::ZERO));
        assert_eq!(default_keepalive(Duration::from_secs(10)).as_secs(), 3);
        assert!(
            keepalive(Duration::ZERO, Some(Duration::from_secs(9))).is_ok_and(|(_, w)| w.is_some())
        );
        assert!(keepalive(Duration::from_secs(10), Some(Duration::from_secs(9))).is_err());
    }

    #[test]
    fn spellings_reach_the_reasons() {
        let err = ebgp_multihop(true, 5, 5, &Spelling::CRD).unwrap_err();
        assert_eq!(
            err,
            "ebgpMultiHop is set on an iBGP peer (peerASN 5 equals myASN 5)"
        );
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(
            source_family(v6, v4, &Spelling::CONFIGMAP).unwrap_err(),
            "fd00::1 and peer-address 10.0.0.1 are of different address families"
        );
        assert!(one_port_per_address(v4, 179, "peers[0]", 179).is_ok());
        assert!(one_port_per_address(v4, 1179, "peers[0]", 179).is_err());
    }
}
