//! Measurements, not tests: `cargo test -p ferrolb-bgp --release --test rib_bench -- --ignored --nocapture`.
//! They still assert the loose bounds the design promises, so a regression shows.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use ferrolb_bgp::rib::{AdjRibOut, Route};
use ferrolb_bgp::wire::{AddressFamily, MAX_MESSAGE_LEN, NextHop, PathAttributes, SessionContext};
use ipnet::{IpNet, Ipv4Net};

const N: u32 = 100_000;

fn ctx() -> SessionContext {
    SessionContext {
        four_octet_as: true,
        families: vec![AddressFamily::Ipv4Unicast],
        route_refresh: true,
        local_as: 64522,
        peer_as: 65000,
        graceful_restart: None,
    }
}

fn route() -> Route {
    Route {
        attributes: PathAttributes {
            communities: vec![(64522 << 16) | 100],
            ..PathAttributes::default()
        },
        next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
    }
}

fn desired() -> BTreeMap<IpNet, Route> {
    let route = route();
    (0..N)
        .map(|i| {
            let p = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap());
            (p, route.clone())
        })
        .collect()
}

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "measurement; run in release"]
fn pack_100k_host_routes() {
    let mut out = AdjRibOut::new();
    let t = Instant::now();
    let diff = out.set_desired(desired());
    let diff_time = t.elapsed();
    let t = Instant::now();
    let msgs = diff.encode(&ctx()).unwrap();
    let pack_time = t.elapsed();
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    assert!(msgs.iter().all(|m| m.len() <= MAX_MESSAGE_LEN));
    println!(
        "{N} /32s: set_desired {diff_time:?}, pack {pack_time:?}: {} UPDATEs, {bytes} bytes",
        msgs.len()
    );
    let t = Instant::now();
    let again = out.full_table().encode(&ctx()).unwrap();
    println!("full_table + pack: {:?}", t.elapsed());
    assert_eq!(again.len(), msgs.len());
    if !cfg!(debug_assertions) {
        assert!(pack_time.as_millis() < 100, "packing took {pack_time:?}");
    }
}

#[test]
#[ignore = "measurement; run in release"]
fn memory_of_100k_routes_announced_one_by_one() {
    // Without the caller's 100k-entry input map, this is what the library holds.
    let route = route();
    let before = rss_kib("VmRSS:");
    let mut out = AdjRibOut::new();
    for i in 0..N {
        let p = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0b00_0000 + i), 32).unwrap());
        out.announce(p, route.clone());
    }
    let after = rss_kib("VmRSS:");
    println!(
        "Adj-RIB-Out with {} routes via announce(): RSS +{} KiB",
        out.len(),
        after.saturating_sub(before)
    );
    assert!(after.saturating_sub(before) < 10 * 1024);
}

#[test]
#[ignore = "measurement; run in release"]
fn memory_of_100k_routes_set_desired_shared() {
    let before = rss_kib("VmRSS:");
    let shared = std::sync::Arc::new(route());
    let desired: BTreeMap<IpNet, std::sync::Arc<Route>> = (0..N)
        .map(|i| {
            let p = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0c00_0000 + i), 32).unwrap());
            (p, shared.clone())
        })
        .collect();
    let mut out = AdjRibOut::new();
    let diff = out.set_desired_shared(desired);
    let msgs = diff.encode(&ctx()).unwrap();
    let after = rss_kib("VmRSS:");
    println!(
        "set_desired_shared({N}) + diff + {} UPDATEs: RSS +{} KiB",
        msgs.len(),
        after.saturating_sub(before)
    );
    assert!(after.saturating_sub(before) < 20 * 1024);
}

#[test]
#[ignore = "measurement; run in release"]
fn memory_of_100k_routes() {
    let before = rss_kib("VmRSS:");
    let mut out = AdjRibOut::new();
    out.set_desired(desired());
    // The caller's `desired` map (about 200 bytes per entry) is gone now, but its pages
    // stay in the allocator, so this delta includes it.
    let after = rss_kib("VmRSS:");
    println!(
        "Adj-RIB-Out with {} routes: RSS +{} KiB (peak {} KiB), {} distinct route(s)",
        out.len(),
        after.saturating_sub(before),
        rss_kib("VmHWM:"),
        out.distinct_routes()
    );
    assert_eq!(out.distinct_routes(), 1);
    assert!(after.saturating_sub(before) < 30 * 1024);
}
