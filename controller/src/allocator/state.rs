//! The allocator's state and operations.
//!
//! Bookkeeping, all proportional to what is allocated (never to pool sizes):
//! - `slots` (+ `index` from key to slot): each Service's last request, pool and IPs;
//! - `ips`: for each held IP its pool and holders (several only when shared);
//! - per pool and family, the held addresses as coalesced runs in the pool's index space
//!   ([`IntervalSet`]), which answers "lowest free address" in O(log runs);
//! - `shared`: for each sharing key the IPs held under it, so a Service with that key finds an
//!   IP it may join without scanning the pool.

use std::collections::btree_map::Entry as BEntry;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};

use tracing::{debug, info};

use super::error::AllocError;
use super::hash::FastState;
use super::intervals::IntervalSet;
use super::pool::{PoolSet, addr_value};
use super::types::{Assignment, Family, FamilyPolicy, PoolStats, Request};
use checks::{check_families, validate_request};

mod checks;
mod pick;

/// Index of a Service in the slot table (holders refer to Services by slot, not by key, so
/// an IP costs no string copies).
type Slot = u32;

/// What one Service holds.
#[derive(Debug, Clone)]
struct Held {
    request: Request,
    pool: usize,
    /// Primary family first.
    ips: IpPair,
}

/// One or two IPs stored inline (a Service holds at most one per family), saving a heap
/// allocation per Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpPair {
    ips: [IpAddr; 2],
    len: u8,
}

impl IpPair {
    /// The first two of `ips` (callers pass one or two).
    fn new(ips: &[IpAddr]) -> IpPair {
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let first = ips.first().copied().unwrap_or(unspecified);
        let second = ips.get(1).copied().unwrap_or(unspecified);
        IpPair {
            ips: [first, second],
            len: ips.len().min(2) as u8,
        }
    }

    fn as_slice(&self) -> &[IpAddr] {
        &self.ips[..usize::from(self.len)]
    }
}

/// The Services holding one IP (in the order they joined), or sharing one key hash; almost
/// always exactly one.
#[derive(Debug, Clone)]
enum Holders {
    One(Slot),
    Many(Vec<Slot>),
}

impl Holders {
    fn as_slice(&self) -> &[Slot] {
        match self {
            Holders::One(s) => std::slice::from_ref(s),
            Holders::Many(v) => v,
        }
    }

    fn push(&mut self, slot: Slot) {
        match self {
            Holders::One(s) => *self = Holders::Many(vec![*s, slot]),
            Holders::Many(v) => v.push(slot),
        }
    }

    /// Removes `slot`; returns true if no holder is left.
    fn remove(&mut self, slot: Slot) -> bool {
        match self {
            Holders::One(s) => *s == slot,
            Holders::Many(v) => {
                v.retain(|s| *s != slot);
                v.is_empty()
            }
        }
    }
}

/// Who holds one IP.
#[derive(Debug, Clone)]
struct IpUse {
    pool: usize,
    holders: Holders,
}

/// Held addresses of one pool, per family, in the pool's index space.
#[derive(Debug, Clone, Default)]
struct PoolUse {
    used: [IntervalSet; 2],
    services: usize,
}

impl PoolUse {
    fn used(&mut self, f: Family) -> &mut IntervalSet {
        match f {
            Family::V4 => &mut self.used[0],
            Family::V6 => &mut self.used[1],
        }
    }

    fn used_ref(&self, f: Family) -> &IntervalSet {
        match f {
            Family::V4 => &self.used[0],
            Family::V6 => &self.used[1],
        }
    }
}

/// The pure IP allocator. See the [module docs](super) for the rules and policies.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pools: PoolSet,
    usage: Vec<PoolUse>,
    /// Hash of the Service key -> slot(s). Keyed by hash, not by a copy of the key, to save a
    /// string per Service; collisions are resolved by comparing the slot's own key.
    index: HashMap<u64, Holders, FastState>,
    key_hasher: FastState,
    slots: Vec<Option<Held>>,
    free_slots: Vec<Slot>,
    /// Ordered: allocations are mostly ascending, so the touched nodes stay in cache.
    ips: BTreeMap<IpAddr, IpUse>,
    /// Sharing key -> IPs held under it.
    shared: HashMap<String, BTreeSet<IpAddr>, FastState>,
}

impl Allocator {
    /// An allocator over `pools` with nothing allocated.
    pub fn new(pools: PoolSet) -> Allocator {
        let usage = vec![PoolUse::default(); pools.pools.len()];
        Allocator {
            pools,
            usage,
            ..Allocator::default()
        }
    }

    /// The current pools.
    pub fn pools(&self) -> &PoolSet {
        &self.pools
    }

    /// Gives `request.key` IPs satisfying `request`.
    ///
    /// Idempotent and sticky: if the Service already holds IPs that still satisfy the request
    /// (same requested IPs/pool, families fit, sharing still allowed) they are returned
    /// unchanged; an IP never moves for any other reason. The one addition: a PreferDualStack
    /// Service holding one family gets the other family from the same pool once one is free.
    /// If the held IPs no longer satisfy the request they are released first, even when no
    /// replacement can be found (the error then says why). A malformed request
    /// ([`ErrorKind::InvalidRequest`](super::ErrorKind::InvalidRequest)) is refused before
    /// anything changes.
    pub fn assign(&mut self, request: Request) -> Result<Assignment, AllocError> {
        validate_request(&request)?;
        if let Some(slot) = self.slot_of(&request.key)
            && let Some(held) = self.held(slot)
        {
            if self.satisfies(&request, held.pool, held.ips.as_slice(), Some(slot)) {
                let pool = held.pool;
                let ips = primary_first(
                    self.complete_dual_stack(&request, pool, held.ips.as_slice(), slot),
                    request.family.primary(),
                );
                if self
                    .held(slot)
                    .is_some_and(|h| h.request == request && h.ips.as_slice() == ips)
                {
                    return Ok(self.assignment_of(pool, ips));
                }
                self.unhold(&request.key);
                self.hold(request, pool, &ips);
                return Ok(self.assignment_of(pool, ips));
            }
            info!(service = %request.key, ips = ?held.ips.as_slice(), "held IPs no longer satisfy the request, re-allocating");
            self.unhold(&request.key);
        }
        let (pool, ips) = self.choose(&request)?;
        debug!(service = %request.key, pool = %self.pools.pools[pool].name, ips = ?ips, "assigned");
        self.hold(request, pool, &ips);
        Ok(self.assignment_of(pool, ips))
    }

    /// Records that `request.key` holds `existing_ips` (from its Service status) without
    /// choosing anything. Used at controller start, before any `assign`, so a pending Service
    /// can never be handed an IP another Service already has.
    ///
    /// Checks only what could cause double use: each IP lies in a pool (and is not a skipped
    /// .0/.255), all in one pool, and sharing with current holders is allowed. Whether the IPs
    /// still fit the Service's request is left to the `assign` that follows, which moves them
    /// only if they do not. On error nothing is recorded (a previous holding of the same
    /// Service is kept).
    pub fn restore(
        &mut self,
        request: Request,
        existing_ips: &[IpAddr],
    ) -> Result<Assignment, AllocError> {
        if existing_ips.is_empty() {
            return Err(AllocError::NothingToRestore);
        }
        check_families(existing_ips)?;
        let me = self.slot_of(&request.key);
        let pool = self.pool_of_ips(existing_ips, None)?;
        for ip in existing_ips {
            self.check_ip(ip, &request, me)?;
        }
        self.unhold(&request.key);
        let ips = primary_first(existing_ips.to_vec(), request.family.primary());
        debug!(service = %request.key, pool = %self.pools.pools[pool].name, ips = ?ips, "restored");
        self.hold(request, pool, &ips);
        Ok(self.assignment_of(pool, ips))
    }

    /// Frees what `key` holds; an IP returns to its pool when its last holder leaves.
    /// Returns what was held.
    pub fn release(&mut self, key: &str) -> Option<Assignment> {
        let held = self.unhold(key)?;
        debug!(service = %key, ips = ?held.ips.as_slice(), "released");
        Some(self.assignment_of(held.pool, held.ips.as_slice().to_vec()))
    }

    /// What `key` holds now.
    pub fn assignment(&self, key: &str) -> Option<Assignment> {
        let held = self.held(self.slot_of(key)?)?;
        Some(self.assignment_of(held.pool, held.ips.as_slice().to_vec()))
    }

    /// Keys of every Service holding `ip` (several when shared), in the order they joined.
    pub fn holders(&self, ip: &IpAddr) -> Vec<&str> {
        self.ips
            .get(ip)
            .map(|u| {
                u.holders
                    .as_slice()
                    .iter()
                    .filter_map(|&s| self.held(s).map(|h| h.request.key.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of Services holding IPs.
    pub fn services_len(&self) -> usize {
        self.slots.len() - self.free_slots.len()
    }

    /// Replaces the pools (a config change). Every Service whose IPs are still valid under
    /// the new pools keeps them (its pool name follows the config); the others are released
    /// and their keys returned, sorted, for the controller to re-allocate (MetalLB >= 0.14.2
    /// behaviour). Invalid means: an IP outside every pool or now skipped as .0/.255, IPs split
    /// across pools, or the holding no longer fits the Service's request (e.g. its named pool
    /// was renamed; a restored holding that never fitted counts too).
    pub fn set_pools(&mut self, pools: PoolSet) -> Vec<String> {
        let mut held: Vec<Held> = self.slots.drain(..).flatten().collect();
        held.sort_unstable_by(|a, b| a.request.key.cmp(&b.request.key));
        self.index.clear();
        self.free_slots.clear();
        self.ips.clear();
        self.shared.clear();
        self.usage = vec![PoolUse::default(); pools.pools.len()];
        self.pools = pools;
        let mut invalidated = Vec::new();
        for h in held {
            let ips = h.ips.as_slice();
            match self.pool_of_ips(ips, None) {
                Ok(pool) if self.satisfies(&h.request, pool, ips, None) => {
                    self.hold(h.request, pool, ips);
                }
                _ => {
                    info!(service = %h.request.key, ips = ?ips, "IPs no longer valid after pool change");
                    invalidated.push(h.request.key);
                }
            }
        }
        invalidated
    }

    /// Why `request` may not hold `ips` under the current pools, ignoring other Services:
    /// the IPs are outside the pools or split across them, outside the named pool, or in a pool
    /// whose `serviceAllocation` does not select the Service. For the event that tells why a
    /// Service's IPs were taken away.
    pub fn check_allowed(&self, request: &Request, ips: &[IpAddr]) -> Result<(), AllocError> {
        check_families(ips)?;
        let pool = self.pool_of_ips(ips, request.pool.as_deref())?;
        self.admits(pool, request)
            .map_err(|reason| AllocError::PoolNotForService {
                pool: self.pools.pools[pool].name.clone(),
                reason,
            })
    }

    /// Numbers for the per-pool metrics, in config order.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.pools
            .pools
            .iter()
            .zip(&self.usage)
            .map(|(p, u)| PoolStats {
                pool: p.name.clone(),
                addresses_total: p.addresses_total,
                in_use: u.used[0].len().saturating_add(u.used[1].len()),
                in_use_ipv4: u.used[0].len(),
                in_use_ipv6: u.used[1].len(),
                services_allocated: u.services,
            })
            .collect()
    }

    // ---- internals ----

    fn slot_of(&self, key: &str) -> Option<Slot> {
        let bucket = self.index.get(&self.key_hasher.hash_one(key))?;
        bucket
            .as_slice()
            .iter()
            .copied()
            .find(|&s| self.held(s).is_some_and(|h| h.request.key == key))
    }

    /// The holding in `slot` (slots named by `index` and `ips` are always live).
    fn held(&self, slot: Slot) -> Option<&Held> {
        self.slots.get(slot as usize)?.as_ref()
    }

    fn assignment_of(&self, pool: usize, ips: Vec<IpAddr>) -> Assignment {
        Assignment {
            pool: self.pools.pools[pool].name.clone(),
            ips,
        }
    }

    /// Records a holding whose validity the caller has established.
    fn hold(&mut self, request: Request, pool: usize, ips: &[IpAddr]) {
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                Slot::try_from(self.slots.len() - 1).unwrap_or(Slot::MAX)
            }
        };
        for ip in ips {
            match self.ips.entry(*ip) {
                BEntry::Occupied(mut e) => e.get_mut().holders.push(slot),
                BEntry::Vacant(e) => {
                    e.insert(IpUse {
                        pool,
                        holders: Holders::One(slot),
                    });
                    let (family, v) = addr_value(ip);
                    if let (Some(i), Some(u)) = (
                        self.pools.pools[pool].numbering(family).index(v),
                        self.usage.get_mut(pool),
                    ) {
                        u.used(family).insert(i);
                    }
                }
            }
            if let Some(k) = request.sharing() {
                match self.shared.get_mut(k) {
                    Some(set) => {
                        set.insert(*ip);
                    }
                    None => {
                        self.shared.insert(k.to_string(), BTreeSet::from([*ip]));
                    }
                }
            }
        }
        if let Some(u) = self.usage.get_mut(pool) {
            u.services += 1;
        }
        match self
            .index
            .entry(self.key_hasher.hash_one(request.key.as_str()))
        {
            Entry::Occupied(mut e) => e.get_mut().push(slot),
            Entry::Vacant(e) => {
                e.insert(Holders::One(slot));
            }
        }
        self.slots[slot as usize] = Some(Held {
            request,
            pool,
            ips: IpPair::new(ips),
        });
    }

    /// Removes `key`'s holding, freeing IPs it held alone.
    fn unhold(&mut self, key: &str) -> Option<Held> {
        let slot = self.slot_of(key)?;
        if let Entry::Occupied(mut e) = self.index.entry(self.key_hasher.hash_one(key))
            && e.get_mut().remove(slot)
        {
            e.remove();
        }
        let held = self.slots.get_mut(slot as usize)?.take()?;
        self.free_slots.push(slot);
        for ip in held.ips.as_slice() {
            let BEntry::Occupied(mut entry) = self.ips.entry(*ip) else {
                continue;
            };
            if !entry.get_mut().holders.remove(slot) {
                continue;
            }
            let pool = entry.remove().pool;
            let (family, v) = addr_value(ip);
            if let (Some(i), Some(u)) = (
                self.pools.pools[pool].numbering(family).index(v),
                self.usage.get_mut(pool),
            ) {
                u.used(family).remove(i);
            }
            if let Some(k) = held.request.sharing()
                && let Some(set) = self.shared.get_mut(k)
            {
                set.remove(ip);
                if set.is_empty() {
                    self.shared.remove(k);
                }
            }
        }
        if let Some(u) = self.usage.get_mut(held.pool) {
            u.services = u.services.saturating_sub(1);
        }
        Some(held)
    }

    /// For a PreferDualStack Service without requested IPs holding one family: the held IP
    /// plus the other family from the same pool, if one is free. Never drops or changes the
    /// IP already held.
    fn complete_dual_stack(
        &self,
        request: &Request,
        pool: usize,
        held: &[IpAddr],
        me: Slot,
    ) -> Vec<IpAddr> {
        let mut ips = held.to_vec();
        let FamilyPolicy::PreferDualStack(primary) = request.family else {
            return ips;
        };
        if !request.requested_ips.is_empty() || ips.len() != 1 {
            return ips;
        }
        let missing = Family::of(&ips[0]).other();
        if let Some(ip) = self.pick_in_pool(pool, missing, request, Some(me)) {
            ips.push(ip);
        }
        primary_first(ips, primary)
    }
}

/// Orders IPs so the primary family comes first (stable otherwise).
fn primary_first(mut ips: Vec<IpAddr>, primary: Family) -> Vec<IpAddr> {
    ips.sort_by_key(|ip| Family::of(ip) != primary);
    ips
}

#[cfg(test)]
impl Allocator {
    /// Per pool: number of stored runs for (IPv4, IPv6), to check memory stays proportional
    /// to fragmentation rather than to pool size.
    pub(crate) fn usage_runs(&self) -> Vec<(usize, usize)> {
        self.usage
            .iter()
            .map(|u| (u.used[0].runs(), u.used[1].runs()))
            .collect()
    }
}
