//! What a peer sends us: UPDATEs into the Adj-RIB-In (with the maximum-prefix limit),
//! the learned-route feed or events, and ROUTE-REFRESH requests (coalesced).

use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::super::io::{IoEvent, WriteItem};
use super::super::learned::{LearnedRoute, next_hop_address};
use super::super::refresh;
use super::PeerTask;
use crate::fsm::Event;
use crate::rib::{RibInEvent, Route};
use crate::session::SpeakerEvent;
use crate::wire::{AddressFamily, Update};

impl PeerTask {
    /// A received UPDATE into the Adj-RIB-In, unless it takes the peer over its
    /// maximum-prefix limit: then Cease 6/1 and nothing of it is passed on.
    pub(super) fn on_update(&mut self, update: &Update) {
        let peer = self.peer();
        let limit = self.config.max_prefixes;
        let restart_after = self.config.max_prefix_restart;
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let events = s.rib_in.apply(update);
        let received = s.rib_in.len();
        self.with_status(|st| {
            st.status.updates_received += 1;
            st.status.prefixes_received = received;
        });
        if let Some(limit) = limit {
            let limit_n = limit as usize;
            if received > limit_n {
                warn!(%peer, received, limit, restart_after_secs = restart_after.as_secs(), "maximum number of prefixes exceeded: closing the session (Cease 6/1)");
                self.with_status(|st| st.status.max_prefix_ceases += 1);
                let family = update
                    .announced
                    .first()
                    .map_or(AddressFamily::Ipv4Unicast, AddressFamily::of);
                self.feed(Event::MaxPrefixesExceeded {
                    family,
                    limit,
                    restart_after,
                });
                return;
            }
            if received * 5 >= limit_n * 4
                && let Some(s) = self.session.as_mut()
                && !s.warned_near_limit
            {
                s.warned_near_limit = true;
                warn!(%peer, received, limit, "peer is at 80 % of its maximum number of prefixes");
            }
        }
        self.emit_rib_in(events);
    }

    pub(super) fn emit_rib_in(&self, events: Vec<RibInEvent>) {
        let peer = self.peer();
        if let Some(sink) = &self.learned {
            sink.send_all(events.into_iter().map(|ev| match ev {
                RibInEvent::Learned { prefix, route } => LearnedRoute {
                    peer,
                    prefix,
                    next_hop: next_hop_address(&route.next_hop),
                },
                RibInEvent::Withdrawn { prefix } => LearnedRoute {
                    peer,
                    prefix,
                    next_hop: None,
                },
            }));
            return;
        }
        for ev in events {
            self.emit(match ev {
                RibInEvent::Learned { prefix, route } => SpeakerEvent::RouteLearned {
                    peer,
                    prefix,
                    route: Route::clone(&route),
                },
                RibInEvent::Withdrawn { prefix } => SpeakerEvent::RouteWithdrawn { peer, prefix },
            });
        }
    }

    /// A ROUTE-REFRESH: resend the family unless a resend of it is still being written
    /// (then one more resend follows it, however many requests arrive meanwhile).
    pub(super) fn on_route_refresh(&mut self, family: AddressFamily) {
        self.with_status(|st| st.status.route_refreshes_received += 1);
        if let Some(count) = self.refresh_log.hit() {
            info!(peer = %self.peer(), ?family, count, "route refresh requested (one line per 10 s, with the count since the last)");
        }
        let start = self
            .session
            .as_mut()
            .is_some_and(|s| s.refreshes.request(family));
        if start {
            self.resend_family(family);
        }
    }

    /// The last resend of `family` was written: start the one asked for meanwhile.
    pub(super) fn on_refresh_done(&mut self, generation: u64, family: AddressFamily) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let live = self.conns[s.conn.index()]
            .as_ref()
            .is_some_and(|c| c.generation == generation);
        if live && s.refreshes.done(family) {
            self.resend_family(family);
        }
    }

    pub(super) fn resend_family(&mut self, family: AddressFamily) {
        let Some(s) = self.session.as_ref() else {
            return;
        };
        let mut diff = s.rib_out.full_table();
        diff.announced.retain_mut(|(_, prefixes)| {
            prefixes.retain(|p| AddressFamily::of(p) == family);
            !prefixes.is_empty()
        });
        let conn = s.conn;
        debug!(peer = %self.peer(), ?family, "route refresh: resending");
        self.send_diff(diff);
        self.send_end_of_rib(conn, &[family]);
        // Report back once it is all written and the minimum interval has passed.
        if let Some(c) = &self.conns[conn.index()] {
            let (tx, rx) = oneshot::channel();
            let _ = c.writer.send(WriteItem::Notify(tx));
            let io = self.io_tx.clone();
            let generation = c.generation;
            let earliest = tokio::time::Instant::now() + refresh::MIN_INTERVAL;
            tokio::spawn(async move {
                if rx.await.is_ok() {
                    tokio::time::sleep_until(earliest).await;
                    let _ = io.send(IoEvent::RefreshDone { generation, family }).await;
                }
            });
        }
    }
}
