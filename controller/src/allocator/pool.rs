//! Address pools: the input form ([`Pool`]) and the validated, compiled form ([`PoolSet`]).
//!
//! Why a compiled form: every pool is turned once into sorted, disjoint ranges of an *index
//! space* per family, in which the assignable addresses are consecutive integers. For a normal
//! pool the index of an address is the address itself (as `u128`). For an IPv4 pool with
//! `avoid_buggy_ips`, the `.0` and `.255` addresses are left out of the numbering
//! (`index = (addr >> 8) * 254 + (last_octet - 1)`), so "skip buggy addresses" costs nothing at
//! allocation time and allocated runs coalesce across /24 boundaries. Nothing here grows with
//! the number of addresses in a pool, only with the number of configured ranges.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use thiserror::Error;

use super::scope::ServiceAllocation;
use super::types::Family;

/// One block of addresses in a pool, as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRange {
    /// A CIDR; host bits, if any, are ignored (`10.0.0.5/24` means `10.0.0.0/24`).
    Cidr(IpNet),
    /// An inclusive range `first-last` of one family.
    Range { first: IpAddr, last: IpAddr },
}

/// An address pool as the controller hands it over (converted from the config crate's type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub ranges: Vec<PoolRange>,
    /// If false, only Services that name this pool (or request one of its IPs) get its IPs.
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in `.0` or `.255` (MetalLB's `avoid-buggy-ips`; like MetalLB
    /// this has no effect on IPv6 addresses).
    pub avoid_buggy_ips: bool,
    /// `serviceAllocation`: only the Services it selects get this pool's addresses, and it is
    /// tried before the pools without one (see `allocator::scope`). `None`: every Service, as a
    /// fallback.
    pub service_allocation: Option<ServiceAllocation>,
}

impl Pool {
    /// An empty pool with MetalLB's defaults (auto-assign on, buggy IPs allowed).
    pub fn new(name: impl Into<String>) -> Pool {
        Pool {
            name: name.into(),
            ranges: Vec::new(),
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }

    /// Adds a CIDR.
    pub fn with_cidr(mut self, net: IpNet) -> Pool {
        self.ranges.push(PoolRange::Cidr(net));
        self
    }

    /// Adds an inclusive range.
    pub fn with_range(mut self, first: IpAddr, last: IpAddr) -> Pool {
        self.ranges.push(PoolRange::Range { first, last });
        self
    }

    pub fn with_auto_assign(mut self, on: bool) -> Pool {
        self.auto_assign = on;
        self
    }

    pub fn with_avoid_buggy_ips(mut self, on: bool) -> Pool {
        self.avoid_buggy_ips = on;
        self
    }

    pub fn with_service_allocation(mut self, allocation: ServiceAllocation) -> Pool {
        self.service_allocation = Some(allocation);
        self
    }
}

/// Why a set of pools cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolError {
    #[error("address pool with an empty name")]
    EmptyName,
    #[error("address pool \"{0}\" is defined twice")]
    DuplicateName(String),
    #[error("address pool \"{pool}\": range {first}-{last} mixes IPv4 and IPv6")]
    MixedFamilyRange {
        pool: String,
        first: IpAddr,
        last: IpAddr,
    },
    #[error("address pool \"{pool}\": range {first}-{last} ends before it starts")]
    ReversedRange {
        pool: String,
        first: IpAddr,
        last: IpAddr,
    },
    #[error("address pools \"{first_pool}\" and \"{second_pool}\" overlap at {ip}")]
    Overlap {
        first_pool: String,
        second_pool: String,
        ip: IpAddr,
    },
}

/// `ip` as (family, integer value).
pub(crate) fn addr_value(ip: &IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(a) => (Family::V4, u128::from(u32::from(*a))),
        IpAddr::V6(a) => (Family::V6, u128::from(*a)),
    }
}

/// Inverse of [`addr_value`]. `v` must fit the family (guaranteed by construction).
pub(crate) fn value_addr(family: Family, v: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// MetalLB's rule: an IPv4 address ending in .0 or .255 confuses smurf protection in some
/// CPE firmware. IPv6 addresses are never "buggy".
pub(crate) fn is_buggy(family: Family, v: u128) -> bool {
    family == Family::V4 && matches!(v & 0xff, 0 | 0xff)
}

/// How addresses of one family are numbered inside one pool (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Numbering {
    pub(crate) family: Family,
    /// True for IPv4 in an avoid-buggy-ips pool.
    skip_buggy: bool,
}

impl Numbering {
    pub(crate) fn new(family: Family, avoid_buggy_ips: bool) -> Numbering {
        Numbering {
            family,
            skip_buggy: avoid_buggy_ips && family == Family::V4,
        }
    }

    /// The index of address value `v`, or `None` if the pool skips it.
    pub(crate) fn index(self, v: u128) -> Option<u128> {
        if !self.skip_buggy {
            return Some(v);
        }
        if is_buggy(self.family, v) {
            return None;
        }
        Some((v >> 8) * 254 + (v & 0xff) - 1)
    }

    /// The address value numbered `i`.
    pub(crate) fn value(self, i: u128) -> u128 {
        if !self.skip_buggy {
            return i;
        }
        ((i / 254) << 8) | (i % 254 + 1)
    }

    /// The index range covering the non-skipped addresses of `[first, last]`, if any.
    fn index_range(self, first: u128, last: u128) -> Option<(u128, u128)> {
        if !self.skip_buggy {
            return Some((first, last));
        }
        // First non-buggy address >= first, last non-buggy address <= last.
        let lo = match first & 0xff {
            0 => first + 1,
            0xff => first + 2,
            _ => first,
        };
        let hi = match last & 0xff {
            0xff => last.checked_sub(1)?,
            0 => last.checked_sub(2)?,
            _ => last,
        };
        if lo > hi || lo > u128::from(u32::MAX) {
            return None;
        }
        Some((self.index(lo)?, self.index(hi)?))
    }
}

/// One pool after validation.
#[derive(Debug, Clone)]
pub(crate) struct CompiledPool {
    pub(crate) name: String,
    pub(crate) avoid_buggy_ips: bool,
    pub(crate) service_allocation: Option<ServiceAllocation>,
    /// Index-space ranges per family, sorted and disjoint: `[v4, v6]`.
    index_ranges: [Vec<(u128, u128)>; 2],
    pub(crate) addresses_total: u128,
}

fn fam_slot(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl CompiledPool {
    pub(crate) fn numbering(&self, family: Family) -> Numbering {
        Numbering::new(family, self.avoid_buggy_ips)
    }

    /// Index ranges of `family`, ascending.
    pub(crate) fn index_ranges(&self, family: Family) -> &[(u128, u128)] {
        &self.index_ranges[fam_slot(family)]
    }

    /// Whether the pool has at least one assignable address of `family`.
    pub(crate) fn has_family(&self, family: Family) -> bool {
        !self.index_ranges(family).is_empty()
    }
}

/// A validated list of pools in config order, with a lookup from address to pool.
#[derive(Debug, Clone, Default)]
pub struct PoolSet {
    pub(crate) pools: Vec<CompiledPool>,
    by_name: HashMap<String, usize>,
    /// (family, first, last, pool index) in address space, sorted, non-overlapping.
    lookup: Vec<(Family, u128, u128, usize)>,
    /// Auto-assign pools with a `serviceAllocation`, in the order they are tried (priority,
    /// then config order).
    pub(crate) scoped: Vec<usize>,
    /// Auto-assign pools without a `serviceAllocation` (the fallback), in config order.
    pub(crate) general: Vec<usize>,
    /// Whether any pool restricts namespaces by label.
    namespace_selectors: bool,
}

impl PoolSet {
    /// Validates `pools`: names non-empty and unique, ranges well-formed, no address in two
    /// pools (MetalLB rejects overlapping pools too). Overlaps *inside* one pool are merged.
    pub fn new(pools: Vec<Pool>) -> Result<PoolSet, PoolError> {
        let mut set = PoolSet::default();
        for (idx, pool) in pools.into_iter().enumerate() {
            if pool.name.is_empty() {
                return Err(PoolError::EmptyName);
            }
            if set.by_name.contains_key(&pool.name) {
                return Err(PoolError::DuplicateName(pool.name));
            }
            let merged = merged_address_ranges(&pool)?;
            let mut index_ranges: [Vec<(u128, u128)>; 2] = [Vec::new(), Vec::new()];
            let mut total: u128 = 0;
            for &(family, first, last) in &merged {
                set.lookup.push((family, first, last, idx));
                let numbering = Numbering::new(family, pool.avoid_buggy_ips);
                if let Some((lo, hi)) = numbering.index_range(first, last) {
                    total = total.saturating_add((hi - lo).saturating_add(1));
                    index_ranges[fam_slot(family)].push((lo, hi));
                }
            }
            set.by_name.insert(pool.name.clone(), idx);
            match (&pool.service_allocation, pool.auto_assign) {
                (Some(_), true) => set.scoped.push(idx),
                (None, true) => set.general.push(idx),
                (_, false) => {}
            }
            set.namespace_selectors |= pool
                .service_allocation
                .as_ref()
                .is_some_and(|a| !a.namespace_selectors.is_empty());
            set.pools.push(CompiledPool {
                name: pool.name,
                avoid_buggy_ips: pool.avoid_buggy_ips,
                service_allocation: pool.service_allocation,
                index_ranges,
                addresses_total: total,
            });
        }
        // Stable: equal priorities keep config order.
        let pools = &set.pools;
        set.scoped.sort_by_key(|&i| {
            pools[i]
                .service_allocation
                .as_ref()
                .map(ServiceAllocation::order_key)
        });
        set.lookup
            .sort_unstable_by_key(|&(f, first, _, _)| (f, first));
        for pair in set.lookup.windows(2) {
            let (fa, _, last_a, pa) = pair[0];
            let (fb, first_b, _, pb) = pair[1];
            if fa == fb && first_b <= last_a {
                let (p1, p2) = (pa.min(pb), pa.max(pb));
                return Err(PoolError::Overlap {
                    first_pool: set.pools[p1].name.clone(),
                    second_pool: set.pools[p2].name.clone(),
                    ip: value_addr(fb, first_b),
                });
            }
        }
        Ok(set)
    }

    /// Pool names in config order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pools.iter().map(|p| p.name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// Whether any pool's `serviceAllocation` selects namespaces by label, so the allocator
    /// needs each Service's namespace labels.
    pub fn uses_namespace_selectors(&self) -> bool {
        self.namespace_selectors
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The pool whose ranges contain `ip`, ignoring avoid-buggy-ips (the caller decides how
    /// to report a skipped address). O(log ranges).
    pub(crate) fn containing(&self, ip: &IpAddr) -> Option<usize> {
        let (family, v) = addr_value(ip);
        let pos = self
            .lookup
            .partition_point(|&(f, first, _, _)| (f, first) <= (family, v));
        let &(f, _, last, idx) = self.lookup.get(pos.checked_sub(1)?)?;
        (f == family && v <= last).then_some(idx)
    }
}

/// The pool's ranges in address space, per family, sorted and merged.
fn merged_address_ranges(pool: &Pool) -> Result<Vec<(Family, u128, u128)>, PoolError> {
    let mut out = Vec::with_capacity(pool.ranges.len());
    for range in &pool.ranges {
        let (first, last) = match *range {
            PoolRange::Cidr(net) => (net.network(), net.broadcast()),
            PoolRange::Range { first, last } => (first, last),
        };
        let (fa, a) = addr_value(&first);
        let (fb, b) = addr_value(&last);
        if fa != fb {
            return Err(PoolError::MixedFamilyRange {
                pool: pool.name.clone(),
                first,
                last,
            });
        }
        if a > b {
            return Err(PoolError::ReversedRange {
                pool: pool.name.clone(),
                first,
                last,
            });
        }
        out.push((fa, a, b));
    }
    out.sort_unstable();
    let mut merged: Vec<(Family, u128, u128)> = Vec::with_capacity(out.len());
    for (f, a, b) in out {
        match merged.last_mut() {
            Some((lf, _, lb)) if *lf == f && a <= lb.saturating_add(1) => *lb = (*lb).max(b),
            _ => merged.push((f, a, b)),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> u128 {
        addr_value(&s.parse().unwrap()).1
    }

    #[test]
    fn buggy_numbering_round_trips_and_skips_0_and_255() {
        let n = Numbering::new(Family::V4, true);
        assert_eq!(n.index(v4("10.0.0.0")), None);
        assert_eq!(n.index(v4("10.0.0.255")), None);
        let a = n.index(v4("10.0.0.254")).unwrap();
        let b = n.index(v4("10.0.1.1")).unwrap();
        assert_eq!(b, a + 1, ".254 and next .1 must be neighbours");
        for s in ["0.0.0.1", "10.0.0.1", "10.0.0.254", "255.255.255.254"] {
            assert_eq!(n.value(n.index(v4(s)).unwrap()), v4(s));
        }
        // IPv6 is never skipped, even with avoid_buggy_ips.
        let n6 = Numbering::new(Family::V6, true);
        assert_eq!(n6.index(0xff), Some(0xff));
        assert_eq!(n6.index(0x100), Some(0x100));
    }

    #[test]
    fn totals_count_buggy_exclusion_exactly() {
        let set = PoolSet::new(vec![
            Pool::new("a")
                .with_cidr("10.0.0.0/23".parse().unwrap())
                .with_avoid_buggy_ips(true),
            Pool::new("b")
                .with_range("10.1.0.250".parse().unwrap(), "10.1.1.3".parse().unwrap())
                .with_avoid_buggy_ips(true),
            Pool::new("c").with_cidr("10.2.0.0/24".parse().unwrap()),
            Pool::new("d")
                .with_cidr("10.3.0.255/32".parse().unwrap())
                .with_avoid_buggy_ips(true),
            Pool::new("e")
                .with_cidr("fd00::/120".parse().unwrap())
                .with_avoid_buggy_ips(true),
        ])
        .unwrap();
        let totals: Vec<u128> = set.pools.iter().map(|p| p.addresses_total).collect();
        // /23 = 512 minus 2 per /24; .250-.254 + .1-.3; 256; nothing; IPv6 /120 = 256 (no
        // skipping).
        assert_eq!(totals, vec![508, 8, 256, 0, 256]);
        let all = PoolSet::new(vec![Pool::new("f").with_cidr("::/0".parse().unwrap())]).unwrap();
        assert_eq!(all.pools[0].addresses_total, u128::MAX, "saturates");
        assert!(!set.pools[3].has_family(Family::V4));
    }

    #[test]
    fn overlapping_pools_and_bad_ranges_are_rejected() {
        let err = PoolSet::new(vec![
            Pool::new("a").with_cidr("10.0.0.0/24".parse().unwrap()),
            Pool::new("b").with_range("10.0.0.200".parse().unwrap(), "10.0.1.5".parse().unwrap()),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "address pools \"a\" and \"b\" overlap at 10.0.0.200"
        );
        let err = PoolSet::new(vec![
            Pool::new("a").with_range("10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "address pool \"a\": range 10.0.0.1-fd00::1 mixes IPv4 and IPv6"
        );
        let err =
            PoolSet::new(vec![Pool::new("a").with_range(
                "10.0.0.9".parse().unwrap(),
                "10.0.0.1".parse().unwrap(),
            )])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "address pool \"a\": range 10.0.0.9-10.0.0.1 ends before it starts"
        );
        let err = PoolSet::new(vec![Pool::new("a"), Pool::new("a")]).unwrap_err();
        assert_eq!(err.to_string(), "address pool \"a\" is defined twice");
        assert_eq!(
            PoolSet::new(vec![Pool::new("")]).unwrap_err(),
            PoolError::EmptyName
        );
        // Overlap inside one pool is merged, not an error.
        let set = PoolSet::new(vec![
            Pool::new("a")
                .with_cidr("10.0.0.0/24".parse().unwrap())
                .with_cidr("10.0.0.128/25".parse().unwrap()),
        ])
        .unwrap();
        assert_eq!(set.pools[0].addresses_total, 256);
    }

    #[test]
    fn containing_finds_the_right_pool() {
        let set = PoolSet::new(vec![
            Pool::new("a").with_cidr("10.0.0.0/24".parse().unwrap()),
            Pool::new("b").with_cidr("fd00::/64".parse().unwrap()),
            Pool::new("c").with_cidr("10.0.2.0/24".parse().unwrap()),
        ])
        .unwrap();
        let at = |s: &str| set.containing(&s.parse().unwrap());
        assert_eq!(at("10.0.0.0"), Some(0));
        assert_eq!(at("10.0.0.255"), Some(0));
        assert_eq!(at("10.0.1.0"), None);
        assert_eq!(at("10.0.2.7"), Some(2));
        assert_eq!(at("fd00::ffff"), Some(1));
        assert_eq!(at("fd01::"), None);
        assert_eq!(at("9.255.255.255"), None);
        // An IPv4-mapped IPv6 address is IPv6 and not in an IPv4 pool.
        assert_eq!(at("::ffff:10.0.0.1"), None);
    }
}
