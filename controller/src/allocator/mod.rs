//! The pure IP allocator: which external IPs each LoadBalancer Service gets.
//!
//! No Kubernetes, no async, no config crate: the controller converts config pools into
//! [`Pool`]s (validated into a [`PoolSet`]) and each Service into a [`Request`], then calls
//! [`Allocator`]. Errors ([`AllocError`]) are worded to go straight into Kubernetes Events;
//! [`AllocError::kind`] tells which Event and when to retry.
//!
//! # Rules (MetalLB-compatible unless noted)
//!
//! - **Pools** are CIDRs and inclusive ranges, IPv4 and IPv6; no address may be in two pools.
//!   Pools are tried **in config order** (MetalLB 0.12 walks them in random order). Only
//!   `auto_assign` pools are used unless the Service names a pool (the `address-pool`
//!   annotation) or requests an IP; both may point into an auto-assign=false pool.
//! - **serviceAllocation** (MetalLB 0.13+, [`ServiceAllocation`]): a pool with one serves only
//!   the Services it selects (namespaces by name or label, Services by label) and is tried
//!   first, by priority; the pools without one are the fallback. A named pool or a requested
//!   IP must select the Service too; a held IP moves once its pool stops selecting it. Details
//!   in the `scope` module.
//! - **avoid_buggy_ips** skips IPv4 addresses ending in `.0` or `.255` (MetalLB's
//!   `ipConfusesBuggyFirmwares` applies to IPv4 only; IPv6 is unaffected). A requested or
//!   restored `.0`/`.255` address in such a pool is refused with its own error.
//! - **Requested IPs** (`spec.loadBalancerIP` / `loadBalancerIPs`): at most one per family, all
//!   in one pool (and in the named pool, if any), and of the family policy's families.
//! - **Family policy**: SingleStack gets one IP of its family; RequireDualStack one per family
//!   from the *same* pool; PreferDualStack both from one pool if any candidate pool can, else
//!   one (primary family first). Returned IPs are ordered primary family first.
//! - **Sharing** (`allow-shared-ip`): same key, no common (protocol, port), and both Cluster
//!   or both Local with identical selectors (unlike MetalLB, a Local Service with an empty
//!   selector does not match Cluster ones). An IP is freed when its last holder is released.
//!
//! # Policies
//!
//! - **Lowest free first.** Within a pool, ranges are tried in address order and the lowest
//!   free address is taken, so an address freed in the middle is the next one reused. A
//!   Service with a sharing key first joins the lowest IP in the pool already held under that
//!   key that it may share, and only otherwise takes a free one (MetalLB takes whichever of the
//!   two comes first in address order). That search walks the IPs held under the key, so it
//!   costs O(k) for k such IPs, independent of pool size.
//! - **Sticky.** [`Allocator::assign`] returns a Service's current IPs unchanged while they
//!   still satisfy its request; unrelated Services coming and going never move them (MetalLB
//!   issue 2723). Turning a pool's auto-assign off does not invalidate IPs already taken from
//!   it. A malformed request ([`ErrorKind::InvalidRequest`]) changes nothing; a well-formed
//!   request the held IPs no longer fit releases them, even if nothing new can be found.
//! - **Restore before assign.** At start the controller calls [`Allocator::restore`] for every
//!   Service with IPs in its status before any `assign`, so a pending Service cannot be handed
//!   an IP already in use (MetalLB issues 1774, 1984, 2443, 2479).
//! - **Config changes** ([`Allocator::set_pools`]) keep every still-valid holding (its pool
//!   name follows the new config) and release and report the rest (MetalLB >= 0.14.2).
//!
//! # Cost
//!
//! Nothing depends on pool size: a /8 or an IPv6 /64 costs what a /28 costs. Addresses are
//! numbered as `u128` in a per-pool, per-family index space (IPv4 `.0`/`.255` simply left out
//! of the numbering when avoided), held addresses are kept as coalesced runs in a `BTreeMap`,
//! and the lowest free address is one lookup: O(log r) for r runs, plus the (config-sized)
//! number of ranges in the pool. Memory is proportional to the number of Services and held
//! IPs. `serviceAllocation` adds, per automatic assignment, one check of each reserved pool's
//! selectors (a config-sized number). Measured with
//! `cargo run --release -p ferrolb-controller --example allocator_bench`.

mod error;
mod hash;
mod intervals;
mod pool;
mod scope;
mod sharing;
mod state;
mod types;

pub use error::{AllocError, ConflictReason, ErrorKind};
pub use pool::{Pool, PoolError, PoolRange, PoolSet};
pub use scope::{LabelMatcher, Labels, ScopeReason, ServiceAllocation};
pub use state::Allocator;
pub use types::{
    Assignment, Family, FamilyPolicy, PoolStats, Port, Protocol, Request, TrafficPolicy,
};

#[cfg(test)]
mod scope_tests;
#[cfg(test)]
mod tests;
