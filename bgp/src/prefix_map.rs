//! [`PrefixMap`]: an ordered map keyed by prefix, one B-tree per address family.
//!
//! Why not `BTreeMap<IpNet, V>`: an `IpNet` key is 18 bytes whatever its family (the
//! IPv6 variant sets the size), so a table of IPv4 /32s spends most of its B-tree nodes
//! on padding. Keyed by `Ipv4Net` (5 bytes) and `Ipv6Net` (17 bytes) separately, the
//! same 100,000 learned IPv4 routes take a quarter of the memory (measured with
//! heaptrack in the speaker's install benchmark). Iteration order is that of `IpNet`
//! (every IPv4 prefix before every IPv6 one), so the map is a drop-in replacement.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// An ordered map from prefix to `V`, stored per family.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PrefixMap<V> {
    v4: BTreeMap<Ipv4Net, V>,
    v6: BTreeMap<Ipv6Net, V>,
}

/// An ordered set of prefixes, stored per family.
pub type PrefixSet = PrefixMap<()>;

impl<V> Default for PrefixMap<V> {
    fn default() -> Self {
        PrefixMap {
            v4: BTreeMap::new(),
            v6: BTreeMap::new(),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for PrefixMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> PrefixMap<V> {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The value of `prefix`.
    pub fn get(&self, prefix: &IpNet) -> Option<&V> {
        match prefix {
            IpNet::V4(p) => self.v4.get(p),
            IpNet::V6(p) => self.v6.get(p),
        }
    }

    /// The value of `prefix`, mutable.
    pub fn get_mut(&mut self, prefix: &IpNet) -> Option<&mut V> {
        match prefix {
            IpNet::V4(p) => self.v4.get_mut(p),
            IpNet::V6(p) => self.v6.get_mut(p),
        }
    }

    /// True when `prefix` is in the map.
    pub fn contains_key(&self, prefix: &IpNet) -> bool {
        self.get(prefix).is_some()
    }

    /// Sets the value of `prefix`; returns the previous one.
    pub fn insert(&mut self, prefix: IpNet, value: V) -> Option<V> {
        match prefix {
            IpNet::V4(p) => self.v4.insert(p, value),
            IpNet::V6(p) => self.v6.insert(p, value),
        }
    }

    /// Removes `prefix`; returns its value.
    pub fn remove(&mut self, prefix: &IpNet) -> Option<V> {
        match prefix {
            IpNet::V4(p) => self.v4.remove(p),
            IpNet::V6(p) => self.v6.remove(p),
        }
    }

    /// Empties the map.
    pub fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
    }

    /// Keeps the entries for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(IpNet, &mut V) -> bool) {
        self.v4.retain(|p, v| keep(IpNet::V4(*p), v));
        self.v6.retain(|p, v| keep(IpNet::V6(*p), v));
    }

    /// Entries in prefix order.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            v4: self.v4.iter(),
            v6: self.v6.iter(),
        }
    }

    /// Prefixes in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = IpNet> + '_ {
        self.iter().map(|(p, _)| p)
    }

    /// Values in prefix order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.v4.values().chain(self.v6.values())
    }

    /// Values in prefix order, mutable.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.v4.values_mut().chain(self.v6.values_mut())
    }
}

impl PrefixSet {
    /// Adds `prefix`; returns whether it was new.
    pub fn add(&mut self, prefix: IpNet) -> bool {
        self.insert(prefix, ()).is_none()
    }

    /// True when `prefix` is in the set.
    pub fn contains(&self, prefix: &IpNet) -> bool {
        self.contains_key(prefix)
    }
}

/// Iterator over a [`PrefixMap`]'s entries, in prefix order.
pub struct Iter<'a, V> {
    v4: btree_map::Iter<'a, Ipv4Net, V>,
    v6: btree_map::Iter<'a, Ipv6Net, V>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (IpNet, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self.v4.next() {
            Some((p, v)) => Some((IpNet::V4(*p), v)),
            None => self.v6.next().map(|(p, v)| (IpNet::V6(*p), v)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.v4.len() + self.v6.len();
        (n, Some(n))
    }
}

impl<V> DoubleEndedIterator for Iter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self.v6.next_back() {
            Some((p, v)) => Some((IpNet::V6(*p), v)),
            None => self.v4.next_back().map(|(p, v)| (IpNet::V4(*p), v)),
        }
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

impl<'a, V> IntoIterator for &'a PrefixMap<V> {
    type Item = (IpNet, &'a V);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<V> IntoIterator for PrefixMap<V> {
    type Item = (IpNet, V);
    type IntoIter = std::iter::Chain<
        std::iter::Map<btree_map::IntoIter<Ipv4Net, V>, fn((Ipv4Net, V)) -> (IpNet, V)>,
        std::iter::Map<btree_map::IntoIter<Ipv6Net, V>, fn((Ipv6Net, V)) -> (IpNet, V)>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        let v4: fn((Ipv4Net, V)) -> (IpNet, V) = |(p, v)| (IpNet::V4(p), v);
        let v6: fn((Ipv6Net, V)) -> (IpNet, V) = |(p, v)| (IpNet::V6(p), v);
        self.v4
            .into_iter()
            .map(v4)
            .chain(self.v6.into_iter().map(v6))
    }
}

impl<V> Extend<(IpNet, V)> for PrefixMap<V> {
    fn extend<I: IntoIterator<Item = (IpNet, V)>>(&mut self, iter: I) {
        for (p, v) in iter {
            self.insert(p, v);
        }
    }
}

impl<V> FromIterator<(IpNet, V)> for PrefixMap<V> {
    fn from_iter<I: IntoIterator<Item = (IpNet, V)>>(iter: I) -> Self {
        let mut m = PrefixMap::new();
        m.extend(iter);
        m
    }
}

impl FromIterator<IpNet> for PrefixSet {
    fn from_iter<I: IntoIterator<Item = IpNet>>(iter: I) -> Self {
        iter.into_iter().map(|p| (p, ())).collect()
    }
}

impl Extend<IpNet> for PrefixSet {
    fn extend<I: IntoIterator<Item = IpNet>>(&mut self, iter: I) {
        self.extend(iter.into_iter().map(|p| (p, ())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn behaves_like_a_btreemap_of_ipnet_in_order_and_content() {
        let input = [
            "fd00::/64",
            "10.0.0.0/24",
            "10.0.0.0/16",
            "192.168.1.1/32",
            "::/0",
            "10.0.0.0/24",
            "fd00::1/128",
            "0.0.0.0/0",
        ];
        let mut reference = BTreeMap::new();
        let mut map = PrefixMap::new();
        for (i, p) in input.iter().enumerate() {
            assert_eq!(map.insert(net(p), i), reference.insert(net(p), i), "{p}");
        }
        assert_eq!(map.len(), reference.len());
        let got: Vec<(IpNet, usize)> = map.iter().map(|(p, v)| (p, *v)).collect();
        let want: Vec<(IpNet, usize)> = reference.iter().map(|(p, v)| (*p, *v)).collect();
        assert_eq!(got, want);
        let back: Vec<IpNet> = map.iter().rev().map(|(p, _)| p).collect();
        let want_back: Vec<IpNet> = reference.keys().rev().copied().collect();
        assert_eq!(back, want_back);
        assert_eq!(map.get(&net("10.0.0.0/24")), Some(&5));
        assert_eq!(map.remove(&net("fd00::/64")), Some(0));
        assert_eq!(map.remove(&net("fd00::/64")), None);
        assert!(!map.contains_key(&net("fd00::/64")));
        map.retain(|p, _| p.addr().is_ipv4());
        assert_eq!(map.len(), 4);
        let owned: Vec<IpNet> = map.clone().into_iter().map(|(p, _)| p).collect();
        assert_eq!(owned, map.keys().collect::<Vec<_>>());
    }

    #[test]
    fn an_ipv4_entry_is_much_smaller_than_an_ipnet_key() {
        assert_eq!(std::mem::size_of::<Ipv4Net>(), 5);
        assert!(std::mem::size_of::<IpNet>() >= 18);
    }

    #[test]
    fn set_adds_once() {
        let mut s = PrefixSet::new();
        assert!(s.add(net("10.0.0.1/32")));
        assert!(!s.add(net("10.0.0.1/32")));
        assert!(s.add(net("::1/128")));
        assert_eq!(
            s.keys().collect::<Vec<_>>(),
            [net("10.0.0.1/32"), net("::1/128")]
        );
    }
}
