//! The Established session of a peer: setting it up, the initial table and End-of-RIB,
//! sending the differences of the desired routes, and what its end leaves behind.

use std::time::{Instant, SystemTime};

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::super::io::WriteItem;
use super::super::refresh::Refreshes;
use super::{PeerTask, Session, export};
use crate::fsm::{ConnId, DownReason};
use crate::rib::{AdjRibIn, AdjRibOut, RibDiff};
use crate::session::SpeakerEvent;
use crate::wire::{AddressFamily, Message, SessionContext};

impl PeerTask {
    pub(super) fn on_established(&mut self, conn: ConnId, ctx: SessionContext) {
        let Some(c) = self.conns[conn.index()].as_mut() else {
            return;
        };
        c.ctx = ctx.clone();
        let local = c.local;
        info!(peer = %self.peer(), families = ?ctx.families, four_octet_as = ctx.four_octet_as, "BGP session established");
        let families = ctx.families.clone();
        self.session = Some(Session {
            conn,
            ctx,
            local,
            rib_out: AdjRibOut::new(),
            rib_in: AdjRibIn::new(),
            refreshes: Refreshes::default(),
            eor_pending: families,
            warned_near_limit: false,
            warned_no_next_hop: std::cell::Cell::new(0),
        });
        self.with_status(|s| {
            s.established_at = Some(Instant::now());
            s.status.established_since = Some(SystemTime::now());
            s.status.local_address = Some(local);
            s.status.last_error = None;
        });
        if let Some(sink) = &self.learned {
            sink.up(self.peer());
        }
        let restart = self
            .session
            .as_ref()
            .and_then(|s| s.ctx.graceful_restart.clone());
        self.stale_on_established(restart.as_ref());
        self.send_initial_table();
    }

    /// Full table, then End-of-RIB per family, right away (no settle timer).
    fn send_initial_table(&mut self) {
        let Some(s) = self.session.as_ref() else {
            return;
        };
        let conn = s.conn;
        let families = s.ctx.families.clone();
        self.sync_desired();
        self.send_end_of_rib(conn, &families);
    }

    pub(super) fn send_end_of_rib(&mut self, conn: ConnId, families: &[AddressFamily]) {
        for f in families {
            self.send_message(conn, &Message::EndOfRib(*f));
        }
        let prefixes = self.session.as_ref().map_or(0, |s| s.rib_out.len());
        self.with_status(|s| s.status.updates_sent += families.len() as u64);
        // Report when the table has really been handed to the kernel.
        if let Some(c) = &self.conns[conn.index()] {
            let (tx, rx) = oneshot::channel();
            if c.writer.send(WriteItem::Notify(tx)).is_ok() {
                let events = self.events.clone();
                let peer = self.peer();
                tokio::spawn(async move {
                    if rx.await.is_ok() {
                        let _ = events.send(SpeakerEvent::EndOfRibSent { peer, prefixes });
                    }
                });
            }
        }
    }

    /// Re-resolve the desired set against the live session and send the difference.
    pub(super) fn sync_desired(&mut self) {
        let peer = self.peer();
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let diff = export::sync(&self.config, &self.desired, s, peer);
        self.send_diff(diff);
    }

    pub(super) fn send_diff(&mut self, diff: RibDiff) {
        if diff.is_empty() {
            return;
        }
        let Some(s) = self.session.as_ref() else {
            return;
        };
        match diff.encode(&s.ctx) {
            Ok(frames) => {
                let count = frames.len() as u64;
                let total: usize = frames.iter().map(Vec::len).sum();
                let mut buf = Vec::with_capacity(total);
                for f in &frames {
                    buf.extend_from_slice(f);
                }
                drop(frames);
                let announced = s.rib_out.len();
                self.send_bytes(s.conn, buf);
                self.with_status(|st| {
                    st.status.updates_sent += count;
                    st.status.prefixes_announced = announced;
                });
            }
            Err(e) => warn!(peer = %self.peer(), error = %e, "cannot encode UPDATEs"),
        }
    }

    pub(super) fn on_session_down(&mut self, reason: &DownReason) {
        let text = reason.to_string();
        match reason {
            DownReason::Stopped | DownReason::AdminReset => {
                info!(peer = %self.peer(), reason = %text, "BGP session closed");
            }
            _ => warn!(peer = %self.peer(), reason = %text, "BGP session down"),
        }
        // The status first: whoever sees the withdrawals must see the session down too.
        self.with_status(|s| {
            s.established_at = None;
            s.status.established_since = None;
            s.status.prefixes_announced = 0;
            s.status.prefixes_received = 0;
            s.status.last_error = Some(text.clone());
        });
        if let Some(mut s) = self.session.take() {
            let helper = match (&s.ctx.graceful_restart, reason) {
                // RFC 4724 4.2: the TCP connection ended without a NOTIFICATION.
                (Some(pr), DownReason::TcpClosed) => {
                    let prefixes = s.rib_in.routes().map(|(p, _)| p).collect();
                    self.keep_stale(pr, prefixes)
                }
                _ => false,
            };
            if !helper {
                let events = s.rib_in.clear();
                self.emit_rib_in(events);
                // Whatever an earlier restart left stale goes too.
                self.stale_flush();
            }
        }
        self.pending_reason = Some(text);
    }
}
