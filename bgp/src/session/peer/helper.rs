//! Graceful restart, receiving side (RFC 4724 4.2, "helper"): when a peer that offered
//! graceful restart (and to which we offered it) loses its session without a NOTIFICATION,
//! its routes are not withdrawn: they stay with the consumer (the kernel pod-route
//! installer), marked stale here, while the peer restarts. Its new session's UPDATEs
//! replace them; at its End-of-RIB for a family the stale routes of that family that were
//! not sent again are withdrawn. If the peer does not come back, or comes back without the
//! forwarding bit for a family, or never sends End-of-RIB, the stale routes go at the end
//! of its restart time (at most [`MAX_RESTART_TIME`]): nothing stale is kept forever.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::IpNet;
use tracing::{info, warn};

use super::PeerTask;
use crate::rib::RibInEvent;
use crate::wire::{AddressFamily, PeerRestart};

/// The longest a peer's stale routes are kept, whatever restart time it asks for (the
/// field allows 4095 s, over an hour of routes that may lead nowhere).
pub(crate) const MAX_RESTART_TIME: Duration = Duration::from_secs(300);

/// A restarting peer's routes, kept stale.
#[derive(Debug)]
pub(crate) struct Stale {
    /// Prefixes the consumer still has from the previous session.
    prefixes: BTreeSet<IpNet>,
    /// When the rest go, End-of-RIB or not.
    deadline: tokio::time::Instant,
}

impl Stale {
    pub(crate) fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }
}

fn family_of(prefix: &IpNet) -> AddressFamily {
    match prefix {
        IpNet::V4(_) => AddressFamily::Ipv4Unicast,
        IpNet::V6(_) => AddressFamily::Ipv6Unicast,
    }
}

fn restart_time(pr: &PeerRestart) -> Duration {
    Duration::from_secs(u64::from(pr.restart_time)).min(MAX_RESTART_TIME)
}

impl PeerTask {
    /// The session went down after both sides offered graceful restart and without a
    /// NOTIFICATION: keep `prefixes` (the session's Adj-RIB-In) as stale. Returns false
    /// when helper mode does not apply (restart time 0: withdraw as usual).
    pub(super) fn keep_stale(&mut self, pr: &PeerRestart, prefixes: BTreeSet<IpNet>) -> bool {
        let time = restart_time(pr);
        if time.is_zero() {
            return false;
        }
        // Dropped again before the End-of-RIB: what the previous session did not refresh
        // goes now; what it did is kept again.
        if let Some(old) = self.stale.take() {
            self.withdraw_stale(old.prefixes.difference(&prefixes).copied());
        }
        if pr.restart_time > MAX_RESTART_TIME.as_secs() as u16 {
            warn!(peer = %self.peer(), asked_s = pr.restart_time, kept_s = time.as_secs(), "peer's graceful restart time is longer than we keep stale routes");
        }
        info!(peer = %self.peer(), routes = prefixes.len(), restart_time_s = time.as_secs(), "peer restarting (graceful restart): keeping its routes as stale");
        self.stale = Some(Stale {
            prefixes,
            deadline: tokio::time::Instant::now() + time,
        });
        true
    }

    /// The peer is back: without graceful restart, or without the forwarding bit for a
    /// family, its stale routes (of that family) go at once (RFC 4724 4.2); the rest wait
    /// for its End-of-RIB, at most its restart time again.
    pub(super) fn stale_on_established(&mut self, pr: Option<&PeerRestart>) {
        let Some(mut stale) = self.stale.take() else {
            return;
        };
        let Some(pr) = pr else {
            info!(peer = %self.peer(), "peer came back without graceful restart: its stale routes go");
            self.withdraw_stale(stale.prefixes);
            return;
        };
        let (keep, drop): (BTreeSet<IpNet>, BTreeSet<IpNet>) = stale
            .prefixes
            .into_iter()
            .partition(|p| pr.forwarding.contains(&family_of(p)));
        if !drop.is_empty() {
            info!(peer = %self.peer(), routes = drop.len(), "peer kept no forwarding state for some families: their stale routes go");
            self.withdraw_stale(drop);
        }
        if keep.is_empty() {
            return;
        }
        stale.prefixes = keep;
        stale.deadline = tokio::time::Instant::now() + restart_time(pr).max(Duration::from_secs(1));
        self.stale = Some(stale);
    }

    /// End-of-RIB for `family` on the new session: its stale routes that were not sent
    /// again go. A second End-of-RIB finds nothing left to do.
    pub(super) fn stale_end_of_rib(&mut self, family: AddressFamily) {
        let Some(mut stale) = self.stale.take() else {
            return;
        };
        let (done, rest): (BTreeSet<IpNet>, BTreeSet<IpNet>) = stale
            .prefixes
            .into_iter()
            .partition(|p| family_of(p) == family);
        let gone: Vec<IpNet> = done.into_iter().filter(|p| !self.refreshed(p)).collect();
        info!(peer = %self.peer(), ?family, withdrawn = gone.len(), "graceful restart: End-of-RIB, stale routes not sent again withdrawn");
        self.withdraw_stale(gone);
        if !rest.is_empty() {
            stale.prefixes = rest;
            self.stale = Some(stale);
        }
    }

    /// The restart time ran out (the peer is not back, or sent no End-of-RIB).
    pub(super) fn stale_expired(&mut self) {
        let Some(stale) = self.stale.take() else {
            return;
        };
        let gone: Vec<IpNet> = stale
            .prefixes
            .into_iter()
            .filter(|p| !self.refreshed(p))
            .collect();
        warn!(peer = %self.peer(), withdrawn = gone.len(), "graceful restart time over: stale routes withdrawn");
        self.withdraw_stale(gone);
    }

    /// Stopped for good: nothing stays stale.
    pub(super) fn stale_flush(&mut self) {
        if let Some(stale) = self.stale.take() {
            self.withdraw_stale(stale.prefixes);
        }
    }

    /// Whether the current session sent `prefix` again.
    fn refreshed(&self, prefix: &IpNet) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.rib_in.get(prefix).is_some())
    }

    fn withdraw_stale(&self, prefixes: impl IntoIterator<Item = IpNet>) {
        let events: Vec<RibInEvent> = prefixes
            .into_iter()
            .map(|prefix| RibInEvent::Withdrawn { prefix })
            .collect();
        if !events.is_empty() {
            self.emit_rib_in(events);
        }
    }
}
