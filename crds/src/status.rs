//! `IPAddressPool.status`, as MetalLB 0.15 computes it (`internal/allocator/allocator.go`,
//! `updatePoolStats` / `poolCount`): per family, the addresses assigned to Services and the
//! ones still available (usable addresses minus assigned). Usable honours
//! `avoidBuggyIPs` (no IPv4 `x.x.x.0` / `x.x.x.255`); a family of 2^62 addresses or more
//! counts as `i64::MAX`, as MetalLB's "never runs out" value. Pure; the controller writes it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_config::{AddressRange, Pool};

use crate::types::IPAddressPoolStatus;

/// Sizes from this many addresses up count as "never runs out".
const HUGE: u128 = 1 << 62;

/// The status of `pool` when `assigned` are the addresses its Services hold (addresses
/// outside the pool are ignored, each address counts once).
pub fn pool_status(pool: &Pool, assigned: impl IntoIterator<Item = IpAddr>) -> IPAddressPoolStatus {
    let held: BTreeSet<IpAddr> = assigned
        .into_iter()
        .filter(|ip| pool.contains(*ip))
        .collect();
    let v4 = held.iter().filter(|ip| ip.is_ipv4()).count();
    pool_status_of_counts(pool, v4 as u128, (held.len() - v4) as u128)
}

/// The status of `pool` when its Services hold `assigned_ipv4` and `assigned_ipv6`
/// distinct addresses of it (what the controller's allocator counts).
pub fn pool_status_of_counts(
    pool: &Pool,
    assigned_ipv4: u128,
    assigned_ipv6: u128,
) -> IPAddressPoolStatus {
    let count = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
    let (assigned_ipv4, assigned_ipv6) = (count(assigned_ipv4), count(assigned_ipv6));
    let usable = |v4: bool| -> i64 {
        let total: u128 = pool
            .addresses
            .iter()
            .filter(|r| r.is_ipv4() == v4)
            .map(|r| usable_in(r, pool.avoid_buggy_ips))
            .fold(0u128, u128::saturating_add);
        if total >= HUGE {
            i64::MAX
        } else {
            i64::try_from(total).unwrap_or(i64::MAX)
        }
    };
    IPAddressPoolStatus {
        assigned_ipv4,
        assigned_ipv6,
        available_ipv4: usable(true).saturating_sub(assigned_ipv4),
        available_ipv6: usable(false).saturating_sub(assigned_ipv6),
    }
}

/// Addresses of one range that may be handed out.
fn usable_in(r: &AddressRange, avoid_buggy_ips: bool) -> u128 {
    let size = r.size();
    if !avoid_buggy_ips || !r.is_ipv4() {
        return size;
    }
    let (IpAddr::V4(s), IpAddr::V4(e)) = (r.start, r.end) else {
        return size;
    };
    let (s, e) = (i128::from(u32::from(s)), i128::from(u32::from(e)));
    // Addresses x in [s, e] with x % 256 == k.
    let with_last_byte = |k: i128| (e - k).div_euclid(256) - (s - 1 - k).div_euclid(256);
    size - u128::try_from(with_last_byte(0) + with_last_byte(255)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(text: &str) -> Pool {
        ferrolb_config::parse_config(text)
            .expect("valid")
            .config
            .pools
            .remove(0)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_per_family_as_metallb() {
        let p = pool(
            "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/24, \
             10.0.1.250-10.0.2.4, 'fd00::/120']\n",
        );
        let s = pool_status(
            &p,
            [
                ip("10.0.0.7"),
                ip("10.0.0.7"),
                ip("fd00::5"),
                ip("192.0.2.1"),
            ],
        );
        assert_eq!(
            s,
            IPAddressPoolStatus {
                assigned_ipv4: 1,
                assigned_ipv6: 1,
                available_ipv4: 256 + 11 - 1,
                available_ipv6: 256 - 1,
            }
        );
    }

    #[test]
    fn avoid_buggy_ips_and_huge_v6() {
        let p = pool(
            "address-pools:\n- name: a\n  protocol: bgp\n  avoid-buggy-ips: true\n  addresses: \
             [10.0.0.0/23, 10.0.2.250-10.0.3.4, 10.0.4.0/26, 'fd00::/64']\n",
        );
        let s = pool_status(&p, []);
        // /23: 512 - 4; range: 11 - 2 (10.0.2.255, 10.0.3.0); /26: 64 - 1 (10.0.4.0).
        assert_eq!(s.available_ipv4, 508 + 9 + 63);
        assert_eq!(s.available_ipv6, i64::MAX);
        assert_eq!(s.assigned_ipv6, 0);
    }
}
