//! Which holdings are allowed: the checks of a request on its own, of an IP against its pool
//! and the Services already holding it, and whether a holding still satisfies its request.

use std::net::IpAddr;

use super::super::error::AllocError;
use super::super::pool::{addr_value, is_buggy};
use super::super::scope::ScopeReason;
use super::super::sharing;
use super::super::types::{Family, FamilyPolicy, Request};
use super::{Allocator, Slot};

impl Allocator {
    /// Whether `request` may join the current holders of `ip` (`me`, its own slot, excluded).
    pub(super) fn check_ip(
        &self,
        ip: &IpAddr,
        request: &Request,
        me: Option<Slot>,
    ) -> Result<(), AllocError> {
        let Some(entry) = self.ips.get(ip) else {
            return Ok(());
        };
        for &slot in entry.holders.as_slice().iter().filter(|&&s| Some(s) != me) {
            let Some(other) = self.held(slot).map(|h| &h.request) else {
                continue;
            };
            sharing::check(request, other).map_err(|reason| AllocError::InUse {
                ip: *ip,
                holder: other.key.clone(),
                reason,
            })?;
        }
        Ok(())
    }

    /// The pool of `ip`, as the allocator sees it.
    fn pool_of_ip(&self, ip: &IpAddr) -> Result<usize, AllocError> {
        let pool = self
            .pools
            .containing(ip)
            .ok_or(AllocError::NotInAnyPool { ip: *ip })?;
        let p = &self.pools.pools[pool];
        let (family, v) = addr_value(ip);
        if p.avoid_buggy_ips && is_buggy(family, v) {
            return Err(AllocError::AvoidedBuggyIp {
                ip: *ip,
                pool: p.name.clone(),
            });
        }
        Ok(pool)
    }

    /// Whether `pool`'s `serviceAllocation` (if any) selects `request`'s Service.
    pub(super) fn admits(&self, pool: usize, request: &Request) -> Result<(), ScopeReason> {
        match &self.pools.pools[pool].service_allocation {
            Some(a) => a.admits(request),
            None => Ok(()),
        }
    }

    /// The single pool holding all of `ips` (non-empty); with `named`, it must be that pool.
    pub(super) fn pool_of_ips(
        &self,
        ips: &[IpAddr],
        named: Option<&str>,
    ) -> Result<usize, AllocError> {
        let mut found: Option<(usize, IpAddr)> = None;
        for ip in ips {
            let pool = self.pool_of_ip(ip)?;
            let name = &self.pools.pools[pool].name;
            if let Some(want) = named
                && name != want
            {
                return Err(AllocError::NotInRequestedPool {
                    ip: *ip,
                    pool: want.to_string(),
                });
            }
            match found {
                Some((p, first)) if p != pool => {
                    return Err(AllocError::DifferentPools {
                        first,
                        second: *ip,
                        first_pool: self.pools.pools[p].name.clone(),
                        second_pool: name.clone(),
                    });
                }
                Some(_) => {}
                None => found = Some((pool, *ip)),
            }
        }
        found.map(|(p, _)| p).ok_or(AllocError::NothingToRestore)
    }

    /// Whether holding `ips` from `pool` satisfies `request` now.
    pub(super) fn satisfies(
        &self,
        request: &Request,
        pool: usize,
        ips: &[IpAddr],
        me: Option<Slot>,
    ) -> bool {
        let Some(p) = self.pools.pools.get(pool) else {
            return false;
        };
        if request.pool.as_ref().is_some_and(|want| *want != p.name) {
            return false;
        }
        if self.admits(pool, request).is_err() {
            return false;
        }
        // At most one IP per family, as the policy wants.
        let distinct = match ips {
            [a] => Some(Family::of(a)),
            [a, b] if Family::of(a) != Family::of(b) => None,
            _ => return false,
        };
        let family_ok = match (request.family, distinct) {
            (FamilyPolicy::SingleStack(f), Some(have)) => f == have,
            (FamilyPolicy::SingleStack(_), None) => false,
            (FamilyPolicy::PreferDualStack(_), _) => true,
            (FamilyPolicy::RequireDualStack(_), d) => d.is_none(),
        };
        if !family_ok {
            return false;
        }
        // The same addresses as requested, as sets: `10.0.0.1,10.0.0.1` asks for one address.
        if !request.requested_ips.is_empty()
            && (!request.requested_ips.iter().all(|r| ips.contains(r))
                || !ips.iter().all(|ip| request.requested_ips.contains(ip)))
        {
            return false;
        }
        ips.iter().all(|ip| {
            self.pool_of_ip(ip).ok() == Some(pool) && self.check_ip(ip, request, me).is_ok()
        })
    }
}

/// At most two IPs, of different families.
pub(super) fn check_families(ips: &[IpAddr]) -> Result<(), AllocError> {
    if ips.len() > 2 {
        return Err(AllocError::TooManyIps { count: ips.len() });
    }
    if let [a, b] = ips
        && Family::of(a) == Family::of(b)
    {
        return Err(AllocError::SameFamilyTwice {
            first: *a,
            second: *b,
            family: Family::of(a),
        });
    }
    Ok(())
}

/// Errors in the request itself, independent of pools and other Services.
pub(super) fn validate_request(request: &Request) -> Result<(), AllocError> {
    let ips = &request.requested_ips;
    check_families(ips)?;
    match request.family {
        FamilyPolicy::SingleStack(f) => {
            if let Some(ip) = ips.iter().find(|ip| Family::of(ip) != f) {
                return Err(AllocError::FamilyMismatch {
                    ip: *ip,
                    family: Family::of(ip),
                    policy: request.family.describe(),
                });
            }
        }
        FamilyPolicy::RequireDualStack(_) => {
            if let [ip] = ips.as_slice() {
                return Err(AllocError::DualStackNeedsBoth { ip: *ip });
            }
        }
        FamilyPolicy::PreferDualStack(_) => {}
    }
    Ok(())
}
