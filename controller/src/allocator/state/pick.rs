//! Choosing IPs for a Service that holds nothing: which pools, in which order, which address.
//!
//! Pool order follows MetalLB (`Allocate`, `pinnedPoolsForService`, `findBestPoolForService`):
//! a requested IP decides the pool; a named pool is the only candidate; otherwise first the
//! auto-assign pools whose `serviceAllocation` selects the Service (by priority), and only if
//! none of them can serve, the auto-assign pools without one. Within each of those two tiers the
//! family policy is applied as a whole (PreferDualStack: a pool with both families, else one
//! of the primary family, else one of the other), so a selecting pool with only IPv4 wins over
//! a fallback pool with both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::super::error::AllocError;
use super::super::pool::value_addr;
use super::super::types::{Family, FamilyPolicy, Request};
use super::{Allocator, Slot, primary_first};

/// The pools one round of picking may draw from.
#[derive(Debug, Clone, Copy)]
enum Tier<'a> {
    /// The pool the Service names (errors name it).
    Named(usize),
    /// Pools for automatic assignment, in the order they are tried.
    Auto(&'a [usize]),
}

impl Tier<'_> {
    fn pools(&self) -> &[usize] {
        match self {
            Tier::Named(n) => std::slice::from_ref(n),
            Tier::Auto(list) => list,
        }
    }
}

impl Allocator {
    /// Chooses IPs for a Service that holds nothing.
    pub(super) fn choose(&self, request: &Request) -> Result<(usize, Vec<IpAddr>), AllocError> {
        let named = match &request.pool {
            Some(name) => Some(
                self.pools
                    .index_of(name)
                    .ok_or_else(|| AllocError::UnknownPool { pool: name.clone() })?,
            ),
            None => None,
        };
        if let Some(&first) = request.requested_ips.first() {
            let pool = self.pool_of_ips(&request.requested_ips, request.pool.as_deref())?;
            self.admits(pool, request)
                .map_err(|reason| AllocError::RequestedIpNotForService {
                    ip: first,
                    pool: self.pools.pools[pool].name.clone(),
                    reason,
                })?;
            for ip in &request.requested_ips {
                self.check_ip(ip, request, None)?;
            }
            let ips = primary_first(request.requested_ips.clone(), request.family.primary());
            return Ok((pool, ips));
        }
        if let Some(pool) = named {
            self.admits(pool, request)
                .map_err(|reason| AllocError::PoolNotForService {
                    pool: self.pools.pools[pool].name.clone(),
                    reason,
                })?;
            return self.pick(Tier::Named(pool), request);
        }
        let selecting: Vec<usize> = self
            .pools
            .scoped
            .iter()
            .copied()
            .filter(|&p| self.admits(p, request).is_ok())
            .collect();
        let first_tier = if selecting.is_empty() {
            None
        } else {
            match self.pick(Tier::Auto(&selecting), request) {
                Ok(found) => return Ok(found),
                Err(e) => Some(e),
            }
        };
        match self.pick(Tier::Auto(&self.pools.general), request) {
            Ok(found) => Ok(found),
            // "No pool has the family" from one tier is less useful than "full" from the other.
            Err(e) => Err(match first_tier {
                Some(first) if is_config_gap(&e) && !is_config_gap(&first) => first,
                _ => e,
            }),
        }
    }

    /// The family policy applied to one tier of pools.
    fn pick(&self, tier: Tier<'_>, request: &Request) -> Result<(usize, Vec<IpAddr>), AllocError> {
        match request.family {
            FamilyPolicy::SingleStack(f) => self.pick_single(tier, f, request),
            FamilyPolicy::RequireDualStack(primary) => self.pick_dual(tier, primary, request),
            FamilyPolicy::PreferDualStack(primary) => {
                if let Ok(found) = self.pick_dual(tier, primary, request) {
                    return Ok(found);
                }
                let first = match self.pick_single(tier, primary, request) {
                    Ok(found) => return Ok(found),
                    Err(e) => e,
                };
                match self.pick_single(tier, primary.other(), request) {
                    Ok(found) => Ok(found),
                    Err(second) if is_family_missing(&first) && !is_family_missing(&second) => {
                        Err(second)
                    }
                    Err(_) => Err(first),
                }
            }
        }
    }

    fn exhausted(&self, tier: Tier<'_>) -> AllocError {
        match tier {
            Tier::Named(n) => AllocError::PoolExhausted {
                pool: self.pools.pools[n].name.clone(),
            },
            Tier::Auto(_) => AllocError::NoAvailableIps,
        }
    }

    fn pick_single(
        &self,
        tier: Tier<'_>,
        family: Family,
        request: &Request,
    ) -> Result<(usize, Vec<IpAddr>), AllocError> {
        let mut any = false;
        for &pool in tier.pools() {
            if !self.pools.pools[pool].has_family(family) {
                continue;
            }
            any = true;
            if let Some(ip) = self.pick_in_pool(pool, family, request, None) {
                return Ok((pool, vec![ip]));
            }
        }
        if any {
            return Err(self.exhausted(tier));
        }
        Err(match tier {
            Tier::Named(n) => AllocError::FamilyNotInPool {
                pool: self.pools.pools[n].name.clone(),
                family,
            },
            Tier::Auto(_) => AllocError::FamilyNotAvailable { family },
        })
    }

    fn pick_dual(
        &self,
        tier: Tier<'_>,
        primary: Family,
        request: &Request,
    ) -> Result<(usize, Vec<IpAddr>), AllocError> {
        let secondary = primary.other();
        let mut any = false;
        for &pool in tier.pools() {
            let p = &self.pools.pools[pool];
            if !(p.has_family(primary) && p.has_family(secondary)) {
                continue;
            }
            any = true;
            if let (Some(a), Some(b)) = (
                self.pick_in_pool(pool, primary, request, None),
                self.pick_in_pool(pool, secondary, request, None),
            ) {
                return Ok((pool, vec![a, b]));
            }
        }
        if any {
            return Err(self.exhausted(tier));
        }
        Err(match tier {
            Tier::Named(n) => {
                let p = &self.pools.pools[n];
                let family = if p.has_family(primary) {
                    secondary
                } else {
                    primary
                };
                AllocError::FamilyNotInPool {
                    pool: p.name.clone(),
                    family,
                }
            }
            Tier::Auto(_) => AllocError::NoDualStackPool,
        })
    }

    /// One IP of `family` from `pool` for `request`: first the lowest IP already held under
    /// the request's sharing key that it may join, else the lowest free address.
    pub(super) fn pick_in_pool(
        &self,
        pool: usize,
        family: Family,
        request: &Request,
        me: Option<Slot>,
    ) -> Option<IpAddr> {
        if let Some(set) = request.sharing().and_then(|k| self.shared.get(k)) {
            let joinable = set.range(family_bounds(family)).find(|ip| {
                self.ips.get(ip).is_some_and(|u| {
                    u.pool == pool && !u.holders.as_slice().iter().any(|&s| Some(s) == me)
                }) && self.check_ip(ip, request, me).is_ok()
            });
            if let Some(ip) = joinable {
                return Some(*ip);
            }
        }
        let p = &self.pools.pools[pool];
        let numbering = p.numbering(family);
        let used = self.usage.get(pool)?.used_ref(family);
        p.index_ranges(family).iter().find_map(|&(lo, hi)| {
            used.first_absent_from(lo)
                .filter(|&i| i <= hi)
                .map(|i| value_addr(family, numbering.value(i)))
        })
    }
}

/// The whole address range of `family` as `IpAddr` bounds (`IpAddr` orders V4 before V6).
fn family_bounds(family: Family) -> std::ops::RangeInclusive<IpAddr> {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED)..=IpAddr::V4(Ipv4Addr::BROADCAST),
        Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED)..=IpAddr::V6(Ipv6Addr::from(u128::MAX)),
    }
}

fn is_family_missing(e: &AllocError) -> bool {
    matches!(
        e,
        AllocError::FamilyNotAvailable { .. } | AllocError::FamilyNotInPool { .. }
    )
}

/// The tier has no pool of the wanted families at all (as opposed to: they are full).
fn is_config_gap(e: &AllocError) -> bool {
    is_family_missing(e) || matches!(e, AllocError::NoDualStackPool)
}
