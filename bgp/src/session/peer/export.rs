//! What we send a peer: the desired routes resolved against the live session.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use tracing::{debug, warn};

use super::super::config::{NextHopSpec, PeerConfig, RouteSpec};
use super::{PeerTask, Session};
use crate::rib::Route;
use crate::wire::{AddressFamily, NextHop, PathAttributes};

impl PeerTask {
    /// The desired set as routes of this session. Routes with the same attributes and
    /// next hop share one `Arc<Route>`, so 100k prefixes cost a pointer each here.
    pub(super) fn resolve_desired(&self, s: &Session) -> BTreeMap<IpNet, Arc<Route>> {
        let mut shared: HashMap<(*const PathAttributes, NextHop), Arc<Route>> = HashMap::new();
        let (mut not_negotiated, mut no_next_hop) = (0usize, 0usize);
        let mut out = BTreeMap::new();
        for (prefix, spec) in self.desired.iter() {
            if !s.ctx.families.contains(&AddressFamily::of(prefix)) {
                // Expected: e.g. a dual-stack Service's IPv6 address on a session that
                // carries IPv4 only.
                not_negotiated += 1;
                continue;
            }
            let Some(route) = resolve(&self.config, s, prefix, spec) else {
                no_next_hop += 1;
                continue;
            };
            let key = (Arc::as_ptr(&spec.attributes), route.next_hop);
            let route = shared.entry(key).or_insert_with(|| Arc::new(route)).clone();
            out.insert(*prefix, route);
        }
        if not_negotiated > 0 {
            debug!(peer = %self.peer(), skipped = not_negotiated, "routes not announced: family not negotiated");
        }
        let last_warned = s.warned_no_next_hop.replace(no_next_hop);
        if no_next_hop > 0 && last_warned != no_next_hop {
            warn!(peer = %self.peer(), skipped = no_next_hop, "routes not announced: no next hop of their family (set ipv4_next_hop/ipv6_next_hop)");
        }
        out
    }
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
    let next_hop = match spec.next_hop {
        NextHopSpec::Fixed(nh) => match (prefix, nh) {
            (IpNet::V4(_), NextHop::V4(_)) | (IpNet::V6(_), NextHop::V6 { .. }) => nh,
            _ => return None,
        },
        NextHopSpec::SelfAddress => match (prefix, s.local.ip()) {
            (IpNet::V4(_), IpAddr::V4(a)) => NextHop::V4(a),
            (IpNet::V4(_), IpAddr::V6(_)) => NextHop::V4(config.ipv4_next_hop?),
            (IpNet::V6(_), IpAddr::V6(a)) => NextHop::V6 {
                global: a,
                link_local: None,
            },
            (IpNet::V6(_), IpAddr::V4(_)) => NextHop::V6 {
                global: config.ipv6_next_hop?,
                link_local: None,
            },
        },
    };
    Some(Route {
        attributes: (*spec.attributes).clone(),
        next_hop,
    })
}
