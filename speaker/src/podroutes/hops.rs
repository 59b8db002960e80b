//! [`NextHops`]: the next hops of one route, a small sorted set.
//!
//! Why not `BTreeSet<IpAddr>`: a BTreeSet allocates a whole B-tree leaf (about 200 bytes)
//! for its first element, and a learned table holds one set per route: 100,000 /32s cost
//! 18 MB in sets alone (measured with heaptrack in the install benchmark). Almost every
//! route has one next hop, which this type keeps inline; ECMP sets (a few hops) are one
//! boxed slice.

use std::net::IpAddr;

/// A set of next hops, sorted and without duplicates; one hop without an allocation.
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct NextHops(Repr);

#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
enum Repr {
    #[default]
    Empty,
    One(IpAddr),
    /// Two or more, sorted.
    Many(Box<[IpAddr]>),
}

impl NextHops {
    /// The empty set.
    pub fn new() -> Self {
        NextHops(Repr::Empty)
    }

    /// The hops, sorted.
    pub fn as_slice(&self) -> &[IpAddr] {
        match &self.0 {
            Repr::Empty => &[],
            Repr::One(a) => std::slice::from_ref(a),
            Repr::Many(v) => v,
        }
    }

    /// In ascending order.
    pub fn iter(&self) -> std::slice::Iter<'_, IpAddr> {
        self.as_slice().iter()
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        matches!(self.0, Repr::Empty)
    }

    pub fn contains(&self, hop: &IpAddr) -> bool {
        self.as_slice().binary_search(hop).is_ok()
    }

    /// The smallest hop.
    pub fn first(&self) -> Option<&IpAddr> {
        self.as_slice().first()
    }

    /// Adds `hop`; returns whether it was new.
    pub fn insert(&mut self, hop: IpAddr) -> bool {
        let i = match self.as_slice().binary_search(&hop) {
            Ok(_) => return false,
            Err(i) => i,
        };
        self.0 = match std::mem::take(&mut self.0) {
            Repr::Empty => Repr::One(hop),
            Repr::One(a) => Repr::Many(if i == 0 { [hop, a] } else { [a, hop] }.into()),
            Repr::Many(v) => {
                let mut v = v.into_vec();
                v.insert(i, hop);
                Repr::Many(v.into_boxed_slice())
            }
        };
        true
    }

    fn from_sorted(mut v: Vec<IpAddr>) -> Self {
        v.dedup();
        NextHops(match v.len() {
            0 => Repr::Empty,
            1 => Repr::One(v[0]),
            _ => Repr::Many(v.into_boxed_slice()),
        })
    }
}

impl std::fmt::Debug for NextHops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<IpAddr> for NextHops {
    fn from_iter<I: IntoIterator<Item = IpAddr>>(iter: I) -> Self {
        let mut it = iter.into_iter();
        let Some(a) = it.next() else {
            return NextHops::new();
        };
        let Some(b) = it.next() else {
            return NextHops(Repr::One(a));
        };
        let mut v: Vec<IpAddr> = [a, b].into_iter().chain(it).collect();
        v.sort_unstable();
        NextHops::from_sorted(v)
    }
}

impl Extend<IpAddr> for NextHops {
    fn extend<I: IntoIterator<Item = IpAddr>>(&mut self, iter: I) {
        for hop in iter {
            self.insert(hop);
        }
    }
}

impl<const N: usize> From<[IpAddr; N]> for NextHops {
    fn from(a: [IpAddr; N]) -> Self {
        a.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a NextHops {
    type Item = &'a IpAddr;
    type IntoIter = std::slice::Iter<'a, IpAddr>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for NextHops {
    type Item = IpAddr;
    type IntoIter = std::vec::IntoIter<IpAddr>;

    fn into_iter(self) -> Self::IntoIter {
        match self.0 {
            Repr::Empty => Vec::new().into_iter(),
            Repr::One(a) => vec![a].into_iter(),
            Repr::Many(v) => v.into_vec().into_iter(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn behaves_like_a_sorted_set() {
        let mut h = NextHops::new();
        assert!(h.is_empty());
        assert!(h.insert(ip("10.0.0.3")));
        assert!(!h.insert(ip("10.0.0.3")));
        assert!(h.insert(ip("10.0.0.1")));
        assert!(h.insert(ip("10.0.0.2")));
        assert_eq!(
            h.as_slice(),
            [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]
        );
        assert!(h.contains(&ip("10.0.0.2")) && !h.contains(&ip("10.0.0.9")));
        assert_eq!(h.first(), Some(&ip("10.0.0.1")));
        // Same set, any order and duplicates: equal values.
        let other: NextHops = [
            ip("10.0.0.2"),
            ip("10.0.0.3"),
            ip("10.0.0.1"),
            ip("10.0.0.2"),
        ]
        .into();
        assert_eq!(h, other);
        let reference: BTreeSet<IpAddr> = other.iter().copied().collect();
        assert!(h.iter().copied().eq(reference.into_iter()));
        assert_eq!(format!("{h:?}"), "{10.0.0.1, 10.0.0.2, 10.0.0.3}");
    }

    #[test]
    fn one_hop_is_inline() {
        // A BTreeSet costs a heap leaf per route; one hop here costs nothing on the heap.
        assert!(std::mem::size_of::<NextHops>() <= 24);
        let h: NextHops = [ip("fd00::1")].into();
        assert!(matches!(h.0, Repr::One(_)));
        assert_eq!(h.into_iter().collect::<Vec<_>>(), [ip("fd00::1")]);
    }
}
