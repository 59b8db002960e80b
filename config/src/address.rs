//! `addresses[]` entries: a CIDR (`198.51.100.0/24`) or an inclusive range
//! (`192.168.0.150-192.168.0.200`, spaces allowed around `-`), IPv4 or IPv6.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::AddressRange;

/// A parsed entry, with a note when it was accepted but written oddly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEntry {
    pub range: AddressRange,
    pub warning: Option<String>,
}

/// Parses one entry. Errors are the reason only; the caller adds the quoted text.
pub fn parse_entry(text: &str) -> Result<ParsedEntry, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("it is empty".to_string());
    }
    if let Some((a, b)) = t.split_once('-') {
        return parse_range(a.trim(), b.trim());
    }
    if let Some((ip, len)) = t.split_once('/') {
        return parse_cidr(text, ip, len);
    }
    match t.parse::<IpAddr>() {
        Ok(ip) => Err(format!(
            "a single address needs a prefix length, e.g. {ip}/{}",
            max_len(ip)
        )),
        Err(_) => Err(format!("{t:?} is not an IP address")),
    }
}

fn max_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn parse_ip(part: &str, what: &str) -> Result<IpAddr, String> {
    part.parse::<IpAddr>()
        .map_err(|_| format!("{what} {part:?} is not an IP address"))
}

fn parse_cidr(text: &str, ip: &str, len: &str) -> Result<ParsedEntry, String> {
    let addr = parse_ip(ip.trim(), "address")?;
    let len_trim = len.trim();
    let prefix: u8 = len_trim
        .parse()
        .map_err(|_| format!("prefix length {len_trim:?} is not a number"))?;
    if prefix > max_len(addr) {
        return Err(format!(
            "prefix length {prefix} is more than {}",
            max_len(addr)
        ));
    }
    let net = IpNet::new(addr, prefix).map_err(|e| e.to_string())?;
    let trunc = net.trunc();
    let warning = (trunc.addr() != addr).then(|| {
        format!(
            "{:?} has host bits set; the pool uses {trunc}, as MetalLB does",
            text.trim()
        )
    });
    Ok(ParsedEntry {
        range: AddressRange {
            start: trunc.network(),
            end: trunc.broadcast(),
            cidr: Some(trunc),
        },
        warning,
    })
}

fn parse_range(a: &str, b: &str) -> Result<ParsedEntry, String> {
    let start = parse_ip(a, "start")?;
    let end = parse_ip(b, "end")?;
    if start.is_ipv4() != end.is_ipv4() {
        return Err(format!(
            "start {start} and end {end} are of different address families"
        ));
    }
    if start > end {
        return Err(format!("start {start} is after end {end}"));
    }
    Ok(ParsedEntry {
        range: AddressRange {
            start,
            end,
            cidr: None,
        },
        warning: None,
    })
}

/// The range as integers, for arithmetic.
pub(crate) fn bounds(r: &AddressRange) -> (u128, u128) {
    (to_u128(r.start), to_u128(r.end))
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The shortest prefix length among the CIDR blocks an entry consists of: its own prefix
/// for a CIDR; for a range, the widest block of its minimal CIDR cover (MetalLB summarises
/// a range into CIDRs and checks the aggregation length against the widest one).
pub fn shortest_prefix(r: &AddressRange) -> u8 {
    if let Some(net) = r.cidr {
        return net.prefix_len();
    }
    let bits: u32 = if r.is_ipv4() { 32 } else { 128 };
    let (start, end) = bounds(r);
    let mut shortest = bits;
    let mut cur = start;
    loop {
        // Largest aligned block starting at `cur` that stays within the range.
        let mut size_bits = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        loop {
            let last = if size_bits >= 128 {
                Some(u128::MAX)
            } else {
                cur.checked_add((1u128 << size_bits) - 1)
            };
            match last {
                Some(l) if l <= end => break,
                _ => size_bits -= 1,
            }
        }
        shortest = shortest.min(bits - size_bits);
        let last = if size_bits >= 128 {
            u128::MAX
        } else {
            cur + ((1u128 << size_bits) - 1)
        };
        if last >= end {
            break;
        }
        cur = last + 1;
    }
    u8::try_from(shortest).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> AddressRange {
        parse_entry(text).expect("valid entry").range
    }

    #[test]
    fn cidrs_and_ranges() {
        let r = entry("198.51.100.0/24");
        assert_eq!(r.start.to_string(), "198.51.100.0");
        assert_eq!(r.end.to_string(), "198.51.100.255");
        assert!(r.is_cidr());
        let r = entry("192.168.0.150 - 192.168.0.200");
        assert_eq!(r.start.to_string(), "192.168.0.150");
        assert_eq!(r.end.to_string(), "192.168.0.200");
        assert!(!r.is_cidr());
        let r = entry("2001:db8::/126");
        assert_eq!(r.end.to_string(), "2001:db8::3");
        let r = entry("2001:db8::10-2001:db8::1f");
        assert_eq!(r.size(), 16);
        let r = entry("10.0.0.7-10.0.0.7");
        assert_eq!(r.size(), 1);
    }

    #[test]
    fn host_bits_warn() {
        let p = parse_entry("10.0.0.1/24").expect("accepted");
        assert_eq!(p.range.cidr, Some("10.0.0.0/24".parse().expect("net")));
        assert_eq!(
            p.warning.as_deref(),
            Some("\"10.0.0.1/24\" has host bits set; the pool uses 10.0.0.0/24, as MetalLB does")
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_entry("10.0.0.0/33"),
            Err("prefix length 33 is more than 32".into())
        );
        assert_eq!(
            parse_entry("2001:db8::/129"),
            Err("prefix length 129 is more than 128".into())
        );
        assert_eq!(
            parse_entry("10.0.0.0/x"),
            Err("prefix length \"x\" is not a number".into())
        );
        assert_eq!(
            parse_entry("10.0.0.256/24"),
            Err("address \"10.0.0.256\" is not an IP address".into())
        );
        assert_eq!(
            parse_entry("10.0.0.9-10.0.0.1"),
            Err("start 10.0.0.9 is after end 10.0.0.1".into())
        );
        assert_eq!(
            parse_entry("10.0.0.1-2001:db8::1"),
            Err("start 10.0.0.1 and end 2001:db8::1 are of different address families".into())
        );
        assert_eq!(
            parse_entry("10.0.0.1"),
            Err("a single address needs a prefix length, e.g. 10.0.0.1/32".into())
        );
        assert_eq!(
            parse_entry("pool"),
            Err("\"pool\" is not an IP address".into())
        );
        assert_eq!(parse_entry(" "), Err("it is empty".into()));
        assert_eq!(
            parse_entry("10.0.0.1-"),
            Err("end \"\" is not an IP address".into())
        );
    }

    #[test]
    fn shortest_prefix_of_ranges() {
        assert_eq!(shortest_prefix(&entry("10.0.0.0/24")), 24);
        // .150/31 .152/29 .160/27 .192/29 .200/32
        assert_eq!(shortest_prefix(&entry("192.168.0.150-192.168.0.200")), 27);
        assert_eq!(shortest_prefix(&entry("10.0.0.0-10.0.0.255")), 24);
        assert_eq!(shortest_prefix(&entry("0.0.0.0-255.255.255.255")), 0);
        assert_eq!(
            shortest_prefix(&entry("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            0
        );
        assert_eq!(shortest_prefix(&entry("10.0.0.5-10.0.0.5")), 32);
        assert_eq!(shortest_prefix(&entry("2001:db8::1-2001:db8::2")), 128);
        assert_eq!(shortest_prefix(&entry("2001:db8::2-2001:db8::3")), 127);
    }
}
