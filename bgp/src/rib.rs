//! Adj-RIB-Out and Adj-RIB-In, one of each per peer.
//!
//! Memory: a load balancer announces many prefixes with few distinct attribute sets,
//! so every [`Route`] is interned: the maps hold an `Arc<Route>` per prefix and one
//! `Route` per distinct attribute set, and the maps are kept per address family
//! ([`PrefixMap`]). 100,000 IPv4 prefixes cost a map entry each (about 26 bytes,
//! measured with heaptrack), not a copy of the attributes.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use ipnet::IpNet;

use crate::intern::Interner;
use crate::prefix_map::PrefixMap;

use crate::wire::{
    EncodeError, NextHop, PathAttributes, SessionContext, Update, pack_updates_iter,
};

/// What is announced for one prefix: its attributes and next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// Path attributes (export rules are applied when encoding, not here).
    pub attributes: PathAttributes,
    /// Next hop.
    pub next_hop: NextHop,
}

/// A desired route as handed in: owned or already shared by the caller.
enum RouteIn {
    Owned(Route),
    Shared(Arc<Route>),
}

impl RouteIn {
    /// The same allocation as `other` (an interned route handed back): equal without
    /// comparing attributes.
    fn is(&self, other: &Arc<Route>) -> bool {
        matches!(self, RouteIn::Shared(r) if Arc::ptr_eq(r, other))
    }

    fn get(&self) -> &Route {
        match self {
            RouteIn::Owned(r) => r,
            RouteIn::Shared(r) => r,
        }
    }
}

/// Groups `(prefix, route)` pairs by identical route, keeping first-seen order.
#[derive(Default)]
struct Grouper {
    index: HashMap<*const Route, usize>,
    groups: Vec<(Arc<Route>, Vec<IpNet>)>,
}

impl Grouper {
    fn add(&mut self, prefix: IpNet, route: &Arc<Route>) {
        let key = Arc::as_ptr(route);
        let i = *self.index.entry(key).or_insert_with(|| {
            self.groups.push((route.clone(), Vec::new()));
            self.groups.len() - 1
        });
        self.groups[i].1.push(prefix);
    }

    fn finish(self) -> Vec<(Route, Vec<IpNet>)> {
        self.groups
            .into_iter()
            .map(|(r, p)| (Route::clone(&r), p))
            .collect()
    }
}

/// A change to send: withdrawals, and announcements grouped by identical route.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RibDiff {
    /// Prefixes to withdraw.
    pub withdrawn: Vec<IpNet>,
    /// Prefixes to (re-)announce, grouped by identical route.
    pub announced: Vec<(Route, Vec<IpNet>)>,
}

impl RibDiff {
    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.withdrawn.is_empty() && self.announced.iter().all(|(_, p)| p.is_empty())
    }

    /// Withdrawn plus announced prefixes.
    pub fn prefix_count(&self) -> usize {
        self.withdrawn.len() + self.announced.iter().map(|(_, p)| p.len()).sum::<usize>()
    }

    /// The UPDATE messages for this diff, each at most 4096 bytes (see
    /// [`crate::wire::pack_updates`]).
    pub fn encode(&self, ctx: &SessionContext) -> Result<Vec<Vec<u8>>, EncodeError> {
        pack_updates_iter(
            ctx,
            &self.withdrawn,
            self.announced
                .iter()
                .map(|(r, p)| (&r.attributes, &r.next_hop, p.as_slice())),
        )
    }
}

/// What we announce to one peer. Level-triggered: the caller states the whole desired
/// set (or single changes) and gets back the minimal diff against what was already
/// announced; sending that diff is the caller's job.
#[derive(Debug, Default)]
pub struct AdjRibOut {
    routes: PrefixMap<Arc<Route>>,
    interner: Interner<Route>,
}

impl AdjRibOut {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the whole announced set with `desired`. Returns what changed: prefixes
    /// gone are withdrawn, new prefixes and prefixes whose route changed are announced.
    /// The same set twice gives an empty diff.
    ///
    /// The input map holds a full `Route` per prefix (about 200 bytes each); callers
    /// with very many prefixes can use [`AdjRibOut::set_desired_shared`] instead.
    pub fn set_desired(&mut self, desired: BTreeMap<IpNet, Route>) -> RibDiff {
        self.set_desired_inner(desired.into_iter().map(|(p, r)| (p, RouteIn::Owned(r))))
    }

    /// [`AdjRibOut::set_desired`] with routes the caller already shares, so the input
    /// costs a pointer per prefix instead of a copy of the attributes.
    pub fn set_desired_shared(&mut self, desired: BTreeMap<IpNet, Arc<Route>>) -> RibDiff {
        self.set_desired_inner(desired.into_iter().map(|(p, r)| (p, RouteIn::Shared(r))))
    }

    /// [`AdjRibOut::set_desired`] from the caller's description of each route, in prefix
    /// order: `resolve` turns a key into its route (`None`: not announceable on this
    /// session, left out) and is called once per distinct key, and the route is interned
    /// here. The peer task hands over its desired table this way, so a route is built and
    /// interned in one place, once per distinct attribute set, not once per prefix.
    pub fn set_desired_keyed<K: Hash + Eq>(
        &mut self,
        desired: impl IntoIterator<Item = (IpNet, K)>,
        mut resolve: impl FnMut(&K) -> Option<Route>,
    ) -> RibDiff {
        let mut resolved: HashMap<K, Option<Arc<Route>>> = HashMap::new();
        let mut routes = Vec::new();
        for (prefix, key) in desired {
            let route = match resolved.get(&key) {
                Some(r) => r.clone(),
                None => {
                    let r = resolve(&key).map(|r| self.interner.intern(r));
                    resolved.insert(key, r.clone());
                    r
                }
            };
            if let Some(r) = route {
                routes.push((prefix, RouteIn::Shared(r)));
            }
        }
        debug_assert!(routes.windows(2).all(|w| w[0].0 < w[1].0), "prefix order");
        self.set_desired_inner(routes.into_iter())
    }

    /// Merge-walk of the old and new sorted maps: O(n) with one interner lookup per
    /// changed prefix.
    fn set_desired_inner(&mut self, desired: impl Iterator<Item = (IpNet, RouteIn)>) -> RibDiff {
        let mut withdrawn = Vec::new();
        let mut released = 0;
        let mut grouper = Grouper::default();
        let mut next: PrefixMap<Arc<Route>> = PrefixMap::new();
        let mut old = std::mem::take(&mut self.routes).into_iter().peekable();
        for (prefix, route) in desired {
            // Old prefixes sorting before this one are gone.
            while let Some((p, _)) = old.peek() {
                if *p < prefix {
                    withdrawn.push(*p);
                    old.next();
                } else {
                    break;
                }
            }
            let previous = match old.peek() {
                Some((p, _)) if *p == prefix => old.next().map(|(_, r)| r),
                _ => None,
            };
            let interned = match previous {
                Some(prev) if route.is(&prev) || *prev == *route.get() => prev,
                other => {
                    released += usize::from(other.is_some());
                    let r = match route {
                        RouteIn::Owned(r) => self.interner.intern(r),
                        RouteIn::Shared(r) => self.interner.intern_arc(r),
                    };
                    grouper.add(prefix, &r);
                    r
                }
            };
            next.insert(prefix, interned);
        }
        withdrawn.extend(old.map(|(p, _)| p));
        self.routes = next;
        self.interner.released(released + withdrawn.len());
        RibDiff {
            withdrawn,
            announced: grouper.finish(),
        }
    }

    /// Announces (or changes) one prefix. Empty diff when it is already announced so.
    pub fn announce(&mut self, prefix: IpNet, route: Route) -> RibDiff {
        if self.routes.get(&prefix).is_some_and(|r| **r == route) {
            return RibDiff::default();
        }
        let r = self.interner.intern(route);
        let old = self.routes.insert(prefix, r.clone());
        self.interner.released(usize::from(old.is_some()));
        RibDiff {
            withdrawn: Vec::new(),
            announced: vec![(Route::clone(&r), vec![prefix])],
        }
    }

    /// Withdraws one prefix. Empty diff when it was not announced.
    pub fn withdraw(&mut self, prefix: &IpNet) -> RibDiff {
        if self.routes.remove(prefix).is_none() {
            return RibDiff::default();
        }
        self.interner.released(1);
        RibDiff {
            withdrawn: vec![*prefix],
            announced: Vec::new(),
        }
    }

    /// Everything announced, as one diff: the initial table after the session reaches
    /// Established, and the resend after a ROUTE-REFRESH. (The session appends
    /// End-of-RIB.)
    pub fn full_table(&self) -> RibDiff {
        let mut grouper = Grouper::default();
        for (prefix, route) in &self.routes {
            grouper.add(prefix, route);
        }
        RibDiff {
            withdrawn: Vec::new(),
            announced: grouper.finish(),
        }
    }

    /// Number of announced prefixes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when nothing is announced.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Announced prefixes and their routes, in prefix order.
    pub fn routes(&self) -> impl Iterator<Item = (IpNet, &Route)> {
        self.routes.iter().map(|(p, r)| (p, r.as_ref()))
    }

    /// Number of distinct routes (attribute sets) held, for memory diagnostics.
    pub fn distinct_routes(&self) -> usize {
        self.interner.len()
    }
}

/// A change in what one peer announces to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RibInEvent {
    /// The prefix is new or its route changed.
    Learned {
        /// Prefix.
        prefix: IpNet,
        /// The route now in effect: the Adj-RIB-In's shared copy, so an UPDATE of a
        /// thousand prefixes costs a pointer per event, not a thousand attribute copies.
        route: Arc<Route>,
    },
    /// The prefix was present and is gone.
    Withdrawn {
        /// Prefix.
        prefix: IpNet,
    },
}

/// What one peer sent us.
#[derive(Debug, Default)]
pub struct AdjRibIn {
    routes: PrefixMap<Arc<Route>>,
    interner: Interner<Route>,
}

impl AdjRibIn {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a decoded UPDATE: withdrawals first, then announcements (a prefix both
    /// withdrawn and announced in one message ends up announced, RFC 4271 9).
    pub fn apply(&mut self, update: &Update) -> Vec<RibInEvent> {
        let mut events = Vec::new();
        let mut released = 0;
        for prefix in &update.withdrawn {
            if self.routes.remove(prefix).is_some() {
                events.push(RibInEvent::Withdrawn { prefix: *prefix });
                released += 1;
            }
        }
        if let Some(attributes) = &update.attributes {
            let groups = update
                .next_hop
                .iter()
                .map(|nh| (*nh, update.announced.as_slice()))
                .chain(
                    update
                        .extra_announced
                        .iter()
                        .map(|(nh, p)| (*nh, p.as_slice())),
                );
            for (next_hop, prefixes) in groups {
                if prefixes.is_empty() {
                    continue;
                }
                let route = self.interner.intern(Route {
                    attributes: attributes.clone(),
                    next_hop,
                });
                for prefix in prefixes {
                    let changed = self.routes.get(prefix).is_none_or(|old| **old != *route);
                    if changed {
                        let old = self.routes.insert(*prefix, route.clone());
                        released += usize::from(old.is_some());
                        events.push(RibInEvent::Learned {
                            prefix: *prefix,
                            route: route.clone(),
                        });
                    }
                }
            }
        }
        self.interner.released(released);
        events
    }

    /// The session went down: every route is withdrawn.
    pub fn clear(&mut self) -> Vec<RibInEvent> {
        let events = std::mem::take(&mut self.routes)
            .into_iter()
            .map(|(prefix, _)| RibInEvent::Withdrawn { prefix })
            .collect();
        self.interner.clear();
        events
    }

    /// Routes received, in prefix order.
    pub fn routes(&self) -> impl Iterator<Item = (IpNet, &Route)> {
        self.routes.iter().map(|(p, r)| (p, r.as_ref()))
    }

    /// The route received for `prefix`.
    pub fn get(&self, prefix: &IpNet) -> Option<&Route> {
        self.routes.get(prefix).map(Arc::as_ref)
    }

    /// Number of prefixes received.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when nothing was received.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
