//! Routes learned from peers, handed to one consumer as bounded, coalescing diffs.
//!
//! The per-route [`super::SpeakerEvent`]s clone a whole [`crate::rib::Route`] per prefix
//! into an unbounded channel: fine for a handful of routes, not for a router that leaks
//! a full table. A speaker built with [`super::Speaker::with_learned_feed`] instead
//! records every change of its peers' Adj-RIB-In here as one [`LearnedRoute`] per
//! (peer, prefix), the newest change replacing an older one not yet taken. The consumer
//! takes everything pending at once ([`LearnedReceiver::recv`]).
//!
//! Memory is bounded by the configuration, not by what a peer sends: pending entries are
//! at most one per (peer, prefix) a peer's Adj-RIB-In held (itself bounded by the peer's
//! maximum-prefix limit), and while more than `capacity` are pending a peer task stops
//! reading its socket ([`LearnedSender::room`]), so TCP flow control slows the peer down.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use tokio::sync::Notify;

use crate::wire::NextHop;

/// The one shape a learned route has on its way from a session to its consumer (the
/// speaker daemon's kernel pod-route reconciler).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LearnedRoute {
    /// The peer that sent it.
    pub peer: IpAddr,
    /// Destination.
    pub prefix: IpNet,
    /// Its next hop; `None`: the peer no longer offers a usable route for the prefix
    /// (withdrawn, session down, or a next hop without an address we could use).
    pub next_hop: Option<IpAddr>,
}

/// The address of a BGP next hop that a kernel route can use: IPv4 as is, IPv6 its
/// global address; `None` for an unspecified global IPv6 address (a link-local-only next
/// hop needs the interface, which is not tracked). The one conversion used everywhere.
pub fn next_hop_address(nh: &NextHop) -> Option<IpAddr> {
    match nh {
        NextHop::V4(a) => Some(IpAddr::V4(*a)),
        NextHop::V6 { global, .. } if !global.is_unspecified() => Some(IpAddr::V6(*global)),
        NextHop::V6 { .. } => None,
    }
}

/// What the consumer gets from one [`LearnedReceiver::recv`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LearnedBatch {
    /// The newest change of every (peer, prefix) changed since the last batch.
    pub routes: Vec<LearnedRoute>,
    /// Peers whose session delivered its initial table (End-of-RIB of every negotiated
    /// family, or none expected) since the last batch; their routes above are complete.
    pub synced: BTreeSet<IpAddr>,
    /// Peers whose session became Established since the last batch.
    pub up: BTreeSet<IpAddr>,
}

impl LearnedBatch {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.synced.is_empty() && self.up.is_empty()
    }
}

#[derive(Debug, Default)]
struct Pending {
    routes: HashMap<(IpAddr, IpNet), Option<IpAddr>>,
    synced: BTreeSet<IpAddr>,
    up: BTreeSet<IpAddr>,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    capacity: usize,
    senders: AtomicUsize,
    /// Wakes the consumer.
    data: Notify,
    /// Wakes producers waiting for room.
    room: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A bounded, coalescing feed of learned routes: `capacity` pending entries before the
/// producers are asked to wait.
pub fn learned_feed(capacity: usize) -> (LearnedSender, LearnedReceiver) {
    let shared = Arc::new(Shared {
        pending: Mutex::default(),
        capacity: capacity.max(1),
        senders: AtomicUsize::new(1),
        data: Notify::new(),
        room: Notify::new(),
    });
    (
        LearnedSender {
            shared: shared.clone(),
        },
        LearnedReceiver { shared },
    )
}

/// The producing end (cheap to clone; the peer tasks hold one each).
#[derive(Debug)]
pub struct LearnedSender {
    shared: Arc<Shared>,
}

impl Clone for LearnedSender {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        LearnedSender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for LearnedSender {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.data.notify_one();
        }
    }
}

impl LearnedSender {
    /// Records a change; replaces a pending change of the same (peer, prefix). Never
    /// blocks: producers check [`LearnedSender::has_room`] before taking more input.
    pub fn send(&self, route: LearnedRoute) {
        self.send_all(std::iter::once(route));
    }

    /// Records several changes under one lock.
    pub fn send_all(&self, routes: impl IntoIterator<Item = LearnedRoute>) {
        let mut any = false;
        {
            let mut p = self.shared.lock();
            for r in routes {
                p.routes.insert((r.peer, r.prefix), r.next_hop);
                any = true;
            }
        }
        if any {
            self.shared.data.notify_one();
        }
    }

    /// `peer`'s routes sent so far are its complete initial table.
    pub fn synced(&self, peer: IpAddr) {
        self.shared.lock().synced.insert(peer);
        self.shared.data.notify_one();
    }

    /// `peer`'s session is Established (its routes start arriving).
    pub fn up(&self, peer: IpAddr) {
        self.shared.lock().up.insert(peer);
        self.shared.data.notify_one();
    }

    /// Shorthand: `peer` offers `prefix` via `next_hop`.
    pub fn learned(&self, peer: IpAddr, prefix: IpNet, next_hop: IpAddr) {
        self.send(LearnedRoute {
            peer,
            prefix,
            next_hop: Some(next_hop),
        });
    }

    /// Shorthand: `peer` no longer offers `prefix`.
    pub fn withdrawn(&self, peer: IpAddr, prefix: IpNet) {
        self.send(LearnedRoute {
            peer,
            prefix,
            next_hop: None,
        });
    }

    /// Fewer than `capacity` changes are pending.
    pub fn has_room(&self) -> bool {
        self.shared.lock().routes.len() < self.shared.capacity
    }

    /// Waits until [`LearnedSender::has_room`].
    pub async fn room(&self) {
        loop {
            let notified = self.shared.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has_room() {
                return;
            }
            notified.await;
        }
    }
}

/// The consuming end.
#[derive(Debug)]
pub struct LearnedReceiver {
    shared: Arc<Shared>,
}

impl LearnedReceiver {
    /// Everything pending now (possibly empty), in (peer, prefix) order.
    pub fn take(&mut self) -> LearnedBatch {
        let pending = std::mem::take(&mut *self.shared.lock());
        self.shared.room.notify_waiters();
        let mut routes: Vec<LearnedRoute> = pending
            .routes
            .into_iter()
            .map(|((peer, prefix), next_hop)| LearnedRoute {
                peer,
                prefix,
                next_hop,
            })
            .collect();
        routes.sort_unstable();
        LearnedBatch {
            routes,
            synced: pending.synced,
            up: pending.up,
        }
    }

    /// Waits for changes and takes them all; `None` once every sender is gone and
    /// nothing is pending.
    pub async fn recv(&mut self) -> Option<LearnedBatch> {
        loop {
            let batch = self.take();
            if !batch.is_empty() {
                return Some(batch);
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                return None;
            }
            self.shared.data.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn changes_coalesce_per_peer_and_prefix() {
        let (tx, mut rx) = learned_feed(2);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        tx.learned(a, net("10.244.1.0/24"), ip("192.0.2.11"));
        tx.learned(a, net("10.244.1.0/24"), ip("192.0.2.12"));
        assert!(tx.has_room(), "one entry pending");
        tx.learned(b, net("10.244.1.0/24"), ip("192.0.2.21"));
        assert!(!tx.has_room(), "capacity 2 reached");
        tx.withdrawn(b, net("10.244.1.0/24"));
        tx.synced(a);
        let got = rx.recv().await.expect("batch");
        assert_eq!(
            got.routes,
            vec![
                LearnedRoute {
                    peer: a,
                    prefix: net("10.244.1.0/24"),
                    next_hop: Some(ip("192.0.2.12"))
                },
                LearnedRoute {
                    peer: b,
                    prefix: net("10.244.1.0/24"),
                    next_hop: None
                },
            ]
        );
        assert_eq!(got.synced, [a].into());
        assert!(tx.has_room());
        tokio::time::timeout(std::time::Duration::from_secs(1), tx.room())
            .await
            .expect("room after take");
        drop(tx);
        assert_eq!(rx.recv().await, None, "closed once every sender is gone");
    }

    #[test]
    fn next_hop_address_of_an_unspecified_ipv6_global_is_none() {
        assert_eq!(
            next_hop_address(&NextHop::V6 {
                global: std::net::Ipv6Addr::UNSPECIFIED,
                link_local: Some("fe80::1".parse().unwrap()),
            }),
            None
        );
        assert_eq!(
            next_hop_address(&NextHop::V4("192.0.2.1".parse().unwrap())),
            Some(ip("192.0.2.1"))
        );
    }
}
