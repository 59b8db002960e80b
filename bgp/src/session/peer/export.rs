//! What we send a peer: the desired routes resolved against the live session.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use tracing::{debug, warn};

use super::super::config::{NextHopSpec, PeerConfig, RouteSpec};
use super::{Desired, Session};
use crate::rib::{RibDiff, Route};
use crate::wire::{AddressFamily, NextHop, PathAttributes};

/// What a desired route's wire form depends on besides the session: its shared attribute
/// set (by identity: the speaker interns them), how its next hop is chosen, and its
/// family. Prefixes with equal keys get one route.
#[derive(Clone, Copy)]
struct RouteKey<'a> {
    attributes: &'a Arc<PathAttributes>,
    next_hop: NextHopSpec,
    family: AddressFamily,
}

impl PartialEq for RouteKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(self.attributes, other.attributes)
            && self.next_hop == other.next_hop
            && self.family == other.family
    }
}

impl Eq for RouteKey<'_> {}

impl Hash for RouteKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(self.attributes).hash(state);
        self.next_hop.hash(state);
        self.family.hash(state);
    }
}

/// Replaces what `s` announces with the desired set resolved against it, and returns the
/// difference to send. The Adj-RIB-Out is the only place the routes are interned: each
/// distinct [`RouteKey`] is resolved once, so 100k prefixes with one attribute set cost
/// one resolution and a pointer each.
pub(super) fn sync(
    config: &PeerConfig,
    desired: &Desired,
    s: &mut Session,
    peer: IpAddr,
) -> RibDiff {
    let mut not_negotiated = 0usize;
    let mut negotiated = 0usize;
    let families = &s.ctx.families;
    let local = s.local.ip();
    let keyed = desired.iter().filter_map(|(prefix, spec)| {
        let family = AddressFamily::of(prefix);
        if !families.contains(&family) {
            // Expected: e.g. a dual-stack Service's IPv6 address on a session that
            // carries IPv4 only.
            not_negotiated += 1;
            return None;
        }
        negotiated += 1;
        let key = RouteKey {
            attributes: &spec.attributes,
            next_hop: spec.next_hop,
            family,
        };
        Some((*prefix, key))
    });
    let diff = s.rib_out.set_desired_keyed(keyed, |key| {
        resolve_key(config, local, key.family, key.next_hop, key.attributes)
    });
    if not_negotiated > 0 {
        debug!(%peer, skipped = not_negotiated, "routes not announced: family not negotiated");
    }
    let no_next_hop = negotiated.saturating_sub(s.rib_out.len());
    let last_warned = s.warned_no_next_hop.replace(no_next_hop);
    if no_next_hop > 0 && last_warned != no_next_hop {
        warn!(%peer, skipped = no_next_hop, "routes not announced: no next hop of their family (set ipv4_next_hop/ipv6_next_hop)");
    }
    diff
}

/// The route a spec stands for on this session, or `None` when the family was not
/// negotiated or no next hop of the prefix's family is known.
pub(super) fn resolve(
    config: &PeerConfig,
    s: &Session,
    prefix: &IpNet,
    spec: &RouteSpec,
) -> Option<Route> {
    let family = AddressFamily::of(prefix);
    if !s.ctx.families.contains(&family) {
        return None;
    }
    resolve_key(
        config,
        s.local.ip(),
        family,
        spec.next_hop,
        &spec.attributes,
    )
}

/// The route for a family, next-hop rule and attribute set on a session whose local
/// address is `local`; `None` when no next hop of the family is known.
fn resolve_key(
    config: &PeerConfig,
    local: IpAddr,
    family: AddressFamily,
    next_hop: NextHopSpec,
    attributes: &PathAttributes,
) -> Option<Route> {
    let v4 = family == AddressFamily::Ipv4Unicast;
    let next_hop = match next_hop {
        NextHopSpec::Fixed(nh) => match (v4, nh) {
            (true, NextHop::V4(_)) | (false, NextHop::V6 { .. }) => nh,
            _ => return None,
        },
        NextHopSpec::SelfAddress => match (v4, local) {
            (true, IpAddr::V4(a)) => NextHop::V4(a),
            (true, IpAddr::V6(_)) => NextHop::V4(config.ipv4_next_hop?),
            (false, IpAddr::V6(a)) => NextHop::V6 {
                global: a,
                link_local: None,
            },
            (false, IpAddr::V4(_)) => NextHop::V6 {
                global: config.ipv6_next_hop?,
                link_local: None,
            },
        },
    };
    Some(Route {
        attributes: attributes.clone(),
        next_hop,
    })
}
