//! Shared pieces of the wire tests: a session context, prefix parsing, bgpkit-parser
//! attributes with explicit flags (the independent encoder), and captured streams split
//! into frames.

#![allow(dead_code)]

use bgpkit_parser::models::{AttrFlags, Attribute, AttributeValue};
use ferrolb_bgp::wire::{AddressFamily, SessionContext, message_length};
use ipnet::IpNet;

/// Attribute flags: well-known transitive.
pub const WK: u8 = 0x40;
/// Attribute flags: optional non-transitive.
pub const ON: u8 = 0x80;
/// Attribute flags: optional transitive.
pub const OT: u8 = 0xc0;

/// A session that negotiated IPv4 and IPv6 unicast and route refresh.
pub fn ctx(four_octet_as: bool, local_as: u32, peer_as: u32) -> SessionContext {
    SessionContext {
        four_octet_as,
        families: vec![AddressFamily::Ipv4Unicast, AddressFamily::Ipv6Unicast],
        route_refresh: true,
        local_as,
        peer_as,
        graceful_restart: None,
    }
}

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A bgpkit attribute with exactly these flags.
pub fn attr(flags: u8, value: AttributeValue) -> Attribute {
    Attribute {
        value,
        flag: AttrFlags::from_bits_retain(flags),
    }
}

/// Splits the captured TCP stream `testdata/<name>` into frames using our header check.
pub fn frames(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    let mut off = 0;
    while off < bytes.len() {
        let len = message_length(&bytes[off..])
            .unwrap()
            .expect("complete frame");
        out.push(bytes[off..off + len].to_vec());
        off += len;
    }
    out
}
